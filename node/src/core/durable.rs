//! What a node keeps across a crash: its epoch, its vote and its log. The core emits
//! [`Persist`] records; the runtime appends them to a file and [`Restored::replay`]s them at
//! start; the simulator keeps them in memory across a simulated crash.

use crate::core::chat::ChatOp;
use crate::core::proposal::ProposalId;
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

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
}

/// The durable state rebuilt from a sequence of [`Persist`] records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Restored {
    pub epoch: u64,
    pub voted_for: Option<NodeId>,
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
                    if e.index == self.log.len() as u64 + 1 {
                        self.log.push(e.clone());
                    }
                }
            }
            Persist::TruncateFrom { from } => {
                let keep = from.saturating_sub(1) as usize;
                self.log.truncate(keep.min(self.log.len()));
            }
        }
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
