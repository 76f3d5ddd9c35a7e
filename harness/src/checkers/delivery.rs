//! (in progress)
use super::CheckResult;
use crate::history::Record;
use crate::scenario::Scenario;

pub fn check(_s: &Scenario, _r: &[Record]) -> CheckResult {
    CheckResult {
        name: "delivery".into(),
        passed: false,
        figure: "not implemented".into(),
        deadline: None,
        headroom_ms: None,
        details: vec![],
    }
}
