//! The node's replication paths: proposing and group commit on the leader, sending Appends as
//! each follower's [`Progress`](crate::core::replication::progress::Progress) allows,
//! acknowledgements and the commit rule, and the follower's side of an Append. Split out of
//! `node.rs` so that the glue stays glue; the decisions live in
//! [`crate::core::replication`].
//!
//! **Group commit.** [`Node::propose`] only appends to the in-memory log. At the end of a
//! driver turn ([`Node::handle_batch`]), and before any input that is not a client's,
//! [`Node::flush_log`] writes everything appended since as **one** `Persist::Append`, sends
//! each follower one Append with the new entries. `persisted` is the index handed to the
//! driver; the leader counts its own copy towards a quorum only once the driver reports it
//! durable ([`Node::on_persisted`]), so its fsync overlaps the followers' and a slow disk
//! delays commits, never heartbeats.
//!
//! **Durability.** Every record goes through [`Node::persist`] (numbered by
//! [`Durability`](crate::core::durable::Durability)); every peer message through
//! [`Node::send_after`], which holds it until the records it depends on are durable
//! ([`Node::durable_before`]). A follower's AppendAck therefore leaves only once the entries
//! it acknowledges are on disk, and a vote only once the vote is.

use super::Node;
use crate::core::chat::ChatOp;
use crate::core::chat::ChatState;
use crate::core::membership::PeerState;
use crate::core::proposal::ProposalId;
use crate::core::replication::progress::{AppendPlan, ProgressState};
use crate::core::replication::{
    follower_append, AppendOutcome, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES,
};
use crate::core::wire::PeerMsg;
use crate::core::{Lane, LogEntry, Output, Persist};
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use crate::settings::QuorumMode;

impl Node {
    /// Appends `op` to the log (made durable and sent by the next [`Node::flush_log`]);
    /// returns its index.
    pub(super) fn propose(&mut self, op: ChatOp, origin: Option<ProposalId>) -> u64 {
        let index = self.log.last_index() + 1;
        self.log.push(LogEntry {
            index,
            epoch: self.epoch,
            op,
            origin,
        });
        index
    }

    /// Hands `record` to the driver (numbered; see [`crate::core::durable::Durability`]).
    pub(super) fn persist(&mut self, record: Persist) {
        let output = self.durability.record(record, self.log.last_index());
        self.out.push(output);
    }

    /// Which record `msg` must wait for (0: none). An acknowledgement of entries speaks
    /// for the log and the epoch it accepted them in, so it waits for everything written so
    /// far. A vote, or the candidacy that counts its own vote (`Elected`), waits for the hard
    /// state: a node that forgot its vote in a crash could vote again in that epoch, and two
    /// leaders of one epoch break log matching. Beacons, a leader's Appends, the election
    /// algorithm's messages (they only choose who is candidate) and fencing replies promise
    /// nothing durable and go at once, so a slow disk never delays a
    /// heartbeat nor every hop of an election. Anything not listed waits for the hard state.
    pub(super) fn durable_before(&self, msg: &PeerMsg) -> u64 {
        match msg {
            PeerMsg::AppendAck { .. } => self.durability.everything(),
            PeerMsg::Append { .. }
            | PeerMsg::Snapshot { .. }
            | PeerMsg::SnapshotAck { .. }
            | PeerMsg::Hello(_)
            | PeerMsg::Heartbeat(_)
            | PeerMsg::Leave
            | PeerMsg::Election { .. }
            | PeerMsg::Stale { .. } => 0,
            _ => self.durability.hard_state(),
        }
    }

    /// Sends `output` once record `after` is durable (at once if it is).
    pub(super) fn send_after(&mut self, after: u64, output: Output) {
        self.durability.send_after(after, output, &mut self.out);
    }

    /// The driver made the first `upto` records durable: what waited for them leaves, and a
    /// leader counts its own log up to where it is durable.
    pub(super) fn on_persisted(&mut self, upto: u64) {
        let hard_state = self.durability.hard_state();
        let hard_state_was_pending = !self.durability.is_durable(hard_state);
        self.durability.persisted(upto, &mut self.out);
        if hard_state_was_pending && self.durability.is_durable(hard_state) {
            self.hard_state_durable();
        }
        if self.role == Role::Leader {
            self.try_commit();
        }
    }

    /// Persists every entry appended since the last flush as one record, replicates them,
    /// and commits what a quorum now holds. Committing can propose again (an orphaned
    /// logout), so this runs until the log is flushed.
    pub(super) fn flush_log(&mut self) {
        while self.log.last_index() > self.persisted {
            let last = self.log.last_index();
            let entries: Vec<LogEntry> = (self.persisted + 1..=last)
                .filter_map(|i| self.log.get(i).cloned())
                .collect();
            self.persist(Persist::Append { entries });
            self.persisted = last;
            if self.role == Role::Leader {
                self.replicate_all();
                self.try_commit();
            }
        }
    }

    /// Sends every follower in the view what its progress allows (new entries once).
    fn replicate_all(&mut self) {
        let peers: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, p)| p.state.in_view())
            .map(|(id, _)| id)
            .collect();
        for peer in peers {
            self.replicate_to(peer);
        }
    }

    /// Sends `peer` Appends while its progress allows: one probe, or new entries up to the
    /// in-flight window.
    pub(super) fn replicate_to(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        while let Some(plan) = self.leader_state.progress(peer, last).plan(last) {
            if plan.from <= self.log.start().0 {
                // What it needs next is compacted away.
                return self.start_snapshot(peer);
            }
            let Some((count, bytes)) = self.send_append(peer, plan) else {
                return;
            };
            let p = self.leader_state.progress(peer, last);
            p.sent(plan.from, count, bytes);
            if p.state != ProgressState::Replicate || count == 0 {
                return;
            }
        }
    }

    /// Every heartbeat: followers in the view may be probed again (or, stalled, fall back
    /// to probing); a follower out of the view gets one empty probe and nothing else.
    pub(super) fn heartbeat_replication(&mut self) {
        let last = self.log.last_index();
        let peers: Vec<(NodeId, bool)> = self
            .members
            .iter()
            .filter(|(_, p)| p.state != PeerState::Left)
            .map(|(id, p)| (id, p.state.in_view()))
            .collect();
        for (peer, in_view) in peers {
            let sending = self.leader_state.progress(peer, last).state == ProgressState::Snapshot;
            if !sending || !in_view {
                self.leader_state.transfers.remove(&peer);
            }
            if in_view && sending {
                self.heartbeat_transfer(peer);
            } else if in_view {
                self.leader_state.progress(peer, last).on_heartbeat(last);
                self.replicate_to(peer);
            } else {
                let plan = self.leader_state.progress(peer, last).probe_down(last);
                self.send_append(peer, plan);
            }
        }
    }

    /// A follower behind on commit although we think it holds our log (it restarted, or lost
    /// us for a while, and has not verified its log against ours): an empty Append at what
    /// it matched lets it verify and commit, without disturbing the Appends in flight.
    pub(super) fn verify_follower(&mut self, peer: NodeId) {
        let last = self.log.last_index();
        let p = self.leader_state.progress(peer, last);
        match p.state {
            ProgressState::Probe => return self.replicate_to(peer),
            ProgressState::Snapshot => return,
            ProgressState::Replicate => {}
        }
        let from = p.matched + 1;
        self.send_append(
            peer,
            AppendPlan {
                from,
                entries: false,
            },
        );
    }

    /// Sends one Append as planned; returns the entries it carried and its size, or `None`
    /// when the peer has no address.
    fn send_append(&mut self, peer: NodeId, plan: AppendPlan) -> Option<(u64, usize)> {
        let addr = self.members.get(peer).map(|p| p.addr.clone())?;
        let last = self.log.last_index();
        // An empty probe below the compacted prefix checks where the log starts instead.
        let from = plan.from.clamp(self.log.start().0 + 1, last + 1);
        let prev_index = from - 1;
        let prev_epoch = self.log.epoch_at(prev_index).unwrap_or(0);
        let entries = if plan.entries {
            self.log
                .batch_from(from, MAX_BATCH_ENTRIES, MAX_BATCH_BYTES)
        } else {
            Vec::new()
        };
        let count = entries.len() as u64;
        let msg = PeerMsg::Append {
            epoch: self.epoch,
            prev_index,
            prev_epoch,
            entries,
            commit: self.commit,
        };
        let bytes = self.encode(peer, &msg);
        let size = bytes.len();
        let after = self.durable_before(&msg);
        self.send_after(
            after,
            Output::Send {
                to: peer,
                addr,
                bytes,
                lane: Lane::Bulk,
            },
        );
        Some((count, size))
    }

    pub(super) fn on_append_ack(
        &mut self,
        from: NodeId,
        epoch: u64,
        success: bool,
        match_index: u64,
        rejected: u64,
    ) {
        if epoch > self.epoch {
            self.adopt_epoch(epoch);
            return;
        }
        if epoch != self.epoch || self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let send_now = self
            .leader_state
            .on_ack(from, success, match_index, rejected, last);
        if success {
            self.try_commit();
        }
        if send_now {
            self.replicate_to(from);
        }
    }

    pub(super) fn try_commit(&mut self) {
        let own = self.durability.log_durable();
        let q = self.leader_state.quorum_index(own, self.quorum);
        // Only entries of the leader's own epoch are committed by counting (Raft §5.4.2).
        if q > self.commit && self.log.epoch_at(q) == Some(self.epoch) {
            self.commit = q;
            self.apply_committed();
        }
    }

    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        epoch: u64,
        prev_index: u64,
        prev_epoch: u64,
        entries: &[LogEntry],
        commit: u64,
    ) {
        if epoch < self.epoch {
            let msg = PeerMsg::AppendAck {
                epoch: self.epoch,
                success: false,
                match_index: 0,
                rejected: prev_index,
            };
            self.send_to(from, &msg);
            return;
        }
        if epoch > self.epoch {
            self.adopt_epoch(epoch);
        }
        if self.role == Role::Leader {
            return; // a same-epoch rival (quorum none); beacons settle it
        }
        match self.leader {
            None => {
                let credentials = Credentials {
                    last_log_epoch: epoch,
                    last_log_index: prev_index + entries.len() as u64,
                    id: from,
                };
                self.accept_leader(from, credentials);
            }
            Some(l) if l != from => return,
            Some(_) => {}
        }
        self.leader_contact = self.now;
        let protected = match self.cfg.quorum {
            QuorumMode::Majority => self.commit,
            QuorumMode::None => 0,
        };
        let outcome = follower_append(&mut self.log, prev_index, prev_epoch, entries, protected);
        let ack = match outcome {
            AppendOutcome::Accepted {
                match_index,
                truncated_from,
                appended,
            } => {
                if let Some(from) = truncated_from {
                    self.persist(Persist::TruncateFrom { from });
                    if from <= self.commit {
                        // Only without a quorum: our side of a split brain committed entries the
                        // winner never had. Rebuild the chat state from the log we keep.
                        self.commit = from - 1;
                        self.applied = 0;
                        self.chat = ChatState::default();
                        self.apply_committed();
                    }
                }
                if !appended.is_empty() {
                    self.persist(Persist::Append { entries: appended });
                }
                // One record per received batch, made durable with one fsync; the
                // acknowledgement below waits for it (`durable_before`).
                self.persisted = self.log.last_index();
                self.verified = self.verified.max(match_index);
                self.advance_follower_commit(commit);
                PeerMsg::AppendAck {
                    epoch: self.epoch,
                    success: true,
                    match_index,
                    rejected: 0,
                }
            }
            AppendOutcome::Rejected { hint } => PeerMsg::AppendAck {
                epoch: self.epoch,
                success: false,
                match_index: hint,
                rejected: prev_index,
            },
        };
        self.send_to(from, &ack);
    }

    pub(super) fn advance_follower_commit(&mut self, leader_commit: u64) {
        let target = leader_commit.min(self.verified);
        if target > self.commit {
            self.commit = target;
            self.apply_committed();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::auth::{test_support, BROADCAST};
    use crate::core::wire::PeerMsg;
    use crate::core::{Config, Input, Node, Output, Restored};
    use crate::ids::NodeId;
    use crate::settings::{ElectionKind, QuorumMode};

    fn follower() -> Node {
        let cfg = Config {
            id: NodeId(2),
            cluster: "c".into(),
            cluster_size: 3,
            heartbeat_ms: 100,
            failure_timeout_ms: 500,
            election: ElectionKind::Lcr,
            quorum: QuorumMode::Majority,
            client_addr: "10.0.0.2:7070".into(),
            seed: 1,
            login_timeout_ms: crate::core::DEFAULT_LOGIN_TIMEOUT_MS,
            peer_key: test_support::key(),
            peer_addr: test_support::addr(2),
            incarnation: 1,
        };
        Node::new(cfg, Restored::default(), 0)
    }

    fn acks(out: &[Output]) -> Vec<PeerMsg> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { bytes, .. } => test_support::open(bytes),
                _ => None,
            })
            .filter(|m| matches!(m, PeerMsg::AppendAck { .. }))
            .collect()
    }

    #[test]
    fn an_acknowledgement_leaves_only_once_its_entries_are_durable() {
        use crate::core::chat::ChatOp;
        use crate::core::LogEntry;
        let mut node = follower();
        let append = PeerMsg::Append {
            epoch: 1,
            prev_index: 0,
            prev_epoch: 0,
            entries: vec![LogEntry {
                index: 1,
                epoch: 1,
                op: ChatOp::NewEpoch,
                origin: None,
            }],
            commit: 0,
        };
        let datagram = Input::Datagram {
            from: test_support::addr(1),
            bytes: test_support::seal(1, BROADCAST, &append),
        };
        let out = node.handle_batch(1, [datagram]);
        let records = out
            .iter()
            .filter(|o| matches!(o, Output::Persist(_)))
            .count() as u64;
        assert_eq!(records, 2, "the new epoch and the entry: {out:?}");
        assert!(acks(&out).is_empty(), "not durable yet: {out:?}");
        let out = node.handle_batch(2, [Input::Persisted { upto: records - 1 }]);
        assert!(acks(&out).is_empty(), "the entry is not durable yet");
        let out = node.handle_batch(3, [Input::Persisted { upto: records }]);
        assert!(
            matches!(
                acks(&out)[..],
                [PeerMsg::AppendAck {
                    success: true,
                    match_index: 1,
                    ..
                }]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_refused_append_is_answered_with_its_prev_index_and_a_hint() {
        let mut node = follower();
        let append = PeerMsg::Append {
            epoch: 1,
            prev_index: 5,
            prev_epoch: 1,
            entries: vec![],
            commit: 0,
        };
        let out = node.handle(
            1,
            Input::Datagram {
                from: test_support::addr(1),
                bytes: test_support::seal(1, BROADCAST, &append),
            },
        );
        assert_eq!(
            acks(&out),
            vec![PeerMsg::AppendAck {
                epoch: 1,
                success: false,
                match_index: 0,
                rejected: 5,
            }],
            "an empty log: refused at 5, may match up to 0"
        );
    }
}
