//! When each node, and each link, was broken by the nemesis: the intervals checkers use to
//! tell a justified detection from a false suspicion, and a live node from a frozen one.

use crate::history::{FaultAction, FaultRecord, Record};
use chat_node::ids::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// `[start, end)` in Unix ms; `end == u64::MAX` while not repaired.
pub type Interval = (u64, u64);

#[derive(Debug, Default)]
pub struct Timeline {
    /// Killed or stopped, until restarted.
    pub down: BTreeMap<NodeId, Vec<Interval>>,
    /// Paused, until resumed.
    pub paused: BTreeMap<NodeId, Vec<Interval>>,
    /// Packets from `.0` do not reach `.1` (partition, cut, isolate), until healed.
    pub blocked: BTreeMap<(NodeId, NodeId), Vec<Interval>>,
    /// Every node named by a fault or an event.
    pub nodes: BTreeSet<NodeId>,
    /// The fault records in time order.
    pub faults: Vec<FaultRecord>,
}

fn open(map: &mut BTreeMap<NodeId, Vec<Interval>>, id: NodeId, ts: u64) {
    let v = map.entry(id).or_default();
    if v.last().is_none_or(|(_, e)| *e != u64::MAX) {
        v.push((ts, u64::MAX));
    }
}

fn close<K: Ord + Copy>(map: &mut BTreeMap<K, Vec<Interval>>, id: K, ts: u64) {
    if let Some(v) = map.get_mut(&id) {
        if let Some(last) = v.last_mut() {
            if last.1 == u64::MAX {
                last.1 = ts;
            }
        }
    }
}

impl Timeline {
    /// Builds the timeline from records sorted by time.
    pub fn build(records: &[Record]) -> Timeline {
        let mut t = Timeline::default();
        for r in records {
            match r {
                Record::Node(ev) => {
                    t.nodes.insert(ev.node);
                }
                Record::Fault(f) => {
                    t.nodes.extend(f.nodes.iter().copied());
                    t.nodes.extend(f.to.iter().copied());
                    t.nodes.extend(f.groups.iter().flatten().copied());
                    t.apply(f);
                    t.faults.push(f.clone());
                }
                _ => {}
            }
        }
        t
    }

    fn block(&mut self, from: NodeId, to: NodeId, ts: u64) {
        let v = self.blocked.entry((from, to)).or_default();
        if v.last().is_none_or(|(_, e)| *e != u64::MAX) {
            v.push((ts, u64::MAX));
        }
    }

    fn apply(&mut self, f: &FaultRecord) {
        let ts = f.ts_ms;
        match f.action {
            // A degraded link still carries traffic: nothing is down or blocked.
            FaultAction::Start
            | FaultAction::Loss
            | FaultAction::Delay
            | FaultAction::Bandwidth => {}
            FaultAction::Kill | FaultAction::Stop => {
                for n in &f.nodes {
                    close(&mut self.paused, *n, ts);
                    open(&mut self.down, *n, ts);
                }
            }
            FaultAction::Restart => {
                for n in &f.nodes {
                    close(&mut self.paused, *n, ts);
                    close(&mut self.down, *n, ts);
                }
            }
            FaultAction::Pause => {
                for n in &f.nodes {
                    open(&mut self.paused, *n, ts);
                }
            }
            FaultAction::Resume => {
                for n in &f.nodes {
                    close(&mut self.paused, *n, ts);
                }
            }
            FaultAction::Partition => {
                for (i, a) in f.groups.iter().enumerate() {
                    for (j, b) in f.groups.iter().enumerate() {
                        if i != j {
                            for x in a {
                                for y in b {
                                    self.block(*x, *y, ts);
                                }
                            }
                        }
                    }
                }
            }
            FaultAction::Cut => {
                for x in &f.nodes {
                    for y in &f.to {
                        self.block(*x, *y, ts);
                    }
                }
            }
            FaultAction::Isolate => {
                let all: Vec<NodeId> = self.nodes.iter().copied().collect();
                for x in &f.nodes {
                    for y in &all {
                        if x != y {
                            self.block(*x, *y, ts);
                            self.block(*y, *x, ts);
                        }
                    }
                }
            }
            FaultAction::Heal => {
                let keys: Vec<_> = self.blocked.keys().copied().collect();
                for k in keys {
                    close(&mut self.blocked, k, ts);
                }
            }
        }
    }

    fn within(list: Option<&Vec<Interval>>, ts: u64) -> bool {
        list.is_some_and(|v| v.iter().any(|(a, b)| *a <= ts && ts < *b))
    }

    pub fn is_down(&self, n: NodeId, ts: u64) -> bool {
        Self::within(self.down.get(&n), ts)
    }

    /// Live during the whole of `[from, to]`.
    pub fn live_throughout(&self, n: NodeId, from: u64, to: u64) -> bool {
        let overlaps = |list: Option<&Vec<Interval>>| {
            list.is_some_and(|v| v.iter().any(|(a, b)| *a <= to && from < *b))
        };
        !overlaps(self.down.get(&n)) && !overlaps(self.paused.get(&n))
    }

    /// When `observer` could not hear `peer`: the peer down or frozen, the observer frozen,
    /// or the link from the peer to the observer blocked.
    pub fn silences(&self, observer: NodeId, peer: NodeId) -> Vec<Interval> {
        let mut v: Vec<Interval> = Vec::new();
        for list in [
            self.down.get(&peer),
            self.paused.get(&peer),
            self.paused.get(&observer),
            self.blocked.get(&(peer, observer)),
        ]
        .into_iter()
        .flatten()
        {
            v.extend(list.iter().copied());
        }
        v.sort();
        v
    }

    /// Whether `observer` could not hear `peer` at some time in `[ts - lookback, ts]`.
    pub fn silence_near(&self, observer: NodeId, peer: NodeId, ts: u64, lookback: u64) -> bool {
        let from = ts.saturating_sub(lookback);
        self.silences(observer, peer)
            .iter()
            .any(|(a, b)| *a <= ts && from < *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(ts: u64, action: FaultAction, nodes: &[u64]) -> Record {
        Record::Fault(FaultRecord {
            ts_ms: ts,
            action,
            nodes: nodes.iter().map(|n| NodeId(*n)).collect(),
            step: None,
            groups: vec![],
            to: vec![],
            link: None,
        })
    }

    #[test]
    fn tracks_down_paused_and_blocked_intervals() {
        let mut part = fault(300, FaultAction::Partition, &[]);
        if let Record::Fault(f) = &mut part {
            f.groups = vec![vec![NodeId(1), NodeId(2)], vec![NodeId(3)]];
        }
        let t = Timeline::build(&[
            fault(0, FaultAction::Start, &[1, 2, 3]),
            fault(100, FaultAction::Kill, &[1]),
            fault(200, FaultAction::Restart, &[1]),
            fault(250, FaultAction::Pause, &[2]),
            part,
            fault(400, FaultAction::Heal, &[]),
        ]);
        assert!(t.is_down(NodeId(1), 150) && !t.is_down(NodeId(1), 200));
        assert!(!t.live_throughout(NodeId(2), 1000, 1001));
        assert!(!t.live_throughout(NodeId(1), 0, 150));
        assert!(t.silence_near(NodeId(3), NodeId(1), 350, 0));
        assert!(!t.silence_near(NodeId(3), NodeId(1), 450, 10));
        assert!(t.silence_near(NodeId(3), NodeId(1), 450, 100));
    }
}
