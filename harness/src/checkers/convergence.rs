//! Convergence: after the last fault (heal, restart, resume, or any other), all live nodes
//! follow one leader at one epoch with one view equal to the live set, within the deadline.

use super::{CheckContext, CheckResult, Checker};
use crate::history::Record;
use crate::observed::{evaluate, Evaluation, Expectation, Goal, Observed};
use crate::scenario::{ClusterSettings, Deadline, Scenario};

/// The convergence checker.
pub struct Convergence;

impl Checker for Convergence {
    fn name(&self) -> &'static str {
        "convergence"
    }
    fn default_deadline(&self, c: &ClusterSettings) -> Option<Deadline> {
        Some(crate::scenario::defaults::convergence_deadline(c))
    }
    fn check(&self, cx: &CheckContext) -> CheckResult {
        let d = cx.deadline_or(&crate::scenario::defaults::convergence_deadline(
            &cx.scenario.cluster,
        ));
        check(cx.scenario, cx.records, d.ms, d.label)
    }
}

pub fn check(_s: &Scenario, records: &[Record], deadline_ms: u64, label: String) -> CheckResult {
    let last_fault = records.iter().rev().find_map(|r| match r {
        Record::Fault(f) => Some((f.ts_ms, f.action.keyword(), f.step)),
        _ => None,
    });
    let first_ts = records.first().map(Record::ts_ms).unwrap_or(0);
    let end = records.last().map(Record::ts_ms).unwrap_or(0);
    let (since, what) = match last_fault {
        Some((ts, kw, step)) => (
            ts,
            format!(
                "the last fault ({kw}{})",
                step.map(|i| format!(" at step {}", i + 1))
                    .unwrap_or_default()
            ),
        ),
        None => (first_ts, "the start of the history".to_string()),
    };
    let exp = Expectation {
        goal: Goal::Converged,
        within_ms: deadline_ms,
    };
    // The history is complete: judge as if the deadline had passed.
    let now = end.max(since + deadline_ms) + crate::observed::LOG_LAG_MS + 1;
    let result = evaluate(&exp, records, since, now);
    let final_state = Observed::from_records(records);
    let end_note = match final_state.converged() {
        Some(l) => format!("at the end: converged on leader {l}"),
        None => format!(
            "at the end: NOT converged (live {:?}, leaders {:?})",
            final_state
                .live_nodes()
                .iter()
                .map(|n| n.0)
                .collect::<Vec<_>>(),
            final_state
                .leaders()
                .iter()
                .map(|n| n.0)
                .collect::<Vec<_>>()
        ),
    };
    let (passed, figure, headroom, mut details) = match &result {
        Evaluation::Met { figure_ms } => (
            true,
            format!("converged {figure_ms} ms after {what}"),
            Some(deadline_ms as i64 - *figure_ms as i64),
            vec![],
        ),
        Evaluation::Failed { reason, figure_ms } => (
            false,
            match figure_ms {
                Some(f) => format!("converged {f} ms after {what}"),
                None => format!("not converged after {what}"),
            },
            figure_ms.map(|f| deadline_ms as i64 - f as i64),
            vec![reason.clone()],
        ),
        Evaluation::Pending => (false, "undecided".into(), None, vec![]),
    };
    details.push(end_note);
    let converged_ms = match &result {
        Evaluation::Met { figure_ms } => Some(*figure_ms),
        Evaluation::Failed { figure_ms, .. } => *figure_ms,
        Evaluation::Pending => None,
    };
    let mut out = CheckResult::new("convergence", passed, figure);
    out.deadline = Some(label);
    out.headroom_ms = headroom;
    out.details = details;
    out.sample("convergence_ms", converged_ms.map(|v| v as f64));
    out
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;
    use super::*;
    use crate::history::FaultAction;
    use chat_node::ids::Role;

    fn converged_at(ts: u64, epoch: u64, leader: u64) -> Vec<Record> {
        let mut r = elect(
            ts,
            leader,
            epoch,
            &[1, 2, 3]
                .into_iter()
                .filter(|n| *n != leader)
                .collect::<Vec<_>>(),
            (0, 0),
        );
        for n in 1..=3 {
            let role = if n == leader {
                Role::Leader
            } else {
                Role::Follower
            };
            r.push(view(ts + 5, n, epoch, role, &[1, 2, 3]));
        }
        r
    }

    fn run(mut r: Vec<Record>) -> CheckResult {
        r.sort_by_key(Record::ts_ms);
        check(&scenario("convergence"), &r, 2000, "2000ms".into())
    }

    #[test]
    fn one_leader_and_one_view_after_the_heal_passes() {
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        r.extend(converged_at(500, 1, 3));
        r.push(partition(1000, &[&[3], &[1, 2]]));
        r.push(view(1600, 1, 1, Role::Follower, &[1, 2]));
        r.push(view(1600, 2, 1, Role::Follower, &[1, 2]));
        r.push(view(1600, 3, 1, Role::Leader, &[3]));
        r.push(fault(3000, FaultAction::Heal, &[]));
        r.extend(converged_at(3800, 2, 2));
        let c = run(r);
        assert!(c.passed, "{c:?}");
        assert_eq!(c.headroom_ms, Some(2000 - 805));
    }

    #[test]
    fn two_leaders_after_the_heal_fail() {
        let mut r = vec![fault(0, FaultAction::Start, &[1, 2, 3])];
        r.extend(converged_at(500, 1, 3));
        r.push(partition(1000, &[&[3], &[1, 2]]));
        r.extend(elect(1700, 2, 2, &[1], (0, 0)));
        r.push(fault(3000, FaultAction::Heal, &[]));
        r.push(view(3100, 3, 1, Role::Leader, &[1, 2, 3]));
        r.push(view(9000, 1, 2, Role::Follower, &[1, 2, 3]));
        let c = run(r);
        assert!(!c.passed, "{c:?}");
        assert!(c.figure.starts_with("not converged"), "{}", c.figure);
        assert!(
            c.details.iter().any(|d| d.contains("NOT converged")),
            "{:?}",
            c.details
        );
    }
}
