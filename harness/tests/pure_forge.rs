//! `forge` steps and `cluster.insecure`: what they parse to, and every way a forge step can
//! be wrong, rejected with file, line, column and the key before any container starts.

use chat_node::forge::ForgeKind;
use harness::scenario::{self, ForgeSource, ForgeStep, StepKind};
use std::time::Duration;

const BASE: &str = "name: x
about: an outsider forges while the leader is killed, long enough to tell
cluster: {nodes: 3}
workload: {users: 3, rooms: [general], rate: 5/s}
steps:
  - await: {leader: any}
  - forge:
      from: outsider
      kinds: [heartbeat, append]
      rate: 200/s
      for: 10s
  - kill: {target: leader}
";

fn err(text: &str) -> String {
    match scenario::parse(text, "scenarios/x.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn forge_step(text: &str) -> ForgeStep {
    let s = scenario::parse(text, "scenarios/x.yaml").unwrap_or_else(|e| panic!("{e}"));
    match &s.steps[1].kind {
        StepKind::Forge(f) => f.clone(),
        other => panic!("step 2 is {other:?}"),
    }
}

#[test]
fn a_forge_step_parses_to_its_kinds_rate_and_duration() {
    let f = forge_step(BASE);
    assert_eq!(
        f,
        ForgeStep {
            from: ForgeSource::Outsider,
            kinds: vec![ForgeKind::Heartbeat, ForgeKind::Append],
            rate_per_s: 200,
            duration: Duration::from_secs(10),
        }
    );
    assert_eq!(
        f.describe(),
        "forge from outsider 200/s for 10000 ms: heartbeat,append"
    );
    // `all`, no kinds at all, a deadline expression, a per-minute rate.
    let all = forge_step(&BASE.replace("[heartbeat, append]", "all"));
    assert_eq!(all.kinds, ForgeKind::ALL.to_vec());
    assert!(all.describe().ends_with(": all"), "{}", all.describe());
    let none = forge_step(&BASE.replace("      kinds: [heartbeat, append]\n", ""));
    assert_eq!(none.kinds, ForgeKind::ALL.to_vec());
    let expr = forge_step(
        &BASE
            .replace("for: 10s", "for: 10 * failure_timeout")
            .replace("200/s", "600/m"),
    );
    assert_eq!(
        (expr.duration, expr.rate_per_s),
        (Duration::from_secs(5), 10)
    );
}

#[test]
fn insecure_is_a_cluster_setting_off_by_default() {
    let s = scenario::parse(BASE, "x.yaml").unwrap();
    assert!(!s.cluster.insecure);
    let s = scenario::parse(
        &BASE.replace("{nodes: 3}", "{nodes: 3, insecure: true}"),
        "x.yaml",
    )
    .unwrap();
    assert!(s.cluster.insecure);
    let e = err(&BASE.replace("{nodes: 3}", "{nodes: 3, insecure: yes please}"));
    assert!(e.starts_with("scenarios/x.yaml:3:"), "{e}");
}

#[test]
fn an_unknown_kind_names_the_line_the_key_and_the_choices() {
    let e = err(&BASE.replace("[heartbeat, append]", "[heartbeat, apend]"));
    assert!(
        e.starts_with(
            "scenarios/x.yaml:9:7: unknown forge kind `apend`; expected one of: hello, heartbeat,"
        ),
        "{e}"
    );
    assert!(e.contains("replay, garbage, all in step 2 (forge)"), "{e}");
    let e = err(&BASE.replace("[heartbeat, append]", "[]"));
    assert!(
        e.starts_with("scenarios/x.yaml:9:7: no forge kinds given"),
        "{e}"
    );
    let e = err(&BASE.replace("[heartbeat, append]", "{heartbeat: 1}"));
    assert!(e.starts_with("scenarios/x.yaml:9:14: "), "{e}");
    assert!(e.contains("`all` or a list of forge kinds"), "{e}");
}

#[test]
fn bad_sources_rates_and_durations_are_rejected_where_they_are() {
    let e = err(&BASE.replace("from: outsider", "from: node3"));
    assert_eq!(
        e,
        "scenarios/x.yaml:8:7: unknown forge source `node3`; expected: outsider (a host on \
         the run's network that is no member) in step 2 (forge)"
    );
    let e = err(&BASE.replace("rate: 200/s", "rate: 200"));
    assert!(
        e.starts_with("scenarios/x.yaml:10:7: bad rate `200`: write datagrams per second"),
        "{e}"
    );
    let e = err(&BASE.replace("rate: 200/s", "rate: 0/s"));
    assert!(
        e.starts_with("scenarios/x.yaml:10:7: bad rate `0/s`: must be 1/s to 10000/s"),
        "{e}"
    );
    let e = err(&BASE.replace("rate: 200/s", "rate: 50000/s"));
    assert!(e.contains("must be 1/s to 10000/s"), "{e}");
    let e = err(&BASE.replace("for: 10s", "for: 10"));
    assert!(
        e.starts_with(
            "scenarios/x.yaml:11:7: bad duration for `for`: bad duration `10` has no unit"
        ),
        "{e}"
    );
    let e = err(&BASE.replace("for: 10s", "for: 0s"));
    assert!(
        e.starts_with("scenarios/x.yaml:11:7: `for` must be longer than 0"),
        "{e}"
    );
    let e = err(&BASE.replace("for: 10s", "for: 61m"));
    assert!(e.contains("longer than the maximum of 1h"), "{e}");
}

#[test]
fn missing_and_unknown_keys_are_rejected() {
    let e = err(&BASE.replace("      rate: 200/s\n", ""));
    assert_eq!(
        e,
        "scenarios/x.yaml:8:7: step 2 (forge): missing field `rate`"
    );
    let e = err(&BASE.replace("      for: 10s\n", "      for: 10s\n      rat: 2/s\n"));
    assert!(
        e.starts_with("scenarios/x.yaml:12:7: unknown key `rat`"),
        "{e}"
    );
    assert!(e.contains("from, kinds, rate, for"), "{e}");
    let e = err(&BASE.replace(
        "  - kill: {target: leader}",
        "  - kill: {target: leader}\n    forge: {from: outsider, rate: 1/s, for: 1s}",
    ));
    assert!(e.contains("several actions (kill, forge)"), "{e}");
}

#[test]
fn the_insecure_self_test_forges_everything_and_expects_every_checker_to_catch_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let forges = |s: &scenario::Scenario| {
        s.steps
            .iter()
            .filter(
                |st| matches!(&st.kind, StepKind::Forge(f) if f.kinds == ForgeKind::ALL.to_vec()),
            )
            .count()
    };
    let selftest = scenario::load(&dir.join("outsider-forgery-insecure-selftest.yaml")).unwrap();
    assert!(selftest.cluster.insecure);
    assert_eq!(forges(&selftest), 1);
    assert_eq!(
        selftest.expect_failures,
        scenario::CheckName::all(),
        "leaders nobody elected, false suspicions, forged commits, no convergence"
    );
}

#[test]
fn the_secure_twin_forges_everything_through_a_crash_and_a_partition_and_expects_all_green() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let s = scenario::load(&dir.join("outsider-forgery.yaml")).unwrap();
    assert!(!s.cluster.insecure, "the nodes get the run's secret");
    assert!(s.expect_failures.is_empty());
    let checks: Vec<scenario::CheckName> = s.checks.iter().map(|c| c.name).collect();
    assert_eq!(checks, scenario::CheckName::all());
    let has = |f: fn(&StepKind) -> bool| s.steps.iter().any(|st| f(&st.kind));
    assert!(has(
        |k| matches!(k, StepKind::Forge(f) if f.kinds == ForgeKind::ALL.to_vec())
    ));
    assert!(has(|k| matches!(
        k,
        StepKind::Fault {
            action: harness::history::FaultAction::Kill,
            ..
        }
    )));
    assert!(has(|k| matches!(k, StepKind::Partition { .. })));
}
