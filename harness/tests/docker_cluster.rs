//! Cluster mechanics against a real Docker engine: network, static addresses, log following
//! across a restart, kill / pause / resume, nft partitions in the nodes' namespaces, cleanup.
//! Skips (with the reason printed) when Docker or the image is missing. The image is
//! `faultline/chat-node:latest` or `$FAULTLINE_TEST_IMAGE`; any image whose entrypoint keeps
//! running and prints lines will do, because nothing here depends on the node electing.

mod common;

use harness::docker::{self, clean_run, Cluster, ClusterSpec, LogStreams, Nemesis};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

/// Collects lines until every node in `want` has written at least `min` lines since the call.
async fn lines_from(
    rx: &mut UnboundedReceiver<docker::LogLine>,
    want: &[u64],
    min: usize,
) -> HashMap<u64, Vec<String>> {
    let mut got: HashMap<u64, Vec<String>> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while want.iter().any(|id| got.get(id).map_or(0, Vec::len) < min) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(line)) => got.entry(line.node).or_default().push(line.text),
            _ => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_faults_logs_and_cleanup() {
    let Some((docker, image)) = common::docker_and_image_or_skip().await else {
        return;
    };
    let run_id = docker::new_run_id();
    let guard = docker::CleanupGuard::new(&run_id);
    let spec = ClusterSpec {
        run_id: run_id.clone(),
        image,
        nodes: 3,
        serve_args: vec!["--cluster-size".into(), "3".into()],
        env: vec![docker::secret::cluster_secret_env()],
    };
    let cluster = Cluster::create(&docker, &spec)
        .await
        .expect("create cluster");
    assert_eq!(
        common::labelled_objects(&docker, &run_id).await,
        4,
        "3 containers + 1 network"
    );
    assert_eq!(cluster.node(2).unwrap().ip, cluster.subnet.host(12));

    let (logs, mut rx) = LogStreams::start(&cluster);
    cluster.start_all().await.expect("start");
    let first = lines_from(&mut rx, &[1, 2, 3], 1).await;
    for id in 1..=3 {
        assert!(
            first.contains_key(&id),
            "node {id} wrote nothing: {first:?}"
        );
    }

    let mut nemesis = Nemesis::new(cluster.clone());
    nemesis.pause(&[2]).await.expect("pause");
    nemesis.resume(&[2]).await.expect("resume");

    if Nemesis::check_partition_support().is_ok() {
        nemesis
            .partition(&[vec![1], vec![2, 3]])
            .await
            .expect("partition");
        let pid = cluster.pid(1).await.unwrap().expect("node 1 runs");
        let ruleset = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["nft", "list", "table", "inet", "faultline"])
            .output()
            .expect("nsenter");
        let text = String::from_utf8_lossy(&ruleset.stdout);
        assert!(
            text.contains(&cluster.node(2).unwrap().ip.to_string()),
            "{text}"
        );
        assert!(
            text.contains(&cluster.node(3).unwrap().ip.to_string()),
            "{text}"
        );
        nemesis.heal().await.expect("heal");
    } else {
        eprintln!("partition part skipped: not root or no nft");
    }

    nemesis.kill(&[3]).await.expect("kill");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        cluster.pid(3).await.unwrap(),
        None,
        "killed node still runs"
    );
    let before = cluster.node(3).unwrap().container_id.clone();
    nemesis.restart(&[3]).await.expect("restart");
    logs.reattach(3);
    assert!(
        cluster.pid(3).await.unwrap().is_some(),
        "restarted node not running"
    );
    assert_eq!(cluster.node(3).unwrap().container_id, before);
    let after = lines_from(&mut rx, &[3], 2).await;
    let after = after.get(&3).cloned().unwrap_or_default();
    assert!(after.len() >= 2, "no lines after restart");
    let earlier: Vec<&String> = first.values().flatten().collect();
    assert!(
        after.iter().all(|line| !earlier.contains(&line)),
        "lines from before the restart were forwarded twice"
    );

    logs.stop().await;
    let removed = clean_run(&docker, &run_id).await.expect("clean");
    assert_eq!(removed.containers.len(), 3);
    assert_eq!(removed.networks.len(), 1);
    guard.disarm();
    assert_eq!(
        common::labelled_objects(&docker, &run_id).await,
        0,
        "leftovers"
    );
}
