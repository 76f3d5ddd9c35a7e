//! The runner against an in-memory backend with a virtual clock: proves the seam carries a
//! whole run (no Docker), and that the seed alone decides the steps' random choices.

use super::*;
use crate::backend::{BackendError, LinkFault, Stamped};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Records every call; time moves only when someone sleeps. Each node writes `started`
/// `start_delay_ms` after the start (never, for `u64::MAX`), or at once.
struct FakeBackend {
    ids: Vec<u64>,
    clock: Arc<AtomicU64>,
    calls: Arc<Mutex<Vec<String>>>,
    /// The clock at each call, in the order of `calls`.
    at: Arc<Mutex<Vec<u64>>>,
    start_delay_ms: Vec<u64>,
    /// `started` events not yet handed over: (due at, node).
    pending: Vec<(u64, u64)>,
    heal_fails: bool,
}

impl FakeBackend {
    fn new(nodes: usize, clock: u64, calls: Arc<Mutex<Vec<String>>>) -> FakeBackend {
        FakeBackend {
            ids: (1..=nodes as u64).collect(),
            clock: Arc::new(AtomicU64::new(clock)),
            calls,
            at: Arc::default(),
            start_delay_ms: vec![],
            pending: vec![],
            heal_fails: false,
        }
    }

    fn call(&self, what: &str, ids: &[u64]) -> Stamped {
        self.calls.lock().unwrap().push(format!("{what} {ids:?}"));
        let now = self.clock.load(Ordering::SeqCst);
        self.at.lock().unwrap().push(now);
        Ok(now)
    }
}

impl Backend for FakeBackend {
    fn describe(&self) -> String {
        "fake".into()
    }
    fn ids(&self) -> Vec<u64> {
        self.ids.clone()
    }
    fn client_addrs(&self) -> Vec<SocketAddr> {
        vec![]
    }
    fn start<'a>(&'a mut self, ids: &'a [u64], _: bool) -> BoxFuture<'a, Stamped> {
        Box::pin(async move {
            let now = self.clock.load(Ordering::SeqCst);
            for &id in ids {
                let delay = self
                    .start_delay_ms
                    .get(id as usize - 1)
                    .copied()
                    .unwrap_or(0);
                if delay != u64::MAX {
                    self.pending.push((now + delay, id));
                }
            }
            self.call("start", ids)
        })
    }
    fn kill<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("kill", ids) })
    }
    fn stop<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("stop", ids) })
    }
    fn pause<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("pause", ids) })
    }
    fn resume<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("resume", ids) })
    }
    fn restart<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("restart", ids) })
    }
    fn partition<'a>(&'a mut self, groups: &'a [Vec<u64>]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("partition", &groups.concat()) })
    }
    fn cut<'a>(&'a mut self, from: &'a [u64], _to: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { self.call("cut", from) })
    }
    fn isolate<'a>(&'a mut self, _ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { Err(BackendError::Unsupported("isolate in the fake".into())) })
    }
    fn heal(&mut self) -> BoxFuture<'_, Stamped> {
        Box::pin(async move {
            let r = self.call("heal", &[]);
            if self.heal_fails {
                return Err(BackendError::Failed(
                    "network rules not applied on every running node: node 2: nft failed".into(),
                ));
            }
            r
        })
    }
    fn link<'a>(
        &'a mut self,
        _fault: &'a LinkFault,
    ) -> BoxFuture<'a, Result<(u64, String), BackendError>> {
        Box::pin(async move { Err(BackendError::Unsupported("links in the fake".into())) })
    }
    fn now_ms(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let clock = self.clock.clone();
        Box::pin(async move {
            clock.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
            tokio::task::yield_now().await;
        })
    }
    fn records(&mut self) -> Vec<Record> {
        let now = self.clock.load(Ordering::SeqCst);
        let (due, later) = self.pending.iter().partition(|(at, _)| *at <= now);
        self.pending = later;
        due.into_iter()
            .map(|(at, id)| crate::checkers::testkit::started(at, id, self.ids.len()))
            .collect()
    }
    fn teardown(&mut self, _keep: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.calls.lock().unwrap().push("teardown".into());
        })
    }
}

const SCENARIO: &str = "\
name: fake
about: random followers die and come back
cluster: {nodes: 5}
steps:
  - kill: {target: random_follower}
  - sleep: 1s
  - restart: {target: all}
  - kill: {target: random_follower}
  - pause: {target: random_follower}
  - isolate: {target: {node: 1}}
  - heal: {}
checks: [convergence]
";

/// Runs the scenario on a fresh fake with `seed`; returns the calls it received.
async fn calls_with_seed(seed: u64) -> (Vec<String>, RunResult) {
    let s = crate::scenario::parse(SCENARIO, "fake.yaml").unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let make: MakeBackend = Box::new(move |spec, network_faults| {
        assert!(network_faults, "the scenario isolates and heals");
        Box::pin(async move {
            Ok(Box::new(FakeBackend::new(spec.nodes, 1_000_000, seen)) as Box<dyn Backend>)
        })
    });
    let mut opts = RunOptions::new("unused");
    opts.seed = Some(seed);
    opts.out =
        Some(std::env::temp_dir().join(format!("faultline-fake-{seed}-{}", docker::new_run_id())));
    let result = run_with(&s, &opts, make).await;
    let out = calls.lock().unwrap().clone();
    (out, result)
}

#[tokio::test]
async fn a_whole_run_goes_through_the_backend_and_the_seed_decides_random_choices() {
    let (a, result) = calls_with_seed(7).await;
    assert_eq!(result.seed, 7);
    assert_eq!(a.first().map(String::as_str), Some("start [1, 2, 3, 4, 5]"));
    assert_eq!(
        a.iter().filter(|c| c.starts_with("kill")).count(),
        2,
        "{a:?}"
    );
    assert!(a.contains(&"restart [1, 2, 3, 4, 5]".to_string()), "{a:?}");
    // The unsupported isolate fails its step; the run goes on to the heal and the teardown.
    assert!(a.contains(&"heal []".to_string()), "{a:?}");
    assert_eq!(a.last().map(String::as_str), Some("teardown"));
    let failed: Vec<_> = result_steps(&result);
    assert_eq!(
        failed,
        vec![6],
        "only the isolate (step 6) fails: {failed:?}"
    );

    let (again, _) = calls_with_seed(7).await;
    assert_eq!(a, again, "the same seed makes the same choices");
    let mut differs = false;
    for seed in 8..20 {
        differs |= calls_with_seed(seed).await.0 != a;
    }
    assert!(
        differs,
        "twelve other seeds all chose the same nodes as seed 7"
    );
}

/// 1-based indexes of the failed steps, from the run's summary.
fn result_steps(r: &RunResult) -> Vec<usize> {
    let text = std::fs::read_to_string(r.out_dir.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["passed"] == false)
        .map(|s| s["index"].as_u64().unwrap() as usize)
        .collect()
}

/// Runs `yaml` on a fake built by `setup`; returns the calls, their clock and the result.
async fn run_fake(
    yaml: &str,
    setup: impl FnOnce(&mut FakeBackend) + Send + 'static,
) -> (Vec<String>, Vec<u64>, RunResult) {
    let s = crate::scenario::parse(yaml, "fake.yaml").unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let at: Arc<Mutex<Vec<u64>>> = Arc::default();
    let (seen, seen_at) = (calls.clone(), at.clone());
    let make: MakeBackend = Box::new(move |spec, _| {
        Box::pin(async move {
            let mut fake = FakeBackend::new(spec.nodes, 1_000_000, seen);
            fake.at = seen_at;
            setup(&mut fake);
            Ok(Box::new(fake) as Box<dyn Backend>)
        })
    });
    let mut opts = RunOptions::new("unused");
    opts.seed = Some(1);
    opts.out = Some(std::env::temp_dir().join(format!("faultline-fake-{}", docker::new_run_id())));
    let result = run_with(&s, &opts, make).await;
    let out = calls.lock().unwrap().clone();
    let times = at.lock().unwrap().clone();
    (out, times, result)
}

const STAGGERED: &str = "\
name: staggered
about: the last node is slow to start
cluster: {nodes: 3, start: staggered}
steps:
  - kill: {target: {node: 1}}
checks: [convergence]
";

#[tokio::test]
async fn the_steps_begin_only_once_every_node_has_written_started() {
    let (calls, at, result) = run_fake(STAGGERED, |f| f.start_delay_ms = vec![0, 100, 3000]).await;
    let start = calls.iter().position(|c| c.starts_with("start")).unwrap();
    let kill = calls.iter().position(|c| c.starts_with("kill")).unwrap();
    assert!(
        at[kill] >= at[start] + 3000,
        "the kill came {} ms after the start, before node 3 had started: {calls:?}",
        at[kill] - at[start]
    );
    assert!(!result.interrupted);
}

#[tokio::test]
async fn a_node_that_never_writes_started_stops_the_run_before_any_step() {
    let (calls, _, result) = run_fake(STAGGERED, |f| f.start_delay_ms = vec![0, 0, u64::MAX]).await;
    assert!(!calls.iter().any(|c| c.starts_with("kill")), "{calls:?}");
    assert_eq!(calls.last().map(String::as_str), Some("teardown"));
    assert_ne!(result.verdict, Verdict::Pass);
}

#[tokio::test]
async fn a_heal_that_failed_part_way_skips_the_later_steps() {
    let yaml = "\
name: heal fails
about: a heal that does not go in everywhere
cluster: {nodes: 3}
steps:
  - partition: {groups: [[{node: 1}], rest]}
  - heal: {}
  - kill: {target: {node: 2}}
checks: [convergence]
";
    let (calls, _, result) = run_fake(yaml, |f| f.heal_fails = true).await;
    assert!(calls.contains(&"heal []".to_string()), "{calls:?}");
    assert!(
        !calls.iter().any(|c| c.starts_with("kill")),
        "the run went on after a failed heal: {calls:?}"
    );
    // The heal (step 2) failed; the kill (step 3) never ran.
    assert_eq!(result_steps(&result).first(), Some(&2));
}

#[tokio::test]
async fn named_groups_several_targets_and_repeats_reach_the_backend_as_written() {
    let yaml = "\
name: schema
about: a named partition side, two targets at once and a repeat
cluster: {nodes: 5}
steps:
  - partition: {groups: [{nodes: [{node: 1}, {node: 2}], as: side_a}, {nodes: rest, as: side_b}]}
  - cut: {from: {nodes: {node: 3}, as: cutter}, to: side_a}
  - kill: {target: side_b}
  - restart: {target: [cutter, {node: 4}]}
  - repeat:
      times: 2
      steps:
        - stop: {target: [side_a, random_follower]}
        - restart: {target: all}
checks: [convergence]
";
    let (calls, _, result) = run_fake(yaml, |_| {}).await;
    let faults: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "teardown" && !c.starts_with("start"))
        .collect();
    assert_eq!(
        &faults[..4],
        &[
            "partition [1, 2, 3, 4, 5]",
            "cut [3]",
            "kill [3, 4, 5]",
            "restart [3, 4]"
        ]
    );
    // Each repeat's stop names side_a and one more node, never one of side_a again.
    let stops: Vec<&str> = faults
        .iter()
        .copied()
        .filter(|c| c.starts_with("stop"))
        .collect();
    assert_eq!(stops.len(), 2, "{faults:?}");
    for s in stops {
        assert!(s.starts_with("stop [1, 2, "), "{s}");
        assert!(
            !s.starts_with("stop [1, 2, 1") && !s.starts_with("stop [1, 2, 2"),
            "{s}"
        );
    }
    assert_eq!(
        faults
            .iter()
            .filter(|c| c.starts_with("restart [1, 2, 3, 4, 5]"))
            .count(),
        2
    );
    assert!(result_steps(&result).is_empty(), "no step failed");
}

#[test]
fn nodes_get_the_runs_own_secret_unless_the_scenario_is_insecure() {
    let yaml = |insecure: bool| {
        format!(
            "name: s\nabout: t\ncluster: {{nodes: 3, insecure: {insecure}}}\nsteps:\n  - sleep: 1s\nchecks: [election]\n"
        )
    };
    let secure = crate::scenario::parse(&yaml(false), "s.yaml").unwrap();
    assert!(!serve_args(&secure, "r").contains(&"--insecure".to_string()));
    let (a, b) = (node_env(&secure), node_env(&secure));
    assert!(a[0].starts_with("CHAT_CLUSTER_SECRET=") && a != b, "{a:?}");
    let insecure = crate::scenario::parse(&yaml(true), "s.yaml").unwrap();
    assert!(serve_args(&insecure, "r").contains(&"--insecure".to_string()));
    assert!(node_env(&insecure).is_empty());
}
