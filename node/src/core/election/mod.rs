//! Leader election algorithms behind one trait, so `raft` and `bully` can slot in next to
//! `lcr`. An algorithm only decides *who should be the candidate*: the promise (vote) round,
//! epochs, fencing and the step from candidate to leader are shared and live in the node.

pub mod lcr;

use super::Millis;
use crate::events::Credentials;
use crate::ids::NodeId;
use crate::settings::ElectionKind;

/// The factory: the algorithm a node configured with `kind` runs, or `None` when it is not
/// implemented yet. The one place the node, `--election` validation and the harness's
/// scenario validation learn what exists: a new algorithm is a file plus an arm here.
pub fn build(kind: ElectionKind) -> Option<Box<dyn Election>> {
    match kind {
        ElectionKind::Lcr => Some(Box::new(lcr::Lcr::default())),
        ElectionKind::Raft | ElectionKind::Bully => None,
    }
}

/// What an algorithm asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionAction {
    /// Send an election token carrying `candidate`, `hops` hops old, to `to`.
    SendToken {
        to: NodeId,
        candidate: Credentials,
        hops: u32,
    },
    /// This node is the chosen candidate: ask every member for a promise.
    SeekPromises,
}

/// The facts an algorithm decides on, for the current epoch.
#[derive(Clone, Debug)]
pub struct ElectionContext {
    pub epoch: u64,
    pub me: Credentials,
    /// The live members as this node sees them, itself included, sorted by id.
    pub ring: Vec<NodeId>,
    pub now: Millis,
    /// How long a sent token may go unacknowledged before its successor counts as dead.
    pub ack_timeout: Millis,
}

/// One leader-election algorithm.
pub trait Election: Send {
    /// The `algorithm` name in events and status.
    fn name(&self) -> &'static str;
    /// This node starts a candidacy in `ctx.epoch`.
    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;
    /// An election token for `ctx.epoch` (already the node's epoch) arrived.
    fn on_token(
        &mut self,
        ctx: &ElectionContext,
        candidate: Credentials,
        hops: u32,
    ) -> Vec<ElectionAction>;
    /// `from` acknowledged the token for `candidate` this node sent it.
    fn on_token_ack(&mut self, from: NodeId, candidate: NodeId);
    /// A candidate this node beats asked for its promise: it never saw this node's
    /// candidacy, so send it (again) round the ring.
    fn assert_candidacy(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;
    /// Called every heartbeat while no leader is known: retransmit what may have been lost.
    fn retransmit(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;
    /// A leader is known for the epoch, or the epoch changed: forget the round.
    fn reset(&mut self);
}
