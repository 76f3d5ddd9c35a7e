//! Every server serves clients (issue 12): a request made on a follower is forwarded to the
//! leader as a `forward` datagram carrying the op and its [`ProposalId`]; the leader appends
//! it like its own clients' ops, with that id as the entry's origin. The follower answers its
//! client when it applies the entry with that origin, so the answer is the committed result,
//! on whichever leader it committed. A forward the leader cannot take is refused at once
//! (`forward_refused`); one that is lost, or whose leader died with it, expires after
//! [`Node::pending_wait`] as a retryable `unavailable` (a retry with the same message id is
//! exactly-once).

use super::Node;
use crate::core::chat::ChatOp;
use crate::core::proposal::ProposalId;
use crate::core::wire::PeerMsg;
use crate::core::{Lane, Millis};
use crate::ids::{NodeId, Role};
use std::collections::{BTreeSet, VecDeque};

/// Forwarded proposals the leader remembers, so that a duplicated datagram is appended once.
const RECENT_FORWARDS: usize = 4096;

/// The proposal ids a leader appended recently, oldest first.
#[derive(Debug, Default)]
pub(super) struct RecentForwards {
    order: VecDeque<ProposalId>,
    seen: BTreeSet<ProposalId>,
}

impl RecentForwards {
    /// Records `id`; false if it was already there.
    fn insert(&mut self, id: ProposalId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > RECENT_FORWARDS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

impl Node {
    /// Proposes `op` here (leader) or forwards it to the leader (anyone else).
    pub(super) fn submit(&mut self, op: ChatOp, id: ProposalId) {
        if self.role == Role::Leader {
            self.propose(op, Some(id));
            return;
        }
        match self.advertised_leader() {
            Some(leader) if leader != self.cfg.id => {
                let msg = PeerMsg::Forward {
                    epoch: self.epoch,
                    id,
                    op,
                };
                self.send_on(leader, &msg, Lane::Bulk);
            }
            _ => {
                let mut outs = Vec::new();
                self.sessions.fail(
                    id,
                    "no leader is known to commit the request; retry with the same id in a moment",
                    &mut outs,
                );
                self.session_outputs(outs);
            }
        }
    }

    /// A follower's client request: append it, once, if this node leads.
    pub(super) fn on_forward(&mut self, from: NodeId, id: ProposalId, op: ChatOp) {
        if id.node != from {
            return; // a member forwards only its own clients' requests
        }
        if self.role != Role::Leader {
            let msg = PeerMsg::ForwardRefused {
                epoch: self.epoch,
                id,
            };
            self.send_to(from, &msg);
            return;
        }
        if self.recent_forwards.insert(id) {
            self.propose(op, Some(id));
        }
    }

    /// The node this server forwarded `id` to does not lead (any more).
    pub(super) fn on_forward_refused(&mut self, id: ProposalId) {
        if id.node != self.cfg.id {
            return;
        }
        let mut outs = Vec::new();
        self.sessions.fail(
            id,
            "the server this request was forwarded to no longer leads; retry with the same id",
            &mut outs,
        );
        self.session_outputs(outs);
    }

    /// How long a request may wait here for its entry once this node does not lead: two
    /// failure timeouts covers a lost leader's detection and the next election, and stays
    /// below the client's request timeout, so the client gets a clear `unavailable`.
    pub(super) fn pending_wait(&self) -> Millis {
        2 * self.cfg.failure_timeout_ms
    }
}
