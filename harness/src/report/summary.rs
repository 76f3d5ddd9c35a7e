//! (in progress)
use super::RunOutcome;
use crate::scenario::Scenario;

pub fn summary_json(_s: &Scenario, o: &RunOutcome) -> String {
    serde_json::to_string_pretty(o).unwrap_or_default()
}
