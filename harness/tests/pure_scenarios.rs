//! Every file in scenarios/ parses and validates, so a broken scenario fails `cargo test`;
//! and every kind of scenario error is rejected with file, line, column and the key.

use harness::history::FaultAction;
use harness::scenario::{self, CheckName, Condition, Quorum, StartMode, StepKind, Target};
use std::path::Path;
use std::time::Duration;

fn scenarios_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

#[test]
fn every_scenario_in_the_suite_is_valid() {
    let files = scenario::files_in(&scenarios_dir()).expect("scenarios/ is readable");
    assert!(files.len() >= 11, "the suite has {} files", files.len());
    let mut names = std::collections::BTreeSet::new();
    for f in &files {
        let s = scenario::load(f).unwrap_or_else(|e| panic!("{e}"));
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        assert_eq!(
            s.name,
            stem,
            "{}: name must match the file name",
            f.display()
        );
        assert!(
            s.about.len() > 40,
            "{}: `about` should tell the fault story",
            f.display()
        );
        assert!(names.insert(s.name.clone()), "duplicate name {}", s.name);
        assert_eq!(
            s.cluster.heartbeat,
            Duration::from_millis(100),
            "{}",
            s.name
        );
        assert_eq!(
            s.cluster.failure_timeout,
            Duration::from_millis(500),
            "{}",
            s.name
        );
    }
    for required in [
        "leader-crash",
        "follower-crash",
        "leader-pause",
        "partition-leader-minority",
        "partition-majority-minority",
        "one-way-cut",
        "restart-rejoin",
        "rolling-restart",
        "offline-delivery",
        "concurrent-start",
        "split-brain-selftest",
    ] {
        assert!(
            names.contains(required),
            "scenarios/{required}.yaml is missing"
        );
    }
}

#[test]
fn the_self_test_expects_the_election_checker_to_fail() {
    let s = scenario::load(&scenarios_dir().join("split-brain-selftest.yaml")).unwrap();
    assert_eq!(s.cluster.quorum, Quorum::None);
    assert_eq!(
        s.expect_failures,
        vec![CheckName::from_name("election").unwrap()]
    );
    let c = scenario::load(&scenarios_dir().join("concurrent-start.yaml")).unwrap();
    assert_eq!(c.cluster.start, StartMode::Simultaneous);
}

#[test]
fn the_design_sketch_parses_with_deadlines_in_cluster_terms() {
    let text = r#"
name: leader-crash
about: The leader dies; the followers notice, elect a new one, and no acknowledged message is lost.
cluster: {nodes: 5, election: lcr, heartbeat: 100ms, failure_timeout: 500ms}
workload: {users: 6, rooms: [general], rate: 50/s}
steps:
  - await: {leader: any, within: 5s}
  - kill: {target: leader, as: old_leader}
  - expect: {detected: {peer: old_leader, by: all_live, within: failure_timeout + 2 * heartbeat}}
  - expect: {leader: {not: old_leader, within: 2s}}
  - restart: {target: old_leader}
  - expect: {rejoined: {node: old_leader, within: 5s}}
checks: [single_leader_per_epoch, delivery]
"#;
    let s = scenario::parse(text, "sketch.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps.len(), 6);
    assert_eq!(s.workload.rate_per_s, 50.0);
    let StepKind::Expect(e) = &s.steps[2].kind else {
        panic!("step 3 is an expect")
    };
    assert!(matches!(e.condition, Condition::Detected { .. }));
    assert_eq!(e.within.resolve(&s.cluster), Duration::from_millis(700));
    assert_eq!(e.within.to_string(), "failure_timeout + 2 * heartbeat");
    assert_eq!(s.steps[2].line, 9);
    assert_eq!(
        s.checks.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["election", "delivery"]
    );
    // An expectation without `within` gets the checker default, from the settings.
    let t = text.replace(
        "{leader: {not: old_leader, within: 2s}}",
        "{leader: {not: old_leader}}",
    );
    let s = scenario::parse(&t, "sketch.yaml").unwrap();
    let StepKind::Expect(e) = &s.steps[3].kind else {
        panic!()
    };
    assert_eq!(
        e.within.resolve(&s.cluster),
        scenario::defaults::failover(&s.cluster)
    );
}

const BASE: &str = "name: x
about: a test scenario that is long enough to tell a story
cluster:
  nodes: 5
  heartbeat: 100ms
workload: {users: 3, rooms: [general], rate: 5/s}
steps:
  - await: {leader: any}
  - kill:
      target: leader
      as: old
  - expect:
      leader:
        not: old
";

fn err(text: &str) -> String {
    match scenario::parse(text, "scenarios/x.yaml") {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_base_text_is_valid() {
    scenario::parse(BASE, "scenarios/x.yaml").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn unknown_key_in_a_step_names_file_line_column_key_and_choices() {
    let e = err(&BASE.replace("        not: old", "        not: old\n      whithin: 2s"));
    assert_eq!(
        e,
        "scenarios/x.yaml:15:7: unknown key `whithin` in step 3 (expect); expected one of: \
         leader, detected, rejoined, stepped_down, no_leader, no_commit, no_leader_change, \
         converged, within"
    );
}

#[test]
fn unknown_top_level_and_cluster_keys_are_rejected() {
    let e = err(&BASE.replace("name: x", "name: x\nchecks_: []"));
    assert!(
        e.starts_with("scenarios/x.yaml:2:1: unknown key `checks_`"),
        "{e}"
    );
    let e = err(&BASE.replace("  nodes: 5", "  node: 5"));
    assert!(
        e.starts_with("scenarios/x.yaml:4:3: unknown key `node` in `cluster`"),
        "{e}"
    );
}

#[test]
fn a_misspelt_step_action_is_rejected() {
    let e = err(&BASE.replace("  - kill:", "  - kil:"));
    assert!(
        e.starts_with("scenarios/x.yaml:9:5: unknown key `kil` in step 2;"),
        "{e}"
    );
    assert!(e.contains("kill"), "{e}");
}

#[test]
fn bad_durations_are_rejected_where_they_are() {
    let e = err(&BASE.replace("heartbeat: 100ms", "heartbeat: 100"));
    assert!(
        e.starts_with("scenarios/x.yaml:5:3: bad duration for `heartbeat`"),
        "{e}"
    );
    let e = err(&format!("{BASE}  - sleep: 2 seconds\n"));
    assert!(
        e.starts_with("scenarios/x.yaml:15:5: bad duration for `sleep`"),
        "{e}"
    );
    let e = err(&BASE.replace("{leader: any}", "{leader: any, within: soon}"));
    assert!(e.starts_with("scenarios/x.yaml:8:"), "{e}");
    assert!(e.contains("`soon`"), "{e}");
}

#[test]
fn unknown_targets_are_rejected() {
    let e = err(&BASE.replace("target: leader", "target: leadr"));
    assert!(
        e.starts_with("scenarios/x.yaml:10:15: unknown target `leadr` in step 2 (kill)"),
        "{e}"
    );
    assert!(e.contains("ring_successor_of_leader"), "{e}");
    let e = err(&BASE.replace("target: leader", "target: {node: 9}"));
    assert!(e.contains("node 9 does not exist"), "{e}");
}

#[test]
fn an_alias_used_before_it_is_defined_is_rejected() {
    let text = BASE.replace("        not: old", "        not: old_leader");
    let e = err(&text);
    assert!(
        e.starts_with("scenarios/x.yaml:14:14: unknown target `old_leader` in step 3"),
        "{e}"
    );
    assert!(e.contains("defined so far: old"), "{e}");
    // Defining and using in the same step is also too early.
    let e = err(&BASE.replace("target: leader", "target: old"));
    assert!(e.contains("unknown target `old`"), "{e}");
}

#[test]
fn bad_values_are_rejected() {
    let e = err(&BASE.replace("nodes: 5", "nodes: 0"));
    assert!(e.starts_with("scenarios/x.yaml:4:3: `nodes: 0`"), "{e}");
    let e = err(&BASE.replace("heartbeat: 100ms", "heartbeat: 100ms\n  quorum: most"));
    assert!(e.contains("unknown quorum `most`"), "{e}");
    for e in ["lcr", "raft", "bully"] {
        let text = BASE.replace("nodes: 5", &format!("nodes: 5\n  election: {e}"));
        let s = scenario::parse(&text, "scenarios/x.yaml").expect("every algorithm validates");
        assert_eq!(s.cluster.election.name(), e);
    }
    let e = err(&BASE.replace("nodes: 5", "nodes: 5\n  election: paxos"));
    assert!(e.contains("unknown election `paxos`"), "{e}");
    assert!(e.contains("expected one of: lcr, raft, bully"), "{e}");
    let e = err(&format!("{BASE}checks: [delivery, electoin]\n"));
    assert!(e.contains("unknown check `electoin`"), "{e}");
    let e = err(&format!(
        "{BASE}checks: [delivery]\nexpect_failures: [election]\n"
    ));
    assert!(e.contains("not in `checks`"), "{e}");
    let e = err(&format!("{BASE}  - offline: {{user: bob}}\n"));
    assert!(e.contains("unknown user `bob`"), "{e}");
    let e = err(&format!(
        "{BASE}  - partition: {{groups: [[leader], rest, rest]}}\n"
    ));
    assert!(e.contains("`rest` may appear in one group only"), "{e}");
}

#[test]
fn a_step_must_have_exactly_one_action() {
    let e = err(&BASE.replace(
        "  - await: {leader: any}",
        "  - await: {leader: any}\n    sleep: 1s",
    ));
    assert!(e.contains("several actions (await, sleep)"), "{e}");
    let e = err(&BASE.replace("{leader: any}", "{leader: any, converged: {}}"));
    assert!(e.contains("exactly one condition"), "{e}");
}

#[test]
fn not_yaml_at_all_is_an_error_with_a_position() {
    let e = err("name: [unclosed\n");
    assert!(e.starts_with("scenarios/x.yaml:"), "{e}");
    assert!(!e.starts_with("scenarios/x.yaml:0"), "{e}");
}

#[test]
fn every_duration_has_a_maximum() {
    // Issue 10 e: this validated, and the run would have slept for ever.
    let e = err(&format!("{BASE}  - sleep: 99999999999999999999999s\n"));
    assert!(
        e.starts_with("scenarios/x.yaml:15:5: bad duration for `sleep`"),
        "{e}"
    );
    assert!(e.contains("maximum of 1h"), "{e}");
    let e = err(&BASE.replace("{leader: any}", "{leader: any, within: 2 * 3600s}"));
    assert!(e.contains("maximum of 1h"), "{e}");
    let e = err(&BASE.replace("heartbeat: 100ms", "heartbeat: 61m"));
    assert!(e.contains("maximum of 1h"), "{e}");
}

#[test]
fn sleep_takes_a_deadline_expression() {
    let s = scenario::parse(
        &format!("{BASE}  - sleep: failure_timeout + 2 * heartbeat\n"),
        "scenarios/x.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let last = s.steps.last().expect("steps");
    assert_eq!(last.kind, StepKind::Sleep(Duration::from_millis(700)));
}

#[test]
fn validation_is_linear_in_the_number_of_steps() {
    // Issue 10 e: locating each step rescanned the file (16,000 steps took 4 s; 40,000
    // would take ~25 s). Linear, 40,000 steps take well under a second, even unoptimised.
    let mut text = String::from("name: big\nabout: many steps in one file\nsteps:\n");
    for _ in 0..20_000 {
        text.push_str("  - sleep: 1ms\n  - await: {leader: any, within: 1s}\n");
    }
    let t0 = std::time::Instant::now();
    let s = scenario::parse(&text, "big.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps.len(), 40_000);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "40,000 steps took {:?}",
        t0.elapsed()
    );
    // A repeat validates its steps once and copies them: 1000 × 150 steps, also fast.
    let mut text = String::from(
        "name: big\nabout: many steps in one file\nsteps:\n  - repeat:\n      times: 1000\n      steps:\n",
    );
    for _ in 0..75 {
        text.push_str("        - sleep: 1ms\n        - await: {leader: any, within: 1s}\n");
    }
    let t0 = std::time::Instant::now();
    let s = scenario::parse(&text, "big.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps.len(), 150_000);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "a repeat to 150,000 steps took {:?}",
        t0.elapsed()
    );
}

#[test]
fn a_closed_stdout_does_not_abort_the_harness() {
    // Issue 10 e: `harness validate … | head` aborted (exit 134) on the first write after
    // the pipe closed. The reading end is closed before the harness writes anything.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("validate")
        .arg(scenarios_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("harness runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("harness exits");
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn several_targets_in_one_fault_step() {
    let s = scenario::parse(
        &format!("{BASE}  - kill: {{target: [leader, random_follower], as: pair}}\n  - restart: {{target: pair}}\n"),
        "scenarios/x.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.steps[3].kind,
        StepKind::Fault {
            action: FaultAction::Kill,
            target: Target::Several(vec![Target::Leader, Target::RandomFollower]),
            alias: Some("pair".into()),
        }
    );
    // The same target twice is a slip (two random followers are two different nodes).
    let e = err(&format!("{BASE}  - kill: {{target: [leader, leader]}}\n"));
    assert!(
        e.starts_with("scenarios/x.yaml:15:5:") && e.contains("target `leader` is listed twice"),
        "{e}"
    );
    scenario::parse(
        &format!("{BASE}  - stop: {{target: [random_follower, random_follower]}}\n"),
        "scenarios/x.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let e = err(&format!("{BASE}  - kill: {{target: []}}\n"));
    assert!(e.contains("an empty target list in step 4 (kill)"), "{e}");
    let e = err(&format!("{BASE}  - kill: {{target: [leader, leadr]}}\n"));
    assert!(
        e.starts_with("scenarios/x.yaml:15:")
            && e.contains("unknown target `leadr` in step 4 (kill)"),
        "{e}"
    );
}

#[test]
fn partition_groups_and_cut_ends_take_as_names() {
    let text = format!(
        "{BASE}  - partition: {{groups: [{{nodes: [leader, random_follower], as: leader_side}}, {{nodes: rest, as: other_side}}]}}\n  - expect: {{no_leader: {{among: other_side, for: 2s}}}}\n  - cut: {{from: {{nodes: leader_side, as: cutters}}, to: {{node: 3}}}}\n  - restart: {{target: cutters}}\n"
    );
    let s = scenario::parse(&text, "scenarios/x.yaml").unwrap_or_else(|e| panic!("{e}"));
    match &s.steps[3].kind {
        StepKind::Partition { groups, aliases } => {
            assert_eq!(groups.len(), 2);
            assert_eq!(
                aliases,
                &vec![
                    Some("leader_side".to_string()),
                    Some("other_side".to_string())
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    match &s.steps[5].kind {
        StepKind::Cut {
            from,
            from_alias,
            to_alias,
            ..
        } => {
            assert_eq!(from, &Target::Alias("leader_side".into()));
            assert_eq!(from_alias.as_deref(), Some("cutters"));
            assert_eq!(to_alias, &None);
        }
        other => panic!("{other:?}"),
    }
    // A group's name is defined after its step: using it in the same step is too early.
    let e = err(&format!(
        "{BASE}  - partition: {{groups: [{{nodes: leader, as: a}}, a]}}\n"
    ));
    assert!(
        e.contains("unknown target `a` in step 4 (partition)"),
        "{e}"
    );
    let e = err(&format!(
        "{BASE}  - partition: {{groups: [{{nodes: leader, as: a}}, {{nodes: rest, as: a}}]}}\n"
    ));
    assert!(e.contains("alias `a` is given twice in this step"), "{e}");
    let e = err(&format!(
        "{BASE}  - partition: {{groups: [{{nodes: leader, as: a, nodez: 1}}, rest]}}\n"
    ));
    assert!(e.starts_with("scenarios/x.yaml:15:"), "{e}");
    assert!(e.contains("unknown key `nodez`"), "{e}");
    let e = err(&format!("{BASE}  - cut: {{from: rest, to: leader}}\n"));
    assert!(e.contains("a cut's `from` is a target"), "{e}");
}

#[test]
fn repeat_expands_its_steps_with_positions_inside_it() {
    let text = format!(
        "{BASE}  - repeat:\n      times: 3\n      steps:\n        - kill: {{target: random_follower, as: victim}}\n        - sleep: 1s\n        - restart: {{target: victim}}\n  - sleep: 2s\n"
    );
    let s = scenario::parse(&text, "scenarios/x.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps.len(), 3 + 3 * 3 + 1);
    let kinds: Vec<&str> = s.steps.iter().map(|st| st.kind.keyword()).collect();
    assert_eq!(
        &kinds[3..],
        &[
            "kill", "sleep", "restart", "kill", "sleep", "restart", "kill", "sleep", "restart",
            "sleep"
        ]
    );
    // Indexes run over the expanded plan; lines are the inner steps'.
    assert!(s.steps.iter().enumerate().all(|(i, st)| st.index == i));
    assert_eq!(
        (s.steps[3].line, s.steps[6].line, s.steps[12].line),
        (18, 18, 21)
    );
    // An error inside names the inner step and where it is.
    let bad = text.replace("restart: {target: victim}", "restart: {target: victm}");
    let e = err(&bad);
    assert!(
        e.starts_with("scenarios/x.yaml:20:29: unknown target `victm` in step 4.3 (restart)"),
        "{e}"
    );
    let e = err(&text.replace("times: 3", "times: 0"));
    assert!(
        e.starts_with("scenarios/x.yaml:16:7: `times: 0`: must be 1 to 1000 in step 4 (repeat)"),
        "{e}"
    );
    let e = err(&text.replace(
        "        - sleep: 1s",
        "        - sleep: 1s\n          kill: {target: leader}",
    ));
    assert!(
        e.contains("step 4.2: step has several actions (kill, sleep)"),
        "{e}"
    );
    let e = err(&text.replace("      times: 3", "      times: 3\n      tims: 2"));
    assert!(e.contains("unknown key `tims`"), "{e}");
    // Nested repeats multiply, up to a bound.
    let nested = format!(
        "{BASE}  - repeat:\n      times: 1000\n      steps:\n        - repeat: {{times: 1000, steps: [{{sleep: 1ms}}]}}\n"
    );
    let e = err(&nested);
    assert!(e.contains("more than 200000"), "{e}");
}

#[test]
fn commit_level_conditions_validate() {
    let s = scenario::parse(
        &format!("{BASE}  - expect: {{no_commit: {{among: minority, for: 2s}}}}\n  - expect: {{no_leader_change: {{for: failure_timeout * 4}}}}\n"),
        "scenarios/x.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    match (&s.steps[3].kind, &s.steps[4].kind) {
        (StepKind::Expect(a), StepKind::Expect(b)) => {
            assert_eq!(
                a.condition,
                Condition::NoCommit {
                    among: Target::Minority,
                    duration: Duration::from_secs(2)
                }
            );
            assert_eq!(
                b.condition,
                Condition::NoLeaderChange {
                    duration: Duration::from_secs(2)
                }
            );
        }
        other => panic!("{other:?}"),
    }
    let e = err(&format!(
        "{BASE}  - expect: {{no_leader_change: {{for: 2s}}, within: 1s}}\n"
    ));
    assert!(
        e.contains("`no_leader_change` takes `for`, not `within`"),
        "{e}"
    );
    let e = err(&format!(
        "{BASE}  - expect: {{no_commit: {{among: minority, for: 0s}}}}\n"
    ));
    assert!(e.contains("`for` must be longer than 0"), "{e}");
    let e = err(&format!(
        "{BASE}  - expect: {{no_commit: {{among: minority, for: 61m}}}}\n"
    ));
    assert!(e.contains("maximum of 1h"), "{e}");
    let e = err(&format!("{BASE}  - expect: {{no_commit: {{for: 2s}}}}\n"));
    assert!(e.starts_with("scenarios/x.yaml:15:"), "{e}");
    assert!(e.contains("among"), "{e}");
}

#[test]
fn duplicate_takes_a_target_and_a_percent() {
    let s = scenario::parse(
        &format!("{BASE}  - duplicate: {{to: all, percent: 10}}\n"),
        "scenarios/x.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.steps[3].kind.keyword(), "duplicate");
    let e = err(&format!("{BASE}  - duplicate: {{to: all, percent: 0}}\n"));
    assert!(
        e.starts_with(
            "scenarios/x.yaml:15:26: `percent: 0`: must be 1 to 100 in step 4 (duplicate)"
        ),
        "{e}"
    );
    let e = err(&format!("{BASE}  - duplicate: {{to: all}}\n"));
    assert!(e.contains("percent"), "{e}");
}

#[test]
fn placement_takes_leader_spread_or_a_map_of_users_to_nodes() {
    use harness::scenario::Placement;
    let with = |p: &str| BASE.replace("rate: 5/s}", &format!("rate: 5/s, placement: {p}}}"));
    let s = scenario::parse(BASE, "scenarios/x.yaml").unwrap();
    assert_eq!(s.workload.placement, Placement::Spread, "the default");
    let s = scenario::parse(&with("leader"), "scenarios/x.yaml").unwrap();
    assert_eq!(s.workload.placement, Placement::Leader);
    let s = scenario::parse(&with("{u1: 2, u3: 5}"), "scenarios/x.yaml").unwrap();
    assert_eq!(
        s.workload.placement,
        Placement::Pinned([("u1".to_string(), 2), ("u3".to_string(), 5)].into())
    );
    let e = err(&with("{u4: 1}"));
    assert!(
        e.starts_with("scenarios/x.yaml:6:") && e.contains("no workload user `u4`"),
        "{e}"
    );
    let e = err(&with("{u1: 6}"));
    assert!(e.contains("a node id from 1 to 5"), "{e}");
    let e = err(&with("everywhere"));
    assert!(e.contains("use `leader`, `spread`"), "{e}");
}
