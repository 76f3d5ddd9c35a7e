//! A deterministic, seeded simulator of a cluster of [`crate::core::Node`]s: virtual time,
//! one PRNG, a network that delays, drops, duplicates and reorders datagrams, symmetric and
//! one-way partitions, crashes (volatile state lost, synced records kept, records not yet
//! synced lost), restarts and pauses; a disk whose fsync completes after a random delay; simulated chat clients; and a checker that tests the safety properties after every
//! step. The same seed always replays the same run.

pub mod checker;
pub mod credentials;
pub mod outsider;
pub mod user;
pub mod workload;

use crate::core::auth::frame;
use crate::core::auth::PeerKey;
use crate::core::rng::SplitMix64;
use crate::core::{Config, Input, Millis, Node, Output, Persist, Restored, TICK_MS};
use crate::events::EventRecord;
use crate::faults::FaultState;
use crate::forge::ForgeKind;
use crate::ids::{ConnId, NodeId, Role};
use crate::settings::{ElectionKind, QuorumMode};
use checker::Checker;
use outsider::{Shot, SimOutsider, OUTSIDER_ADDR};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use user::{SimUser, UserAction};

/// The simulated cluster's secret (the outsider does not have it).
pub const SIM_SECRET: &[u8] = b"the simulated cluster's secret";

/// Settings of one simulated cluster.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub nodes: usize,
    pub clients: usize,
    pub heartbeat_ms: Millis,
    pub failure_timeout_ms: Millis,
    pub quorum: QuorumMode,
    /// Probability that a datagram is lost.
    pub drop: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Per-datagram delay range in ms (different delays reorder datagrams).
    pub delay: (Millis, Millis),
    /// How long a node's write + fsync takes, ms range (the runtime's writer thread).
    pub fsync: (Millis, Millis),
    /// Messages each client sends in total.
    pub messages_per_client: u64,
    /// Pause a client takes between an acknowledgement and its next message (ms range).
    pub message_gap: (Millis, Millis),
    /// Keep every event (for debugging a seed).
    pub record_events: bool,
    /// An outsider sniffs, replays and forges datagrams ([`outsider`]), and every one it
    /// sends is checked.
    pub outsider: bool,
    /// The nodes run without a secret (`--insecure`): only for the self-test that the
    /// outsider checks catch an unauthenticated cluster.
    pub insecure: bool,
    /// The election algorithm every node runs.
    pub election: ElectionKind,
    /// `--snapshot-every`: small in the random runs, so that snapshots, compaction and
    /// installs on far-behind or restarted nodes happen in every run.
    pub snapshot_every: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            clients: 0,
            heartbeat_ms: 100,
            failure_timeout_ms: 500,
            quorum: QuorumMode::Majority,
            drop: 0.0,
            duplicate: 0.0,
            delay: (1, 5),
            fsync: (0, 3),
            messages_per_client: 0,
            message_gap: (10, 80),
            record_events: false,
            outsider: false,
            insecure: false,
            election: ElectionKind::Lcr,
            snapshot_every: crate::core::snapshot::DEFAULT_SNAPSHOT_EVERY,
        }
    }
}

/// Something in flight.
#[derive(Clone, Debug)]
enum Packet {
    Datagram {
        from: usize,
        to: usize,
        bytes: Vec<u8>,
    },
    /// Client traffic rides a reliable, ordered channel (TCP); partitions between servers do
    /// not cut it (the clients sit beside the cluster, as the harness's do).
    ToNode { to: usize, input: Input },
    ToClient {
        client: usize,
        conn: ConnId,
        line: Option<String>,
    },
    /// Node `to`'s writer finished an fsync: what it had been handed in boot `boot` is on
    /// disk.
    Synced { to: usize, boot: u64 },
}

struct SimNode {
    addr: String,
    client_addr: String,
    node: Option<Node>,
    /// Synced records (what survives a crash), and records handed over but not yet synced.
    disk: Vec<Persist>,
    unsynced: Vec<Persist>,
    /// Records of this boot on disk (what `Input::Persisted` reports), and whether an fsync
    /// is under way.
    synced: u64,
    syncing: bool,
    paused: bool,
    buffered: Vec<Packet>,
    boots: u64,
}

/// The simulated world.
pub struct Sim {
    pub cfg: SimConfig,
    pub seed: u64,
    pub now: Millis,
    rng: SplitMix64,
    /// The disks' own generator, so that modelling fsync time leaves the network's draws
    /// (and so every seed's faults) as they were.
    disk_rng: SplitMix64,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    packets: BTreeMap<usize, Packet>,
    next_packet: usize,
    seq: u64,
    /// Which nodes are up or paused and which links are cut: the model the harness uses too.
    faults: FaultState<usize>,
    pub clients: Vec<SimUser>,
    /// conn -> (client, node)
    conns: BTreeMap<ConnId, (usize, usize)>,
    next_conn: u64,
    pub checker: Checker,
    pub events: Vec<(usize, EventRecord)>,
    pub outsider: Option<SimOutsider>,
    /// Frames each node admitted since it booted: (node, sender, incarnation, sequence).
    /// A frame admitted twice by one node is a broken replay window.
    admitted: BTreeSet<(usize, u64, u64, u64)>,
    /// The liveness property checked on every tick once [`Sim::watch_liveness`] armed it.
    liveness: Option<LivenessWatch>,
}

/// Where a delivered datagram came from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    Network,
    Forged(ForgeKind),
    Replay { spoofed: bool },
}

/// The state an outsider's datagram must not change.
#[derive(Clone, Debug, PartialEq)]
struct Guarded {
    epoch: u64,
    voted_for: Option<NodeId>,
    role: Role,
    leader: Option<NodeId>,
    commit: u64,
    last_index: u64,
}

impl Guarded {
    fn of(n: &Node) -> (Guarded, u64) {
        let g = Guarded {
            epoch: n.epoch(),
            voted_for: n.voted_for(),
            role: n.role(),
            leader: n.leader(),
            commit: n.commit_index(),
            last_index: n.last_index(),
        };
        (g, n.rejected_inputs())
    }
}

/// Whenever some live node can exchange messages both ways with a majority whose logs are
/// no more up to date than its own, a leader that can lead must exist within `deadline`.
#[derive(Clone, Copy, Debug)]
struct LivenessWatch {
    deadline: Millis,
    since: Option<Millis>,
}

/// The id of simulated node `i` (ids are not dense, to keep the ring honest).
pub fn node_id(i: usize) -> NodeId {
    NodeId(10 + 7 * i as u64)
}

impl Sim {
    pub fn new(cfg: SimConfig, seed: u64) -> Sim {
        let mut sim = Sim {
            seed,
            now: 0,
            rng: SplitMix64::new(seed),
            disk_rng: SplitMix64::new(seed ^ 0xd15c_f5c0),
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            packets: BTreeMap::new(),
            next_packet: 0,
            seq: 0,
            faults: FaultState::new(0..cfg.nodes),
            clients: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            checker: Checker::new(cfg.nodes),
            events: Vec::new(),
            outsider: cfg.outsider.then(|| SimOutsider::new(seed)),
            admitted: BTreeSet::new(),
            liveness: None,
            cfg,
        };
        for i in 0..sim.cfg.nodes {
            sim.nodes.push(SimNode {
                addr: format!("10.0.0.{}:7400", i + 1),
                client_addr: format!("10.0.0.{}:7070", i + 1),
                node: None,
                disk: Vec::new(),
                unsynced: Vec::new(),
                synced: 0,
                syncing: false,
                paused: false,
                buffered: Vec::new(),
                boots: 0,
            });
            sim.boot(i);
        }
        let servers: Vec<String> = sim.nodes.iter().map(|n| n.client_addr.clone()).collect();
        for c in 0..sim.cfg.clients {
            let client_seed = sim.rng.next_u64();
            sim.clients.push(SimUser::new(
                c,
                &servers,
                sim.cfg.messages_per_client,
                sim.cfg.message_gap,
                client_seed,
            ));
        }
        sim
    }

    fn node_config(&mut self, i: usize) -> Config {
        Config {
            id: node_id(i),
            cluster: "sim".to_string(),
            cluster_size: self.cfg.nodes,
            heartbeat_ms: self.cfg.heartbeat_ms,
            failure_timeout_ms: self.cfg.failure_timeout_ms,
            election: self.cfg.election,
            quorum: self.cfg.quorum,
            client_addr: self.nodes[i].client_addr.clone(),
            seed: self.seed ^ (self.nodes[i].boots << 32) ^ i as u64,
            login_timeout_ms: crate::core::DEFAULT_LOGIN_TIMEOUT_MS,
            peer_key: if self.cfg.insecure {
                PeerKey::insecure()
            } else {
                PeerKey::from_secret(SIM_SECRET)
            },
            peer_addr: self.nodes[i].addr.clone(),
            // Higher at every boot, as the runtime's (which also adds the clock).
            incarnation: self.nodes[i].boots + 1,
        }
    }

    fn boot(&mut self, i: usize) {
        let cfg = self.node_config(i);
        let restored = Restored::replay(&self.nodes[i].disk);
        let node = Node::new(cfg, restored, self.now).snapshot_every(self.cfg.snapshot_every);
        self.nodes[i].node = Some(node);
        self.nodes[i].boots += 1;
        // A restarted node's replay windows start empty.
        self.admitted.retain(|k| k.0 != i);
        self.nodes[i].synced = 0;
        self.faults.restart(i);
        self.checker.node_restarted(i);
    }

    // ----- faults --------------------------------------------------------------------

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].node.is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// SIGKILL: volatile state is gone, persisted records stay.
    pub fn crash(&mut self, i: usize) {
        if self.nodes[i].node.take().is_none() {
            return;
        }
        self.nodes[i].paused = false;
        self.faults.crash(i);
        self.nodes[i].buffered.clear();
        // What the writer had not fsynced yet is gone with the process.
        self.nodes[i].unsynced.clear();
        self.nodes[i].syncing = false;
        let dropped: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, (_, n))| *n == i)
            .map(|(c, _)| *c)
            .collect();
        for conn in dropped {
            self.close_conn(conn);
        }
    }

    pub fn restart(&mut self, i: usize) {
        if self.nodes[i].node.is_none() {
            self.boot(i);
        }
    }

    /// SIGTERM: the node announces its leave and stops.
    pub fn shutdown(&mut self, i: usize) {
        self.input(i, Input::Shutdown);
    }

    /// The zombie: no ticks, datagrams buffered until [`Sim::resume`].
    pub fn pause(&mut self, i: usize) {
        if self.nodes[i].node.is_some() {
            self.nodes[i].paused = true;
            self.faults.pause(i);
        }
    }

    pub fn resume(&mut self, i: usize) {
        if !self.nodes[i].paused {
            return;
        }
        self.nodes[i].paused = false;
        self.faults.resume(i);
        for p in std::mem::take(&mut self.nodes[i].buffered) {
            self.deliver(p);
        }
    }

    /// Cuts every link between different groups (added to the cuts in force). Here a node
    /// in no group is a group of its own: cut from all.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        let mut all: Vec<Vec<usize>> = groups.to_vec();
        for n in 0..self.nodes.len() {
            if !groups.iter().any(|g| g.contains(&n)) {
                all.push(vec![n]);
            }
        }
        self.faults.partition(&all);
    }

    /// One-way cut: datagrams from `from` no longer reach `to`.
    pub fn cut(&mut self, from: usize, to: usize) {
        self.faults.cut(from, to);
    }

    pub fn heal(&mut self) {
        self.faults.heal();
    }

    /// The fault state the simulated network and nodes are in (the shared model).
    pub fn faults(&self) -> &FaultState<usize> {
        &self.faults
    }

    pub fn set_loss(&mut self, drop: f64, duplicate: f64) {
        self.cfg.drop = drop;
        self.cfg.duplicate = duplicate;
    }

    // ----- observation ---------------------------------------------------------------

    /// Nodes that are up, not paused, and think they lead.
    pub fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                !self.nodes[*i].paused
                    && self.nodes[*i]
                        .node
                        .as_ref()
                        .is_some_and(|n| n.role() == Role::Leader)
            })
            .collect()
    }

    /// The one leader every running node agrees on, if there is one.
    pub fn agreed_leader(&self) -> Option<usize> {
        let leaders = self.leaders();
        let [l] = leaders[..] else {
            return None;
        };
        let lead = self.nodes[l].node.as_ref()?;
        let all_agree = self
            .nodes
            .iter()
            .filter(|n| !n.paused)
            .filter_map(|n| n.node.as_ref())
            .all(|n| n.leader() == Some(lead.id()) && n.epoch() == lead.epoch());
        all_agree.then_some(l)
    }

    pub fn index_of(&self, id: NodeId) -> Option<usize> {
        (0..self.nodes.len()).find(|i| node_id(*i) == id)
    }

    fn index_of_client_addr(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.client_addr == addr)
    }

    // ----- the clock -----------------------------------------------------------------

    /// Runs until `until` (virtual ms).
    pub fn run_until(&mut self, until: Millis) {
        while self.now < until {
            let next_tick = (self.now / TICK_MS + 1) * TICK_MS;
            while let Some(Reverse((at, _, _))) = self.queue.peek() {
                if *at > next_tick {
                    break;
                }
                let Some(Reverse((at, _, id))) = self.queue.pop() else {
                    break;
                };
                self.now = self.now.max(at);
                if let Some(p) = self.packets.remove(&id) {
                    self.deliver(p);
                }
            }
            self.now = next_tick;
            for i in 0..self.nodes.len() {
                if !self.nodes[i].paused && self.nodes[i].node.is_some() {
                    self.input(i, Input::Tick);
                }
            }
            self.outsider_turn();
            self.step_clients();
            self.check_nodes();
            self.check_liveness();
        }
    }

    /// The outsider may send something this tick, to nodes that run.
    fn outsider_turn(&mut self) {
        let addrs: Vec<String> = self.nodes.iter().map(|n| n.addr.clone()).collect();
        let Some(o) = self.outsider.as_mut() else {
            return;
        };
        if !o.wants_to_send() {
            return;
        }
        for shot in o.next(&addrs) {
            let (to, source, bytes, origin) = match shot {
                Shot::Forged { to, kind, bytes } => {
                    (to, OUTSIDER_ADDR.to_string(), bytes, Origin::Forged(kind))
                }
                Shot::Replay {
                    to,
                    source,
                    spoofed,
                    bytes,
                } => (to, source, bytes, Origin::Replay { spoofed }),
            };
            if self.nodes[to].node.is_some() && !self.nodes[to].paused {
                self.deliver_datagram(to, source, bytes, origin);
            }
        }
    }

    /// Feeds a datagram to node `to` and checks what it did (see [`outsider`]).
    fn deliver_datagram(&mut self, to: usize, source: String, bytes: Vec<u8>, origin: Origin) {
        let header = frame::parse(&bytes).ok().map(|f| f.header);
        let Some((before, rejected_before)) = self.nodes[to].node.as_ref().map(Guarded::of) else {
            return;
        };
        self.input(
            to,
            Input::Datagram {
                from: source,
                bytes,
            },
        );
        let Some((after, rejected_after)) = self.nodes[to].node.as_ref().map(Guarded::of) else {
            return;
        };
        let refused = rejected_after > rejected_before;
        let me = node_id(to);
        let own = header.as_ref().is_some_and(|h| h.from == me);
        let now = self.now;
        if !refused && !own {
            if let Some(h) = &header {
                if !self.admitted.insert((to, h.from.0, h.incarnation, h.seq)) {
                    self.checker.violation(
                        now,
                        "frame_admitted_twice",
                        format!(
                            "node {to} admitted frame {}/{}/{} a second time ({origin:?})",
                            h.from, h.incarnation, h.seq
                        ),
                    );
                }
            }
        }
        let changed = before != after;
        let detail = |what: &str| {
            format!("node {to}: {what} ({origin:?}); before {before:?}, after {after:?}")
        };
        match origin {
            Origin::Network => {}
            Origin::Forged(kind) => {
                if !refused {
                    self.checker.violation(
                        now,
                        "outsider_forgery_admitted",
                        detail(&format!("a forged {kind} was not refused")),
                    );
                }
                if changed {
                    self.checker.violation(
                        now,
                        "outsider_changed_state",
                        detail("a forgery changed the node's state"),
                    );
                }
            }
            Origin::Replay { spoofed } => {
                let misdirected = header
                    .as_ref()
                    .is_some_and(|h| h.dest.0 != 0 && h.dest != me);
                if !refused && !own && (misdirected || !spoofed) {
                    self.checker.violation(
                        now,
                        "outsider_relay_admitted",
                        detail("a relay from the outsider or to another node was admitted"),
                    );
                }
                if (refused || own) && changed {
                    self.checker.violation(
                        now,
                        "outsider_changed_state",
                        detail("a refused replay changed the node's state"),
                    );
                }
                if !refused && !own {
                    if let Some(o) = self.outsider.as_mut() {
                        o.stats.accepted_first_copies += 1;
                    }
                }
            }
        }
    }

    pub fn run_for(&mut self, ms: Millis) {
        let until = self.now + ms;
        self.run_until(until);
    }

    /// Runs until `cond` holds (checked every tick) or `timeout` passes; returns when it held.
    pub fn run_until_cond(
        &mut self,
        timeout: Millis,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> Option<Millis> {
        let until = self.now + timeout;
        while self.now < until {
            if cond(self) {
                return Some(self.now);
            }
            let next = self.now + TICK_MS;
            self.run_until(next);
        }
        cond(self).then_some(self.now)
    }

    /// Arms the liveness property (see [`LivenessWatch`]) with this deadline.
    pub fn watch_liveness(&mut self, deadline: Millis) {
        self.liveness = Some(LivenessWatch {
            deadline,
            since: None,
        });
    }

    /// Some live node talks both ways with a quorum of nodes that would vote for its log.
    pub fn some_node_could_be_elected(&self) -> bool {
        let quorum = self.quorum();
        let log = |i: usize| {
            self.nodes[i].node.as_ref().map(|n| {
                (
                    n.credentials().last_log_epoch,
                    n.credentials().last_log_index,
                )
            })
        };
        (0..self.nodes.len()).any(|x| {
            let Some(lx) = log(x).filter(|_| self.faults.is_live(x)) else {
                return false;
            };
            let voters = (0..self.nodes.len())
                .filter(|y| {
                    *y == x
                        || (self.faults.is_live(*y)
                            && self.faults.talk(x, *y)
                            && log(*y).is_some_and(|ly| ly <= lx))
                })
                .count();
            voters >= quorum
        })
    }

    fn quorum(&self) -> usize {
        match self.cfg.quorum {
            QuorumMode::Majority => self.nodes.len() / 2 + 1,
            QuorumMode::None => 1,
        }
    }

    fn check_liveness(&mut self) {
        let Some(mut w) = self.liveness else { return };
        let quorum = self.quorum();
        let served = self
            .leaders()
            .into_iter()
            .any(|l| self.faults.can_lead(l, quorum));
        if served || !self.some_node_could_be_elected() {
            w.since = None;
        } else {
            let since = *w.since.get_or_insert(self.now);
            if self.now - since > w.deadline {
                let now = self.now;
                self.checker.violation(
                    now,
                    "no_leader_while_majority_reachable",
                    format!(
                        "since {since} ms a live node could exchange messages both ways with a majority that would vote for its log, and no node that can lead leads ({} ms > {} ms)",
                        now - since,
                        w.deadline
                    ),
                );
                w.since = None;
            }
        }
        self.liveness = Some(w);
    }

    fn check_nodes(&mut self) {
        let view: Vec<Option<&Node>> = self.nodes.iter().map(|n| n.node.as_ref()).collect();
        self.checker.check_nodes(self.now, &view);
    }

    // ----- plumbing ------------------------------------------------------------------

    /// Forgets a client connection and tells its client, 1 ms later, that it closed.
    fn close_conn(&mut self, conn: ConnId) {
        if let Some((client, _)) = self.conns.remove(&conn) {
            self.enqueue(
                1,
                Packet::ToClient {
                    client,
                    conn,
                    line: None,
                },
            );
        }
    }

    fn enqueue(&mut self, delay: Millis, p: Packet) {
        let id = self.next_packet;
        self.next_packet += 1;
        self.seq += 1;
        self.packets.insert(id, p);
        self.queue.push(Reverse((self.now + delay, self.seq, id)));
    }

    fn send_datagram(&mut self, from: usize, to: usize, bytes: &[u8]) {
        if !self.faults.link_open(from, to) || self.rng.chance(self.cfg.drop) {
            return;
        }
        let copies = if self.rng.chance(self.cfg.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.range(self.cfg.delay.0, self.cfg.delay.1);
            self.enqueue(
                delay,
                Packet::Datagram {
                    from,
                    to,
                    bytes: bytes.to_vec(),
                },
            );
        }
    }

    fn deliver(&mut self, p: Packet) {
        match p {
            Packet::Datagram { from, to, bytes } => {
                if !self.faults.link_open(from, to) || self.nodes[to].node.is_none() {
                    return;
                }
                if self.nodes[to].paused {
                    self.nodes[to]
                        .buffered
                        .push(Packet::Datagram { from, to, bytes });
                    return;
                }
                let from_addr = self.nodes[from].addr.clone();
                self.deliver_datagram(to, from_addr, bytes, Origin::Network);
            }
            Packet::ToNode { to, input } => {
                if self.nodes[to].node.is_none() {
                    return;
                }
                if self.nodes[to].paused {
                    self.nodes[to].buffered.push(Packet::ToNode { to, input });
                    return;
                }
                self.input(to, input);
            }
            Packet::ToClient { client, conn, line } => self.client_receive(client, conn, line),
            Packet::Synced { to, boot } => {
                if self.nodes[to].node.is_none() || self.nodes[to].boots != boot {
                    return;
                }
                if self.nodes[to].paused {
                    // Frozen with its process (the cgroup freezer stops the writer too).
                    self.nodes[to].buffered.push(Packet::Synced { to, boot });
                    return;
                }
                let n = &mut self.nodes[to];
                n.syncing = false;
                n.synced += n.unsynced.len() as u64;
                let records = std::mem::take(&mut n.unsynced);
                n.disk.extend(records);
                // A checkpoint replaces the file (as the runtime's rewrite does).
                if let Some(last) = n.disk.iter().rposition(|r| r.is_checkpoint()) {
                    n.disk.drain(..last);
                }
                let upto = n.synced;
                self.input(to, Input::Persisted { upto });
            }
        }
    }

    /// Feeds an input to node `i` and carries out its outputs.
    pub fn input(&mut self, i: usize, input: Input) {
        let now = self.now;
        let Some(node) = self.nodes[i].node.as_mut() else {
            return;
        };
        let outputs = node.handle_batch(now, [input]);
        for o in outputs {
            match o {
                Output::Broadcast { bytes } | Output::Multicast { bytes } => {
                    if let Some(o) = self.outsider.as_mut() {
                        o.sniff(i, &self.nodes[i].addr, &bytes);
                    }
                    // Every reachable node gets it, the sender included (loopback).
                    for to in 0..self.nodes.len() {
                        self.send_datagram(i, to, &bytes);
                    }
                }
                Output::Send { addr, bytes, .. } => {
                    if let Some(o) = self.outsider.as_mut() {
                        o.sniff(i, &self.nodes[i].addr, &bytes);
                    }
                    if let Some(to) = self.nodes.iter().position(|n| n.addr == addr) {
                        self.send_datagram(i, to, &bytes);
                    }
                }
                Output::ToClient { conn, line } => {
                    if let Some((client, _)) = self.conns.get(&conn).copied() {
                        self.enqueue(
                            1,
                            Packet::ToClient {
                                client,
                                conn,
                                line: Some(line),
                            },
                        );
                    }
                }
                Output::CloseClient { conn } => self.close_conn(conn),
                Output::Event(rec) => {
                    self.checker.on_event(now, i, &rec);
                    if self.cfg.record_events {
                        self.events.push((i, rec));
                    }
                }
                Output::Persist(p) => {
                    self.nodes[i].unsynced.push(p);
                    if !self.nodes[i].syncing {
                        self.nodes[i].syncing = true;
                        let delay = self.disk_rng.range(self.cfg.fsync.0, self.cfg.fsync.1);
                        let boot = self.nodes[i].boots;
                        self.enqueue(delay, Packet::Synced { to: i, boot });
                    }
                }
                Output::Credential(job) => {
                    let result = credentials::compute(job, &mut self.rng);
                    self.enqueue(
                        credentials::SIM_CREDENTIAL_MS,
                        Packet::ToNode {
                            to: i,
                            input: Input::CredentialDone(result),
                        },
                    );
                }
            }
        }
    }

    // ----- clients -------------------------------------------------------------------

    fn step_clients(&mut self) {
        for c in 0..self.clients.len() {
            let actions = self.clients[c].tick(self.now, &mut self.checker);
            self.client_actions(c, actions);
        }
    }

    fn client_receive(&mut self, c: usize, conn: ConnId, line: Option<String>) {
        // Record what the leader applied before its reply is checked against the record.
        self.check_nodes();
        let actions = self.clients[c].receive(self.now, conn, line, &mut self.checker);
        self.client_actions(c, actions);
    }

    fn client_actions(&mut self, c: usize, actions: Vec<UserAction>) {
        for a in actions {
            match a {
                UserAction::Connect { link, addr } => {
                    let conn = ConnId(self.next_conn);
                    self.next_conn += 1;
                    self.clients[c].bind(link, conn);
                    let node = self.index_of_client_addr(&addr);
                    let Some(node) = node.filter(|n| self.nodes[*n].node.is_some()) else {
                        // Connection refused.
                        self.enqueue(
                            1,
                            Packet::ToClient {
                                client: c,
                                conn,
                                line: None,
                            },
                        );
                        continue;
                    };
                    self.conns.insert(conn, (c, node));
                    let peer = format!("client-{c}");
                    self.enqueue(
                        1,
                        Packet::ToNode {
                            to: node,
                            input: Input::ClientConnected { conn, peer },
                        },
                    );
                }
                UserAction::Line { conn, line } => {
                    if let Some((_, node)) = self.conns.get(&conn).copied() {
                        self.enqueue(
                            1,
                            Packet::ToNode {
                                to: node,
                                input: Input::ClientLine { conn, line },
                            },
                        );
                    }
                }
                UserAction::Disconnect { conn } => {
                    if let Some((_, node)) = self.conns.remove(&conn) {
                        self.enqueue(
                            1,
                            Packet::ToNode {
                                to: node,
                                input: Input::ClientDisconnected { conn },
                            },
                        );
                    }
                }
            }
        }
    }
}
