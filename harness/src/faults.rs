//! The history's fault records folded into the shared fault model
//! ([`chat_node::faults::FaultState`]): the one place that says what a `kill`, `partition` or
//! `heal` record means for who is up and who can hear whom. The nemesis applies the same
//! model, `observed` resolves targets with it and the checkers judge against it.

use crate::history::{FaultAction, FaultRecord};
use chat_node::faults::FaultState;
use chat_node::ids::NodeId;

/// The fault state of a harness cluster.
pub type Faults = FaultState<NodeId>;

/// Applies one fault record.
pub fn apply(state: &mut Faults, f: &FaultRecord) {
    match f.action {
        FaultAction::Start | FaultAction::Restart => f.nodes.iter().for_each(|n| state.restart(*n)),
        FaultAction::Kill | FaultAction::Stop => f.nodes.iter().for_each(|n| state.crash(*n)),
        FaultAction::Pause => f.nodes.iter().for_each(|n| state.pause(*n)),
        FaultAction::Resume => f.nodes.iter().for_each(|n| state.resume(*n)),
        FaultAction::Partition => state.partition(&f.groups),
        FaultAction::Cut => {
            for from in &f.nodes {
                for to in &f.to {
                    state.cut(*from, *to);
                }
            }
        }
        FaultAction::Isolate => f.nodes.iter().for_each(|n| state.isolate(*n)),
        FaultAction::Heal => state.heal(),
        // A degraded link (loss, delay, a rate limit) still carries traffic: nobody is cut.
        FaultAction::Loss
        | FaultAction::Delay
        | FaultAction::Duplicate
        | FaultAction::Bandwidth => {}
        // An outsider's datagrams cut nobody off: whatever they change is the nodes' doing.
        FaultAction::Forge => {}
    }
}

/// The quorum a leader needs under these settings: a majority of the cluster size, or one
/// node with `--quorum none`.
pub fn quorum(settings: &crate::scenario::ClusterSettings) -> usize {
    match settings.quorum {
        crate::scenario::Quorum::Majority => settings.cluster_size / 2 + 1,
        crate::scenario::Quorum::None => 1,
    }
}
