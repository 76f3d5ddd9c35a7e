//! What a node keeps across a crash: its epoch, its vote and its log. The core emits
//! [`Persist`] records; the runtime appends them to a file off the event loop and
//! [`Restored::replay`]s them at start; the simulator keeps them in memory across a simulated
//! crash (losing what was not yet synced). [`Durability`] is the core's account of which
//! records are durable and what waits for them.

use crate::core::chat::ChatOp;
use crate::core::proposal::ProposalId;
use crate::core::snapshot::Snapshot;
use crate::core::Output;
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// One replicated log entry. Indexes start at 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub epoch: u64,
    pub op: ChatOp,
    /// Who proposed it, so that the server holding the client answers it when applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<ProposalId>,
}

/// A durable write, in the order the core emitted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "p", rename_all = "snake_case")]
pub enum Persist {
    /// The current epoch and the vote cast in it.
    HardState {
        epoch: u64,
        voted_for: Option<NodeId>,
    },
    /// Entries appended at the end of the log (indexes continue the log).
    Append { entries: Vec<LogEntry> },
    /// Remove every entry with `index >= from` (a conflicting suffix).
    TruncateFrom { from: u64 },
    /// Everything durable at once, replacing every record before it: the hard state, a
    /// snapshot, and the log after `log_start` (index, epoch). Written when the node takes or
    /// installs a snapshot; the runtime then rewrites the state file as this one record
    /// (so the file stays bounded), the simulator's disk likewise.
    Checkpoint {
        epoch: u64,
        voted_for: Option<NodeId>,
        snapshot: std::sync::Arc<Snapshot>,
        log_start: (u64, u64),
        entries: Vec<LogEntry>,
        /// The records already written imply this state (a snapshot the node took of its own
        /// applied log), so it counts as durable at once and the runtime may rewrite the file
        /// in the background; a restart before that replays the older records instead.
        /// False for an installed snapshot, whose state nothing on disk holds yet. Not
        /// stored: a checkpoint read back is simply the file's first record.
        #[serde(skip)]
        in_background: bool,
    },
}

impl Persist {
    /// Whether this record supersedes every record before it.
    pub fn is_checkpoint(&self) -> bool {
        matches!(self, Persist::Checkpoint { .. })
    }
}

/// The durable state rebuilt from a sequence of [`Persist`] records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    pub epoch: u64,
    pub voted_for: Option<NodeId>,
    /// The latest snapshot, if any: the node starts from its state.
    pub snapshot: Option<Snapshot>,
    /// The log starts after this (index, epoch) ((0, 0): at the beginning).
    pub log_start: (u64, u64),
    /// The log after `log_start`.
    pub log: Vec<LogEntry>,
}

impl Restored {
    /// Applies one record.
    pub fn apply(&mut self, p: &Persist) {
        match p {
            Persist::HardState { epoch, voted_for } => {
                self.epoch = *epoch;
                self.voted_for = *voted_for;
            }
            Persist::Append { entries } => {
                for e in entries {
                    // Appends always continue the log; anything else means the writer and the
                    // reader disagree, and keeping the log contiguous is the safe choice.
                    if e.index == self.last_index() + 1 {
                        self.log.push(e.clone());
                    }
                }
            }
            Persist::TruncateFrom { from } => {
                let keep = from.saturating_sub(1).saturating_sub(self.log_start.0) as usize;
                self.log.truncate(keep.min(self.log.len()));
            }
            Persist::Checkpoint {
                epoch,
                voted_for,
                snapshot,
                log_start,
                entries,
                ..
            } => {
                *self = Restored {
                    epoch: *epoch,
                    voted_for: *voted_for,
                    snapshot: Some((**snapshot).clone()),
                    log_start: *log_start,
                    log: Vec::new(),
                };
                self.apply(&Persist::Append {
                    entries: entries.clone(),
                });
            }
        }
    }

    /// The index of the last entry held.
    pub fn last_index(&self) -> u64 {
        self.log_start.0 + self.log.len() as u64
    }

    /// Rebuilds the state from records in write order.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a Persist>) -> Restored {
        let mut r = Restored::default();
        for p in records {
            r.apply(p);
        }
        r
    }
}

/// Which of the node's [`Persist`] records the driver has made durable, and the outputs that
/// wait for them. The node numbers its records 1, 2, … (per start); the driver writes them in
/// that order, off the event loop, and reports [`crate::core::Input::Persisted`] `{ upto }`
/// when the first `upto` are durable.
///
/// What waits (the node decides: `Node::durable_before`): an acknowledgement of entries waits
/// for every record before it, a vote or a candidacy for the latest hard state. A leader's
/// own Appends and heartbeats do not wait for its log: it
/// counts itself towards a quorum only once its log is durable (Raft thesis §10.2.1), so
/// writing to disk overlaps the followers' writes and never delays a heartbeat.
#[derive(Clone, Debug, Default)]
pub struct Durability {
    /// Records handed to the driver, and how many of them are durable.
    written: u64,
    durable: u64,
    /// The latest `HardState` record.
    hard_state: u64,
    /// For records not yet durable that change the log: where the log ends once that record
    /// is durable (an index no higher than the in-memory log's at any time since).
    pending_log: VecDeque<(u64, u64)>,
    /// The log is durable up to here.
    log_durable: u64,
    /// Outputs waiting for record `.0` to be durable, in the order they were produced.
    held: Vec<(u64, Output)>,
}

impl Durability {
    /// A node restored with `log_len` durable entries.
    pub fn new(log_len: u64) -> Durability {
        Durability {
            log_durable: log_len,
            ..Durability::default()
        }
    }

    /// Numbers `record` (emitted now) and returns its output. `log_last` is where the
    /// in-memory log ends with it applied.
    pub fn record(&mut self, record: Persist, log_last: u64) -> Output {
        self.written += 1;
        let seq = self.written;
        match &record {
            Persist::HardState { .. } => self.hard_state = seq,
            // A checkpoint holds the hard state and the whole log too.
            Persist::Checkpoint { .. } => {
                self.hard_state = seq;
                self.pending_log.push_back((seq, log_last));
            }
            Persist::Append { .. } => self.pending_log.push_back((seq, log_last)),
            Persist::TruncateFrom { from } => {
                // What earlier records will have made durable is cut back too.
                let keep = from.saturating_sub(1);
                self.log_durable = self.log_durable.min(keep);
                for (_, end) in self.pending_log.iter_mut() {
                    *end = (*end).min(keep);
                }
                self.pending_log.push_back((seq, keep));
            }
        }
        Output::Persist(record)
    }

    /// The record a message revealing the epoch or the vote waits for.
    pub fn hard_state(&self) -> u64 {
        self.hard_state
    }

    /// Whether record `seq` is durable.
    pub fn is_durable(&self, seq: u64) -> bool {
        seq <= self.durable
    }

    /// The record that makes everything emitted so far durable.
    pub fn everything(&self) -> u64 {
        self.written
    }

    /// Sends `output` now when record `after` is durable, otherwise holds it.
    pub fn send_after(&mut self, after: u64, output: Output, out: &mut Vec<Output>) {
        if after <= self.durable {
            out.push(output);
        } else {
            self.held.push((after, output));
        }
    }

    /// The driver made the first `upto` records durable: releases what waited for them (in
    /// order). A report beyond what was written is capped (it cannot be about later records).
    pub fn persisted(&mut self, upto: u64, out: &mut Vec<Output>) {
        let upto = upto.min(self.written);
        if upto <= self.durable {
            return;
        }
        self.durable = upto;
        while let Some(&(seq, end)) = self.pending_log.front() {
            if seq > upto {
                break;
            }
            self.log_durable = end;
            self.pending_log.pop_front();
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(s, _)| *s <= upto);
        self.held = waiting;
        out.extend(ready.into_iter().map(|(_, o)| o));
    }

    /// The log is durable up to this index.
    pub fn log_durable(&self) -> u64 {
        self.log_durable
    }

    /// Whether every record emitted is durable.
    pub fn all_durable(&self) -> bool {
        self.durable == self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(index: u64) -> Persist {
        Persist::Append {
            entries: vec![LogEntry {
                index,
                epoch: 1,
                op: ChatOp::NewEpoch,
                origin: None,
            }],
        }
    }

    fn send(n: u8) -> Output {
        Output::Multicast { bytes: vec![n] }
    }

    fn sent(out: &[Output]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| match o {
                Output::Multicast { bytes } => Some(bytes[0]),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn outputs_wait_for_the_record_they_need_and_leave_in_order() {
        let mut d = Durability::new(0);
        let mut out = Vec::new();
        d.send_after(d.everything(), send(0), &mut out);
        assert_eq!(sent(&out), [0], "nothing written: nothing to wait for");
        d.record(
            Persist::HardState {
                epoch: 1,
                voted_for: None,
            },
            0,
        );
        d.record(append(1), 1);
        let mut out = Vec::new();
        d.send_after(d.hard_state(), send(1), &mut out);
        d.send_after(d.everything(), send(2), &mut out);
        d.send_after(d.hard_state(), send(3), &mut out);
        assert!(out.is_empty());
        d.persisted(1, &mut out);
        assert_eq!(
            sent(&out),
            [1, 3],
            "the hard state is durable, the entry not yet"
        );
        assert_eq!(d.log_durable(), 0);
        let mut out = Vec::new();
        d.persisted(7, &mut out);
        assert_eq!(sent(&out), [2]);
        assert_eq!(d.log_durable(), 1);
        assert!(d.all_durable(), "a report past what was written is capped");
    }

    #[test]
    fn a_truncation_cuts_back_what_earlier_records_make_durable() {
        let mut d = Durability::new(10);
        d.record(append(11), 11);
        d.record(Persist::TruncateFrom { from: 8 }, 7);
        assert_eq!(d.log_durable(), 7, "8..10 are gone from memory at once");
        d.record(append(8), 8);
        let mut out = Vec::new();
        d.persisted(1, &mut out);
        assert_eq!(d.log_durable(), 7, "the old 11 is not the new log's");
        d.persisted(2, &mut out);
        assert_eq!(d.log_durable(), 7);
        d.persisted(3, &mut out);
        assert_eq!(d.log_durable(), 8);
    }
}
