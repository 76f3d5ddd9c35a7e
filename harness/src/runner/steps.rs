//! Executing one step: faults resolve their targets from the state observed in the history at
//! that moment (`observed`), `await`/`expect` resolve their condition once and then poll
//! `observed::evaluate` every [`POLL`] until it is met, fails, or passes its deadline.

use super::Session;
use crate::backend::{BackendError, LinkFault, OutsiderSpec};
use crate::history::{
    FaultAction, FaultRecord, ForgeParams, LinkParams, Record, StepRecord,
    StepStatus as RecordStatus,
};
use crate::observed::{self, Evaluation, Expectation, Goal, Observed};
use crate::report::{StepResult, StepStatus};
use crate::scenario::{
    rate_text, Condition, ExpectStep, ForgeStep, Group, LeaderCondition, LinkStep, Observers,
    Scenario, SendTarget, Step, StepKind, Target,
};
use crate::workload::Command as UserCommand;
use chat_node::ids::NodeId;
use std::time::Duration;

/// How often `await`/`expect` look at the history.
const POLL: Duration = Duration::from_millis(25);
/// Beyond any deadline `evaluate` could still be pending at: a safety bound on polling.
const POLL_SLACK: Duration = Duration::from_secs(5);

/// What a step did, before it becomes a [`StepResult`].
struct Done {
    passed: bool,
    description: String,
    figure_ms: Option<u64>,
    deadline_ms: Option<u64>,
    message: Option<String>,
    /// The cluster is no longer in a state the scenario knows (a fault half applied): the
    /// later steps are skipped, as after a failed `await`.
    stops_run: bool,
}

impl Done {
    fn ok(description: String) -> Done {
        Done {
            passed: true,
            description,
            figure_ms: None,
            deadline_ms: None,
            message: None,
            stops_run: false,
        }
    }

    fn failed(description: String, why: String) -> Done {
        Done {
            passed: false,
            description,
            figure_ms: None,
            deadline_ms: None,
            message: Some(why),
            stops_run: false,
        }
    }
}

/// The step as written, for steps that never ran.
pub fn describe(kind: &StepKind) -> String {
    match kind {
        StepKind::Await(e) | StepKind::Expect(e) => {
            format!("{} {}", kind.keyword(), condition_text(&e.condition))
        }
        StepKind::Fault { action, target, .. } => format!("{} {target}", action.keyword()),
        StepKind::Partition { groups, .. } => format!("partition {}", groups_text(groups)),
        StepKind::Cut { from, to, .. } => format!("cut {from} -> {to}"),
        StepKind::Heal => "heal".into(),
        StepKind::Link(l) => l.describe(),
        StepKind::Forge(f) => f.describe(),
        StepKind::Sleep(d) => format!("sleep {} ms", d.as_millis()),
        StepKind::Offline { user } => format!("offline {user}"),
        StepKind::Online { user } => format!("online {user}"),
        StepKind::Send { from, to, count } => format!("send {count} {from} -> {}", send_text(to)),
    }
}

fn send_text(to: &SendTarget) -> String {
    match to {
        SendTarget::User(u) => u.clone(),
        SendTarget::Room(r) => format!("#{r}"),
    }
}

fn groups_text(groups: &[Group]) -> String {
    groups
        .iter()
        .map(|g| match g {
            Group::Rest => "rest".to_string(),
            Group::Targets(ts) => ts
                .iter()
                .map(Target::to_string)
                .collect::<Vec<_>>()
                .join("+"),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn condition_text(c: &Condition) -> String {
    match c {
        Condition::Leader(LeaderCondition::Any) => "leader any".into(),
        Condition::Leader(LeaderCondition::Is(t)) => format!("leader is {t}"),
        Condition::Leader(LeaderCondition::Not(t)) => format!("leader not {t}"),
        Condition::Detected { peer, by } => match by {
            Observers::AllLive => format!("detected {peer} by all live"),
            Observers::Nodes(t) => format!("detected {peer} by {t}"),
        },
        Condition::Rejoined { node } => format!("rejoined {node}"),
        Condition::SteppedDown { node } => format!("stepped down {node}"),
        Condition::NoLeader { among, duration } => {
            format!("no leader among {among} for {} ms", duration.as_millis())
        }
        Condition::NoCommit { among, duration } => {
            format!("no commit among {among} for {} ms", duration.as_millis())
        }
        Condition::NoLeaderChange { duration } => {
            format!("no leader change for {} ms", duration.as_millis())
        }
        Condition::Converged => "converged".into(),
    }
}

fn ids(nodes: &[NodeId]) -> String {
    let list: Vec<String> = nodes.iter().map(|n| n.0.to_string()).collect();
    format!("[{}]", list.join(","))
}

/// The condition with its targets resolved, for the report.
fn goal_text(goal: &Goal) -> String {
    match goal {
        Goal::Leader { is: None, not } if not.is_empty() => "leader any".into(),
        Goal::Leader { is: Some(is), .. } => format!("leader in {}", ids(is)),
        Goal::Leader { not, .. } => format!("leader not {}", ids(not)),
        Goal::Detected { peers, by: None } => format!("detected {} by all live", ids(peers)),
        Goal::Detected { peers, by: Some(b) } => {
            format!("detected {} by {}", ids(peers), ids(b))
        }
        Goal::Rejoined { nodes } => format!("rejoined {}", ids(nodes)),
        Goal::SteppedDown { nodes } => format!("stepped down {}", ids(nodes)),
        Goal::NoLeader { among, duration_ms } => {
            format!("no leader among {} for {duration_ms} ms", ids(among))
        }
        Goal::NoCommit { among, duration_ms } => {
            format!("no commit among {} for {duration_ms} ms", ids(among))
        }
        Goal::NoLeaderChange { duration_ms } => format!("no leader change for {duration_ms} ms"),
        Goal::Converged => "converged".into(),
    }
}

/// Runs one step, records it in the history and the session's step results, prints a line.
pub async fn run_step(session: &mut Session, s: &Scenario, step: &Step) {
    session.pull();
    let started_ms = session.now();
    session.history.push(Record::Step(StepRecord {
        ts_ms: session.now(),
        index: step.index,
        status: RecordStatus::Start,
        figure_ms: None,
        deadline_ms: None,
        message: None,
    }));
    let done = match &step.kind {
        StepKind::Await(e) | StepKind::Expect(e) => expect(session, s, step, e).await,
        StepKind::Sleep(d) => {
            session.sleep(*d).await;
            Done::ok(describe(&step.kind))
        }
        StepKind::Offline { user } => user_command(session, step, user, UserCommand::Offline),
        StepKind::Online { user } => user_command(session, step, user, UserCommand::Online),
        StepKind::Send { from, to, count } => {
            let description = describe(&step.kind);
            match session.workload.as_ref() {
                Some(w) => match w.send(from, to.clone(), *count) {
                    Ok(()) => Done::ok(description),
                    Err(e) => Done::failed(description, e),
                },
                None => Done::failed(description, "the scenario has no workload users".into()),
            }
        }
        StepKind::Forge(f) => match forge(session, s, step, f).await {
            Ok(description) => Done::ok(description),
            Err(why) => Done::failed(describe(&step.kind), why),
        },
        _ => fault(session, step).await,
    };
    // Figures of later `expect`s count from the last fault only while nothing else ran.
    match &step.kind {
        StepKind::Await(_) | StepKind::Expect(_) => {}
        StepKind::Fault { .. } | StepKind::Partition { .. } | StepKind::Cut { .. } => {}
        StepKind::Link(_) => {}
        StepKind::Heal => {}
        // Runs in the background and changes no fault state: the reference stays.
        StepKind::Forge(_) => {}
        _ => session.fault_ref_ms = None,
    }
    session.pull();
    session.history.push(Record::Step(StepRecord {
        ts_ms: session.now(),
        index: step.index,
        status: if done.passed {
            RecordStatus::Met
        } else {
            RecordStatus::Failed
        },
        figure_ms: done.figure_ms,
        deadline_ms: done.deadline_ms,
        message: done.message.clone(),
    }));
    let figure = match (done.figure_ms, done.deadline_ms) {
        (Some(f), Some(d)) => format!(
            "{f} ms (deadline {d} ms, headroom {} ms)",
            d as i64 - f as i64
        ),
        (Some(f), None) => format!("{f} ms"),
        _ => String::new(),
    };
    crate::say!(
        "  {} [{}] {:<40} {} {}",
        if done.passed { "✓" } else { "✗" },
        step.index + 1,
        done.description,
        figure,
        done.message.as_deref().unwrap_or("")
    );
    if !done.passed && matches!(step.kind, StepKind::Await(_)) {
        session.stopped = true;
        session.note(format!(
            "await step {} failed: later steps skipped",
            step.index + 1
        ));
    } else if done.stops_run {
        session.stopped = true;
        session.note(format!(
            "fault step {} failed part-way: the cluster's fault state is unknown, later steps skipped",
            step.index + 1
        ));
    }
    session.steps.push(StepResult {
        index: step.index,
        keyword: step.kind.keyword().to_string(),
        description: done.description,
        status: if done.passed {
            StepStatus::Passed
        } else {
            StepStatus::Failed
        },
        figure_ms: done.figure_ms,
        deadline_ms: done.deadline_ms,
        message: done.message,
        elapsed_ms: session.now().saturating_sub(started_ms),
    });
}

fn user_command(session: &mut Session, step: &Step, user: &str, cmd: UserCommand) -> Done {
    let description = describe(&step.kind);
    match session.workload.as_ref() {
        Some(w) => match w.command(user, cmd) {
            Ok(()) => Done::ok(description),
            Err(e) => Done::failed(description, e),
        },
        None => Done::failed(description, "the scenario has no workload users".into()),
    }
}

fn observe_now(session: &Session) -> Observed {
    Observed::from_records(&session.history.sorted())
}

/// Resolves the condition now and polls it. The figure counts from the preceding fault when
/// only `await`/`expect` steps ran since (so detection and failover figures mean what they
/// say), else from the step's start; the deadline counts from the same moment.
async fn expect(session: &mut Session, s: &Scenario, step: &Step, e: &ExpectStep) -> Done {
    let step_start = session.now();
    let obs = observe_now(session);
    let exp: Expectation = match observed::resolve_expectation(
        e,
        &s.cluster,
        &obs,
        &session.aliases,
        &mut session.rng,
    ) {
        Ok(exp) => exp,
        Err(why) => return Done::failed(describe(&step.kind), why),
    };
    let description = format!("{} {}", step.kind.keyword(), goal_text(&exp.goal));
    let since = if exp.goal.counts_from_step_start() {
        step_start
    } else {
        session.fault_ref_ms.unwrap_or(step_start)
    };
    let window = exp.goal.window_ms().unwrap_or(exp.within_ms);
    let give_up_ms = step_start + window + POLL_SLACK.as_millis() as u64;
    loop {
        session.pull();
        let now = session.now();
        let evaluation = observed::evaluate(&exp, session.history.records(), since, now);
        let (passed, figure_ms, message) = match evaluation {
            Evaluation::Pending if now < give_up_ms => {
                session.sleep(POLL).await;
                continue;
            }
            Evaluation::Pending => (
                false,
                None,
                Some("still pending at the safety bound".into()),
            ),
            Evaluation::Met { figure_ms } => (true, Some(figure_ms), None),
            Evaluation::Failed { reason, figure_ms } => (false, figure_ms, Some(reason)),
        };
        return Done {
            passed,
            description,
            figure_ms,
            deadline_ms: Some(exp.within_ms),
            message,
            stops_run: false,
        };
    }
}

/// Resolves a fault step's targets, injects it, records it: with the time just before the
/// injection, so figures measured from it are never flattering (network faults: once the
/// containers' pids are known, just before the rules go in; a restart: as `docker start` is issued).
async fn fault(session: &mut Session, step: &Step) -> Done {
    let description = describe(&step.kind);
    match inject(session, step).await {
        Ok(description) => Done::ok(description),
        Err(NotInjected::Refused(why)) => Done::failed(description, why),
        Err(NotInjected::Failed(why)) => Done {
            stops_run: true,
            ..Done::failed(description, why)
        },
    }
}

/// Why a fault step did not take effect.
enum NotInjected {
    /// Nothing was attempted (a target that does not resolve, a fault this backend cannot
    /// make): the cluster is as it was, the run goes on.
    Refused(String),
    /// The backend attempted it and failed, maybe part-way (a heal applied to some nodes
    /// only): the cluster is in a state the scenario does not know.
    Failed(String),
}

impl From<String> for NotInjected {
    fn from(why: String) -> Self {
        NotInjected::Refused(why)
    }
}

impl From<&str> for NotInjected {
    fn from(why: &str) -> Self {
        NotInjected::Refused(why.to_string())
    }
}

async fn inject(session: &mut Session, step: &Step) -> Result<String, NotInjected> {
    let obs = observe_now(session);
    let err = |e: BackendError| match e {
        BackendError::Unsupported(_) => NotInjected::Refused(e.to_string()),
        BackendError::Failed(_) => NotInjected::Failed(e.to_string()),
    };
    let as_u64 = |nodes: &[NodeId]| nodes.iter().map(|n| n.0).collect::<Vec<u64>>();
    let Session {
        backend,
        rng,
        aliases,
        ..
    } = session;
    let backend = backend.as_mut().ok_or("no cluster to inject faults into")?;
    let mut record = FaultRecord {
        ts_ms: 0,
        action: FaultAction::Heal,
        nodes: vec![],
        step: Some(step.index),
        groups: vec![],
        to: vec![],
        link: None,
        forge: None,
    };
    let (description, ts_ms) = match &step.kind {
        StepKind::Fault {
            action,
            target,
            alias,
        } => {
            let nodes = observed::resolve_target(target, &obs, aliases, rng)?;
            let targets = as_u64(&nodes);
            let result = match action {
                FaultAction::Kill => backend.kill(&targets).await,
                FaultAction::Stop => backend.stop(&targets).await,
                FaultAction::Pause => backend.pause(&targets).await,
                FaultAction::Resume => backend.resume(&targets).await,
                // Stamped when the start is issued: `observed` forgot the node's state at
                // the kill, so only its new incarnation's events can rejoin it.
                FaultAction::Restart => backend.restart(&targets).await,
                FaultAction::Isolate => backend.isolate(&targets).await,
                other => return Err(format!("`{}` is not a node fault", other.keyword()).into()),
            };
            let ts_ms = match action {
                FaultAction::Isolate => result.map_err(err)?,
                // A node fault that failed leaves its node as it was, or down either way.
                _ => result.map_err(|e| NotInjected::Refused(e.to_string()))?,
            };
            record.action = *action;
            record.nodes = nodes.clone();
            if let Some(a) = alias {
                aliases.insert(a.clone(), nodes.clone());
            }
            (
                format!("{} {target} -> {}", action.keyword(), ids(&nodes)),
                ts_ms,
            )
        }
        StepKind::Partition {
            groups,
            aliases: names,
        } => {
            // One per group as written (`rest` may be empty), so `as:` names by position.
            let aligned = observed::resolve_groups_aligned(groups, &obs, aliases, rng)?;
            let resolved = observed::non_empty_groups(&aligned)?;
            let as_ids: Vec<Vec<u64>> = resolved.iter().map(|g| as_u64(g)).collect();
            let ts_ms = backend.partition(&as_ids).await.map_err(err)?;
            for (name, nodes) in names.iter().zip(&aligned) {
                if let Some(a) = name {
                    aliases.insert(a.clone(), nodes.clone());
                }
            }
            record.action = FaultAction::Partition;
            record.nodes = resolved.iter().flatten().copied().collect();
            let text: Vec<String> = resolved.iter().map(|g| ids(g)).collect();
            record.groups = resolved;
            (
                format!("partition {} -> {}", groups_text(groups), text.join(" | ")),
                ts_ms,
            )
        }
        StepKind::Cut {
            from,
            to,
            from_alias,
            to_alias,
        } => {
            let from_ids = observed::resolve_target(from, &obs, aliases, rng)?;
            let to_ids = observed::resolve_target(to, &obs, aliases, rng)?;
            let ts_ms = backend
                .cut(&as_u64(&from_ids), &as_u64(&to_ids))
                .await
                .map_err(err)?;
            for (name, nodes) in [(from_alias, &from_ids), (to_alias, &to_ids)] {
                if let Some(a) = name {
                    aliases.insert(a.clone(), nodes.clone());
                }
            }
            record.action = FaultAction::Cut;
            let text = format!("cut {from} -> {to}: {} -> {}", ids(&from_ids), ids(&to_ids));
            record.nodes = from_ids;
            record.to = to_ids;
            (text, ts_ms)
        }
        StepKind::Link(link) => {
            let (fault, action, nodes, to, mut params) = match link {
                LinkStep::Loss { from, to, percent } => {
                    let f = observed::resolve_target(from, &obs, aliases, rng)?;
                    let t = observed::resolve_target(to, &obs, aliases, rng)?;
                    let fault = LinkFault::Loss {
                        from: as_u64(&f),
                        to: as_u64(&t),
                        percent: *percent,
                    };
                    let params = LinkParams {
                        percent: Some(*percent),
                        ..Default::default()
                    };
                    (fault, FaultAction::Loss, f, t, params)
                }
                LinkStep::Delay { to, ms, jitter_ms } => {
                    let t = observed::resolve_target(to, &obs, aliases, rng)?;
                    let fault = LinkFault::Delay {
                        to: as_u64(&t),
                        ms: *ms,
                        jitter_ms: *jitter_ms,
                    };
                    let params = LinkParams {
                        ms: Some(*ms),
                        jitter_ms: Some(*jitter_ms),
                        ..Default::default()
                    };
                    (fault, FaultAction::Delay, t, vec![], params)
                }
                LinkStep::Duplicate { to, percent } => {
                    let t = observed::resolve_target(to, &obs, aliases, rng)?;
                    let fault = LinkFault::Duplicate {
                        to: as_u64(&t),
                        percent: *percent,
                    };
                    let params = LinkParams {
                        percent: Some(*percent),
                        ..Default::default()
                    };
                    (fault, FaultAction::Duplicate, t, vec![], params)
                }
                LinkStep::Bandwidth { to, rate_bps } => {
                    let t = observed::resolve_target(to, &obs, aliases, rng)?;
                    let fault = LinkFault::Bandwidth {
                        to: as_u64(&t),
                        rate_bps: *rate_bps,
                    };
                    let params = LinkParams {
                        rate_bps: Some(*rate_bps),
                        ..Default::default()
                    };
                    (fault, FaultAction::Bandwidth, t, vec![], params)
                }
            };
            let (ts_ms, mechanism) = backend.link(&fault).await.map_err(err)?;
            let text = match link {
                LinkStep::Loss { percent, .. } => {
                    format!("loss {percent}% {} -> {}", ids(&nodes), ids(&to))
                }
                LinkStep::Delay { ms, jitter_ms, .. } => {
                    format!("delay {ms}±{jitter_ms} ms -> {}", ids(&nodes))
                }
                LinkStep::Bandwidth { rate_bps, .. } => {
                    format!("bandwidth {} -> {}", rate_text(*rate_bps), ids(&nodes))
                }
                LinkStep::Duplicate { percent, .. } => {
                    format!("duplicate {percent}% -> {}", ids(&nodes))
                }
            };
            params.mechanism = mechanism.clone();
            record.action = action;
            record.nodes = nodes;
            record.to = to;
            record.link = Some(params);
            (format!("{text} ({mechanism})"), ts_ms)
        }
        StepKind::Heal => {
            let ts_ms = backend.heal().await.map_err(err)?;
            record.action = FaultAction::Heal;
            record.nodes = obs.all_nodes();
            ("heal".to_string(), ts_ms)
        }
        other => return Err(format!("`{}` is not a fault", other.keyword()).into()),
    };
    record.ts_ms = ts_ms;
    session.fault_ref_ms = Some(ts_ms);
    session.history.push(Record::Fault(record));
    Ok(description)
}

/// Starts the outsider of a `forge` step. It runs in the background (the step returns at
/// once) and is recorded as a `forge` fault that changes no fault state: the figures of
/// later steps still count from the fault before it.
async fn forge(
    session: &mut Session,
    s: &Scenario,
    step: &Step,
    f: &ForgeStep,
) -> Result<String, String> {
    use rand::Rng;
    let obs = observe_now(session);
    let seed: u64 = session.rng.gen();
    let spec = OutsiderSpec {
        kinds: f.kinds.iter().map(|k| k.name().to_string()).collect(),
        rate_per_s: f.rate_per_s,
        duration: f.duration,
        seed,
        users: s.workload.user_names(),
        rooms: s.workload.rooms.clone(),
    };
    let backend = session
        .backend
        .as_mut()
        .ok_or("no cluster to forge against")?;
    let (ts_ms, address) = backend.forge(&spec).await.map_err(|e| e.to_string())?;
    let description = format!("{} -> outsider at {address}", f.describe());
    session.history.push(Record::Fault(FaultRecord {
        ts_ms,
        action: FaultAction::Forge,
        nodes: obs.all_nodes(),
        step: Some(step.index),
        groups: vec![],
        to: vec![],
        link: None,
        forge: Some(ForgeParams {
            kinds: spec.kinds.clone(),
            rate_per_s: spec.rate_per_s,
            for_ms: spec.duration.as_millis() as u64,
            outsider: address,
            seed,
        }),
    }));
    Ok(description)
}
