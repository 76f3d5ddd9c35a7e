//! The one model of fault state: which nodes are up, which are paused, and which ordered
//! pairs of nodes can talk. Pure and generic over the node key, so the simulator (node
//! indices), the harness's nemesis (what it applies), its observed state (what steps resolve
//! targets with) and its checkers (what they judge against) fold faults the same way — a
//! cut followed by a partition means the same thing to all of them.
//!
//! Rules, applied in order as faults arrive:
//! - `crash`/`stop` take a node down (and unpause it); `restart` brings it up again;
//! - `pause`/`resume` freeze and thaw an up node;
//! - `cut(from, to)`: packets from `from` no longer reach `to`;
//! - `partition(groups)`: nodes in different groups stop hearing each other, **added** to
//!   the cuts already in place; nodes named in no group keep their links;
//! - `isolate(n)`: `n` is cut from every other known node, both ways;
//! - `heal`: every cut goes; crashes and pauses stay.

use std::collections::BTreeSet;

/// Fault state of a cluster whose nodes are keyed by `N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultState<N: Ord + Copy> {
    nodes: BTreeSet<N>,
    down: BTreeSet<N>,
    paused: BTreeSet<N>,
    /// `(from, to)`: packets from `from` do not reach `to`.
    blocked: BTreeSet<(N, N)>,
}

impl<N: Ord + Copy> Default for FaultState<N> {
    fn default() -> Self {
        FaultState {
            nodes: BTreeSet::new(),
            down: BTreeSet::new(),
            paused: BTreeSet::new(),
            blocked: BTreeSet::new(),
        }
    }
}

impl<N: Ord + Copy> FaultState<N> {
    /// Every node up, every link open.
    pub fn new(nodes: impl IntoIterator<Item = N>) -> Self {
        FaultState {
            nodes: nodes.into_iter().collect(),
            ..FaultState::default()
        }
    }

    /// Makes `n` known (up, unless a fault says otherwise). Idempotent.
    pub fn add_node(&mut self, n: N) {
        self.nodes.insert(n);
    }

    /// SIGKILL or a graceful stop: down until restarted.
    pub fn crash(&mut self, n: N) {
        self.nodes.insert(n);
        self.down.insert(n);
        self.paused.remove(&n);
    }

    /// Up again (its links as the cuts in force say).
    pub fn restart(&mut self, n: N) {
        self.nodes.insert(n);
        self.down.remove(&n);
        self.paused.remove(&n);
    }

    /// Frozen (only an up node can be paused).
    pub fn pause(&mut self, n: N) {
        self.nodes.insert(n);
        if !self.down.contains(&n) {
            self.paused.insert(n);
        }
    }

    pub fn resume(&mut self, n: N) {
        self.paused.remove(&n);
    }

    /// One-way: packets from `from` no longer reach `to`.
    pub fn cut(&mut self, from: N, to: N) {
        self.nodes.insert(from);
        self.nodes.insert(to);
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Nodes in different groups stop hearing each other (added to the cuts in force);
    /// nodes in no group keep their links.
    pub fn partition(&mut self, groups: &[Vec<N>]) {
        for (gi, group) in groups.iter().enumerate() {
            for (gj, other) in groups.iter().enumerate() {
                if gi != gj {
                    for &to in group {
                        for &from in other {
                            self.cut(from, to);
                        }
                    }
                }
            }
        }
    }

    /// `n` is cut off from every other known node, both ways.
    pub fn isolate(&mut self, n: N) {
        self.nodes.insert(n);
        let all: Vec<N> = self.nodes.iter().copied().collect();
        for other in all {
            self.cut(other, n);
            self.cut(n, other);
        }
    }

    /// Every cut removed; crashes and pauses stay.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    // ----- queries -------------------------------------------------------------------

    /// Every node known, in order.
    pub fn nodes(&self) -> impl Iterator<Item = N> + '_ {
        self.nodes.iter().copied()
    }

    pub fn is_up(&self, n: N) -> bool {
        !self.down.contains(&n)
    }

    pub fn is_paused(&self, n: N) -> bool {
        self.paused.contains(&n)
    }

    /// Up and not paused: able to act.
    pub fn is_live(&self, n: N) -> bool {
        self.is_up(n) && !self.is_paused(n)
    }

    /// Live nodes, in order.
    pub fn live(&self) -> Vec<N> {
        self.nodes
            .iter()
            .copied()
            .filter(|n| self.is_live(*n))
            .collect()
    }

    /// Whether the network carries packets from `from` to `to` (cuts only, not crashes).
    pub fn link_open(&self, from: N, to: N) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Whether `to` can hear `from` now: both live and the link open.
    pub fn hears(&self, to: N, from: N) -> bool {
        self.is_live(from) && self.is_live(to) && self.link_open(from, to)
    }

    /// Both live and the link open both ways.
    pub fn talk(&self, a: N, b: N) -> bool {
        self.hears(a, b) && self.hears(b, a)
    }

    /// Sources whose packets node `to` must drop (what its firewall holds).
    pub fn dropped_by(&self, to: N) -> Vec<N> {
        self.blocked
            .iter()
            .filter(|(_, t)| *t == to)
            .map(|(f, _)| *f)
            .collect()
    }

    /// Every blocked `(from, to)` pair.
    pub fn blocked(&self) -> impl Iterator<Item = (N, N)> + '_ {
        self.blocked.iter().copied()
    }

    /// No cut in force.
    pub fn no_cuts(&self) -> bool {
        self.blocked.is_empty()
    }

    /// `n` is live and talks both ways with at least `quorum - 1` other live nodes: it can
    /// gather a quorum around itself (what a leader needs to keep leading).
    pub fn can_lead(&self, n: N, quorum: usize) -> bool {
        self.is_live(n)
            && 1 + self
                .nodes
                .iter()
                .filter(|m| **m != n && self.talk(n, **m))
                .count()
                >= quorum
    }

    /// The largest set of live nodes that all talk to each other both ways (ties: the one
    /// with the lowest ids). A group like this of a quorum's size can elect a leader no
    /// matter how the cuts between its members and the rest lie.
    pub fn largest_group(&self) -> BTreeSet<N> {
        let live = self.live();
        let mut best: Vec<N> = Vec::new();
        let mut current: Vec<N> = Vec::new();
        self.grow(&live, 0, &mut current, &mut best);
        best.into_iter().collect()
    }

    /// Branch and bound over the live nodes in order (n ≤ a few dozen).
    fn grow(&self, live: &[N], from: usize, current: &mut Vec<N>, best: &mut Vec<N>) {
        if current.len() > best.len() {
            *best = current.clone();
        }
        for i in from..live.len() {
            if current.len() + (live.len() - i) <= best.len() {
                return;
            }
            let n = live[i];
            if current.iter().all(|m| self.talk(*m, n)) {
                current.push(n);
                self.grow(live, i + 1, current, best);
                current.pop();
            }
        }
    }

    /// Whether some group of at least `quorum` live nodes all talk to each other: then a
    /// leader must be elected.
    pub fn quorum_possible(&self, quorum: usize) -> bool {
        self.largest_group().len() >= quorum.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_then_a_partition_keeps_both() {
        let mut s = FaultState::new(1..=5u64);
        s.cut(1, 2);
        s.partition(&[vec![1, 2, 3], vec![4, 5]]);
        assert!(
            !s.link_open(1, 2),
            "the partition must not clear the earlier cut"
        );
        assert!(s.link_open(2, 1));
        assert!(!s.link_open(4, 1) && !s.link_open(1, 4));
        assert_eq!(s.dropped_by(2), vec![1, 4, 5]);
        s.heal();
        assert!(s.no_cuts());
    }

    #[test]
    fn crashes_pauses_and_restarts() {
        let mut s = FaultState::new(1..=3u64);
        s.pause(2);
        assert!(s.is_up(2) && !s.is_live(2));
        s.crash(2);
        assert!(!s.is_up(2) && !s.is_paused(2));
        s.pause(2);
        assert!(!s.is_paused(2), "a down node cannot be paused");
        s.restart(2);
        assert!(s.is_live(2));
        s.heal();
        s.crash(3);
        s.heal();
        assert!(!s.is_up(3), "heal repairs links, not crashes");
        assert_eq!(s.live(), vec![1, 2]);
    }

    #[test]
    fn isolate_cuts_both_ways_from_every_known_node() {
        let mut s = FaultState::new(1..=3u64);
        s.isolate(3);
        assert_eq!(s.dropped_by(3), vec![1, 2]);
        assert_eq!(s.dropped_by(1), vec![3]);
        assert!(s.talk(1, 2) && !s.hears(1, 3) && !s.hears(3, 1));
    }

    #[test]
    fn a_quorum_needs_a_group_that_talks_both_ways() {
        // [1] | [2, 3] | [4, 5]: no group of 3.
        let mut s = FaultState::new(1..=5u64);
        s.partition(&[vec![1], vec![2, 3], vec![4, 5]]);
        assert_eq!(s.largest_group().len(), 2);
        assert!(!s.quorum_possible(3));
        assert!(!s.can_lead(1, 3));
        s.heal();
        assert!(s.quorum_possible(3) && s.can_lead(1, 3));
        // 3 nodes: a follower stopped, then the leader isolated: 1 of 3 cannot elect.
        let mut s = FaultState::new(1..=3u64);
        s.crash(1);
        s.isolate(3);
        assert!(!s.quorum_possible(2));
        // A one-way cut breaks "both ways".
        let mut s = FaultState::new(1..=3u64);
        s.cut(1, 2);
        s.cut(1, 3);
        assert_eq!(s.largest_group(), BTreeSet::from([2, 3]));
        assert!(s.quorum_possible(2) && !s.can_lead(1, 2));
        // Paused nodes count for nothing.
        let mut s = FaultState::new(1..=3u64);
        s.pause(2);
        s.pause(3);
        assert!(!s.quorum_possible(2));
        assert!(s.quorum_possible(1));
    }
}
