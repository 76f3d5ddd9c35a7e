//! Running one scenario: check prerequisites, bring the cluster up, start the users, execute
//! the steps in order (targets resolved from the state observed at that moment), drain the
//! workload, collect the history, tear everything down (also on error and Ctrl-C), report.

mod steps;
mod view;

use crate::cli::Verdict;
use crate::docker::{
    self, now_ms, CleanupGuard, Cluster, ClusterSpec, LogLine, LogStreams, Nemesis,
};
use crate::history::{
    FaultAction, FaultRecord, HarnessRecord, History, Record, StepRecord, StepStatus,
};
use crate::scenario::{ExpectStep, Scenario, StartMode, Step, StepKind};
use crate::workload::{Command as UserCommand, Workload};
use chat_node::events::EventRecord;
use chat_node::ids::NodeId;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// How often `await`/`expect` look at the history.
const POLL: Duration = Duration::from_millis(25);
/// Extra time after a deadline for the last log lines to arrive before judging.
const LOG_SLACK: Duration = Duration::from_millis(250);

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub image: String,
    pub out: Option<PathBuf>,
    pub keep: bool,
}

/// One step's outcome.
#[derive(Clone, Debug)]
pub struct StepResult {
    pub index: usize,
    pub keyword: &'static str,
    pub passed: bool,
    pub figure_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub message: String,
}

/// A scenario's outcome as the CLI needs it.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub verdict: Verdict,
    pub wall: Duration,
    pub out_dir: PathBuf,
    pub interrupted: bool,
    pub steps: Vec<StepResult>,
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
    aliases: HashMap<String, Vec<u64>>,
    /// An `await` failed: later steps are skipped.
    stopped: bool,
}

impl Session {
    /// Moves every record that arrived into the history.
    fn pull(&mut self) {
        if let Some(rx) = self.log_rx.as_mut() {
            while let Ok(line) = rx.try_recv() {
                self.history.push(log_record(line));
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

    fn ids(&self) -> Vec<u64> {
        self.cluster.as_ref().map(Cluster::ids).unwrap_or_default()
    }
}

/// A node's stdout JSON line becomes a node record; anything else a harness record.
fn log_record(line: LogLine) -> Record {
    if line.stdout {
        if let Some(event) = EventRecord::from_line(&line.text) {
            return Record::Node(event);
        }
    }
    let stream = if line.stdout { "stdout" } else { "stderr" };
    Record::Harness(HarnessRecord {
        ts_ms: line.received_ms,
        msg: format!("n{} {stream}: {}", line.node, line.text),
    })
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

/// Runs one scenario end to end and prints its report.
pub async fn run(s: &Scenario, opts: &RunOptions) -> RunResult {
    let started = Instant::now();
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
        _ = tokio::signal::ctrl_c() => Err(Abort::Interrupted),
    };
    let interrupted = matches!(outcome, Err(Abort::Interrupted));
    if let Err(e) = &outcome {
        let msg = match e {
            Abort::CouldNotRun(m) => m.clone(),
            Abort::Interrupted => "interrupted (Ctrl-C): cleaning up".to_string(),
        };
        eprintln!("  {msg}");
        session.note(msg);
    }
    finish(&mut session, opts.keep && !interrupted).await;
    if let Err(e) = std::fs::create_dir_all(&out_dir)
        .and_then(|_| session.history.write_file(&out_dir.join("history.jsonl")))
    {
        eprintln!("  could not write {}: {e}", out_dir.display());
    }
    let steps_ok = session.steps.iter().all(|st| st.passed);
    let verdict = match outcome {
        Err(_) => Verdict::CouldNotRun,
        Ok(()) if steps_ok => Verdict::Pass,
        Ok(()) => Verdict::CheckFailed,
    };
    let wall = started.elapsed();
    println!(
        "  {} {} in {:.1} s · history: {}",
        match verdict {
            Verdict::Pass => "PASS",
            Verdict::CheckFailed => "FAIL",
            Verdict::CouldNotRun => "ERROR",
        },
        s.name,
        wall.as_secs_f64(),
        out_dir.join("history.jsonl").display()
    );
    RunResult {
        verdict,
        wall,
        out_dir,
        interrupted,
        steps: session.steps,
        run_id: session.run_id,
    }
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
    let c = &s.cluster;
    let mut serve_args = vec![
        "--cluster".to_string(),
        format!("fl-{}", session.run_id),
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
    serve_args.extend(c.flags.iter().cloned());
    let spec = ClusterSpec {
        run_id: session.run_id.clone(),
        image: opts.image.clone(),
        nodes: c.nodes,
        serve_args,
        env: vec![],
    };
    let cluster = Cluster::create(&client, &spec).await.map_err(could_not)?;
    let (logs, log_rx) = LogStreams::start(&cluster);
    session.logs = Some(logs);
    session.log_rx = Some(log_rx);
    session.cluster = Some(cluster.clone());
    session.nemesis = Some(Nemesis::new(cluster.clone()));

    let t0 = Instant::now();
    match c.start {
        StartMode::Simultaneous => cluster.start_all().await.map_err(could_not)?,
        StartMode::Staggered => {
            for id in cluster.ids() {
                cluster.start(id).await.map_err(could_not)?;
            }
        }
    }
    session.history.push(Record::Fault(FaultRecord {
        ts_ms: now_ms(),
        action: FaultAction::Start,
        nodes: cluster.ids().into_iter().map(NodeId).collect(),
        step: None,
        groups: vec![],
        to: vec![],
    }));
    println!(
        "  cluster up: {} on {} in {} ms",
        cluster.network,
        cluster.subnet,
        t0.elapsed().as_millis()
    );
    if s.workload.users > 0 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let servers = cluster.nodes.iter().map(|n| n.client_addr()).collect();
        session.workload = Some(Workload::start(&s.workload, servers, tx));
        session.client_rx = Some(rx);
    }
    for step in &s.steps {
        if session.stopped {
            break;
        }
        run_step(session, s, step).await?;
    }
    if let Some(w) = session.workload.as_ref() {
        let settled = w.drain(s.workload.drain + Duration::from_secs(3)).await;
        session.note(if settled {
            "workload drained"
        } else {
            "workload drain timed out"
        });
    }
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

fn step_label(step: &Step) -> String {
    format!("[{}] {}", step.index + 1, step.kind.keyword())
}

async fn run_step(session: &mut Session, s: &Scenario, step: &Step) -> Result<(), Abort> {
    session.pull();
    let since = now_ms();
    session.history.push(Record::Step(StepRecord {
        ts_ms: since,
        index: step.index,
        status: StepStatus::Start,
        figure_ms: None,
        deadline_ms: None,
        message: None,
    }));
    let result = match &step.kind {
        StepKind::Await(e) | StepKind::Expect(e) => expect(session, s, e, since).await,
        StepKind::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(format!("slept {} ms", d.as_millis()))
        }
        StepKind::Offline { user } => user_command(session, user, UserCommand::Offline),
        StepKind::Online { user } => user_command(session, user, UserCommand::Online),
        StepKind::Send { from, to, count } => match session.workload.as_ref() {
            Some(w) => w
                .send(from, to.clone(), *count)
                .map(|_| format!("{count} messages queued"))
                .map_err(|e| (e, None)),
            None => Err(("the scenario has no workload users".into(), None)),
        },
        _ => fault(session, s, step).await.map_err(|e| (e, None)),
    };
    session.pull();
    let (passed, figure_ms, deadline_ms, message) = match result {
        Ok(msg) => {
            let (figure, deadline) = match &step.kind {
                StepKind::Await(e) | StepKind::Expect(e) => (
                    parse_figure(&msg),
                    Some(e.within.resolve(&s.cluster).as_millis() as u64),
                ),
                _ => (None, None),
            };
            (true, figure, deadline, msg)
        }
        Err((msg, deadline)) => (false, None, deadline, msg),
    };
    session.history.push(Record::Step(StepRecord {
        ts_ms: now_ms(),
        index: step.index,
        status: if passed {
            StepStatus::Met
        } else {
            StepStatus::Failed
        },
        figure_ms,
        deadline_ms,
        message: Some(message.clone()),
    }));
    println!(
        "  {} {:<24} {}",
        if passed { "✓" } else { "✗" },
        step_label(step),
        message
    );
    if !passed && matches!(step.kind, StepKind::Await(_)) {
        session.stopped = true;
        session.note(format!(
            "await step {} failed: later steps skipped",
            step.index + 1
        ));
    }
    session.steps.push(StepResult {
        index: step.index,
        keyword: step.kind.keyword(),
        passed,
        figure_ms,
        deadline_ms,
        message,
    });
    Ok(())
}

fn parse_figure(msg: &str) -> Option<u64> {
    msg.strip_prefix("met in ")?
        .split(" ms")
        .next()?
        .parse()
        .ok()
}

type StepOutcome = Result<String, (String, Option<u64>)>;

fn user_command(session: &mut Session, user: &str, cmd: UserCommand) -> StepOutcome {
    match session.workload.as_ref() {
        Some(w) => w
            .command(user, cmd)
            .map(|_| format!("user {user}"))
            .map_err(|e| (e, None)),
        None => Err(("the scenario has no workload users".into(), None)),
    }
}

/// Polls a condition until met, failed, or past its deadline.
async fn expect(session: &mut Session, s: &Scenario, e: &ExpectStep, since: u64) -> StepOutcome {
    let deadline = e.within.resolve(&s.cluster);
    let deadline_ms = deadline.as_millis() as u64;
    let ids = session.ids();
    let give_up = Instant::now() + deadline + LOG_SLACK;
    loop {
        session.pull();
        let view = view::View::fold(&ids, session.history.records());
        let ctx = steps::Context {
            view: &view,
            all: &ids,
            cluster_size: s.cluster.cluster_size,
            quorum_none: s.cluster.quorum == crate::scenario::Quorum::None,
            aliases: &session.aliases,
        };
        let now = now_ms();
        match steps::judge(&ctx, &e.condition, since, now) {
            steps::Judgement::Met { at_ms } => {
                let figure = at_ms.saturating_sub(since);
                let msg = format!(
                    "met in {figure} ms (deadline {deadline_ms} ms, headroom {} ms)",
                    deadline_ms as i64 - figure as i64
                );
                return if figure <= deadline_ms {
                    Ok(msg)
                } else {
                    Err((format!("too late: {msg}"), Some(deadline_ms)))
                };
            }
            steps::Judgement::Failed(why) => return Err((why, Some(deadline_ms))),
            steps::Judgement::Pending(why) if Instant::now() >= give_up => {
                return Err((
                    format!("not met within {deadline_ms} ms: {why}"),
                    Some(deadline_ms),
                ))
            }
            steps::Judgement::Pending(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Resolves a fault step's targets, injects it, records it.
async fn fault(session: &mut Session, s: &Scenario, step: &Step) -> Result<String, String> {
    let ids = session.ids();
    let view = view::View::fold(&ids, session.history.records());
    let ctx = steps::Context {
        view: &view,
        all: &ids,
        cluster_size: s.cluster.cluster_size,
        quorum_none: s.cluster.quorum == crate::scenario::Quorum::None,
        aliases: &session.aliases,
    };
    let mut record = FaultRecord {
        ts_ms: 0,
        action: FaultAction::Heal,
        nodes: vec![],
        step: Some(step.index),
        groups: vec![],
        to: vec![],
    };
    let mut alias_to_save = None;
    let mut restarted = Vec::new();
    let nemesis = session
        .nemesis
        .as_mut()
        .ok_or("no cluster to inject faults into")?;
    let err = |e: docker::DockerError| e.to_string();
    let description = match &step.kind {
        StepKind::Fault {
            action,
            target,
            alias,
        } => {
            let targets = ctx.resolve(target)?;
            match action {
                FaultAction::Kill => nemesis.kill(&targets).await.map_err(err)?,
                FaultAction::Stop => nemesis.stop(&targets).await.map_err(err)?,
                FaultAction::Pause => nemesis.pause(&targets).await.map_err(err)?,
                FaultAction::Resume => nemesis.resume(&targets).await.map_err(err)?,
                FaultAction::Restart => {
                    nemesis.restart(&targets).await.map_err(err)?;
                    restarted = targets.clone();
                }
                FaultAction::Isolate => nemesis.isolate(&targets).await.map_err(err)?,
                other => return Err(format!("`{}` is not a node fault", other.keyword())),
            }
            record.action = *action;
            record.nodes = targets.iter().copied().map(NodeId).collect();
            alias_to_save = alias.clone().map(|a| (a, targets.clone()));
            format!("{} node(s) {targets:?}", action.keyword())
        }
        StepKind::Partition { groups } => {
            let groups = ctx.resolve_groups(groups)?;
            nemesis.partition(&groups).await.map_err(err)?;
            record.action = FaultAction::Partition;
            record.nodes = groups.iter().flatten().copied().map(NodeId).collect();
            record.groups = groups
                .iter()
                .map(|g| g.iter().copied().map(NodeId).collect())
                .collect();
            format!("partition {groups:?}")
        }
        StepKind::Cut { from, to } => {
            let (from, to) = (ctx.resolve(from)?, ctx.resolve(to)?);
            nemesis.cut(&from, &to).await.map_err(err)?;
            record.action = FaultAction::Cut;
            record.nodes = from.iter().copied().map(NodeId).collect();
            record.to = to.iter().copied().map(NodeId).collect();
            format!("cut {from:?} -> {to:?}")
        }
        StepKind::Heal => {
            nemesis.heal().await.map_err(err)?;
            record.action = FaultAction::Heal;
            record.nodes = ids.iter().copied().map(NodeId).collect();
            "healed".to_string()
        }
        other => return Err(format!("`{}` is not a fault", other.keyword())),
    };
    record.ts_ms = now_ms();
    if let Some(logs) = session.logs.as_ref() {
        for id in restarted {
            logs.reattach(id);
        }
    }
    if let Some((alias, targets)) = alias_to_save {
        session.aliases.insert(alias, targets);
    }
    session.history.push(Record::Fault(record));
    Ok(description)
}
