//! The node's side of an election: the glue between the node and its [`Election`]
//! algorithm. What safety rests on lives here, the same for every algorithm: the durable
//! epoch and vote (one vote per epoch, never for a less up-to-date log), the epoch check of
//! every election message (once, then the algorithm dispatches on its own body and role),
//! and the shared vote round (`Elected` asks, `Promise` grants, a quorum of distinct voters
//! elects). The algorithm decides when to run, whom to vote for and what to send.

use super::Node;
use crate::core::chat::ChatOp;
use crate::core::election::{ElectionAction, ElectionBody, ElectionContext, VoteDecision};
use crate::core::replication::LeaderState;
use crate::core::wire::PeerMsg;
use crate::events::{Credentials, Event};
use crate::ids::{NodeId, Role};

impl Node {
    pub(super) fn election_context(&self) -> ElectionContext {
        let view = self.members.view(self.cfg.id);
        let quorum_in_view = view.len() >= self.quorum;
        ElectionContext {
            epoch: self.epoch,
            role: self.role,
            me: self.credentials(),
            view,
            now: self.now,
            heartbeat_ms: self.cfg.heartbeat_ms,
            failure_timeout_ms: self.cfg.failure_timeout_ms,
            leader: self.leader,
            leader_contact: self.leader_contact,
            voted_for: self.voted_for,
            quorum: self.quorum,
            quorum_in_view,
            can_lead: self.members.can_lead(
                self.cfg.id,
                self.quorum,
                self.now,
                2 * self.cfg.heartbeat_ms,
            ),
            takes_part: self.members.takes_part(
                self.cfg.id,
                self.quorum,
                self.now,
                2 * self.cfg.heartbeat_ms,
            ),
            wants: self.wants_election,
            may_start: self.may_start_election(quorum_in_view),
            in_round: self.election_deadline.is_some(),
            seeking_votes: self.seeking_promises,
        }
    }

    fn may_start_election(&self, quorum_in_view: bool) -> bool {
        self.role != Role::Leader
            && self.leader.is_none()
            && self.now >= self.listen_until
            // Cheap pre-vote: without a quorum in view an election cannot succeed, and
            // running one would only inflate the epoch and later disrupt a healthy leader.
            && quorum_in_view
            // ... and a quorum heard lately, not merely still in view: a node being cut off
            // declares its peers down one by one, tens of ms apart, and those it is about to
            // lose are already suspected (scenarios/healed-minority-keeps-leader: an isolated
            // node started an epoch 10 ms before losing its last peers, and that epoch
            // deposed the healthy leader at the heal).
            && self.members.heard_lately() >= self.quorum
            // A live member follows a live leader we have not heard yet (a healed partition,
            // a one-off loss): wait for it rather than disrupt a working cluster.
            && !self
                .members
                .live_leader_claimed(self.cfg.id, self.epoch, self.recently_lost_leader())
    }

    /// The leader this node saw go silent, while peers may not have noticed yet (within the
    /// detection deadline, failure timeout + 2 heartbeats): their claims of it are no news
    /// then. Later, a live peer that still follows it still hears it — the leader is alive
    /// and only this node lost it (chaos seed 42: a node back from a minority side started
    /// an epoch and deposed a healthy leader 2.2 s after it had lost it).
    fn recently_lost_leader(&self) -> Option<(NodeId, u64)> {
        let detection = self.cfg.failure_timeout_ms + 2 * self.cfg.heartbeat_ms;
        self.lost_leader
            .filter(|_| self.now.saturating_sub(self.lost_leader_at) <= detection)
    }

    /// Every tick while not the leader: the algorithm's timers.
    pub(super) fn election_tick(&mut self) {
        let ctx = self.election_context();
        let actions = self.election.on_tick(&ctx);
        self.run_election_actions(actions);
    }

    /// Every heartbeat while no leader is known: re-send what the lossy network may have
    /// eaten (our vote request, and whatever the algorithm keeps in flight).
    pub(super) fn election_heartbeat(&mut self) {
        if self.seeking_promises {
            let msg = PeerMsg::Elected {
                epoch: self.epoch,
                credentials: self.credentials(),
            };
            self.multicast(&msg);
        }
        let ctx = self.election_context();
        let actions = self.election.on_heartbeat(&ctx);
        self.run_election_actions(actions);
    }

    pub(super) fn start_election(&mut self, trigger: &'static str) {
        // Checked: a wrapped epoch would be refused as stale by everyone, forever.
        let Some(next) = self.epoch.checked_add(1) else {
            if !self.epoch_exhausted {
                self.epoch_exhausted = true;
                self.emit(Event::EpochExhausted {
                    trigger: trigger.to_string(),
                });
            }
            return;
        };
        self.enter_epoch(next);
        self.joined_epoch = self.epoch;
        self.set_role(Role::Candidate, trigger);
        let credentials = self.credentials();
        self.emit(Event::ElectionStarted {
            trigger: trigger.to_string(),
            algorithm: self.election.name().to_string(),
            credentials,
        });
        let ctx = self.election_context();
        let actions = self.election.start(&ctx);
        self.run_election_actions(actions);
    }

    fn run_election_actions(&mut self, actions: Vec<ElectionAction>) {
        for a in actions {
            match a {
                ElectionAction::Send { to, body } => {
                    let msg = PeerMsg::Election {
                        epoch: self.epoch,
                        body,
                    };
                    self.send_to(to, &msg);
                }
                ElectionAction::StartElection { trigger } => {
                    // Re-checked here: the algorithm decided on a context that may be stale.
                    if self.may_start_election(self.has_quorum_in_view()) {
                        self.start_election(trigger);
                    }
                }
                ElectionAction::Join => {
                    if self.election_deadline.is_none() && self.leader.is_none() {
                        let timeout = self.jittered_timeout();
                        self.election_deadline = Some(self.now + timeout);
                        self.wants_election = None;
                    }
                    self.announce_joined();
                }
                ElectionAction::SeekVotes { reason } => self.seek_promises(reason),
            }
        }
    }

    /// `election_joined`, once per epoch, unless this node started the epoch's election
    /// (`election_started` carries its credentials then).
    fn announce_joined(&mut self) {
        if self.joined_epoch == self.epoch || self.leader.is_some() {
            return;
        }
        self.joined_epoch = self.epoch;
        let credentials = self.credentials();
        let can_lead = self
            .members
            .can_lead(
                self.cfg.id,
                self.quorum,
                self.now,
                2 * self.cfg.heartbeat_ms,
            )
            .contains(&self.cfg.id);
        self.emit(Event::ElectionJoined {
            algorithm: self.election.name().to_string(),
            credentials,
            can_lead,
        });
    }

    pub(super) fn has_quorum_in_view(&self) -> bool {
        self.members.view(self.cfg.id).len() >= self.quorum
    }

    fn seek_promises(&mut self, reason: &'static str) {
        if self.leader.is_some() || self.role == Role::Leader || !self.has_quorum_in_view() {
            return;
        }
        match self.voted_for {
            Some(v) if v != self.cfg.id => return, // promised someone else in this epoch
            Some(_) => {}
            None => {
                self.voted_for = Some(self.cfg.id);
                self.persist_hard_state();
            }
        }
        self.set_role(Role::Candidate, reason);
        self.seeking_promises = true;
        self.promises.insert(self.cfg.id);
        let msg = PeerMsg::Elected {
            epoch: self.epoch,
            credentials: self.credentials(),
        };
        self.multicast(&msg);
        self.check_won();
    }

    /// Our latest epoch and vote just became durable, so what waited for them (a candidacy,
    /// a promise, an answer) has only now left. An election round's timer is counted from
    /// here, so a slow disk cannot eat the round: a candidate's round starts when its request
    /// leaves, and a voter's when its promise does (Raft's "reset the election timer when
    /// granting a vote"). Without this, a sync as slow as a third of the failure timeout made
    /// round after round time out just before its promises arrived (simulator, Bully seed 170).
    pub(super) fn hard_state_durable(&mut self) {
        if self.leader.is_some() || self.role == Role::Leader {
            return;
        }
        if self.election_deadline.is_some() {
            let timeout = self.jittered_timeout();
            self.election_deadline = Some(self.now + timeout);
        }
        let ctx = self.election_context();
        self.election.on_hard_state_durable(&ctx);
    }

    fn check_won(&mut self) {
        if self.seeking_promises && self.promises.len() >= self.quorum {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        self.seeking_promises = false;
        self.election.reset();
        self.election_deadline = None;
        self.wants_election = None;
        self.leader = Some(self.cfg.id);
        self.became_leader_at = self.now;
        self.leader_contact = self.now;
        self.leader_state = LeaderState::default();
        self.set_role(Role::Leader, "elected");
        let credentials = self.credentials();
        self.emit(Event::LeaderElected {
            leader: self.cfg.id,
            votes: self.promises.len(),
            credentials,
        });
        self.epoch_start = self.propose(ChatOp::NewEpoch, None);
        self.multicast(&PeerMsg::Heartbeat(self.beacon()));
        self.next_heartbeat = self.now + self.cfg.heartbeat_ms;
    }

    /// A newer epoch exists: adopt it, stepping down from whatever this node was doing.
    pub(super) fn adopt_epoch(&mut self, epoch: u64) {
        if self.role == Role::Leader {
            self.abandon_leadership();
        }
        self.enter_epoch(epoch);
        self.set_role(Role::Follower, "higher_epoch");
    }

    /// Moves to `epoch` (durably, with no vote cast in it yet) with no leader and no election
    /// round of our own. An election is running somewhere in this epoch: the deadline retries
    /// if it produces no leader.
    fn enter_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.voted_for = None;
        self.persist_hard_state();
        self.leader = None;
        self.verified = 0;
        self.seeking_promises = false;
        self.promises.clear();
        self.election.reset();
        self.wants_election = None;
        let timeout = self.jittered_timeout();
        self.election_deadline = Some(self.now + timeout);
    }

    pub(super) fn accept_leader(&mut self, leader: NodeId, credentials: Credentials) {
        self.leader = Some(leader);
        self.leader_contact = self.now;
        self.seeking_promises = false;
        self.promises.clear();
        self.election.reset();
        self.election_deadline = None;
        self.wants_election = None;
        self.set_role(Role::Follower, "leader_elected");
        self.emit(Event::LeaderElected {
            leader,
            votes: 0,
            credentials,
        });
    }

    /// The epoch check, once for every election message; `body` is `None` for the shared
    /// vote request. Returns whether the message is for this node's (possibly just adopted)
    /// epoch and should be handled.
    fn election_epoch_check(
        &mut self,
        from: NodeId,
        epoch: u64,
        body: Option<&ElectionBody>,
    ) -> bool {
        if epoch < self.epoch {
            self.refuse_stale(from);
            return false;
        }
        if epoch > self.epoch {
            let ctx = self.election_context();
            if !self.election.adopts_epoch(&ctx, body) {
                return false;
            }
            self.adopt_epoch(epoch);
        }
        true
    }

    /// `PeerMsg::Election`: the epoch is checked once, then the algorithm handles its body.
    pub(super) fn on_election(&mut self, from: NodeId, epoch: u64, body: ElectionBody) {
        if body.kind() != self.cfg.election {
            // A misconfigured cluster: say so rather than guess.
            self.rejected += 1;
            let count = self.rejected;
            let from_addr = self
                .members
                .get(from)
                .map(|p| p.addr.clone())
                .unwrap_or_default();
            self.emit(Event::InputRejected {
                source: "peer".to_string(),
                from: from_addr,
                reason: format!(
                    "election message `{}` of algorithm {}; this node runs {}",
                    body.name(),
                    body.kind().name(),
                    self.cfg.election.name()
                ),
                count,
                times: 1,
            });
            return;
        }
        if !self.election_epoch_check(from, epoch, Some(&body)) {
            return;
        }
        let ctx = self.election_context();
        let actions = self.election.on_message(&ctx, from, body);
        self.run_election_actions(actions);
    }

    /// The shared vote request.
    pub(super) fn on_elected(&mut self, from: NodeId, epoch: u64, credentials: Credentials) {
        if !self.election_epoch_check(from, epoch, None) {
            return;
        }
        let mine = (self.log.last_epoch(), self.log.last_index());
        let theirs = (credentials.last_log_epoch, credentials.last_log_index);
        let free = self.voted_for.is_none() || self.voted_for == Some(from);
        if !free || theirs < mine {
            return;
        }
        if self.voted_for.is_none() {
            let ctx = self.election_context();
            match self.election.on_vote_request(&ctx, credentials) {
                VoteDecision::Grant => {}
                VoteDecision::Refuse => return,
                VoteDecision::RunMyself(actions) => {
                    self.run_election_actions(actions);
                    return;
                }
            }
            self.voted_for = Some(from);
            self.persist_hard_state();
            self.emit(Event::VoteGranted { candidate: from });
        }
        // Our own election round is moot now.
        self.seeking_promises = false;
        let msg = PeerMsg::Promise { epoch };
        self.send_to(from, &msg);
    }

    pub(super) fn on_promise(&mut self, from: NodeId, epoch: u64) {
        if epoch > self.epoch {
            self.adopt_epoch(epoch);
            return;
        }
        if epoch == self.epoch && self.seeking_promises && self.role != Role::Leader {
            self.promises.insert(from);
            self.check_won();
        }
    }
}
