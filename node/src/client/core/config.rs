//! How a client reaches the cluster and how long it waits: the settings every driver of the
//! [`ClientCore`](super::ClientCore) shares (the tokio session, the simulator, the harness).

use super::super::recent_failures::FAILED_ADDRESS_COOLDOWN;
use std::time::Duration;

/// Time to open a TCP connection and read the `welcome` line. On a LAN both take a few
/// milliseconds; a crashed server's address usually does not answer at all (no RST from a
/// killed container, the SYN is retransmitted after 1 s, 3 s, …), so waiting longer only
/// delays the try of the next candidate. It equals the servers' default failure timeout: by
/// the time it fires, the survivors have normally elected a new leader.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time for one attempt of one request, from sending it to its reply. A reply comes after a
/// majority commit (a replication round trip and an fsync: milliseconds), a login after an
/// argon2id check (tens of milliseconds); under the heaviest measured load (256 requests
/// outstanding) the p99 was 1.7 s. 2 s lets a loaded leader answer, and abandons a leader
/// that froze or died without closing the connection within a few failure timeouts. A
/// timeout is safe: the request is retried with the same message id.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one request including every reconnection and retry. A failover takes about one
/// to three failure timeouts (0.5–1.5 s by default) until the new leader acknowledges; 10 s
/// rides out several in a row, a leader that is slow to apply its predecessors' log, and the
/// back-off between discovery rounds (50 ms doubling to 500 ms). After it the caller hears
/// the error and decides (the message may still have committed: retry it with its id).
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// How long discovery listens. Answers come within milliseconds on a LAN; the broadcast is
/// sent three times within the window against UDP loss. Discovery stops early at the first
/// `role: leader` answer from an address that has not just failed.
pub const DEFAULT_DISCOVERY_WINDOW: Duration = Duration::from_millis(300);
/// Ack after this many unacknowledged messages even while more are arriving (and whenever
/// the queue drains). A mailbox page is 256 messages, so a reader acks many times per page.
pub const DEFAULT_ACK_BATCH: u64 = 16;

/// `unavailable` answers in a row a connection is given (100 ms apart, so an election's
/// worth) before the client tries another server.
pub const UNAVAILABLE_RETRIES: u32 = 15;
/// Pause before a request answered `unavailable` is sent again on the same connection.
pub const UNAVAILABLE_PAUSE_MS: u64 = 100;
/// Back-off after every candidate failed: doubling from the first to the last.
pub const BACKOFF_FIRST_MS: u64 = 50;
pub const BACKOFF_MAX_MS: u64 = 500;

/// How a session reaches the cluster.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub cluster: String,
    /// The servers' peer port, where discovery broadcasts go.
    pub peer_port: u16,
    /// Client addresses (`ip:port`) to try; empty means "discover by broadcast".
    pub servers: Vec<String>,
    pub user: String,
    /// The user's password: registers the name at its first login, needed at every later one.
    pub password: String,
    /// Time allowed to open a connection and read the welcome line. Short: a crashed
    /// server's address often does not answer at all, and another server may be leading.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request.
    pub request_timeout: Duration,
    /// Time allowed for a request including reconnections and retries.
    pub retry_deadline: Duration,
    /// How long discovery listens for answers.
    pub discovery_window: Duration,
    /// Ack after this many unacknowledged messages even if more are arriving.
    pub ack_batch: u64,
    /// How long an address that just failed is tried only after every other candidate.
    pub failed_address_cooldown: Duration,
    /// Move to the leader when a follower's `welcome` names it (one hop less per write).
    /// Off, the session stays on the first server that serves (every server does while it
    /// knows a leader), which spreads users over the servers.
    pub prefer_leader: bool,
    /// Without `prefer_leader`: log in where the leader's assignment says (a discovery
    /// answer's or a `welcome`'s `assigned_addr`: the least-loaded live server), moving at
    /// most once per connection round. Off, the session stays on the first server that serves.
    pub follow_assignment: bool,
}

impl SessionConfig {
    pub fn new(user: &str, password: &str) -> SessionConfig {
        SessionConfig {
            cluster: "faultline".into(),
            peer_port: 7400,
            servers: Vec::new(),
            user: user.into(),
            password: password.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry_deadline: DEFAULT_RETRY_DEADLINE,
            discovery_window: DEFAULT_DISCOVERY_WINDOW,
            ack_batch: DEFAULT_ACK_BATCH,
            failed_address_cooldown: FAILED_ADDRESS_COOLDOWN,
            prefer_leader: true,
            follow_assignment: true,
        }
    }
}

/// A duration as the core's milliseconds.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
