//! Who proposed a log entry, so that the server holding the client's connection can answer
//! it when the entry is applied there — on the leader, or on the follower that forwarded it
//! (issue 12). An entry is matched by this id, never by its index: a forwarded request does
//! not know its index, and an entry that commits under a later leader is still the same
//! request with the same answer.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// `serial` is unique within one run of `node`: it starts from a per-start base (see
/// `Config::first_job`), so an entry proposed by an earlier incarnation matches nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId {
    pub node: NodeId,
    pub serial: u64,
}

impl std::fmt::Display for ProposalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.node, self.serial)
    }
}
