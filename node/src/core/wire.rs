//! Peer datagrams: the envelope `{v, cluster, from, msg}`, the message types, and a decoder
//! that refuses oversized, malformed, wrong-version and foreign-cluster input with a reason
//! instead of panicking.

use super::chat::ChatOp;
use super::durable::LogEntry;
use super::election::ElectionBody;
use super::proposal::ProposalId;
use super::MAX_DATAGRAM_BYTES;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use serde::{Deserialize, Serialize};

/// Version of the peer wire format, the `v` of every envelope.
pub const WIRE_VERSION: u32 = 1;

/// Every peer datagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u32,
    pub cluster: String,
    pub from: NodeId,
    pub msg: PeerMsg,
}

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
            PeerMsg::Leave => "leave",
            PeerMsg::Forward { .. } => "forward",
            PeerMsg::ForwardRefused { .. } => "forward_refused",
        }
    }
}

/// Why a datagram was refused (the `reason` of an `input_rejected` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    Oversized(usize),
    Malformed(String),
    WrongVersion(u64),
    ForeignCluster(String),
}

impl Rejection {
    pub fn reason(&self) -> String {
        match self {
            Rejection::Oversized(n) => {
                format!("oversized: {n} bytes > {MAX_DATAGRAM_BYTES}")
            }
            Rejection::Malformed(e) => format!("malformed: {e}"),
            Rejection::WrongVersion(v) => format!("wrong_version: {v} (expected {WIRE_VERSION})"),
            Rejection::ForeignCluster(c) => format!("foreign_cluster: {c}"),
        }
    }
}

/// Serialises an envelope.
pub fn encode(cluster: &str, from: NodeId, msg: &PeerMsg) -> Vec<u8> {
    // Only our own plain data types go in here, which always serialise.
    serde_json::to_vec(&EnvelopeRef {
        v: WIRE_VERSION,
        cluster,
        from,
        msg,
    })
    .unwrap_or_default()
}

#[derive(Serialize)]
struct EnvelopeRef<'a> {
    v: u32,
    cluster: &'a str,
    from: NodeId,
    msg: &'a PeerMsg,
}

/// The header is checked before the body so that a newer version or another cluster is
/// reported as such even when its messages would not parse.
#[derive(Deserialize)]
struct Header {
    v: u64,
    cluster: String,
}

/// Decodes and validates a datagram for `cluster`.
pub fn decode(cluster: &str, bytes: &[u8]) -> Result<Envelope, Rejection> {
    if bytes.len() > MAX_DATAGRAM_BYTES {
        return Err(Rejection::Oversized(bytes.len()));
    }
    let header: Header =
        serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(short(e.to_string())))?;
    if header.v != u64::from(WIRE_VERSION) {
        return Err(Rejection::WrongVersion(header.v));
    }
    if header.cluster != cluster {
        return Err(Rejection::ForeignCluster(short(header.cluster)));
    }
    serde_json::from_slice(bytes).map_err(|e| Rejection::Malformed(short(e.to_string())))
}

/// Keeps reasons short: they end up in event lines.
fn short(mut s: String) -> String {
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
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
            PeerMsg::Leave,
        ];
        for m in msgs {
            let bytes = encode("c", NodeId(9), &m);
            let env = decode("c", &bytes).expect("own encoding decodes");
            assert_eq!(env.msg, m);
            assert_eq!(env.from, NodeId(9));
        }
    }

    #[test]
    fn refuses_bad_input_with_a_reason() {
        let good = encode("c", NodeId(1), &PeerMsg::Leave);
        assert!(matches!(
            decode("other", &good),
            Err(Rejection::ForeignCluster(_))
        ));
        assert!(matches!(
            decode("c", b"not json"),
            Err(Rejection::Malformed(_))
        ));
        assert!(matches!(
            decode(
                "c",
                br#"{"v":2,"cluster":"c","from":1,"msg":{"t":"whatever"}}"#
            ),
            Err(Rejection::WrongVersion(2))
        ));
        assert!(matches!(
            decode("c", br#"{"v":1,"cluster":"c","from":1,"msg":{"t":"nope"}}"#),
            Err(Rejection::Malformed(_))
        ));
        let big = vec![b' '; MAX_DATAGRAM_BYTES + 1];
        assert!(matches!(decode("c", &big), Err(Rejection::Oversized(_))));
    }

    #[test]
    fn never_panics_on_random_bytes() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..2000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert!(decode("c", &bytes).is_err());
        }
    }
}
