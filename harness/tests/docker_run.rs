//! Whole runs against a real Docker engine: a short scenario goes from YAML to a verdict with
//! its report files and leaves nothing behind; SIGINT during a run removes the cluster; Docker's
//! own healthcheck passes on the nodes a run starts.
//! Skips (with the reason printed) when Docker or the node image is missing.

mod common;

use harness::docker;
use harness::history::{ClientAction, FaultAction, History, Record};
use harness::report::Verdict;
use harness::runner::{self, RunOptions};
use harness::scenario;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs share the host's subnets: one at a time.
static DOCKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FAILOVER: &str = "\
name: test-failover
about: three nodes, the leader dies, users keep chatting
cluster: {nodes: 3, election: lcr, heartbeat: 100ms, failure_timeout: 500ms}
workload: {users: 3, rooms: [general], rate: 15/s, drain: 1s}
steps:
  - await: {leader: any, within: 10s}
  - kill: {target: leader, as: old}
  - expect: {leader: {not: old}}
  - sleep: 1s
checks: [election, delivery]
";

#[tokio::test]
async fn a_failover_scenario_ends_in_a_verdict_with_its_report_and_leaves_nothing() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some((docker, image)) = common::docker_and_image_or_skip().await else {
        return;
    };
    let s = scenario::parse(FAILOVER, "test-failover.yaml").expect("scenario parses");
    let out = std::env::temp_dir().join(format!("faultline-test-{}", docker::new_run_id()));
    let opts = RunOptions {
        image,
        out: Some(out.clone()),
        keep: false,
        seed: None,
    };
    let result = runner::run(&s, &opts).await;
    assert_eq!(result.verdict, Verdict::Pass, "see {}", out.display());
    for file in ["history.jsonl", "summary.json", "junit.xml"] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let checks = summary["checks"].as_array().expect("checks in summary");
    // The two listed checks, plus client_unavailability and placement: always measured, they
    // only report.
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        ["election", "delivery", "client_unavailability", "placement"],
        "{summary}"
    );
    // Users keep chatting through the failover: the new leader acknowledges their messages.
    let history = History::load(&out.join("history.jsonl")).expect("history loads");
    let killed_at = history
        .records()
        .iter()
        .find_map(|r| match r {
            Record::Fault(f) if f.action == FaultAction::Kill => Some(f.ts_ms),
            _ => None,
        })
        .expect("the kill is in the history");
    let acked_after = history
        .records()
        .iter()
        .filter(|r| {
            r.ts_ms() > killed_at
                && matches!(r, Record::Client(c) if matches!(c.action, ClientAction::Acked { .. }))
        })
        .count();
    assert!(
        acked_after >= 10,
        "only {acked_after} messages acknowledged after the leader was killed"
    );
    assert_eq!(common::labelled_objects(&docker, &result.run_id).await, 0);
    let _ = std::fs::remove_dir_all(&out);
}

const LONG: &str = "\
name: test-interrupted
about: sleeps long enough to be interrupted
cluster: {nodes: 3}
workload: {users: 2, rate: 5/s}
steps:
  - await: {leader: any, within: 10s}
  - sleep: 60s
checks: [delivery]
";

#[tokio::test]
async fn sigint_during_a_run_removes_the_cluster_and_exits_2() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some((docker, image)) = common::docker_and_image_or_skip().await else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("faultline-test-{}", docker::new_run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("interrupted.yaml");
    std::fs::write(&file, LONG).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(["run", "--image", &image, "--out"])
        .arg(dir.join("out"))
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("harness starts");
    let stdout = child.stdout.take().expect("stdout piped");
    // Read the run id, then wait until the first step is done (the cluster is up).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut run_id = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        if let Some(rest) = line.trim().strip_prefix("run ") {
            run_id = rest.split_whitespace().next().map(str::to_string);
        }
        if line.contains("[1]") {
            break;
        }
    }
    let run_id = run_id.expect("the harness printed its run id");
    assert!(
        common::labelled_objects(&docker, &run_id).await > 0,
        "cluster is up"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        assert!(
            Instant::now() < deadline,
            "harness did not exit after SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(code, Some(2), "an interrupted run could not be made");
    assert_eq!(
        common::labelled_objects(&docker, &run_id).await,
        0,
        "containers or network of run {run_id} left behind"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const HEALTH: &str = "\
name: test-health
about: three nodes run long enough for Docker's own healthcheck (interval 10 s) to judge them
cluster: {nodes: 3}
steps:
  - await: {leader: any, within: 10s}
  - sleep: 12s
checks: []
";

/// The image's HEALTHCHECK (`chat-node health`) run by Docker itself on the containers the
/// harness starts: it must ask the cluster the node serves (`--cluster fl-<run>`, read from
/// PID 1's command line), not the default `faultline`, or every probe is refused.
#[tokio::test]
async fn dockers_healthcheck_passes_on_the_nodes_the_harness_starts() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some((docker, image)) = common::docker_and_image_or_skip().await else {
        return;
    };
    let s = scenario::parse(HEALTH, "test-health.yaml").expect("scenario parses");
    let out = std::env::temp_dir().join(format!("faultline-test-{}", docker::new_run_id()));
    let opts = RunOptions {
        image,
        out: Some(out.clone()),
        keep: true,
        seed: None,
    };
    let result = runner::run(&s, &opts).await;
    let containers = common::labelled_containers(&docker, &result.run_id).await;
    let mut health = Vec::new();
    for c in &containers {
        let id = c.id.clone().unwrap_or_default();
        let inspected = docker
            .inspect_container(&id, None)
            .await
            .expect("inspect container");
        let state = inspected.state.and_then(|s| s.health);
        health.push((
            inspected.name.unwrap_or(id),
            state.as_ref().and_then(|h| h.status).map(|s| s.to_string()),
            state
                .and_then(|h| h.log)
                .and_then(|log| log.last().and_then(|l| l.output.clone())),
        ));
    }
    remove_labelled(&docker, &result.run_id).await;
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(result.verdict, Verdict::Pass, "{:?}", result);
    assert_eq!(health.len(), 3, "three node containers: {health:?}");
    for (name, status, last_output) in &health {
        assert_eq!(
            status.as_deref(),
            Some("healthy"),
            "{name}: last probe said {last_output:?}"
        );
    }
}

/// Removes what a kept run (`keep: true`) left: its labelled containers, then its network.
async fn remove_labelled(docker: &bollard::Docker, run_id: &str) {
    for c in common::labelled_containers(docker, run_id).await {
        let options = bollard::container::RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        let _ = docker
            .remove_container(&c.id.unwrap_or_default(), Some(options))
            .await;
    }
    for n in common::labelled_networks(docker, run_id).await {
        let _ = docker.remove_network(&n.id.unwrap_or_default()).await;
    }
}
