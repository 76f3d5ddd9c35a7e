//! The leader's side of sending one follower a snapshot: stop and wait, one chunk out at a
//! time. The follower's `snapshot_ack` says how many bytes it holds and the next chunk goes
//! from there (it is authoritative: after a restart it holds none); a heartbeat interval
//! without an answer resends the chunk (a datagram was lost). Bounded by design: one chunk
//! in flight per follower, and the text is shared, not copied, between followers.

use crate::core::snapshot::chunk_at;
use std::ops::Not;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub index: u64,
    pub epoch: u64,
    text: Arc<str>,
    /// Bytes the follower said it holds.
    acked: u64,
    /// Whether an answer came since the previous heartbeat.
    answered: bool,
}

impl Transfer {
    pub fn new(index: u64, epoch: u64, text: Arc<str>) -> Transfer {
        Transfer {
            index,
            epoch,
            text,
            acked: 0,
            answered: true,
        }
    }

    pub fn total(&self) -> u64 {
        self.text.len() as u64
    }

    /// The chunk to send now: from what the follower holds, or (all of it held: the
    /// installation's acknowledgement was lost) the first one again, which a follower that
    /// installed answers with that acknowledgement.
    pub fn chunk(&self) -> (u64, &str) {
        let offset = if self.acked < self.total() {
            self.acked
        } else {
            0
        };
        (offset, chunk_at(&self.text, offset as usize))
    }

    /// The follower holds `received` bytes; returns whether to send the next chunk.
    pub fn on_ack(&mut self, received: u64) -> bool {
        self.acked = received.min(self.total());
        self.answered = true;
        self.acked < self.total()
    }

    /// Every heartbeat: whether to resend (nothing was answered for a whole interval).
    pub fn on_heartbeat(&mut self) -> bool {
        std::mem::replace(&mut self.answered, false).not()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::snapshot::MAX_CHUNK_ESCAPED;

    #[test]
    fn chunks_go_from_what_the_follower_holds_and_are_resent_when_unanswered() {
        let text: Arc<str> = "y".repeat(MAX_CHUNK_ESCAPED * 2 + 10).into();
        let mut t = Transfer::new(9, 2, text);
        assert_eq!(t.chunk().0, 0);
        assert!(!t.on_heartbeat(), "just started");
        assert!(t.on_heartbeat(), "an interval without an answer: resend");
        assert!(t.on_ack(MAX_CHUNK_ESCAPED as u64));
        assert_eq!(
            t.chunk(),
            (MAX_CHUNK_ESCAPED as u64, &*"y".repeat(MAX_CHUNK_ESCAPED))
        );
        // The follower restarted: it holds nothing, so it starts over.
        assert!(t.on_ack(0));
        assert_eq!(t.chunk().0, 0);
        assert!(!t.on_ack(t.total()), "all held: wait for the installation");
        assert_eq!(
            t.chunk().0,
            0,
            "its acknowledgement lost: a chunk asks again"
        );
    }
}
