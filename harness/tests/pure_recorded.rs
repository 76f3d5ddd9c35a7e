//! The checkers on histories recorded from real Docker runs (node events and faults only;
//! client records trimmed to keep the files small): a healthy zombie-leader run passes,
//! and the `--quorum none` split brain is caught.

use harness::checkers;
use harness::history::History;
use harness::scenario::{self, Scenario};
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The suite's scenario, judged by the checkers that need no client records.
fn scenario_without_delivery(name: &str) -> Scenario {
    let path = root().join(format!("../scenarios/{name}.yaml"));
    let text = std::fs::read_to_string(&path).expect("scenario readable");
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("checks:") {
                "checks: [election, detection, convergence]"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    scenario::parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn history(name: &str) -> History {
    History::load(&root().join(format!("tests/pure_fixtures/{name}.jsonl"))).expect("fixture loads")
}

#[test]
fn a_real_zombie_leader_run_passes_with_headroom() {
    let s = scenario_without_delivery("leader-pause");
    let results = checkers::run(&s, history("leader-pause").records());
    for c in &results {
        assert!(c.passed, "{}: {} {:?}", c.name, c.figure, c.details);
    }
    let election = &results[0];
    assert!(
        election.figure.starts_with("failover "),
        "{}",
        election.figure
    );
    assert!(election.headroom_ms.is_some_and(|h| h > 0));
    let detection = &results[1];
    assert!(
        detection.figure.contains("0 false suspicions"),
        "{}",
        detection.figure
    );
}

#[test]
fn a_real_quorum_none_split_brain_is_caught() {
    let s = scenario_without_delivery("split-brain-selftest");
    let results = checkers::run(&s, history("split-brain-selftest").records());
    let election = results
        .iter()
        .find(|c| c.name == "election")
        .expect("election ran");
    assert!(
        !election.passed,
        "the split brain went unnoticed: {:?}",
        election.details
    );
    let all = election.details.join("\n");
    assert!(all.contains("split brain"), "{all}");
    assert!(all.contains("stale leader"), "{all}");
    let convergence = results
        .iter()
        .find(|c| c.name == "convergence")
        .expect("ran");
    assert!(
        convergence.passed,
        "after the heal it merges: {:?}",
        convergence.details
    );
}
