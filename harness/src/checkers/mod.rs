//! Post-run checkers: pure functions of the history, each a verdict with its measured figure,
//! its deadline and the headroom between them.
//!
//! A checker is a small protocol, as in Maelstrom's checkers: a [`Checker`] names itself,
//! says which deadline it uses by default, and judges a [`CheckContext`]. Each one is a set
//! of small property functions (one per thing that must hold), and the [`REGISTRY`] is the
//! only list of them: a new checker is one new file and one line there. Scenario validation
//! (`checks:`, `expect_failures:`), the default check list and the report all read it.

mod availability;
mod balance;
mod convergence;
mod delivery;
mod detection;
mod election;
mod legitimacy;
mod load;
mod placement;
#[cfg(test)]
pub(crate) mod testkit;
mod timeline;

pub use availability::{client_unavailability, UserUnavailability};

use crate::history::Record;
use crate::scenario::{CheckName, ClusterSettings, Deadline, Scenario};
use std::collections::BTreeMap;

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
    /// The run's measured samples by figure name (`failover_ms`: one per failover), for
    /// statistics across repeated runs and the election matrix. Names end in their unit
    /// (`_ms`) or are counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
}

impl CheckResult {
    /// A result with no samples yet.
    pub fn new(name: &str, passed: bool, figure: String) -> CheckResult {
        CheckResult {
            name: name.to_string(),
            passed,
            figure,
            deadline: None,
            headroom_ms: None,
            details: Vec::new(),
            samples: BTreeMap::new(),
        }
    }

    /// Records the samples of one figure (replacing any earlier ones).
    pub fn sample(&mut self, figure: &str, values: impl IntoIterator<Item = f64>) {
        self.samples
            .insert(figure.to_string(), values.into_iter().collect());
    }
}

/// A deadline as a checker uses it: resolved for the cluster, and as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedDeadline {
    pub ms: u64,
    /// `1140ms = failure_timeout + 4 * heartbeat + 240ms`, or just `1140ms`.
    pub label: String,
}

/// What a checker judges.
pub struct CheckContext<'a> {
    pub scenario: &'a Scenario,
    /// The whole history, sorted by time.
    pub records: &'a [Record],
    /// The scenario's override, or the checker's default (none for checkers without one).
    pub deadline: Option<ResolvedDeadline>,
}

impl CheckContext<'_> {
    /// The deadline, or `fallback` resolved here for checkers whose default always exists.
    pub fn deadline_or(&self, fallback: &Deadline) -> ResolvedDeadline {
        self.deadline
            .clone()
            .unwrap_or_else(|| resolve(fallback, &self.scenario.cluster))
    }
}

/// A post-run checker.
pub trait Checker: Sync {
    /// The name a scenario's `checks:` and `expect_failures:` use.
    fn name(&self) -> &'static str;
    /// Other names accepted for it in scenario files.
    fn synonyms(&self) -> &'static [&'static str] {
        &[]
    }
    /// The deadline used when the scenario gives none.
    fn default_deadline(&self, c: &ClusterSettings) -> Option<Deadline>;
    /// Measured in every run, listed in `checks:` or not. Unlisted, it only reports its
    /// figure (it passes); listed, its deadline is enforced.
    fn always_measured(&self) -> bool {
        false
    }
    /// Judged when a scenario lists no `checks:` (the default set). Checkers of one story,
    /// such as `balance` (only meaningful where users are assigned), opt out.
    fn judged_by_default(&self) -> bool {
        !self.always_measured()
    }
    fn check(&self, cx: &CheckContext) -> CheckResult;
}

/// Every checker, in the order reports show them. Adding one: a new file and a line here.
pub static REGISTRY: &[&dyn Checker] = &[
    &election::Election,
    &detection::Detection,
    &delivery::Delivery,
    &convergence::Convergence,
    &availability::ClientUnavailability,
    &placement::Placement,
    &balance::Balance,
];

/// The registered checker called `name` (or one of its synonyms).
pub fn find(name: &str) -> Option<&'static dyn Checker> {
    REGISTRY
        .iter()
        .copied()
        .find(|c| c.name() == name || c.synonyms().contains(&name))
}

fn resolve(deadline: &Deadline, c: &ClusterSettings) -> ResolvedDeadline {
    let ms = deadline.resolve(c).as_millis() as u64;
    let written = deadline.to_string();
    let label = if written == format!("{ms}ms") {
        written
    } else {
        format!("{ms}ms = {written}")
    };
    ResolvedDeadline { ms, label }
}

/// Runs the scenario's checkers on the history (any order; sorted by time here), then the
/// always-measured ones it did not list, which only report their figures.
pub fn run(scenario: &Scenario, records: &[Record]) -> Vec<CheckResult> {
    let mut sorted: Vec<Record> = records.to_vec();
    sorted.sort_by_key(Record::ts_ms);
    let listed: Vec<(CheckName, bool)> = scenario.checks.iter().map(|c| (c.name, true)).collect();
    let unlisted = REGISTRY
        .iter()
        .filter(|c| c.always_measured() && !scenario.runs_check_named(c.name()))
        .filter_map(|c| CheckName::from_name(c.name()).map(|n| (n, false)));
    listed
        .into_iter()
        .chain(unlisted)
        .filter_map(|(name, enforced)| {
            let checker = find(name.as_str())?;
            let deadline = if enforced {
                scenario
                    .check_deadline(name)
                    .map(|d| resolve(&d, &scenario.cluster))
            } else {
                None
            };
            let cx = CheckContext {
                scenario,
                records: &sorted,
                deadline,
            };
            let mut result = checker.check(&cx);
            if !enforced {
                result.passed = true;
                result.details.push(
                    "measured only: list it in `checks:` (with `within:`) to enforce a deadline"
                        .into(),
                );
            }
            Some(result)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_names_every_checker_once_and_finds_synonyms() {
        let mut names: Vec<&str> = REGISTRY.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), REGISTRY.len());
        assert_eq!(
            find("single_leader_per_epoch").map(|c| c.name()),
            Some("election")
        );
        assert!(find("nonsense").is_none());
    }

    #[test]
    fn an_always_measured_checker_runs_unlisted_and_never_fails_then() {
        let s = testkit::scenario("delivery");
        let results = run(&s, &[]);
        let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["delivery", "client_unavailability", "placement"]
        );
        assert!(results[1..]
            .iter()
            .all(|r| r.passed && r.deadline.is_none()));
    }
}
