//! Running one scenario: check prerequisites, bring the cluster up, start the users, execute
//! the steps in order (targets resolved from the state observed at that moment), drain the
//! workload, collect the history, tear everything down (also on error and Ctrl-C), run the
//! checkers and write the report.

mod records;
mod steps;

use crate::checkers;
use crate::docker::{
    self, now_ms, CleanupGuard, Cluster, ClusterSpec, LogLine, LogStreams, Nemesis,
};
use crate::history::{FaultAction, FaultRecord, HarnessRecord, History, Record};
use crate::observed::Aliases;
use crate::report::{self, RunOutcome, StepResult, StepStatus, Verdict};
use crate::scenario::{Scenario, StartMode, StepKind};
use crate::workload::Workload;
use chat_node::ids::NodeId;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// However short the scenario, users send for at least this long before the drain, so the
/// delivery checker always has traffic to judge.
const MIN_SEND_WINDOW: Duration = Duration::from_millis(1500);
/// How long the drain may wait for users that never logged in before giving up on the window.
const LOGIN_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub image: String,
    pub out: Option<PathBuf>,
    pub keep: bool,
}

/// A scenario's outcome as the CLI needs it.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub verdict: Verdict,
    pub wall: Duration,
    pub out_dir: PathBuf,
    pub interrupted: bool,
    pub run_id: String,
}

/// Why a run could not be made.
#[derive(Debug)]
enum Abort {
    /// Prerequisites or Docker: exit 2.
    CouldNotRun(String),
    Interrupted,
}

/// Everything a run owns, kept outside the step future so teardown works after Ctrl-C.
#[derive(Default)]
struct Session {
    run_id: String,
    cluster: Option<Cluster>,
    nemesis: Option<Nemesis>,
    logs: Option<LogStreams>,
    log_rx: Option<UnboundedReceiver<LogLine>>,
    workload: Option<Workload>,
    client_rx: Option<UnboundedReceiver<Record>>,
    guard: Option<CleanupGuard>,
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
    /// Moves every record that arrived into the history.
    fn pull(&mut self) {
        if let Some(rx) = self.log_rx.as_mut() {
            while let Ok(line) = rx.try_recv() {
                self.history.push(records::log_record(line));
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
            ts_ms: now_ms(),
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
                | StepKind::Fault {
                    action: FaultAction::Isolate,
                    ..
                }
        )
    })
}

/// Runs one scenario end to end, writes history.jsonl, summary.json and junit.xml, and prints
/// the report.
pub async fn run(s: &Scenario, opts: &RunOptions) -> RunResult {
    let started = Instant::now();
    let started_at_ms = now_ms();
    let out_dir = opts.out.clone().unwrap_or_else(|| default_out(&s.name));
    let mut session = Session {
        run_id: docker::new_run_id(),
        ..Default::default()
    };
    println!("▶ {} — {}", s.name, s.about);
    println!(
        "  run {} · {} nodes · image {}",
        session.run_id, s.cluster.nodes, opts.image
    );
    let outcome = tokio::select! {
        r = execute(&mut session, s, opts) => r,
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
        eprintln!("  {msg}");
        session.note(msg.clone());
        errors.push(msg);
    }
    let teardown = Instant::now();
    // A second Ctrl-C during teardown must not leave containers behind: teardown finishes.
    finish(&mut session, opts.keep && !interrupted).await;
    session.timing("teardown", teardown);
    mark_skipped(&mut session, s);

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
    println!();
    report::print_table(s, &outcome);
    println!("  output: {}", out_dir.display());
    RunResult {
        verdict: outcome.verdict(s),
        wall: started.elapsed(),
        out_dir,
        interrupted,
        run_id: session.run_id,
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
        c.election.clone(),
        "--quorum".to_string(),
        c.quorum.as_flag().to_string(),
    ];
    args.extend(c.flags.iter().cloned());
    args
}

async fn execute(session: &mut Session, s: &Scenario, opts: &RunOptions) -> Result<(), Abort> {
    if needs_partitions(s) {
        Nemesis::check_partition_support().map_err(|e| Abort::CouldNotRun(e.to_string()))?;
    }
    let could_not = |e: docker::DockerError| Abort::CouldNotRun(e.to_string());
    let client = docker::connect().await.map_err(could_not)?;
    docker::ensure_image(&client, &opts.image)
        .await
        .map_err(could_not)?;
    session.guard = Some(CleanupGuard::new(&session.run_id));
    let t0 = Instant::now();
    let spec = ClusterSpec {
        run_id: session.run_id.clone(),
        image: opts.image.clone(),
        nodes: s.cluster.nodes,
        serve_args: serve_args(s, &session.run_id),
        env: vec![],
    };
    let cluster = Cluster::create(&client, &spec).await.map_err(could_not)?;
    let (logs, log_rx) = LogStreams::start(&cluster);
    session.logs = Some(logs);
    session.log_rx = Some(log_rx);
    session.cluster = Some(cluster.clone());
    session.nemesis = Some(Nemesis::new(cluster.clone()));
    // The start counts from the first container's start, so the first election's figure
    // includes everything a real cluster start takes.
    let start_ts = now_ms();
    match s.cluster.start {
        StartMode::Simultaneous => cluster.start_all().await.map_err(could_not)?,
        StartMode::Staggered => {
            for id in cluster.ids() {
                cluster.start(id).await.map_err(could_not)?;
            }
        }
    }
    session.history.push(Record::Fault(FaultRecord {
        ts_ms: start_ts,
        action: FaultAction::Start,
        nodes: cluster.ids().into_iter().map(NodeId).collect(),
        step: None,
        groups: vec![],
        to: vec![],
    }));
    // The first `await leader` measures the election from the cluster start.
    session.fault_ref_ms = Some(start_ts);
    session.timing("cluster_start", t0);
    println!(
        "  cluster up: {} on {} in {} ms",
        cluster.network,
        cluster.subnet,
        t0.elapsed().as_millis()
    );
    if s.workload.users > 0 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let servers = cluster.nodes.iter().map(|n| n.client_addr()).collect();
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

/// Stops users and log followers, collects the last records, removes the cluster.
async fn finish(session: &mut Session, keep: bool) {
    if let Some(w) = session.workload.take() {
        w.stop().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    if let Some(l) = session.logs.take() {
        l.stop().await;
    }
    session.pull();
    let Some(cluster) = session.cluster.take() else {
        if let Some(g) = session.guard.take() {
            g.disarm();
        }
        return;
    };
    if keep {
        if let Some(g) = session.guard.take() {
            g.disarm();
        }
        println!(
            "  --keep: cluster left running ({}: {}). Remove it with `harness clean`, or \
             `docker rm -f $(docker ps -aq --filter label={}={})` and `docker network rm {}`",
            cluster.network,
            cluster
                .nodes
                .iter()
                .map(|n| format!("{}={}", n.name, n.ip))
                .collect::<Vec<_>>()
                .join(" "),
            docker::RUN_LABEL,
            cluster.run_id,
            cluster.network
        );
        return;
    }
    let t0 = Instant::now();
    match cluster.remove().await {
        Ok(()) => {
            if let Some(g) = session.guard.take() {
                g.disarm();
            }
            println!("  cluster removed in {} ms", t0.elapsed().as_millis());
        }
        // The guard's drop retries by label.
        Err(e) => eprintln!("  teardown: {e}; retrying by label"),
    }
    session.guard = None;
}
