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

pub mod lcr;

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
    let _ = cfg;
    match kind {
        ElectionKind::Lcr => Some(Box::new(lcr::Lcr::default())),
        ElectionKind::Raft | ElectionKind::Bully => None,
    }
}

/// The algorithm-specific part of an election message, tagged by algorithm so that a node
/// running another algorithm (a misconfigured cluster) sees a clear mismatch, not garbage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alg", content = "m", rename_all = "snake_case")]
pub enum ElectionBody {
    Lcr(lcr::LcrMsg),
}

impl ElectionBody {
    /// The algorithm this body belongs to.
    pub fn kind(&self) -> ElectionKind {
        match self {
            ElectionBody::Lcr(_) => ElectionKind::Lcr,
        }
    }

    /// Short name for logs and tests (`lcr.token`).
    pub fn name(&self) -> &'static str {
        match self {
            ElectionBody::Lcr(m) => m.name(),
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
    /// The view holds a quorum: without one no election this node runs can succeed.
    pub quorum_in_view: bool,
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

    /// A leader is known for the epoch, or the epoch changed: forget the round.
    fn reset(&mut self);
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
        quorum_in_view: true,
        wants: None,
        may_start: true,
        in_round: false,
        seeking_votes: false,
    }
}
