//! The chaos generator: a seed becomes a fault schedule, written as an ordinary scenario
//! (Jepsen's generator; TigerBeetle's VOPR for the two phases). Pure and deterministic: the
//! same spec gives the same YAML, byte for byte, and `harness run` replays it.
//!
//! Every target is a concrete node (`{node: 3}`), chosen here, never at run time, so the
//! schedule is the same whatever the cluster does. A small model of the faults in force
//! (nodes down, paused, or on a degraded or cut link) keeps at most `max_faulty` nodes
//! faulty at once during the **safety phase**; then the **liveness phase** heals the
//! network, resumes and restarts everything, and demands one leader and convergence within
//! the derived deadlines, and the workload drains (delivery).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// A kind of fault the generator may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    Kill,
    Stop,
    Pause,
    /// Restarting killed and stopped nodes during the safety phase (without it they stay
    /// down until the liveness phase).
    Restart,
    Partition,
    Cut,
    Isolate,
    Loss,
    Delay,
    /// Opt-in (`--faults …,duplicate`), not in the default list, so the default schedules
    /// of existing seeds keep their bytes.
    Duplicate,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Partition,
        FaultKind::Cut,
        FaultKind::Isolate,
        FaultKind::Loss,
        FaultKind::Delay,
    ];

    /// Every kind `--faults` accepts: the defaults ([`FaultKind::ALL`]) and the opt-in ones.
    pub const KNOWN: [FaultKind; 10] = [
        FaultKind::Kill,
        FaultKind::Stop,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Partition,
        FaultKind::Cut,
        FaultKind::Isolate,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::Duplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
            FaultKind::Partition => "partition",
            FaultKind::Cut => "cut",
            FaultKind::Isolate => "isolate",
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::Duplicate => "duplicate",
        }
    }

    /// Parses `kill,pause,partition`.
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let kind = FaultKind::KNOWN
                .into_iter()
                .find(|k| k.name() == word)
                .ok_or_else(|| {
                    format!(
                        "unknown fault `{word}`; expected some of: {}",
                        FaultKind::KNOWN.map(FaultKind::name).join(",")
                    )
                })?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            return Err("--faults names no fault".into());
        }
        Ok(out)
    }
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct ChaosSpec {
    pub seed: u64,
    /// Length of the safety phase (the sum of its sleeps).
    pub duration: Duration,
    pub faults: Vec<FaultKind>,
    /// At most this many nodes faulty at once during the safety phase.
    pub max_faulty: usize,
    pub nodes: usize,
    pub election: String,
    /// `majority`, or `none` to reproduce split brain (a self-test of the checkers).
    pub quorum: String,
}

impl ChaosSpec {
    /// The largest minority: with at most this many faulty, a majority stays up and
    /// connected, so liveness can be demanded throughout.
    pub fn minority(nodes: usize) -> usize {
        nodes.saturating_sub(1) / 2
    }
}

/// A generated schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The scenario's name (`chaos-<seed>`); the file should be `<name>.yaml`.
    pub name: String,
    pub yaml: String,
    /// Faults injected in the safety phase (repairs not counted).
    pub faults: usize,
    /// The most nodes faulty at once, by the model.
    pub max_faulty_seen: usize,
}

/// Faults in force, as far as the schedule knows.
#[derive(Default)]
struct Model {
    down: BTreeSet<u64>,
    paused: BTreeSet<u64>,
    /// On a cut, partitioned-off, isolated, lossy or delayed link.
    net: BTreeSet<u64>,
}

impl Model {
    fn faulty(&self) -> BTreeSet<u64> {
        self.down
            .iter()
            .chain(&self.paused)
            .chain(&self.net)
            .copied()
            .collect()
    }
}

fn node(id: u64) -> String {
    format!("{{node: {id}}}")
}

fn ms(d: u64) -> String {
    if d.is_multiple_of(1000) {
        format!("{}s", d / 1000)
    } else {
        format!("{d}ms")
    }
}

/// Generates the schedule for `spec`.
pub fn generate(spec: &ChaosSpec) -> Schedule {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let n = spec.nodes as u64;
    let all: Vec<u64> = (1..=n).collect();
    let allowed = |k: FaultKind| spec.faults.contains(&k);
    let mut m = Model::default();
    let mut steps: Vec<String> = vec![
        "await: {leader: any, within: 10s}".into(),
        // Users log in and chat before the first fault.
        "sleep: 1s".into(),
    ];
    let total = spec.duration.as_millis() as u64;
    let mut t = 0u64;
    let mut faults = 0usize;
    let mut max_seen = 0usize;
    while t < total {
        let gap = rng.gen_range(300..=2500).min(total - t);
        steps.push(format!("sleep: {}", ms(gap)));
        t += gap;
        if t >= total {
            break;
        }
        let faulty = m.faulty();
        let budget = spec.max_faulty.saturating_sub(faulty.len());
        let healthy: Vec<u64> = all
            .iter()
            .copied()
            .filter(|i| !faulty.contains(i))
            .collect();
        // Repairs possible now.
        let mut repairs: Vec<String> = Vec::new();
        if allowed(FaultKind::Restart) {
            repairs.extend(
                m.down
                    .iter()
                    .map(|d| format!("restart: {{target: {}}}", node(*d))),
            );
        }
        repairs.extend(
            m.paused
                .iter()
                .map(|p| format!("resume: {{target: {}}}", node(*p))),
        );
        if !m.net.is_empty() {
            repairs.push("heal: {}".into());
        }
        let repair = !repairs.is_empty() && (budget == 0 || rng.gen_bool(0.35));
        if repair {
            let step = repairs.choose(&mut rng).cloned().unwrap_or_default();
            if let Some(id) = step_node(&step) {
                m.down.remove(&id);
                m.paused.remove(&id);
            } else {
                m.net.clear();
            }
            steps.push(step);
            continue;
        }
        // Faults that fit the budget and the healthy nodes.
        let kinds: Vec<FaultKind> = spec
            .faults
            .iter()
            .copied()
            .filter(|k| match k {
                FaultKind::Restart => false,
                FaultKind::Cut => budget >= 2 && healthy.len() >= 2,
                _ => budget >= 1 && !healthy.is_empty(),
            })
            .collect();
        let Some(&kind) = kinds.choose(&mut rng) else {
            continue;
        };
        let pick = healthy[rng.gen_range(0..healthy.len())];
        let step = match kind {
            FaultKind::Kill | FaultKind::Stop => {
                m.down.insert(pick);
                format!("{}: {{target: {}}}", kind.name(), node(pick))
            }
            FaultKind::Pause => {
                m.paused.insert(pick);
                format!("pause: {{target: {}}}", node(pick))
            }
            FaultKind::Isolate => {
                m.net.insert(pick);
                format!("isolate: {{target: {}}}", node(pick))
            }
            FaultKind::Partition => {
                // A side of healthy nodes cut off from the rest; at least one node stays
                // on the other side.
                let most = budget.min(healthy.len()).min(spec.nodes - 1).max(1);
                let size = rng.gen_range(1..=most);
                let mut side: Vec<u64> = healthy.choose_multiple(&mut rng, size).copied().collect();
                side.sort_unstable();
                m.net.extend(&side);
                let group: Vec<String> = side.iter().map(|i| node(*i)).collect();
                format!("partition: {{groups: [[{}], rest]}}", group.join(", "))
            }
            FaultKind::Cut => {
                let pair: Vec<u64> = healthy.choose_multiple(&mut rng, 2).copied().collect();
                m.net.extend(&pair);
                format!("cut: {{from: {}, to: {}}}", node(pair[0]), node(pair[1]))
            }
            FaultKind::Loss => {
                m.net.insert(pick);
                // Low enough that five heartbeats in a row are rarely all lost: a lossy
                // link, not a dead one.
                let percent = rng.gen_range(5..=15);
                format!(
                    "loss: {{from: all, to: {}, percent: {percent}}}",
                    node(pick)
                )
            }
            FaultKind::Delay => {
                m.net.insert(pick);
                // Well inside the failure timeout, even with the jitter.
                let d = rng.gen_range(20..=200u64);
                let jitter = rng.gen_range(0..=d / 2);
                format!("delay: {{to: {}, ms: {d}, jitter: {jitter}}}", node(pick))
            }
            FaultKind::Duplicate => {
                m.net.insert(pick);
                let percent = rng.gen_range(5..=20);
                format!("duplicate: {{to: {}, percent: {percent}}}", node(pick))
            }
            FaultKind::Restart => unreachable!("filtered out above"),
        };
        faults += 1;
        max_seen = max_seen.max(m.faulty().len());
        steps.push(step);
    }
    // Liveness phase: everything repaired, then one leader, convergence, and the drain.
    if !m.net.is_empty() || steps.iter().any(|s| is_network(s)) {
        steps.push("heal: {}".into());
    }
    for p in &m.paused {
        steps.push(format!("resume: {{target: {}}}", node(*p)));
    }
    for d in &m.down {
        steps.push(format!("restart: {{target: {}}}", node(*d)));
    }
    steps.push("expect: {converged: {}}".into());
    steps.push("expect: {leader: any}".into());
    // Users chat on the healed cluster before the drain.
    steps.push("sleep: 2s".into());

    let name = format!("chaos-{}", spec.seed);
    let faults_list: Vec<&str> = spec.faults.iter().map(|k| k.name()).collect();
    let mut yaml = String::new();
    let _ = writeln!(yaml, "name: {name}");
    let _ = writeln!(
        yaml,
        "about: \"harness chaos --seed {} --duration {}s --faults {} --max-faulty {}: {faults} \
         random faults on {} nodes, at most {} faulty at once, then everything healed; one \
         leader, convergence and delivery are required after the heal.\"",
        spec.seed,
        spec.duration.as_secs_f64(),
        faults_list.join(","),
        spec.max_faulty,
        spec.nodes,
        max_seen,
    );
    let _ = writeln!(
        yaml,
        "cluster: {{nodes: {}, election: {}, heartbeat: 100ms, failure_timeout: 500ms, quorum: {}}}",
        spec.nodes, spec.election, spec.quorum
    );
    let _ = writeln!(
        yaml,
        "workload: {{users: 4, rooms: [general], rate: 20/s, drain: 3s}}"
    );
    let _ = writeln!(yaml, "steps:");
    for s in &steps {
        let _ = writeln!(yaml, "  - {s}");
    }
    let _ = writeln!(yaml, "checks: [election, detection, delivery, convergence]");
    Schedule {
        name,
        yaml,
        faults,
        max_faulty_seen: max_seen,
    }
}

/// The node a `restart`/`resume` step names.
fn step_node(step: &str) -> Option<u64> {
    let rest = step.split("{node: ").nth(1)?;
    rest.split('}').next()?.parse().ok()
}

fn is_network(step: &str) -> bool {
    [
        "partition:",
        "cut:",
        "isolate:",
        "loss:",
        "delay:",
        "duplicate:",
    ]
    .iter()
    .any(|k| step.starts_with(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{self, StepKind};

    fn spec(seed: u64) -> ChaosSpec {
        ChaosSpec {
            seed,
            duration: Duration::from_secs(60),
            faults: FaultKind::ALL.to_vec(),
            max_faulty: 2,
            nodes: 5,
            election: "lcr".into(),
            quorum: "majority".into(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let a = generate(&spec(1));
        assert_eq!(a, generate(&spec(1)));
        assert_ne!(a.yaml, generate(&spec(2)).yaml);
        assert!(a.faults >= 10, "60 s should hold many faults: {}", a.yaml);
    }

    #[test]
    fn schedules_are_valid_scenarios_that_end_healed_and_keep_the_budget() {
        for seed in 0..200 {
            let sched = generate(&spec(seed));
            let s = scenario::parse(&sched.yaml, &format!("{}.yaml", sched.name))
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", sched.yaml));
            assert!(sched.max_faulty_seen <= 2, "seed {seed}: {}", sched.yaml);
            // The safety phase's sleeps add up to the duration (plus the 1 s warm-up and
            // the 2 s after the heal).
            let slept: u128 = s
                .steps
                .iter()
                .filter_map(|st| match st.kind {
                    StepKind::Sleep(d) => Some(d.as_millis()),
                    _ => None,
                })
                .sum();
            assert_eq!(slept, 63_000, "seed {seed}");
            // Replay the model over the written steps: nothing is left down at the end.
            let mut down = BTreeSet::new();
            for st in &s.steps {
                if let StepKind::Fault { action, target, .. } = &st.kind {
                    let crate::scenario::Target::Node(id) = target else {
                        panic!("seed {seed}: a target that is not a concrete node: {target}");
                    };
                    use crate::history::FaultAction::*;
                    match action {
                        Kill | Stop | Pause => {
                            down.insert(*id);
                        }
                        Restart | Resume => {
                            down.remove(id);
                        }
                        _ => {}
                    }
                }
            }
            assert!(down.is_empty(), "seed {seed} leaves {down:?} down");
        }
    }

    #[test]
    fn only_the_chosen_faults_appear_and_unknown_names_are_refused() {
        let mut sp = spec(3);
        sp.faults = vec![FaultKind::Pause];
        let sched = generate(&sp);
        for line in sched.yaml.lines().filter(|l| l.starts_with("  - ")) {
            let l = &line[4..];
            assert!(
                ["pause", "resume", "sleep", "await", "expect"]
                    .iter()
                    .any(|k| l.starts_with(k)),
                "{l}"
            );
        }
        assert!(FaultKind::parse_list("kill,frobnicate")
            .unwrap_err()
            .contains("unknown fault `frobnicate`"));
        assert_eq!(
            FaultKind::parse_list("kill, pause,kill").unwrap(),
            vec![FaultKind::Kill, FaultKind::Pause]
        );
        // duplicate is opt-in: accepted, drawn when asked for, never by default.
        sp.faults = FaultKind::parse_list("duplicate").unwrap();
        let sched = generate(&sp);
        assert!(
            sched.yaml.contains("- duplicate: {to: {node: "),
            "{}",
            sched.yaml
        );
        crate::scenario::parse(&sched.yaml, "chaos.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert!(!FaultKind::ALL.contains(&FaultKind::Duplicate));
    }

    #[test]
    fn an_unconstrained_budget_can_take_a_majority_down() {
        let mut worst = 0;
        for seed in 0..50 {
            let mut sp = spec(seed);
            sp.max_faulty = 5;
            worst = worst.max(generate(&sp).max_faulty_seen);
        }
        assert!(
            worst >= 3,
            "with no budget some seed should fault a majority"
        );
    }
}
