//! Everything that talks to the Docker engine: the per-run network and containers, their log
//! streams, the faults (nemesis), the outsiders of `forge` steps, cleanup by label, and all of
//! it as the runner's
//! [`crate::backend::Backend`] ([`DockerBackend`]).
//!
//! Every object a run creates carries the label [`RUN_LABEL`]`=<run id>`, so two runs can share
//! a host and `harness clean` removes exactly what the harness made.

pub mod backend;
pub mod cleanup;
pub mod cluster;
pub mod connect;
mod delayer;
pub mod links;
pub mod logs;
pub mod nemesis;
pub mod netaccess;
pub mod outsider;
pub mod partition;
mod records;
pub mod secret;
pub mod sidecar;
pub mod subnet;

pub use backend::DockerBackend;
pub use cleanup::{clean_all, clean_run, CleanupGuard, CleanupSummary};
pub use cluster::{Cluster, ClusterSpec, NodeHandle};
pub use connect::{connect, engine, ensure_image, DockerError, Engine};
pub use logs::{LogLine, LogStreams};
pub use nemesis::Nemesis;

/// Label put on every network and container a run creates; its value is the run id.
pub const RUN_LABEL: &str = "faultline.run";
/// Label carrying a container's node id (1-based).
pub const NODE_LABEL: &str = "faultline.node";
/// The node image `make image` builds.
pub const DEFAULT_IMAGE: &str = "faultline/chat-node:latest";
/// The node's TCP client port inside its container.
pub const CLIENT_PORT: u16 = 7070;

/// A short random run id (6 lowercase hex-ish characters): short enough for container names,
/// random enough that two concurrent runs on one host do not collide.
pub fn new_run_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Container name for node `id` of run `run_id`.
pub fn container_name(run_id: &str, id: u64) -> String {
    format!("fl-{run_id}-n{id}")
}

/// Network name of run `run_id`.
pub fn network_name(run_id: &str) -> String {
    format!("fl-{run_id}")
}

/// Milliseconds since the Unix epoch on the host clock (the history's time base).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_and_name_safe() {
        let id = new_run_id();
        assert_eq!(id.len(), 6);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(container_name(&id, 3), format!("fl-{id}-n3"));
        assert_ne!(new_run_id(), new_run_id(), "two ids in a row should differ");
    }
}
