//! The outsider's socket loop: the node's own peer and multicast sockets (so it hears what a
//! node would hear: broadcast hellos, multicast heartbeats, and unicast sent back to the ids
//! it claims), a send every `1/rate` seconds from [`Forger`], and a JSON line on stdout for
//! what it did: `started`, `learned` (once it knows the cluster's name), `progress` every
//! second and `done` at the end, so the harness can put its activity in the history.

use super::{Dest, ForgeKind, Forger, Learned};
use crate::runtime::{net, sockets};
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// `chat-node forge` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ForgeArgs {
    /// How long to forge; the tool exits after it.
    #[arg(long = "for", value_parser = crate::duration::parse_duration)]
    pub duration: Duration,
    /// Datagrams per second (1 to 10000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub rate: u32,
    /// What to send, comma-separated: hello, heartbeat, token, token_ack, elected, promise,
    /// stale, append, append_ack, leave, replay, garbage, or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub kinds: Vec<String>,
    /// A member's peer address (`ip:port`) to send unicast to; repeat. Members heard on the
    /// network are added.
    #[arg(long = "target")]
    pub targets: Vec<SocketAddr>,
    /// A user name to put in forged log entries; repeat.
    #[arg(long = "user")]
    pub users: Vec<String>,
    /// A room name to put in forged room posts; repeat.
    #[arg(long = "room")]
    pub rooms: Vec<String>,
    /// Seeds every choice the forger makes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The cluster name, if known beforehand (it is learned from the first datagram heard).
    #[arg(long)]
    pub cluster: Option<String>,
    /// The nodes' UDP peer port (broadcast and unicast).
    #[arg(long, default_value_t = 7400)]
    pub peer_port: u16,
    /// The nodes' heartbeat multicast port and group.
    #[arg(long, default_value_t = 7401)]
    pub multicast_port: u16,
    #[arg(long, default_value = "239.255.74.1")]
    pub multicast_group: Ipv4Addr,
    /// Network interface. Default: the first non-loopback interface that is up.
    #[arg(long)]
    pub interface: Option<String>,
}

/// Running counts, printed in `progress` and `done`.
#[derive(Default)]
struct Counts {
    sent: BTreeMap<&'static str, u64>,
    total: u64,
    send_errors: u64,
    heard: u64,
}

impl Counts {
    fn json(&self, forger: &Forger, learned: &Learned, elapsed: Duration) -> serde_json::Value {
        json!({
            "t_ms": elapsed.as_millis() as u64,
            "sent": self.total,
            "by_kind": self.sent,
            "replayed": self.sent.get("replay").copied().unwrap_or(0),
            "garbage": self.sent.get("garbage").copied().unwrap_or(0),
            "heard": self.heard,
            "captured": forger.captured_total(),
            "send_errors": self.send_errors,
            "cluster": learned.cluster,
            "epoch": learned.epoch,
            "leader": learned.leader,
            "members": learned.members.keys().collect::<Vec<_>>(),
        })
    }
}

fn say(what: &str, mut fields: serde_json::Value) {
    if let Some(map) = fields.as_object_mut() {
        map.insert("forge".into(), json!(what));
    }
    println!("{fields}");
}

/// Runs the outsider for `args.duration`.
pub async fn run(args: ForgeArgs) -> anyhow::Result<()> {
    let kinds = ForgeKind::parse_list(&args.kinds).map_err(anyhow::Error::msg)?;
    if args.duration.is_zero() {
        anyhow::bail!("--for must be longer than 0");
    }
    let iface = net::pick_interface(args.interface.as_deref())?;
    let peer = sockets::peer_socket(args.peer_port, iface.ip)
        .context("the outsider binds the nodes' peer port to hear their broadcasts")?;
    let multicast = sockets::multicast_socket(args.multicast_port, args.multicast_group, iface.ip)?;
    let broadcast = SocketAddr::V4(SocketAddrV4::new(iface.broadcast, args.peer_port));
    let group = SocketAddr::V4(SocketAddrV4::new(args.multicast_group, args.multicast_port));
    let mut learned = Learned {
        cluster: args.cluster.clone(),
        users: args.users.clone(),
        rooms: args.rooms.clone(),
        ..Learned::default()
    };
    let mut forger = Forger::new(
        args.seed,
        &kinds,
        format!("{}:7070", iface.ip),
        format!("{}:{}", iface.ip, args.peer_port),
    );
    let mut counts = Counts::default();
    say(
        "started",
        json!({
            "ip": iface.ip.to_string(),
            "seed": args.seed,
            "rate": args.rate,
            "for_ms": args.duration.as_millis() as u64,
            "kinds": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        }),
    );
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut send = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    send.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut report =
        tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    let mut buf_a = vec![0u8; 65_536];
    let mut buf_b = vec![0u8; 65_536];
    let mut announced = learned.cluster.is_some();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            r = peer.recv_from(&mut buf_a) => {
                if let Ok((n, from)) = r {
                    hear(&mut learned, &mut forger, &mut counts, iface.ip, from, &buf_a[..n]);
                }
            }
            r = multicast.recv_from(&mut buf_b) => {
                if let Ok((n, from)) = r {
                    hear(&mut learned, &mut forger, &mut counts, iface.ip, from, &buf_b[..n]);
                }
            }
            _ = send.tick() => {
                let mut targets: Vec<SocketAddr> = args.targets.clone();
                for a in learned.members.values() {
                    if !targets.contains(a) {
                        targets.push(*a);
                    }
                }
                let d = forger.next(&learned, &targets);
                let to = match d.dest {
                    Dest::Member(a) => a,
                    Dest::Broadcast => broadcast,
                    Dest::Multicast => group,
                };
                *counts.sent.entry(d.kind.name()).or_default() += 1;
                counts.total += 1;
                if peer.send_to(&d.bytes, to).await.is_err() {
                    counts.send_errors += 1;
                }
            }
            _ = report.tick() => {
                say("progress", counts.json(&forger, &learned, start.elapsed()));
            }
        }
        if !announced && learned.cluster.is_some() {
            announced = true;
            say("learned", counts.json(&forger, &learned, start.elapsed()));
        }
    }
    say("done", counts.json(&forger, &learned, start.elapsed()));
    Ok(())
}

/// A datagram heard: learned from and kept for replay, unless it is the outsider's own
/// broadcast or multicast coming back.
fn hear(
    learned: &mut Learned,
    forger: &mut Forger,
    counts: &mut Counts,
    own: Ipv4Addr,
    from: SocketAddr,
    bytes: &[u8],
) {
    if from.ip() == std::net::IpAddr::V4(own) {
        return;
    }
    counts.heard += 1;
    if learned.observe(from, bytes) {
        forger.capture(bytes);
    }
}
