//! From the YAML as written ([`super::raw`]) to a validated [`Scenario`]: values get their
//! meaning, and anything that would only fail halfway through a run fails here instead.

use super::error::{rewrite_yaml_message, ScenarioError};
use super::locate::{Locator, Pos, Span};
use super::raw::*;
use super::*;
use chat_node::duration::parse_duration;
use chat_node::settings::ElectionKind;
use std::collections::HashSet;

struct Ctx<'a> {
    file: &'a str,
    loc: Locator<'a>,
}

impl Ctx<'_> {
    fn err(&self, pos: Pos, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }
}

/// Parses and validates; `election`, when given, replaces the file's algorithm (unless the
/// file pins its own) before anything is derived from it.
pub fn parse(text: &str, file: &str, election: Option<&str>) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        ScenarioError {
            file: file.to_string(),
            line,
            column,
            message: rewrite_yaml_message(&e.to_string()),
        }
    })?;
    let cx = Ctx {
        file,
        loc: Locator::new(text),
    };
    build(&cx, raw, election)
}

fn build(cx: &Ctx, raw: RawScenario, election: Option<&str>) -> Result<Scenario, ScenarioError> {
    if raw.name.trim().is_empty() {
        return Err(cx.err(cx.loc.key("name", None), "`name` is empty"));
    }
    if raw.about.trim().is_empty() {
        return Err(cx.err(
            cx.loc.key("about", None),
            "`about` is empty: say what fault story this scenario tells",
        ));
    }
    let mut raw_cluster = raw.cluster;
    if let Some(e) = election {
        if raw_cluster.election_pinned != Some(true) {
            raw_cluster.election = Some(e.to_string());
        }
    }
    let cluster = cluster(cx, raw_cluster)?;
    let workload = match raw.workload {
        Some(w) => workload(cx, w, cluster.nodes)?,
        None => Workload::default(),
    };
    let mut aliases: HashSet<String> = HashSet::new();
    let mut plan: Vec<(usize, StepKind)> = Vec::with_capacity(raw.steps.len());
    let pc = PlanCx {
        cx,
        cluster: &cluster,
        workload: &workload,
    };
    for (index, rs) in raw.steps.into_iter().enumerate() {
        let at = StepAt {
            span: cx.loc.step_span(index),
            label: (index + 1).to_string(),
        };
        pc.add(&at, rs, &mut aliases, &mut plan)?;
    }
    let steps: Vec<Step> = plan
        .into_iter()
        .enumerate()
        .map(|(index, (line, kind))| Step { index, line, kind })
        .collect();
    if steps.is_empty() {
        return Err(cx.err(cx.loc.key("steps", None), "`steps` is empty"));
    }
    let checks = match raw.checks {
        None => CheckName::all()
            .into_iter()
            .map(|name| CheckSpec { name, within: None })
            .collect(),
        Some(list) => {
            let mut out: Vec<CheckSpec> = Vec::new();
            for c in list {
                let pos = cx.loc.key("checks", None);
                let name =
                    check_name(&c.name).ok_or_else(|| cx.err(pos, unknown_check(&c.name)))?;
                let within = match c.within {
                    Some(w) => Some(bounded_deadline(&w, &cluster).map_err(|e| {
                        cx.err(
                            pos,
                            format!("bad deadline for check `{}`: {e}", name.as_str()),
                        )
                    })?),
                    None => None,
                };
                if out.iter().any(|o| o.name == name) {
                    return Err(cx.err(pos, format!("check `{}` listed twice", name.as_str())));
                }
                out.push(CheckSpec { name, within });
            }
            out
        }
    };
    let mut expect_failures = Vec::new();
    for f in &raw.expect_failures {
        let pos = cx.loc.key("expect_failures", None);
        let name = check_name(f).ok_or_else(|| cx.err(pos, unknown_check(f)))?;
        if !checks.iter().any(|c| c.name == name) {
            return Err(cx.err(
                pos,
                format!("expect_failures names `{f}`, which is not in `checks`"),
            ));
        }
        expect_failures.push(name);
    }
    Ok(Scenario {
        name: raw.name,
        about: raw.about,
        file: cx.file.to_string(),
        cluster,
        workload,
        steps,
        checks,
        expect_failures,
    })
}

/// A registered checker's name (or a synonym, such as the design sketch's
/// `single_leader_per_epoch` for `election`).
fn check_name(name: &str) -> Option<CheckName> {
    CheckName::from_name(name)
}

fn unknown_check(name: &str) -> String {
    format!(
        "unknown check `{name}`; expected one of: {}",
        CheckName::known()
    )
}

/// The longest duration or deadline a scenario may write: a typo like `99999999999999s` is
/// refused instead of hanging a run for ever.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A duration literal, at most [`MAX_DURATION`].
fn bounded_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d > MAX_DURATION {
        return Err(format!(
            "`{}` is longer than the maximum of 1h",
            text.trim()
        ));
    }
    Ok(d)
}

/// A deadline expression whose value for these settings is at most [`MAX_DURATION`].
fn bounded_deadline(text: &str, c: &ClusterSettings) -> Result<Deadline, String> {
    let d = Deadline::parse(text)?;
    let v = d.resolve(c);
    if v > MAX_DURATION {
        return Err(format!(
            "`{}` comes to {} ms here, longer than the maximum of 1h",
            text.trim(),
            v.as_millis()
        ));
    }
    Ok(d)
}

fn duration_at(cx: &Ctx, pos: Pos, what: &str, text: &str) -> Result<Duration, ScenarioError> {
    bounded_duration(text).map_err(|e| cx.err(pos, format!("bad duration for `{what}`: {e}")))
}

fn cluster(cx: &Ctx, c: RawCluster) -> Result<ClusterSettings, ScenarioError> {
    let mut s = ClusterSettings::default();
    let at = |k: &str| cx.loc.key("cluster", Some(k));
    if let Some(n) = c.nodes {
        if !(1..=32).contains(&n) {
            return Err(cx.err(at("nodes"), format!("`nodes: {n}`: must be 1 to 32")));
        }
        s.nodes = n as usize;
    }
    s.cluster_size = s.nodes;
    if let Some(n) = c.cluster_size {
        if !(1..=64).contains(&n) {
            return Err(cx.err(
                at("cluster_size"),
                format!("`cluster_size: {n}`: must be 1 to 64"),
            ));
        }
        s.cluster_size = n as usize;
    }
    let election_given = c.election.is_some();
    if let Some(e) = c.election {
        // One list of algorithms, the node's: a scenario can only ask for one the node runs.
        s.election =
            ElectionKind::parse_implemented(&e).map_err(|msg| cx.err(at("election"), msg))?;
    }
    if let Some(pinned) = c.election_pinned {
        if pinned && !election_given {
            return Err(cx.err(
                at("election_pinned"),
                "`election_pinned: true` needs the algorithm it pins: add `election: <name>`",
            ));
        }
        s.election_pinned = pinned;
    }
    if let Some(h) = c.heartbeat {
        s.heartbeat = duration_at(cx, at("heartbeat"), "heartbeat", &h)?;
    }
    if let Some(f) = c.failure_timeout {
        s.failure_timeout = duration_at(cx, at("failure_timeout"), "failure_timeout", &f)?;
    }
    if s.heartbeat.is_zero() || s.failure_timeout <= s.heartbeat {
        return Err(cx.err(
            at("failure_timeout"),
            "failure_timeout must be longer than a non-zero heartbeat",
        ));
    }
    if let Some(q) = c.quorum {
        s.quorum = match q.as_str() {
            "majority" => Quorum::Majority,
            "none" => Quorum::None,
            _ => {
                return Err(cx.err(
                    at("quorum"),
                    format!("unknown quorum `{q}`; expected one of: majority, none"),
                ))
            }
        };
    }
    if let Some(st) = c.start {
        s.start = match st.as_str() {
            "staggered" => StartMode::Staggered,
            "simultaneous" => StartMode::Simultaneous,
            _ => {
                return Err(cx.err(
                    at("start"),
                    format!("unknown start `{st}`; expected one of: staggered, simultaneous"),
                ))
            }
        };
    }
    s.flags = c.flags;
    s.insecure = c.insecure.unwrap_or(false);
    Ok(s)
}

fn workload(cx: &Ctx, w: RawWorkload, nodes: usize) -> Result<Workload, ScenarioError> {
    let mut out = Workload::default();
    let at = |k: &str| cx.loc.key("workload", Some(k));
    if let Some(u) = w.users {
        if !(0..=200).contains(&u) {
            return Err(cx.err(at("users"), format!("`users: {u}`: must be 0 to 200")));
        }
        out.users = u as usize;
    }
    let mut seen = HashSet::new();
    for r in &w.rooms {
        if r.is_empty()
            || r.len() > 32
            || !r
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cx.err(
                at("rooms"),
                format!("room name `{r}`: use 1-32 letters, digits, - or _"),
            ));
        }
        if !seen.insert(r) {
            return Err(cx.err(at("rooms"), format!("room `{r}` listed twice")));
        }
    }
    out.rooms = w.rooms;
    if let Some(rate) = w.rate {
        out.rate_per_s = parse_rate(&rate).map_err(|e| cx.err(at("rate"), e))?;
    }
    let mix_given = w.mix.is_some();
    if let Some(m) = w.mix {
        out.private_weight = m.private.unwrap_or(0.0);
        out.room_weight = m.room.unwrap_or(0.0);
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(out.private_weight)
            || !ok(out.room_weight)
            || out.private_weight + out.room_weight <= 0.0
        {
            return Err(cx.err(
                at("mix"),
                "`mix` weights must be non-negative and not both zero",
            ));
        }
    }
    if out.room_weight > 0.0 && out.rooms.is_empty() && out.rate_per_s > 0.0 && mix_given {
        return Err(cx.err(at("mix"), "`mix` asks for room posts but `rooms` is empty"));
    }
    if out.rooms.is_empty() {
        out.room_weight = 0.0;
    }
    if out.rate_per_s > 0.0 && out.users < 2 {
        return Err(cx.err(at("users"), "a workload with a rate needs at least 2 users"));
    }
    if let Some(d) = w.drain {
        out.drain = duration_at(cx, at("drain"), "drain", &d)?;
    }
    if let Some(p) = w.placement {
        out.placement =
            placement(&p, &out.user_names(), nodes).map_err(|e| cx.err(at("placement"), e))?;
    }
    Ok(out)
}

/// `leader`, `spread`, `assigned`, or `{u1: 2, u3: 1}` (user → node id).
fn placement(
    value: &serde_yaml::Value,
    users: &[String],
    nodes: usize,
) -> Result<Placement, String> {
    use serde_yaml::Value;
    match value {
        Value::String(s) if s == "leader" => Ok(Placement::Leader),
        Value::String(s) if s == "spread" => Ok(Placement::Spread),
        Value::String(s) if s == "assigned" => Ok(Placement::Assigned),
        Value::Mapping(m) => {
            let mut pinned = std::collections::BTreeMap::new();
            for (k, v) in m {
                let user = k
                    .as_str()
                    .ok_or_else(|| "`placement` keys are user names (u1, u2, …)".to_string())?;
                if !users.iter().any(|u| u == user) {
                    return Err(format!(
                        "`placement`: no workload user `{user}` (the users are u1..u{})",
                        users.len()
                    ));
                }
                let node = v
                    .as_u64()
                    .filter(|n| (1..=nodes as u64).contains(n))
                    .ok_or_else(|| {
                        format!("`placement` of `{user}`: a node id from 1 to {nodes}")
                    })?;
                pinned.insert(user.to_string(), node as usize);
            }
            Ok(Placement::Pinned(pinned))
        }
        other => Err(format!(
            "`placement: {}`: use `leader`, `spread`, `assigned`, or a map of user to node id ({{u1: 2}})",
            serde_yaml::to_string(other).unwrap_or_default().trim()
        )),
    }
}

/// `50/s`, `10/m`, or a bare number (per second).
fn parse_rate(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (num, per) = match t.split_once('/') {
        Some((n, p)) => (n.trim(), p.trim()),
        None => (t, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("bad rate `{t}`: write e.g. `50/s`"))?;
    let per_s = match per {
        "s" => n,
        "m" | "min" => n / 60.0,
        _ => return Err(format!("bad rate `{t}`: unit must be /s or /m")),
    };
    if !per_s.is_finite() || !(0.0..=10_000.0).contains(&per_s) {
        return Err(format!("bad rate `{t}`: must be 0 to 10000/s"));
    }
    Ok(per_s)
}

/// The longest plan `repeat` may expand to: a typo in `times` is refused instead of taking
/// the memory of a million steps (a file of plain steps is bounded by its own length).
pub const MAX_EXPANDED_STEPS: usize = 200_000;
/// The most times one `repeat` runs its steps.
pub const MAX_REPEAT_TIMES: i64 = 1000;

/// Where a step is in the file, and its number as messages give it (`3`, or `3.2` for the
/// second step inside the `repeat` that is step 3).
struct StepAt {
    span: Option<Span>,
    label: String,
}

/// What every step is validated against.
struct PlanCx<'a> {
    cx: &'a Ctx<'a>,
    cluster: &'a ClusterSettings,
    workload: &'a Workload,
}

impl PlanCx<'_> {
    /// Validates one step and appends it to the plan (a `repeat`: its steps, validated once,
    /// `times` times over — so validation stays linear in the file and the plan).
    fn add(
        &self,
        at: &StepAt,
        rs: RawStep,
        aliases: &mut HashSet<String>,
        plan: &mut Vec<(usize, StepKind)>,
    ) -> Result<(), ScenarioError> {
        let line = Span::pos_of(at.span).line;
        if rs.repeat.is_none() || rs.present_keys().len() != 1 {
            let kind = step(self.cx, at, rs, self.cluster, self.workload, aliases)?;
            plan.push((line, kind));
            return Ok(());
        }
        let Some(r) = rs.repeat else {
            unreachable!("checked above")
        };
        let here = |key: &str, msg: String| {
            self.cx.err(
                self.cx.loc.key_in(at.span, key),
                format!("{msg} in step {} (repeat)", at.label),
            )
        };
        if !(1..=MAX_REPEAT_TIMES).contains(&r.times) {
            return Err(here(
                "times",
                format!("`times: {}`: must be 1 to {MAX_REPEAT_TIMES}", r.times),
            ));
        }
        if r.steps.is_empty() {
            return Err(here("steps", "`steps` is empty".into()));
        }
        let inner = at.span.map(|sp| self.cx.loc.inner_steps(sp));
        let mut body = Vec::new();
        for (k, inner_step) in r.steps.into_iter().enumerate() {
            let inner_at = StepAt {
                span: inner
                    .as_ref()
                    .and_then(|spans| spans.get(k).copied())
                    .or(at.span),
                label: format!("{}.{}", at.label, k + 1),
            };
            self.add(&inner_at, inner_step, aliases, &mut body)?;
        }
        let total = plan.len() + body.len() * r.times as usize;
        if total > MAX_EXPANDED_STEPS {
            return Err(here(
                "times",
                format!(
                    "`times: {}` of {} steps makes the plan {total} steps long, more than \
                     {MAX_EXPANDED_STEPS}",
                    r.times,
                    body.len()
                ),
            ));
        }
        for _ in 1..r.times {
            plan.extend(body.iter().cloned());
        }
        plan.extend(body);
        Ok(())
    }
}

fn step(
    cx: &Ctx,
    at: &StepAt,
    rs: RawStep,
    cluster: &ClusterSettings,
    workload: &Workload,
    aliases: &mut HashSet<String>,
) -> Result<StepKind, ScenarioError> {
    let keys = rs.present_keys();
    if keys.len() != 1 {
        let msg = if keys.is_empty() {
            "step has no action; use one of: await, expect, kill, stop, pause, resume, restart, \
             partition, cut, isolate, heal, loss, delay, duplicate, bandwidth, forge, sleep, offline, \
             online, send, repeat"
                .to_string()
        } else {
            format!(
                "step has several actions ({}); write one per step",
                keys.join(", ")
            )
        };
        return Err(cx.err(Span::pos_of(at.span), format!("step {}: {msg}", at.label)));
    }
    let key = keys[0];
    let tx = TargetCx {
        cx,
        at,
        key,
        cluster,
        aliases: &*aliases,
    };
    let mut new_aliases: Vec<String> = Vec::new();
    let mut fault = |action: FaultAction, f: RawFault| -> Result<StepKind, ScenarioError> {
        let target = tx.target(&f.target)?;
        if let Some(a) = &f.as_ {
            tx.check_alias(a)?;
            new_aliases.push(a.clone());
        }
        Ok(StepKind::Fault {
            action,
            target,
            alias: f.as_,
        })
    };
    let kind = if let Some(e) = rs.await_ {
        StepKind::Await(expect(&tx, e)?)
    } else if let Some(e) = rs.expect {
        StepKind::Expect(expect(&tx, e)?)
    } else if let Some(f) = rs.kill {
        fault(FaultAction::Kill, f)?
    } else if let Some(f) = rs.stop {
        fault(FaultAction::Stop, f)?
    } else if let Some(f) = rs.pause {
        fault(FaultAction::Pause, f)?
    } else if let Some(f) = rs.resume {
        fault(FaultAction::Resume, f)?
    } else if let Some(f) = rs.restart {
        fault(FaultAction::Restart, f)?
    } else if let Some(f) = rs.isolate {
        fault(FaultAction::Isolate, f)?
    } else if let Some(p) = rs.partition {
        if p.groups.len() < 2 {
            return Err(tx.err("groups", "a partition needs at least 2 groups"));
        }
        let mut groups = Vec::new();
        let mut names = Vec::new();
        let mut rests = 0;
        for g in p.groups {
            groups.push(match g.members {
                RawMembers::Rest => {
                    rests += 1;
                    Group::Rest
                }
                RawMembers::Targets(ts) => {
                    if ts.is_empty() {
                        return Err(tx.err("groups", "a partition group is empty"));
                    }
                    Group::Targets(ts.iter().map(|t| tx.target(t)).collect::<Result<_, _>>()?)
                }
            });
            names.push(tx.group_alias(g.as_, &mut new_aliases)?);
        }
        if rests > 1 {
            return Err(tx.err("groups", "`rest` may appear in one group only"));
        }
        StepKind::Partition {
            groups,
            aliases: names,
        }
    } else if let Some(c) = rs.cut {
        let end = |g: &RawGroup, which: &str| -> Result<Target, ScenarioError> {
            match &g.members {
                RawMembers::Rest => Err(tx.err(
                    which,
                    format!("`rest` names partition groups; a cut's `{which}` is a target"),
                )),
                RawMembers::Targets(ts) => match &ts[..] {
                    [] => Err(tx.err(which, format!("a cut's `{which}` is empty"))),
                    [one] => tx.target(one),
                    many => tx.target(&RawTarget::List(many.to_vec())),
                },
            }
        };
        let from = end(&c.from, "from")?;
        let to = end(&c.to, "to")?;
        let from_alias = tx.group_alias(c.from.as_, &mut new_aliases)?;
        let to_alias = tx.group_alias(c.to.as_, &mut new_aliases)?;
        StepKind::Cut {
            from,
            to,
            from_alias,
            to_alias,
        }
    } else if rs.heal.is_some() {
        StepKind::Heal
    } else if let Some(l) = rs.loss {
        StepKind::Link(LinkStep::Loss {
            from: tx.target(&l.from)?,
            to: tx.target(&l.to)?,
            percent: link::percent(l.percent).map_err(|e| tx.err("percent", e))?,
        })
    } else if let Some(d) = rs.delay {
        let (ms, jitter_ms) = link::delay(d.ms, d.jitter).map_err(|e| tx.err("ms", e))?;
        StepKind::Link(LinkStep::Delay {
            to: tx.target(&d.to)?,
            ms,
            jitter_ms,
        })
    } else if let Some(d) = rs.duplicate {
        StepKind::Link(LinkStep::Duplicate {
            to: tx.target(&d.to)?,
            percent: link::percent(d.percent).map_err(|e| tx.err("percent", e))?,
        })
    } else if let Some(b) = rs.bandwidth {
        StepKind::Link(LinkStep::Bandwidth {
            to: tx.target(&b.to)?,
            rate_bps: link::parse_rate(&b.rate).map_err(|e| tx.err("rate", e))?,
        })
    } else if let Some(f) = rs.forge {
        let from = forge::source(&f.from).map_err(|e| tx.err("from", e))?;
        let kinds = forge::kinds(f.kinds.as_ref()).map_err(|e| tx.err("kinds", e))?;
        let rate_per_s = forge::rate(&f.rate).map_err(|e| tx.err("rate", e))?;
        let duration = bounded_deadline(&f.for_, cluster)
            .map_err(|e| tx.err("for", format!("bad duration for `for`: {e}")))?
            .resolve(cluster);
        if duration.is_zero() {
            return Err(tx.err("for", "`for` must be longer than 0"));
        }
        StepKind::Forge(ForgeStep {
            from,
            kinds,
            rate_per_s,
            duration,
        })
    } else if let Some(d) = rs.sleep {
        // A duration or a deadline expression (`failure_timeout + 2 * heartbeat`), resolved
        // with the cluster's settings.
        StepKind::Sleep(
            bounded_deadline(&d, cluster)
                .map_err(|e| tx.err("sleep", format!("bad duration for `sleep`: {e}")))?
                .resolve(cluster),
        )
    } else if let Some(u) = rs.offline {
        StepKind::Offline {
            user: tx.user(workload, &u.user)?,
        }
    } else if let Some(u) = rs.online {
        StepKind::Online {
            user: tx.user(workload, &u.user)?,
        }
    } else if let Some(s) = rs.send {
        let from = tx.user(workload, &s.from)?;
        let to = if workload.rooms.contains(&s.to) {
            SendTarget::Room(s.to)
        } else {
            SendTarget::User(tx.user(workload, &s.to)?)
        };
        let count = s.count.unwrap_or(1);
        if !(1..=10_000).contains(&count) {
            return Err(tx.err("count", format!("`count: {count}`: must be 1 to 10000")));
        }
        StepKind::Send {
            from,
            to,
            count: count as usize,
        }
    } else {
        return Err(cx.err(
            Span::pos_of(at.span),
            format!("step {}: empty step", at.label),
        ));
    };
    // Defined after the step's own targets are resolved: `kill: {target: x, as: x}` is an error.
    aliases.extend(new_aliases);
    Ok(kind)
}

struct TargetCx<'a> {
    cx: &'a Ctx<'a>,
    at: &'a StepAt,
    key: &'static str,
    cluster: &'a ClusterSettings,
    aliases: &'a HashSet<String>,
}

impl TargetCx<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ScenarioError {
        self.cx.err(
            self.cx.loc.key_in(self.at.span, key),
            format!("{} in step {} ({})", msg.into(), self.at.label, self.key),
        )
    }

    /// A group's or a cut end's `as:`, checked, and not given twice in one step.
    fn group_alias(
        &self,
        name: Option<String>,
        defined_here: &mut Vec<String>,
    ) -> Result<Option<String>, ScenarioError> {
        let Some(a) = name else {
            return Ok(None);
        };
        self.check_alias(&a)?;
        if defined_here.contains(&a) {
            return Err(self.err("as", format!("alias `{a}` is given twice in this step")));
        }
        defined_here.push(a.clone());
        Ok(Some(a))
    }

    fn target(&self, t: &RawTarget) -> Result<Target, ScenarioError> {
        match t {
            RawTarget::List(items) => {
                let mut flat = Vec::new();
                for item in items {
                    match self.target(item)? {
                        Target::Several(inner) => flat.extend(inner),
                        one => flat.push(one),
                    }
                }
                // Two random followers are two different ones; anything else twice is a slip.
                for (k, a) in flat.iter().enumerate() {
                    if *a != Target::RandomFollower && flat[..k].contains(a) {
                        return Err(self.err(
                            self.key,
                            format!("target `{a}` is listed twice in one target list"),
                        ));
                    }
                }
                match flat.len() {
                    0 => Err(self.err(self.key, "an empty target list")),
                    1 => Ok(flat.remove(0)),
                    _ => Ok(Target::Several(flat)),
                }
            }
            RawTarget::Node(n) => {
                if *n < 1 || *n as usize > self.cluster.nodes {
                    return Err(self.cx.err(
                        self.cx.loc.key_in(self.at.span, "node"),
                        format!(
                            "node {n} does not exist in step {} ({}); nodes are 1 to {}",
                            self.at.label, self.key, self.cluster.nodes
                        ),
                    ));
                }
                Ok(Target::Node(*n as u64))
            }
            RawTarget::Word(w) => Ok(match w.as_str() {
                "leader" => Target::Leader,
                "followers" => Target::Followers,
                "random_follower" => Target::RandomFollower,
                "majority" => Target::Majority,
                "minority" => Target::Minority,
                "all" => Target::All,
                "ring_successor_of_leader" => Target::RingSuccessorOfLeader,
                other if self.aliases.contains(other) => Target::Alias(other.to_string()),
                other => {
                    let hint = if other.starts_with("node") {
                        " (a node is written `{node: 3}`)".to_string()
                    } else {
                        String::new()
                    };
                    return Err(self.cx.err(
                        self.cx.loc.word_in(self.at.span, other),
                        format!(
                            "unknown target `{other}` in step {} ({}){hint}; expected one of: {}, \
                             {{node: <n>}}, or an alias defined earlier with `as:`{}",
                            self.at.label,
                            self.key,
                            Target::KEYWORDS.join(", "),
                            if self.aliases.is_empty() {
                                " (none defined yet)".to_string()
                            } else {
                                let mut a: Vec<_> = self.aliases.iter().cloned().collect();
                                a.sort();
                                format!(" (defined so far: {})", a.join(", "))
                            }
                        ),
                    ));
                }
            }),
        }
    }

    fn check_alias(&self, name: &str) -> Result<(), ScenarioError> {
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(self.err(
                "as",
                format!("alias `{name}` must be letters, digits and _"),
            ));
        }
        if Target::KEYWORDS.contains(&name) || name == "rest" {
            return Err(self.err("as", format!("alias `{name}` is a reserved target word")));
        }
        Ok(())
    }

    fn user(&self, w: &Workload, name: &str) -> Result<String, ScenarioError> {
        if w.user_names().iter().any(|u| u == name) {
            Ok(name.to_string())
        } else {
            Err(self.cx.err(
                self.cx.loc.word_in(self.at.span, name),
                format!(
                    "unknown user `{name}` in step {} ({}); the workload's users are u1 to u{}{}",
                    self.at.label,
                    self.key,
                    w.users,
                    if w.rooms.is_empty() {
                        String::new()
                    } else {
                        format!(" and its rooms are {}", w.rooms.join(", "))
                    }
                ),
            ))
        }
    }
}

fn expect(tx: &TargetCx, e: RawExpect) -> Result<ExpectStep, ScenarioError> {
    let c = tx.cluster;
    let mut given = Vec::new();
    if e.leader.is_some() {
        given.push("leader");
    }
    if e.detected.is_some() {
        given.push("detected");
    }
    if e.rejoined.is_some() {
        given.push("rejoined");
    }
    if e.stepped_down.is_some() {
        given.push("stepped_down");
    }
    if e.no_leader.is_some() {
        given.push("no_leader");
    }
    if e.no_commit.is_some() {
        given.push("no_commit");
    }
    if e.no_leader_change.is_some() {
        given.push("no_leader_change");
    }
    if e.converged.is_some() {
        given.push("converged");
    }
    if given.len() != 1 {
        return Err(tx.err(
            tx.key,
            format!(
                "`{}` needs exactly one condition (leader, detected, rejoined, stepped_down, \
                 no_leader, no_commit, no_leader_change, converged), got {}",
                tx.key,
                if given.is_empty() {
                    "none".to_string()
                } else {
                    given.join(", ")
                }
            ),
        ));
    }
    let (condition, inner_within, default) = if let Some(l) = e.leader {
        let set = [l.any, l.is.is_some(), l.not.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set != 1 {
            return Err(tx.err("leader", "`leader` needs exactly one of `any`, `is`, `not`"));
        }
        let cond = if let Some(t) = &l.is {
            LeaderCondition::Is(tx.target(t)?)
        } else if let Some(t) = &l.not {
            LeaderCondition::Not(tx.target(t)?)
        } else {
            LeaderCondition::Any
        };
        (
            Condition::Leader(cond),
            l.within,
            defaults::failover_deadline(c),
        )
    } else if let Some(d) = e.detected {
        let by = match &d.by {
            None => Observers::AllLive,
            Some(RawTarget::Word(w)) if w == "all_live" => Observers::AllLive,
            Some(t) => Observers::Nodes(tx.target(t)?),
        };
        (
            Condition::Detected {
                peer: tx.target(&d.peer)?,
                by,
            },
            d.within,
            defaults::detection_deadline(c),
        )
    } else if let Some(r) = e.rejoined {
        (
            Condition::Rejoined {
                node: tx.target(&r.node)?,
            },
            r.within,
            defaults::convergence_deadline(c),
        )
    } else if let Some(s) = e.stepped_down {
        (
            Condition::SteppedDown {
                node: tx.target(&s.node)?,
            },
            s.within,
            defaults::detection_deadline(c),
        )
    } else if let Some(n) = e.no_leader {
        let duration = window(tx, &n.for_)?;
        (
            Condition::NoLeader {
                among: tx.target(&n.among)?,
                duration,
            },
            None,
            Deadline::fixed(duration),
        )
    } else if let Some(n) = e.no_commit {
        let duration = window(tx, &n.for_)?;
        (
            Condition::NoCommit {
                among: tx.target(&n.among)?,
                duration,
            },
            None,
            Deadline::fixed(duration),
        )
    } else if let Some(n) = e.no_leader_change {
        let duration = window(tx, &n.for_)?;
        (
            Condition::NoLeaderChange { duration },
            None,
            Deadline::fixed(duration),
        )
    } else if let Some(cv) = e.converged {
        (
            Condition::Converged,
            cv.within,
            defaults::convergence_deadline(c),
        )
    } else {
        return Err(tx.err(tx.key, "no condition"));
    };
    if inner_within.is_some() && e.within.is_some() {
        return Err(tx.err("within", "`within` given twice"));
    }
    let window_key = match condition {
        Condition::NoLeader { .. } => Some("no_leader"),
        Condition::NoCommit { .. } => Some("no_commit"),
        Condition::NoLeaderChange { .. } => Some("no_leader_change"),
        _ => None,
    };
    if let (Some(k), Some(_)) = (window_key, &e.within) {
        return Err(tx.err("within", format!("`{k}` takes `for`, not `within`")));
    }
    let within = match inner_within.or(e.within) {
        Some(w) => bounded_deadline(&w, c)
            .map_err(|err| tx.err("within", format!("bad deadline: {err}")))?,
        None => default,
    };
    Ok(ExpectStep { condition, within })
}

/// The `for` of a window condition (`no_leader`, `no_commit`, `no_leader_change`): a
/// duration or a deadline expression, more than 0 and at most the maximum.
fn window(tx: &TargetCx, text: &str) -> Result<Duration, ScenarioError> {
    let d = bounded_deadline(text, tx.cluster)
        .map_err(|err| tx.err("for", format!("bad duration for `for`: {err}")))?
        .resolve(tx.cluster);
    if d.is_zero() {
        return Err(tx.err("for", "`for` must be longer than 0"));
    }
    Ok(d)
}
