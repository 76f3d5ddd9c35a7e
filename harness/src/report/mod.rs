//! The verdict of a run, for people (a terminal table) and machines (`summary.json`,
//! `junit.xml`). Exit codes: 0 pass, 1 a check or step failed, 2 the run could not be made.

mod fault_bands;
pub mod forge_summary;
pub mod html;
pub mod index;
mod junit;
mod summary;
mod table;
pub mod timeline_data;

pub use junit::junit_xml;
pub use summary::summary_json;
pub use table::{print_table, render_table};

use crate::checkers::CheckResult;
use crate::scenario::{CheckName, Scenario};
use serde::Serialize;
use std::path::Path;

/// How one step went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// An action done, or a condition met in time.
    Passed,
    Failed,
    /// Not run (an earlier `await` failed, or the run was aborted).
    Skipped,
}

/// One step's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepResult {
    /// 0-based.
    pub index: usize,
    /// The YAML keyword (`kill`, `expect` …).
    pub keyword: String,
    /// What it did or checked, resolved (`kill leader -> node 3`, `leader not [3]`).
    pub description: String,
    pub status: StepStatus,
    pub figure_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    /// Why it failed, or a note.
    pub message: Option<String>,
    /// How long the step took on the wall clock.
    pub elapsed_ms: u64,
}

impl StepResult {
    pub fn headroom_ms(&self) -> Option<i64> {
        Some(self.deadline_ms? as i64 - self.figure_ms? as i64)
    }
}

/// Everything a run produced, for the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    /// Unix ms when the run started.
    pub started_at_ms: u64,
    /// Wall time of the whole run, cluster start and teardown included.
    pub wall_ms: u64,
    /// Named phase timings (`cluster_start`, `steps`, `drain`, `teardown` …) in ms.
    pub timings_ms: Vec<(String, u64)>,
    pub steps: Vec<StepResult>,
    pub checks: Vec<CheckResult>,
    /// Why the run could not be made (or was cut short); non-empty means exit code 2.
    pub errors: Vec<String>,
    /// Where history.jsonl was written, if it was.
    pub history_path: Option<String>,
}

/// The overall verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Fail,
    /// The run could not be made.
    Error,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
        }
    }
}

/// A check's status once `expect_failures` is taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Passed,
    Failed,
    /// Expected to fail (self-test) and did: the checker works.
    ExpectedFailureCaught,
    /// Expected to fail but passed: the checker missed what it should catch.
    ExpectedFailureMissed,
}

impl CheckStatus {
    pub fn ok(self) -> bool {
        matches!(
            self,
            CheckStatus::Passed | CheckStatus::ExpectedFailureCaught
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Passed => "PASS",
            CheckStatus::Failed => "FAIL",
            CheckStatus::ExpectedFailureCaught => "PASS (expected failure caught)",
            CheckStatus::ExpectedFailureMissed => "FAIL (expected failure not caught)",
        }
    }
}

impl RunOutcome {
    /// A check's status for this scenario.
    pub fn check_status(scenario: &Scenario, check: &CheckResult) -> CheckStatus {
        let expected = CheckName::from_name(&check.name)
            .is_some_and(|n| scenario.expect_failures.contains(&n));
        match (expected, check.passed) {
            (false, true) => CheckStatus::Passed,
            (false, false) => CheckStatus::Failed,
            (true, false) => CheckStatus::ExpectedFailureCaught,
            (true, true) => CheckStatus::ExpectedFailureMissed,
        }
    }

    /// Why the verdict is not a pass, one line each (empty on a pass): errors, failed steps,
    /// and each check that is not as expected with its figure and first findings. The suite
    /// prints these under its table, so the last lines of a long CI log say what went wrong.
    pub fn reasons(&self, scenario: &Scenario) -> Vec<String> {
        let mut out: Vec<String> = self.errors.iter().map(|e| format!("error: {e}")).collect();
        for step in self.steps.iter().filter(|s| s.status == StepStatus::Failed) {
            out.push(format!(
                "step {} {} failed{}",
                step.index + 1,
                step.description,
                step.message
                    .as_ref()
                    .map_or(String::new(), |m| format!(": {m}"))
            ));
        }
        for check in &self.checks {
            let status = Self::check_status(scenario, check);
            if status.ok() {
                continue;
            }
            out.push(format!(
                "{} {}: {}",
                check.name,
                status.label(),
                check.figure
            ));
            for d in check.details.iter().take(3) {
                out.push(format!("  {d}"));
            }
        }
        for missing in scenario
            .expect_failures
            .iter()
            .filter(|n| !self.checks.iter().any(|c| c.name == n.as_str()))
        {
            out.push(format!(
                "{} was expected to fail but did not run",
                missing.as_str()
            ));
        }
        out
    }

    /// Pass only when there are no errors, every step passed and every check is as expected.
    pub fn verdict(&self, scenario: &Scenario) -> Verdict {
        if !self.errors.is_empty() {
            return Verdict::Error;
        }
        let steps_ok = self.steps.iter().all(|s| s.status == StepStatus::Passed);
        let checks_ok = self
            .checks
            .iter()
            .all(|c| Self::check_status(scenario, c).ok());
        // Every expected failure must have been checked at all.
        let all_expected_ran = scenario
            .expect_failures
            .iter()
            .all(|n| self.checks.iter().any(|c| c.name == n.as_str()));
        if steps_ok && checks_ok && all_expected_ran {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }
}

/// Writes `summary.json`, `junit.xml` and (when the history was written) `report.html`
/// into `out_dir` (created if missing).
pub fn write(out_dir: &Path, scenario: &Scenario, outcome: &RunOutcome) -> std::io::Result<()> {
    std::fs::create_dir_all(out_dir)?;
    let summary = summary_json(scenario, outcome);
    std::fs::write(out_dir.join("summary.json"), &summary)?;
    std::fs::write(out_dir.join("junit.xml"), junit_xml(scenario, outcome))?;
    if let Some(history) = &outcome.history_path {
        html::write(out_dir, Path::new(history), Some(&summary))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testkit::scenario;

    fn outcome(checks: Vec<CheckResult>) -> RunOutcome {
        RunOutcome {
            checks,
            ..RunOutcome::default()
        }
    }

    #[test]
    fn a_red_run_says_which_check_failed_and_its_first_findings() {
        let s = scenario("delivery, election");
        let mut bad = CheckResult::new("delivery", false, "1 lost of 9".into());
        bad.details = (1..=5).map(|i| format!("finding {i}")).collect();
        let o = outcome(vec![bad, CheckResult::new("election", true, "ok".into())]);
        assert_eq!(o.verdict(&s), Verdict::Fail);
        assert_eq!(
            o.reasons(&s),
            [
                "delivery FAIL: 1 lost of 9",
                "  finding 1",
                "  finding 2",
                "  finding 3"
            ]
        );
    }

    #[test]
    fn a_green_run_has_no_reasons() {
        let s = scenario("election");
        let o = outcome(vec![CheckResult::new("election", true, "ok".into())]);
        assert_eq!(o.verdict(&s), Verdict::Pass);
        assert!(o.reasons(&s).is_empty());
    }
}
