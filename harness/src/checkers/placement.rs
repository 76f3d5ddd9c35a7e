//! Where the users were served, and whether they had to move (issue 12). Every server serves
//! clients, so a user reconnects only when **its own** server failed it: the server was
//! killed, stopped, paused, isolated, cut off or put on a side of a partition without a
//! majority. A leader change alone must cost the users on the other servers nothing.
//!
//! Figures, measured in every run with users: logins per server (where each user was last
//! served), clients per server over time ([`super::load`]), reconnects (logins after the
//! first that no `online` step or logout explains), and reassignment — from the fault that
//! displaced a user to its first acknowledged message on its new server. Every user on a
//! server that is killed or stopped is displaced, whether or not it ever logs in again.
//! Listed in `checks:`, every reconnect must be explained by a fault on the user's server;
//! with `within:`, every reassignment (of every displaced user too) must be within that
//! deadline.

use super::availability::p50_max;
use super::load;
use super::{CheckContext, CheckResult, Checker};
use crate::history::{ClientAction, FaultAction, FaultRecord, Record};
use crate::scenario::{ClusterSettings, Deadline};
use chat_node::ids::NodeId;
use std::collections::BTreeMap;

/// One login after the user's first, and what explains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reconnect {
    pub user: String,
    pub ts_ms: u64,
    /// The server the user was on before.
    pub from: Option<NodeId>,
    pub to: Option<NodeId>,
    /// The fault on `from` since the previous login, if any (its time).
    pub cause: Option<u64>,
    /// Cause to the first ack after this login.
    pub reassigned_ms: Option<u64>,
}

/// Whether `fault` took `node` away from its clients.
fn fails(fault: &FaultRecord, node: NodeId, nodes: usize) -> bool {
    if fault.action == FaultAction::Start || fault.action.is_repair() {
        return false;
    }
    if fault.action == FaultAction::Partition {
        let majority = nodes / 2 + 1;
        return fault
            .groups
            .iter()
            .any(|g| g.contains(&node) && g.len() < majority);
    }
    fault.nodes.contains(&node) || fault.to.contains(&node)
}

/// Every reconnect of the history, in time order.
pub fn reconnects(records: &[Record], nodes: usize) -> Vec<Reconnect> {
    // Per user: the server of the last login, when, and whether the scenario took the user
    // away since (an `offline` step or a logout: the next login is not a reconnect).
    let mut last: BTreeMap<&str, (Option<NodeId>, u64, bool)> = BTreeMap::new();
    let mut out: Vec<Reconnect> = Vec::new();
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    let faults: Vec<&FaultRecord> = records
        .iter()
        .filter_map(|r| match r {
            Record::Fault(f) => Some(f),
            _ => None,
        })
        .collect();
    for r in records {
        let Record::Client(c) = r else { continue };
        match &c.action {
            ClientAction::Offline | ClientAction::Logout => {
                if let Some(l) = last.get_mut(c.user.as_str()) {
                    l.2 = true;
                }
            }
            ClientAction::Login { node, .. } => {
                if let Some((from, since, away)) = last.get(c.user.as_str()).copied() {
                    if !away {
                        let cause = from.and_then(|n| {
                            faults
                                .iter()
                                .find(|f| {
                                    (since..=c.ts_ms).contains(&f.ts_ms) && fails(f, n, nodes)
                                })
                                .map(|f| f.ts_ms)
                        });
                        open.insert(c.user.as_str(), out.len());
                        out.push(Reconnect {
                            user: c.user.clone(),
                            ts_ms: c.ts_ms,
                            from,
                            to: *node,
                            cause,
                            reassigned_ms: None,
                        });
                    }
                }
                last.insert(c.user.as_str(), (*node, c.ts_ms, false));
            }
            ClientAction::Acked { .. } => {
                if let Some(i) = open.remove(c.user.as_str()) {
                    let rc = &mut out[i];
                    rc.reassigned_ms = rc.cause.map(|t| c.ts_ms.saturating_sub(t));
                }
            }
            _ => {}
        }
    }
    out
}

/// A user whose server's process ended (kill, stop) while the user was on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Displaced {
    pub user: String,
    pub from: NodeId,
    pub fault_ts: u64,
    /// The fault to the first ack after the user's next login; `None`: none came.
    pub reassigned_ms: Option<u64>,
}

/// Every user a kill or stop displaced, whether or not it logged in again (a user that
/// never did is the one a reconnect-based figure cannot see). A user the scenario takes
/// offline before it is placed again is not counted.
pub fn displaced(records: &[Record]) -> Vec<Displaced> {
    let mut on: BTreeMap<&str, NodeId> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match r {
            Record::Client(c) => match &c.action {
                ClientAction::Login {
                    node: Some(node), ..
                } => {
                    on.insert(c.user.as_str(), *node);
                }
                ClientAction::Logout | ClientAction::Offline => {
                    on.remove(c.user.as_str());
                }
                _ => {}
            },
            Record::Fault(f) if matches!(f.action, FaultAction::Kill | FaultAction::Stop) => {
                let hit: Vec<(&str, NodeId)> = on
                    .iter()
                    .filter(|(_, n)| f.nodes.contains(n))
                    .map(|(u, n)| (*u, *n))
                    .collect();
                for (user, from) in hit {
                    on.remove(user);
                    if let Some(reassigned_ms) = placed_again(&records[i + 1..], user, f.ts_ms) {
                        out.push(Displaced {
                            user: user.to_string(),
                            from,
                            fault_ts: f.ts_ms,
                            reassigned_ms,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// After a fault at `since`: `Some(Some(ms))` from it to `user`'s first ack after its next
/// login, `Some(None)` if that never came, `None` if the user went offline first.
fn placed_again(later: &[Record], user: &str, since: u64) -> Option<Option<u64>> {
    let mut logged_in = false;
    for r in later {
        let Record::Client(c) = r else { continue };
        if c.user != user {
            continue;
        }
        match &c.action {
            ClientAction::Offline | ClientAction::Logout if !logged_in => return None,
            ClientAction::Login { .. } => logged_in = true,
            ClientAction::Acked { .. } if logged_in => {
                return Some(Some(c.ts_ms.saturating_sub(since)))
            }
            _ => {}
        }
    }
    Some(None)
}

/// Where each user was last logged in: (server, users).
fn served_by(records: &[Record]) -> BTreeMap<Option<NodeId>, usize> {
    let mut at: BTreeMap<&str, Option<NodeId>> = BTreeMap::new();
    for r in records {
        if let Record::Client(c) = r {
            if let ClientAction::Login { node, .. } = &c.action {
                at.insert(c.user.as_str(), *node);
            }
        }
    }
    let mut count = BTreeMap::new();
    for node in at.values() {
        *count.entry(*node).or_insert(0) += 1;
    }
    count
}

/// The `placement` checker.
pub struct Placement;

impl Checker for Placement {
    fn name(&self) -> &'static str {
        "placement"
    }
    fn synonyms(&self) -> &'static [&'static str] {
        &["reconnects"]
    }
    fn default_deadline(&self, _c: &ClusterSettings) -> Option<Deadline> {
        None
    }
    fn always_measured(&self) -> bool {
        true
    }
    fn check(&self, cx: &CheckContext) -> CheckResult {
        let nodes = cx.scenario.cluster.nodes;
        let all = reconnects(cx.records, nodes);
        let served = served_by(cx.records);
        let per_server = served
            .iter()
            .map(|(n, k)| match n {
                Some(n) => format!("n{}: {k}", n.0),
                None => format!("?: {k}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let unexplained: Vec<&Reconnect> = all.iter().filter(|r| r.cause.is_none()).collect();
        let moved = displaced(cx.records);
        let mut times: Vec<u64> = all.iter().filter_map(|r| r.reassigned_ms).collect();
        // A displaced user that logged in again is a reconnect already: count it once.
        times.extend(
            moved
                .iter()
                .filter(|d| {
                    !all.iter()
                        .any(|r| r.user == d.user && r.cause == Some(d.fault_ts))
                })
                .filter_map(|d| d.reassigned_ms),
        );
        let mut figure = format!(
            "users per server [{per_server}]; {} reconnects ({} unexplained)",
            all.len(),
            unexplained.len()
        );
        if !moved.is_empty() {
            let again = moved.iter().filter(|d| d.reassigned_ms.is_some()).count();
            figure.push_str(&format!(
                "; {} displaced by crashes, {again} acknowledged again",
                moved.len()
            ));
        }
        if let Some((p50, max)) = p50_max(&times) {
            figure.push_str(&format!("; reassignment p50 {p50} ms, max {max} ms"));
        }
        let late: Vec<&Reconnect> = match &cx.deadline {
            Some(d) => all
                .iter()
                .filter(|r| r.cause.is_some() && r.reassigned_ms.is_none_or(|ms| ms > d.ms))
                .collect(),
            None => Vec::new(),
        };
        let stranded: Vec<&Displaced> = moved
            .iter()
            .filter(|d| match (&cx.deadline, d.reassigned_ms) {
                (_, None) => true,
                (Some(dl), Some(ms)) => ms > dl.ms,
                (None, Some(_)) => false,
            })
            .collect();
        let mut result = CheckResult::new(
            "placement",
            unexplained.is_empty() && late.is_empty() && stranded.is_empty(),
            figure,
        );
        if let Some(d) = &cx.deadline {
            result.deadline = Some(d.label.clone());
            if let Some(max) = times.iter().max() {
                result.headroom_ms = Some(d.ms as i64 - *max as i64);
            }
        }
        for r in unexplained {
            result.details.push(format!(
                "{} logged in again at {} ms ({} -> {}) though no fault took its server away",
                r.user,
                r.ts_ms,
                r.from.map_or("?".into(), |n| format!("n{}", n.0)),
                r.to.map_or("?".into(), |n| format!("n{}", n.0)),
            ));
        }
        for r in late {
            result.details.push(format!(
                "{} was reassigned {} after its server failed",
                r.user,
                r.reassigned_ms
                    .map_or("never (no ack)".into(), |ms| format!("{ms} ms")),
            ));
        }
        for d in &stranded {
            result.details.push(format!(
                "{} was displaced from n{} at {} ms and {}",
                d.user,
                d.from.0,
                d.fault_ts,
                d.reassigned_ms
                    .map_or("never acknowledged again".into(), |ms| format!(
                        "acknowledged again only after {ms} ms"
                    )),
            ));
        }
        let t0 = cx.records.first().map_or(0, Record::ts_ms);
        let points = load::load_over_time(cx.records);
        for line in load::summary(&points, cx.records, t0) {
            result.details.push(format!("clients per server at {line}"));
        }
        result.sample("reassignment_ms", times.iter().map(|t| *t as f64));
        result.sample("displaced", [moved.len() as f64]);
        result.sample("reconnects", [all.len() as f64]);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::ResolvedDeadline;

    fn run(records: &[Record], deadline: Option<u64>) -> CheckResult {
        let s = scenario_nodes("placement", 5);
        let cx = CheckContext {
            scenario: &s,
            records,
            deadline: deadline.map(|ms| ResolvedDeadline {
                ms,
                label: format!("{ms}ms"),
            }),
        };
        Placement.check(&cx)
    }

    #[test]
    fn a_reconnect_is_explained_only_by_a_fault_on_the_users_own_server() {
        // u1 on n2, u2 on n3; the leader n1 is killed. u1 moving is not explained.
        let mut records = vec![
            login(100, "u1", 2),
            login(100, "u2", 3),
            fault(1000, FaultAction::Kill, &[1]),
            login(1500, "u1", 4),
            acked(1600, "u1", "m1", 5),
        ];
        let r = run(&records, None);
        assert!(!r.passed, "{r:?}");
        assert!(r.details[0].contains("u1"), "{:?}", r.details);
        // The same move after a kill of u1's own server is a reassignment, measured.
        records[2] = fault(1000, FaultAction::Kill, &[2]);
        let r = run(&records, None);
        assert!(r.passed, "{r:?}");
        assert!(r.figure.contains("reassignment p50 600 ms"), "{}", r.figure);
        // With a deadline, a slow reassignment fails.
        assert!(!run(&records, Some(500)).passed);
        assert!(run(&records, Some(700)).passed);
    }

    #[test]
    fn a_displaced_user_that_never_logs_in_again_fails_the_deadline() {
        // u1 and u2 on n2, which is killed; u1 is placed on n3, u2 is never seen again.
        let records = vec![
            login(100, "u1", 2),
            login(100, "u2", 2),
            fault(1000, FaultAction::Kill, &[2]),
            login(1300, "u1", 3),
            acked(1400, "u1", "m1", 5),
        ];
        let r = run(&records, Some(1500));
        assert!(!r.passed, "{r:?}");
        assert!(
            r.figure
                .contains("2 displaced by crashes, 1 acknowledged again"),
            "{}",
            r.figure
        );
        assert!(
            r.details
                .iter()
                .any(|d| d.contains("u2") && d.contains("never")),
            "{:?}",
            r.details
        );
        assert!(
            r.details
                .iter()
                .any(|d| d == "clients per server at 0.9 s after kill n2: none"),
            "{:?}",
            r.details
        );
        // Once u2 is acknowledged on a new server (700 ms after the crash) it counts.
        let mut records = records;
        records.push(login(1600, "u2", 4));
        records.push(acked(1700, "u2", "m1", 6));
        assert!(!run(&records, Some(600)).passed);
        let r = run(&records, Some(1500));
        assert!(r.passed, "{r:?}");
        assert_eq!(r.headroom_ms, Some(800));
    }

    #[test]
    fn a_minority_side_explains_a_move_and_an_offline_step_is_no_reconnect() {
        let records = vec![
            login(100, "u1", 2),
            login(100, "u2", 3),
            partition(1000, &[&[1, 3, 4], &[2, 5]]),
            login(1500, "u1", 1),
            client(2000, "u2", ClientAction::Offline),
            login(2500, "u2", 3),
        ];
        let r = run(&records, None);
        assert!(r.passed, "{r:?}");
        assert!(
            r.figure.contains("1 reconnects (0 unexplained)"),
            "{}",
            r.figure
        );
    }
}
