//! What the history shows about the cluster: a fold of records into per-node state (alive,
//! paused, epoch, role, believed leader, live view), the queries steps resolve their targets
//! with, and the evaluation of `await`/`expect` conditions against the history. Pure: the
//! runner polls [`evaluate`] with the history so far and the current time.

use crate::faults::{self, Faults};
use crate::history::{FaultAction, Record};
use crate::scenario::{Condition, ExpectStep, Group, LeaderCondition, Observers, Target};
use chat_node::events::Event;
use chat_node::ids::{NodeId, Role};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Node events reach the history through log streaming, a little after they happen; a
/// condition is declared failed only this long after its deadline, so a late line still counts.
pub const LOG_LAG_MS: u64 = 300;

/// One node as the history shows it (whether it is up, paused or cut off is the fault
/// model's: [`Observed::faults`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeState {
    pub id: NodeId,
    pub epoch: u64,
    pub role: Role,
    /// The leader this node follows (itself when leading), with that leader's epoch.
    pub leader: Option<(NodeId, u64)>,
    /// The node's live view (itself included), as its last `view_changed` said.
    pub view: BTreeSet<NodeId>,
    /// Peers this node has declared down and not heard since.
    pub down_peers: BTreeSet<NodeId>,
    pub last_event_ts: Option<u64>,
}

impl NodeState {
    fn new(id: NodeId) -> Self {
        NodeState {
            id,
            epoch: 0,
            role: Role::Follower,
            leader: None,
            view: BTreeSet::from([id]),
            down_peers: BTreeSet::new(),
            last_event_ts: None,
        }
    }

    fn reset(&mut self) {
        *self = NodeState {
            last_event_ts: self.last_event_ts,
            ..NodeState::new(self.id)
        };
    }
}

/// Nodes saved by `as:` during a run.
pub type Aliases = BTreeMap<String, Vec<NodeId>>;

/// The cluster as the history shows it at some instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    nodes: BTreeMap<NodeId, NodeState>,
    /// Who is up, paused, and which links are cut: the shared fault model, fed by the fault
    /// records and by the nodes' own `started` / `stopping` events.
    faults: Faults,
    cluster_size: Option<usize>,
    last_ts: u64,
}

impl Observed {
    pub fn new() -> Self {
        Observed::default()
    }

    /// Folds records (in the order given; pass them sorted by time).
    pub fn from_records(records: &[Record]) -> Self {
        let mut o = Observed::new();
        for r in records {
            o.apply(r);
        }
        o
    }

    fn node_mut(&mut self, id: NodeId) -> &mut NodeState {
        self.faults.add_node(id);
        self.nodes.entry(id).or_insert_with(|| NodeState::new(id))
    }

    /// Applies one record. Returns whether the cluster state changed (client and step
    /// records never change it).
    pub fn apply(&mut self, record: &Record) -> bool {
        self.last_ts = self.last_ts.max(record.ts_ms());
        match record {
            Record::Node(ev) => {
                let n = self.node_mut(ev.node);
                n.last_event_ts = Some(ev.ts_ms);
                n.epoch = ev.epoch;
                n.role = ev.role;
                match &ev.event {
                    Event::Started { cluster_size, .. } => {
                        n.reset();
                        n.epoch = ev.epoch;
                        self.cluster_size = Some(*cluster_size);
                        self.faults.restart(ev.node);
                    }
                    Event::LeaderElected { leader, .. } => n.leader = Some((*leader, ev.epoch)),
                    Event::RoleChanged { to, .. } => match to {
                        Role::Leader => n.leader = Some((ev.node, ev.epoch)),
                        Role::Candidate => n.leader = None,
                        Role::Follower => {
                            if n.leader.is_some_and(|(l, _)| l == ev.node) {
                                n.leader = None;
                            }
                        }
                    },
                    Event::ViewChanged { members } => {
                        n.view = members.iter().copied().collect();
                        n.view.insert(ev.node);
                    }
                    Event::PeerDown { peer, .. } | Event::PeerLeft { peer } => {
                        n.down_peers.insert(*peer);
                        if n.leader.is_some_and(|(l, _)| l == *peer) {
                            n.leader = None;
                        }
                    }
                    Event::PeerBack { peer, .. } | Event::PeerDiscovered { peer, .. } => {
                        n.down_peers.remove(peer);
                    }
                    Event::Stopping { .. } => self.faults.crash(ev.node),
                    _ => {}
                }
                true
            }
            Record::Fault(f) => {
                for id in f.nodes.iter().chain(&f.to).chain(f.groups.iter().flatten()) {
                    self.node_mut(*id);
                }
                if matches!(f.action, FaultAction::Kill | FaultAction::Stop) {
                    // A dead node has no role, leader or view: after a restart only its
                    // new incarnation's events may say it rejoined. (A restart resets
                    // nothing: the kill or stop did, and its `started` event does again.)
                    for id in &f.nodes {
                        self.node_mut(*id).reset();
                    }
                }
                faults::apply(&mut self.faults, f);
                true
            }
            _ => false,
        }
    }

    /// The fault state as the history shows it now.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Not killed or stopped (a paused node is up).
    pub fn is_up(&self, id: NodeId) -> bool {
        self.faults.is_up(id)
    }

    pub fn is_paused(&self, id: NodeId) -> bool {
        self.faults.is_paused(id)
    }

    /// Up and not paused: able to act.
    pub fn is_live(&self, id: NodeId) -> bool {
        self.faults.is_live(id)
    }

    pub fn node(&self, id: NodeId) -> Option<&NodeState> {
        self.nodes.get(&id)
    }

    /// Every node seen so far (started or named in a fault), by id.
    pub fn all_nodes(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Nodes alive and not paused, by id.
    pub fn live_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .keys()
            .copied()
            .filter(|n| self.is_live(*n))
            .collect()
    }

    /// `--cluster-size` as the nodes reported it, else the number of nodes seen.
    pub fn cluster_size(&self) -> usize {
        self.cluster_size.unwrap_or(self.nodes.len())
    }

    /// Whether packets from `from` reach `to` (partitions and cuts only, not crashes).
    pub fn can_reach(&self, from: NodeId, to: NodeId) -> bool {
        self.faults.link_open(from, to)
    }

    /// Live nodes whose role is leader.
    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| self.is_live(n.id) && n.role == Role::Leader)
            .map(|n| n.id)
            .collect()
    }

    /// Leaders that every live node in their view, reachable both ways, follows.
    pub fn established_leaders(&self) -> Vec<NodeId> {
        self.leaders()
            .into_iter()
            .filter(|&l| {
                let Some(ln) = self.nodes.get(&l) else {
                    return false;
                };
                ln.view.iter().all(|&m| {
                    m == l
                        || match self.nodes.get(&m) {
                            Some(mn) if self.faults.talk(l, m) => {
                                mn.leader.is_some_and(|(who, _)| who == l)
                            }
                            _ => true,
                        }
                })
            })
            .collect()
    }

    /// The leader now: the established leader with the highest epoch, else any live leader
    /// with the highest epoch.
    pub fn current_leader(&self) -> Option<NodeId> {
        let pick = |ids: Vec<NodeId>| {
            ids.into_iter()
                .max_by_key(|id| (self.nodes.get(id).map(|n| n.epoch).unwrap_or(0), *id))
        };
        pick(self.established_leaders()).or_else(|| pick(self.leaders()))
    }

    /// Live nodes other than the current leader.
    pub fn followers(&self) -> Vec<NodeId> {
        let leader = self.current_leader();
        self.live_nodes()
            .into_iter()
            .filter(|n| Some(*n) != leader)
            .collect()
    }

    /// The next live node after `node` on the ring ordered by id (wrapping), if any other.
    pub fn ring_successor(&self, node: NodeId) -> Option<NodeId> {
        let live = self.live_nodes();
        live.iter()
            .copied()
            .find(|&n| n > node)
            .or_else(|| live.first().copied())
            .filter(|&n| n != node)
    }

    /// A majority of the cluster size, containing the leader (if any), then the lowest ids.
    pub fn majority(&self) -> Vec<NodeId> {
        let all = self.all_nodes();
        let size = (self.cluster_size() / 2 + 1).min(all.len());
        let mut out: Vec<NodeId> = self.current_leader().into_iter().collect();
        for n in all {
            if out.len() >= size {
                break;
            }
            if !out.contains(&n) {
                out.push(n);
            }
        }
        out.sort();
        out
    }

    /// Every node not in [`Observed::majority`].
    pub fn minority(&self) -> Vec<NodeId> {
        let maj = self.majority();
        self.all_nodes()
            .into_iter()
            .filter(|n| !maj.contains(n))
            .collect()
    }

    /// Whether every live node follows one leader, at one epoch, with a view of exactly the
    /// live nodes.
    pub fn converged(&self) -> Option<NodeId> {
        let live = self.live_nodes();
        let leaders = self.leaders();
        let [leader] = leaders[..] else {
            return None;
        };
        let epoch = self.nodes.get(&leader)?.epoch;
        let live_set: BTreeSet<NodeId> = live.iter().copied().collect();
        live.iter()
            .all(|id| {
                self.nodes
                    .get(id)
                    .is_some_and(|n| n.leader == Some((leader, epoch)) && n.view == live_set)
            })
            .then_some(leader)
    }
}

/// Resolves a step's target to node ids, from the state observed now. Several targets
/// (`[leader, random_follower]`) resolve at this one instant to distinct nodes: a random
/// choice avoids the nodes named before it, and two targets naming one node are an error.
pub fn resolve_target<R: Rng + ?Sized>(
    target: &Target,
    obs: &Observed,
    aliases: &Aliases,
    rng: &mut R,
) -> Result<Vec<NodeId>, String> {
    let Target::Several(targets) = target else {
        return resolve_one(target, obs, aliases, rng, &[]);
    };
    let mut out: Vec<NodeId> = Vec::new();
    let mut by: Vec<(NodeId, &Target)> = Vec::new();
    for t in targets {
        for id in resolve_one(t, obs, aliases, rng, &out)? {
            if let Some((_, first)) = by.iter().find(|(n, _)| *n == id) {
                return Err(format!(
                    "`{target}`: node {id} is both `{first}` and `{t}`; the targets of one step \
                     must be distinct nodes"
                ));
            }
            by.push((id, t));
            out.push(id);
        }
    }
    Ok(out)
}

/// One target; a random choice avoids `taken` (nodes an earlier target of the step named).
fn resolve_one<R: Rng + ?Sized>(
    target: &Target,
    obs: &Observed,
    aliases: &Aliases,
    rng: &mut R,
    taken: &[NodeId],
) -> Result<Vec<NodeId>, String> {
    let leader = || {
        obs.current_leader()
            .ok_or_else(|| format!("`{target}`: no leader is known now"))
    };
    let out = match target {
        Target::Leader => vec![leader()?],
        Target::Followers => obs.followers(),
        Target::RandomFollower => {
            let f: Vec<NodeId> = obs
                .followers()
                .into_iter()
                .filter(|n| !taken.contains(n))
                .collect();
            if f.is_empty() {
                return Err(if taken.is_empty() {
                    "`random_follower`: there is no live follower".into()
                } else {
                    "`random_follower`: no live follower is left that the step has not named".into()
                });
            }
            vec![f[rng.gen_range(0..f.len())]]
        }
        Target::Node(n) => vec![NodeId(*n)],
        Target::Majority => obs.majority(),
        Target::Minority => obs.minority(),
        Target::All => obs.all_nodes(),
        Target::RingSuccessorOfLeader => {
            let l = leader()?;
            vec![obs
                .ring_successor(l)
                .ok_or("`ring_successor_of_leader`: the leader has no live successor")?]
        }
        Target::Alias(a) => aliases
            .get(a)
            .cloned()
            .ok_or_else(|| format!("alias `{a}` was not saved (its step did not run)"))?,
        Target::Several(_) => resolve_target(target, obs, aliases, rng)?,
    };
    if out.is_empty() {
        return Err(format!("`{target}` names no node now"));
    }
    Ok(out)
}

/// Resolves partition groups; `rest` gets every node not named elsewhere. Groups must not
/// overlap, and at least 2 must be non-empty (empty ones are dropped).
pub fn resolve_groups<R: Rng + ?Sized>(
    groups: &[Group],
    obs: &Observed,
    aliases: &Aliases,
    rng: &mut R,
) -> Result<Vec<Vec<NodeId>>, String> {
    non_empty_groups(&resolve_groups_aligned(groups, obs, aliases, rng)?)
}

/// [`resolve_groups`] one entry per group as written, empty ones kept (a `rest` that names
/// nobody), so a group's `as:` finds its nodes by position.
pub fn resolve_groups_aligned<R: Rng + ?Sized>(
    groups: &[Group],
    obs: &Observed,
    aliases: &Aliases,
    rng: &mut R,
) -> Result<Vec<Vec<NodeId>>, String> {
    let mut out: Vec<Option<Vec<NodeId>>> = Vec::new();
    let mut named = BTreeSet::new();
    for g in groups {
        match g {
            Group::Rest => out.push(None),
            Group::Targets(ts) => {
                // Like a step's target list: a random choice avoids every node named before
                // it, in this group or an earlier one (`[[random_follower, random_follower],
                // rest]` is two followers, not sometimes one).
                let mut ids = BTreeSet::new();
                for t in ts {
                    let taken: Vec<NodeId> = named.iter().chain(ids.iter()).copied().collect();
                    ids.extend(resolve_one(t, obs, aliases, rng, &taken)?);
                }
                for id in &ids {
                    if !named.insert(*id) {
                        return Err(format!("node {id} is in two partition groups"));
                    }
                }
                out.push(Some(ids.into_iter().collect()));
            }
        }
    }
    let rest: Vec<NodeId> = obs
        .all_nodes()
        .into_iter()
        .filter(|n| !named.contains(n))
        .collect();
    Ok(out
        .into_iter()
        .map(|g| g.unwrap_or_else(|| rest.clone()))
        .collect())
}

/// The non-empty groups of [`resolve_groups_aligned`]; fewer than 2 is an error.
pub fn non_empty_groups(aligned: &[Vec<NodeId>]) -> Result<Vec<Vec<NodeId>>, String> {
    let groups: Vec<Vec<NodeId>> = aligned.iter().filter(|g| !g.is_empty()).cloned().collect();
    if groups.len() < 2 {
        return Err("the partition leaves fewer than 2 non-empty groups".into());
    }
    Ok(groups)
}

/// A condition with its targets resolved to node ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// An established leader, in `is` if given, not in `not`.
    Leader {
        is: Option<Vec<NodeId>>,
        not: Vec<NodeId>,
    },
    /// Each observer (all live nodes but the peers, when `None`) reports every peer down
    /// (`peer_down`/`peer_left`, or a view without it) after the reference time.
    Detected {
        peers: Vec<NodeId>,
        by: Option<Vec<NodeId>>,
    },
    /// Each node is live and follows a live leader whose view includes it.
    Rejoined { nodes: Vec<NodeId> },
    /// Each node is dead or no longer leader (a paused node has not stepped down).
    SteppedDown { nodes: Vec<NodeId> },
    /// None of these nodes wins an election during `duration_ms`.
    NoLeader {
        among: Vec<NodeId>,
        duration_ms: u64,
    },
    /// None of these nodes commits an index above the highest any node had committed when
    /// the window began, during `duration_ms`.
    NoCommit {
        among: Vec<NodeId>,
        duration_ms: u64,
    },
    /// The leader at the window's start stays leader, and no node wins an election, during
    /// `duration_ms`.
    NoLeaderChange { duration_ms: u64 },
    /// One leader, one epoch, one view among all live nodes.
    Converged,
}

impl Goal {
    /// A condition over a window (`no_leader`, `no_commit`, `no_leader_change`): how long.
    pub fn window_ms(&self) -> Option<u64> {
        match self {
            Goal::NoLeader { duration_ms, .. }
            | Goal::NoCommit { duration_ms, .. }
            | Goal::NoLeaderChange { duration_ms } => Some(*duration_ms),
            _ => None,
        }
    }

    /// Whether the window counts from the step's own start rather than from the fault
    /// before it. `no_commit` does: a fault is stamped just before its rules go in, and a
    /// commit decided while they are going in (an ack already on the wire) is not one the
    /// fault failed to stop.
    pub fn counts_from_step_start(&self) -> bool {
        matches!(self, Goal::NoCommit { .. })
    }
}

/// What the runner passes to [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub goal: Goal,
    pub within_ms: u64,
}

/// Resolves a step's condition against the state observed when the step starts.
pub fn resolve_expectation<R: Rng + ?Sized>(
    step: &ExpectStep,
    settings: &crate::scenario::ClusterSettings,
    obs: &Observed,
    aliases: &Aliases,
    rng: &mut R,
) -> Result<Expectation, String> {
    let mut r = |t: &Target| resolve_target(t, obs, aliases, rng);
    let goal = match &step.condition {
        Condition::Leader(LeaderCondition::Any) => Goal::Leader {
            is: None,
            not: vec![],
        },
        Condition::Leader(LeaderCondition::Is(t)) => Goal::Leader {
            is: Some(r(t)?),
            not: vec![],
        },
        Condition::Leader(LeaderCondition::Not(t)) => Goal::Leader {
            is: None,
            not: r(t)?,
        },
        Condition::Detected { peer, by } => Goal::Detected {
            peers: r(peer)?,
            by: match by {
                Observers::AllLive => None,
                Observers::Nodes(t) => Some(r(t)?),
            },
        },
        Condition::Rejoined { node } => Goal::Rejoined { nodes: r(node)? },
        Condition::SteppedDown { node } => Goal::SteppedDown { nodes: r(node)? },
        Condition::NoLeader { among, duration } => Goal::NoLeader {
            among: r(among)?,
            duration_ms: duration.as_millis() as u64,
        },
        Condition::NoCommit { among, duration } => Goal::NoCommit {
            among: r(among)?,
            duration_ms: duration.as_millis() as u64,
        },
        Condition::NoLeaderChange { duration } => Goal::NoLeaderChange {
            duration_ms: duration.as_millis() as u64,
        },
        Condition::Converged => Goal::Converged,
    };
    Ok(Expectation {
        goal,
        within_ms: step.within.resolve(settings).as_millis() as u64,
    })
}

/// The state of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluation {
    /// Not met yet, and the deadline (plus [`LOG_LAG_MS`]) has not passed.
    Pending,
    /// Met `figure_ms` after the reference time, within the deadline.
    Met { figure_ms: u64 },
    /// Not met in time (`figure_ms` is set when it was met, but late), or violated.
    Failed {
        reason: String,
        figure_ms: Option<u64>,
    },
}

/// What happened after the reference time that a condition needs beyond the state.
#[derive(Default)]
struct SinceTracker {
    /// (observer, peer) pairs reported down after the reference time.
    reported_down: BTreeSet<(NodeId, NodeId)>,
    /// (node, ts, epoch) of leadership wins after the reference time.
    wins: Vec<(NodeId, u64, u64)>,
}

impl SinceTracker {
    fn note(&mut self, record: &Record) {
        if let Record::Node(ev) = record {
            match &ev.event {
                Event::PeerDown { peer, .. } | Event::PeerLeft { peer } => {
                    self.reported_down.insert((ev.node, *peer));
                }
                Event::ViewChanged { members } => {
                    // A view without the peer counts as having noticed it is gone.
                    for p in 1..=64u64 {
                        let p = NodeId(p);
                        if p != ev.node && !members.contains(&p) {
                            self.reported_down.insert((ev.node, p));
                        }
                    }
                }
                Event::LeaderElected { leader, .. } if *leader == ev.node => {
                    self.wins.push((ev.node, ev.ts_ms, ev.epoch));
                }
                Event::RoleChanged {
                    to: Role::Leader, ..
                } => self.wins.push((ev.node, ev.ts_ms, ev.epoch)),
                _ => {}
            }
        }
    }
}

fn goal_met(goal: &Goal, obs: &Observed, since: &SinceTracker) -> bool {
    match goal {
        Goal::Leader { is, not } => obs
            .established_leaders()
            .iter()
            .any(|l| is.as_ref().is_none_or(|set| set.contains(l)) && !not.contains(l)),
        Goal::Detected { peers, by } => {
            let observers: Vec<NodeId> = match by {
                Some(b) => b.clone(),
                None => obs
                    .live_nodes()
                    .into_iter()
                    .filter(|n| !peers.contains(n))
                    .collect(),
            };
            observers.iter().all(|o| {
                peers
                    .iter()
                    .all(|p| o == p || since.reported_down.contains(&(*o, *p)))
            })
        }
        Goal::Rejoined { nodes } => nodes.iter().all(|n| {
            let Some(ns) = obs.node(*n) else {
                return false;
            };
            let Some((l, _)) = ns.leader else {
                return false;
            };
            obs.is_live(*n)
                && obs.node(l).is_some_and(|ls| {
                    obs.is_live(l) && ls.role == Role::Leader && ls.view.contains(n)
                })
        }),
        Goal::SteppedDown { nodes } => nodes.iter().all(|n| {
            obs.node(*n)
                .is_none_or(|s| !obs.is_up(*n) || (!obs.is_paused(*n) && s.role != Role::Leader))
        }),
        Goal::NoLeader { .. } | Goal::NoCommit { .. } | Goal::NoLeaderChange { .. } => false,
        Goal::Converged => obs.converged().is_some(),
    }
}

/// Evaluates an expectation against the history: the state folded from records before
/// `since_ts_ms` (the reference time: the runner uses the last fault before the step, or
/// the step's start), then record by record until the condition holds.
pub fn evaluate(
    exp: &Expectation,
    records: &[Record],
    since_ts_ms: u64,
    now_ts_ms: u64,
) -> Evaluation {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.ts_ms());
    let mut obs = Observed::new();
    let mut since = SinceTracker::default();
    // Records at the reference instant itself (the fault) belong to the starting state:
    // after a resume, the zombie is awake from the first check on.
    let split = sorted.partition_point(|r| r.ts_ms() <= since_ts_ms);
    for r in &sorted[..split] {
        obs.apply(r);
        if r.ts_ms() == since_ts_ms {
            since.note(r);
        }
    }
    if let Some(duration_ms) = exp.goal.window_ms() {
        let end = since_ts_ms + duration_ms;
        let window = &sorted[split..sorted.partition_point(|r| r.ts_ms() <= end)];
        let violation = match &exp.goal {
            Goal::NoCommit { among, .. } => first_commit(among, &sorted[..split], window),
            Goal::NoLeaderChange { .. } => first_leader_change(&obs, window),
            _ => None,
        };
        if let Some((ts, what)) = violation {
            let at = ts.saturating_sub(since_ts_ms);
            return Evaluation::Failed {
                reason: format!("{what} {at} ms into the {duration_ms} ms window"),
                figure_ms: Some(at),
            };
        }
    }
    if let Goal::NoLeader { among, duration_ms } = &exp.goal {
        let end = since_ts_ms + duration_ms;
        for r in &sorted[split..] {
            if r.ts_ms() > end {
                break;
            }
            since.note(r);
        }
        if let Some((n, ts, epoch)) = since.wins.iter().find(|(n, _, _)| among.contains(n)) {
            return Evaluation::Failed {
                reason: format!(
                    "node {n} became leader (epoch {epoch}) {} ms into the {} ms window",
                    ts.saturating_sub(since_ts_ms),
                    duration_ms
                ),
                figure_ms: Some(ts.saturating_sub(since_ts_ms)),
            };
        }
        return if now_ts_ms >= end + LOG_LAG_MS {
            Evaluation::Met {
                figure_ms: *duration_ms,
            }
        } else {
            Evaluation::Pending
        };
    }
    if let Some(duration_ms) = exp.goal.window_ms() {
        return if now_ts_ms >= since_ts_ms + duration_ms + LOG_LAG_MS {
            Evaluation::Met {
                figure_ms: duration_ms,
            }
        } else {
            Evaluation::Pending
        };
    }
    let mut met_at = if goal_met(&exp.goal, &obs, &since) {
        Some(since_ts_ms)
    } else {
        None
    };
    if met_at.is_none() {
        for r in &sorted[split..] {
            since.note(r);
            if obs.apply(r) && goal_met(&exp.goal, &obs, &since) {
                met_at = Some(r.ts_ms());
                break;
            }
        }
    }
    match met_at {
        Some(ts) => {
            let figure_ms = ts.saturating_sub(since_ts_ms);
            if figure_ms <= exp.within_ms {
                Evaluation::Met { figure_ms }
            } else {
                Evaluation::Failed {
                    reason: format!("met after {figure_ms} ms, deadline {} ms", exp.within_ms),
                    figure_ms: Some(figure_ms),
                }
            }
        }
        None if now_ts_ms > since_ts_ms + exp.within_ms + LOG_LAG_MS => Evaluation::Failed {
            reason: format!(
                "not met within {} ms: {}",
                exp.within_ms,
                describe_state(&exp.goal, &obs)
            ),
            figure_ms: None,
        },
        None => Evaluation::Pending,
    }
}

/// The first `committed` event in `window` by a node of `among` at an index above every
/// index committed `before` it (by any node): a new entry, not a lagging follower catching
/// up on old ones.
fn first_commit(among: &[NodeId], before: &[&Record], window: &[&Record]) -> Option<(u64, String)> {
    let committed = |r: &Record| match r {
        Record::Node(ev) => match &ev.event {
            Event::Committed { index, op, .. } => Some((ev.node, *index, op.clone(), ev.epoch)),
            _ => None,
        },
        _ => None,
    };
    let high = before
        .iter()
        .filter_map(|r| committed(r))
        .map(|c| c.1)
        .max()
        .unwrap_or(0);
    window.iter().find_map(|r| {
        let (node, index, op, epoch) = committed(r)?;
        (among.contains(&node) && index > high).then(|| {
            (
                r.ts_ms(),
                format!(
                    "node {node} committed index {index} ({op}, epoch {epoch}), beyond the \
                     highest index committed anywhere when the window began ({high}),"
                ),
            )
        })
    })
}

/// The first change of leader in `window`, from the state `at_start`: a win by any node
/// other than the leader of the start (or by it in a new epoch), or that leader stepping
/// down. No leader at the start is a change already.
fn first_leader_change(at_start: &Observed, window: &[&Record]) -> Option<(u64, String)> {
    let Some(leader) = at_start.current_leader() else {
        return Some((
            at_start.last_ts,
            format!(
                "no leader to keep at the start of the window ({}):",
                describe_state(&Goal::NoLeaderChange { duration_ms: 0 }, at_start)
            ),
        ));
    };
    let epoch = at_start.node(leader).map_or(0, |n| n.epoch);
    window.iter().find_map(|r| {
        let Record::Node(ev) = r else {
            return None;
        };
        let won = match &ev.event {
            Event::LeaderElected { leader: l, .. } => *l == ev.node,
            Event::RoleChanged {
                to: Role::Leader, ..
            } => true,
            _ => false,
        };
        if won && (ev.node, ev.epoch) != (leader, epoch) {
            return Some((
                ev.ts_ms,
                format!(
                    "node {} became leader (epoch {}) while node {leader} led epoch {epoch},",
                    ev.node, ev.epoch
                ),
            ));
        }
        match &ev.event {
            Event::RoleChanged {
                from: Role::Leader,
                to,
                reason,
            } if ev.node == leader && *to != Role::Leader => Some((
                ev.ts_ms,
                format!("the leader, node {leader} (epoch {epoch}), stepped down ({reason})"),
            )),
            _ => None,
        }
    })
}

/// A short account of the state, for failure messages.
pub fn describe_state(goal: &Goal, obs: &Observed) -> String {
    let leaders = obs.leaders();
    let mut s = format!(
        "live nodes {:?}, leaders {:?}",
        obs.live_nodes().iter().map(|n| n.0).collect::<Vec<_>>(),
        leaders.iter().map(|n| n.0).collect::<Vec<_>>()
    );
    if let Goal::Detected { peers, .. } = goal {
        s.push_str(&format!(
            ", down peers reported: {}",
            obs.live_nodes()
                .iter()
                .filter_map(|n| obs.node(*n))
                .map(|n| format!(
                    "{}:{:?}",
                    n.id,
                    n.down_peers
                        .iter()
                        .filter(|p| peers.contains(p))
                        .map(|p| p.0)
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::FaultAction;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|n| NodeId(*n)).collect()
    }

    /// 3 nodes; node 3 leads epoch 1 with everyone's agreement at t=500.
    fn steady() -> Vec<Record> {
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        r.extend(elect(500, 3, 1, &[1, 2], (0, 0)));
        for n in 1..=3 {
            let role = if n == 3 { Role::Leader } else { Role::Follower };
            r.push(view(505, n, 1, role, &[1, 2, 3]));
        }
        r
    }

    #[test]
    fn folds_leader_followers_and_ring() {
        let o = Observed::from_records(&steady());
        assert_eq!(o.current_leader(), Some(NodeId(3)));
        assert_eq!(o.followers(), ids(&[1, 2]));
        assert_eq!(o.ring_successor(NodeId(3)), Some(NodeId(1)));
        assert_eq!(o.ring_successor(NodeId(1)), Some(NodeId(2)));
        assert_eq!(o.majority(), ids(&[1, 3]));
        assert_eq!(o.minority(), ids(&[2]));
        assert_eq!(o.converged(), Some(NodeId(3)));
        let mut r = steady();
        r.push(fault(600, FaultAction::Pause, &[3]));
        let o = Observed::from_records(&r);
        assert_eq!(o.live_nodes(), ids(&[1, 2]));
        assert_eq!(o.current_leader(), None);
        assert_eq!(o.converged(), None);
    }

    #[test]
    fn a_cut_followed_by_a_partition_is_judged_as_applied() {
        // What the nemesis applies: the partition adds to the cut, it does not clear it.
        let mut r = steady();
        let mut cut = fault(600, FaultAction::Cut, &[3]);
        if let Record::Fault(f) = &mut cut {
            f.to = ids(&[1]);
        }
        r.push(cut);
        r.push(partition(700, &[&[1, 3], &[2]]));
        let o = Observed::from_records(&r);
        assert!(!o.can_reach(NodeId(3), NodeId(1)), "the cut must survive");
        assert!(o.can_reach(NodeId(1), NodeId(3)));
        assert!(!o.can_reach(NodeId(2), NodeId(3)));
        assert!(!o.faults().talk(NodeId(1), NodeId(3)));
        r.push(fault(800, FaultAction::Heal, &[]));
        let o = Observed::from_records(&r);
        assert!(o.can_reach(NodeId(3), NodeId(1)));
    }

    #[test]
    fn resolves_targets_and_groups() {
        let o = Observed::from_records(&steady());
        let mut rng = rand::thread_rng();
        let mut aliases = Aliases::new();
        aliases.insert("old".into(), ids(&[2]));
        let r = |t: Target, rng: &mut rand::rngs::ThreadRng| resolve_target(&t, &o, &aliases, rng);
        assert_eq!(r(Target::Leader, &mut rng).unwrap(), ids(&[3]));
        assert_eq!(
            r(Target::RingSuccessorOfLeader, &mut rng).unwrap(),
            ids(&[1])
        );
        assert_eq!(r(Target::Alias("old".into()), &mut rng).unwrap(), ids(&[2]));
        assert!(ids(&[1, 2]).contains(&r(Target::RandomFollower, &mut rng).unwrap()[0]));
        assert!(r(Target::Alias("nope".into()), &mut rng).is_err());
        let g = resolve_groups(
            &[Group::Targets(vec![Target::Leader]), Group::Rest],
            &o,
            &aliases,
            &mut rng,
        )
        .unwrap();
        assert_eq!(g, vec![ids(&[3]), ids(&[1, 2])]);
        let overlap = resolve_groups(
            &[
                Group::Targets(vec![Target::Leader]),
                Group::Targets(vec![Target::All]),
            ],
            &o,
            &aliases,
            &mut rng,
        );
        assert!(overlap.unwrap_err().contains("two partition groups"));
        // Two random followers in one group are two nodes, every time (3 leads; 1, 2 follow).
        for _ in 0..20 {
            let g = resolve_groups(
                &[
                    Group::Targets(vec![Target::RandomFollower, Target::RandomFollower]),
                    Group::Rest,
                ],
                &o,
                &aliases,
                &mut rng,
            )
            .unwrap();
            assert_eq!(g, vec![ids(&[1, 2]), ids(&[3])]);
        }
        // And a random follower of a later group avoids those named before.
        let g = resolve_groups(
            &[
                Group::Targets(vec![Target::Node(1)]),
                Group::Targets(vec![Target::RandomFollower]),
                Group::Rest,
            ],
            &o,
            &aliases,
            &mut rng,
        )
        .unwrap();
        assert_eq!(g, vec![ids(&[1]), ids(&[2]), ids(&[3])]);
    }

    fn exp(goal: Goal, within_ms: u64) -> Expectation {
        Expectation { goal, within_ms }
    }

    /// The leader is killed at 1000; 1 and 2 report it down at 1550/1600, 2 wins at 1700.
    fn failover() -> Vec<Record> {
        let mut r = steady();
        r.push(fault(1000, FaultAction::Kill, &[3]));
        r.push(peer_down(1550, 1, 3));
        r.push(peer_down(1600, 2, 3));
        r.push(view(1560, 1, 1, Role::Follower, &[1, 2]));
        r.push(view(1610, 2, 1, Role::Follower, &[1, 2]));
        r.extend(elect(1700, 2, 2, &[1], (0, 0)));
        r.sort_by_key(Record::ts_ms);
        r
    }

    #[test]
    fn leader_and_detection_conditions_measure_from_the_reference_time() {
        let r = failover();
        let not_old = exp(
            Goal::Leader {
                is: None,
                not: ids(&[3]),
            },
            1000,
        );
        assert_eq!(
            evaluate(&not_old, &r, 1000, 5000),
            Evaluation::Met { figure_ms: 702 }
        );
        let detected = exp(
            Goal::Detected {
                peers: ids(&[3]),
                by: None,
            },
            700,
        );
        assert_eq!(
            evaluate(&detected, &r, 1000, 5000),
            Evaluation::Met { figure_ms: 600 }
        );
        // Before the reports, it is pending until the deadline (plus log lag) passes.
        let early: Vec<Record> = r.iter().filter(|x| x.ts_ms() < 1500).cloned().collect();
        assert_eq!(evaluate(&detected, &early, 1000, 1800), Evaluation::Pending);
        assert!(matches!(
            evaluate(&detected, &early, 1000, 1000 + 700 + LOG_LAG_MS + 1),
            Evaluation::Failed {
                figure_ms: None,
                ..
            }
        ));
        // Met, but late.
        let tight = exp(
            Goal::Leader {
                is: None,
                not: ids(&[3]),
            },
            500,
        );
        assert!(matches!(
            evaluate(&tight, &r, 1000, 5000),
            Evaluation::Failed {
                figure_ms: Some(702),
                ..
            }
        ));
    }

    #[test]
    fn no_leader_fails_when_a_minority_node_wins() {
        let r = failover();
        let among_1 = exp(
            Goal::NoLeader {
                among: ids(&[1]),
                duration_ms: 2000,
            },
            2000,
        );
        assert_eq!(evaluate(&among_1, &r, 1000, 2000), Evaluation::Pending);
        assert_eq!(
            evaluate(&among_1, &r, 1000, 3000 + LOG_LAG_MS),
            Evaluation::Met { figure_ms: 2000 }
        );
        let among_2 = exp(
            Goal::NoLeader {
                among: ids(&[2]),
                duration_ms: 2000,
            },
            2000,
        );
        assert!(matches!(
            evaluate(&among_2, &r, 1000, 1800),
            Evaluation::Failed {
                figure_ms: Some(700),
                ..
            }
        ));
    }

    #[test]
    fn several_targets_resolve_at_one_instant_to_distinct_nodes() {
        // 5 nodes, node 5 leads.
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3, 4, 5])];
        r.extend(elect(500, 5, 1, &[1, 2, 3, 4], (0, 0)));
        let o = Observed::from_records(&r);
        let aliases = Aliases::new();
        for seed in 0..50 {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let t = Target::Several(vec![
                Target::Leader,
                Target::RandomFollower,
                Target::RandomFollower,
            ]);
            let got = resolve_target(&t, &o, &aliases, &mut rng).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], NodeId(5));
            assert_ne!(
                got[1], got[2],
                "seed {seed}: two random followers must differ"
            );
            assert!(!got[1..].contains(&NodeId(5)));
        }
        let mut rng = rand::thread_rng();
        // The leader named twice, by two targets: refused, naming both.
        let t = Target::Several(vec![Target::Node(5), Target::Leader]);
        let e = resolve_target(&t, &o, &aliases, &mut rng).unwrap_err();
        assert!(e.contains("node 5 is both `node 5` and `leader`"), "{e}");
        // More random followers than there are: refused, not a repeat.
        let t = Target::Several(vec![Target::RandomFollower; 5]);
        let e = resolve_target(&t, &o, &aliases, &mut rng).unwrap_err();
        assert!(e.contains("no live follower is left"), "{e}");
    }

    #[test]
    fn no_commit_fails_on_a_new_index_and_not_on_a_follower_catching_up() {
        let mut r = steady();
        r.push(committed(900, 3, 1, Role::Leader, 7, "m7"));
        r.push(committed(902, 1, 1, Role::Follower, 7, "m7"));
        // Window from 1000: node 2 catches up on index 7 (old), node 3 commits 8 (new).
        r.push(committed(1200, 2, 1, Role::Follower, 7, "m7"));
        r.push(committed(1500, 3, 1, Role::Leader, 8, "m8"));
        let among = |n: &[u64]| {
            exp(
                Goal::NoCommit {
                    among: ids(n),
                    duration_ms: 2000,
                },
                2000,
            )
        };
        assert_eq!(
            evaluate(&among(&[1, 2]), &r, 1000, 2000),
            Evaluation::Pending
        );
        assert_eq!(
            evaluate(&among(&[1, 2]), &r, 1000, 3000 + LOG_LAG_MS),
            Evaluation::Met { figure_ms: 2000 }
        );
        match evaluate(&among(&[3]), &r, 1000, 1600) {
            Evaluation::Failed { reason, figure_ms } => {
                assert_eq!(figure_ms, Some(500));
                assert!(reason.contains("node 3 committed index 8"), "{reason}");
                assert!(reason.contains("window began (7)"), "{reason}");
                assert!(
                    reason.contains("500 ms into the 2000 ms window"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        // After the window, a commit does not count.
        assert!(matches!(
            evaluate(&among(&[3]), &r, 1600, 3600 + LOG_LAG_MS),
            Evaluation::Met { .. }
        ));
    }

    #[test]
    fn no_leader_change_fails_on_a_new_win_a_step_down_or_no_leader() {
        let keep = exp(Goal::NoLeaderChange { duration_ms: 2000 }, 2000);
        // Steady under node 3: met once the window and the log lag have passed.
        let r = steady();
        assert_eq!(evaluate(&keep, &r, 1000, 2500), Evaluation::Pending);
        assert_eq!(
            evaluate(&keep, &r, 1000, 3000 + LOG_LAG_MS),
            Evaluation::Met { figure_ms: 2000 }
        );
        // The leader's own win at the window's start is no change.
        assert!(matches!(
            evaluate(&keep, &r, 500, 2500 + LOG_LAG_MS),
            Evaluation::Met { .. }
        ));
        // Node 2 wins epoch 2 at 1700 (the window from 900, before the kill at 1000).
        match evaluate(&keep, &failover(), 900, 1800) {
            Evaluation::Failed { reason, figure_ms } => {
                assert_eq!(figure_ms, Some(800));
                assert!(
                    reason.contains("node 2 became leader (epoch 2) while node 3 led epoch 1"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The leader steps down.
        let mut down = steady();
        down.push(ev(
            1300,
            3,
            1,
            Role::Follower,
            Event::RoleChanged {
                from: Role::Leader,
                to: Role::Follower,
                reason: "lost quorum".into(),
            },
        ));
        match evaluate(&keep, &down, 1000, 1400) {
            Evaluation::Failed { reason, .. } => {
                assert!(
                    reason.contains("node 3 (epoch 1), stepped down (lost quorum)"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // No leader at all at the start.
        let none = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        match evaluate(&keep, &none, 100, 200) {
            Evaluation::Failed { reason, .. } => {
                assert!(reason.contains("no leader to keep"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_woken_zombie_must_step_down() {
        let mut r = steady();
        r.push(fault(1000, FaultAction::Pause, &[3]));
        r.extend(elect(1700, 2, 2, &[1], (0, 0)));
        r.push(fault(3000, FaultAction::Resume, &[3]));
        let down = exp(Goal::SteppedDown { nodes: ids(&[3]) }, 700);
        // Paused counts as not stepped down; awake and still leader neither.
        assert_eq!(evaluate(&down, &r, 3000, 3100), Evaluation::Pending);
        r.push(ev(
            3150,
            3,
            2,
            Role::Follower,
            chat_node::events::Event::RoleChanged {
                from: Role::Leader,
                to: Role::Follower,
                reason: "newer epoch".into(),
            },
        ));
        assert_eq!(
            evaluate(&down, &r, 3000, 3200),
            Evaluation::Met { figure_ms: 150 }
        );
    }

    #[test]
    fn the_fault_at_the_reference_instant_is_part_of_the_starting_state() {
        let mut r = steady();
        r.push(fault(1000, FaultAction::Pause, &[3]));
        r.push(view(1600, 1, 1, Role::Follower, &[1, 2]));
        r.push(view(1600, 2, 1, Role::Follower, &[1, 2]));
        r.extend(elect(1700, 2, 2, &[1], (0, 0)));
        r.push(fault(3000, FaultAction::Resume, &[3]));
        r.sort_by_key(Record::ts_ms);
        let conv = exp(Goal::Converged, 2000);
        // Before the resume is applied, nodes 1 and 2 alone look converged; after it, the
        // woken zombie still claims leadership, so convergence has not happened yet.
        assert_eq!(
            evaluate(&conv, &r, 2999, 3100),
            Evaluation::Met { figure_ms: 0 }
        );
        assert_eq!(evaluate(&conv, &r, 3000, 3100), Evaluation::Pending);
    }

    #[test]
    fn a_restarted_leader_rejoins_only_through_its_new_incarnation() {
        // The restart is stamped as `docker start` is issued, before the node says anything.
        let mut r = failover();
        r.push(fault(3000, FaultAction::Restart, &[3]));
        let back = exp(Goal::Rejoined { nodes: ids(&[3]) }, 2000);
        // Its pre-crash state (leader of epoch 1, itself in its view) must not count.
        assert_eq!(evaluate(&back, &r, 3000, 3100), Evaluation::Pending);
        r.push(started(3200, 3, 3));
        r.push(ev(
            3400,
            3,
            2,
            Role::Follower,
            chat_node::events::Event::LeaderElected {
                leader: NodeId(2),
                votes: 0,
                credentials: creds(0, 0, 2),
            },
        ));
        r.push(view(3450, 2, 2, Role::Leader, &[1, 2, 3]));
        assert_eq!(
            evaluate(&back, &r, 3000, 3500),
            Evaluation::Met { figure_ms: 450 }
        );
    }

    #[test]
    fn rejoined_needs_a_leader_that_counts_the_node() {
        let mut r = failover();
        r.push(started(2990, 3, 3));
        r.push(fault(3000, FaultAction::Restart, &[3]));
        let back = exp(Goal::Rejoined { nodes: ids(&[3]) }, 2000);
        assert_eq!(evaluate(&back, &r, 3000, 3100), Evaluation::Pending);
        r.push(ev(
            3400,
            3,
            2,
            Role::Follower,
            chat_node::events::Event::LeaderElected {
                leader: NodeId(2),
                votes: 0,
                credentials: creds(0, 0, 2),
            },
        ));
        assert_eq!(evaluate(&back, &r, 3000, 3500), Evaluation::Pending);
        r.push(view(3450, 2, 2, Role::Leader, &[1, 2, 3]));
        assert_eq!(
            evaluate(&back, &r, 3000, 3500),
            Evaluation::Met { figure_ms: 450 }
        );
    }
}
