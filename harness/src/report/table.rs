//! (in progress)
use super::RunOutcome;
use crate::scenario::Scenario;

pub fn render_table(_s: &Scenario, _o: &RunOutcome, _colour: bool) -> String {
    String::new()
}

pub fn print_table(s: &Scenario, o: &RunOutcome) {
    print!("{}", render_table(s, o, false));
}
