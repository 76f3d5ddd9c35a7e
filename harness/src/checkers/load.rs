//! Clients per server over time (issue 12): which server each user is logged in on, from the
//! users' own logins, logouts and `offline` steps, and the faults that end a server's process
//! (kill, stop: its users are nowhere until they log in again). One point per change.

use crate::history::{ClientAction, FaultAction, Record};
use chat_node::ids::NodeId;
use std::collections::BTreeMap;

/// Users per server after a change at `ts_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPoint {
    pub ts_ms: u64,
    pub per_server: BTreeMap<NodeId, usize>,
}

/// The load after every change of the history, in time order.
pub fn load_over_time(records: &[Record]) -> Vec<LoadPoint> {
    let mut at: BTreeMap<&str, NodeId> = BTreeMap::new();
    let mut out: Vec<LoadPoint> = Vec::new();
    for r in records {
        let ts_ms = match r {
            Record::Client(c) => {
                match &c.action {
                    ClientAction::Login {
                        node: Some(node), ..
                    } => {
                        at.insert(c.user.as_str(), *node);
                    }
                    ClientAction::Logout | ClientAction::Offline => {
                        at.remove(c.user.as_str());
                    }
                    _ => continue,
                }
                c.ts_ms
            }
            Record::Fault(f) if matches!(f.action, FaultAction::Kill | FaultAction::Stop) => {
                at.retain(|_, node| !f.nodes.contains(node));
                f.ts_ms
            }
            _ => continue,
        };
        let mut per_server = BTreeMap::new();
        for node in at.values() {
            *per_server.entry(*node).or_insert(0) += 1;
        }
        match out.last_mut() {
            Some(last) if last.per_server == per_server => {}
            Some(last) if last.ts_ms == ts_ms => last.per_server = per_server,
            _ => out.push(LoadPoint { ts_ms, per_server }),
        }
    }
    out
}

/// `n1: 2, n2: 2` (servers with no user left out).
pub fn describe(per_server: &BTreeMap<NodeId, usize>) -> String {
    if per_server.is_empty() {
        return "none".into();
    }
    per_server
        .iter()
        .map(|(n, k)| format!("n{}: {k}", n.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The load at the points that matter: just before and just after every kill or stop (the
/// displaced users gone), when they are all placed again (the next point with as many users
/// as before), and at the end. Times are seconds since `t0_ms`.
pub fn summary(points: &[LoadPoint], records: &[Record], t0_ms: u64) -> Vec<String> {
    let at = |ts: u64| -> Option<&LoadPoint> { points.iter().rev().find(|p| p.ts_ms <= ts) };
    let total = |p: &LoadPoint| p.per_server.values().sum::<usize>();
    let secs = |ts: u64| format!("{:.1} s", ts.saturating_sub(t0_ms) as f64 / 1000.0);
    let mut out = Vec::new();
    for r in records {
        let Record::Fault(f) = r else { continue };
        if !matches!(f.action, FaultAction::Kill | FaultAction::Stop) {
            continue;
        }
        let nodes: Vec<String> = f.nodes.iter().map(|n| format!("n{}", n.0)).collect();
        let what = format!("{:?} {}", f.action, nodes.join(",")).to_lowercase();
        let before = f.ts_ms.checked_sub(1).and_then(at);
        if let Some(p) = before {
            out.push(format!(
                "{} before {what}: {}",
                secs(f.ts_ms),
                describe(&p.per_server)
            ));
        }
        if let Some(p) = at(f.ts_ms) {
            out.push(format!(
                "{} after {what}: {}",
                secs(f.ts_ms),
                describe(&p.per_server)
            ));
        }
        let want = before.map_or(0, total);
        if let Some(p) = points
            .iter()
            .find(|p| p.ts_ms > f.ts_ms && total(p) >= want && want > 0)
        {
            out.push(format!(
                "{} all placed again: {}",
                secs(p.ts_ms),
                describe(&p.per_server)
            ));
        }
    }
    if let Some(p) = points.last() {
        out.push(format!(
            "{} at the end: {}",
            secs(p.ts_ms),
            describe(&p.per_server)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::*;

    #[test]
    fn a_killed_servers_users_are_nowhere_until_they_log_in_elsewhere() {
        let records = vec![
            login(100, "u1", 1),
            login(100, "u2", 2),
            login(120, "u3", 2),
            fault(1000, FaultAction::Kill, &[2]),
            login(1400, "u2", 1),
            login(1500, "u3", 3),
        ];
        let points = load_over_time(&records);
        let shown: Vec<String> = points.iter().map(|p| describe(&p.per_server)).collect();
        assert_eq!(
            shown,
            vec![
                "n1: 1, n2: 1",
                "n1: 1, n2: 2",
                "n1: 1",
                "n1: 2",
                "n1: 2, n3: 1"
            ]
        );
        let lines = summary(&points, &records, 0);
        assert_eq!(
            lines,
            vec![
                "1.0 s before kill n2: n1: 1, n2: 2",
                "1.0 s after kill n2: n1: 1",
                "1.5 s all placed again: n1: 2, n3: 1",
                "1.5 s at the end: n1: 2, n3: 1"
            ]
        );
    }
}
