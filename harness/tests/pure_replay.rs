//! Re-judges a recorded run: `HISTORY=out/history.jsonl SCENARIO=scenarios/x.yaml cargo test
//! -p harness --test pure_replay -- --ignored --nocapture` prints the checkers' verdicts on
//! that history. For tuning checkers against real runs without starting a cluster.

use harness::history::History;
use harness::{checkers, scenario};
use std::path::PathBuf;

#[test]
#[ignore = "needs HISTORY and SCENARIO from a real run"]
fn replay_a_recorded_history() {
    let (Some(h), Some(s)) = (std::env::var_os("HISTORY"), std::env::var_os("SCENARIO")) else {
        eprintln!("set HISTORY and SCENARIO");
        return;
    };
    let s = scenario::load(&PathBuf::from(s)).unwrap_or_else(|e| panic!("{e}"));
    let h = History::load(&PathBuf::from(h)).expect("history loads");
    for c in checkers::run(&s, h.records()) {
        println!(
            "{:<12} {:<5} {} | deadline {} | headroom {:?}",
            c.name,
            if c.passed { "PASS" } else { "FAIL" },
            c.figure,
            c.deadline.unwrap_or_default(),
            c.headroom_ms
        );
        for d in c.details {
            println!("    {d}");
        }
    }
}
