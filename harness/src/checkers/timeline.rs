//! The fault state over time: the shared fault model ([`crate::faults`]) after each fault
//! record, so a checker can ask who was up, frozen or cut off at any instant — to tell a
//! justified detection from a false suspicion, a live node from a frozen one, and whether a
//! quorum could elect at all.

use crate::faults::{self, Faults};
use crate::history::{FaultAction, FaultRecord, Record};
use chat_node::ids::NodeId;
use std::collections::BTreeSet;

/// `[start, end)` in Unix ms; `end == u64::MAX` while not repaired.
pub type Interval = (u64, u64);

#[derive(Debug, Default)]
pub struct Timeline {
    /// Every node named by a fault or an event.
    pub nodes: BTreeSet<NodeId>,
    /// The fault records in time order.
    pub faults: Vec<FaultRecord>,
    /// `after[k]`: the fault state once `faults[k]` (and every earlier one) applied.
    after: Vec<Faults>,
    /// Before any fault.
    initial: Faults,
    /// `(from, to)` links lossy, late or slowed (loss, delay, bandwidth) until the heal:
    /// they still carry traffic, so no detection is required, and a suspicion there is the
    /// link's doing, not false.
    degraded: Vec<((NodeId, NodeId), Interval)>,
    /// `(from, to)` links a `delay` fault held back, by at most this many ms (delay plus
    /// jitter), until the heal: a heartbeat sent before a cut still arrives that much later.
    delayed: Vec<((NodeId, NodeId), Interval, u64)>,
}

// `after`/`before` are for the checkers that judge each fault against the state it changed.
#[allow(dead_code)]
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
                    t.faults.push(f.clone());
                }
                _ => {}
            }
        }
        t.initial = Faults::new(t.nodes.iter().copied());
        let all: Vec<NodeId> = t.nodes.iter().copied().collect();
        for f in &t.faults {
            let links: Vec<(NodeId, NodeId)> = match f.action {
                FaultAction::Loss => f
                    .nodes
                    .iter()
                    .flat_map(|x| f.to.iter().map(move |y| (*x, *y)))
                    .collect(),
                FaultAction::Delay | FaultAction::Duplicate | FaultAction::Bandwidth => f
                    .nodes
                    .iter()
                    .flat_map(|y| all.iter().map(move |x| (*x, *y)))
                    .collect(),
                FaultAction::Heal => {
                    for (_, iv) in t.degraded.iter_mut() {
                        if iv.1 == u64::MAX {
                            iv.1 = f.ts_ms;
                        }
                    }
                    for (_, iv, _) in t.delayed.iter_mut() {
                        if iv.1 == u64::MAX {
                            iv.1 = f.ts_ms;
                        }
                    }
                    vec![]
                }
                _ => vec![],
            };
            let held_back = match (&f.action, &f.link) {
                (FaultAction::Delay, Some(p)) => p.ms.unwrap_or(0) + p.jitter_ms.unwrap_or(0),
                _ => 0,
            };
            for l in links.into_iter().filter(|(x, y)| x != y) {
                t.degraded.push((l, (f.ts_ms, u64::MAX)));
                if held_back > 0 {
                    t.delayed.push((l, (f.ts_ms, u64::MAX), held_back));
                }
            }
        }
        let mut state = t.initial.clone();
        for f in &t.faults {
            faults::apply(&mut state, f);
            t.after.push(state.clone());
        }
        t
    }

    /// The state once fault `k` applied.
    pub fn after(&self, k: usize) -> &Faults {
        &self.after[k]
    }

    /// The state just before fault `k`.
    pub fn before(&self, k: usize) -> &Faults {
        if k == 0 {
            &self.initial
        } else {
            &self.after[k - 1]
        }
    }

    /// The state at `ts` (faults stamped at `ts` included).
    pub fn at(&self, ts: u64) -> &Faults {
        match self.faults.partition_point(|f| f.ts_ms <= ts) {
            0 => &self.initial,
            n => &self.after[n - 1],
        }
    }

    /// The instants at which the state may change after `from`, each with the state from
    /// then on: `(from, state at from)` first, then every later fault.
    pub fn changes_from(&self, from: u64) -> impl Iterator<Item = (u64, &Faults)> {
        let first = self.faults.partition_point(|f| f.ts_ms <= from);
        std::iter::once((from, self.at(from)))
            .chain((first..self.faults.len()).map(move |k| (self.faults[k].ts_ms, &self.after[k])))
    }

    pub fn is_down(&self, n: NodeId, ts: u64) -> bool {
        !self.at(ts).is_up(n)
    }

    /// Live during the whole of `[from, to]`.
    pub fn live_throughout(&self, n: NodeId, from: u64, to: u64) -> bool {
        self.changes_from(from)
            .take_while(|(ts, _)| *ts <= to)
            .all(|(_, s)| s.is_live(n))
    }

    /// When `observer` could not hear `peer`: either of them down or frozen, or the link
    /// from the peer to the observer cut.
    pub fn silences(&self, observer: NodeId, peer: NodeId) -> Vec<Interval> {
        let mut out: Vec<Interval> = Vec::new();
        let mut open: Option<u64> = None;
        for (ts, s) in self.changes_from(0) {
            let silent = !s.hears(observer, peer);
            match (silent, open) {
                (true, None) => open = Some(ts),
                (false, Some(a)) => {
                    out.push((a, ts));
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(a) = open {
            out.push((a, u64::MAX));
        }
        out
    }

    /// Whether the link from `peer` to `observer` was degraded (loss, delay, bandwidth) at
    /// some time in `[ts - lookback, ts]`.
    pub fn degraded_near(&self, observer: NodeId, peer: NodeId, ts: u64, lookback: u64) -> bool {
        let from = ts.saturating_sub(lookback);
        self.degraded
            .iter()
            .any(|(l, (a, b))| *l == (peer, observer) && *a <= ts && from < *b)
    }

    /// The most a `delay` fault in force at `ts` holds back datagrams from `peer` to
    /// `observer` (0 when none is): the last heartbeat sent before a fault may still arrive
    /// that much later, and a silence counts from its arrival.
    pub fn held_back_at(&self, observer: NodeId, peer: NodeId, ts: u64) -> u64 {
        self.delayed
            .iter()
            .filter(|(l, (a, b), _)| *l == (peer, observer) && *a <= ts && ts < *b)
            .map(|(_, _, ms)| *ms)
            .max()
            .unwrap_or(0)
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
mod link_tests {
    use super::*;
    use crate::checkers::testkit::fault;

    #[test]
    fn link_faults_degrade_links_without_silencing_them_until_the_heal() {
        let mut loss = fault(100, FaultAction::Loss, &[1]);
        if let Record::Fault(f) = &mut loss {
            f.to = vec![NodeId(2)];
        }
        let t = Timeline::build(&[
            fault(0, FaultAction::Start, &[1, 2, 3]),
            loss,
            fault(200, FaultAction::Delay, &[3]),
            fault(400, FaultAction::Heal, &[]),
        ]);
        assert!(t.degraded_near(NodeId(2), NodeId(1), 150, 10));
        assert!(
            !t.degraded_near(NodeId(1), NodeId(2), 150, 10),
            "loss is one-way"
        );
        assert!(
            t.degraded_near(NodeId(3), NodeId(1), 300, 10),
            "a delay slows all into 3"
        );
        assert!(
            !t.degraded_near(NodeId(2), NodeId(1), 1000, 100),
            "healed at 400"
        );
        assert!(
            t.silences(NodeId(2), NodeId(1)).is_empty(),
            "nothing is silenced"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::{fault, partition};
    use crate::history::FaultAction;

    #[test]
    fn tracks_down_paused_and_blocked_intervals() {
        let t = Timeline::build(&[
            fault(0, FaultAction::Start, &[1, 2, 3]),
            fault(100, FaultAction::Kill, &[1]),
            fault(200, FaultAction::Restart, &[1]),
            fault(250, FaultAction::Pause, &[2]),
            partition(300, &[&[1, 2], &[3]]),
            fault(400, FaultAction::Heal, &[]),
        ]);
        assert!(t.is_down(NodeId(1), 150) && !t.is_down(NodeId(1), 200));
        assert!(!t.live_throughout(NodeId(2), 1000, 1001));
        assert!(!t.live_throughout(NodeId(1), 0, 150));
        assert!(t.live_throughout(NodeId(3), 0, 5000));
        assert!(t.silence_near(NodeId(3), NodeId(1), 350, 0));
        assert!(!t.silence_near(NodeId(3), NodeId(1), 450, 10));
        assert!(t.silence_near(NodeId(3), NodeId(1), 450, 100));
    }

    #[test]
    fn a_partition_after_a_cut_keeps_the_cut() {
        let mut cut = fault(100, FaultAction::Cut, &[1]);
        if let Record::Fault(f) = &mut cut {
            f.to = vec![NodeId(2)];
        }
        let t = Timeline::build(&[
            fault(0, FaultAction::Start, &[1, 2, 3]),
            cut,
            partition(200, &[&[1, 2], &[3]]),
            fault(300, FaultAction::Heal, &[]),
        ]);
        assert_eq!(t.silences(NodeId(2), NodeId(1)), vec![(100, 300)]);
        assert_eq!(t.silences(NodeId(1), NodeId(2)), vec![]);
        assert!(!t.at(250).link_open(NodeId(1), NodeId(2)));
    }
}
