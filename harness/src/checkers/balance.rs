//! Whether the users ended up spread over the live servers (issue 12: "the leader assigns it
//! to the least-loaded live server"). With `placement: assigned` every user first asks the
//! same server, so without a working assignment they would all stay there; after a crash the
//! displaced users must land on the emptiest survivors, not all on one.
//!
//! Property: at the end of the run, the users per live server (where each user is logged in
//! then; a user whose server was killed or stopped and who has not logged in again is on
//! none) differ by at most [`MAX_SPREAD`]. Only judged when listed in `checks:`.

use super::load;
use super::timeline::Timeline;
use super::{CheckContext, CheckResult, Checker};
use crate::history::Record;
use crate::scenario::{ClusterSettings, Deadline};
use chat_node::ids::NodeId;
use std::collections::BTreeMap;

/// Most users one live server may carry above another. Two, not one: logins that race
/// through one heartbeat interval are assigned from the same table.
pub const MAX_SPREAD: usize = 2;

/// The `balance` checker.
pub struct Balance;

impl Checker for Balance {
    fn name(&self) -> &'static str {
        "balance"
    }
    fn default_deadline(&self, _c: &ClusterSettings) -> Option<Deadline> {
        None
    }
    /// Only where the story puts users through the assignment: a scenario with every user
    /// on the leader (`placement: leader`) is not unbalanced by mistake.
    fn judged_by_default(&self) -> bool {
        false
    }
    fn check(&self, cx: &CheckContext) -> CheckResult {
        let timeline = Timeline::build(cx.records);
        let end = cx.records.last().map_or(0, Record::ts_ms);
        let mut per_server: BTreeMap<NodeId, usize> = timeline
            .nodes
            .iter()
            .filter(|n| !timeline.is_down(**n, end))
            .map(|n| (*n, 0))
            .collect();
        // Where each user is logged in at the end (the last point of clients per server).
        if let Some(last) = load::load_over_time(cx.records).last() {
            for (node, users) in &last.per_server {
                *per_server.entry(*node).or_insert(0) += users;
            }
        }
        let most = per_server.values().copied().max().unwrap_or(0);
        let least = per_server.values().copied().min().unwrap_or(0);
        let listing = per_server
            .iter()
            .map(|(n, k)| format!("n{}: {k}", n.0))
            .collect::<Vec<_>>()
            .join(", ");
        let spread = most - least;
        let mut result = CheckResult::new(
            "balance",
            spread <= MAX_SPREAD,
            format!("users per live server at the end [{listing}]; spread {spread} (at most {MAX_SPREAD})"),
        );
        if spread > MAX_SPREAD {
            result.details.push(format!(
                "one live server carries {most} users and another {least}: the assignment \
                 did not spread them"
            ));
        }
        result.sample("user_spread", [spread as f64]);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;
    use crate::history::FaultAction;

    fn check(records: Vec<Record>) -> CheckResult {
        let s = scenario_nodes("balance", 3);
        Balance.check(&CheckContext {
            scenario: &s,
            records: &records,
            deadline: None,
        })
    }

    #[test]
    fn users_spread_over_the_live_servers_pass() {
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        for (i, node) in [1, 2, 3, 1, 2, 3].into_iter().enumerate() {
            r.push(login(100 + i as u64, &format!("u{}", i + 1), node));
        }
        // Node 3 dies; its users move to 1 and 2: 3 + 3 on the survivors.
        r.push(fault(1000, FaultAction::Kill, &[3]));
        r.push(login(1500, "u3", 1));
        r.push(login(1501, "u6", 2));
        let c = check(r);
        assert!(c.passed, "{c:?}");
        assert!(c.figure.contains("[n1: 3, n2: 3]"), "{}", c.figure);
    }

    #[test]
    fn a_scenario_without_checks_does_not_judge_balance() {
        let names = crate::scenario::CheckName::all();
        assert!(!names.iter().any(|n| n.as_str() == "balance"), "{names:?}");
        assert!(names.iter().any(|n| n.as_str() == "election"));
    }

    #[test]
    fn every_user_on_one_server_fails() {
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        for i in 1..=6 {
            r.push(login(100 + i, &format!("u{i}"), 1));
        }
        let c = check(r);
        assert!(!c.passed, "{c:?}");
        assert!(c.figure.contains("[n1: 6, n2: 0, n3: 0]"), "{}", c.figure);
    }
}
