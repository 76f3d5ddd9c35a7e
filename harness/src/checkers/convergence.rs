//! (in progress)
use super::CheckResult;
use crate::history::Record;
use crate::scenario::Scenario;

pub fn check(_s: &Scenario, _r: &[Record], _deadline_ms: u64, _label: String) -> CheckResult {
    CheckResult {
        name: "convergence".into(),
        passed: false,
        figure: "not implemented".into(),
        deadline: None,
        headroom_ms: None,
        details: vec![],
    }
}
