//! From raw readings to the figures of `bench.json`: every "per ack" figure divides a counter's
//! change over an interval by the acknowledgements inside that same interval. Pure, so it is
//! unit-tested without Docker.

use super::procfs::ProcSample;
use serde::Serialize;

/// One `io_stats` event of one node: its wall-clock time and counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoSample {
    pub ts_ms: u64,
    pub fsyncs: u64,
    pub datagrams_sent: u64,
    pub datagram_bytes: u64,
    pub send_errors: u64,
    pub event_bytes: u64,
    /// Maxima over the second before the sample (see `io_stats` in docs/EVENTS.md).
    pub heartbeat_gap_max_ms: u64,
    pub turn_max_ms: u64,
}

/// Acknowledgements with a time in `(from, to]` (`acks` sorted).
pub fn acks_between(acks: &[u64], from: u64, to: u64) -> u64 {
    let lo = acks.partition_point(|t| *t <= from);
    let hi = acks.partition_point(|t| *t <= to);
    (hi - lo) as u64
}

/// The first sample at or after `from` and the last at or before `to` (time-ordered input).
pub fn bracket(samples: &[IoSample], from: u64, to: u64) -> Option<(IoSample, IoSample)> {
    let a = samples.iter().find(|s| s.ts_ms >= from)?;
    let b = samples.iter().rev().find(|s| s.ts_ms <= to)?;
    (b.ts_ms > a.ts_ms).then_some((*a, *b))
}

/// `counter(b) - counter(a)` per acknowledgement in between, over one node's samples.
pub fn per_ack(
    samples: &[IoSample],
    acks: &[u64],
    window: (u64, u64),
    counter: impl Fn(&IoSample) -> u64,
) -> Option<f64> {
    let (a, b) = bracket(samples, window.0, window.1)?;
    let n = acks_between(acks, a.ts_ms, b.ts_ms);
    (n > 0).then(|| counter(&b).saturating_sub(counter(&a)) as f64 / n as f64)
}

/// The largest `field` of the samples that cover the window (each covers the second before
/// it); `None` without samples there.
pub fn window_max(
    samples: &[IoSample],
    window: (u64, u64),
    field: impl Fn(&IoSample) -> u64,
) -> Option<u64> {
    samples
        .iter()
        .filter(|s| s.ts_ms > window.0 && s.ts_ms <= window.1 + 1000)
        .map(field)
        .max()
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    /// Sends whose latency was recorded (scheduled inside the window and acknowledged).
    pub samples: u64,
}

/// Everything `bench.json` holds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    pub run_id: String,
    pub image: String,
    pub nodes: usize,
    pub connections: usize,
    /// Where the users logged in: `leader` or `spread`.
    pub placement: super::Placement,
    pub outstanding: usize,
    /// Target msg/s of the open loop; null for the closed loop.
    pub rate: Option<f64>,
    pub text_bytes: usize,
    pub heartbeat_ms: u64,
    pub failure_timeout_ms: u64,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// The measured window (wall-clock Unix ms) and what was acknowledged in it.
    pub window_ms: (u64, u64),
    pub acked: u64,
    pub acked_per_s: f64,
    pub sent: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub latency_ms: Latency,
    pub leader: u64,
    /// `leader_elected` events seen during the load (0 on a calm run).
    pub leader_changes: u64,
    /// `eth0` of the leader's network namespace: peer datagrams and client replies alike.
    pub leader_tx_bytes_per_ack: Option<f64>,
    pub leader_tx_packets_per_ack: Option<f64>,
    /// The leader's own count of peer datagrams (UDP payload), from `io_stats`.
    pub leader_peer_bytes_per_ack: Option<f64>,
    pub leader_peer_datagrams_per_ack: Option<f64>,
    pub leader_send_errors: Option<u64>,
    pub fsyncs_per_ack: Option<f64>,
    /// The followers' fsyncs per ack, averaged over the followers.
    pub follower_fsyncs_per_ack: Option<f64>,
    /// Event bytes all nodes wrote per ack (what Docker's log driver has to carry).
    pub event_bytes_per_ack: Option<f64>,
    pub leader_event_bytes_per_ack: Option<f64>,
    /// CPU time of all nodes per ack, and of the leader alone.
    pub cpu_ms_per_ack: Option<f64>,
    pub leader_cpu_ms_per_ack: Option<f64>,
    /// The leader's longest gap between two heartbeats it sent, and its longest event-loop
    /// turn, during the window (from `io_stats`).
    pub leader_heartbeat_gap_max_ms: Option<u64>,
    pub leader_turn_max_ms: Option<u64>,
    pub leader_rss_kb: u64,
    pub leader_rss_peak_kb: u64,
    pub notes: Vec<String>,
}

/// `(end - start) / acks` of a /proc counter.
pub fn proc_per_ack(
    start: &ProcSample,
    end: &ProcSample,
    acks: u64,
    f: impl Fn(&ProcSample) -> u64,
) -> Option<f64> {
    (acks > 0).then(|| f(end).saturating_sub(f(start)) as f64 / acks as f64)
}

impl BenchReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        fn opt(v: Option<f64>, digits: usize) -> String {
            v.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$}"))
        }
        let mode = match self.rate {
            Some(r) => format!("open loop at {r:.0} msg/s"),
            None => format!("closed loop, {} outstanding", self.outstanding),
        };
        let mode = match self.placement {
            super::Placement::Leader => format!("{mode}, users on the leader"),
            super::Placement::Spread => format!("{mode}, users spread over the servers"),
        };
        let rows = [
            ("acked msg/s", format!("{:.0}", self.acked_per_s)),
            (
                "latency p50 / p90 / p99 / max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms",
                    self.latency_ms.p50,
                    self.latency_ms.p90,
                    self.latency_ms.p99,
                    self.latency_ms.max
                ),
            ),
            (
                "acked / sent / errors",
                format!(
                    "{} / {} / {}",
                    self.acked,
                    self.sent,
                    self.errors.values().sum::<u64>()
                ),
            ),
            (
                "leader eth0 bytes / ack",
                opt(self.leader_tx_bytes_per_ack, 0),
            ),
            (
                "leader eth0 packets / ack",
                opt(self.leader_tx_packets_per_ack, 2),
            ),
            (
                "leader peer UDP bytes / ack",
                opt(self.leader_peer_bytes_per_ack, 0),
            ),
            (
                "leader peer datagrams / ack",
                opt(self.leader_peer_datagrams_per_ack, 2),
            ),
            ("leader fsyncs / ack", opt(self.fsyncs_per_ack, 3)),
            (
                "follower fsyncs / ack",
                opt(self.follower_fsyncs_per_ack, 3),
            ),
            (
                "event bytes / ack (all nodes)",
                opt(self.event_bytes_per_ack, 0),
            ),
            ("CPU ms / ack (all nodes)", opt(self.cpu_ms_per_ack, 3)),
            ("leader CPU ms / ack", opt(self.leader_cpu_ms_per_ack, 3)),
            (
                "leader heartbeat gap / turn, max",
                format!(
                    "{} / {} ms",
                    self.leader_heartbeat_gap_max_ms
                        .map_or("-".to_string(), |v| v.to_string()),
                    self.leader_turn_max_ms
                        .map_or("-".to_string(), |v| v.to_string())
                ),
            ),
            (
                "leader RSS (peak)",
                format!(
                    "{} KiB ({} KiB)",
                    self.leader_rss_kb, self.leader_rss_peak_kb
                ),
            ),
            (
                "leader changes / send errors",
                format!(
                    "{} / {}",
                    self.leader_changes,
                    self.leader_send_errors
                        .map_or("—".into(), |v| v.to_string())
                ),
            ),
        ];
        let mut s = format!(
            "bench: {} nodes, {mode}, {} connections, {:.0} s measured\n",
            self.nodes,
            self.connections,
            (self.window_ms.1 - self.window_ms.0) as f64 / 1000.0
        );
        for (k, v) in rows {
            s.push_str(&format!("  {k:<32} {v}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(ts_ms: u64, fsyncs: u64) -> IoSample {
        IoSample {
            ts_ms,
            fsyncs,
            ..IoSample::default()
        }
    }

    #[test]
    fn window_max_covers_the_window_and_the_second_after_it() {
        let gap = |ts_ms, g| IoSample {
            ts_ms,
            heartbeat_gap_max_ms: g,
            ..IoSample::default()
        };
        let samples = [
            gap(900, 700),
            gap(1500, 120),
            gap(2500, 300),
            gap(4100, 900),
        ];
        let max = window_max(&samples, (1000, 3000), |s| s.heartbeat_gap_max_ms);
        assert_eq!(
            max,
            Some(300),
            "before the window and long after it: left out"
        );
        assert_eq!(window_max(&samples, (5000, 6000), |s| s.turn_max_ms), None);
    }

    #[test]
    fn per_ack_divides_by_the_acks_of_the_same_interval() {
        let samples = [io(500, 0), io(1500, 10), io(2500, 30), io(3500, 45)];
        let acks: Vec<u64> = (0..400).map(|i| i * 10).collect(); // one every 10 ms
                                                                 // Window [1000, 3000]: samples at 1500 and 2500, 100 acks in (1500, 2500].
        let v = per_ack(&samples, &acks, (1000, 3000), |s| s.fsyncs).unwrap();
        assert!((v - 0.2).abs() < 1e-9, "{v}");
        // One sample inside the window is no interval.
        assert_eq!(per_ack(&samples, &acks, (1400, 1600), |s| s.fsyncs), None);
        assert_eq!(acks_between(&acks, 0, 0), 0);
        assert_eq!(acks_between(&acks, 0, 10), 1);
    }

    #[test]
    fn the_table_names_every_figure() {
        let t = BenchReport::default().table();
        for k in ["acked msg/s", "p99", "fsyncs / ack", "RSS", "CPU ms / ack"] {
            assert!(t.contains(k), "{k} missing from\n{t}");
        }
    }
}
