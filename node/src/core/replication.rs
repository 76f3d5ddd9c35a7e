//! Raft-style log replication. The leader tracks, per follower, the next index to send and
//! the highest index known to match its log, and commits the highest index a quorum holds
//! whose entry is from its own epoch. A follower accepts entries only when the entry before
//! them matches (log matching), truncating a conflicting suffix.

use super::durable::LogEntry;
use super::log::Log;
use crate::ids::NodeId;
use std::collections::BTreeMap;

/// At most this many entries per Append.
pub const MAX_BATCH_ENTRIES: usize = 64;
/// About this many bytes of entries per Append (well below the datagram limit).
pub const MAX_BATCH_BYTES: usize = 40 * 1024;

/// The leader's view of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub next: u64,
    pub matched: u64,
}

/// Leader-only replication state, created when the node wins an epoch.
#[derive(Clone, Debug, Default)]
pub struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
}

impl LeaderState {
    /// The follower's progress, starting optimistically right after the leader's log.
    pub fn progress(&mut self, peer: NodeId, last_index: u64) -> Progress {
        *self.progress.entry(peer).or_insert(Progress {
            next: last_index + 1,
            matched: 0,
        })
    }

    /// Applies an AppendAck. Acks may arrive late, twice or out of order: `matched` only
    /// grows, and `next` never drops to or below `matched`.
    pub fn on_ack(&mut self, peer: NodeId, success: bool, match_index: u64, last_index: u64) {
        let p = self.progress.entry(peer).or_insert(Progress {
            next: last_index + 1,
            matched: 0,
        });
        if success {
            p.matched = p.matched.max(match_index.min(last_index));
            p.next = p.next.max(p.matched + 1);
        } else if match_index < p.matched {
            // The follower no longer holds what it acknowledged (its disk lost a suffix, or
            // a rival leader of the same epoch overwrote it: only without a quorum). Start
            // over from its hint, or leader and follower would bounce the same Append forever.
            p.matched = match_index;
            p.next = match_index + 1;
        } else {
            p.next = (match_index + 1).min(p.next).max(p.matched + 1);
        }
    }

    /// The highest index held by `quorum` nodes (the leader holds `last_index`).
    pub fn quorum_index(&self, last_index: u64, quorum: usize) -> u64 {
        let mut held: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        held.push(last_index);
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(quorum.max(1) - 1).copied().unwrap_or(0)
    }
}

/// What a follower did with an Append.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendOutcome {
    /// The log now matches the leader's up to `match_index`. `truncated_from` and
    /// `appended` are the durable changes to persist, in that order.
    Accepted {
        match_index: u64,
        truncated_from: Option<u64>,
        appended: Vec<LogEntry>,
    },
    /// The entry before the batch does not match; the leader should retry after `hint`.
    Rejected { hint: u64 },
}

/// Applies an Append's entries to a follower's log. Entries up to `protected` (the commit
/// index, with a quorum) are never truncated: with one leader per epoch a committed entry
/// never conflicts, so a conflict there is refused rather than lose data. Without a quorum
/// (`--quorum none`) two leaders can commit conflicting entries; the node passes 0 so that
/// the merged cluster converges on the winner's log.
pub fn follower_append(
    log: &mut Log,
    prev_index: u64,
    prev_epoch: u64,
    entries: &[LogEntry],
    protected: u64,
) -> AppendOutcome {
    match log.epoch_at(prev_index) {
        None => {
            return AppendOutcome::Rejected {
                hint: log.last_index(),
            }
        }
        Some(e) if e != prev_epoch => {
            // Skip back over the whole conflicting epoch in one round trip.
            let mut hint = prev_index - 1;
            while hint > protected && log.epoch_at(hint) == Some(e) {
                hint -= 1;
            }
            return AppendOutcome::Rejected { hint };
        }
        Some(_) => {}
    }
    let mut truncated_from = None;
    let mut appended = Vec::new();
    for (offset, entry) in entries.iter().enumerate() {
        let index = prev_index + 1 + offset as u64;
        if entry.index != index {
            // A malformed batch: accept what matched so far.
            break;
        }
        match log.epoch_at(index) {
            Some(e) if e == entry.epoch => continue,
            Some(_) => {
                if index <= protected {
                    return AppendOutcome::Rejected { hint: protected };
                }
                log.truncate_from(index);
                truncated_from = Some(index);
                log.push(entry.clone());
                appended.push(entry.clone());
            }
            None => {
                log.push(entry.clone());
                appended.push(entry.clone());
            }
        }
    }
    let valid = entries
        .iter()
        .enumerate()
        .take_while(|(o, e)| e.index == prev_index + 1 + *o as u64)
        .count() as u64;
    AppendOutcome::Accepted {
        match_index: prev_index + valid,
        truncated_from,
        appended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::ChatOp;

    fn e(index: u64, epoch: u64) -> LogEntry {
        LogEntry {
            index,
            epoch,
            op: ChatOp::NewEpoch,
        }
    }

    fn log_of(epochs: &[u64]) -> Log {
        let mut log = Log::default();
        for (i, ep) in epochs.iter().enumerate() {
            log.push(e(i as u64 + 1, *ep));
        }
        log
    }

    #[test]
    fn commit_needs_a_quorum() {
        let mut l = LeaderState::default();
        l.progress(NodeId(2), 5);
        l.progress(NodeId(3), 5);
        assert_eq!(l.quorum_index(5, 2), 0);
        l.on_ack(NodeId(2), true, 4, 5);
        assert_eq!(l.quorum_index(5, 2), 4);
        assert_eq!(l.quorum_index(5, 3), 0);
        assert_eq!(l.quorum_index(5, 1), 5);
    }

    #[test]
    fn a_rejection_moves_next_back_but_not_below_what_matched() {
        let mut l = LeaderState::default();
        l.on_ack(NodeId(2), true, 4, 9);
        l.on_ack(NodeId(2), false, 7, 9);
        assert_eq!(
            l.progress(NodeId(2), 9),
            Progress {
                next: 8,
                matched: 4
            }
        );
        l.on_ack(NodeId(2), false, 5, 9);
        assert_eq!(
            l.progress(NodeId(2), 9),
            Progress {
                next: 6,
                matched: 4
            }
        );
    }

    #[test]
    fn a_follower_that_lost_entries_is_resent_from_its_hint() {
        let mut l = LeaderState::default();
        l.on_ack(NodeId(2), true, 6, 9);
        l.on_ack(NodeId(2), false, 2, 9);
        assert_eq!(
            l.progress(NodeId(2), 9),
            Progress {
                next: 3,
                matched: 2
            }
        );
    }

    #[test]
    fn follower_truncates_a_conflicting_suffix() {
        let mut log = log_of(&[1, 1, 2, 2]);
        let out = follower_append(&mut log, 2, 1, &[e(3, 3)], 2);
        assert_eq!(
            out,
            AppendOutcome::Accepted {
                match_index: 3,
                truncated_from: Some(3),
                appended: vec![e(3, 3)]
            }
        );
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.epoch_at(3), Some(3));
    }

    #[test]
    fn follower_rejects_a_gap_or_mismatch_with_a_hint() {
        let mut log = log_of(&[1, 2, 2]);
        assert_eq!(
            follower_append(&mut log, 5, 3, &[], 0),
            AppendOutcome::Rejected { hint: 3 }
        );
        assert_eq!(
            follower_append(&mut log, 3, 3, &[], 0),
            AppendOutcome::Rejected { hint: 1 }
        );
    }

    #[test]
    fn duplicate_appends_are_idempotent() {
        let mut log = log_of(&[1]);
        let batch = [e(2, 1), e(3, 1)];
        follower_append(&mut log, 1, 1, &batch, 0);
        let again = follower_append(&mut log, 1, 1, &batch, 0);
        assert_eq!(
            again,
            AppendOutcome::Accepted {
                match_index: 3,
                truncated_from: None,
                appended: vec![]
            }
        );
        // An older, shorter Append must not cut the log back.
        follower_append(&mut log, 1, 1, &batch[..1], 0);
        assert_eq!(log.last_index(), 3);
    }
}
