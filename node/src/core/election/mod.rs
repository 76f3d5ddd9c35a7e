//! Leader election algorithms behind one trait, built by one factory from [`ElectionKind`]
//! (quinn-proto's congestion `Controller` and `ControllerFactory` are the model).
//!
//! The split of work: an algorithm owns its messages (one [`ElectionBody`] variant, carried in
//! `PeerMsg::Election { epoch, body }`), its timers and its vote policy (grant, refuse, or run
//! itself). The node's glue (`core/node/elect.rs`) owns what safety rests on and what every
//! algorithm shares: the durable epoch and vote (at most one vote per epoch), the epoch check
//! of every message (once, before the algorithm sees it), the vote round (`Elected` asks,
//! `Promise` grants, a quorum of distinct voters elects), fencing and the leader's heartbeats.
//! An algorithm can therefore choose badly and cost liveness, but cannot elect two leaders.
//!
//! Adding an algorithm: a new file with a type implementing [`Election`], its message enum as
//! one more [`ElectionBody`] variant, and one arm in [`build`]. Neither `node.rs` nor
//! `wire.rs` changes.

pub mod bully;
pub mod lcr;
pub mod raft;

use super::Millis;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use crate::settings::ElectionKind;
use serde::{Deserialize, Serialize};

/// What the factory builds an algorithm from (as quinn builds a controller from the
/// transport config): the node's timing and its seed for randomised timeouts.
#[derive(Clone, Copy, Debug, Default)]
pub struct ElectionConfig {
    pub heartbeat_ms: Millis,
    pub failure_timeout_ms: Millis,
    pub seed: u64,
}

/// The factory: the algorithm a node configured with `kind` runs, or `None` when it is not
/// implemented. The one place the node, `--election` validation and the harness's scenario
/// validation learn what exists.
pub fn build(kind: ElectionKind, cfg: ElectionConfig) -> Option<Box<dyn Election>> {
    match kind {
        ElectionKind::Lcr => Some(Box::new(lcr::Lcr::default())),
        ElectionKind::Raft => Some(Box::new(raft::Raft::new(cfg))),
        ElectionKind::Bully => Some(Box::new(bully::Bully::default())),
    }
}

/// The algorithm-specific part of an election message, tagged by algorithm so that a node
/// running another algorithm (a misconfigured cluster) sees a clear mismatch, not garbage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alg", content = "m", rename_all = "snake_case")]
pub enum ElectionBody {
    Lcr(lcr::LcrMsg),
    Raft(raft::RaftMsg),
    Bully(bully::BullyMsg),
}

impl ElectionBody {
    /// The algorithm this body belongs to.
    pub fn kind(&self) -> ElectionKind {
        match self {
            ElectionBody::Lcr(_) => ElectionKind::Lcr,
            ElectionBody::Raft(_) => ElectionKind::Raft,
            ElectionBody::Bully(_) => ElectionKind::Bully,
        }
    }

    /// Short name for logs and tests (`lcr.token`).
    pub fn name(&self) -> &'static str {
        match self {
            ElectionBody::Lcr(m) => m.name(),
            ElectionBody::Raft(m) => m.name(),
            ElectionBody::Bully(m) => m.name(),
        }
    }
}

/// What an algorithm asks the node to do.
#[derive(Clone, Debug, PartialEq)]
pub enum ElectionAction {
    /// Unicast an election message, stamped with the node's current epoch.
    Send { to: NodeId, body: ElectionBody },
    /// Start an election: the node moves to the next epoch as candidate, emits
    /// `election_started` and then calls [`Election::start`].
    StartElection { trigger: &'static str },
    /// An election is running in this epoch that this node takes part in: arm the node's
    /// retry deadline (a round that produces no leader is retried in a higher epoch).
    Join,
    /// Ask every member for its vote in the current epoch (the shared vote round); `reason`
    /// is the `role_changed` reason.
    SeekVotes { reason: &'static str },
}

/// A vote policy's answer to a candidate's request (after the node's own rules: one vote
/// per epoch, never for a less up-to-date log).
#[derive(Clone, Debug, PartialEq)]
pub enum VoteDecision {
    Grant,
    /// No vote, silently (the candidate's round times out or another wins).
    Refuse,
    /// No vote: this node should lead instead; carry out these actions.
    RunMyself(Vec<ElectionAction>),
}

/// The facts an algorithm decides on, fresh for every call.
#[derive(Clone, Debug)]
pub struct ElectionContext {
    pub epoch: u64,
    pub role: Role,
    pub me: Credentials,
    /// The live members as this node sees them, itself included, sorted by id.
    pub view: Vec<NodeId>,
    pub now: Millis,
    pub heartbeat_ms: Millis,
    pub failure_timeout_ms: Millis,
    /// The leader this node follows (or itself) in `epoch`.
    pub leader: Option<NodeId>,
    /// When the known leader was last heard (or this node last followed or led one).
    pub leader_contact: Millis,
    /// The vote this node cast in `epoch`, if any.
    pub voted_for: Option<NodeId>,
    /// Members a leader needs, itself included (1 with `--quorum none`).
    pub quorum: usize,
    /// The view holds a quorum: without one no election this node runs can succeed.
    pub quorum_in_view: bool,
    /// The members of the view (this node included) that, as far as this node knows from
    /// the views its peers advertise, exchange messages both ways with a quorum. Only they
    /// can gather a quorum of votes; see [`ElectionContext::rank`].
    pub can_lead: Vec<NodeId>,
    /// The peers of the view that, as far as this node knows from their beacons, hear it
    /// and hold a quorum in their own view: the ones that would take part in its election.
    /// A message to any other is sent into a one-way cut or to a node that ignores it.
    pub takes_part: Vec<NodeId>,
    /// Why the node would start an election (leader lost, retry deadline passed, startup),
    /// `None` while one is running or a leader is known.
    pub wants: Option<&'static str>,
    /// The node may start an election now: it leads nobody and follows nobody, it has
    /// listened long enough after starting, it has a quorum in view, and no live member
    /// follows a live leader it has not heard yet.
    pub may_start: bool,
    /// An election round is running in `epoch` (the retry deadline is armed).
    pub in_round: bool,
    /// This node is asking for votes in `epoch`.
    pub seeking_votes: bool,
}

impl ElectionContext {
    /// Whether `id` can lead as far as this node knows. A node outside the view is given the
    /// benefit of the doubt: this node knows nothing against it.
    pub fn can_lead(&self, id: NodeId) -> bool {
        self.can_lead.contains(&id) || !self.view.contains(&id)
    }

    /// The order in which candidates are preferred: first whether they can lead at all,
    /// then the credentials `(last log epoch, last log index, id)`. Without the first key a
    /// best-credentialled node behind a one-way cut would be preferred for ever and win
    /// never, while a node that talks both ways with a majority defers to it.
    pub fn rank(&self, c: Credentials) -> (bool, Credentials) {
        (self.can_lead(c.id), c)
    }

    /// This node should lead rather than `candidate`: it can lead itself and outranks it.
    /// What this node knows of the others' links is partial (it hears only part of the
    /// cluster), so a node that cannot lead never holds another back.
    pub fn outranks(&self, candidate: Credentials) -> bool {
        self.can_lead(self.me.id) && self.rank(self.me) > self.rank(candidate)
    }
}

/// How long an algorithm may take to elect a leader once the old one is detected as gone,
/// declared by the algorithm as a formula in the cluster's settings:
/// `failure_timeouts × ft + heartbeats × hb + (hops_per_member × n + hops) × hop`, with `hop`
/// one network hop plus the receiver's tick (the harness uses 20 ms). Failure detection
/// (`ft + 2 hb`) comes on top (the harness's failover deadline is the sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub failure_timeouts: u64,
    pub heartbeats: u64,
    pub hops_per_member: u64,
    pub hops: u64,
}

impl Allowance {
    /// The allowance in ms for these settings.
    pub fn resolve(
        &self,
        heartbeat_ms: Millis,
        failure_timeout_ms: Millis,
        members: u64,
        hop_ms: Millis,
    ) -> Millis {
        self.failure_timeouts * failure_timeout_ms
            + self.heartbeats * heartbeat_ms
            + (self.hops_per_member * members + self.hops) * hop_ms
    }

    /// The formula, as the report prints it: `2 hb + (2n + 2) hops`.
    pub fn formula(&self) -> String {
        let mut terms = Vec::new();
        if self.failure_timeouts > 0 {
            terms.push(format!("{} ft", self.failure_timeouts));
        }
        if self.heartbeats > 0 {
            terms.push(format!("{} hb", self.heartbeats));
        }
        match (self.hops_per_member, self.hops) {
            (0, 0) => {}
            (0, h) => terms.push(format!("{h} hops")),
            (m, 0) => terms.push(format!("{m}n hops")),
            (m, h) => terms.push(format!("({m}n + {h}) hops")),
        }
        terms.join(" + ")
    }
}

/// The failover allowance of `kind` (what [`Election::failover_allowance`] declares).
pub fn allowance(kind: ElectionKind) -> Option<Allowance> {
    build(kind, ElectionConfig::default()).map(|e| e.failover_allowance())
}

/// One leader-election algorithm.
pub trait Election: Send {
    fn kind(&self) -> ElectionKind;

    /// The `algorithm` name in events and status.
    fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Every tick while this node is not the leader: the algorithm's own timers, and when it
    /// decides to start an election ([`ElectionAction::StartElection`]).
    fn on_tick(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;

    /// Every heartbeat interval while no leader is known: retransmit what may have been lost.
    fn on_heartbeat(&mut self, _ctx: &ElectionContext) -> Vec<ElectionAction> {
        Vec::new()
    }

    /// This node just entered `ctx.epoch` as candidate.
    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;

    /// A message of this algorithm for `ctx.epoch` (the node has checked the epoch) from
    /// `from`.
    fn on_message(
        &mut self,
        ctx: &ElectionContext,
        from: NodeId,
        body: ElectionBody,
    ) -> Vec<ElectionAction>;

    /// A message of a higher epoch than this node's arrived: whether to adopt that epoch
    /// (`true`, the default) or to drop the message and stay (Raft's leader stickiness).
    /// `body` is `None` for the shared vote request.
    fn adopts_epoch(&self, _ctx: &ElectionContext, _body: Option<&ElectionBody>) -> bool {
        true
    }

    /// `candidate` asks for this node's vote in `ctx.epoch`; the node grants at most one per
    /// epoch and never to a less up-to-date log, whatever this says.
    fn on_vote_request(&mut self, ctx: &ElectionContext, candidate: Credentials) -> VoteDecision;

    /// The node's epoch and vote just became durable, so the request or promise that waited
    /// for them has only now left. An algorithm with a round timer of its own restarts it
    /// here, so that a slow disk lengthens a round instead of making it time out.
    fn on_hard_state_durable(&mut self, _ctx: &ElectionContext) {}

    /// A leader is known for the epoch, or the epoch changed: forget the round.
    fn reset(&mut self);

    /// How long after the old leader's loss is detected this algorithm may take to elect,
    /// with its derivation in the implementation's doc comment.
    fn failover_allowance(&self) -> Allowance;
}

/// A context for algorithm unit tests: a follower in epoch 1 with no leader, alone in view,
/// heartbeat 100 ms, failure timeout 500 ms, free to start.
#[cfg(test)]
pub(crate) fn test_ctx(me: Credentials) -> ElectionContext {
    ElectionContext {
        epoch: 1,
        role: Role::Follower,
        me,
        view: vec![me.id],
        now: 0,
        heartbeat_ms: 100,
        failure_timeout_ms: 500,
        leader: None,
        leader_contact: 0,
        voted_for: None,
        quorum: 1,
        quorum_in_view: true,
        can_lead: vec![me.id],
        takes_part: Vec::new(),
        wants: None,
        may_start: true,
        in_round: false,
        seeking_votes: false,
    }
}
