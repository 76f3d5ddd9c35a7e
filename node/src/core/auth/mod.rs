//! Peer authentication, the front door of every peer datagram (issue 7). A frame is sealed
//! with the cluster secret (HMAC-SHA256, [`key`]) in the layout of [`frame`], and a received
//! one is admitted only after, in this order: size, frame layout, cluster name, mode and tag
//! (`unauthenticated`), destination (this node or broadcast: `wrong_destination`, so a
//! unicast cannot be relayed to another node), source address (the address the sender
//! signed: `address_mismatch`, so a relay from anywhere else is refused) and the replay
//! window per sender and incarnation ([`replay`]: `replayed`). Only then is the JSON body
//! parsed and handed to the node. The core stays pure: no clock and no randomness in here;
//! the incarnation comes from the driver through [`crate::core::Config`].

pub mod frame;
pub mod key;
pub mod refusals;
pub mod replay;

pub use frame::Mode;
pub use key::PeerKey;

use super::wire::{self, PeerMsg};
use super::MAX_DATAGRAM_BYTES;
use crate::ids::NodeId;
use frame::{FrameError, Header};
use replay::{ReplayWindows, Stale};

/// The destination of broadcast and multicast frames.
pub const BROADCAST: NodeId = NodeId(0);

/// Why a datagram was refused (the `reason` of an `input_rejected` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Oversized(usize),
    /// Not a v2 frame (a v1 JSON envelope, or anything else).
    WrongVersion,
    Malformed(String),
    ForeignCluster(String),
    /// A frame in the other mode: an `--insecure` frame at a node with a secret or the
    /// other way round (`unauthenticated` too: it proves nothing).
    WrongMode(Mode),
    /// The tag does not match.
    Unauthenticated,
    WrongDestination(NodeId),
    AddressMismatch {
        signed: String,
    },
    Replayed(Stale),
}

impl Refusal {
    /// The reason's first word, the same for every refusal of one kind (the key the
    /// refusal events are rate-limited by).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Oversized(_) => "oversized",
            Refusal::WrongVersion => "wrong_version",
            Refusal::Malformed(_) => "malformed",
            Refusal::ForeignCluster(_) => "foreign_cluster",
            Refusal::WrongMode(_) | Refusal::Unauthenticated => "unauthenticated",
            Refusal::WrongDestination(_) => "wrong_destination",
            Refusal::AddressMismatch { .. } => "address_mismatch",
            Refusal::Replayed(_) => "replayed",
        }
    }

    pub fn reason(&self) -> String {
        let detail = match self {
            Refusal::Oversized(n) => format!("{n} bytes > {MAX_DATAGRAM_BYTES}"),
            Refusal::WrongVersion => format!("not a wire v{} frame", wire::WIRE_VERSION),
            Refusal::Malformed(e) => e.clone(),
            Refusal::ForeignCluster(c) => c.clone(),
            Refusal::WrongMode(Mode::Insecure) => {
                "an --insecure frame (zero tag); this node has a cluster secret".to_string()
            }
            Refusal::WrongMode(Mode::Hmac) => {
                "an authenticated frame; this node runs --insecure".to_string()
            }
            Refusal::Unauthenticated => "bad tag (not sealed with this cluster's secret)".into(),
            Refusal::WrongDestination(to) => format!("frame for node {to}"),
            Refusal::AddressMismatch { signed } => format!("sender signed {signed}"),
            Refusal::Replayed(Stale::Duplicate) => "already seen".to_string(),
            Refusal::Replayed(Stale::TooOld { highest }) => {
                format!("older than the window (highest {highest})")
            }
            Refusal::Replayed(Stale::OldIncarnation { newest }) => {
                format!("old incarnation (newest {newest})")
            }
        };
        format!("{}: {}", self.kind(), short(detail))
    }
}

/// An admitted datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct Admitted {
    pub from: NodeId,
    pub incarnation: u64,
    pub seq: u64,
    pub msg: PeerMsg,
}

/// What the front door made of a datagram that was not refused.
#[derive(Clone, Debug, PartialEq)]
pub enum Admission {
    /// Our own broadcast or multicast looping back.
    Own,
    Peer(Admitted),
}

/// One node's sealing and admission state.
#[derive(Clone, Debug)]
pub struct PeerAuth {
    key: PeerKey,
    cluster: String,
    me: NodeId,
    /// The address this node's datagrams leave from, signed into each frame.
    addr: String,
    incarnation: u64,
    next_seq: u64,
    windows: ReplayWindows,
}

impl PeerAuth {
    pub fn new(key: PeerKey, cluster: &str, me: NodeId, addr: &str, incarnation: u64) -> Self {
        PeerAuth {
            key,
            cluster: cluster.to_string(),
            me,
            addr: addr.to_string(),
            incarnation,
            next_seq: 1,
            windows: ReplayWindows::default(),
        }
    }

    /// Seals `msg` for `dest` ([`BROADCAST`] for broadcast and multicast).
    pub fn seal(&mut self, dest: NodeId, msg: &PeerMsg) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let header = Header {
            mode: self.key.mode(),
            cluster: self.cluster.clone(),
            addr: self.addr.clone(),
            from: self.me,
            incarnation: self.incarnation,
            seq,
            dest,
        };
        frame::seal(&self.key, &header, &wire::encode_msg(msg))
    }

    /// The front door (see the module docs). `source` is the datagram's source address.
    pub fn admit(&mut self, bytes: &[u8], source: &str) -> Result<Admission, Refusal> {
        if bytes.len() > MAX_DATAGRAM_BYTES {
            return Err(Refusal::Oversized(bytes.len()));
        }
        let f = frame::parse(bytes).map_err(|e| match e {
            FrameError::NotV2 => Refusal::WrongVersion,
            FrameError::Malformed(why) => Refusal::Malformed(why.to_string()),
        })?;
        let h = &f.header;
        if h.cluster != self.cluster {
            return Err(Refusal::ForeignCluster(h.cluster.clone()));
        }
        if h.mode != self.key.mode() {
            return Err(Refusal::WrongMode(h.mode));
        }
        if !self.key.verify(f.signed, f.tag) {
            return Err(Refusal::Unauthenticated);
        }
        if h.from == self.me {
            return Ok(Admission::Own);
        }
        if h.dest != BROADCAST && h.dest != self.me {
            return Err(Refusal::WrongDestination(h.dest));
        }
        if h.addr != source {
            return Err(Refusal::AddressMismatch {
                signed: h.addr.clone(),
            });
        }
        self.windows
            .check(h.from, h.incarnation, h.seq)
            .map_err(Refusal::Replayed)?;
        let msg = wire::decode_msg(f.body).map_err(Refusal::Malformed)?;
        self.windows.mark(h.from, h.incarnation, h.seq);
        Ok(Admission::Peer(Admitted {
            from: h.from,
            incarnation: h.incarnation,
            seq: h.seq,
            msg,
        }))
    }

    /// The newest incarnation admitted from `from`.
    pub fn incarnation_of(&self, from: NodeId) -> Option<u64> {
        self.windows.incarnation(from)
    }
}

/// Keeps reasons short: they end up in event lines.
pub(crate) fn short(mut s: String) -> String {
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Frames as a member would seal them, for the core's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::frame::{self, Header, Mode};
    use super::{wire, PeerKey, PeerMsg};
    use crate::ids::NodeId;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The secret of the tests' cluster `c`.
    pub const SECRET: &[u8] = b"test secret, 16+ bytes";

    pub fn key() -> PeerKey {
        PeerKey::from_secret(SECRET)
    }

    /// The peer address of test node `id`.
    pub fn addr(id: u64) -> String {
        format!("10.0.0.{id}:7400")
    }

    /// A frame from node `from` (at [`addr`]) of cluster `c` to `dest`, with a fresh
    /// sequence number (one counter for all senders: each one's still rises).
    pub fn seal(from: u64, dest: NodeId, msg: &PeerMsg) -> Vec<u8> {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        let header = Header {
            mode: Mode::Hmac,
            cluster: "c".into(),
            addr: addr(from),
            from: NodeId(from),
            incarnation: 1,
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
            dest,
        };
        frame::seal(&key(), &header, &wire::encode_msg(msg))
    }

    /// The message in a frame, its tag unchecked.
    pub fn open(bytes: &[u8]) -> Option<PeerMsg> {
        wire::decode_msg(frame::parse(bytes).ok()?.body).ok()
    }
}

#[cfg(test)]
mod tests;
