//! Safety checks run on every simulator step: at most one leader per epoch; committed
//! entries never change or disappear (every node's applied prefix equals one global record);
//! acknowledged messages point at their committed entry; one total order per room.

use crate::core::{LogEntry, Millis, Node};
use crate::events::{Event, EventRecord, Target};
use crate::ids::NodeId;
use crate::protocol::InboxMessage;
use std::collections::{BTreeMap, BTreeSet};

/// A broken property.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    pub kind: &'static str,
    pub detail: String,
    pub at: Millis,
}

/// A message the cluster acknowledged to a client.
#[derive(Clone, Debug, PartialEq)]
pub struct AckedMsg {
    pub from: String,
    pub id: String,
    /// The sender's sequence number (its n-th message).
    pub number: u64,
    pub target: Target,
    pub index: u64,
    pub duplicate: bool,
}

#[derive(Default)]
pub struct Checker {
    pub violations: Vec<Violation>,
    /// epoch -> the node that won it.
    pub leaders: BTreeMap<u64, NodeId>,
    /// Every `leader_elected` a node emitted about itself: (time, epoch, leader).
    pub elections: Vec<(Millis, u64, NodeId)>,
    /// The committed log as first applied anywhere (index - 1).
    committed: Vec<LogEntry>,
    /// Per node: applied entries already compared with `committed`.
    checked: Vec<u64>,
    /// Users whose login was acknowledged (valid recipients).
    pub registered: BTreeSet<String>,
    pub acks: Vec<AckedMsg>,
    /// (room, room_seq) -> (sender, id): the one order every member must see.
    room_order: BTreeMap<(String, u64), (String, String)>,
}

impl Checker {
    pub fn new(nodes: usize) -> Checker {
        Checker {
            checked: vec![0; nodes],
            ..Checker::default()
        }
    }

    pub fn violation(&mut self, at: Millis, kind: &'static str, detail: String) {
        // The first few are what matters; a broken run can produce thousands.
        if self.violations.len() < 20 {
            self.violations.push(Violation { kind, detail, at });
        }
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    pub fn committed_entry(&self, index: u64) -> Option<&LogEntry> {
        index
            .checked_sub(1)
            .and_then(|i| self.committed.get(i as usize))
    }

    pub fn node_restarted(&mut self, i: usize) {
        if let Some(c) = self.checked.get_mut(i) {
            *c = 0;
        }
    }

    pub fn on_event(&mut self, now: Millis, _node: usize, rec: &EventRecord) {
        if let Event::LeaderElected { leader, .. } = &rec.event {
            if *leader == rec.node {
                self.elections.push((now, rec.epoch, *leader));
                match self.leaders.get(&rec.epoch) {
                    Some(prev) if prev != leader => self.violation(
                        now,
                        "two_leaders_in_epoch",
                        format!("epoch {}: nodes {prev} and {leader}", rec.epoch),
                    ),
                    _ => {
                        self.leaders.insert(rec.epoch, *leader);
                    }
                }
            }
        }
    }

    /// State machine safety: each node's applied prefix must equal the global record.
    pub fn check_nodes(&mut self, now: Millis, nodes: &[Option<&Node>]) {
        for (i, node) in nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            let applied = node.applied_index();
            let from = self.checked[i] + 1;
            for index in from..=applied {
                let Some(entry) = node.log_entry(index) else {
                    self.violation(
                        now,
                        "applied_entry_missing",
                        format!("node {} applied {index} but has no such entry", node.id()),
                    );
                    break;
                };
                match self.committed_entry(index) {
                    Some(known) if known != entry => {
                        let detail = format!(
                            "index {index}: node {} applied {:?}, first applied was {:?}",
                            node.id(),
                            entry,
                            known
                        );
                        self.violation(now, "committed_entry_changed", detail);
                    }
                    Some(_) => {}
                    None => self.committed.push(entry.clone()),
                }
            }
            self.checked[i] = applied;
        }
    }

    /// An acknowledgement must name a committed entry holding that very message.
    pub fn acked(&mut self, now: Millis, msg: &AckedMsg) {
        let matches = self
            .committed_entry(msg.index)
            .and_then(|e| e.op.message().map(|(f, i, _)| f == msg.from && i == msg.id))
            .unwrap_or(false);
        if !matches {
            self.violation(
                now,
                "ack_without_commit",
                format!(
                    "{}/{} acknowledged at index {} which does not hold it",
                    msg.from, msg.id, msg.index
                ),
            );
        }
        self.acks.push(msg.clone());
    }

    /// Every member of a room must see the same message at each room position.
    pub fn room_message(&mut self, now: Millis, m: &InboxMessage) {
        let (Some(room), Some(seq)) = (&m.room, m.room_seq) else {
            return;
        };
        let key = (room.clone(), seq);
        let val = (m.from.clone(), m.id.clone());
        match self.room_order.get(&key) {
            Some(prev) if *prev != val => self.violation(
                now,
                "room_order_diverged",
                format!("{room} #{seq}: {prev:?} and {val:?}"),
            ),
            Some(_) => {}
            None => {
                self.room_order.insert(key, val);
            }
        }
    }
}
