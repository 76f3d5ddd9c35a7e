//! Snapshots: the applied chat state at one log index, so that the log before it can be
//! dropped (memory and the data dir stay bounded) and a follower too far behind for the log
//! can be sent the state instead of the entries.
//!
//! A node snapshots every `--snapshot-every` entries, right after applying one, at indexes
//! fixed by its id ([`phase`]): deterministic, so a run replays, but not the same indexes on
//! every node. When all five nodes snapshotted at the same entry, their bursts of work (clone
//! and encode the state: 5.4 + 3.5 ms for 8 users after 200k messages) landed in the same few milliseconds on shared cores,
//! and the commit, which needs a majority, waited for all of them (`harness bench`: p99 141
//! against 26 ms without snapshots). Staggered, at most one node is busy at a time and a
//! majority goes on. The log keeps the entries after the **previous** snapshot, so a follower a
//! little behind still gets entries, not a whole state.
//!
//! On the wire a snapshot is its JSON text cut into chunks ([`chunk_at`]); the follower
//! assembles them in order ([`Incoming`]). Each chunk is an ordinary authenticated peer
//! frame; docs/PROTOCOL.md has the exact messages.

use super::chat::ChatState;
use serde::{Deserialize, Serialize};

/// Default of `--snapshot-every` (entries between two snapshots; 0: never).
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// At most this many bytes of a chunk's `data` once escaped in JSON: well below the
/// datagram limit with the frame and the other fields around it.
pub const MAX_CHUNK_ESCAPED: usize = 40 * 1024;

/// Largest snapshot a follower assembles (a bound on what a buggy leader can make it hold).
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// The state after applying every entry up to `index` (whose epoch is `epoch`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub index: u64,
    pub epoch: u64,
    pub chat: ChatState,
}

impl Snapshot {
    pub fn encode(&self) -> String {
        // Plain data: it always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn decode(text: &str) -> Result<Snapshot, String> {
        serde_json::from_str(text).map_err(|e| super::auth::short(e.to_string()))
    }
}

/// Where in each stretch of `every` entries node `id` snapshots: spread over the stretch
/// by a multiplicative hash of the id (Fibonacci hashing), so small consecutive ids land far
/// apart.
pub fn phase(id: u64, every: u64) -> u64 {
    if every == 0 {
        return 0;
    }
    let spread = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    spread % every
}

/// Whether a node whose [`phase`] is `phase` snapshots right after applying `index`.
pub fn due(index: u64, every: u64, phase: u64) -> bool {
    every > 0 && index > phase && index % every == phase
}

/// Bytes `c` takes inside a JSON string.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The chunk of `text` that starts at byte `offset` (a char boundary): as many chars as fit
/// in [`MAX_CHUNK_ESCAPED`] escaped bytes (at least one). Empty at or past the end.
pub fn chunk_at(text: &str, offset: usize) -> &str {
    let Some(rest) = text.get(offset..) else {
        return "";
    };
    let mut budget = 0;
    let mut end = 0;
    for (i, c) in rest.char_indices() {
        budget += escaped_len(c);
        if budget > MAX_CHUNK_ESCAPED && end > 0 {
            break;
        }
        end = i + c.len_utf8();
    }
    &rest[..end]
}

/// A snapshot being received, chunk by chunk, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Incoming {
    /// Which snapshot (leader's epoch, index) the bytes belong to.
    epoch: u64,
    index: u64,
    total: u64,
    text: String,
}

/// What one chunk did.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// Bytes held so far of this snapshot (the leader sends on from there).
    Partial(u64),
    /// The last chunk: the whole snapshot.
    Complete(Snapshot),
    /// The assembled text does not parse, or is too big: start over.
    Bad(String),
}

impl Incoming {
    /// Takes the chunk at `offset` of the snapshot at `index` that the leader of `epoch`
    /// sends, `total` bytes long. A chunk of another snapshot starts over (its bytes are
    /// taken only at offset 0); one not at the end of what is held is not taken.
    pub fn chunk(
        &mut self,
        epoch: u64,
        index: u64,
        total: u64,
        offset: u64,
        data: &str,
    ) -> Received {
        if total > MAX_SNAPSHOT_BYTES {
            return Received::Bad(format!("{total} bytes > {MAX_SNAPSHOT_BYTES}"));
        }
        if (self.epoch, self.index, self.total) != (epoch, index, total) {
            *self = Incoming {
                epoch,
                index,
                total,
                text: String::new(),
            };
        }
        if offset == self.text.len() as u64 && offset + data.len() as u64 <= total {
            self.text.push_str(data);
        }
        if (self.text.len() as u64) < total {
            return Received::Partial(self.text.len() as u64);
        }
        let text = std::mem::take(&mut self.text);
        *self = Incoming::default();
        match Snapshot::decode(&text) {
            Ok(s) if s.index == index => Received::Complete(s),
            Ok(s) => Received::Bad(format!("snapshot says index {}, not {index}", s.index)),
            Err(e) => Received::Bad(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::ChatOp;

    fn state() -> ChatState {
        let mut s = ChatState::default();
        for (i, u) in ["a", "b"].iter().enumerate() {
            s.apply(
                i as u64 + 1,
                &ChatOp::Login {
                    user: u.to_string(),
                    session: format!("s-{u}"),
                    password_hash: Some("$argon2id$x".into()),
                },
            );
        }
        for i in 0..300u64 {
            // Quotes, backslashes and control characters escape to more bytes.
            let text = format!("\"hi\\ {i}\u{1}{}", "x".repeat(i as usize));
            s.apply(
                10 + i,
                &ChatOp::Send {
                    from: "a".into(),
                    to: "b".into(),
                    id: format!("p-{i}"),
                    text,
                },
            );
        }
        s.apply(
            400,
            &ChatOp::Ack {
                user: "b".into(),
                upto: 100,
            },
        );
        s
    }

    #[test]
    fn a_snapshot_round_trips_with_its_dedup_table_and_dropped_messages() {
        let snap = Snapshot {
            index: 400,
            epoch: 3,
            chat: state(),
        };
        assert_eq!(
            snap.chat.inbox_after("b", 0).len(),
            200,
            "acknowledged dropped"
        );
        let mut back = Snapshot::decode(&snap.encode()).unwrap();
        assert_eq!(back, snap);
        // The restored dedup table still answers a retry with the first commit.
        let again = back.chat.apply(
            401,
            &ChatOp::Send {
                from: "a".into(),
                to: "b".into(),
                id: "p-5".into(),
                text: "retry".into(),
            },
        );
        let reply = again.reply.unwrap();
        assert!(reply.duplicate && again.deliveries.is_empty());
        assert_eq!(reply.index, Some(15));
        // useq numbering continues after the dropped messages.
        assert_eq!(back.chat.inbox_after("b", 0).next().unwrap().useq, 101);
    }

    #[test]
    fn chunks_fit_a_datagram_and_assemble_in_order_only() {
        let snap = Snapshot {
            index: 400,
            epoch: 3,
            chat: state(),
        };
        let text = snap.encode();
        let total = text.len() as u64;
        let mut chunks = Vec::new();
        let mut offset = 0;
        while offset < text.len() {
            let c = chunk_at(&text, offset);
            assert!(serde_json::to_string(c).unwrap().len() <= MAX_CHUNK_ESCAPED + 2);
            chunks.push((offset as u64, c));
            offset += c.len();
        }
        assert!(chunks.len() > 1, "the test needs several chunks");
        let mut inc = Incoming::default();
        // Out of order: not taken; the answer says where to go on from.
        assert_eq!(
            inc.chunk(5, 400, total, chunks[1].0, chunks[1].1),
            Received::Partial(0)
        );
        let mut last = None;
        for (offset, data) in &chunks {
            last = Some(inc.chunk(5, 400, total, *offset, data));
            // A duplicate is harmless.
            inc.chunk(5, 400, total, *offset, data);
        }
        assert_eq!(last, Some(Received::Complete(snap)));
        // Another snapshot starts over.
        inc.chunk(5, 400, total, 0, chunks[0].1);
        assert_eq!(
            inc.chunk(6, 800, total, chunks[1].0, chunks[1].1),
            Received::Partial(0)
        );
        assert!(matches!(inc.chunk(6, 800, 3, 0, "{x}"), Received::Bad(_)));
    }

    #[test]
    fn snapshots_are_due_once_every_stretch_at_the_nodes_phase() {
        assert!(!due(0, 10, 0) && !due(9, 10, 0) && due(10, 10, 0) && due(20, 10, 0));
        assert!(!due(3, 10, 3) && due(13, 10, 3) && !due(20, 10, 3));
        assert!(!due(10, 0, 0), "0: never");
    }

    #[test]
    fn five_consecutive_ids_snapshot_at_least_a_tenth_of_the_stretch_apart() {
        let every = DEFAULT_SNAPSHOT_EVERY;
        let mut phases: Vec<u64> = (1..=5).map(|id| phase(id, every)).collect();
        phases.sort();
        let gaps = phases
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([every - phases[4] + phases[0]]);
        for gap in gaps {
            assert!(gap >= every / 10, "{phases:?}");
        }
    }
}
