//! What the client holds of its inbox: the highest `useq` received (a message at or below it
//! is a re-send and dropped; the next login asks `since` it) and how far it has acked: sent
//! on this connection, and answered `ok` by a server. An ack written into a connection that
//! then broke may never have been read, so after a login the client acks again from the
//! last answered one.

use crate::protocol::InboxMessage;

#[derive(Clone, Debug, Default)]
pub(super) struct Inbox {
    pub highest_useq: u64,
    pub acked_upto: u64,
    pub confirmed_upto: u64,
    /// Acks sent on this connection and not answered yet: (req, upto).
    pub acks_in_flight: Vec<(u64, u64)>,
    pub duplicates_dropped: u64,
}

impl Inbox {
    /// True if `message` is new (and now held).
    pub fn accept(&mut self, message: &InboxMessage) -> bool {
        if message.useq <= self.highest_useq {
            self.duplicates_dropped += 1;
            return false;
        }
        self.highest_useq = message.useq;
        true
    }

    /// A new connection: what the old one did not confirm is acked again.
    pub fn reconnected(&mut self) {
        self.acked_upto = self.confirmed_upto;
        self.acks_in_flight.clear();
    }

    /// Whether `req` was an ack (now answered).
    pub fn ack_answered(&mut self, req: u64) -> bool {
        let Some(i) = self.acks_in_flight.iter().position(|(r, _)| *r == req) else {
            return false;
        };
        let (_, upto) = self.acks_in_flight.remove(i);
        self.confirmed_upto = self.confirmed_upto.max(upto);
        true
    }

    /// The `upto` of an ack to send now: everything held if it is not acked yet and `due`
    /// says so (a batch is full, or nothing more is waiting).
    pub fn ack_due(&self, batch: u64, flush: bool) -> Option<u64> {
        let unacked = self.highest_useq.saturating_sub(self.acked_upto);
        (unacked > 0 && (flush || unacked >= batch)).then_some(self.highest_useq)
    }
}
