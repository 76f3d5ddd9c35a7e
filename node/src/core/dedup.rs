//! Which message ids a sender already committed, so that a retry is answered with the first
//! commit instead of being delivered again (exactly-once, docs/PROTOCOL.md send/post).
//!
//! Why a window: round 1 kept every id for all time. That table was most of the chat state,
//! so every snapshot cloned and JSON-encoded an ever longer list on the event loop (the
//! `harness bench` p99 of 310 ms), and with its copies it held about 100 MB of a leader's RSS
//! after 160k messages (267 MB, 161 MB with the window; the rest was the allocator, see
//! `runtime/memory.rs`). A retry only ever concerns a message whose acknowledgement the client
//! has not seen, so it is one of the sender's latest messages: the table keeps each sender's
//! last [`WINDOW`] ids. A client must not have more than [`WINDOW`] messages unacknowledged at
//! once; the protocol document says so.
//!
//! Deterministic (part of the replicated state machine): the window is trimmed only when the
//! sender's next id is inserted, in log order, so a replica that loads a snapshot and one that
//! applied the same entries hold the same table.

use std::collections::{BTreeMap, VecDeque};

/// Ids remembered per sender.
pub const WINDOW: usize = 4096;

/// Where the first commit of an id landed: its log index and, for a room post, its
/// `room_seq`.
pub type FirstCommit = (u64, Option<u64>);

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dedup {
    by_sender: BTreeMap<String, Recent>,
}

/// One sender's latest ids: a lookup table and their commit order (oldest first).
#[derive(Clone, Debug, Default, PartialEq)]
struct Recent {
    ids: BTreeMap<String, FirstCommit>,
    order: VecDeque<String>,
}

impl Recent {
    fn push(&mut self, id: String, first: FirstCommit) {
        self.ids.insert(id.clone(), first);
        self.order.push_back(id);
    }
}

impl Dedup {
    /// The first commit of `id` by `from`, if it is still remembered.
    pub fn get(&self, from: &str, id: &str) -> Option<FirstCommit> {
        self.by_sender.get(from)?.ids.get(id).copied()
    }

    /// Records the first commit of `id` by `from`, forgetting the sender's oldest ids beyond
    /// the window.
    pub fn insert(&mut self, from: &str, id: &str, first: FirstCommit) {
        if !self.by_sender.contains_key(from) {
            self.by_sender.insert(from.to_string(), Recent::default());
        }
        let recent = self.by_sender.get_mut(from).expect("inserted above");
        recent.push(id.to_string(), first);
        while recent.order.len() > WINDOW {
            if let Some(old) = recent.order.pop_front() {
                recent.ids.remove(&old);
            }
        }
    }

    /// Ids remembered, over all senders.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_sender.values().map(|r| r.ids.len()).sum()
    }

    /// Every remembered id as `(sender, id, index, room_seq)`, each sender's in commit order.
    fn rows(&self) -> impl Iterator<Item = (&String, &String, u64, Option<u64>)> {
        self.by_sender.iter().flat_map(|(from, r)| {
            r.order
                .iter()
                .filter_map(move |id| r.ids.get(id).map(|(ix, seq)| (from, id, *ix, *seq)))
        })
    }
}

/// In a snapshot the table is a list of `[sender, id, index, room_seq]` (the round-1 layout,
/// so older snapshots still load); each sender's order is rebuilt from the indexes.
impl serde::Serialize for Dedup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.rows())
    }
}

impl<'de> serde::Deserialize<'de> for Dedup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dedup, D::Error> {
        let mut rows = Vec::<(String, String, u64, Option<u64>)>::deserialize(d)?;
        rows.sort_by_key(|(_, _, index, _)| *index);
        let mut table = Dedup::default();
        for (from, id, index, seq) in rows {
            // Not `insert`: an older snapshot may hold more than the window, and is trimmed
            // at the sender's next message, exactly as on a replica that applied the entries.
            table
                .by_sender
                .entry(from)
                .or_default()
                .push(id, (index, seq));
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_keeps_its_last_window_of_ids_and_forgets_older_ones() {
        let mut d = Dedup::default();
        for i in 0..(WINDOW as u64 + 3) {
            d.insert("alice", &format!("a-{i}"), (i + 1, None));
        }
        d.insert("bob", "b-0", (99_999, Some(4)));
        assert_eq!(d.get("alice", "a-0"), None, "the oldest ids are forgotten");
        assert_eq!(d.get("alice", "a-2"), None);
        assert_eq!(d.get("alice", "a-3"), Some((4, None)));
        assert_eq!(
            d.get("alice", &format!("a-{}", WINDOW + 2)),
            Some((WINDOW as u64 + 3, None))
        );
        assert_eq!(
            d.get("bob", "b-0"),
            Some((99_999, Some(4))),
            "windows are per sender"
        );
        assert_eq!(d.len(), WINDOW + 1);
    }

    #[test]
    fn a_round_trip_keeps_the_order_so_both_copies_forget_the_same_id_next() {
        let mut d = Dedup::default();
        for i in 0..WINDOW as u64 {
            // Ids whose names sort in another order than their commits.
            d.insert("alice", &format!("{}", WINDOW as u64 - i), (i + 1, None));
        }
        let text = serde_json::to_string(&d).unwrap();
        let mut back: Dedup = serde_json::from_str(&text).unwrap();
        assert_eq!(back, d);
        d.insert("alice", "next", (WINDOW as u64 + 1, None));
        back.insert("alice", "next", (WINDOW as u64 + 1, None));
        assert_eq!(back, d);
        assert_eq!(
            d.get("alice", &WINDOW.to_string()),
            None,
            "the first commit went first"
        );
    }

    #[test]
    fn an_older_snapshot_beyond_the_window_is_trimmed_at_the_senders_next_message() {
        let rows: Vec<_> = (0..WINDOW as u64 + 10)
            .map(|i| ("alice".to_string(), format!("a-{i}"), i + 1, None::<u64>))
            .collect();
        let mut d: Dedup = serde_json::from_value(serde_json::json!(rows)).unwrap();
        assert_eq!(d.get("alice", "a-0"), Some((1, None)), "loaded whole");
        d.insert("alice", "new", (1_000_000, None));
        assert_eq!(d.get("alice", "a-10"), None);
        assert_eq!(d.get("alice", "a-11"), Some((12, None)));
        assert_eq!(d.len(), WINDOW);
    }
}
