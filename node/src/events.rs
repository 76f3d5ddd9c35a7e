//! The observable contract: one JSON object per line on stdout for every state change that
//! matters. The harness builds its history from these; `docs/EVENTS.md` documents them.
//! Bump [`EVENTS_VERSION`] on any incompatible change.

use crate::ids::{NodeId, Role};
use serde::{Deserialize, Serialize};

fn one() -> u64 {
    1
}

/// Version of the event schema, written into every record as `v`.
pub const EVENTS_VERSION: u32 = 2;

/// One line of a node's event stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Schema version ([`EVENTS_VERSION`]).
    pub v: u32,
    /// Milliseconds since the Unix epoch (wall clock) when written by the runtime; virtual
    /// milliseconds in the simulator.
    pub ts_ms: u64,
    /// The node that observed the change.
    pub node: NodeId,
    /// The node's current epoch (term) when the event happened.
    pub epoch: u64,
    /// The node's role when the event happened (after the change, for `role_changed`).
    pub role: Role,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Where a chat message goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A private message to one user.
    User(String),
    /// A post to a room.
    Room(String),
}

/// The candidate credentials compared by LCR and Bully: the winner holds every committed entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Credentials {
    pub last_log_epoch: u64,
    pub last_log_index: u64,
    pub id: NodeId,
}

/// Every kind of event, tagged by `"event"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node started (or restarted) with these settings.
    Started {
        cluster: String,
        election: String,
        quorum: String,
        cluster_size: usize,
        heartbeat_ms: u64,
        failure_timeout_ms: u64,
        /// Log entries restored from the data directory (0 on a fresh start).
        restored_entries: u64,
    },
    /// A peer was heard from for the first time.
    PeerDiscovered { peer: NodeId, addr: String },
    /// A peer has been silent for half the failure timeout (early warning, no action).
    PeerSuspected { peer: NodeId, silence_ms: u64 },
    /// A peer has been silent for the failure timeout: it leaves the live view.
    PeerDown { peer: NodeId, silence_ms: u64 },
    /// A peer that was down or suspected was heard again.
    PeerBack { peer: NodeId, silence_ms: u64 },
    /// A peer announced a graceful leave (SIGTERM).
    PeerLeft { peer: NodeId },
    /// The set of live members (self included) changed.
    ViewChanged { members: Vec<NodeId> },
    /// This node started an election for `epoch` (the record's epoch).
    ElectionStarted {
        trigger: String,
        algorithm: String,
        credentials: Credentials,
    },
    /// This node would start an election but its epoch is already `u64::MAX`: epochs never
    /// wrap, so it stays where it is (written once per start). Only a member holding the
    /// cluster secret can have put an epoch that high into the cluster.
    EpochExhausted { trigger: String },
    /// This node took part in an election it did not start (an LCR token reached it, a Bully
    /// election message, a candidate it outranks): its credentials then, and whether it
    /// believed it could lead (talk both ways with a quorum), so that a checker can compare
    /// the winner with every participant, not only with the starters.
    ElectionJoined {
        algorithm: String,
        credentials: Credentials,
        can_lead: bool,
    },
    /// Election datagrams (the algorithm's own messages: tokens, vote requests and replies,
    /// answers, coordinators) this node sealed in one turn of its event loop; one line per
    /// turn that sent any. Heartbeats and appends are not counted.
    ElectionMessages { sent: u32 },
    /// This node granted its vote (promise) to a candidate for the record's epoch.
    VoteGranted { candidate: NodeId },
    /// A leader was established for the record's epoch. Emitted by the leader itself when it
    /// wins (`votes` = promises received) and by each follower when it accepts it.
    LeaderElected {
        leader: NodeId,
        votes: usize,
        credentials: Credentials,
    },
    /// The node's role changed.
    RoleChanged {
        from: Role,
        to: Role,
        reason: String,
    },
    /// A log entry was committed and applied on this node.
    Committed {
        index: u64,
        entry_epoch: u64,
        /// Operation kind: `send`, `post`, `login`, `logout`, `join`, `leave`, `ack`, `noop`, …
        op: String,
        /// For chat messages: the sender, the client's message id and the target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Target>,
        /// Per-room sequence number of a room post.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_seq: Option<u64>,
        /// True when the entry was a retry of an already committed message id.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    /// The node snapshotted its chat state at `index` (`bytes`: its JSON size) and dropped
    /// the log up to `log_start`. Entries up to `index` are applied and were `committed`
    /// here as usual.
    SnapshotTaken {
        index: u64,
        bytes: u64,
        log_start: u64,
    },
    /// The leader starts sending `peer` its snapshot at `index`: the entries `peer` needs
    /// next are no longer in the log.
    SnapshotSending {
        peer: NodeId,
        index: u64,
        bytes: u64,
    },
    /// The node installed the snapshot at `index` sent by `from`: its chat state is the
    /// leader's there, and it never applies (nor reports `committed` for) the entries from
    /// `skipped_from` to `index`.
    SnapshotInstalled {
        from: NodeId,
        index: u64,
        skipped_from: u64,
        bytes: u64,
    },
    /// A chat message was written to a connected client's socket.
    Delivered {
        user: String,
        from: String,
        id: String,
        /// The recipient's inbox sequence number.
        useq: u64,
    },
    /// A client TCP connection was accepted.
    ClientConnected { conn: u64, peer: String },
    /// A client TCP connection ended.
    ClientDisconnected {
        conn: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// A user logged in on this node (after the login was committed).
    LoggedIn {
        user: String,
        conn: u64,
        mailbox: u64,
    },
    /// A login was refused: wrong password (or a registration that lost a race). The
    /// password is never logged.
    AuthFailed { user: String, conn: u64 },
    /// A datagram or client line was refused. `count` is the node's running total.
    InputRejected {
        source: String,
        from: String,
        reason: String,
        count: u64,
        /// Refusals this event stands for: peer refusals are reported at most once a second
        /// per kind, the latest one's `from` and `reason` standing for the rest.
        #[serde(default = "one")]
        times: u64,
    },
    /// The node is stopping (SIGTERM: graceful leave).
    Stopping { reason: String },
    /// The state file was repaired at start (right after `started`): `cut_torn_tail` (a
    /// crash tore the last record, which was cut), `upgraded` (a file without checksums was
    /// rewritten with them) or `data_loss_accepted` (`--accept-data-loss` dropped the records
    /// from `line` on, or started a node without hard state).
    StateRepaired {
        action: String,
        file: String,
        /// 1-based line of the record concerned.
        line: u64,
        /// Bytes dropped (for `upgraded`: the bytes read).
        bytes: u64,
        detail: String,
    },
    /// The runtime's cumulative I/O counters since the process started, written about once a
    /// second while they change (the benchmark reads them; see docs/EVENTS.md).
    IoStats {
        /// fsync calls on the state file.
        fsyncs: u64,
        /// Bytes appended to the state file.
        persist_bytes: u64,
        /// Peer datagrams handed to the kernel (unicast, broadcast, multicast).
        datagrams_sent: u64,
        /// Their payload bytes.
        datagram_bytes: u64,
        /// Datagrams the kernel refused (see `send_failed`).
        send_errors: u64,
        /// Event lines written before this one, and their bytes (newlines included).
        event_lines: u64,
        event_bytes: u64,
        /// Since the previous `io_stats`: the longest gap between two heartbeats this node
        /// multicast, and the longest the event loop spent on one turn (the core and carrying
        /// out its outputs). Absent from runtimes older than these fields.
        #[serde(default)]
        heartbeat_gap_max_ms: u64,
        #[serde(default)]
        turn_max_ms: u64,
    },
    /// Events of one driver turn that share this record's header, in order (schema v2). The
    /// runtime puts consecutive `committed` and `delivered` events in one line: under load one
    /// line per message per node through Docker's log driver cost more CPU than the nodes.
    /// Readers take each inner event as a record of its own ([`EventRecord::expand`]).
    Batch { events: Vec<Event> },
    /// The kernel refused to send a peer datagram (a full socket buffer, an unreachable
    /// address). Written for the first refusal and then at most once a second; `count` is the
    /// running total, `to` and `reason` are the latest refusal's.
    SendFailed {
        to: String,
        reason: String,
        count: u64,
    },
}

impl EventRecord {
    /// Serialises the record as one JSON line (no trailing newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("event records always serialise")
    }

    /// Parses one line of a node's stdout; `None` for lines that are not events. A `batch`
    /// stays one record: [`EventRecord::from_line_all`] expands it.
    pub fn from_line(line: &str) -> Option<EventRecord> {
        serde_json::from_str(line.trim()).ok()
    }

    /// Every event one line carries (one for most lines, each inner event of a `batch`);
    /// empty for lines that are not events.
    pub fn from_line_all(line: &str) -> Vec<EventRecord> {
        EventRecord::from_line(line).map_or_else(Vec::new, EventRecord::expand)
    }

    /// The record itself, or, for a `batch`, one record per inner event with the batch's
    /// header (nested batches are flattened too).
    pub fn expand(self) -> Vec<EventRecord> {
        let EventRecord {
            v,
            ts_ms,
            node,
            epoch,
            role,
            event,
        } = self;
        let with_header = |event| EventRecord {
            v,
            ts_ms,
            node,
            epoch,
            role,
            event,
        };
        match event {
            Event::Batch { events } => events
                .into_iter()
                .flat_map(|event| with_header(event).expand())
                .collect(),
            event => vec![with_header(event)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_one_flat_json_object() {
        let rec = EventRecord {
            v: EVENTS_VERSION,
            ts_ms: 1,
            node: NodeId(3),
            epoch: 7,
            role: Role::Leader,
            event: Event::LeaderElected {
                leader: NodeId(3),
                votes: 3,
                credentials: Credentials {
                    last_log_epoch: 6,
                    last_log_index: 10,
                    id: NodeId(3),
                },
            },
        };
        let line = rec.to_line();
        assert!(line.contains(r#""event":"leader_elected""#), "{line}");
        assert!(line.contains(r#""node":3"#), "{line}");
        assert_eq!(EventRecord::from_line(&line), Some(rec));
        assert_eq!(EventRecord::from_line("not json"), None);
    }

    #[test]
    fn a_batch_line_expands_into_its_events_with_the_batch_header() {
        let delivered = |useq| Event::Delivered {
            user: "bob".into(),
            from: "alice".into(),
            id: format!("a-{useq}"),
            useq,
        };
        let batch = EventRecord {
            v: EVENTS_VERSION,
            ts_ms: 5,
            node: NodeId(2),
            epoch: 4,
            role: Role::Follower,
            event: Event::Batch {
                events: vec![delivered(1), delivered(2)],
            },
        };
        let line = batch.to_line();
        assert!(line.contains(r#""event":"batch""#), "{line}");
        let all = EventRecord::from_line_all(&line);
        assert_eq!(all.len(), 2);
        for (rec, useq) in all.iter().zip([1, 2]) {
            assert_eq!((rec.ts_ms, rec.node, rec.epoch), (5, NodeId(2), 4));
            assert_eq!(rec.role, Role::Follower);
            assert_eq!(rec.event, delivered(useq));
        }
        assert!(EventRecord::from_line_all("not json").is_empty());
    }
}
