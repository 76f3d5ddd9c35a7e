//! `summary.json`: everything in the terminal table, plus timings, for machines.

use super::{RunOutcome, StepStatus};
use crate::scenario::Scenario;
use serde_json::{json, Map, Value};

pub fn summary_json(s: &Scenario, o: &RunOutcome) -> String {
    let verdict = o.verdict(s);
    let timings: Map<String, Value> = o
        .timings_ms
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let steps: Vec<Value> = o
        .steps
        .iter()
        .map(|st| {
            json!({
                "index": st.index + 1,
                "keyword": st.keyword,
                "description": st.description,
                "status": st.status,
                "passed": st.status == StepStatus::Passed,
                "figure_ms": st.figure_ms,
                "deadline_ms": st.deadline_ms,
                "headroom_ms": st.headroom_ms(),
                "elapsed_ms": st.elapsed_ms,
                "message": st.message,
            })
        })
        .collect();
    let checks: Vec<Value> = o
        .checks
        .iter()
        .map(|c| {
            let status = RunOutcome::check_status(s, c);
            json!({
                "name": c.name,
                "passed": c.passed,
                "status": status,
                "ok": status.ok(),
                "figure": c.figure,
                "deadline": c.deadline,
                "headroom_ms": c.headroom_ms,
                "details": c.details,
            })
        })
        .collect();
    let doc = json!({
        "scenario": {
            "name": s.name,
            "about": s.about,
            "file": s.file,
            "expect_failures": s.expect_failures.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        },
        "cluster": {
            "nodes": s.cluster.nodes,
            "cluster_size": s.cluster.cluster_size,
            "election": s.cluster.election.name(),
            "quorum": s.cluster.quorum.as_flag(),
            "heartbeat_ms": s.cluster.heartbeat.as_millis() as u64,
            "failure_timeout_ms": s.cluster.failure_timeout.as_millis() as u64,
        },
        "run_id": o.run_id,
        "verdict": verdict,
        "exit_code": verdict.exit_code(),
        "started_at_ms": o.started_at_ms,
        "wall_ms": o.wall_ms,
        "timings_ms": timings,
        "steps": steps,
        "checks": checks,
        "errors": o.errors,
        "history": o.history_path,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into()) + "\n"
}
