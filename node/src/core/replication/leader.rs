//! Leader-only replication state, created when the node wins an epoch: one [`Progress`] per
//! follower and the commit rule (the highest index a quorum holds).

use super::progress::Progress;
use super::snapshot_send::Transfer;
use crate::ids::NodeId;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct LeaderState {
    progress: BTreeMap<NodeId, Progress>,
    /// Snapshots being sent, for followers in the snapshot state.
    pub transfers: BTreeMap<NodeId, Transfer>,
}

impl LeaderState {
    /// The follower's progress, starting as a probe right after the leader's log.
    pub fn progress(&mut self, peer: NodeId, last_index: u64) -> &mut Progress {
        self.progress
            .entry(peer)
            .or_insert_with(|| Progress::new(last_index))
    }

    /// Applies an AppendAck (`rejected` is the refused Append's `prev_index`, `match_index`
    /// the follower's hint on failure). Returns whether the caller should send at once: a
    /// success may have opened the window (the caller asks [`Progress::plan`]), a rejection
    /// that moved `next` back probes again; a rejection that did not (or a stale one) waits
    /// for the heartbeat, so that no ack/append pair can ping-pong at network speed (it could
    /// when two same-epoch leaders left conflicting logs).
    pub fn on_ack(
        &mut self,
        peer: NodeId,
        success: bool,
        match_index: u64,
        rejected: u64,
        last_index: u64,
    ) -> bool {
        let p = self.progress(peer, last_index);
        if success {
            p.on_success(match_index, last_index);
            true
        } else {
            p.on_reject(rejected, match_index)
        }
    }

    /// The highest index held by `quorum` nodes; the leader itself holds `own_index` (what it
    /// has persisted, not merely appended in memory).
    pub fn quorum_index(&self, own_index: u64, quorum: usize) -> u64 {
        let mut held: Vec<u64> = self.progress.values().map(|p| p.matched).collect();
        held.push(own_index);
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(quorum.max(1) - 1).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::replication::progress::ProgressState;

    #[test]
    fn commit_needs_a_quorum() {
        let mut l = LeaderState::default();
        l.progress(NodeId(2), 5);
        l.progress(NodeId(3), 5);
        assert_eq!(l.quorum_index(5, 2), 0);
        l.on_ack(NodeId(2), true, 4, 0, 5);
        assert_eq!(l.quorum_index(5, 2), 4);
        assert_eq!(l.quorum_index(5, 3), 0);
        assert_eq!(l.quorum_index(5, 1), 5);
        assert_eq!(
            l.quorum_index(3, 2),
            3,
            "the leader's own count is what it persisted"
        );
    }

    #[test]
    fn a_rejection_moves_next_back_but_not_below_what_matched() {
        let mut l = LeaderState::default();
        l.on_ack(NodeId(2), true, 4, 0, 9);
        assert_eq!(l.progress(NodeId(2), 9).state, ProgressState::Replicate);
        assert!(
            !l.on_ack(NodeId(2), false, 7, 4, 9),
            "next was already right after what matched"
        );
        let p = l.progress(NodeId(2), 9).clone();
        assert_eq!((p.next, p.matched, p.state), (5, 4, ProgressState::Probe));
        l.on_ack(NodeId(2), false, 5, 4, 9);
        assert_eq!(l.progress(NodeId(2), 9).next, 5);
    }
}
