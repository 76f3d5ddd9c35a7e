//! Running one scenario: check prerequisites, bring the cluster up, start the users, execute
//! the steps in order (targets resolved from the state observed at that moment), drain the
//! workload, collect the history, tear everything down (also on error and Ctrl-C), run the
//! checkers and write the report. The runner talks to the nodes only through a
//! [`Backend`] (Docker today); every random choice a step makes comes from one seeded RNG,
//! so a run's seed (printed, and in the history) replays the same choices.

mod steps;
#[cfg(test)]
mod tests;

use crate::backend::Backend;
use crate::checkers;
use crate::docker::{self, now_ms, ClusterSpec, DockerBackend};
use crate::history::{FaultAction, FaultRecord, HarnessRecord, History, Record};
use crate::observed::Aliases;
use crate::report::{self, RunOutcome, StepResult, StepStatus, Verdict};
use crate::scenario::{Scenario, StartMode, StepKind};
use crate::workload::Workload;
use chat_node::ids::NodeId;
use futures_util::future::BoxFuture;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// However short the scenario, users send for at least this long before the drain, so the
/// delivery checker always has traffic to judge.
const MIN_SEND_WINDOW: Duration = Duration::from_millis(1500);
/// How long the drain may wait for users that never logged in before giving up on the window.
const LOGIN_WAIT: Duration = Duration::from_secs(10);
/// Longest wait, once the containers are started, for every node's `started` event: with
/// staggered starts the first nodes could otherwise elect a leader, and meet the first
/// `await leader any`, while the last ones are still starting.
const STARTED_WAIT: Duration = Duration::from_secs(20);
/// How often the start looks for the nodes' `started` events.
const STARTED_POLL: Duration = Duration::from_millis(25);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub image: String,
    pub out: Option<PathBuf>,
    pub keep: bool,
    /// Seeds the steps' random choices (`random_follower`, …); random when absent. The seed
    /// used is printed and noted in the history, so `--seed` replays the same choices.
    pub seed: Option<u64>,
}

impl RunOptions {
    /// Options for `image` with every other setting at its default.
    pub fn new(image: impl Into<String>) -> RunOptions {
        RunOptions {
            image: image.into(),
            out: None,
            keep: false,
            seed: None,
        }
    }
}

/// A scenario's outcome as the CLI needs it.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub verdict: Verdict,
    pub wall: Duration,
    pub out_dir: PathBuf,
    pub interrupted: bool,
    pub run_id: String,
    /// The seed the steps' random choices came from.
    pub seed: u64,
    /// Every checker's result, and every step's (for `chaos` summaries and `shrink`).
    pub checks: Vec<checkers::CheckResult>,
    pub steps: Vec<StepResult>,
    /// Why the verdict is not a pass ([`report::RunOutcome::reasons`]); empty on a pass.
    pub reasons: Vec<String>,
}

/// Why a run could not be made.
#[derive(Debug)]
enum Abort {
    /// Prerequisites or Docker: exit 2.
    CouldNotRun(String),
    Interrupted,
}

/// Everything a run owns, kept outside the step future so teardown works after Ctrl-C.
struct Session {
    run_id: String,
    backend: Option<Box<dyn Backend>>,
    workload: Option<Workload>,
    client_rx: Option<UnboundedReceiver<Record>>,
    /// Every random choice a step makes.
    rng: StdRng,
    history: History,
    steps: Vec<StepResult>,
    aliases: Aliases,
    /// Host ms of the latest fault (the cluster start counts), while only `await`/`expect`
    /// steps have run since: their figures are measured from it.
    fault_ref_ms: Option<u64>,
    /// An `await` failed: later steps are skipped.
    stopped: bool,
    timings: Vec<(String, u64)>,
}

impl Session {
    fn new(run_id: String, seed: u64) -> Session {
        Session {
            run_id,
            backend: None,
            workload: None,
            client_rx: None,
            rng: StdRng::seed_from_u64(seed),
            history: History::default(),
            steps: Vec::new(),
            aliases: Aliases::default(),
            fault_ref_ms: None,
            stopped: false,
            timings: Vec::new(),
        }
    }

    /// The backend's clock (the host clock before the cluster exists).
    fn now(&self) -> u64 {
        self.backend.as_ref().map_or_else(now_ms, |b| b.now_ms())
    }

    /// Waits on the backend's clock.
    async fn sleep(&self, d: Duration) {
        match self.backend.as_ref() {
            Some(b) => b.sleep(d).await,
            None => tokio::time::sleep(d).await,
        }
    }

    /// Moves every record that arrived into the history.
    fn pull(&mut self) {
        if let Some(b) = self.backend.as_mut() {
            for r in b.records() {
                self.history.push(r);
            }
        }
        if let Some(rx) = self.client_rx.as_mut() {
            while let Ok(r) = rx.try_recv() {
                self.history.push(r);
            }
        }
    }

    fn note(&mut self, msg: impl Into<String>) {
        self.history.push(Record::Harness(HarnessRecord {
            ts_ms: self.now(),
            msg: msg.into(),
        }));
    }

    fn timing(&mut self, name: &str, since: Instant) {
        self.timings
            .push((name.to_string(), since.elapsed().as_millis() as u64));
    }
}

fn default_out(name: &str) -> PathBuf {
    let secs = now_ms() / 1000;
    PathBuf::from("runs").join(format!("{secs}-{name}"))
}

/// True when the scenario needs nftables in the nodes' namespaces.
fn needs_partitions(s: &Scenario) -> bool {
    s.steps.iter().any(|st| {
        matches!(
            st.kind,
            StepKind::Partition { .. }
                | StepKind::Cut { .. }
                | StepKind::Heal
                | StepKind::Link(_)
                | StepKind::Fault {
                    action: FaultAction::Isolate,
                    ..
                }
        )
    })
}

/// Makes the backend for a run, from the cluster it must hold and whether the scenario
/// needs network faults (so it can refuse before anything starts).
pub type MakeBackend = Box<
    dyn FnOnce(ClusterSpec, bool) -> BoxFuture<'static, Result<Box<dyn Backend>, String>> + Send,
>;

/// The Docker engine as the backend (what `harness run` uses).
pub fn docker_backend() -> MakeBackend {
    Box::new(|spec, network_faults| {
        Box::pin(async move {
            DockerBackend::create(&spec, network_faults)
                .await
                .map(|b| Box::new(b) as Box<dyn Backend>)
                .map_err(|e| e.to_string())
        })
    })
}

/// Runs one scenario end to end on Docker, writes history.jsonl, summary.json and
/// junit.xml, and prints the report.
pub async fn run(s: &Scenario, opts: &RunOptions) -> RunResult {
    run_with(s, opts, docker_backend()).await
}

/// [`run`] on the backend `make` creates.
pub async fn run_with(s: &Scenario, opts: &RunOptions, make: MakeBackend) -> RunResult {
    let started = Instant::now();
    let started_at_ms = now_ms();
    let out_dir = opts.out.clone().unwrap_or_else(|| default_out(&s.name));
    let seed = opts.seed.unwrap_or_else(rand::random);
    let mut session = Session::new(docker::new_run_id(), seed);
    crate::say!("▶ {} — {}", s.name, s.about);
    crate::say!(
        "  run {} · {} nodes · image {} · seed {seed}",
        session.run_id,
        s.cluster.nodes,
        opts.image
    );
    session.note(format!("seed {seed}"));
    let outcome = tokio::select! {
        r = execute(&mut session, s, opts, make) => r,
        _ = interrupt() => Err(Abort::Interrupted),
    };
    let interrupted = matches!(outcome, Err(Abort::Interrupted));
    let mut errors = Vec::new();
    if let Err(e) = &outcome {
        let msg = match e {
            Abort::CouldNotRun(m) => m.clone(),
            Abort::Interrupted => {
                "interrupted (SIGINT/SIGTERM): the run was cut short and its cluster removed"
                    .to_string()
            }
        };
        crate::say_err!("  {msg}");
        session.note(msg.clone());
        errors.push(msg);
    }
    let teardown = Instant::now();
    // A second Ctrl-C during teardown must not leave containers behind: teardown finishes.
    finish(&mut session, opts.keep && !interrupted).await;
    session.timing("teardown", teardown);
    mark_skipped(&mut session, s);
    let forge_lines = report::forge_summary::lines(&session.history.sorted());
    for line in &forge_lines {
        session.note(format!("forge summary: {line}"));
    }

    let history_path = out_dir.join("history.jsonl");
    let history_written =
        std::fs::create_dir_all(&out_dir).and_then(|_| session.history.write_file(&history_path));
    if let Err(e) = &history_written {
        errors.push(format!("could not write {}: {e}", history_path.display()));
    }
    // A run that never got going has nothing for the checkers to judge.
    let checks = if outcome.is_ok() {
        checkers::run(s, session.history.records())
    } else {
        Vec::new()
    };
    let mut outcome = RunOutcome {
        run_id: session.run_id.clone(),
        started_at_ms,
        wall_ms: 0,
        timings_ms: std::mem::take(&mut session.timings),
        steps: std::mem::take(&mut session.steps),
        checks,
        errors,
        history_path: history_written
            .is_ok()
            .then(|| history_path.display().to_string()),
    };
    outcome.wall_ms = started.elapsed().as_millis() as u64;
    if let Err(e) = report::write(&out_dir, s, &outcome) {
        outcome.errors.push(format!(
            "could not write the report in {}: {e}",
            out_dir.display()
        ));
    }
    crate::say!();
    report::print_table(s, &outcome);
    for line in &forge_lines {
        crate::say!("  {line}");
    }
    crate::say!("  output: {}", out_dir.display());
    RunResult {
        verdict: outcome.verdict(s),
        reasons: outcome.reasons(s),
        wall: started.elapsed(),
        out_dir,
        interrupted,
        run_id: session.run_id,
        seed,
        checks: outcome.checks,
        steps: outcome.steps,
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what CI timeouts and `docker stop`-style
/// supervisors send). Once registered the handlers stay, so a second signal during teardown
/// is swallowed instead of killing the process halfway through removing the cluster.
async fn interrupt() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a handler Ctrl-C kills the process; the cleanup guard cannot help then.
            std::future::pending::<()>().await;
        }
    };
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        },
        Err(_) => ctrl_c.await,
    }
}

/// Steps that never ran (an `await` failed, or the run was cut short) appear as skipped.
fn mark_skipped(session: &mut Session, s: &Scenario) {
    let done = session.steps.len();
    for step in s.steps.iter().skip(done) {
        session.steps.push(StepResult {
            index: step.index,
            keyword: step.kind.keyword().to_string(),
            description: steps::describe(&step.kind),
            status: StepStatus::Skipped,
            figure_ms: None,
            deadline_ms: None,
            message: None,
            elapsed_ms: 0,
        });
    }
}

/// The node's command line for this scenario (after `serve`).
fn serve_args(s: &Scenario, run_id: &str) -> Vec<String> {
    let c = &s.cluster;
    let mut args = vec![
        "--cluster".to_string(),
        format!("fl-{run_id}"),
        "--cluster-size".to_string(),
        c.cluster_size.to_string(),
        "--heartbeat".to_string(),
        format!("{}ms", c.heartbeat.as_millis()),
        "--failure-timeout".to_string(),
        format!("{}ms", c.failure_timeout.as_millis()),
        "--election".to_string(),
        c.election.name().to_string(),
        "--quorum".to_string(),
        c.quorum.as_flag().to_string(),
    ];
    if c.insecure {
        args.push("--insecure".to_string());
    }
    args.extend(c.flags.iter().cloned());
    args
}

/// The nodes' environment: the run's own cluster secret, unless they run `--insecure`.
fn node_env(s: &Scenario) -> Vec<String> {
    if s.cluster.insecure {
        vec![]
    } else {
        vec![docker::secret::cluster_secret_env()]
    }
}

async fn execute(
    session: &mut Session,
    s: &Scenario,
    opts: &RunOptions,
    make: MakeBackend,
) -> Result<(), Abort> {
    let t0 = Instant::now();
    let spec = ClusterSpec {
        run_id: session.run_id.clone(),
        image: opts.image.clone(),
        nodes: s.cluster.nodes,
        serve_args: serve_args(s, &session.run_id),
        env: node_env(s),
    };
    let backend = make(spec, needs_partitions(s))
        .await
        .map_err(Abort::CouldNotRun)?;
    let backend: &mut Box<dyn Backend> = session.backend.insert(backend);
    let ids = backend.ids();
    // The start counts from the first node's start, so the first election's figure
    // includes everything a real cluster start takes.
    let start_ts = backend
        .start(&ids, s.cluster.start == StartMode::Simultaneous)
        .await
        .map_err(|e| Abort::CouldNotRun(e.to_string()))?;
    let servers = backend.client_addrs();
    let described = backend.describe();
    session.history.push(Record::Fault(FaultRecord {
        ts_ms: start_ts,
        action: FaultAction::Start,
        nodes: ids.iter().copied().map(NodeId).collect(),
        step: None,
        groups: vec![],
        to: vec![],
        link: None,
        forge: None,
    }));
    await_started(session, &ids).await?;
    // The first `await leader` measures the election from the cluster start.
    session.fault_ref_ms = Some(start_ts);
    session.timing("cluster_start", t0);
    crate::say!(
        "  cluster up: {described} in {} ms",
        t0.elapsed().as_millis()
    );
    if s.workload.users > 0 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        session.workload = Some(Workload::start(
            &s.workload,
            &format!("fl-{}", session.run_id),
            servers,
            tx,
        ));
        session.client_rx = Some(rx);
    }
    let t_steps = Instant::now();
    for step in &s.steps {
        if session.stopped {
            break;
        }
        steps::run_step(session, s, step).await;
    }
    session.timing("steps", t_steps);
    let t_drain = Instant::now();
    if let Some(w) = session.workload.as_ref() {
        if s.workload.rate_per_s > 0.0 {
            let sent_for = w.ensure_send_window(MIN_SEND_WINDOW, LOGIN_WAIT).await;
            session.note(match sent_for {
                Some(d) => format!("workload sent for {} ms before the drain", d.as_millis()),
                None => "not every workload user logged in: no send window".to_string(),
            });
        }
    }
    if let Some(w) = session.workload.as_ref() {
        let settled = w.drain(s.workload.drain + Duration::from_secs(3)).await;
        session.note(if settled {
            "workload drained"
        } else {
            "workload drain timed out"
        });
    }
    session.timing("drain", t_drain);
    Ok(())
}

/// Waits until every node in `ids` has written its `started` event, so the steps begin on a
/// cluster whose every member is up (see [`STARTED_WAIT`]).
async fn await_started(session: &mut Session, ids: &[u64]) -> Result<(), Abort> {
    let give_up = session.now() + STARTED_WAIT.as_millis() as u64;
    loop {
        session.pull();
        let mut missing: Vec<u64> = ids.to_vec();
        for r in session.history.records() {
            if let Record::Node(ev) = r {
                if matches!(ev.event, chat_node::events::Event::Started { .. }) {
                    missing.retain(|id| *id != ev.node.0);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if session.now() >= give_up {
            return Err(Abort::CouldNotRun(format!(
                "node(s) {missing:?} did not write `started` within {} s of the cluster start: see their logs in the run's directory",
                STARTED_WAIT.as_secs()
            )));
        }
        session.sleep(STARTED_POLL).await;
    }
}

/// Stops users and log followers, collects the last records, removes the cluster.
async fn finish(session: &mut Session, keep: bool) {
    if let Some(w) = session.workload.take() {
        w.stop().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(b) = session.backend.as_mut() {
        b.teardown(keep).await;
    }
    session.pull();
}
