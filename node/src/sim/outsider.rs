//! The simulator's outsider (issue 7): a host on the cluster's network that is no member and
//! has no secret. It sniffs every datagram the nodes send, and at random moments sends one of
//! its own: a forgery of any peer message kind from the real tool's generator
//! ([`crate::forge::Forger`]: learned, absurd and random epochs, ids, indexes, random tags,
//! garbage), or a captured frame replayed verbatim, later and out of order, to its original
//! destination or another node, from its own address or spoofing the sender's. The simulator
//! ([`super::Sim`]) delivers each one and checks what it may do: a forgery is refused and
//! changes nothing; a replay from the outsider's own address, or of a unicast to another
//! node than its destination, is refused and changes nothing; a spoofed replay to its
//! destination is a network duplicate, accepted only if no copy of that frame was yet.

use crate::core::rng::SplitMix64;
use crate::forge::{Dest, ForgeKind, Forger, Learned};
use std::net::SocketAddr;

/// The outsider's address on the simulated network (nodes are 10.0.0.1 …).
pub const OUTSIDER_ADDR: &str = "10.0.0.250:7400";

/// Captured datagrams kept for replay (the oldest are replaced).
const KEEP: usize = 512;

/// Chance per tick that the outsider sends something.
pub const SEND_CHANCE: f64 = 0.6;

/// A datagram the outsider heard.
#[derive(Clone, Debug)]
struct Captured {
    /// The sending node.
    from: usize,
    bytes: Vec<u8>,
}

/// What the outsider sends next, and to which node.
#[derive(Clone, Debug)]
pub enum Shot {
    /// Made up without the secret; must be refused.
    Forged {
        to: usize,
        kind: ForgeKind,
        bytes: Vec<u8>,
    },
    /// A captured frame, byte for byte, from `source` (the outsider's address, or the
    /// original sender's when `spoofed`).
    Replay {
        to: usize,
        source: String,
        spoofed: bool,
        bytes: Vec<u8>,
    },
}

/// Counts for the test's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutsiderStats {
    pub forged: u64,
    pub replayed: u64,
    /// Spoofed replays to a frame's own destination that were its first copy there.
    pub accepted_first_copies: u64,
}

pub struct SimOutsider {
    rng: SplitMix64,
    forger: Forger,
    learned: Learned,
    captured: Vec<Captured>,
    captured_total: u64,
    pub stats: OutsiderStats,
}

/// Every kind the forger makes except replays, which [`SimOutsider`] makes itself (it
/// needs to know where a captured frame came from and went).
fn forged_kinds() -> Vec<ForgeKind> {
    ForgeKind::ALL
        .into_iter()
        .filter(|k| *k != ForgeKind::Replay)
        .collect()
}

impl SimOutsider {
    pub fn new(seed: u64) -> SimOutsider {
        let mut rng = SplitMix64::new(seed ^ 0x0075_1de5);
        let forger_seed = rng.next_u64();
        SimOutsider {
            forger: Forger::new(
                forger_seed,
                &forged_kinds(),
                "10.0.0.250:7070",
                OUTSIDER_ADDR,
            ),
            rng,
            learned: Learned {
                // The simulated clients' names (client.rs).
                users: (0..4).map(|c| format!("user{c}")).collect(),
                rooms: vec!["general".to_string()],
                ..Learned::default()
            },
            captured: Vec::new(),
            captured_total: 0,
            stats: OutsiderStats::default(),
        }
    }

    /// Whether it sends something this tick.
    pub fn wants_to_send(&mut self) -> bool {
        self.rng.chance(SEND_CHANCE)
    }

    /// A datagram node `from` (at `from_addr`) sent, as the outsider hears it.
    pub fn sniff(&mut self, from: usize, from_addr: &str, bytes: &[u8]) {
        let Ok(addr) = from_addr.parse::<SocketAddr>() else {
            return;
        };
        if !self.learned.observe(addr, bytes) {
            return;
        }
        let c = Captured {
            from,
            bytes: bytes.to_vec(),
        };
        let slot = (self.captured_total % KEEP as u64) as usize;
        if slot < self.captured.len() {
            self.captured[slot] = c;
        } else {
            self.captured.push(c);
        }
        self.captured_total += 1;
    }

    /// The next datagram(s), for nodes at `addrs` (index = node).
    pub fn next(&mut self, addrs: &[String]) -> Vec<Shot> {
        if addrs.is_empty() {
            return Vec::new();
        }
        if self.captured.is_empty() || self.rng.chance(0.5) {
            return self.forge(addrs);
        }
        let c = self.captured[self.rng.below(self.captured.len() as u64) as usize].clone();
        let to = self.rng.below(addrs.len() as u64) as usize;
        let spoofed = self.rng.chance(0.6);
        let source = if spoofed {
            addrs[c.from].clone()
        } else {
            OUTSIDER_ADDR.to_string()
        };
        self.stats.replayed += 1;
        vec![Shot::Replay {
            to,
            source,
            spoofed,
            bytes: c.bytes,
        }]
    }

    fn forge(&mut self, addrs: &[String]) -> Vec<Shot> {
        let targets: Vec<SocketAddr> = addrs.iter().filter_map(|a| a.parse().ok()).collect();
        let f = self.forger.next(&self.learned, &targets);
        self.stats.forged += 1;
        let to: Vec<usize> = match f.dest {
            Dest::Member(a) => addrs
                .iter()
                .position(|x| x.parse::<SocketAddr>().ok() == Some(a))
                .into_iter()
                .collect(),
            Dest::Broadcast | Dest::Multicast => (0..addrs.len()).collect(),
        };
        to.into_iter()
            .map(|to| Shot::Forged {
                to,
                kind: f.kind,
                bytes: f.bytes.clone(),
            })
            .collect()
    }
}
