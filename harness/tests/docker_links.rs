//! Link faults against a real Docker engine: loss drops packets in the receiver's namespace
//! (its nft counter moves), delay holds packets (a TCP connect to the delayed node takes the
//! delay, and is fast again after the heal), bandwidth puts tbf on the host end of the
//! node's veth, and the heal removes them all. Skips when Docker,
//! the image or root (nsenter, nft) is missing.

mod common;

use harness::backend::LinkFault;
use harness::docker::{self, Cluster, ClusterSpec, Nemesis};
use std::time::{Duration, Instant};

/// How long a TCP connect from the host to `addr` takes (the SYN goes through the node's
/// input hook, so a delay there shows in full).
async fn connect_ms(addr: std::net::SocketAddr) -> u128 {
    let t = Instant::now();
    let _ =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await;
    t.elapsed().as_millis()
}

fn nft_table(pid: u32) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["nft", "list", "table", "inet", "faultline"])
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_drops_delay_holds_and_heal_removes_both() {
    let Some((docker, image)) = common::docker_and_image_or_skip().await else {
        return;
    };
    if let Err(e) = Nemesis::check_partition_support() {
        eprintln!("skipped: {e}");
        return;
    }
    let run_id = docker::new_run_id();
    let _guard = docker::CleanupGuard::new(&run_id);
    let spec = ClusterSpec {
        run_id: run_id.clone(),
        image,
        nodes: 2,
        serve_args: vec!["--cluster-size".into(), "2".into()],
        env: vec![docker::secret::cluster_secret_env()],
    };
    let cluster = Cluster::create(&docker, &spec).await.expect("create");
    cluster.start_all().await.expect("start");
    let addr = cluster.node(2).unwrap().client_addr();
    // The node listens within a second or two.
    let t = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() && t.elapsed().as_secs() < 10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = cluster.pid(2).await.unwrap().expect("node 2 runs");
    let mut nemesis = Nemesis::new(cluster.clone());

    let loss = LinkFault::Loss {
        from: vec![1],
        to: vec![2],
        percent: 50,
    };
    let (_, mechanism) = nemesis.link(&loss).await.expect("loss");
    assert_eq!(mechanism, "nft numgen");
    // Node 1 multicasts a heartbeat every 100 ms; half are dropped at node 2.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let table = nft_table(pid);
    let dropped: u64 = table
        .split("counter packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loss counter in {table}"));
    assert!(
        dropped >= 3,
        "only {dropped} packets dropped in 2 s: {table}"
    );

    let before = connect_ms(addr).await;
    let delay = LinkFault::Delay {
        to: vec![2],
        ms: 300,
        jitter_ms: 0,
    };
    let (_, mechanism) = nemesis.link(&delay).await.expect("delay");
    eprintln!("delay mechanism on this host: {mechanism}");
    let during = connect_ms(addr).await;
    assert!(
        (280..2000).contains(&during),
        "connect took {during} ms under a 300 ms delay (before: {before} ms)"
    );

    nemesis.heal().await.expect("heal");
    let after = connect_ms(addr).await;
    assert!(after < 150, "connect took {after} ms after the heal");
    assert!(
        !nft_table(pid).contains("numgen"),
        "loss rule left after the heal"
    );

    // Bandwidth: tbf on the host end of node 2's veth, removed by the heal.
    let bandwidth = LinkFault::Bandwidth {
        to: vec![2],
        rate_bps: 1_000_000,
    };
    let (_, mechanism) = nemesis.link(&bandwidth).await.expect("bandwidth");
    assert_eq!(mechanism, "tbf");
    let veth = harness::docker::links::host_veth(pid).await.expect("veth");
    let qdisc = |veth: &str| {
        let out = std::process::Command::new("tc")
            .args(["qdisc", "show", "dev", veth])
            .output()
            .expect("tc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(qdisc(&veth).contains("tbf"), "{}", qdisc(&veth));
    assert!(qdisc(&veth).contains("rate 1Mbit"), "{}", qdisc(&veth));
    nemesis.heal().await.expect("heal");
    assert!(!qdisc(&veth).contains("tbf"), "{}", qdisc(&veth));
    cluster.remove().await.expect("remove");
    assert_eq!(common::labelled_objects(&docker, &run_id).await, 0);
}
