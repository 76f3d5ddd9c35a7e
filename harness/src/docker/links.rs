//! Link faults on Docker: which links are degraded (pure state, kept so a restarted node
//! gets them again) and the mechanisms that degrade them, each found by trying it:
//!
//! - **loss**: nftables `numgen random mod 100 < P drop` in the receiving node's namespace,
//!   matched on the source address, in the same table as the partitions;
//! - **delay** and **duplicate**: `tc netem` on the host side of the node's veth when the
//!   kernel has netem, else the NFQUEUE delayer ([`super::delayer`]) in the node's namespace
//!   (which also reorders, by the jitter, and copies packets from a raw socket);
//! - **bandwidth**: `tc tbf` on the host side of the node's veth (what leaves the host's end
//!   of the pair enters the node).
//!
//! When neither delay mechanism exists the step fails with "unsupported: …" naming what is
//! missing; nothing crashes and the run goes on.

use super::delayer::{Counts, Delayer, Shape, QUEUE};
use super::partition::run_in_netns;
use crate::backend::BackendError;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// Our iptables chain in each node's namespace (the NFQUEUE rule lives there).
const CHAIN: &str = "FAULTLINE_DELAY";

/// What is degraded: receiver id -> …
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// receiver -> source -> percent dropped.
    pub loss: BTreeMap<u64, BTreeMap<u64, u8>>,
    /// receiver -> (ms, jitter ms).
    pub delay: BTreeMap<u64, (u64, u64)>,
    /// receiver -> percent delivered twice.
    pub duplicate: BTreeMap<u64, u8>,
    /// receiver -> bits per second.
    pub bandwidth: BTreeMap<u64, u64>,
}

impl LinkState {
    /// nft rules (inside the `input` chain) for node `to`'s loss.
    pub fn loss_rules(&self, to: u64, ip_of: impl Fn(u64) -> Option<Ipv4Addr>) -> Vec<String> {
        let Some(sources) = self.loss.get(&to) else {
            return Vec::new();
        };
        let mut by_percent: BTreeMap<u8, Vec<String>> = BTreeMap::new();
        for (&from, &p) in sources {
            if let Some(ip) = ip_of(from) {
                by_percent.entry(p).or_default().push(ip.to_string());
            }
        }
        by_percent
            .into_iter()
            .map(|(p, ips)| {
                format!(
                    "ip saddr {{ {} }} numgen random mod 100 < {p} counter drop",
                    ips.join(", ")
                )
            })
            .collect()
    }

    pub fn clear(&mut self) {
        *self = LinkState::default();
    }

    /// What node `to`'s delayer (or netem) must do: its delay and its duplication, if any.
    pub fn shape(&self, to: u64) -> Option<Shape> {
        let delay = self.delay.get(&to).copied();
        let dup = self.duplicate.get(&to).copied();
        if delay.is_none() && dup.is_none() {
            return None;
        }
        let (ms, jitter_ms) = delay.unwrap_or((0, 0));
        Some(Shape {
            ms,
            jitter_ms,
            duplicate_percent: dup.unwrap_or(0),
        })
    }

    /// Every node with some link fault.
    pub fn nodes(&self) -> BTreeSet<u64> {
        self.loss
            .keys()
            .chain(self.delay.keys())
            .chain(self.duplicate.keys())
            .chain(self.bandwidth.keys())
            .copied()
            .collect()
    }
}

/// How delay is made on this host, found once by trying netem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DelayMechanism {
    Netem,
    Nfqueue,
}

impl DelayMechanism {
    pub fn name(self) -> &'static str {
        match self {
            DelayMechanism::Netem => "netem",
            DelayMechanism::Nfqueue => "nfqueue delayer",
        }
    }
}

static NETEM: OnceLock<bool> = OnceLock::new();

/// Whether the kernel has netem: tried once on the loopback of the namespace of `pid`.
async fn has_netem(pid: u32) -> bool {
    if let Some(v) = NETEM.get() {
        return *v;
    }
    let ok = run_in_netns(
        pid,
        "tc",
        &["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
    )
    .await
    .is_ok();
    if ok {
        let _ = run_in_netns(pid, "tc", &["qdisc", "del", "dev", "lo", "root"]).await;
    }
    *NETEM.get_or_init(|| ok)
}

/// The delay mechanism for this host, or "unsupported" naming what is missing.
pub async fn delay_mechanism(pid: u32) -> Result<DelayMechanism, BackendError> {
    if has_netem(pid).await {
        return Ok(DelayMechanism::Netem);
    }
    // NFQUEUE: the xt target must accept a rule (iptables-nft uses it through nft_compat).
    // A throwaway rule on loopback, added then deleted (-A, then -D with the same match).
    let probe_rule = |op: &'static str| {
        [
            "-w",
            "-t",
            "filter",
            op,
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "udp",
            "--dport",
            "9",
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
            "--queue-bypass",
        ]
    };
    let probe = run_in_netns(pid, "iptables", &probe_rule("-A")).await;
    match probe {
        Ok(()) => {
            let _ = run_in_netns(pid, "iptables", &probe_rule("-D")).await;
            Ok(DelayMechanism::Nfqueue)
        }
        Err(e) => Err(BackendError::Unsupported(format!(
            "delay and duplicate need tc netem (kernel CONFIG_NET_SCH_NETEM) or the NFQUEUE \
             target (CONFIG_NETFILTER_XT_TARGET_NFQUEUE) with iptables; netem is missing and \
             NFQUEUE failed: {e}"
        ))),
    }
}

/// The host-side name of node `pid`'s `eth0` veth pair.
pub async fn host_veth(pid: u32) -> Result<String, BackendError> {
    let out = super::partition::output_in_netns(pid, "ip", &["-o", "link", "show", "eth0"])
        .await
        .map_err(BackendError::Failed)?;
    // "12: eth0@if13: <…" -> the peer's ifindex 13.
    let peer: u32 = out
        .split_whitespace()
        .nth(1)
        .and_then(|name| name.split("@if").nth(1))
        .and_then(|i| i.trim_end_matches(':').parse().ok())
        .ok_or_else(|| {
            BackendError::Unsupported(format!(
                "cannot find the host end of the node's veth from `{}`",
                out.trim()
            ))
        })?;
    let host = tokio::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .await
        .map_err(|e| {
            BackendError::Failed(format!("cannot run ip: {e} (apt-get install iproute2)"))
        })?;
    let text = String::from_utf8_lossy(&host.stdout);
    text.lines()
        .find_map(|l| {
            let mut cols = l.split(": ");
            let index: u32 = cols.next()?.trim().parse().ok()?;
            let name = cols.next()?.split('@').next()?.to_string();
            (index == peer).then_some(name)
        })
        .ok_or_else(|| {
            BackendError::Unsupported(format!(
                "the host end of the node's veth (ifindex {peer}) is not in this host's \
                 namespace: delay by netem and bandwidth need a local engine"
            ))
        })
}

async fn tc(args: &[&str]) -> Result<(), String> {
    let out = tokio::process::Command::new("tc")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("cannot run tc: {e} (apt-get install iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The qdisc on the host end of node `pid`'s veth: netem delay and duplication, tbf rate,
/// or none.
pub async fn set_host_qdisc(
    pid: u32,
    netem: Option<Shape>,
    rate_bps: Option<u64>,
) -> Result<(), BackendError> {
    let dev = host_veth(pid).await?;
    // Removing a qdisc that is not there fails harmlessly.
    let _ = tc(&["qdisc", "del", "dev", &dev, "root"]).await;
    match (netem, rate_bps) {
        (None, None) => Ok(()),
        (Some(_), Some(_)) => Err(BackendError::Unsupported(
            "netem delay or duplication and a bandwidth limit on the same node at once".into(),
        )),
        (Some(shape), None) => {
            let args = netem_args(&dev, shape);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tc(&args).await.map_err(BackendError::Failed)
        }
        (None, Some(bps)) => {
            // A burst of at least 20 ms at the rate, and never below a few full frames.
            let burst = (bps / 8 / 50).max(15_000).to_string();
            let rate = format!("{bps}bit");
            tc(&[
                "qdisc", "add", "dev", &dev, "root", "tbf", "rate", &rate, "burst", &burst,
                "latency", "200ms",
            ])
            .await
            .map_err(|e| {
                BackendError::Unsupported(format!(
                    "bandwidth needs tc tbf (CONFIG_NET_SCH_TBF): {e}"
                ))
            })
        }
    }
}

/// `tc qdisc add … netem` for a shape: `delay M [J]`, `duplicate P%`.
pub fn netem_args(dev: &str, s: Shape) -> Vec<String> {
    let mut a: Vec<String> = ["qdisc", "add", "dev", dev, "root", "netem"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    if s.ms > 0 || s.jitter_ms > 0 {
        a.extend(["delay".to_string(), format!("{}ms", s.ms)]);
        if s.jitter_ms > 0 {
            a.push(format!("{}ms", s.jitter_ms));
        }
    }
    if s.duplicate_percent > 0 {
        a.extend(["duplicate".to_string(), format!("{}%", s.duplicate_percent)]);
    }
    a
}

/// Puts the NFQUEUE rule (everything arriving on eth0) in place in node `pid`'s namespace,
/// or removes it.
pub async fn set_queue_rule(pid: u32, on: bool) -> Result<(), BackendError> {
    let fail = |e: String| BackendError::Failed(format!("{e}; delay needs root and iptables"));
    // The chain may exist already; then it is emptied.
    let _ = run_in_netns(pid, "iptables", &["-w", "-N", CHAIN]).await;
    run_in_netns(pid, "iptables", &["-w", "-F", CHAIN])
        .await
        .map_err(fail)?;
    if run_in_netns(pid, "iptables", &["-w", "-C", "INPUT", "-j", CHAIN])
        .await
        .is_err()
    {
        run_in_netns(pid, "iptables", &["-w", "-I", "INPUT", "-j", CHAIN])
            .await
            .map_err(fail)?;
    }
    if on {
        let q = QUEUE.to_string();
        run_in_netns(
            pid,
            "iptables",
            &[
                "-w",
                "-A",
                CHAIN,
                "-i",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                &q,
                "--queue-bypass",
            ],
        )
        .await
        .map_err(fail)?;
    }
    Ok(())
}

/// The running delayers, one per delayed or duplicated node, and what the stopped ones did.
#[derive(Default)]
pub struct Delayers {
    running: BTreeMap<u64, Delayer>,
    /// One line per stopped delayer, for the run's notes.
    notes: Vec<String>,
}

impl Delayers {
    /// Node `id` (process `pid`) gets `shape`: start, retune, or replace (a new namespace
    /// after a restart) its delayer.
    pub fn set(&mut self, id: u64, pid: u32, shape: Shape, seed: u64) -> Result<(), BackendError> {
        if let Some(d) = self.running.get(&id) {
            if d.pid == pid {
                d.set(shape);
                return Ok(());
            }
        }
        self.remove(id);
        let d = Delayer::start(pid, shape, seed ^ id).map_err(BackendError::Unsupported)?;
        self.running.insert(id, d);
        Ok(())
    }

    /// Stops node `id`'s delayer (held packets go through at once).
    pub fn remove(&mut self, id: u64) {
        if let Some(d) = self.running.remove(&id) {
            let c = d.stop();
            self.notes.push(counts_note(id, c));
        }
    }

    pub fn clear(&mut self) {
        for id in self.running.keys().copied().collect::<Vec<_>>() {
            self.remove(id);
        }
    }

    /// The lines of the delayers stopped since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

/// `nfqueue delayer of node 3: held 1200 packets, reordered 310, duplicated 60, copies failed 0`.
pub fn counts_note(id: u64, c: Counts) -> String {
    format!(
        "nfqueue delayer of node {id}: held {} packets, reordered {}, duplicated {}, copies failed {}",
        c.held, c.reordered, c.duplicated, c.copy_failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_rules_group_sources_by_percent_in_the_receivers_table() {
        let mut s = LinkState::default();
        s.loss.entry(2).or_default().insert(1, 30);
        s.loss.entry(2).or_default().insert(3, 30);
        s.loss.entry(2).or_default().insert(4, 10);
        let ip = |id: u64| Some(Ipv4Addr::new(10, 0, 0, 10 + id as u8));
        assert_eq!(
            s.loss_rules(2, ip),
            vec![
                "ip saddr { 10.0.0.14 } numgen random mod 100 < 10 counter drop".to_string(),
                "ip saddr { 10.0.0.11, 10.0.0.13 } numgen random mod 100 < 30 counter drop"
                    .to_string(),
            ]
        );
        assert!(s.loss_rules(1, ip).is_empty());
        // A delay and a duplicate of one node make one shape (one netem qdisc, one delayer).
        s.duplicate.insert(2, 10);
        assert_eq!(
            s.shape(2),
            Some(Shape {
                ms: 0,
                jitter_ms: 0,
                duplicate_percent: 10
            })
        );
        s.delay.insert(2, (30, 25));
        let shape = s.shape(2).unwrap();
        assert_eq!(
            netem_args("veth1", shape).join(" "),
            "qdisc add dev veth1 root netem delay 30ms 25ms duplicate 10%"
        );
        s.duplicate.clear();
        s.delay.clear();
        assert_eq!(s.shape(2), None);
        s.delay.insert(5, (100, 0));
        assert_eq!(s.nodes(), BTreeSet::from([2, 5]));
        s.clear();
        assert!(s.nodes().is_empty());
    }
}
