//! The leader's view of one follower, the raft-rs way (`tracker/progress.rs`).
//!
//! - **Probe**: the leader does not know where the follower's log matches its own. It sends
//!   one Append from `next` and waits (paused) for the answer or the next heartbeat. A
//!   rejection moves `next` back towards the follower's hint; a success switches to
//!   replicate.
//! - **Replicate**: the follower's log is known to match. Every entry is sent once: `next`
//!   advances optimistically as Appends go out, bounded by the [`Inflights`] window; an
//!   acknowledgement frees the window. A rejection (a lost Append left a gap) or a heartbeat
//!   interval without progress falls back to probing from `matched + 1`.
//!
//! - **Snapshot**: the follower needs entries the leader compacted away; it is sent the
//!   snapshot instead, and an acknowledgement of the snapshot's index switches to replicate.
//!
//! A follower out of the view (the detector declared it down) stays in probe and gets at most
//! one empty Append per heartbeat from [`Progress::probe_down`]: enough to notice it is back,
//! never a stream of entries into a dead address (nor a snapshot: a transfer is abandoned).

use super::inflights::Inflights;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    /// The entries the follower needs next are compacted away: it is being sent the snapshot
    /// at `pending_snapshot` ([`super::snapshot_send`]); no Appends until it acknowledges
    /// that index.
    Snapshot,
}

/// What to send a follower now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendPlan {
    /// The first index to send (`prev_index` is `from - 1`).
    pub from: u64,
    /// Whether to carry entries (false: an empty probe that only checks `from - 1`).
    pub entries: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The highest index known to match the leader's log.
    pub matched: u64,
    /// The next index to send.
    pub next: u64,
    pub state: ProgressState,
    /// Probe only: an Append is out and unanswered; send nothing until an answer or the next
    /// heartbeat.
    pub paused: bool,
    pub inflights: Inflights,
    /// `matched` at the previous heartbeat (replicate: no progress for a whole interval means
    /// an Append or its acknowledgement was lost).
    matched_at_heartbeat: u64,
    /// Snapshot only: the index of the snapshot being sent.
    pub pending_snapshot: u64,
}

impl Progress {
    /// A follower the leader knows nothing about: probe right after the leader's log.
    pub fn new(last_index: u64) -> Progress {
        Progress {
            matched: 0,
            next: last_index + 1,
            state: ProgressState::Probe,
            paused: false,
            inflights: Inflights::default(),
            matched_at_heartbeat: 0,
            pending_snapshot: 0,
        }
    }

    /// The follower is sent the snapshot at `index`.
    pub fn become_snapshot(&mut self, index: u64) {
        self.state = ProgressState::Snapshot;
        self.paused = false;
        self.inflights.reset();
        self.pending_snapshot = index;
    }

    pub fn become_probe(&mut self) {
        self.state = ProgressState::Probe;
        self.paused = false;
        self.inflights.reset();
        self.next = self.matched + 1;
    }

    pub fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.paused = false;
        self.inflights.reset();
        self.next = self.matched + 1;
    }

    /// What to send now, given the leader's last index, or `None` (paused, window full, or
    /// nothing new for a follower in replicate).
    pub fn plan(&self, last_index: u64) -> Option<AppendPlan> {
        let from = self.next.clamp(1, last_index + 1);
        match self.state {
            ProgressState::Probe if self.paused => None,
            ProgressState::Probe => Some(AppendPlan {
                from,
                entries: from <= last_index,
            }),
            ProgressState::Replicate if self.inflights.full() || from > last_index => None,
            ProgressState::Replicate => Some(AppendPlan {
                from,
                entries: true,
            }),
            ProgressState::Snapshot => None,
        }
    }

    /// An Append from `from` with `count` entries (`bytes` on the wire) went out.
    pub fn sent(&mut self, from: u64, count: u64, bytes: usize) {
        match self.state {
            ProgressState::Probe => self.paused = true,
            ProgressState::Replicate if count > 0 => {
                let last = from + count - 1;
                self.next = last + 1;
                self.inflights.add(last, bytes);
            }
            ProgressState::Replicate | ProgressState::Snapshot => {}
        }
    }

    /// The follower holds our log up to `match_index` (acknowledgements may come late, twice
    /// or out of order: `matched` only grows). A probe that succeeded switches to replicate.
    pub fn on_success(&mut self, match_index: u64, last_index: u64) {
        let m = match_index.min(last_index);
        self.matched = self.matched.max(m);
        self.inflights.free_to(m);
        match self.state {
            ProgressState::Probe => self.become_replicate(),
            ProgressState::Replicate => self.next = self.next.max(self.matched + 1),
            // Installed: the log is known to match up to the snapshot.
            ProgressState::Snapshot if self.matched >= self.pending_snapshot => {
                self.become_replicate()
            }
            ProgressState::Snapshot => {}
        }
    }

    /// The follower refused the Append whose `prev_index` was `rejected`; `hint` is where its
    /// log may match. Returns whether `next` moved back (the caller then probes at once;
    /// otherwise the heartbeat does).
    ///
    /// A late or duplicated rejection is ignored (raft-rs `maybe_decr_to`): in replicate one
    /// for an index below `matched` (the follower has since confirmed it), in probe one that
    /// does not answer the probe now out (`rejected + 1 != next`). Without `rejected` the
    /// second copy of a duplicated rejection, or one overtaken by a later success, would
    /// throw a replicating follower back to probing.
    pub fn on_reject(&mut self, rejected: u64, hint: u64) -> bool {
        let stale = match self.state {
            ProgressState::Replicate => rejected < self.matched,
            ProgressState::Probe => rejected + 1 != self.next,
            // Answers an Append from before the transfer began.
            ProgressState::Snapshot => true,
        };
        if stale {
            return false;
        }
        let before = self.next;
        if rejected == self.matched && hint < self.matched {
            // The follower refuses the very entry it acknowledged: it no longer holds it (its
            // disk lost a suffix, or a rival leader of the same epoch overwrote it: only
            // without a quorum). Start over from its hint: re-sending is cheap, bouncing the
            // same Append forever is not.
            self.matched = hint;
        }
        self.become_probe();
        // The hint may skip a whole conflicting epoch; never past what matched, and always
        // back from the Append refused.
        self.next = (hint + 1).min(rejected).max(self.matched + 1);
        self.next < before
    }

    /// Every heartbeat, for a follower in the view: a probe that went unanswered may be sent
    /// again, and a replicating follower that made no progress for a whole interval although
    /// it lags is probed from `matched + 1` (an Append or its acknowledgement was lost).
    pub fn on_heartbeat(&mut self, last_index: u64) {
        match self.state {
            ProgressState::Probe => self.paused = false,
            ProgressState::Replicate => {
                if self.matched < last_index && self.matched == self.matched_at_heartbeat {
                    self.become_probe();
                }
            }
            // The transfer resends on its own (`snapshot_send`).
            ProgressState::Snapshot => {}
        }
        self.matched_at_heartbeat = self.matched;
    }

    /// Every heartbeat, for a follower out of the view: back to probing, and one empty Append
    /// that checks `next - 1` (nothing bigger goes to a dead address).
    pub fn probe_down(&mut self, last_index: u64) -> AppendPlan {
        if self.state != ProgressState::Probe {
            self.become_probe();
        }
        self.paused = true;
        self.matched_at_heartbeat = self.matched;
        AppendPlan {
            from: self.next.clamp(1, last_index + 1),
            entries: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::replication::inflights::MAX_INFLIGHT_MSGS;

    fn replicating(matched: u64) -> Progress {
        let mut p = Progress::new(matched);
        p.on_success(matched, matched);
        assert_eq!(p.state, ProgressState::Replicate);
        p
    }

    #[test]
    fn a_probe_sends_once_then_waits_for_the_answer_or_the_heartbeat() {
        let mut p = Progress::new(10);
        assert_eq!(
            p.plan(10),
            Some(AppendPlan {
                from: 11,
                entries: false
            })
        );
        p.sent(11, 0, 100);
        assert_eq!(p.plan(12), None, "paused");
        p.on_heartbeat(12);
        assert_eq!(
            p.plan(12),
            Some(AppendPlan {
                from: 11,
                entries: true
            })
        );
    }

    #[test]
    fn replicate_sends_each_entry_once_and_advances_next_optimistically() {
        let mut p = replicating(5);
        assert_eq!(
            p.plan(8),
            Some(AppendPlan {
                from: 6,
                entries: true
            })
        );
        p.sent(6, 3, 300);
        assert_eq!(p.next, 9);
        assert_eq!(p.plan(8), None, "nothing new: nothing re-sent");
        p.on_success(8, 9);
        assert_eq!((p.matched, p.next, p.inflights.len()), (8, 9, 0));
        assert_eq!(p.plan(9).map(|a| a.from), Some(9));
    }

    #[test]
    fn the_window_bounds_what_is_in_flight() {
        let mut p = replicating(0);
        for i in 1..=MAX_INFLIGHT_MSGS as u64 {
            let plan = p.plan(1000).expect("window open");
            assert_eq!(plan.from, i);
            p.sent(i, 1, 10);
        }
        assert_eq!(p.plan(1000), None, "window full");
        // The first Append's acknowledgement opens the window for the next entry.
        p.on_success(1, 1000);
        assert_eq!(
            p.plan(1000).map(|a| a.from),
            Some(MAX_INFLIGHT_MSGS as u64 + 1)
        );
    }

    #[test]
    fn a_rejection_falls_back_to_probing_from_what_matched() {
        let mut p = replicating(5);
        p.sent(6, 10, 100);
        p.sent(16, 10, 100);
        // The first Append was lost: the follower (last index 5) refuses the second.
        assert!(p.on_reject(15, 5));
        assert_eq!((p.state, p.next, p.matched), (ProgressState::Probe, 6, 5));
        assert!(p.inflights.is_empty());
        assert_eq!(p.plan(25).map(|a| a.from), Some(6));
    }

    #[test]
    fn probing_walks_back_to_the_hint_but_never_below_matched() {
        let mut p = Progress::new(20);
        p.sent(21, 0, 10);
        assert!(p.on_reject(20, 7));
        assert_eq!(p.next, 8);
        assert!(!p.paused, "probe again at once");
        p.sent(8, 5, 10);
        // The follower's log conflicts at 7 too: its hint skips the epoch, but never below
        // what matched.
        p.matched = 3;
        assert!(p.on_reject(7, 1));
        assert_eq!(p.next, 4);
        // A hint at or past the refused index still moves back from it.
        p.sent(4, 1, 10);
        assert!(!p.on_reject(3, 9), "nowhere further back to go");
        assert_eq!(p.next, 4, "not below matched + 1");
    }

    #[test]
    fn a_duplicated_or_late_probe_rejection_is_ignored() {
        let mut p = Progress::new(20);
        p.sent(21, 0, 10);
        assert!(p.on_reject(20, 7));
        assert_eq!(p.next, 8);
        // The second copy of the same rejection answers a probe that is no longer out.
        assert!(!p.on_reject(20, 15));
        assert!(!p.on_reject(20, 2));
        assert_eq!(p.next, 8);
    }

    #[test]
    fn a_rejection_overtaken_by_a_success_leaves_replication_alone() {
        let mut p = Progress::new(5);
        p.sent(6, 0, 10);
        // The follower refused the probe at 5, then accepted entries up to 9; the network
        // delivered the success first.
        p.on_success(9, 12);
        assert_eq!(p.state, ProgressState::Replicate);
        p.sent(10, 3, 30);
        assert!(!p.on_reject(5, 3), "stale: below what matched");
        assert_eq!(
            (p.state, p.matched, p.next),
            (ProgressState::Replicate, 9, 13)
        );
        assert_eq!(p.inflights.len(), 1);
    }

    #[test]
    fn a_follower_that_lost_entries_is_resent_from_its_hint() {
        let mut p = replicating(6);
        // It refuses the Append right after what it acknowledged and says it holds 2.
        p.on_reject(6, 2);
        assert_eq!((p.matched, p.next), (2, 3));
        // Refusing a later Append first only falls back to what matched; the probe there
        // then finds the loss.
        let mut p = replicating(6);
        p.sent(7, 4, 40);
        assert!(p.on_reject(10, 2));
        assert_eq!((p.matched, p.next), (6, 7));
        assert!(p.on_reject(6, 2));
        assert_eq!((p.matched, p.next), (2, 3));
    }

    #[test]
    fn a_stalled_replicating_follower_is_probed_after_a_heartbeat_without_progress() {
        let mut p = replicating(5);
        p.sent(6, 5, 100);
        p.on_heartbeat(10);
        assert_eq!(p.state, ProgressState::Replicate, "first interval: wait");
        p.on_heartbeat(10);
        assert_eq!((p.state, p.next), (ProgressState::Probe, 6));
        // An up-to-date follower is never probed for being idle.
        let mut q = replicating(10);
        q.on_heartbeat(10);
        q.on_heartbeat(10);
        assert_eq!(q.state, ProgressState::Replicate);
    }

    #[test]
    fn a_snapshot_transfer_sends_no_appends_and_ends_at_its_index() {
        let mut p = Progress::new(50);
        p.become_snapshot(40);
        assert_eq!(p.plan(50), None);
        assert!(!p.on_reject(50, 3), "a late rejection changes nothing");
        p.on_success(20, 50);
        assert_eq!(
            p.state,
            ProgressState::Snapshot,
            "not yet the snapshot's index"
        );
        p.on_success(40, 50);
        assert_eq!(
            (p.state, p.matched, p.next),
            (ProgressState::Replicate, 40, 41)
        );
        // A follower that goes down mid-transfer is probed again (and sent it afresh later).
        p.become_snapshot(60);
        p.probe_down(70);
        assert_eq!(p.state, ProgressState::Probe);
    }

    #[test]
    fn a_down_follower_gets_only_empty_probes() {
        let mut p = replicating(5);
        p.sent(6, 30, 5000);
        let plan = p.probe_down(40);
        assert_eq!(
            plan,
            AppendPlan {
                from: 6,
                entries: false
            }
        );
        assert_eq!(p.plan(40), None, "nothing more until the next heartbeat");
    }
}
