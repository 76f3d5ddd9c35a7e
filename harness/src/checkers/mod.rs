//! Post-run checkers: pure functions of the history, each a verdict with its measured figure,
//! its deadline and the headroom between them.

mod convergence;
mod delivery;
mod detection;
mod election;
mod legitimacy;
#[cfg(test)]
pub(crate) mod testkit;
mod timeline;

use crate::history::Record;
use crate::scenario::{CheckName, Scenario};

/// One checker's verdict.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    /// The measured figure, for people (`640 ms (max of 3 failovers)`, `0 lost of 812`).
    pub figure: String,
    /// The deadline, when the check has one (`700ms = failure_timeout + 2 * heartbeat`).
    pub deadline: Option<String>,
    /// Deadline minus figure; negative when late.
    pub headroom_ms: Option<i64>,
    /// One line per finding (violations first).
    pub details: Vec<String>,
}

/// Runs the scenario's checkers on the history (any order; sorted by time here).
pub fn run(scenario: &Scenario, records: &[Record]) -> Vec<CheckResult> {
    let mut sorted: Vec<Record> = records.to_vec();
    sorted.sort_by_key(Record::ts_ms);
    scenario
        .checks
        .iter()
        .map(|spec| {
            let deadline = scenario.check_deadline(spec.name);
            let deadline_ms = deadline.resolve(&scenario.cluster).as_millis() as u64;
            let written = deadline.to_string();
            let label = if written == format!("{deadline_ms}ms") {
                written
            } else {
                format!("{deadline_ms}ms = {written}")
            };
            match spec.name {
                CheckName::Election => election::check(scenario, &sorted, deadline_ms, label),
                CheckName::Detection => detection::check(scenario, &sorted, deadline_ms, label),
                CheckName::Delivery => delivery::check(scenario, &sorted),
                CheckName::Convergence => convergence::check(scenario, &sorted, deadline_ms, label),
            }
        })
        .collect()
}
