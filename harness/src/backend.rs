//! The seam between the step runner and whatever runs the nodes. The runner resolves targets,
//! keeps the history and judges conditions; a [`Backend`] only does what it is told to node
//! ids it is given, says when it did it, and hands over what the nodes wrote. Docker
//! ([`crate::docker::DockerBackend`]) is one implementation; the simulator can be another
//! for the same YAML files (Maelstrom runs Jepsen's nemesis against a simulated network the
//! same way).
//!
//! Every fault returns the backend-clock instant (Unix ms) that stamps it in the history:
//! taken just before the fault takes effect, so figures measured from it never flatter.

use crate::history::Record;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::Duration;

/// Why a backend could not do what it was asked; the message says what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// This backend (or this host) cannot make the fault at all.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The fault was attempted and failed.
    #[error("{0}")]
    Failed(String),
}

impl From<crate::docker::DockerError> for BackendError {
    fn from(e: crate::docker::DockerError) -> Self {
        BackendError::Failed(e.to_string())
    }
}

/// A result stamped with the backend-clock ms at which it took effect.
pub type Stamped = Result<u64, BackendError>;

/// A degraded link, on resolved node ids. Each replaces the same kind of fault already in
/// force on the same receiver (a second `delay` to a node sets its new delay); `heal`
/// removes them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkFault {
    /// Packets from `from` to `to` dropped at random, `percent` in 100.
    Loss {
        from: Vec<u64>,
        to: Vec<u64>,
        percent: u8,
    },
    /// Packets from the other nodes to `to` held `ms` ± `jitter_ms` (uniform), so the jitter
    /// also reorders them.
    Delay {
        to: Vec<u64>,
        ms: u64,
        jitter_ms: u64,
    },
    /// Traffic to `to` limited to `rate_bps` bits per second.
    Bandwidth { to: Vec<u64>, rate_bps: u64 },
    /// Packets from the other nodes to `to` delivered twice, `percent` in 100.
    Duplicate { to: Vec<u64>, percent: u8 },
}

/// An outsider to run on the cluster's network (a `forge` step, with its choices made):
/// a host that is no member, replaying and forging peer datagrams for `duration`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsiderSpec {
    /// Kind names as `chat-node forge --kinds` takes them.
    pub kinds: Vec<String>,
    pub rate_per_s: u32,
    pub duration: Duration,
    /// Seeds the outsider's choices (from the run's seed).
    pub seed: u64,
    /// User and room names to put in forged log entries.
    pub users: Vec<String>,
    pub rooms: Vec<String>,
}

/// What the runner needs from the thing that runs the nodes. Node ids are 1-based and name
/// the same node for the whole run (a restarted node keeps its id and address).
pub trait Backend: Send {
    /// One line for the run's header: where the cluster lives.
    fn describe(&self) -> String;
    /// The node ids, in order.
    fn ids(&self) -> Vec<u64>;
    /// Where clients reach each node (in id order).
    fn client_addrs(&self) -> Vec<SocketAddr>;

    /// Starts nodes for the first time: one after another, or all at once.
    fn start<'a>(&'a mut self, ids: &'a [u64], all_at_once: bool) -> BoxFuture<'a, Stamped>;
    /// A crash (SIGKILL).
    fn kill<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// A graceful stop (SIGTERM).
    fn stop<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// Freeze (a GC stall, a zombie).
    fn pause<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    fn resume<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// Start killed or stopped nodes again (same id, same address, same data); network
    /// faults in force apply to them again.
    fn restart<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// Only nodes in the same group reach each other (added to the cuts in force).
    fn partition<'a>(&'a mut self, groups: &'a [Vec<u64>]) -> BoxFuture<'a, Stamped>;
    /// One-way: packets from `from` no longer reach `to`.
    fn cut<'a>(&'a mut self, from: &'a [u64], to: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// The nodes reach nobody and nobody reaches them.
    fn isolate<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped>;
    /// Every partition, cut, isolation and link fault removed.
    fn heal(&mut self) -> BoxFuture<'_, Stamped>;
    /// Degrades links. Returns the stamp and the mechanism that made it (`nft numgen`,
    /// `netem`, `nfqueue delayer`, `tbf`); [`BackendError::Unsupported`] naming what is
    /// missing when this host cannot.
    fn link<'a>(
        &'a mut self,
        fault: &'a LinkFault,
    ) -> BoxFuture<'a, Result<(u64, String), BackendError>>;

    /// Starts an outsider that forges for `spec.duration` in the background and stops by
    /// itself; its lines come through [`Backend::records`] as harness records. Returns the
    /// stamp and the outsider's network address.
    fn forge<'a>(
        &'a mut self,
        spec: &'a OutsiderSpec,
    ) -> BoxFuture<'a, Result<(u64, String), BackendError>> {
        let _ = spec;
        Box::pin(async {
            Err(BackendError::Unsupported(
                "this backend cannot run an outsider".into(),
            ))
        })
    }

    /// The backend's clock, Unix ms (the history's time base).
    fn now_ms(&self) -> u64;
    /// Waits `d` on the backend's clock.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// Every record the nodes produced since the last call (their events and log lines).
    fn records(&mut self) -> Vec<Record>;
    /// Stops following the nodes and removes the cluster (or leaves it running when `keep`,
    /// printing how to remove it). Also runs after an error or Ctrl-C.
    fn teardown(&mut self, keep: bool) -> BoxFuture<'_, ()>;
}
