//! The bounded window of Appends a leader has sent to one follower and not yet seen
//! acknowledged (raft-rs `tracker/inflights.rs`). Each in-flight Append is remembered by the
//! last index it carried and its size; an acknowledgement of index `i` frees every Append up to
//! `i`. While the window is full the leader sends that follower nothing new, so a slow or dead
//! follower can hold at most [`MAX_INFLIGHT_MSGS`] datagrams and [`MAX_INFLIGHT_BYTES`] of
//! entries in the network and the socket buffer — never a growing stream.

use std::collections::VecDeque;

/// At most this many unacknowledged Appends per follower. One: what is proposed while an
/// Append is out goes in the next one (up to the batch limits), so batches grow with load.
/// Measured with `harness bench` (256 outstanding) once fsync left the event loop, whose stall
/// used to do that batching: 32 gave 1,105–1,649 acked/s at 1.9–2.9 leader datagrams per ack,
/// 4 gave 1,469 at 1.75, 1 gave 2,146 at 0.82 (the same loaded machine).
pub const MAX_INFLIGHT_MSGS: usize = 1;
/// At most about this many bytes of unacknowledged Appends per follower (one Append is always
/// allowed, so an entry bigger than this still moves).
pub const MAX_INFLIGHT_BYTES: usize = 128 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    /// `(last index carried, datagram bytes)`, oldest first; the indexes only grow.
    sent: VecDeque<(u64, usize)>,
    bytes: usize,
    max_msgs: usize,
    max_bytes: usize,
}

impl Default for Inflights {
    fn default() -> Self {
        Inflights::new(MAX_INFLIGHT_MSGS, MAX_INFLIGHT_BYTES)
    }
}

impl Inflights {
    pub fn new(max_msgs: usize, max_bytes: usize) -> Inflights {
        Inflights {
            sent: VecDeque::new(),
            bytes: 0,
            max_msgs: max_msgs.max(1),
            max_bytes,
        }
    }

    /// No further Append may be sent until something is acknowledged.
    pub fn full(&self) -> bool {
        self.sent.len() >= self.max_msgs || (!self.sent.is_empty() && self.bytes >= self.max_bytes)
    }

    /// Records an Append whose last entry is `last_index`.
    pub fn add(&mut self, last_index: u64, bytes: usize) {
        debug_assert!(self.sent.back().is_none_or(|(i, _)| *i <= last_index));
        self.sent.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Frees every Append whose entries are all at or below `index` (acknowledged).
    pub fn free_to(&mut self, index: u64) {
        while let Some(&(last, bytes)) = self.sent.front() {
            if last > index {
                break;
            }
            self.sent.pop_front();
            self.bytes -= bytes;
        }
    }

    pub fn reset(&mut self) {
        self.sent.clear();
        self.bytes = 0;
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_by_count_and_frees_up_to_the_acknowledged_index() {
        let mut w = Inflights::new(3, 1 << 20);
        w.add(5, 10);
        w.add(9, 10);
        assert!(!w.full());
        w.add(12, 10);
        assert!(w.full());
        w.free_to(8);
        assert_eq!((w.len(), w.bytes()), (2, 20));
        assert!(!w.full());
        w.free_to(4);
        assert_eq!(w.len(), 2, "an older acknowledgement frees nothing");
        w.free_to(100);
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
    }

    #[test]
    fn fills_by_bytes_but_always_admits_one() {
        let mut w = Inflights::new(10, 100);
        assert!(!w.full());
        w.add(1, 500);
        assert!(w.full(), "one big Append fills the window");
        w.free_to(1);
        w.add(2, 60);
        assert!(!w.full());
        w.add(3, 60);
        assert!(w.full());
        w.reset();
        assert!(w.is_empty() && !w.full());
    }
}
