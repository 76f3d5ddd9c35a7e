//! The data the HTML timeline is drawn from, derived purely from the history's lines (and
//! `summary.json` when there is one, for step descriptions and the checkers' verdicts): role
//! lanes, fault bands, detection marks, election windows with their messages, client
//! acknowledgements, step figures and the records each failed check points at. Times are
//! milliseconds since the first record, so the page stays small and deterministic.

use super::fault_bands::{self, Band};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Version of this data's shape inside the page (`data.format`).
pub const FORMAT: u32 = 1;

/// Everything the page draws; the records themselves travel beside it, once.
#[derive(Clone, Debug, Serialize)]
pub struct PageData {
    pub format: u32,
    /// Unix ms of the first record; every other time is relative to it.
    pub t0: u64,
    /// ms from the first record to the last.
    pub span: u64,
    pub meta: Meta,
    pub nodes: Vec<u64>,
    pub lanes: Vec<Lane>,
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
    pub windows: Vec<Window>,
    pub client: Client,
    pub steps: Vec<Step>,
    pub checks: Vec<Check>,
    /// Epochs in which more than one node elected itself.
    pub split_brain: Vec<SplitBrain>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Meta {
    pub name: String,
    pub about: String,
    /// `pass`, `fail`, `error`; absent without summary.json.
    pub verdict: Option<String>,
    pub run_id: Option<String>,
    /// One line: nodes, election, heartbeat, failure timeout, quorum.
    pub cluster: String,
    /// What the page was built from.
    pub source: String,
    pub records: usize,
}

/// One node's role over time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lane {
    pub node: u64,
    pub segs: Vec<Seg>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seg {
    pub a: u64,
    pub b: u64,
    /// `follower`, `candidate`, `leader`, `down` or `paused`.
    pub state: String,
    pub epoch: u64,
    /// The record that began it.
    pub rec: usize,
}

/// A failure-detector observation: `node` about `peer`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mark {
    pub t: u64,
    pub node: u64,
    pub peer: u64,
    /// `suspected`, `down`, `back` or `left`.
    pub kind: String,
    pub silence_ms: Option<u64>,
    pub rec: usize,
}

/// The events of one epoch's election, for the message diagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub epoch: u64,
    pub a: u64,
    pub b: u64,
    /// The first `election_started`'s trigger.
    pub trigger: Option<String>,
    /// Nodes that elected themselves in this epoch (two or more: split brain).
    pub leaders: Vec<u64>,
    /// When the (first) winner elected itself.
    pub won_at: Option<u64>,
    pub points: Vec<Point>,
    pub msgs: Vec<Msg>,
}

/// An election event on one lane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Point {
    pub t: u64,
    pub node: u64,
    /// `started`, `candidate`, `elected`, `accepted`, or a message event's name.
    pub kind: String,
    pub rec: usize,
}

/// An arrow between lanes: sent by `from` at `ta`, received (or acted on) by `to` at `tb`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Msg {
    pub from: u64,
    pub to: u64,
    pub ta: u64,
    pub tb: u64,
    pub kind: String,
    pub rec: usize,
}

/// The users' view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Client {
    /// `[t, latency since the first attempt, attempts, record]` per acknowledgement.
    pub acks: Vec<(u64, u64, u32, usize)>,
    /// `[t, record]` per failed attempt.
    pub fails: Vec<(u64, usize)>,
    /// `[t, record]` per retry (attempt > 1).
    pub retries: Vec<(u64, usize)>,
    /// Stretches with a message outstanding and no acknowledgement, longer than usual.
    pub gaps: Vec<(u64, u64)>,
    pub sent: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    /// 1-based, as the table prints it.
    pub index: usize,
    pub keyword: String,
    pub description: String,
    /// `passed`, `failed`, `skipped` (or `met` / `started` without summary.json).
    pub status: String,
    pub a: Option<u64>,
    pub b: Option<u64>,
    /// Where the figure is measured from (the latest fault before the step).
    pub from: Option<u64>,
    pub figure_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub headroom_ms: Option<i64>,
    pub message: Option<String>,
    pub rec: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: String,
    pub ok: bool,
    pub figure: String,
    pub deadline: Option<String>,
    pub headroom_ms: Option<i64>,
    pub findings: Vec<Finding>,
}

/// One line of a checker's details, with the records it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub text: String,
    pub recs: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SplitBrain {
    pub epoch: u64,
    pub leaders: Vec<u64>,
    pub recs: Vec<usize>,
}

/// At most this many records are linked from one finding.
const MAX_LINKS: usize = 40;

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// Election message events beyond the core ones: `election…`, `vote…`, `token…` events that
/// name a peer node in a numeric `to` (sent) or `from` (received).
fn is_message_event(name: &str) -> bool {
    (name.starts_with("election") && name != "election_started")
        || (name.starts_with("vote") && name != "vote_granted")
        || name.starts_with("token")
}

fn message_kind(v: &Value, event: &str) -> String {
    for k in ["kind", "msg", "message", "type"] {
        if let Some(x) = s(v, k) {
            return x.to_string();
        }
    }
    if let Some(x) = v
        .get("body")
        .and_then(|b| s(b, "type").or_else(|| s(b, "kind")))
    {
        return x.to_string();
    }
    event.to_string()
}

/// Parses the history's lines; a line that is not JSON becomes `Null` (kept, so indexes
/// stay the line numbers minus one).
pub fn parse_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l.trim()).unwrap_or(Value::Null))
        .collect()
}

/// Builds the page's data from the records (in file order: the history is written sorted).
pub fn build(records: &[Value], summary: Option<&Value>) -> PageData {
    let ts: Vec<Option<u64>> = records.iter().map(|r| u(r, "ts_ms")).collect();
    let t0 = ts.iter().flatten().copied().min().unwrap_or(0);
    let t1 = ts.iter().flatten().copied().max().unwrap_or(t0);
    let span = t1 - t0;
    // Indexes in time order (stable), so an unsorted history still draws right.
    let mut order: Vec<usize> = (0..records.len()).filter(|i| ts[*i].is_some()).collect();
    order.sort_by_key(|i| ts[*i]);
    let rel = |i: usize| ts[i].unwrap_or(t0) - t0;
    let src = |i: usize| s(&records[i], "src").unwrap_or("");

    // Nodes: every node that wrote an event or was named by a fault.
    let mut nodes: BTreeSet<u64> = BTreeSet::new();
    for &i in &order {
        let r = &records[i];
        match src(i) {
            "node" => nodes.extend(u(r, "node")),
            "fault" => {
                for k in ["nodes", "to"] {
                    if let Some(a) = r.get(k).and_then(Value::as_array) {
                        nodes.extend(a.iter().filter_map(Value::as_u64));
                    }
                }
                if let Some(gs) = r.get("groups").and_then(Value::as_array) {
                    for g in gs.iter().filter_map(Value::as_array) {
                        nodes.extend(g.iter().filter_map(Value::as_u64));
                    }
                }
            }
            _ => {}
        }
    }
    let nodes: Vec<u64> = nodes.into_iter().collect();

    let lanes = lanes(records, &order, &nodes, &rel, span);
    let faults: Vec<(usize, u64, &Value)> = order
        .iter()
        .filter(|i| src(**i) == "fault")
        .map(|&i| (i, rel(i), &records[i]))
        .collect();
    let bands = fault_bands::bands(&faults, &nodes, span);
    let marks = marks(records, &order, &rel);
    let windows = windows(records, &order, &rel);
    let client = client(records, &order, &rel);
    let steps = steps(records, &order, &rel, summary);
    let split_brain: Vec<SplitBrain> = windows
        .iter()
        .filter(|w| w.leaders.len() > 1)
        .map(|w| SplitBrain {
            epoch: w.epoch,
            leaders: w.leaders.clone(),
            recs: w
                .points
                .iter()
                .filter(|p| p.kind == "elected")
                .map(|p| p.rec)
                .collect(),
        })
        .collect();
    let checks = checks(records, summary, &windows);
    PageData {
        format: FORMAT,
        t0,
        span,
        meta: meta(records, summary),
        nodes,
        lanes,
        bands,
        marks,
        windows,
        client,
        steps,
        checks,
        split_brain,
    }
}

fn meta(records: &[Value], summary: Option<&Value>) -> Meta {
    let mut m = Meta {
        records: records.len(),
        source: if summary.is_some() {
            "history.jsonl + summary.json".into()
        } else {
            "history.jsonl (no summary.json: no step descriptions or verdicts)".into()
        },
        ..Meta::default()
    };
    if let Some(sm) = summary {
        let sc = sm.get("scenario").cloned().unwrap_or(Value::Null);
        m.name = s(&sc, "name").unwrap_or("").to_string();
        m.about = s(&sc, "about").unwrap_or("").to_string();
        m.verdict = s(sm, "verdict").map(str::to_string);
        m.run_id = s(sm, "run_id").map(str::to_string);
        if let Some(c) = sm.get("cluster") {
            m.cluster = format!(
                "{} nodes · {} · heartbeat {} ms · failure timeout {} ms · quorum {}",
                u(c, "nodes").unwrap_or(0),
                s(c, "election").unwrap_or("?"),
                u(c, "heartbeat_ms").unwrap_or(0),
                u(c, "failure_timeout_ms").unwrap_or(0),
                s(c, "quorum").unwrap_or("?")
            );
        }
    }
    if m.cluster.is_empty() {
        // The nodes' own `started` events carry the settings.
        if let Some(st) = records
            .iter()
            .find(|r| s(r, "src") == Some("node") && s(r, "event") == Some("started"))
        {
            m.cluster = format!(
                "{} nodes · {} · heartbeat {} ms · failure timeout {} ms · quorum {}",
                u(st, "cluster_size").unwrap_or(0),
                s(st, "election").unwrap_or("?"),
                u(st, "heartbeat_ms").unwrap_or(0),
                u(st, "failure_timeout_ms").unwrap_or(0),
                s(st, "quorum").unwrap_or("?")
            );
        }
    }
    m
}

/// Role lanes: a node's role and epoch as its events report them, overridden by the faults
/// that took it away (down from a kill or stop until its restart, paused until resumed).
fn lanes(
    records: &[Value],
    order: &[usize],
    nodes: &[u64],
    rel: &dyn Fn(usize) -> u64,
    end: u64,
) -> Vec<Lane> {
    #[derive(Default, Clone)]
    struct St {
        role: Option<String>,
        epoch: u64,
        down: bool,
        paused: bool,
    }
    impl St {
        fn shown(&self) -> Option<(String, u64)> {
            if self.down {
                return Some(("down".into(), self.epoch));
            }
            if self.paused {
                return Some(("paused".into(), self.epoch));
            }
            self.role.clone().map(|r| (r, self.epoch))
        }
    }
    let mut st: BTreeMap<u64, St> = nodes.iter().map(|n| (*n, St::default())).collect();
    let mut segs: BTreeMap<u64, Vec<Seg>> = nodes.iter().map(|n| (*n, Vec::new())).collect();
    let mut update = |n: u64, st: &St, t: u64, rec: usize| {
        let Some((state, epoch)) = st.shown() else {
            return;
        };
        let v = segs.entry(n).or_default();
        if let Some(last) = v.last_mut() {
            if last.state == state && (last.epoch == epoch || state == "down") {
                return;
            }
            last.b = t;
        }
        v.push(Seg {
            a: t,
            b: end,
            state,
            epoch,
            rec,
        });
    };
    for &i in order {
        let r = &records[i];
        let t = rel(i);
        match s(r, "src") {
            Some("node") => {
                let Some(n) = u(r, "node") else { continue };
                let e = st.entry(n).or_default();
                // A node that writes events is running, whatever the fault order says
                // (a restart is recorded once the container runs, after its first lines).
                e.down = false;
                e.role = s(r, "role").map(str::to_string).or(e.role.take());
                e.epoch = u(r, "epoch").unwrap_or(e.epoch);
                if s(r, "event") == Some("stopping") {
                    // SIGTERM: the node leaves now; the stop fault follows.
                    e.down = true;
                }
                let snapshot = e.clone();
                update(n, &snapshot, t, i);
            }
            Some("fault") => {
                let action = s(r, "action").unwrap_or("");
                let ns: Vec<u64> = r
                    .get("nodes")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).collect())
                    .unwrap_or_default();
                for n in ns {
                    let e = st.entry(n).or_default();
                    match action {
                        "kill" | "stop" => {
                            e.down = true;
                            e.paused = false;
                        }
                        "pause" => e.paused = true,
                        "resume" => e.paused = false,
                        "restart" => {
                            e.down = false;
                            e.paused = false;
                            e.role = Some("follower".into());
                        }
                        _ => continue,
                    }
                    let snapshot = e.clone();
                    update(n, &snapshot, t, i);
                }
            }
            _ => {}
        }
    }
    segs.into_iter()
        .map(|(node, segs)| Lane { node, segs })
        .collect()
}

fn marks(records: &[Value], order: &[usize], rel: &dyn Fn(usize) -> u64) -> Vec<Mark> {
    let mut out = Vec::new();
    for &i in order {
        let r = &records[i];
        if s(r, "src") != Some("node") {
            continue;
        }
        let kind = match s(r, "event") {
            Some("peer_suspected") => "suspected",
            Some("peer_down") => "down",
            Some("peer_back") => "back",
            Some("peer_left") => "left",
            _ => continue,
        };
        let (Some(node), Some(peer)) = (u(r, "node"), u(r, "peer")) else {
            continue;
        };
        out.push(Mark {
            t: rel(i),
            node,
            peer,
            kind: kind.into(),
            silence_ms: u(r, "silence_ms"),
            rec: i,
        });
    }
    out
}

/// A follower that accepts the leader more than this long after the win (a late starter,
/// a restarted node) is not part of the election round.
const LATE_ACCEPT_MS: u64 = 1000;

/// One window per epoch in which an election ran or a leader was established.
fn windows(records: &[Value], order: &[usize], rel: &dyn Fn(usize) -> u64) -> Vec<Window> {
    struct Ev {
        t: u64,
        node: u64,
        epoch: u64,
        i: usize,
    }
    let mut by_epoch: BTreeMap<u64, Vec<(Ev, &Value, String)>> = BTreeMap::new();
    for &i in order {
        let r = &records[i];
        if s(r, "src") != Some("node") {
            continue;
        }
        let (Some(node), Some(epoch), Some(event)) = (u(r, "node"), u(r, "epoch"), s(r, "event"))
        else {
            continue;
        };
        let relevant = match event {
            "election_started" | "vote_granted" | "leader_elected" => true,
            "role_changed" => s(r, "to") == Some("candidate"),
            e => is_message_event(e) && (u(r, "to").is_some() || u(r, "from").is_some()),
        };
        if relevant {
            by_epoch.entry(epoch).or_default().push((
                Ev {
                    t: rel(i),
                    node,
                    epoch,
                    i,
                },
                r,
                event.to_string(),
            ));
        }
    }
    let mut out = Vec::new();
    for (epoch, evs) in by_epoch {
        let mut w = Window {
            epoch,
            a: u64::MAX,
            b: 0,
            trigger: None,
            leaders: vec![],
            won_at: None,
            points: vec![],
            msgs: vec![],
        };
        // Self-elections first: arrows and the window's end depend on them.
        let mut win_at: BTreeMap<u64, u64> = BTreeMap::new();
        for (e, r, name) in &evs {
            if name == "leader_elected" && u(r, "leader") == Some(e.node) {
                win_at.entry(e.node).or_insert(e.t);
                if !w.leaders.contains(&e.node) {
                    w.leaders.push(e.node);
                }
            }
        }
        w.won_at = win_at.values().copied().min();
        let mut sends: Vec<(u64, u64, u64, String, usize, bool)> = Vec::new();
        for (e, r, name) in &evs {
            debug_assert_eq!(e.epoch, epoch);
            let mut include = true;
            match name.as_str() {
                "election_started" => {
                    if w.trigger.is_none() {
                        w.trigger = s(r, "trigger").map(str::to_string);
                    }
                    w.points.push(point(e.t, e.node, "started", e.i));
                }
                "role_changed" => {
                    let reason = s(r, "reason").unwrap_or("candidate");
                    let kind = if reason == "ring_maximum" {
                        "ring_maximum"
                    } else {
                        "candidate"
                    };
                    w.points.push(point(e.t, e.node, kind, e.i));
                }
                "vote_granted" => {
                    let cand = u(r, "candidate").unwrap_or(e.node);
                    // The promise takes effect when the candidate next acts in this epoch.
                    let tb = evs
                        .iter()
                        .filter(|(x, _, _)| x.node == cand && x.t >= e.t)
                        .map(|(x, _, _)| x.t)
                        .next()
                        .unwrap_or(e.t);
                    w.points.push(point(e.t, e.node, "vote", e.i));
                    w.msgs.push(Msg {
                        from: e.node,
                        to: cand,
                        ta: e.t,
                        tb,
                        kind: "vote".into(),
                        rec: e.i,
                    });
                }
                "leader_elected" => {
                    let leader = u(r, "leader").unwrap_or(e.node);
                    if leader == e.node {
                        w.points.push(point(e.t, e.node, "elected", e.i));
                    } else {
                        let from_t = win_at.get(&leader).copied().filter(|t| *t <= e.t);
                        if w.won_at.is_some_and(|won| e.t > won + LATE_ACCEPT_MS) {
                            include = false;
                        } else {
                            w.points.push(point(e.t, e.node, "accepted", e.i));
                            w.msgs.push(Msg {
                                from: leader,
                                to: e.node,
                                ta: from_t.unwrap_or(e.t),
                                tb: e.t,
                                kind: "leader".into(),
                                rec: e.i,
                            });
                        }
                    }
                }
                other => {
                    let kind = message_kind(r, other);
                    if let Some(to) = u(r, "to") {
                        sends.push((e.node, to, e.t, kind, e.i, false));
                    } else if let Some(from) = u(r, "from") {
                        // Pair with the earliest unmatched send of the same kind.
                        let m = sends.iter_mut().find(|x| {
                            !x.5 && x.0 == from && x.1 == e.node && x.3 == kind && x.2 <= e.t
                        });
                        match m {
                            Some(x) => {
                                x.5 = true;
                                w.msgs.push(Msg {
                                    from,
                                    to: e.node,
                                    ta: x.2,
                                    tb: e.t,
                                    kind: kind.clone(),
                                    rec: x.4,
                                });
                            }
                            None => w.msgs.push(Msg {
                                from,
                                to: e.node,
                                ta: e.t,
                                tb: e.t,
                                kind: kind.clone(),
                                rec: e.i,
                            }),
                        }
                    }
                    w.points.push(point(e.t, e.node, other, e.i));
                }
            }
            if include {
                w.a = w.a.min(e.t);
                w.b = w.b.max(e.t);
            }
        }
        // Sends never received: drawn as a stub at the sender.
        for (from, to, t, kind, rec, matched) in sends {
            if !matched {
                w.msgs.push(Msg {
                    from,
                    to,
                    ta: t,
                    tb: t,
                    kind: format!("{kind} (no receipt)"),
                    rec,
                });
            }
        }
        w.msgs.sort_by_key(|m| (m.ta, m.rec));
        if w.a <= w.b {
            out.push(w);
        }
    }
    out
}

fn point(t: u64, node: u64, kind: &str, rec: usize) -> Point {
    Point {
        t,
        node,
        kind: kind.into(),
        rec,
    }
}

fn client(records: &[Value], order: &[usize], rel: &dyn Fn(usize) -> u64) -> Client {
    let mut c = Client::default();
    let mut first_send: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut attempts: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut acked_at: BTreeMap<(String, String), u64> = BTreeMap::new();
    for &i in order {
        let r = &records[i];
        if s(r, "src") != Some("client") {
            continue;
        }
        let user = s(r, "user").unwrap_or("").to_string();
        let Some(id) = s(r, "id") else { continue };
        let key = (user, id.to_string());
        let t = rel(i);
        match s(r, "action") {
            Some("send") => {
                first_send.entry(key.clone()).or_insert(t);
                let a = u(r, "attempt").unwrap_or(1) as u32;
                let e = attempts.entry(key).or_insert(a);
                *e = (*e).max(a);
                if a > 1 {
                    c.retries.push((t, i));
                }
            }
            Some("acked") => {
                if acked_at.contains_key(&key) {
                    continue;
                }
                let from = first_send.get(&key).copied().unwrap_or(t);
                c.acks
                    .push((t, t - from, attempts.get(&key).copied().unwrap_or(1), i));
                acked_at.insert(key, t);
            }
            Some("failed") => c.fails.push((t, i)),
            _ => {}
        }
    }
    c.sent = first_send.len();
    // Unavailability: gaps between acknowledgements, with a message waiting throughout,
    // much longer than the usual spacing.
    let times: Vec<u64> = c.acks.iter().map(|a| a.0).collect();
    if times.len() >= 2 {
        let mut d: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        d.sort_unstable();
        let threshold = (d[d.len() / 2] * 5).max(250);
        for w in times.windows(2) {
            let (p, q) = (w[0], w[1]);
            if q - p <= threshold {
                continue;
            }
            let waiting = first_send
                .iter()
                .any(|(k, s0)| *s0 < q - threshold && acked_at.get(k).is_none_or(|a| *a >= q));
            if waiting {
                c.gaps.push((p, q));
            }
        }
    }
    c
}

fn steps(
    records: &[Value],
    order: &[usize],
    rel: &dyn Fn(usize) -> u64,
    summary: Option<&Value>,
) -> Vec<Step> {
    let mut by_index: BTreeMap<usize, Step> = BTreeMap::new();
    let mut last_fault: Option<u64> = None;
    for &i in order {
        let r = &records[i];
        let t = rel(i);
        match s(r, "src") {
            Some("fault") => last_fault = Some(t),
            Some("step") => {
                let Some(idx) = u(r, "index") else { continue };
                let idx = idx as usize + 1;
                let st = by_index.entry(idx).or_insert_with(|| Step {
                    index: idx,
                    keyword: String::new(),
                    description: format!("step {idx}"),
                    status: "started".into(),
                    a: None,
                    b: None,
                    from: None,
                    figure_ms: None,
                    deadline_ms: None,
                    headroom_ms: None,
                    message: None,
                    rec: None,
                });
                match s(r, "status") {
                    Some("start") => {
                        st.a = Some(t);
                        st.rec.get_or_insert(i);
                    }
                    Some(status) => {
                        st.b = Some(t);
                        st.status = status.to_string();
                        st.figure_ms = u(r, "figure_ms");
                        st.deadline_ms = u(r, "deadline_ms");
                        st.message = s(r, "message").map(str::to_string);
                        st.rec = Some(i);
                        if let Some(f) = st.figure_ms {
                            // Figures are measured from the latest fault (the cluster
                            // start counts); without one, back from the end.
                            st.from = Some(
                                last_fault
                                    .filter(|lf| *lf <= t)
                                    .unwrap_or(t.saturating_sub(f)),
                            );
                        }
                    }
                    None => {}
                }
                if let (Some(f), Some(d)) = (st.figure_ms, st.deadline_ms) {
                    st.headroom_ms = Some(d as i64 - f as i64);
                }
            }
            _ => {}
        }
    }
    if let Some(list) = summary
        .and_then(|s| s.get("steps"))
        .and_then(Value::as_array)
    {
        for sm in list {
            let Some(idx) = u(sm, "index") else { continue };
            let st = by_index.entry(idx as usize).or_insert_with(|| Step {
                index: idx as usize,
                keyword: String::new(),
                description: String::new(),
                status: String::new(),
                a: None,
                b: None,
                from: None,
                figure_ms: None,
                deadline_ms: None,
                headroom_ms: None,
                message: None,
                rec: None,
            });
            st.keyword = s(sm, "keyword").unwrap_or("").to_string();
            st.description = s(sm, "description").unwrap_or("").to_string();
            st.status = s(sm, "status").unwrap_or("").to_string();
            st.figure_ms = u(sm, "figure_ms").or(st.figure_ms);
            st.deadline_ms = u(sm, "deadline_ms").or(st.deadline_ms);
            st.headroom_ms = sm
                .get("headroom_ms")
                .and_then(Value::as_i64)
                .or(st.headroom_ms);
            st.message = s(sm, "message").map(str::to_string).or(st.message.take());
        }
    }
    by_index.into_values().collect()
}

/// Splits text into words of id characters, so `u1-3` is found in `u1/u1-3 (acked …)` and
/// not inside `u1-31`.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The checkers' verdicts from summary.json, each detail linked to the records it names:
/// message ids (every record carrying that id) and `epoch N` (that epoch's self-elections).
fn checks(records: &[Value], summary: Option<&Value>, windows: &[Window]) -> Vec<Check> {
    let Some(list) = summary
        .and_then(|s| s.get("checks"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    // Message id → records carrying it.
    let mut by_id: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(id) = s(r, "id") {
            if matches!(s(r, "src"), Some("client") | Some("node")) {
                by_id.entry(id).or_default().push(i);
            }
        }
    }
    list.iter()
        .map(|c| {
            let findings = c
                .get("details")
                .and_then(Value::as_array)
                .map(|ds| {
                    ds.iter()
                        .filter_map(Value::as_str)
                        .map(|text| {
                            let mut recs: Vec<usize> = Vec::new();
                            let ws = words(text);
                            for (k, w) in ws.iter().enumerate() {
                                if let Some(v) = by_id.get(w) {
                                    recs.extend(v.iter().copied());
                                }
                                if *w == "epoch" {
                                    if let Some(e) =
                                        ws.get(k + 1).and_then(|n| n.parse::<u64>().ok())
                                    {
                                        if let Some(win) = windows.iter().find(|x| x.epoch == e) {
                                            recs.extend(
                                                win.points
                                                    .iter()
                                                    .filter(|p| p.kind == "elected")
                                                    .map(|p| p.rec),
                                            );
                                        }
                                    }
                                }
                            }
                            recs.sort_unstable();
                            recs.dedup();
                            recs.truncate(MAX_LINKS);
                            Finding {
                                text: text.to_string(),
                                recs,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Check {
                name: s(c, "name").unwrap_or("?").to_string(),
                status: s(c, "status").unwrap_or("").to_string(),
                ok: c.get("ok").and_then(Value::as_bool).unwrap_or(false),
                figure: s(c, "figure").unwrap_or("").to_string(),
                deadline: s(c, "deadline").map(str::to_string),
                headroom_ms: c.get("headroom_ms").and_then(Value::as_i64),
                findings,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<Value> {
        parse_lines(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn node(ts: u64, n: u64, epoch: u64, role: &str, rest: &str) -> String {
        format!(
            r#"{{"src":"node","v":1,"ts_ms":{ts},"node":{n},"epoch":{epoch},"role":"{role}",{rest}}}"#
        )
    }

    #[test]
    fn lanes_follow_roles_epochs_kills_and_pauses() {
        let h = [
            r#"{"src":"fault","ts_ms":1000,"action":"start","nodes":[1,2]}"#.to_string(),
            node(1010, 1, 0, "follower", r#""event":"started""#),
            node(1010, 2, 0, "follower", r#""event":"started""#),
            node(
                1100,
                1,
                1,
                "leader",
                r#""event":"leader_elected","leader":1,"votes":2"#,
            ),
            node(
                1105,
                2,
                1,
                "follower",
                r#""event":"leader_elected","leader":1,"votes":0"#,
            ),
            r#"{"src":"fault","ts_ms":1200,"action":"pause","nodes":[2],"step":1}"#.to_string(),
            r#"{"src":"fault","ts_ms":1300,"action":"resume","nodes":[2],"step":2}"#.to_string(),
            r#"{"src":"fault","ts_ms":1400,"action":"kill","nodes":[1],"step":3}"#.to_string(),
            node(
                1500,
                2,
                1,
                "follower",
                r#""event":"peer_down","peer":1,"silence_ms":500"#,
            ),
        ];
        let refs: Vec<&str> = h.iter().map(String::as_str).collect();
        let d = build(&lines(&refs), None);
        assert_eq!(d.nodes, vec![1, 2]);
        let states = |n: usize| -> Vec<(String, u64, u64)> {
            d.lanes[n]
                .segs
                .iter()
                .map(|s| (s.state.clone(), s.epoch, s.a))
                .collect()
        };
        assert_eq!(
            states(0),
            vec![
                ("follower".into(), 0, 10),
                ("leader".into(), 1, 100),
                ("down".into(), 1, 400)
            ]
        );
        assert_eq!(
            states(1),
            vec![
                ("follower".into(), 0, 10),
                ("follower".into(), 1, 105),
                ("paused".into(), 1, 200),
                ("follower".into(), 1, 300)
            ]
        );
        let pause = d.bands.iter().find(|b| b.kind == "pause").unwrap();
        assert_eq!((pause.a, pause.b, pause.repaired), (200, 300, true));
        let kill = d.bands.iter().find(|b| b.kind == "kill").unwrap();
        assert_eq!((kill.a, kill.b, kill.repaired), (400, 500, false));
        assert_eq!(d.marks.len(), 1);
        assert_eq!((d.marks[0].node, d.marks[0].peer), (2, 1));
        assert_eq!(d.marks[0].silence_ms, Some(500));
    }

    #[test]
    fn a_one_way_cut_is_a_band_from_senders_to_receivers_until_heal() {
        let d = build(
            &lines(&[
                r#"{"src":"fault","ts_ms":0,"action":"start","nodes":[1,2,3]}"#,
                r#"{"src":"fault","ts_ms":100,"action":"cut","nodes":[1],"step":0,"to":[2,3]}"#,
                r#"{"src":"fault","ts_ms":150,"action":"partition","nodes":[],"step":1,"groups":[[1],[2,3]]}"#,
                r#"{"src":"fault","ts_ms":300,"action":"heal","nodes":[],"step":2}"#,
                r#"{"src":"fault","ts_ms":400,"action":"loss","nodes":[2],"to":[3],"percent":30}"#,
            ]),
            None,
        );
        let cut = &d.bands[0];
        assert_eq!(cut.kind, "cut");
        assert_eq!((cut.from.clone(), cut.to.clone()), (vec![1], vec![2, 3]));
        assert_eq!((cut.a, cut.b, cut.end_rec), (100, 300, Some(3)));
        assert!(cut.label.contains("1 → 2,3 (one-way)"), "{}", cut.label);
        let part = &d.bands[1];
        assert_eq!(part.groups, vec![vec![1], vec![2, 3]]);
        assert_eq!(part.label, "partition {1} | {2,3}");
        assert_eq!(part.b, 300);
        // A fault kind this page does not know still gets a directed band, open to the end.
        let loss = &d.bands[2];
        assert_eq!((loss.from.clone(), loss.to.clone()), (vec![2], vec![3]));
        assert!(loss.label.contains("percent=30"), "{}", loss.label);
        assert!(!loss.repaired);
    }

    #[test]
    fn a_forge_is_a_band_for_its_duration_that_a_heal_does_not_end() {
        let d = build(
            &lines(&[
                r#"{"src":"fault","ts_ms":0,"action":"start","nodes":[1,2,3]}"#,
                r#"{"src":"fault","ts_ms":100,"action":"forge","nodes":[1,2,3],"step":0,"forge":{"kinds":["hello"],"rate_per_s":200,"for_ms":500,"outsider":"10.0.0.200","seed":1}}"#,
                r#"{"src":"fault","ts_ms":200,"action":"heal","nodes":[],"step":1}"#,
                r#"{"src":"fault","ts_ms":900,"action":"kill","nodes":[1],"step":2}"#,
            ]),
            None,
        );
        let forge = d.bands.iter().find(|b| b.kind == "forge").unwrap();
        assert_eq!((forge.a, forge.b, forge.repaired), (100, 600, true));
        assert_eq!(forge.nodes, vec![1, 2, 3]);
        assert_eq!(forge.label, "forge 200/s from outsider 10.0.0.200");
    }

    #[test]
    fn election_windows_have_votes_wins_and_split_brain_links() {
        let h = [
            node(
                0,
                1,
                2,
                "candidate",
                r#""event":"election_started","trigger":"leader_down","algorithm":"lcr","credentials":{"last_log_epoch":1,"last_log_index":3,"id":1}"#,
            ),
            node(
                10,
                2,
                2,
                "follower",
                r#""event":"vote_granted","candidate":1"#,
            ),
            node(
                20,
                1,
                2,
                "leader",
                r#""event":"leader_elected","leader":1,"votes":2"#,
            ),
            node(
                25,
                3,
                2,
                "leader",
                r#""event":"leader_elected","leader":3,"votes":1"#,
            ),
            node(
                30,
                2,
                2,
                "follower",
                r#""event":"leader_elected","leader":1,"votes":0"#,
            ),
            node(
                40,
                2,
                2,
                "follower",
                r#""event":"election_msg","kind":"token","to":3"#,
            ),
            node(
                45,
                3,
                2,
                "leader",
                r#""event":"election_msg","kind":"token","from":2"#,
            ),
        ];
        let summary = serde_json::json!({"checks":[{"name":"election","status":"failed","ok":false,
            "figure":"x","details":["epoch 2 has 2 leaders: 1, 3"]}]});
        let refs: Vec<&str> = h.iter().map(String::as_str).collect();
        let d = build(&lines(&refs), Some(&summary));
        assert_eq!(d.windows.len(), 1);
        let w = &d.windows[0];
        assert_eq!((w.epoch, w.a, w.b, w.won_at), (2, 0, 45, Some(20)));
        assert_eq!(w.trigger.as_deref(), Some("leader_down"));
        assert_eq!(w.leaders, vec![1, 3]);
        let arrows: Vec<(u64, u64, u64, u64, &str)> = w
            .msgs
            .iter()
            .map(|m| (m.from, m.to, m.ta, m.tb, m.kind.as_str()))
            .collect();
        assert_eq!(
            arrows,
            vec![
                (2, 1, 10, 20, "vote"),
                (1, 2, 20, 30, "leader"),
                (2, 3, 40, 45, "token")
            ]
        );
        assert_eq!(d.split_brain.len(), 1);
        assert_eq!(d.split_brain[0].recs, vec![2, 3]);
        assert_eq!(d.checks[0].findings[0].recs, vec![2, 3]);
    }

    #[test]
    fn client_latency_retries_failures_and_the_unavailability_gap() {
        let mut h: Vec<String> = Vec::new();
        // One message every 50 ms, acked 5 ms later, except a 1 s hole after t=500.
        for k in 0..30u64 {
            let t = k * 50 + if k >= 10 { 1000 } else { 0 };
            h.push(format!(r#"{{"src":"client","ts_ms":{t},"user":"u1","action":"send","id":"m{k}","text_len":3,"attempt":1}}"#));
            h.push(format!(r#"{{"src":"client","ts_ms":{},"user":"u1","action":"acked","id":"m{k}","index":{k}}}"#, t + 5));
        }
        // m30 is sent in the hole, fails, is retried and acked late.
        h.push(r#"{"src":"client","ts_ms":600,"user":"u1","action":"send","id":"m30","text_len":3,"attempt":1}"#.into());
        h.push(r#"{"src":"client","ts_ms":900,"user":"u1","action":"failed","id":"m30","error":"timeout"}"#.into());
        h.push(r#"{"src":"client","ts_ms":950,"user":"u1","action":"send","id":"m30","text_len":3,"attempt":2}"#.into());
        h.push(
            r#"{"src":"client","ts_ms":1510,"user":"u1","action":"acked","id":"m30","index":99}"#
                .into(),
        );
        let v = parse_lines(&h);
        let d = build(&v, None);
        let c = &d.client;
        assert_eq!(c.sent, 31);
        assert_eq!(c.acks.len(), 31);
        assert_eq!(c.fails.len(), 1);
        assert_eq!(c.retries.len(), 1);
        let late = c.acks.iter().find(|a| a.2 == 2).unwrap();
        assert_eq!((late.0, late.1), (1510, 910));
        assert_eq!(c.gaps, vec![(455, 1505)]);
    }

    #[test]
    fn fifty_thousand_records_build_quickly() {
        let mut h = Vec::with_capacity(50_000);
        for k in 0..50_000u64 {
            let n = k % 5 + 1;
            h.push(node(
                k,
                n,
                k / 10_000,
                if n == 1 { "leader" } else { "follower" },
                &format!(r#""event":"committed","index":{k},"entry_epoch":1,"op":"noop""#),
            ));
        }
        let started = std::time::Instant::now();
        let d = build(&parse_lines(&h), None);
        assert_eq!(d.lanes.len(), 5);
        assert!(started.elapsed().as_secs() < 10, "{:?}", started.elapsed());
    }
}
