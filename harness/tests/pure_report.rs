//! The report: verdicts with expected failures, the aligned table, summary.json and a
//! well-formed, escaped junit.xml.

use harness::checkers::CheckResult;
use harness::report::{self, RunOutcome, StepResult, StepStatus, Verdict};
use harness::scenario::{self, Scenario};

fn scenario(extra: &str) -> Scenario {
    let text = format!(
        "name: rep\nabout: a scenario for report tests, with enough words\n\
         steps:\n  - sleep: 1s\n  - kill: {{target: leader}}\nchecks: [election, delivery]\n{extra}"
    );
    scenario::parse(&text, "rep.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn check(name: &str, passed: bool) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed,
        figure: "failover 640 ms (max of 1)".into(),
        deadline: Some("1140ms = failure_timeout + 2 * heartbeat + 440ms".into()),
        headroom_ms: Some(500),
        details: vec!["epoch 3 has 2 leaders: 1, 4 <&\"'>".into()],
        samples: Default::default(),
    }
}

fn outcome(election_passed: bool) -> RunOutcome {
    RunOutcome {
        run_id: "r1".into(),
        started_at_ms: 1,
        wall_ms: 23_456,
        timings_ms: vec![("cluster_start".into(), 3000), ("teardown".into(), 900)],
        steps: vec![
            StepResult {
                index: 0,
                keyword: "sleep".into(),
                description: "sleep 1s".into(),
                status: StepStatus::Passed,
                figure_ms: None,
                deadline_ms: None,
                message: None,
                elapsed_ms: 1000,
            },
            StepResult {
                index: 1,
                keyword: "expect".into(),
                description: "expect leader not [3]".into(),
                status: StepStatus::Passed,
                figure_ms: Some(812),
                deadline_ms: Some(1140),
                message: None,
                elapsed_ms: 830,
            },
        ],
        checks: vec![check("election", election_passed), check("delivery", true)],
        errors: vec![],
        history_path: Some("out/history.jsonl".into()),
    }
}

#[test]
fn verdicts_follow_checks_steps_errors_and_expected_failures() {
    let plain = scenario("");
    assert_eq!(outcome(true).verdict(&plain), Verdict::Pass);
    assert_eq!(outcome(false).verdict(&plain), Verdict::Fail);
    let mut o = outcome(true);
    o.steps[1].status = StepStatus::Failed;
    assert_eq!(o.verdict(&plain), Verdict::Fail);
    let mut o = outcome(true);
    o.errors.push("docker is not reachable".into());
    assert_eq!(o.verdict(&plain), Verdict::Error);
    assert_eq!(Verdict::Error.exit_code(), 2);

    let selftest = scenario("expect_failures: [election]\n");
    assert_eq!(outcome(false).verdict(&selftest), Verdict::Pass);
    assert_eq!(
        outcome(true).verdict(&selftest),
        Verdict::Fail,
        "a missed split brain fails"
    );
    let mut o = outcome(false);
    o.checks[1].passed = false;
    assert_eq!(
        o.verdict(&selftest),
        Verdict::Fail,
        "other checkers must still pass"
    );
}

#[test]
fn the_table_is_aligned_and_plain_without_a_terminal() {
    let s = scenario("expect_failures: [election]\n");
    let t = report::render_table(&s, &outcome(false), false);
    assert!(!t.contains('\x1b'), "no colour codes when not a terminal");
    let header = t
        .lines()
        .find(|l| l.trim_start().starts_with("# "))
        .expect("step header");
    let row = t
        .lines()
        .find(|l| l.contains("expect leader not [3]"))
        .expect("step row");
    assert_eq!(
        header.find("figure"),
        row.find("812 ms"),
        "figure column aligned:\n{t}"
    );
    assert!(row.contains("+328 ms"), "{row}");
    assert!(t.contains("PASS (expected failure caught)"), "{t}");
    assert!(
        t.contains("verdict: PASS (expected failure caught)  (exit 0)"),
        "{t}"
    );
    let coloured = report::render_table(&s, &outcome(false), true);
    assert!(coloured.contains("\x1b[32m"));
}

#[test]
fn summary_json_holds_the_table_and_timings() {
    let s = scenario("");
    let text = report::summary_json(&s, &outcome(false));
    let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["verdict"], "fail");
    assert_eq!(v["exit_code"], 1);
    assert_eq!(v["wall_ms"], 23_456);
    assert_eq!(v["timings_ms"]["cluster_start"], 3000);
    assert_eq!(v["steps"][1]["headroom_ms"], 328);
    assert_eq!(v["checks"][0]["status"], "failed");
    assert_eq!(v["checks"][0]["headroom_ms"], 500);
    assert_eq!(v["cluster"]["heartbeat_ms"], 100);
}

/// A small well-formedness check: balanced tags, quoted attributes, no raw `&` or `<`.
fn assert_well_formed(xml: &str) {
    let body = xml
        .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
        .expect("declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e)),
                "raw & in text: {text}"
            );
        }
        let gt = rest[lt..].find('>').expect("tag closes") + lt;
        let tag = &rest[lt + 1..gt];
        assert!(!tag.contains('<'), "raw < inside a tag: {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(
                tag.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        rest = &rest[gt + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn junit_has_a_testcase_per_step_and_check_and_is_well_formed() {
    let s = scenario("");
    let mut o = outcome(false);
    o.steps[1].status = StepStatus::Failed;
    o.steps[1].message = Some("not met within 1140 ms: leaders [3] <stale> & \u{1} \"x\"".into());
    o.errors
        .push("image <faultline/chat-node:latest> missing".into());
    let xml = report::junit_xml(&s, &o);
    assert_well_formed(&xml);
    assert_eq!(xml.matches("<testcase ").count(), 5, "{xml}");
    assert!(
        xml.contains("tests=\"5\" failures=\"2\" errors=\"1\""),
        "{xml}"
    );
    assert!(xml.contains("&lt;stale&gt; &amp;"), "{xml}");
    assert!(!xml.contains('\u{1}'));
    assert!(xml.contains("name=\"check election\""));
}

#[test]
fn write_puts_every_report_file_in_the_output_directory() {
    let dir = std::env::temp_dir().join(format!("hcheck-report-{}", std::process::id()));
    let s = scenario("");
    // The runner writes history.jsonl first; report.html is built from it.
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("history.jsonl");
    std::fs::write(&history, "").unwrap();
    let mut o = outcome(true);
    o.history_path = Some(history.display().to_string());
    report::write(&dir, &s, &o).unwrap();
    for file in ["summary.json", "junit.xml", "report.html"] {
        assert!(dir.join(file).exists(), "{file} missing");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "prints the table for a person to look at"]
fn show_table() {
    let s = scenario("expect_failures: [election]\n");
    println!("{}", report::render_table(&s, &outcome(false), false));
}
