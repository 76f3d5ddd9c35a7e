//! Resolving step targets and judging `await`/`expect` conditions against the live view.

use super::view::View;
use crate::scenario::{Condition, Group, LeaderCondition, Observers, Target};
use rand::seq::SliceRandom;
use std::collections::{BTreeSet, HashMap};

/// What resolving needs besides the view.
pub struct Context<'a> {
    pub view: &'a View,
    pub all: &'a [u64],
    pub cluster_size: usize,
    pub quorum_none: bool,
    pub aliases: &'a HashMap<String, Vec<u64>>,
}

impl Context<'_> {
    fn majority_size(&self) -> usize {
        self.cluster_size / 2 + 1
    }

    /// The node ids a target names right now; an error says why none.
    pub fn resolve(&self, target: &Target) -> Result<Vec<u64>, String> {
        let leader = || {
            self.view
                .leader()
                .ok_or_else(|| format!("`{target}`: no leader is known right now"))
        };
        let ids = match target {
            Target::Leader => vec![leader()?],
            Target::Followers => {
                let l = leader()?;
                self.view.live().into_iter().filter(|id| *id != l).collect()
            }
            Target::RandomFollower => {
                let l = leader()?;
                let followers: Vec<u64> =
                    self.view.live().into_iter().filter(|id| *id != l).collect();
                followers
                    .choose(&mut rand::thread_rng())
                    .copied()
                    .into_iter()
                    .collect()
            }
            Target::Node(n) if self.all.contains(n) => vec![*n],
            Target::Node(n) => return Err(format!("there is no node {n}")),
            Target::Majority => self.majority(),
            Target::Minority => {
                let maj = self.majority();
                self.all
                    .iter()
                    .filter(|id| !maj.contains(id))
                    .copied()
                    .collect()
            }
            Target::All => self.all.to_vec(),
            Target::RingSuccessorOfLeader => {
                let l = leader()?;
                self.view.ring_successor(l).into_iter().collect()
            }
            Target::Alias(a) => self
                .aliases
                .get(a)
                .cloned()
                .ok_or_else(|| format!("alias `{a}` was never saved"))?,
        };
        if ids.is_empty() {
            return Err(format!("`{target}` names no node right now"));
        }
        Ok(ids)
    }

    /// The leader plus the lowest other ids up to a majority of the cluster size.
    fn majority(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self.view.leader().into_iter().collect();
        for id in self.all {
            if out.len() >= self.majority_size() {
                break;
            }
            if !out.contains(id) {
                out.push(*id);
            }
        }
        out.sort_unstable();
        out
    }

    /// Partition groups as node ids; `rest` gets every node not named elsewhere.
    pub fn resolve_groups(&self, groups: &[Group]) -> Result<Vec<Vec<u64>>, String> {
        let mut named = BTreeSet::new();
        let mut out = Vec::new();
        for g in groups {
            if let Group::Targets(ts) = g {
                let mut ids = Vec::new();
                for t in ts {
                    ids.extend(self.resolve(t)?);
                }
                ids.sort_unstable();
                ids.dedup();
                named.extend(ids.iter().copied());
                out.push(Some(ids));
            } else {
                out.push(None);
            }
        }
        let rest: Vec<u64> = self
            .all
            .iter()
            .filter(|id| !named.contains(id))
            .copied()
            .collect();
        Ok(out
            .into_iter()
            .map(|g| g.unwrap_or_else(|| rest.clone()))
            .collect())
    }
}

/// Where a condition stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Judgement {
    Pending(String),
    Met { at_ms: u64 },
    Failed(String),
}

/// Judges `condition` for a step that started at `since` (host ms), at `now`.
pub fn judge(ctx: &Context, condition: &Condition, since: u64, now: u64) -> Judgement {
    let v = ctx.view;
    match condition {
        Condition::Leader(which) => {
            let Some(l) = v.leader() else {
                return Judgement::Pending("no leader yet".into());
            };
            let needed = if ctx.quorum_none {
                1
            } else {
                ctx.majority_size()
            };
            let support = v.supporters(l).len();
            if support < needed {
                return Judgement::Pending(format!("leader {l} followed by {support}/{needed}"));
            }
            let ok = match which {
                LeaderCondition::Any => true,
                LeaderCondition::Is(t) => ctx.resolve(t).is_ok_and(|ids| ids.contains(&l)),
                LeaderCondition::Not(t) => ctx.resolve(t).is_ok_and(|ids| !ids.contains(&l)),
            };
            if ok {
                Judgement::Met {
                    at_ms: v.leader_since(l).max(since),
                }
            } else {
                Judgement::Pending(format!("leader is {l}"))
            }
        }
        Condition::Detected { peer, by } => {
            let peers = match ctx.resolve(peer) {
                Ok(p) => p,
                Err(e) => return Judgement::Failed(e),
            };
            let observers: Vec<u64> = match by {
                // A node that never heard of the peer cannot notice it is gone.
                Observers::AllLive => v
                    .live()
                    .into_iter()
                    .filter(|id| !peers.contains(id))
                    .filter(|id| peers.iter().all(|p| v.nodes[id].known.contains(p)))
                    .collect(),
                Observers::Nodes(t) => match ctx.resolve(t) {
                    Ok(ids) => ids,
                    Err(e) => return Judgement::Failed(e),
                },
            };
            let mut latest = since;
            for o in &observers {
                for p in &peers {
                    match v.nodes.get(o).and_then(|n| n.down.get(p)) {
                        Some(ts) if *ts >= since => latest = latest.max(*ts),
                        _ => {
                            return Judgement::Pending(format!(
                                "node {o} has not reported {p} down"
                            ))
                        }
                    }
                }
            }
            Judgement::Met { at_ms: latest }
        }
        Condition::Rejoined { node } => {
            let ids = match ctx.resolve(node) {
                Ok(ids) => ids,
                Err(e) => return Judgement::Failed(e),
            };
            let Some(l) = v.leader() else {
                return Judgement::Pending("no leader".into());
            };
            let mut latest = since;
            for id in ids {
                let Some(n) = v.nodes.get(&id).filter(|n| n.alive) else {
                    return Judgement::Pending(format!("node {id} is not running"));
                };
                let follows = id == l || n.leader.is_some_and(|(ld, _, _)| ld == l);
                let in_view = v.nodes[&l]
                    .members
                    .as_ref()
                    .is_some_and(|(m, _)| m.contains(&id));
                if !(follows && in_view) {
                    return Judgement::Pending(format!("node {id} not back in leader {l}'s view"));
                }
                latest = latest
                    .max(n.leader.map_or(0, |x| x.2))
                    .max(v.nodes[&l].members.as_ref().map_or(0, |m| m.1));
            }
            Judgement::Met { at_ms: latest }
        }
        Condition::SteppedDown { node } => {
            let ids = match ctx.resolve(node) {
                Ok(ids) => ids,
                Err(e) => return Judgement::Failed(e),
            };
            let mut latest = since;
            for id in ids {
                let Some(n) = v.nodes.get(&id) else { continue };
                if n.role == Some(chat_node::ids::Role::Leader) && n.alive {
                    return Judgement::Pending(format!("node {id} still acts as leader"));
                }
                latest = latest.max(n.stepped_down_ts.unwrap_or(since));
            }
            Judgement::Met { at_ms: latest }
        }
        Condition::NoLeader { among, duration } => {
            let ids = match ctx.resolve(among) {
                Ok(ids) => ids,
                Err(e) => return Judgement::Failed(e),
            };
            for id in &ids {
                if let Some((l, _, ts)) = v.nodes.get(id).and_then(|n| n.leader) {
                    if l == *id && ts >= since {
                        return Judgement::Failed(format!("node {id} became leader"));
                    }
                }
            }
            let end = since + duration.as_millis() as u64;
            if now >= end {
                Judgement::Met { at_ms: end }
            } else {
                Judgement::Pending("watching".into())
            }
        }
        Condition::Converged => {
            let Some(l) = v.leader() else {
                return Judgement::Pending("no leader".into());
            };
            let live = v.live();
            let support = v.supporters(l);
            if support.len() != live.len() {
                return Judgement::Pending(format!(
                    "{} of {} live nodes follow leader {l}",
                    support.len(),
                    live.len()
                ));
            }
            let live_set: BTreeSet<u64> = live.iter().copied().collect();
            let mut latest = since;
            for id in &live {
                match &v.nodes[id].members {
                    Some((m, ts)) if *m == live_set => latest = latest.max(*ts),
                    _ => return Judgement::Pending(format!("node {id}'s view differs")),
                }
            }
            Judgement::Met {
                at_ms: latest.max(v.leader_since(l)),
            }
        }
    }
}
