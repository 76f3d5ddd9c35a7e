//! The runner's live view of the cluster, folded from the history so far: who runs, who
//! leads, who sees whom. Steps resolve their targets and poll their conditions against it.
//! (This is the runner's minimal fold; `observed` is the checkers' full one.)

use crate::history::{FaultAction, Record};
use chat_node::events::Event;
use chat_node::ids::Role;
use std::collections::{BTreeMap, BTreeSet};

/// What one node last showed.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    pub alive: bool,
    pub paused: bool,
    pub epoch: u64,
    pub role: Option<Role>,
    /// (leader, epoch, ts) from the node's latest `leader_elected`.
    pub leader: Option<(u64, u64, u64)>,
    /// The node's latest live view, with its ts.
    pub members: Option<(BTreeSet<u64>, u64)>,
    /// Peer -> ts of the latest `peer_down`/`peer_left` about it.
    pub down: BTreeMap<u64, u64>,
    /// ts of the latest change to a non-leader role.
    pub stepped_down_ts: Option<u64>,
    /// Peers this node has heard of since it (re)started: only those can it detect.
    pub known: BTreeSet<u64>,
    /// ts of the latest record about this node.
    pub last_ts: u64,
}

/// The whole cluster as the history shows it.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub nodes: BTreeMap<u64, NodeView>,
}

impl View {
    pub fn fold(ids: &[u64], records: &[Record]) -> View {
        let mut v = View::default();
        for &id in ids {
            v.nodes.insert(id, NodeView::default());
        }
        for r in records {
            v.apply(r);
        }
        v
    }

    fn apply(&mut self, r: &Record) {
        match r {
            Record::Fault(f) => {
                for n in &f.nodes {
                    let Some(node) = self.nodes.get_mut(&n.0) else {
                        continue;
                    };
                    match f.action {
                        FaultAction::Start | FaultAction::Restart => {
                            node.alive = true;
                            node.paused = false;
                            node.role = None;
                            node.leader = None;
                            node.members = None;
                            node.known.clear();
                        }
                        FaultAction::Kill | FaultAction::Stop => node.alive = false,
                        FaultAction::Pause => node.paused = true,
                        FaultAction::Resume => node.paused = false,
                        _ => {}
                    }
                }
            }
            Record::Node(e) => {
                let Some(node) = self.nodes.get_mut(&e.node.0) else {
                    return;
                };
                node.epoch = e.epoch;
                node.role = Some(e.role);
                node.last_ts = e.ts_ms;
                match &e.event {
                    Event::LeaderElected { leader, .. } => {
                        node.leader = Some((leader.0, e.epoch, e.ts_ms));
                    }
                    Event::ViewChanged { members } => {
                        node.members = Some((members.iter().map(|m| m.0).collect(), e.ts_ms));
                    }
                    Event::PeerDiscovered { peer, .. } => {
                        node.known.insert(peer.0);
                    }
                    Event::PeerDown { peer, .. } | Event::PeerLeft { peer } => {
                        node.down.insert(peer.0, e.ts_ms);
                    }
                    Event::RoleChanged { to, .. } if *to != Role::Leader => {
                        node.stepped_down_ts = Some(e.ts_ms);
                    }
                    Event::Stopping { .. } => node.alive = false,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Running, unpaused nodes.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.alive && !n.paused)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The live node that says it leads in the highest epoch.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.alive && !n.paused && n.role == Some(Role::Leader))
            .max_by_key(|(id, n)| (n.epoch, **id))
            .map(|(id, _)| *id)
    }

    /// Live nodes that follow `leader` in its current epoch (the leader included).
    pub fn supporters(&self, leader: u64) -> Vec<u64> {
        let Some(epoch) = self.nodes.get(&leader).map(|n| n.epoch) else {
            return Vec::new();
        };
        self.live()
            .into_iter()
            .filter(|id| {
                *id == leader
                    || self.nodes[id]
                        .leader
                        .is_some_and(|(l, e, _)| l == leader && e == epoch)
            })
            .collect()
    }

    /// ts at which `leader` was established (its own `leader_elected`).
    pub fn leader_since(&self, leader: u64) -> u64 {
        self.nodes
            .get(&leader)
            .and_then(|n| n.leader.map(|(_, _, ts)| ts))
            .unwrap_or(0)
    }

    /// The next node id after `leader` on the ring of live nodes.
    pub fn ring_successor(&self, leader: u64) -> Option<u64> {
        let live = self.live();
        live.iter()
            .find(|id| **id > leader)
            .or_else(|| live.iter().find(|id| **id != leader))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::FaultRecord;
    use chat_node::events::{Credentials, EventRecord};
    use chat_node::ids::NodeId;

    fn ev(node: u64, ts: u64, epoch: u64, role: Role, event: Event) -> Record {
        Record::Node(EventRecord {
            v: 1,
            ts_ms: ts,
            node: NodeId(node),
            epoch,
            role,
            event,
        })
    }

    fn elected(node: u64, leader: u64, ts: u64, epoch: u64) -> Record {
        let role = if node == leader {
            Role::Leader
        } else {
            Role::Follower
        };
        let credentials = Credentials {
            last_log_epoch: 0,
            last_log_index: 0,
            id: NodeId(leader),
        };
        ev(
            node,
            ts,
            epoch,
            role,
            Event::LeaderElected {
                leader: NodeId(leader),
                votes: 2,
                credentials,
            },
        )
    }

    fn fault(action: FaultAction, nodes: &[u64], ts: u64) -> Record {
        Record::Fault(FaultRecord {
            ts_ms: ts,
            action,
            nodes: nodes.iter().map(|n| NodeId(*n)).collect(),
            step: None,
            groups: vec![],
            to: vec![],
        })
    }

    #[test]
    fn a_killed_leader_is_not_the_leader_and_its_successor_wraps() {
        let records = vec![
            fault(FaultAction::Start, &[1, 2, 3], 0),
            elected(3, 3, 10, 1),
            elected(1, 3, 11, 1),
            elected(2, 3, 12, 1),
        ];
        let v = View::fold(&[1, 2, 3], &records);
        assert_eq!(v.leader(), Some(3));
        assert_eq!(v.supporters(3), vec![1, 2, 3]);
        assert_eq!(v.ring_successor(3), Some(1));
        let mut more = records.clone();
        more.push(fault(FaultAction::Kill, &[3], 20));
        let v = View::fold(&[1, 2, 3], &more);
        assert_eq!(v.leader(), None);
        assert_eq!(v.live(), vec![1, 2]);
    }

    #[test]
    fn a_paused_old_leader_loses_to_a_newer_epoch() {
        let records = vec![
            fault(FaultAction::Start, &[1, 2, 3], 0),
            elected(3, 3, 10, 1),
            fault(FaultAction::Pause, &[3], 20),
            elected(2, 2, 30, 2),
            fault(FaultAction::Resume, &[3], 40),
        ];
        let v = View::fold(&[1, 2, 3], &records);
        assert_eq!(v.leader(), Some(2), "epoch 2 beats the zombie's epoch 1");
    }
}
