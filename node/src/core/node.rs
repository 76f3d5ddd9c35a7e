//! Glues membership, detection, election, replication and chat: inputs in, outputs out.
//! (Placeholder: the core owner fills it in.)

use super::{Config, Input, Millis, Output, Restored};
use crate::protocol::ClusterStatus;

pub struct Node {
    config: Config,
}

impl Node {
    pub fn new(config: Config, restored: Restored, now: Millis) -> Node {
        let _ = (restored, now);
        Node { config }
    }

    pub fn handle(&mut self, now: Millis, input: Input) -> Vec<Output> {
        let _ = (now, input, &self.config);
        Vec::new()
    }

    pub fn status(&self) -> ClusterStatus {
        unimplemented!("core owner")
    }
}
