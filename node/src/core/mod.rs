//! The sans-IO protocol core: no sockets, no clock, no threads.
//!
//! A driver (the tokio [`crate::runtime`] or the [`crate::sim`] simulator) feeds [`Input`]s
//! with the current monotonic instant into [`Node::handle_batch`] and carries out the returned
//! [`Output`]s in order. `Persist` records go to storage in the order emitted, **off the event
//! loop**; when the first `upto` records of this run are durable the driver says so with
//! [`Input::Persisted`], and only then does the core send what depends on them (an
//! acknowledgement, a vote, anything in a new epoch: see [`durable::Durability`]).
//! [`Node::handle`] is the same for a caller whose storage is synchronous (the unit tests).
//! The driver feeds `Input::Tick` every [`TICK_MS`]; all timers live in here.

pub mod assignment;
pub mod auth;
pub mod chat;
#[cfg(test)]
mod client_contract_tests;
pub mod credentials;
pub mod dedup;
pub mod detector;
pub mod durable;
pub mod election;
pub mod log;
pub mod membership;
pub mod node;
pub mod proposal;
pub mod replication;
pub mod rng;
pub mod sessions;
pub mod snapshot;
pub mod wire;

pub use durable::{LogEntry, Persist, Restored};
pub use node::Node;

use crate::events::EventRecord;
use crate::ids::{ConnId, NodeId};
use crate::settings::{ElectionKind, QuorumMode};
use credentials::{CredentialJob, CredentialResult};

/// Monotonic milliseconds (virtual in the simulator).
pub type Millis = u64;

/// How often the driver delivers [`Input::Tick`].
pub const TICK_MS: Millis = 10;

/// Largest peer datagram the core produces or accepts.
pub const MAX_DATAGRAM_BYTES: usize = 60 * 1024;

/// The protocol settings of one node.
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    pub cluster: String,
    pub cluster_size: usize,
    pub heartbeat_ms: Millis,
    pub failure_timeout_ms: Millis,
    pub election: ElectionKind,
    pub quorum: QuorumMode,
    /// The `ip:port` clients should use to reach this node (advertised to peers so that a
    /// follower can redirect a client to the leader).
    pub client_addr: String,
    /// Seed for the node's own randomness (jitter); the simulator derives it from its seed.
    pub seed: u64,
    /// A client connection that has not logged in this long after connecting is closed.
    pub login_timeout_ms: Millis,
    /// The cluster secret (or `--insecure`): every peer frame is sealed and checked with it.
    pub peer_key: auth::PeerKey,
    /// The address this node's peer datagrams leave from (`ip:port`), signed into each
    /// frame: a receiver refuses the frame from any other source.
    pub peer_addr: String,
    /// Distinct and higher at every start of this node (the driver keeps it durable): a
    /// receiver's replay window refuses frames of earlier incarnations.
    pub incarnation: u64,
}

/// Default of [`Config::login_timeout_ms`] (`--login-timeout`).
pub const DEFAULT_LOGIN_TIMEOUT_MS: Millis = 5000;

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// Time passed; fire any due timers.
    Tick,
    /// A datagram from the peer network (unicast, broadcast or multicast). `from` is the
    /// sender's address as an opaque string (`ip:port`), remembered for unicast replies.
    Datagram { from: String, bytes: Vec<u8> },
    /// A client opened a TCP connection.
    ClientConnected { conn: ConnId, peer: String },
    /// A client sent one line (without the newline). Parsed and validated by the core.
    ClientLine { conn: ConnId, line: String },
    /// A client connection closed.
    ClientDisconnected { conn: ConnId },
    /// SIGTERM: announce a graceful leave.
    Shutdown,
    /// The driver finished an [`Output::Credential`] job.
    CredentialDone(CredentialResult),
    /// The first `upto` [`Output::Persist`] records since the node started are durable.
    Persisted { upto: u64 },
}

/// Which send queue a unicast datagram takes. Bulk traffic (log Appends) can fill a socket's
/// send buffer — to a dead address, datagrams wait in the kernel for a neighbour that never
/// answers — and nothing a heartbeat, an election message or an acknowledgement needs may
/// wait behind it: the runtime sends the two lanes from different sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Control,
    Bulk,
}

/// Something the driver must do.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send to the subnet's broadcast address on the peer port (discovery).
    Broadcast { bytes: Vec<u8> },
    /// Send to the multicast group (heartbeats).
    Multicast { bytes: Vec<u8> },
    /// Unicast to one peer at the address it was last heard from.
    Send {
        to: NodeId,
        addr: String,
        bytes: Vec<u8>,
        lane: Lane,
    },
    /// Write one line (the driver appends the newline) to a client.
    ToClient { conn: ConnId, line: String },
    /// Close a client connection after writing what was queued.
    CloseClient { conn: ConnId },
    /// Emit an event. `ts_ms` holds the core's monotonic `now`; the runtime replaces it with
    /// wall-clock Unix milliseconds when writing.
    Event(EventRecord),
    /// Make this durable (in order with the other records) and report it with
    /// [`Input::Persisted`]; later outputs need not wait for it.
    Persist(Persist),
    /// Hash or verify a password off the event loop and answer with
    /// [`Input::CredentialDone`] (see [`credentials`]).
    Credential(CredentialJob),
}
