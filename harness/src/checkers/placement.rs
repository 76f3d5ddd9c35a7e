//! Where the users were served, and whether they had to move (issue 12). Every server serves
//! clients, so a user reconnects only when **its own** server failed it: the server was
//! killed, stopped, paused, isolated, cut off or put on a side of a partition without a
//! majority. A leader change alone must cost the users on the other servers nothing.
//!
//! Figures, measured in every run with users: logins per server (where each user was last
//! served), reconnects (logins after the first that no `online` step or logout explains), and
//! reassignment — from the fault that displaced a user to its first acknowledged message on
//! its new server. Listed in `checks:`, every reconnect must be explained by a fault on the
//! user's server; with `within:`, every reassignment must be within that deadline.

use super::availability::p50_max;
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
        let times: Vec<u64> = all.iter().filter_map(|r| r.reassigned_ms).collect();
        let mut figure = format!(
            "users per server [{per_server}]; {} reconnects ({} unexplained)",
            all.len(),
            unexplained.len()
        );
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
        let mut result = CheckResult::new(
            "placement",
            unexplained.is_empty() && late.is_empty(),
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
        result.sample("reassignment_ms", times.iter().map(|t| *t as f64));
        result.sample("reconnects", [all.len() as f64]);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::checkers::ResolvedDeadline;

    fn login(ts: u64, user: &str, node: u64) -> Record {
        client(
            ts,
            user,
            ClientAction::Login {
                node: Some(NodeId(node)),
                mailbox: 0,
            },
        )
    }

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
