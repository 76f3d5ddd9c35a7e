//! `harness bench`: a fresh cluster in Docker (the same network, labels and cleanup as a
//! scenario run), driven by the Rust load generator in [`load`], with the figures issue 8 asks
//! for written to `DIR/bench.json` and printed as a table. A benchmark, not a test: nothing
//! here asserts a speed.

pub mod figures;
pub mod load;
pub mod procfs;

use crate::docker::{self, CleanupGuard, Cluster, ClusterSpec, LogLine, LogStreams};
use crate::report::Verdict;
use chat_node::client::Connection;
use chat_node::events::{Event, EventRecord};
use chat_node::ids::Role;
use chat_node::protocol::Request;
use figures::{BenchReport, IoSample, Latency};
use procfs::ProcSample;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::time::Instant;

/// How long the cluster may take to elect a leader that sees every node.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Where the load generator's users log in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Every user on the leader (the figure issue 8 started from).
    #[default]
    Leader,
    /// User `i` on server `i mod n` in id order; followers forward writes to the leader and
    /// deliver from their own applied state (issue 12).
    Spread,
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub image: String,
    pub nodes: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub outstanding: usize,
    pub rate: Option<f64>,
    pub connections: usize,
    pub placement: Placement,
    pub text_bytes: usize,
    pub heartbeat: Duration,
    pub failure_timeout: Duration,
    /// Extra `chat-node serve` flags for every node.
    pub node_args: Vec<String>,
    pub out: PathBuf,
}

/// Runs the benchmark; `Verdict::Error` when it could not be made.
pub async fn run(opts: &BenchOptions) -> Verdict {
    let run_id = docker::new_run_id();
    crate::say!(
        "▶ bench — run {run_id} · {} nodes · image {}",
        opts.nodes,
        opts.image
    );
    let client = match docker::connect().await {
        Ok(c) => c,
        Err(e) => {
            crate::say_err!("error: {e}");
            return Verdict::Error;
        }
    };
    if let Err(e) = docker::ensure_image(&client, &opts.image).await {
        crate::say_err!("error: {e}");
        return Verdict::Error;
    }
    let guard = CleanupGuard::new(&run_id);
    let spec = ClusterSpec {
        run_id: run_id.clone(),
        image: opts.image.clone(),
        nodes: opts.nodes,
        serve_args: serve_args(opts, &run_id),
        env: vec![docker::secret::cluster_secret_env()],
    };
    let outcome = tokio::select! {
        r = bench(&client, &spec, opts) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted: the cluster is being removed".into()),
    };
    // Dropping the guard removes everything labelled with this run.
    drop(guard);
    match outcome {
        Ok(report) => {
            crate::say_inline!("{}", report.table());
            let path = opts.out.join("bench.json");
            let written = std::fs::create_dir_all(&opts.out).and_then(|_| {
                std::fs::write(
                    &path,
                    serde_json::to_vec_pretty(&report).unwrap_or_default(),
                )
            });
            match written {
                Ok(()) => {
                    crate::say!("  output: {}", path.display());
                    Verdict::Pass
                }
                Err(e) => {
                    crate::say_err!("error: writing {}: {e}", path.display());
                    Verdict::Error
                }
            }
        }
        Err(e) => {
            crate::say_err!("error: {e}");
            Verdict::Error
        }
    }
}

fn serve_args(opts: &BenchOptions, run_id: &str) -> Vec<String> {
    [
        "--cluster".to_string(),
        format!("fl-{run_id}"),
        "--cluster-size".into(),
        opts.nodes.to_string(),
        "--heartbeat".into(),
        format!("{}ms", opts.heartbeat.as_millis()),
        "--failure-timeout".into(),
        format!("{}ms", opts.failure_timeout.as_millis()),
    ]
    .into_iter()
    .chain(opts.node_args.iter().cloned())
    .collect()
}

/// Asks every node for its status until one leads with every node in its view.
async fn wait_for_leader(cluster: &Cluster) -> Result<(u64, String), String> {
    let deadline = Instant::now() + LEADER_WAIT;
    while Instant::now() < deadline {
        for node in &cluster.nodes {
            let addr = node.client_addr().to_string();
            let Ok(conn) = Connection::connect(&addr, Duration::from_millis(500)).await else {
                continue;
            };
            let Ok(reply) = conn
                .request(Request::Status, Duration::from_millis(500))
                .await
            else {
                continue;
            };
            if let Some(s) = reply.status {
                let all_alive = s.members.iter().filter(|m| m.alive).count() == cluster.nodes.len();
                if s.role == Role::Leader && all_alive && s.commit_index > 0 {
                    return Ok((node.id, addr));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "no leader with all {} nodes in view within {} s",
        cluster.nodes.len(),
        LEADER_WAIT.as_secs()
    ))
}

async fn sample_all(cluster: &Cluster, pids: &BTreeMap<u64, u32>) -> BTreeMap<u64, ProcSample> {
    let _ = cluster;
    pids.iter()
        .filter_map(|(id, pid)| procfs::sample(*pid).map(|s| (*id, s)))
        .collect()
}

async fn bench(
    docker: &bollard::Docker,
    spec: &ClusterSpec,
    opts: &BenchOptions,
) -> Result<BenchReport, String> {
    let t0 = Instant::now();
    let cluster = Cluster::create(docker, spec)
        .await
        .map_err(|e| e.to_string())?;
    let (logs, mut log_rx) = LogStreams::start(&cluster);
    cluster.start_all().await.map_err(|e| e.to_string())?;
    let (leader, leader_addr) = wait_for_leader(&cluster).await?;
    crate::say!(
        "  cluster up on {}; node {leader} leads ({} ms)",
        cluster.subnet,
        t0.elapsed().as_millis()
    );
    let mut pids = BTreeMap::new();
    for id in cluster.ids() {
        if let Ok(Some(pid)) = cluster.pid(id).await {
            pids.insert(id, pid);
        }
    }
    let addrs = match opts.placement {
        Placement::Leader => vec![leader_addr],
        Placement::Spread => cluster
            .nodes
            .iter()
            .map(|n| n.client_addr().to_string())
            .collect(),
    };
    let load_spec = load::LoadSpec {
        addrs,
        connections: opts.connections,
        outstanding: opts.outstanding,
        rate: opts.rate,
        duration: opts.duration,
        text_bytes: opts.text_bytes,
        request_timeout: Duration::from_secs(10),
    };
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let load = tokio::spawn(load::run(load_spec, opts.warmup, started_tx));
    let start = started_rx
        .await
        .map_err(|_| "the load generator stopped before sending".to_string())?;
    tokio::time::sleep_until(start + opts.warmup).await;
    let window_start = chat_node::runtime::event_log::wall_clock_ms();
    let before = sample_all(&cluster, &pids).await;
    tokio::time::sleep_until(start + opts.duration).await;
    let window_end = chat_node::runtime::event_log::wall_clock_ms();
    let after = sample_all(&cluster, &pids).await;
    let result = load.await.map_err(|e| format!("load generator: {e}"))??;
    // The io_stats written during the window's last second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    logs.stop().await;
    let mut lines = Vec::new();
    while let Ok(l) = log_rx.try_recv() {
        lines.push(l);
    }
    if let Err(e) = cluster.remove().await {
        crate::say_err!("  teardown: {e}; retrying by label");
    }
    Ok(report(
        opts,
        spec,
        leader,
        (window_start, window_end),
        &result,
        &lines,
        (&before, &after),
    ))
}

fn report(
    opts: &BenchOptions,
    spec: &ClusterSpec,
    leader: u64,
    window: (u64, u64),
    result: &load::LoadResult,
    lines: &[LogLine],
    (before, after): (&BTreeMap<u64, ProcSample>, &BTreeMap<u64, ProcSample>),
) -> BenchReport {
    let acks = &result.ack_ms;
    let acked = figures::acks_between(acks, window.0, window.1);
    let secs = (window.1 - window.0) as f64 / 1000.0;
    let h = &result.latency_us;
    let ms = |us: u64| us as f64 / 1000.0;
    let mut io: BTreeMap<u64, Vec<IoSample>> = BTreeMap::new();
    let mut leader_changes = 0;
    for l in lines.iter().filter(|l| l.stdout) {
        let Some(rec) = EventRecord::from_line(&l.text) else {
            continue;
        };
        match rec.event {
            Event::IoStats {
                fsyncs,
                datagrams_sent,
                datagram_bytes,
                send_errors,
                event_bytes,
                heartbeat_gap_max_ms,
                turn_max_ms,
                ..
            } => io.entry(l.node).or_default().push(IoSample {
                ts_ms: rec.ts_ms,
                fsyncs,
                datagrams_sent,
                datagram_bytes,
                send_errors,
                event_bytes,
                heartbeat_gap_max_ms,
                turn_max_ms,
            }),
            Event::LeaderElected { .. }
                if rec.node.0 == leader && rec.ts_ms >= window.0 && rec.ts_ms <= window.1 =>
            {
                leader_changes += 1
            }
            _ => {}
        }
    }
    let none = Vec::new();
    let leader_io = io.get(&leader).unwrap_or(&none);
    let leader_per_ack = |f: fn(&IoSample) -> u64| figures::per_ack(leader_io, acks, window, f);
    let followers: Vec<f64> = io
        .iter()
        .filter(|(id, _)| **id != leader)
        .filter_map(|(_, s)| figures::per_ack(s, acks, window, |s| s.fsyncs))
        .collect();
    let event_bytes: Vec<f64> = io
        .values()
        .filter_map(|s| figures::per_ack(s, acks, window, |s| s.event_bytes))
        .collect();
    let (lb, la) = (before.get(&leader), after.get(&leader));
    let leader_proc = |f: fn(&ProcSample) -> u64| match (lb, la) {
        (Some(b), Some(a)) => figures::proc_per_ack(b, a, acked, f),
        _ => None,
    };
    let cpu_all: u64 = after
        .iter()
        .filter_map(|(id, a)| Some(a.cpu_ms.saturating_sub(before.get(id)?.cpu_ms)))
        .sum();
    let mut notes = Vec::new();
    if io.len() < opts.nodes {
        notes.push(format!(
            "io_stats from {} of {} nodes (an image without them reports no per-ack I/O)",
            io.len(),
            opts.nodes
        ));
    }
    BenchReport {
        run_id: spec.run_id.clone(),
        image: spec.image.clone(),
        nodes: opts.nodes,
        connections: opts.connections,
        placement: opts.placement,
        outstanding: opts.outstanding,
        rate: opts.rate,
        text_bytes: opts.text_bytes,
        heartbeat_ms: opts.heartbeat.as_millis() as u64,
        failure_timeout_ms: opts.failure_timeout.as_millis() as u64,
        duration_s: opts.duration.as_secs_f64(),
        warmup_s: opts.warmup.as_secs_f64(),
        window_ms: window,
        acked,
        acked_per_s: if secs > 0.0 { acked as f64 / secs } else { 0.0 },
        sent: result.sent,
        errors: result.errors.clone(),
        latency_ms: Latency {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
            samples: h.len(),
        },
        leader,
        leader_changes,
        leader_tx_bytes_per_ack: leader_proc(|s| s.tx_bytes),
        leader_tx_packets_per_ack: leader_proc(|s| s.tx_packets),
        leader_peer_bytes_per_ack: leader_per_ack(|s| s.datagram_bytes),
        leader_peer_datagrams_per_ack: leader_per_ack(|s| s.datagrams_sent),
        leader_send_errors: figures::bracket(leader_io, window.0, window.1)
            .map(|(a, b)| b.send_errors - a.send_errors),
        fsyncs_per_ack: leader_per_ack(|s| s.fsyncs),
        follower_fsyncs_per_ack: (!followers.is_empty())
            .then(|| followers.iter().sum::<f64>() / followers.len() as f64),
        event_bytes_per_ack: (!event_bytes.is_empty()).then(|| event_bytes.iter().sum()),
        leader_event_bytes_per_ack: leader_per_ack(|s| s.event_bytes),
        cpu_ms_per_ack: (acked > 0).then(|| cpu_all as f64 / acked as f64),
        leader_cpu_ms_per_ack: leader_proc(|s| s.cpu_ms),
        leader_heartbeat_gap_max_ms: figures::window_max(leader_io, window, |s| {
            s.heartbeat_gap_max_ms
        }),
        leader_turn_max_ms: figures::window_max(leader_io, window, |s| s.turn_max_ms),
        leader_rss_kb: la.map_or(0, |s| s.rss_kb),
        leader_rss_peak_kb: la.map_or(0, |s| s.hwm_kb),
        notes,
    }
}
