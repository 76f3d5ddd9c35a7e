//! The outsider's datagrams, sans-IO and seeded: what it learned from the traffic it heard
//! ([`Learned`]), what it kept to replay, and the next datagram to send ([`Forger::next`]).
//! Kinds take turns in the order given, so every kind asked for is sent; the variants of each
//! (which epoch, which id, which index) come from one [`SplitMix64`], so the same seed and
//! the same captured traffic give the same datagrams.

use super::ForgeKind;
use crate::core::auth::frame::{self, Header, Mode, TAG_LEN};
use crate::core::auth::{PeerKey, BROADCAST};
use crate::core::chat::ChatOp;
use crate::core::durable::LogEntry;
use crate::core::election::{lcr::LcrMsg, ElectionBody};
use crate::core::rng::SplitMix64;
use crate::core::wire::{self, Beacon, PeerMsg};
use crate::core::MAX_DATAGRAM_BYTES;
use crate::events::Credentials;
use crate::ids::{NodeId, Role};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Captured datagrams kept for replay (a ring: the newest replace the oldest).
pub const CAPTURE_KEEP: usize = 256;

/// What the outsider knows about the cluster, all of it read off datagrams it heard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Learned {
    /// The cluster name (every frame carries it).
    pub cluster: Option<String>,
    /// The mode the members' frames are in: with a secret (HMAC, which the outsider cannot
    /// make, so its forgeries carry random tags) or `--insecure` (zero tags, which it can).
    pub mode: Option<Mode>,
    /// Each member's newest incarnation and highest sequence number heard.
    pub incarnations: BTreeMap<NodeId, (u64, u64)>,
    /// Member ids and the addresses their datagrams came from.
    pub members: BTreeMap<NodeId, SocketAddr>,
    /// The highest epoch heard.
    pub epoch: u64,
    /// The node that last claimed to lead the highest epoch.
    pub leader: Option<NodeId>,
    /// The highest commit index heard in a beacon.
    pub commit: u64,
    /// The highest log position heard in a beacon's credentials.
    pub last_log_epoch: u64,
    pub last_log_index: u64,
    /// User and room names to put in forged log entries (given on the command line: the
    /// outsider cannot see client traffic).
    pub users: Vec<String>,
    pub rooms: Vec<String>,
}

impl Learned {
    /// Reads what it can from one datagram heard from `from`. The frame is read without
    /// checking its tag, as a node would not: an outsider can read every field whether or
    /// not it could produce a valid one. False when it is no peer frame.
    pub fn observe(&mut self, from: SocketAddr, bytes: &[u8]) -> bool {
        let Ok(f) = frame::parse(bytes) else {
            return false;
        };
        let Ok(msg) = serde_json::from_slice::<Value>(f.body) else {
            return false;
        };
        let h = f.header;
        let (cluster, id) = (h.cluster.as_str(), h.from);
        self.mode = Some(h.mode);
        let seen = self.incarnations.entry(id).or_insert((0, 0));
        if (h.incarnation, h.seq) > *seen {
            *seen = (h.incarnation, h.seq);
        }
        let msg = &msg;
        self.cluster.get_or_insert_with(|| cluster.to_string());
        self.members.insert(id, from);
        let t = msg.get("t").and_then(Value::as_str).unwrap_or("");
        let epoch = msg.get("epoch").and_then(Value::as_u64);
        if let Some(e) = epoch {
            if e >= self.epoch {
                self.epoch = e;
            }
        }
        if t == "hello" || t == "heartbeat" {
            let field = |k: &str| msg.get(k).and_then(Value::as_u64);
            if msg.get("role").and_then(Value::as_str) == Some("leader")
                && epoch.is_some_and(|e| e >= self.epoch)
            {
                self.leader = Some(id);
            }
            if let Some(c) = field("commit_index") {
                self.commit = self.commit.max(c);
            }
            if let Some(c) = msg.get("credentials") {
                let le = c.get("last_log_epoch").and_then(Value::as_u64).unwrap_or(0);
                let li = c.get("last_log_index").and_then(Value::as_u64).unwrap_or(0);
                if (le, li) > (self.last_log_epoch, self.last_log_index) {
                    self.last_log_epoch = le;
                    self.last_log_index = li;
                }
            }
        }
        true
    }
}

/// Where one datagram goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// A member's peer port.
    Member(SocketAddr),
    /// The subnet's broadcast address, peer port (where hellos go).
    Broadcast,
    /// The heartbeat multicast group.
    Multicast,
}

/// One datagram to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Forged {
    /// What it is (a kind that could not be made yet, e.g. a replay before anything was
    /// captured, is sent as garbage and says so here).
    pub kind: ForgeKind,
    pub bytes: Vec<u8>,
    pub dest: Dest,
    /// The id it claims to come from, and the epoch it carries, when it has them.
    pub from: Option<NodeId>,
    pub epoch: Option<u64>,
}

/// The generator.
pub struct Forger {
    rng: SplitMix64,
    kinds: Vec<ForgeKind>,
    turn: usize,
    dest_turn: usize,
    serial: u64,
    captured: Vec<Vec<u8>>,
    captured_total: u64,
    /// The client address forged beacons advertise (the outsider's own: a client redirected
    /// there would talk to the outsider).
    client_addr: String,
    /// The outsider's own peer address, which its frames mostly claim as the sender's (a
    /// node refuses a frame whose signed address is not where it came from).
    peer_addr: String,
}

impl Forger {
    /// `kinds` must not be empty (an empty list sends garbage only).
    pub fn new(
        seed: u64,
        kinds: &[ForgeKind],
        client_addr: impl Into<String>,
        peer_addr: impl Into<String>,
    ) -> Forger {
        Forger {
            rng: SplitMix64::new(seed),
            kinds: if kinds.is_empty() {
                vec![ForgeKind::Garbage]
            } else {
                kinds.to_vec()
            },
            turn: 0,
            dest_turn: 0,
            serial: 0,
            captured: Vec::new(),
            captured_total: 0,
            client_addr: client_addr.into(),
            peer_addr: peer_addr.into(),
        }
    }

    /// Keeps a datagram heard from a member, for replay.
    pub fn capture(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > MAX_DATAGRAM_BYTES {
            return;
        }
        let slot = (self.captured_total % CAPTURE_KEEP as u64) as usize;
        if slot < self.captured.len() {
            self.captured[slot] = bytes.to_vec();
        } else {
            self.captured.push(bytes.to_vec());
        }
        self.captured_total += 1;
    }

    /// Datagrams captured so far (also those no longer kept).
    pub fn captured_total(&self) -> u64 {
        self.captured_total
    }

    /// The next datagram: the next kind in turn, to the next destination in turn among
    /// `targets` (members' peer addresses), the broadcast address and the multicast group.
    pub fn next(&mut self, learned: &Learned, targets: &[SocketAddr]) -> Forged {
        let kind = self.kinds[self.turn % self.kinds.len()];
        self.turn += 1;
        let dests = targets.len() + 2;
        let d = self.dest_turn % dests;
        self.dest_turn += 1;
        let dest = match d {
            d if d < targets.len() => Dest::Member(targets[d]),
            d if d == targets.len() => Dest::Broadcast,
            _ => Dest::Multicast,
        };
        self.serial += 1;
        let made = match (kind, learned.cluster.as_deref()) {
            (ForgeKind::Garbage, _) => None,
            (ForgeKind::Replay, _) if !self.captured.is_empty() => {
                let i = self.rng.below(self.captured.len() as u64) as usize;
                return Forged {
                    kind,
                    bytes: self.captured[i].clone(),
                    dest,
                    from: None,
                    epoch: None,
                };
            }
            (ForgeKind::Replay, _) => None,
            (_, None) => None,
            (k, Some(cluster)) => {
                let from = self.sender(learned);
                let msg = self.message(k, learned, from);
                let epoch = epoch_of(&msg);
                let bytes = self.seal(learned, cluster, from, dest, targets, &msg);
                Some(Forged {
                    kind: k,
                    bytes,
                    dest,
                    from: Some(from),
                    epoch,
                })
            }
        };
        made.unwrap_or_else(|| Forged {
            kind: ForgeKind::Garbage,
            bytes: self.garbage(learned),
            dest,
            from: None,
            epoch: None,
        })
    }

    /// A v2 frame as a member would send it, but without the secret: the learned mode, with
    /// a random tag when that is HMAC (a zero tag, valid, against `--insecure` nodes); the
    /// sender's learned incarnation and a sequence number past the highest heard, or random
    /// ones; to broadcast or the target's id, sometimes another id; from the outsider's own
    /// address or, now and then, the claimed sender's.
    fn seal(
        &mut self,
        l: &Learned,
        cluster: &str,
        from: NodeId,
        dest: Dest,
        targets: &[SocketAddr],
        msg: &PeerMsg,
    ) -> Vec<u8> {
        let mode = l.mode.unwrap_or(Mode::Hmac);
        let (incarnation, seq) = match (self.rng.below(3), l.incarnations.get(&from)) {
            (0 | 1, Some((inc, seq))) => (*inc, seq.saturating_add(self.rng.range(1, 50))),
            (0, None) => (1, self.rng.range(1, 1000)),
            _ => (self.rng.next_u64(), self.rng.next_u64()),
        };
        let member_at = |a: &SocketAddr| {
            l.members
                .iter()
                .find(|(_, m)| *m == a)
                .map(|(id, _)| *id)
                .unwrap_or(BROADCAST)
        };
        let dest = match (dest, self.rng.below(4)) {
            (_, 0) => NodeId(self.rng.below(1 << 20)),
            (Dest::Member(a), 1 | 2) if targets.contains(&a) => member_at(&a),
            _ => BROADCAST,
        };
        let addr = match (self.rng.below(5), l.members.get(&from)) {
            (0, Some(a)) => a.to_string(),
            _ => self.peer_addr.clone(),
        };
        let header = Header {
            mode,
            cluster: cluster.to_string(),
            addr,
            from,
            incarnation,
            seq,
            dest,
        };
        let mut bytes = frame::seal(&PeerKey::insecure(), &header, &wire::encode_msg(msg));
        if mode == Mode::Hmac {
            let n = bytes.len();
            for b in &mut bytes[n - TAG_LEN..] {
                *b = self.rng.next_u64() as u8;
            }
        }
        bytes
    }

    /// A learned epoch, one just above it, far above it, the largest, a random one, one
    /// below it, or zero.
    fn epoch(&mut self, l: &Learned) -> u64 {
        match self.rng.below(7) {
            0 => l.epoch,
            1 => l.epoch.saturating_add(1),
            2 => l.epoch.saturating_add(self.rng.range(2, 1_000_000)),
            3 => u64::MAX,
            4 => self.rng.next_u64(),
            5 => l.epoch.saturating_sub(1),
            _ => 0,
        }
    }

    /// The leader's id, another member's, a non-member's (a small id no member has), or a
    /// random one.
    fn sender(&mut self, l: &Learned) -> NodeId {
        let members: Vec<NodeId> = l.members.keys().copied().collect();
        let choice = self.rng.below(4);
        if let (0, Some(leader)) = (choice, l.leader) {
            return leader;
        }
        if choice <= 1 && !members.is_empty() {
            return members[self.rng.below(members.len() as u64) as usize];
        }
        if choice == 3 {
            return NodeId(self.rng.range(1, (1 << 53) - 1));
        }
        let mut id = 99 + self.rng.below(100);
        while l.members.contains_key(&NodeId(id)) {
            id += 1;
        }
        NodeId(id)
    }

    /// A learned commit index, just past it, a little further, a random one, or zero.
    fn index(&mut self, l: &Learned) -> u64 {
        match self.rng.below(5) {
            0 => l.commit,
            1 => l.commit.saturating_add(1),
            2 => l.commit.saturating_add(self.rng.range(2, 5)),
            3 => self.rng.below(1 << 20),
            _ => 0,
        }
    }

    fn role(&mut self) -> Role {
        match self.rng.below(4) {
            0 => Role::Follower,
            1 => Role::Candidate,
            _ => Role::Leader,
        }
    }

    /// Credentials that win comparisons (huge), match the learned log, or are random.
    fn credentials(&mut self, l: &Learned, id: NodeId) -> Credentials {
        match self.rng.below(3) {
            0 => Credentials {
                last_log_epoch: u64::MAX,
                last_log_index: u64::MAX,
                id,
            },
            1 => Credentials {
                last_log_epoch: l.last_log_epoch,
                last_log_index: l.last_log_index.saturating_add(self.rng.below(3)),
                id,
            },
            _ => Credentials {
                last_log_epoch: self.rng.below(1000),
                last_log_index: self.rng.below(1 << 20),
                id,
            },
        }
    }

    fn user(&mut self, l: &Learned) -> String {
        if l.users.is_empty() || self.rng.chance(0.1) {
            return ["alice", "bob", "u1", "u2"][self.rng.below(4) as usize].to_string();
        }
        l.users[self.rng.below(l.users.len() as u64) as usize].clone()
    }

    /// A forged log entry at `index`: mostly chat messages nobody sent.
    fn entry(&mut self, l: &Learned, index: u64, epoch: u64) -> LogEntry {
        let id = format!("forged-{}", self.serial);
        let text = "forged by an outsider".to_string();
        let op = match self.rng.below(6) {
            0..=2 => {
                let from = self.user(l);
                let to = self.user(l);
                ChatOp::Send { from, to, id, text }
            }
            3 if !l.rooms.is_empty() => {
                let room = l.rooms[self.rng.below(l.rooms.len() as u64) as usize].clone();
                let from = self.user(l);
                ChatOp::Post {
                    from,
                    room,
                    id,
                    text,
                }
            }
            3 | 4 => ChatOp::Login {
                user: self.user(l),
                session: id,
                password_hash: None,
            },
            _ => ChatOp::NewEpoch,
        };
        LogEntry {
            index,
            epoch,
            op,
            origin: None,
        }
    }

    fn message(&mut self, kind: ForgeKind, l: &Learned, from: NodeId) -> PeerMsg {
        match kind {
            ForgeKind::Hello | ForgeKind::Heartbeat => {
                let epoch = self.epoch(l);
                let role = self.role();
                let beacon = Beacon {
                    epoch,
                    role,
                    leader: if role == Role::Leader || self.rng.chance(0.5) {
                        Some(from)
                    } else {
                        Some(self.sender(l))
                    },
                    credentials: self.credentials(l, from),
                    client_addr: self.client_addr.clone(),
                    commit_index: self.index(l),
                    hears: Vec::new(),
                    clients: 0,
                    full: false,
                    assign: Vec::new(),
                };
                if kind == ForgeKind::Hello {
                    PeerMsg::Hello(beacon)
                } else {
                    PeerMsg::Heartbeat(beacon)
                }
            }
            ForgeKind::Token => PeerMsg::Election {
                epoch: self.epoch(l),
                body: ElectionBody::Lcr(LcrMsg::Token {
                    candidate: self.credentials(l, from),
                    hops: self.rng.below(8) as u32,
                }),
            },
            ForgeKind::TokenAck => PeerMsg::Election {
                epoch: self.epoch(l),
                body: ElectionBody::Lcr(LcrMsg::TokenAck {
                    candidate: self.sender(l),
                }),
            },
            ForgeKind::Elected => PeerMsg::Elected {
                epoch: self.epoch(l),
                credentials: self.credentials(l, from),
            },
            ForgeKind::Promise => PeerMsg::Promise {
                epoch: self.epoch(l),
            },
            ForgeKind::Stale => PeerMsg::Stale {
                epoch: self.epoch(l),
            },
            ForgeKind::Append => {
                // Most harmful when it fits: the learned epoch, from the learned leader,
                // right after the learned log; otherwise anything.
                let fits = self.rng.chance(0.6);
                let (epoch, prev_index, prev_epoch) = if fits {
                    (l.epoch, l.last_log_index, l.last_log_epoch)
                } else {
                    (
                        self.epoch(l),
                        self.index(l),
                        self.rng.below(l.epoch.saturating_add(2)),
                    )
                };
                let n = self.rng.range(1, 3);
                let entries: Vec<LogEntry> = (1..=n)
                    .map(|k| self.entry(l, prev_index.saturating_add(k), epoch))
                    .collect();
                PeerMsg::Append {
                    epoch,
                    prev_index,
                    prev_epoch,
                    entries,
                    commit: prev_index.saturating_add(n),
                }
            }
            ForgeKind::AppendAck => PeerMsg::AppendAck {
                epoch: self.epoch(l),
                success: self.rng.chance(0.7),
                match_index: self.index(l),
                rejected: self.index(l),
            },
            ForgeKind::Leave => PeerMsg::Leave,
            // Not messages: made in `next`.
            ForgeKind::Replay | ForgeKind::Garbage => PeerMsg::Leave,
        }
    }

    /// Random bytes, a forged envelope with one byte changed, a truncated one, a wrong
    /// version, or one over the datagram limit.
    fn garbage(&mut self, l: &Learned) -> Vec<u8> {
        let cluster = l.cluster.clone().unwrap_or_else(|| "faultline".to_string());
        let mode = l.mode.unwrap_or(Mode::Hmac);
        let base = || {
            let header = Header {
                mode,
                cluster: cluster.clone(),
                addr: self.peer_addr.clone(),
                from: NodeId(1),
                incarnation: 1,
                seq: 1,
                dest: BROADCAST,
            };
            let msg = PeerMsg::Stale { epoch: u64::MAX };
            frame::seal(&PeerKey::insecure(), &header, &wire::encode_msg(&msg))
        };
        match self.rng.below(5) {
            0 => {
                let len = self.rng.range(1, 300) as usize;
                (0..len).map(|_| self.rng.next_u64() as u8).collect()
            }
            1 => {
                let mut b = base();
                let i = self.rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << self.rng.below(8);
                b
            }
            2 => {
                let mut b = base();
                b.truncate(self.rng.below(b.len() as u64) as usize);
                b
            }
            // A wire v1 envelope (no frame at all).
            3 => format!(
                r#"{{"v":1,"cluster":"{cluster}","from":{},"msg":{{"t":"leave"}}}}"#,
                self.rng.range(1, 1000)
            )
            .into_bytes(),
            _ => vec![b'{'; MAX_DATAGRAM_BYTES + 1],
        }
    }
}

fn epoch_of(msg: &PeerMsg) -> Option<u64> {
    match msg {
        PeerMsg::Hello(b) | PeerMsg::Heartbeat(b) => Some(b.epoch),
        PeerMsg::Election { epoch, .. }
        | PeerMsg::Elected { epoch, .. }
        | PeerMsg::Promise { epoch }
        | PeerMsg::Stale { epoch }
        | PeerMsg::Append { epoch, .. }
        | PeerMsg::AppendAck { epoch, .. }
        | PeerMsg::Snapshot { epoch, .. }
        | PeerMsg::SnapshotAck { epoch, .. }
        | PeerMsg::Forward { epoch, .. }
        | PeerMsg::ForwardRefused { epoch, .. } => Some(*epoch),
        PeerMsg::Leave => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::{Admission, PeerAuth, Refusal};
    use std::collections::BTreeSet;

    const SECRET: &[u8] = b"the members' secret, not the outsider's";

    /// A frame as member `id` at `addr(10 + id)` of cluster `fl-x` seals it.
    fn member_frame(id: u64, msg: &PeerMsg) -> Vec<u8> {
        let addr = format!("10.0.0.{}:7400", 10 + id);
        PeerAuth::new(PeerKey::from_secret(SECRET), "fl-x", NodeId(id), &addr, 3)
            .seal(BROADCAST, msg)
    }

    /// Node 1's front door, hearing `bytes` from the outsider's address.
    fn node1_admits(bytes: &[u8], key: PeerKey) -> Result<Admission, Refusal> {
        PeerAuth::new(key, "fl-x", NodeId(1), "10.0.0.11:7400", 1).admit(bytes, "10.0.0.250:7400")
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 7400))
    }

    /// What an outsider learns from one real heartbeat of node 2, leader of epoch 4.
    fn learned() -> Learned {
        let beacon = Beacon {
            epoch: 4,
            role: Role::Leader,
            leader: Some(NodeId(2)),
            credentials: Credentials {
                last_log_epoch: 4,
                last_log_index: 17,
                id: NodeId(2),
            },
            client_addr: "10.0.0.12:7070".into(),
            commit_index: 16,
            hears: Vec::new(),
            clients: 0,
            full: false,
            assign: Vec::new(),
        };
        let mut l = Learned {
            users: vec!["u1".into(), "u2".into()],
            rooms: vec!["general".into()],
            ..Learned::default()
        };
        let bytes = member_frame(2, &PeerMsg::Heartbeat(beacon));
        assert!(l.observe(addr(12), &bytes));
        let follower = member_frame(1, &PeerMsg::Leave);
        assert!(l.observe(addr(11), &follower));
        assert!(!l.observe(addr(11), b"not json"));
        l
    }

    #[test]
    fn learns_the_cluster_members_epoch_leader_and_log_from_what_it_hears() {
        let l = learned();
        assert_eq!(l.cluster.as_deref(), Some("fl-x"));
        assert_eq!(l.mode, Some(Mode::Hmac));
        assert_eq!(l.incarnations[&NodeId(2)], (3, 1));
        assert_eq!(l.epoch, 4);
        assert_eq!(l.leader, Some(NodeId(2)));
        assert_eq!((l.commit, l.last_log_epoch, l.last_log_index), (16, 4, 17));
        assert_eq!(
            l.members.keys().copied().collect::<Vec<_>>(),
            vec![NodeId(1), NodeId(2)]
        );
    }

    fn run(seed: u64, n: usize) -> Vec<Forged> {
        let l = learned();
        let targets = [addr(11), addr(12)];
        let mut f = Forger::new(seed, &ForgeKind::ALL, "10.0.0.250:7070", "10.0.0.250:7400");
        f.capture(&member_frame(1, &PeerMsg::Leave));
        (0..n).map(|_| f.next(&l, &targets)).collect()
    }

    #[test]
    fn every_kind_is_produced_and_every_forgery_is_a_well_formed_envelope() {
        let out = run(7, 240);
        let kinds: BTreeSet<ForgeKind> = out.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ForgeKind::ALL.into_iter().collect());
        let mut dests = BTreeSet::new();
        let (mut members, mut outsiders, mut max_epoch, mut learned_epoch) = (0, 0, 0, 0);
        for f in &out {
            dests.insert(format!("{:?}", f.dest));
            match f.kind {
                ForgeKind::Replay | ForgeKind::Garbage => {}
                k => {
                    let parsed = frame::parse(&f.bytes).expect("forgeries are v2 frames");
                    let msg = wire::decode_msg(parsed.body).expect("with a well-formed body");
                    let kind = match &msg {
                        // `lcr.token` is forged as `token`.
                        PeerMsg::Election { body, .. } => body.name().rsplit('.').next().unwrap(),
                        m => m.kind(),
                    };
                    assert_eq!(kind, k.name());
                    assert_eq!(parsed.header.mode, Mode::Hmac, "the mode it heard");
                    // Without the secret its tags are random: the members refuse them all.
                    assert!(matches!(
                        node1_admits(&f.bytes, PeerKey::from_secret(SECRET)),
                        Err(Refusal::Unauthenticated)
                    ));
                    match parsed.header.from.0 {
                        1 | 2 => members += 1,
                        _ => outsiders += 1,
                    }
                    match f.epoch {
                        Some(u64::MAX) => max_epoch += 1,
                        Some(4) => learned_epoch += 1,
                        _ => {}
                    }
                }
            }
        }
        // Every destination, member and non-member senders, learned and absurd epochs.
        assert_eq!(dests.len(), 4, "{dests:?}");
        assert!(members > 10 && outsiders > 10, "{members} {outsiders}");
        assert!(
            max_epoch > 3 && learned_epoch > 3,
            "{max_epoch} {learned_epoch}"
        );
        // Forged appends carry chat messages nobody sent, for the workload's users.
        assert!(out.iter().any(|f| f.kind == ForgeKind::Append
            && String::from_utf8_lossy(&f.bytes).contains(r#""op":"send","from":"u"#)));
    }

    #[test]
    fn against_insecure_nodes_its_forgeries_are_valid_frames() {
        let mut l = Learned::default();
        let insecure = PeerAuth::new(PeerKey::insecure(), "fl-x", NodeId(2), "10.0.0.12:7400", 3)
            .seal(BROADCAST, &PeerMsg::Leave);
        assert!(l.observe(addr(12), &insecure));
        assert_eq!(l.mode, Some(Mode::Insecure));
        let mut f = Forger::new(5, &[ForgeKind::Heartbeat], "x:1", "10.0.0.250:7400");
        let admitted = (0..50)
            .filter(|_| {
                let d = f.next(&l, &[addr(11)]);
                matches!(
                    node1_admits(&d.bytes, PeerKey::insecure()),
                    Ok(Admission::Peer(_))
                )
            })
            .count();
        // Refused only when it claims the member's address or another destination.
        assert!(admitted > 20, "{admitted}");
    }

    #[test]
    fn the_same_seed_gives_the_same_datagrams_and_another_seed_others() {
        assert_eq!(run(42, 100), run(42, 100));
        assert_ne!(run(42, 100), run(43, 100));
    }

    #[test]
    fn before_it_has_heard_anything_it_can_only_send_garbage() {
        let mut f = Forger::new(1, &[ForgeKind::Heartbeat, ForgeKind::Replay], "x:1", "x:2");
        for _ in 0..10 {
            let d = f.next(&Learned::default(), &[]);
            assert_eq!(d.kind, ForgeKind::Garbage);
            assert!(node1_admits(&d.bytes, PeerKey::insecure()).is_err());
        }
    }

    #[test]
    fn replays_are_captured_bytes_verbatim() {
        let l = learned();
        let mut f = Forger::new(3, &[ForgeKind::Replay], "x:1", "x:2");
        let heard = member_frame(2, &PeerMsg::Promise { epoch: 4 });
        f.capture(&heard);
        let d = f.next(&l, &[addr(11)]);
        assert_eq!((d.kind, d.bytes), (ForgeKind::Replay, heard));
        for _ in 0..CAPTURE_KEEP + 5 {
            f.capture(b"x");
        }
        assert_eq!(f.captured.len(), CAPTURE_KEEP);
        assert_eq!(f.captured_total(), CAPTURE_KEEP as u64 + 6);
    }
}
