//! Leader election algorithms behind one trait, so `raft` and `bully` can slot in next to
//! `lcr`. An algorithm only decides *who should be the candidate*: the promise (vote) round,
//! epochs, fencing and the step from candidate to leader are shared and live in the node.

pub mod lcr;

use crate::events::Credentials;
use crate::ids::NodeId;

/// What an algorithm asks the node to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionAction {
    /// Send an election token carrying `candidate` to `to`.
    SendToken { to: NodeId, candidate: Credentials },
    /// This node is the chosen candidate: ask every member for a promise.
    SeekPromises,
}

/// The facts an algorithm decides on, for the current epoch.
#[derive(Clone, Debug)]
pub struct ElectionContext {
    pub epoch: u64,
    pub me: Credentials,
    /// The next live member on the ring (`None` when alone).
    pub successor: Option<NodeId>,
}

/// One leader-election algorithm.
pub trait Election: Send {
    /// The `algorithm` name in events and status.
    fn name(&self) -> &'static str;
    /// This node starts a candidacy in `ctx.epoch`.
    fn start(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;
    /// An election token for `ctx.epoch` (already the node's epoch) arrived.
    fn on_token(&mut self, ctx: &ElectionContext, candidate: Credentials) -> Vec<ElectionAction>;
    /// Called every heartbeat while no leader is known: retransmit what may have been lost.
    fn retransmit(&mut self, ctx: &ElectionContext) -> Vec<ElectionAction>;
    /// A leader is known for the epoch, or the epoch changed: forget the round.
    fn reset(&mut self);
}
