//! Link faults on Docker: which links are degraded (pure state, kept so a restarted node
//! gets them again) and the mechanisms that degrade them, each found by trying it:
//!
//! - **loss**: nftables `numgen random mod 100 < P drop` in the receiving node's namespace,
//!   matched on the source address, in the same table as the partitions;
//! - **delay**: `tc netem` on the host side of the node's veth when the kernel has netem,
//!   else the NFQUEUE delayer ([`super::delayer`]) in the node's namespace;
//! - **bandwidth**: `tc tbf` on the host side of the node's veth (what leaves the host's end
//!   of the pair enters the node).
//!
//! When neither delay mechanism exists the step fails with "unsupported: …" naming what is
//! missing; nothing crashes and the run goes on.

use super::delayer::{Delayer, QUEUE};
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

    /// Every node with some link fault.
    pub fn nodes(&self) -> BTreeSet<u64> {
        self.loss
            .keys()
            .chain(self.delay.keys())
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
            "delay needs tc netem (kernel CONFIG_NET_SCH_NETEM) or the NFQUEUE target \
             (CONFIG_NETFILTER_XT_TARGET_NFQUEUE) with iptables; netem is missing and \
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

/// The qdisc on the host end of node `pid`'s veth: netem delay, tbf rate, or none.
pub async fn set_host_qdisc(
    pid: u32,
    delay: Option<(u64, u64)>,
    rate_bps: Option<u64>,
) -> Result<(), BackendError> {
    let dev = host_veth(pid).await?;
    // Removing a qdisc that is not there fails harmlessly.
    let _ = tc(&["qdisc", "del", "dev", &dev, "root"]).await;
    match (delay, rate_bps) {
        (None, None) => Ok(()),
        (Some(_), Some(_)) => Err(BackendError::Unsupported(
            "netem delay and a bandwidth limit on the same node at once".into(),
        )),
        (Some((ms, jitter)), None) => {
            let (ms, jitter) = (format!("{ms}ms"), format!("{jitter}ms"));
            let mut args = vec!["qdisc", "add", "dev", &dev, "root", "netem", "delay", &ms];
            if jitter != "0ms" {
                args.push(&jitter);
            }
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

/// The running delayers, one per delayed node.
#[derive(Default)]
pub struct Delayers {
    running: BTreeMap<u64, Delayer>,
}

impl Delayers {
    /// Node `id` (process `pid`) is delayed `ms ± jitter`: start, retune, or replace (a new
    /// namespace after a restart) its delayer.
    pub fn set(
        &mut self,
        id: u64,
        pid: u32,
        ms: u64,
        jitter: u64,
        seed: u64,
    ) -> Result<(), BackendError> {
        if let Some(d) = self.running.get(&id) {
            if d.pid == pid {
                d.set(ms, jitter);
                return Ok(());
            }
        }
        if let Some(old) = self.running.remove(&id) {
            old.stop();
        }
        let d = Delayer::start(pid, ms, jitter, seed ^ id).map_err(BackendError::Unsupported)?;
        self.running.insert(id, d);
        Ok(())
    }

    /// Stops node `id`'s delayer (held packets go through at once).
    pub fn remove(&mut self, id: u64) {
        if let Some(d) = self.running.remove(&id) {
            d.stop();
        }
    }

    pub fn clear(&mut self) {
        for (_, d) in std::mem::take(&mut self.running) {
            d.stop();
        }
    }
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
        s.delay.insert(5, (100, 0));
        assert_eq!(s.nodes(), BTreeSet::from([2, 5]));
        s.clear();
        assert!(s.nodes().is_empty());
    }
}
