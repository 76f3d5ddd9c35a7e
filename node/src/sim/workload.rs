//! One randomized run per seed: a cluster of 3..=7 nodes with chat clients, a fault phase
//! (crashes, restarts, graceful stops, pauses, symmetric partitions, one-way cuts, loss and
//! duplication), then healing, a liveness deadline, and the end-of-run delivery checks.

use super::checker::Violation;
use super::outsider::OutsiderStats;
use super::{Sim, SimConfig};
use crate::core::rng::SplitMix64;
use crate::core::Millis;
use crate::events::Target;
use crate::settings::{ElectionKind, QuorumMode};
use std::collections::BTreeMap;

/// What one seed did and found.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub nodes: usize,
    pub faults: Vec<String>,
    pub violations: Vec<Violation>,
    /// Time from healing to one agreed leader.
    pub recovery_ms: Option<Millis>,
    pub liveness_deadline_ms: Millis,
    pub acked_messages: usize,
    /// Acknowledgements of retries the cluster recognised as already committed.
    pub duplicate_acks: usize,
    pub virtual_ms: Millis,
    /// What the outsider sent.
    pub outsider: OutsiderStats,
    /// Snapshots taken, and installed on a follower the leader's log no longer reached.
    pub snapshots_taken: u64,
    pub snapshot_installs: u64,
    /// Nodes found holding a state they never applied entry by entry (an install or a
    /// restart from a snapshot), checked against the committed record's state.
    pub snapshots_checked: u64,
}

/// After every fault is removed and all nodes are up, one leader must be agreed within this.
///
/// Derivation: a restarted node listens one failure timeout before it may elect, and a stale
/// leader is detected (or steps down for lost quorum) within one failure timeout: `ft`. An
/// election round gives up after `ft + jitter` with jitter < `ft`, so at most `2 ft`; two
/// nodes whose rounds collide can cost another round, so we allow three: `6 ft`. The ring
/// hops (≤ 7 × 5 ms) and the promise round fit in the `2 hb` slack. A round's timer runs
/// from when the node's epoch and vote are durable (`Node::hard_state_durable`), so a slow
/// disk lengthens a round by one sync, the candidacy's, instead of making it time out: up to
/// the simulated disk's slowest sync `disk` per round, `3 disk` for three rounds. Total
/// `7 ft + 2 hb + 3 disk`.
pub fn liveness_deadline(heartbeat_ms: Millis, failure_timeout_ms: Millis, disk: Millis) -> Millis {
    7 * failure_timeout_ms + 2 * heartbeat_ms + 3 * disk
}

/// Runs one random seed to the end.
pub fn random_run(election: ElectionKind, seed: u64) -> SeedOutcome {
    let mut rng = SplitMix64::new(seed ^ 0x5eed_f417_11e5);
    let nodes = [3, 3, 4, 5, 5, 7][rng.below(6) as usize];
    let heartbeat_ms = [50, 100][rng.below(2) as usize];
    let cfg = SimConfig {
        nodes,
        clients: 3,
        heartbeat_ms,
        failure_timeout_ms: heartbeat_ms * 5,
        quorum: QuorumMode::Majority,
        drop: [0.0, 0.01, 0.05][rng.below(3) as usize],
        duplicate: [0.0, 0.02][rng.below(2) as usize],
        delay: (1, 5),
        // A fast disk, a slow one, and one slower than a heartbeat (which must not delay
        // heartbeats, only commits).
        fsync: [(0, 2), (1, 10), (5, 150)][rng.below(3) as usize],
        // Paced so that sends go on through the whole fault phase.
        messages_per_client: 40,
        message_gap: (50, 300),
        record_events: false,
        // In every random run: forgeries and replays checked as they are delivered.
        outsider: true,
        insecure: false,
        election,
        // From the seed, not `rng`: the fault schedules stay those of earlier rounds.
        snapshot_every: [12, 24, 48][(seed % 3) as usize],
    };
    let (drop, dup) = (cfg.drop, cfg.duplicate);
    let ft = cfg.failure_timeout_ms;
    let mut sim = Sim::new(cfg, seed);
    let disk = sim.cfg.fsync.1;
    sim.watch_liveness(liveness_deadline(heartbeat_ms, ft, disk));
    let mut faults = Vec::new();
    sim.run_for(3 * ft);

    for _ in 0..8 {
        let wait = rng.range(ft / 2, 2 * ft);
        sim.run_for(wait);
        let up: Vec<usize> = (0..nodes).filter(|i| sim.is_up(*i)).collect();
        let down: Vec<usize> = (0..nodes).filter(|i| !sim.is_up(*i)).collect();
        let pick = |rng: &mut SplitMix64, v: &[usize]| v[rng.below(v.len() as u64) as usize];
        let leader = sim.leaders().first().copied();
        match rng.below(10) {
            0 | 1 if !up.is_empty() => {
                let i = if rng.chance(0.5) {
                    leader.unwrap_or_else(|| pick(&mut rng, &up))
                } else {
                    pick(&mut rng, &up)
                };
                sim.crash(i);
                faults.push(format!("{}ms crash {i}", sim.now));
            }
            2 if !down.is_empty() => {
                let i = pick(&mut rng, &down);
                sim.restart(i);
                faults.push(format!("{}ms restart {i}", sim.now));
            }
            3 | 4 => {
                let mut a = Vec::new();
                let mut b = Vec::new();
                for i in 0..nodes {
                    if rng.chance(0.5) {
                        a.push(i)
                    } else {
                        b.push(i)
                    }
                }
                faults.push(format!("{}ms partition {a:?} {b:?}", sim.now));
                sim.partition(&[a, b]);
            }
            5 => {
                let from = rng.below(nodes as u64) as usize;
                let to = rng.below(nodes as u64) as usize;
                if from != to {
                    sim.cut(from, to);
                    faults.push(format!("{}ms cut {from}->{to}", sim.now));
                }
            }
            6 => {
                sim.heal();
                faults.push(format!("{}ms heal", sim.now));
            }
            7 if !up.is_empty() => {
                let i = leader.unwrap_or_else(|| pick(&mut rng, &up));
                sim.pause(i);
                faults.push(format!("{}ms pause {i}", sim.now));
            }
            8 => {
                for i in 0..nodes {
                    if sim.is_paused(i) {
                        sim.resume(i);
                        faults.push(format!("{}ms resume {i}", sim.now));
                    }
                }
            }
            9 if !up.is_empty() => {
                let i = pick(&mut rng, &up);
                sim.shutdown(i);
                sim.crash(i); // the process exits after its leave
                faults.push(format!("{}ms sigterm {i}", sim.now));
            }
            _ => {}
        }
    }

    // Heal everything.
    sim.heal();
    sim.set_loss(0.0, 0.0);
    for i in 0..nodes {
        sim.resume(i);
        sim.restart(i);
    }
    faults.push(format!(
        "{}ms heal all (loss was {drop}, dup {dup}, disk {}-{} ms)",
        sim.now, sim.cfg.fsync.0, sim.cfg.fsync.1
    ));
    let healed_at = sim.now;
    let deadline = liveness_deadline(heartbeat_ms, ft, sim.cfg.fsync.1);
    let recovered = sim.run_until_cond(deadline, |s| s.agreed_leader().is_some());
    let recovery_ms = recovered.map(|t| t - healed_at);
    if recovery_ms.is_none() {
        let now = sim.now;
        sim.checker.violation(
            now,
            "no_leader_after_heal",
            format!("no agreed leader {deadline} ms after healing"),
        );
    } else {
        // The cluster must serve again: every client finishes and holds its whole inbox.
        let served = sim.run_until_cond(30_000, clients_complete);
        if served.is_none() {
            let now = sim.now;
            let detail = describe_clients(&sim);
            sim.checker
                .violation(now, "clients_not_served_after_heal", detail);
        }
        // Every replica converges on the leader's state (catch-up of restarted nodes).
        let converged = sim.run_until_cond(5_000, replicas_converged);
        if converged.is_none() {
            let now = sim.now;
            sim.checker.violation(
                now,
                "replicas_not_converged",
                "not every node applied the leader's commit index within 5 s".to_string(),
            );
        }
        final_checks(&mut sim);
    }
    SeedOutcome {
        seed,
        nodes,
        faults,
        violations: sim.checker.violations.clone(),
        recovery_ms,
        liveness_deadline_ms: deadline,
        acked_messages: sim.checker.acks.len(),
        duplicate_acks: sim.checker.acks.iter().filter(|a| a.duplicate).count(),
        virtual_ms: sim.now,
        outsider: sim
            .outsider
            .as_ref()
            .map(|o| o.stats.clone())
            .unwrap_or_default(),
        snapshots_taken: sim.checker.snapshots_taken,
        snapshot_installs: sim.checker.snapshot_installs,
        snapshots_checked: sim.checker.snapshots_checked,
    }
}

/// Every client has sent everything, is logged in, and holds its whole inbox (per the
/// agreed leader's state).
pub fn clients_complete(sim: &Sim) -> bool {
    let Some(l) = sim.agreed_leader() else {
        return false;
    };
    let Some(leader) = sim.node(l) else {
        return false;
    };
    sim.clients.iter().all(|c| {
        c.finished()
            && c.contiguous() == leader.chat().delivered(&c.user)
            && c.received.len() as u64 == c.contiguous()
    })
}

/// Every node is up and has applied exactly the agreed leader's commit, with equal chat state.
pub fn replicas_converged(sim: &Sim) -> bool {
    let Some(leader) = sim.agreed_leader().and_then(|l| sim.node(l)) else {
        return false;
    };
    (0..sim.node_count()).all(|i| {
        sim.node(i).is_some_and(|n| {
            n.applied_index() == leader.commit_index() && n.chat() == leader.chat()
        })
    })
}

fn describe_clients(sim: &Sim) -> String {
    let leader = sim.agreed_leader().and_then(|l| sim.node(l));
    sim.clients
        .iter()
        .map(|c| {
            let inbox = leader.map_or(0, |n| n.chat().delivered(&c.user));
            format!(
                "{}: finished={} received={} contiguous={} inbox={inbox} ({})",
                c.user,
                c.finished(),
                c.received.len(),
                c.contiguous(),
                c.describe()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// End-of-run delivery checks: exactly once, nothing lost, per-sender and per-room order.
pub fn final_checks(sim: &mut Sim) {
    let now = sim.now;
    sim.checker.finish(now);
    let mut found = Vec::new();
    // Every message ever delivered, from the committed record (replicas drop what their
    // clients acknowledged).
    let inboxes = sim
        .agreed_leader()
        .and_then(|l| sim.node(l))
        .map(|_| sim.checker.inboxes());
    for ack in &sim.checker.acks {
        if sim.checker.committed_entry(ack.index).is_none() {
            found.push((
                "acked_not_committed",
                format!("{}/{} index {}", ack.from, ack.id, ack.index),
            ));
        }
        let Some(inboxes) = &inboxes else { continue };
        let holder = match &ack.target {
            Target::User(to) => to.clone(),
            Target::Room(_) => ack.from.clone(),
        };
        let copies = inboxes
            .get(&holder)
            .into_iter()
            .flatten()
            .filter(|m| m.from == ack.from && m.id == ack.id)
            .count();
        if copies != 1 {
            found.push((
                "acked_not_delivered_once",
                format!(
                    "{}/{} is {copies} times in {holder}'s inbox",
                    ack.from, ack.id
                ),
            ));
        }
    }
    for c in &sim.clients {
        if let Some(inboxes) = &inboxes {
            for m in inboxes.get(&c.user).into_iter().flatten() {
                if c.received.get(&m.useq) != Some(m) {
                    found.push((
                        "inbox_not_received",
                        format!("{} useq {} differs or is missing", c.user, m.useq),
                    ));
                    break;
                }
            }
        }
        // Private messages from each sender arrive in send order; room posts in room order.
        let mut last_private: BTreeMap<&str, u64> = BTreeMap::new();
        let mut last_room: BTreeMap<&str, u64> = BTreeMap::new();
        for m in c.received.values() {
            match (&m.room, m.room_seq) {
                (Some(room), Some(seq)) => {
                    let prev = last_room.insert(room, seq).unwrap_or(0);
                    if seq <= prev {
                        found.push((
                            "room_order_broken",
                            format!("{} saw {room} #{seq} after #{prev}", c.user),
                        ));
                    }
                }
                _ => {
                    let n: u64 = m.id.trim_start_matches('m').parse().unwrap_or(0);
                    let prev = last_private.insert(&m.from, n).unwrap_or(0);
                    if n <= prev {
                        found.push((
                            "private_order_broken",
                            format!("{} got {}'s m{n} after m{prev}", c.user, m.from),
                        ));
                    }
                }
            }
        }
    }
    for (kind, detail) in found {
        sim.checker.violation(now, kind, detail);
    }
}
