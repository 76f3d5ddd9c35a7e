//! Peer messages: the JSON body of a wire v2 frame. The frame around it (cluster, sender,
//! incarnation, sequence, destination, tag) and the checks a received one passes are
//! [`super::auth`]'s; this file is what the body says.

use super::chat::ChatOp;
use super::durable::LogEntry;
use super::election::ElectionBody;
use super::proposal::ProposalId;
use crate::core::assignment::ServerLoad;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use serde::{Deserialize, Serialize};

/// Version of the peer wire format: v2 frames start with `FLW2` (docs/PROTOCOL.md).
pub const WIRE_VERSION: u32 = 2;

/// What a node announces about itself in discovery and heartbeat datagrams.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beacon {
    pub epoch: u64,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<NodeId>,
    pub credentials: Credentials,
    pub client_addr: String,
    /// The sender's commit index (followers learn the leader's from its heartbeats).
    pub commit_index: u64,
    /// The peers the sender hears (its view without itself): with everyone's, a node knows
    /// which links work both ways, and so who can gather a quorum of votes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hears: Vec<NodeId>,
    /// Users logged in on the sender, and whether it is at its `--max-clients`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clients: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    /// A leader's assignment table: the servers in its view with room and their loads
    /// ([`crate::core::assignment`]). Empty from anyone else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assign: Vec<ServerLoad>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Peer messages, tagged by `"t"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum PeerMsg {
    /// Discovery broadcast, at start and every second.
    Hello(Beacon),
    /// Multicast every heartbeat interval by every node.
    Heartbeat(Beacon),
    /// A message of the configured election algorithm for `epoch`: the node checks the
    /// epoch once, then the algorithm reads its own `body` (see [`crate::core::election`]).
    Election { epoch: u64, body: ElectionBody },
    /// A candidate asks everyone for a promise (vote) for `epoch` (the vote round every
    /// algorithm shares).
    Elected {
        epoch: u64,
        credentials: Credentials,
    },
    /// A promise (vote) for the sender of `Elected` in `epoch`.
    Promise { epoch: u64 },
    /// The sender's epoch is newer than the one in a message it refused (fencing).
    Stale { epoch: u64 },
    /// Log replication from the leader of `epoch`.
    Append {
        epoch: u64,
        prev_index: u64,
        prev_epoch: u64,
        entries: Vec<LogEntry>,
        commit: u64,
    },
    /// A follower's answer. On success `match_index` is the last index it holds from the
    /// leader's log. On failure `rejected` is the `prev_index` of the Append refused (so the
    /// leader can tell the answer to its current probe from a late or duplicated one) and
    /// `match_index` a hint: the follower's log may match the leader's up to there.
    AppendAck {
        epoch: u64,
        success: bool,
        match_index: u64,
        rejected: u64,
    },
    /// One chunk of the leader's snapshot at `index` (epoch `index_epoch`), for a follower
    /// whose next entries the leader no longer holds: `data` is the bytes `offset ..` of the
    /// snapshot's JSON text, `total` bytes long ([`crate::core::snapshot`]).
    Snapshot {
        epoch: u64,
        index: u64,
        index_epoch: u64,
        total: u64,
        offset: u64,
        data: String,
    },
    /// A follower holds the first `received` bytes of the snapshot at `index` (the leader
    /// sends the chunk from there). The last chunk is answered by an `append_ack` instead,
    /// once the snapshot is installed and durable.
    SnapshotAck {
        epoch: u64,
        index: u64,
        received: u64,
    },
    /// Graceful leave (SIGTERM).
    Leave,
    /// A follower's client request for the leader to append, with its origin (issue 12).
    Forward {
        epoch: u64,
        id: ProposalId,
        op: ChatOp,
    },
    /// The receiver of `forward` `id` does not lead: the follower answers `unavailable` now.
    ForwardRefused { epoch: u64, id: ProposalId },
}

impl PeerMsg {
    /// Short name for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMsg::Hello(_) => "hello",
            PeerMsg::Heartbeat(_) => "heartbeat",
            PeerMsg::Election { .. } => "election",
            PeerMsg::Elected { .. } => "elected",
            PeerMsg::Promise { .. } => "promise",
            PeerMsg::Stale { .. } => "stale",
            PeerMsg::Append { .. } => "append",
            PeerMsg::AppendAck { .. } => "append_ack",
            PeerMsg::Snapshot { .. } => "snapshot",
            PeerMsg::SnapshotAck { .. } => "snapshot_ack",
            PeerMsg::Leave => "leave",
            PeerMsg::Forward { .. } => "forward",
            PeerMsg::ForwardRefused { .. } => "forward_refused",
        }
    }
}

/// The JSON body of a frame.
pub fn encode_msg(msg: &PeerMsg) -> Vec<u8> {
    // Only our own plain data types go in here, which always serialise.
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Parses a frame's body; the error is short enough for an event line.
pub fn decode_msg(body: &[u8]) -> Result<PeerMsg, String> {
    serde_json::from_slice(body).map_err(|e| super::auth::short(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::election::lcr::LcrMsg;

    fn creds() -> Credentials {
        Credentials {
            last_log_epoch: 1,
            last_log_index: 2,
            id: NodeId(3),
        }
    }

    #[test]
    fn round_trips_every_message() {
        let msgs = vec![
            PeerMsg::Hello(Beacon {
                epoch: 1,
                role: Role::Follower,
                leader: None,
                credentials: creds(),
                client_addr: "10.0.0.1:7070".into(),
                commit_index: 0,
                hears: vec![NodeId(1), NodeId(4)],
                clients: 0,
                full: false,
                assign: Vec::new(),
            }),
            PeerMsg::Election {
                epoch: 2,
                body: ElectionBody::Lcr(LcrMsg::Token {
                    candidate: creds(),
                    hops: 3,
                }),
            },
            PeerMsg::Election {
                epoch: 2,
                body: ElectionBody::Lcr(LcrMsg::TokenAck {
                    candidate: NodeId(3),
                }),
            },
            PeerMsg::Append {
                epoch: 2,
                prev_index: 1,
                prev_epoch: 1,
                entries: vec![LogEntry {
                    index: 2,
                    epoch: 2,
                    op: crate::core::chat::ChatOp::NewEpoch,
                    origin: Some(ProposalId {
                        node: NodeId(3),
                        serial: 7,
                    }),
                }],
                commit: 1,
            },
            PeerMsg::Snapshot {
                epoch: 4,
                index: 100,
                index_epoch: 3,
                total: 9,
                offset: 2,
                data: "\"x\\y\u{1}".into(),
            },
            PeerMsg::SnapshotAck {
                epoch: 4,
                index: 100,
                received: 7,
            },
            PeerMsg::Leave,
        ];
        for m in msgs {
            assert_eq!(decode_msg(&encode_msg(&m)), Ok(m));
        }
    }

    #[test]
    fn refuses_unknown_messages_with_a_short_reason() {
        let e = decode_msg(br#"{"t":"nope"}"#).unwrap_err();
        assert!(e.contains("nope") && e.len() <= 120, "{e}");
        assert!(decode_msg(b"not json").is_err());
        let long = format!(r#"{{"t":"{}"}}"#, "x".repeat(500));
        assert!(decode_msg(long.as_bytes()).unwrap_err().len() <= 120);
    }
}
