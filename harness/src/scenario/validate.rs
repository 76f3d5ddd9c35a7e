//! From the YAML as written ([`super::raw`]) to a validated [`Scenario`]: values get their
//! meaning, and anything that would only fail halfway through a run fails here instead.

use super::error::{rewrite_yaml_message, ScenarioError};
use super::locate::{Locator, Pos};
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
        Some(w) => workload(cx, w)?,
        None => Workload::default(),
    };
    let mut aliases: HashSet<String> = HashSet::new();
    let mut steps = Vec::with_capacity(raw.steps.len());
    for (index, rs) in raw.steps.into_iter().enumerate() {
        let kind = step(cx, index, rs, &cluster, &workload, &mut aliases)?;
        steps.push(Step {
            index,
            line: cx.loc.step(index).line,
            kind,
        });
    }
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
        ElectionKind::parse_implemented(&e).map_err(|msg| cx.err(at("election"), msg))?;
        s.election = e;
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

fn workload(cx: &Ctx, w: RawWorkload) -> Result<Workload, ScenarioError> {
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
    Ok(out)
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

fn step(
    cx: &Ctx,
    index: usize,
    rs: RawStep,
    cluster: &ClusterSettings,
    workload: &Workload,
    aliases: &mut HashSet<String>,
) -> Result<StepKind, ScenarioError> {
    let keys = rs.present_keys();
    if keys.len() != 1 {
        let msg = if keys.is_empty() {
            "step has no action; use one of: await, expect, kill, stop, pause, resume, restart, \
             partition, cut, isolate, heal, loss, delay, bandwidth, forge, sleep, offline, online, \
             send"
                .to_string()
        } else {
            format!(
                "step has several actions ({}); write one per step",
                keys.join(", ")
            )
        };
        return Err(cx.err(cx.loc.step(index), format!("step {}: {msg}", index + 1)));
    }
    let key = keys[0];
    let tx = TargetCx {
        cx,
        index,
        key,
        cluster,
        aliases: &*aliases,
    };
    let mut new_alias: Option<String> = None;
    let mut fault = |action: FaultAction, f: RawFault| -> Result<StepKind, ScenarioError> {
        let target = tx.target(&f.target)?;
        if let Some(a) = &f.as_ {
            tx.check_alias(a)?;
            new_alias = Some(a.clone());
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
        let mut rests = 0;
        for g in p.groups {
            groups.push(match g {
                RawGroup::Rest => {
                    rests += 1;
                    Group::Rest
                }
                RawGroup::Targets(ts) => {
                    if ts.is_empty() {
                        return Err(tx.err("groups", "a partition group is empty"));
                    }
                    Group::Targets(ts.iter().map(|t| tx.target(t)).collect::<Result<_, _>>()?)
                }
            });
        }
        if rests > 1 {
            return Err(tx.err("groups", "`rest` may appear in one group only"));
        }
        StepKind::Partition { groups }
    } else if let Some(c) = rs.cut {
        StepKind::Cut {
            from: tx.target(&c.from)?,
            to: tx.target(&c.to)?,
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
            cx.loc.step(index),
            format!("step {}: empty step", index + 1),
        ));
    };
    // Defined after the step's own targets are resolved: `kill: {target: x, as: x}` is an error.
    if let Some(a) = new_alias {
        aliases.insert(a);
    }
    Ok(kind)
}

struct TargetCx<'a> {
    cx: &'a Ctx<'a>,
    index: usize,
    key: &'static str,
    cluster: &'a ClusterSettings,
    aliases: &'a HashSet<String>,
}

impl TargetCx<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ScenarioError {
        self.cx.err(
            self.cx.loc.key_in_step(self.index, key),
            format!("{} in step {} ({})", msg.into(), self.index + 1, self.key),
        )
    }

    fn target(&self, t: &RawTarget) -> Result<Target, ScenarioError> {
        match t {
            RawTarget::Node(n) => {
                if *n < 1 || *n as usize > self.cluster.nodes {
                    return Err(self.cx.err(
                        self.cx.loc.key_in_step(self.index, "node"),
                        format!(
                            "node {n} does not exist in step {} ({}); nodes are 1 to {}",
                            self.index + 1,
                            self.key,
                            self.cluster.nodes
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
                        self.cx.loc.word_in_step(self.index, other),
                        format!(
                            "unknown target `{other}` in step {} ({}){hint}; expected one of: {}, \
                             {{node: <n>}}, or an alias defined earlier with `as:`{}",
                            self.index + 1,
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
                self.cx.loc.word_in_step(self.index, name),
                format!(
                    "unknown user `{name}` in step {} ({}); the workload's users are u1 to u{}{}",
                    self.index + 1,
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
    if e.converged.is_some() {
        given.push("converged");
    }
    if given.len() != 1 {
        return Err(tx.err(
            tx.key,
            format!(
                "`{}` needs exactly one condition (leader, detected, rejoined, stepped_down, \
                 no_leader, converged), got {}",
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
        let duration = bounded_deadline(&n.for_, c)
            .map_err(|err| tx.err("for", format!("bad duration for `for`: {err}")))?
            .resolve(c);
        (
            Condition::NoLeader {
                among: tx.target(&n.among)?,
                duration,
            },
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
    if matches!(condition, Condition::NoLeader { .. }) && e.within.is_some() {
        return Err(tx.err("within", "`no_leader` takes `for`, not `within`"));
    }
    let within = match inner_within.or(e.within) {
        Some(w) => bounded_deadline(&w, c)
            .map_err(|err| tx.err("within", format!("bad deadline: {err}")))?,
        None => default,
    };
    Ok(ExpectStep { condition, within })
}
