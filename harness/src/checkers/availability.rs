//! Client unavailability: how long each chat user went without an acknowledged message after
//! a fault (issue 8 item 7). The leader's own failover figure is not what a user sees: a
//! client still has to learn the new leader, reconnect, log in and retry. So, for every fault
//! (any recorded fault but the start and the repairs: resume, restart, heal) and every user,
//! the figure is the time from the fault to the user's first acknowledgement of a message
//! that was not yet committed when the fault struck (an ack of a message committed before
//! the fault says nothing about the cluster after it).
//!
//! It includes the wait for the user's next send (with rate R over U users, about U/R on
//! average), so it is an upper bound on the outage that user saw. A user offline (an
//! `offline` step) at the fault or before its first ack after it is not measured; nor is a
//! user that sent nothing after the fault.
//!
//! Measured in every run with users; listed in `checks:` with `within:`, every user's figure
//! must be within that deadline (`- client_unavailability: {within: 2 * failure_timeout}`).

use super::{CheckContext, CheckResult, Checker};
use crate::history::{ClientAction, FaultAction, Record};
use crate::scenario::{ClusterSettings, Deadline};
use std::collections::{BTreeMap, BTreeSet};

/// One user's wait after one fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserUnavailability {
    pub user: String,
    /// The fault's keyword and step (0-based), as recorded.
    pub fault: String,
    pub fault_ts: u64,
    /// Fault to the first ack after it; `None` when none came before the run ended.
    pub ms: Option<u64>,
}

/// The faults a user can feel: everything recorded but the start and the repairs.
fn is_disruption(a: FaultAction) -> bool {
    a != FaultAction::Start && !a.is_repair()
}

/// Every (fault, user) figure of the history (sorted by time).
pub fn client_unavailability(records: &[Record]) -> Vec<UserUnavailability> {
    // When each (user, id) was first committed anywhere, by the nodes' own account.
    let mut committed: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut users: BTreeSet<String> = BTreeSet::new();
    for r in records {
        match r {
            Record::Node(ev) => {
                if let chat_node::events::Event::Committed {
                    from: Some(from),
                    id: Some(id),
                    ..
                } = &ev.event
                {
                    committed
                        .entry((from.clone(), id.clone()))
                        .or_insert(ev.ts_ms);
                }
            }
            Record::Client(c) if matches!(c.action, ClientAction::Send { .. }) => {
                users.insert(c.user.clone());
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for r in records {
        let Record::Fault(f) = r else { continue };
        if !is_disruption(f.action) {
            continue;
        }
        let what = match f.step {
            Some(i) => format!("{} at step {}", f.action.keyword(), i + 1),
            None => f.action.keyword().to_string(),
        };
        for user in &users {
            if let Some(ms) = user_wait(records, &committed, user, f.ts_ms) {
                out.push(UserUnavailability {
                    user: user.clone(),
                    fault: what.clone(),
                    fault_ts: f.ts_ms,
                    ms,
                });
            }
        }
    }
    out
}

/// `Some(Some(ms))`: the user's first qualifying ack came `ms` after the fault; `Some(None)`:
/// it sent after the fault but nothing was acknowledged by the end; `None`: not measured
/// (offline, or nothing sent after the fault).
fn user_wait(
    records: &[Record],
    committed: &BTreeMap<(String, String), u64>,
    user: &str,
    fault_ts: u64,
) -> Option<Option<u64>> {
    let mut away = false;
    for r in records.iter().take_while(|r| r.ts_ms() <= fault_ts) {
        if let Record::Client(c) = r {
            if c.user == user {
                match c.action {
                    ClientAction::Offline => away = true,
                    ClientAction::Online => away = false,
                    _ => {}
                }
            }
        }
    }
    if away {
        return None;
    }
    let mut sent_after = false;
    for r in records.iter().filter(|r| r.ts_ms() > fault_ts) {
        let Record::Client(c) = r else { continue };
        if c.user != user {
            continue;
        }
        match &c.action {
            ClientAction::Offline => return None,
            ClientAction::Send { .. } => sent_after = true,
            ClientAction::Acked { id, .. } => {
                let before = committed
                    .get(&(user.to_string(), id.clone()))
                    .is_some_and(|t| *t <= fault_ts);
                if !before {
                    return Some(Some(c.ts_ms - fault_ts));
                }
            }
            _ => {}
        }
    }
    sent_after.then_some(None)
}

/// The median and the maximum of some figures (the lower median for an even count).
pub fn p50_max(values: &[u64]) -> Option<(u64, u64)> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let max = *v.last()?;
    Some((v[(v.len() - 1) / 2], max))
}

/// The `client_unavailability` checker.
pub struct ClientUnavailability;

impl Checker for ClientUnavailability {
    fn name(&self) -> &'static str {
        "client_unavailability"
    }
    fn default_deadline(&self, _c: &ClusterSettings) -> Option<Deadline> {
        None
    }
    fn always_measured(&self) -> bool {
        true
    }
    fn check(&self, cx: &CheckContext) -> CheckResult {
        let all = client_unavailability(cx.records);
        let measured: Vec<u64> = all.iter().filter_map(|u| u.ms).collect();
        let never: Vec<&UserUnavailability> = all.iter().filter(|u| u.ms.is_none()).collect();
        let faults: BTreeSet<u64> = all.iter().map(|u| u.fault_ts).collect();
        let end = cx.records.last().map(Record::ts_ms).unwrap_or(0);
        let mut violations = Vec::new();
        if let Some(d) = &cx.deadline {
            for u in &all {
                match u.ms {
                    Some(ms) if ms > d.ms => violations.push(format!(
                        "{} waited {ms} ms for an acknowledged message after the {} (deadline {} ms)",
                        u.user, u.fault, d.ms
                    )),
                    None if end > u.fault_ts + d.ms => violations.push(format!(
                        "{} had no message acknowledged after the {}",
                        u.user, u.fault
                    )),
                    _ => {}
                }
            }
        }
        let figure = match p50_max(&measured) {
            Some((p50, max)) => format!(
                "p50 {p50} ms, max {max} ms ({} user waits after {} faults)",
                measured.len(),
                faults.len()
            ),
            None if all.is_empty() => "no fault with users sending".to_string(),
            None => "no acknowledged message after any fault".to_string(),
        };
        let worst = measured.iter().copied().max();
        let mut r = CheckResult::new("client_unavailability", violations.is_empty(), figure);
        r.headroom_ms = cx
            .deadline
            .as_ref()
            .zip(worst)
            .map(|(d, w)| d.ms as i64 - w as i64);
        r.deadline = cx.deadline.as_ref().map(|d| d.label.clone());
        r.details = violations;
        // Per fault, the slowest user: which fault hurt clients most.
        let mut per_fault: BTreeMap<u64, (&str, u64, &str)> = BTreeMap::new();
        for u in &all {
            if let Some(ms) = u.ms {
                let e = per_fault
                    .entry(u.fault_ts)
                    .or_insert((&u.fault, ms, &u.user));
                if ms > e.1 {
                    *e = (&u.fault, ms, &u.user);
                }
            }
        }
        for (what, ms, user) in per_fault.values() {
            r.details
                .push(format!("after the {what}: slowest user {user}, {ms} ms"));
        }
        if !never.is_empty() {
            r.details.push(format!(
                "{} user waits never ended in an ack before the run ended",
                never.len()
            ));
        }
        r.sample(
            "client_unavailability_ms",
            measured.iter().map(|v| *v as f64),
        );
        r
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::super::{CheckContext, ResolvedDeadline};
    use super::*;
    use chat_node::ids::Role;

    /// u1 sends m1 before a leader kill at 1000, it commits at 990 and its ack arrives late
    /// (1005); m2 is sent at 1100, retried, committed at 2190 and acked at 2200. u2 sends at
    /// 1500 and is acked at 1800.
    fn history() -> Vec<Record> {
        let mut r = vec![
            fault(0, FaultAction::Start, &[1, 2, 3]),
            send(980, "u1", "m1", Some("u2"), None),
            committed(990, 3, 1, Role::Leader, 1, "m1"),
            fault(1000, FaultAction::Kill, &[3]),
            acked(1005, "u1", "m1", 1),
            send(1100, "u1", "m2", Some("u2"), None),
            send(1900, "u1", "m2", Some("u2"), None),
            committed(2190, 2, 2, Role::Leader, 2, "m2"),
            acked(2200, "u1", "m2", 2),
            send(1500, "u2", "x", Some("u1"), None),
            acked(1800, "u2", "x", 3),
            fault(3000, FaultAction::Restart, &[3]),
        ];
        r.sort_by_key(Record::ts_ms);
        r
    }

    #[test]
    fn each_user_waits_from_the_fault_to_an_ack_committed_after_it() {
        let u = client_unavailability(&history());
        let got: Vec<(&str, Option<u64>)> = u.iter().map(|x| (x.user.as_str(), x.ms)).collect();
        // The ack of m1 (committed before the kill) does not count; the restart is a repair.
        assert_eq!(got, vec![("u1", Some(1200)), ("u2", Some(800))]);
        assert_eq!(u[0].fault, "kill at step 1");
    }

    #[test]
    fn an_offline_user_is_not_measured_and_a_silent_wait_is_reported() {
        let mut r = history();
        r.push(client(500, "u2", ClientAction::Offline));
        r.retain(|x| !matches!(x, Record::Client(c) if c.user == "u1" && c.ts_ms == 2200));
        r.sort_by_key(Record::ts_ms);
        let u = client_unavailability(&r);
        assert_eq!(u.len(), 1);
        assert_eq!((u[0].user.as_str(), u[0].ms), ("u1", None));
    }

    fn run(records: &[Record], deadline: Option<u64>) -> CheckResult {
        let s = scenario("delivery");
        let cx = CheckContext {
            scenario: &s,
            records,
            deadline: deadline.map(|ms| ResolvedDeadline {
                ms,
                label: format!("{ms}ms"),
            }),
        };
        ClientUnavailability.check(&cx)
    }

    #[test]
    fn the_figure_is_p50_and_max_and_a_deadline_can_fail_it() {
        let c = run(&history(), None);
        assert!(c.passed);
        assert_eq!(
            c.figure,
            "p50 800 ms, max 1200 ms (2 user waits after 1 faults)"
        );
        assert_eq!(c.samples["client_unavailability_ms"], vec![1200.0, 800.0]);
        let c = run(&history(), Some(1000));
        assert!(!c.passed, "{c:?}");
        assert_eq!(c.headroom_ms, Some(-200));
        assert!(
            c.details[0].contains("u1 waited 1200 ms"),
            "{:?}",
            c.details
        );
        assert!(run(&history(), Some(1500)).passed);
    }
}
