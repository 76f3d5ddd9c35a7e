//! Raft-style log replication. The leader tracks, per follower, a [`progress::Progress`]
//! (probe or replicate, a bounded window of Appends in flight; see [`leader`]) and commits the
//! highest index a quorum holds whose entry is from its own epoch. A follower accepts entries
//! only when the entry before them matches (log matching), truncating a conflicting suffix.

pub mod inflights;
pub mod leader;
pub mod progress;
pub mod snapshot_send;

pub use leader::LeaderState;

use super::durable::LogEntry;
use super::log::Log;

/// At most this many entries per Append.
pub const MAX_BATCH_ENTRIES: usize = 64;
/// About this many bytes of entries per Append (well below the datagram limit).
pub const MAX_BATCH_BYTES: usize = 40 * 1024;

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
    let (start, start_epoch) = log.start();
    if prev_index < start {
        // The batch begins inside the compacted prefix: those entries are committed and so
        // the leader's too. Check the rest from the compaction point.
        let skip = (start - prev_index) as usize;
        let contiguous = entries
            .iter()
            .enumerate()
            .take_while(|(o, e)| e.index == prev_index + 1 + *o as u64)
            .count();
        if contiguous <= skip {
            return AppendOutcome::Accepted {
                match_index: prev_index + contiguous as u64,
                truncated_from: None,
                appended: Vec::new(),
            };
        }
        return follower_append(log, start, start_epoch, &entries[skip..], protected);
    }
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
            origin: None,
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
    fn an_append_reaching_into_the_compacted_prefix_checks_from_the_compaction_point() {
        let mut log = log_of(&[1, 1, 2, 2]);
        log.compact_to(3, 2);
        let batch = [e(2, 1), e(3, 2), e(4, 2), e(5, 3)];
        let out = follower_append(&mut log, 1, 1, &batch, 3);
        assert_eq!(
            out,
            AppendOutcome::Accepted {
                match_index: 5,
                truncated_from: None,
                appended: vec![e(5, 3)]
            }
        );
        // Entirely inside it: nothing to do, and true up to where it reaches.
        let out = follower_append(&mut log, 1, 1, &batch[..1], 3);
        assert!(matches!(
            out,
            AppendOutcome::Accepted { match_index: 2, .. }
        ));
        assert_eq!(log.last_index(), 5);
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
