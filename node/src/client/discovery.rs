//! Finding servers: broadcast `find_server` to the peer port and collect the `server_here`
//! answers for a short window.

use crate::ids::{NodeId, Role};
use crate::protocol::Discovery;
use crate::runtime::net::broadcast_addresses;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// One server's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerInfo {
    pub node: NodeId,
    /// The server's client address (`ip:port`).
    pub addr: String,
    pub role: Role,
    pub epoch: u64,
    pub leader: Option<NodeId>,
    pub leader_addr: Option<String>,
    /// Where the leader's assignment sends a new client (the least-loaded live server).
    pub assigned_addr: Option<String>,
}

/// Every interface's subnet broadcast address and 255.255.255.255, on the peer port.
fn broadcast_targets(peer_port: u16) -> Vec<SocketAddr> {
    let mut targets: Vec<SocketAddr> = broadcast_addresses()
        .into_iter()
        .map(|ip| SocketAddr::from((ip, peer_port)))
        .collect();
    targets.push(SocketAddr::from((Ipv4Addr::BROADCAST, peer_port)));
    targets
}

/// Broadcasts on every interface's subnet broadcast address and on 255.255.255.255.
pub async fn discover(
    cluster: &str,
    peer_port: u16,
    window: Duration,
) -> std::io::Result<Vec<ServerInfo>> {
    discover_at(cluster, &broadcast_targets(peer_port), window).await
}

/// Like [`discover`], but returns as soon as a server whose address is not in `avoid` has
/// answered that it leads (what a client that only wants to connect needs; [`discover`] waits
/// the whole window to hear everyone). `avoid` holds addresses that just failed: a `role:
/// leader` answer from one of them may be a leader that is about to be replaced, so the
/// window goes on for a fresher one (docs/PROTOCOL.md, section 2).
pub async fn find_leader(
    cluster: &str,
    peer_port: u16,
    window: Duration,
    avoid: &[String],
) -> std::io::Result<Vec<ServerInfo>> {
    collect(
        cluster,
        &broadcast_targets(peer_port),
        window,
        StopAt::Leader { avoid },
    )
    .await
}

/// Sends `find_server` to each target and collects answers until `window` has passed.
/// Sends are repeated a few times within the window (UDP may drop one).
pub async fn discover_at(
    cluster: &str,
    targets: &[SocketAddr],
    window: Duration,
) -> std::io::Result<Vec<ServerInfo>> {
    collect(cluster, targets, window, StopAt::WindowEnd).await
}

/// Asks one server (e.g. the local node, for `chat-node health`) and returns its answer, or
/// `None` when it did not answer within `window`. Over UDP, so a health probe opens no client
/// session and leaves no `client_connected` events behind.
pub async fn ask_one(
    cluster: &str,
    target: SocketAddr,
    window: Duration,
) -> std::io::Result<Option<ServerInfo>> {
    let found = collect(cluster, &[target], window, StopAt::FirstAnswer).await?;
    Ok(found.into_iter().next())
}

/// When [`collect`] stops listening before its window ends.
#[derive(Clone, Copy, PartialEq)]
enum StopAt<'a> {
    WindowEnd,
    /// At the first `role: leader` answer whose address is not in `avoid`.
    Leader {
        avoid: &'a [String],
    },
    FirstAnswer,
}

impl StopAt<'_> {
    fn after(&self, answer: &ServerInfo) -> bool {
        match self {
            StopAt::WindowEnd => false,
            StopAt::Leader { avoid } => {
                answer.role == Role::Leader && !avoid.contains(&answer.addr)
            }
            StopAt::FirstAnswer => true,
        }
    }
}

async fn collect(
    cluster: &str,
    targets: &[SocketAddr],
    window: Duration,
    stop_at: StopAt<'_>,
) -> std::io::Result<Vec<ServerInfo>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.set_broadcast(true)?;
    let ask = serde_json::to_vec(&Discovery::FindServer {
        cluster: cluster.to_string(),
    })
    .map_err(std::io::Error::other)?;
    let deadline = Instant::now() + window;
    let resend_every = window / 3;
    let mut next_send = Instant::now();
    let mut found: Vec<ServerInfo> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if now >= next_send {
            let mut sent_any = false;
            for target in targets {
                // Some targets fail (no route for 255.255.255.255 without a default route).
                sent_any |= socket.send_to(&ask, target).await.is_ok();
            }
            if !sent_any {
                return Err(std::io::Error::other(
                    "could not send a discovery broadcast on any interface",
                ));
            }
            next_send = now + resend_every.max(Duration::from_millis(1));
        }
        let wait_until = deadline.min(next_send);
        let received = tokio::time::timeout_at(wait_until, socket.recv_from(&mut buf)).await;
        if let Ok(Ok((n, _))) = received {
            if let Some(info) = parse_answer(&buf[..n], cluster) {
                let stop = stop_at.after(&info);
                if !found.iter().any(|f| f.node == info.node) {
                    found.push(info);
                }
                if stop {
                    break;
                }
            }
        }
    }
    Ok(found)
}

fn parse_answer(bytes: &[u8], cluster: &str) -> Option<ServerInfo> {
    match serde_json::from_slice::<Discovery>(bytes).ok()? {
        Discovery::ServerHere {
            cluster: theirs,
            node,
            addr,
            role,
            epoch,
            leader,
            leader_addr,
            assigned_addr,
            ..
        } if theirs == cluster => Some(ServerInfo {
            node,
            addr,
            role,
            epoch,
            leader,
            leader_addr,
            assigned_addr,
        }),
        _ => None,
    }
}

/// Client addresses to try, best first (docs/PROTOCOL.md, section 2): the `leader_addr` of
/// the newest epoch that names one (a leader answers with its own address), then every server
/// that says it leads, newest epoch first, then the rest (a `welcome` names the leader once
/// its server knows one). When the highest epoch names no leader an election is running in
/// it, and a leader named at an older epoch is the one being replaced: it is still tried first
/// (it may win again, or it answers `not_leader`), and the session backs off and rediscovers
/// when nothing here leads.
pub fn leader_first(servers: &[ServerInfo]) -> Vec<String> {
    let mut sorted: Vec<&ServerInfo> = servers.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.epoch));
    let mut out: Vec<String> = Vec::new();
    let mut push = |addr: &str| {
        if !out.iter().any(|a| a == addr) {
            out.push(addr.to_string());
        }
    };
    if let Some(addr) = sorted.iter().find_map(|s| s.leader_addr.as_deref()) {
        push(addr);
    }
    for s in sorted.iter().filter(|s| s.role == Role::Leader) {
        push(&s.addr);
    }
    for s in &sorted {
        push(&s.addr);
    }
    out
}

/// For a client that stays where it is placed: the server the leader's assignment names
/// first (the leader's own answer, else the newest epoch's that names one), then
/// [`leader_first`]'s order.
pub fn assigned_first(servers: &[ServerInfo]) -> Vec<String> {
    let mut sorted: Vec<&ServerInfo> = servers.iter().collect();
    sorted.sort_by_key(|s| (s.role != Role::Leader, std::cmp::Reverse(s.epoch)));
    let mut out: Vec<String> = sorted
        .iter()
        .find_map(|s| s.assigned_addr.clone())
        .into_iter()
        .collect();
    for addr in leader_first(servers) {
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(node: u64, role: Role, epoch: u64, leader_addr: Option<&str>) -> ServerInfo {
        ServerInfo {
            node: NodeId(node),
            addr: format!("10.0.0.{node}:7070"),
            role,
            epoch,
            leader: None,
            leader_addr: leader_addr.map(str::to_string),
            assigned_addr: None,
        }
    }

    #[test]
    fn the_leaders_assignment_comes_first_for_a_client_that_stays_where_placed() {
        let mut leader = info(3, Role::Leader, 2, Some("10.0.0.3:7070"));
        leader.assigned_addr = Some("10.0.0.5:7070".into());
        let mut follower = info(1, Role::Follower, 2, Some("10.0.0.3:7070"));
        follower.assigned_addr = Some("10.0.0.4:7070".into());
        assert_eq!(
            assigned_first(&[follower.clone(), leader]),
            ["10.0.0.5:7070", "10.0.0.3:7070", "10.0.0.1:7070"]
        );
        // Without a leader's answer, a follower's assignment; without any, leader_first.
        assert_eq!(assigned_first(&[follower.clone()])[0], "10.0.0.4:7070");
        follower.assigned_addr = None;
        assert_eq!(
            assigned_first(&[follower.clone()]),
            leader_first(&[follower])
        );
    }

    #[test]
    fn the_newest_leader_comes_first() {
        let servers = vec![
            info(1, Role::Follower, 2, Some("10.0.0.9:7070")),
            info(2, Role::Follower, 3, Some("10.0.0.3:7070")),
            info(3, Role::Leader, 3, Some("10.0.0.3:7070")),
        ];
        assert_eq!(
            leader_first(&servers),
            vec!["10.0.0.3:7070", "10.0.0.2:7070", "10.0.0.1:7070"]
        );
    }

    /// The highest epoch names no leader (an election is running): the leader named at the
    /// older epoch is tried first, then everyone who answered, newest epoch first.
    #[test]
    fn during_an_election_the_older_epochs_leader_comes_first() {
        let servers = vec![
            info(1, Role::Follower, 4, Some("10.0.0.9:7070")),
            info(2, Role::Candidate, 5, None),
            info(3, Role::Follower, 5, None),
        ];
        assert_eq!(
            leader_first(&servers),
            vec![
                "10.0.0.9:7070",
                "10.0.0.2:7070",
                "10.0.0.3:7070",
                "10.0.0.1:7070"
            ]
        );
    }

    /// Discovery stops at a leader's answer, except one from an address that just failed.
    #[test]
    fn listening_stops_at_a_fresh_leader_only() {
        let avoid = vec!["10.0.0.1:7070".to_string()];
        let stop = StopAt::Leader { avoid: &avoid };
        assert!(!stop.after(&info(1, Role::Leader, 3, None)));
        assert!(!stop.after(&info(2, Role::Follower, 4, Some("10.0.0.3:7070"))));
        assert!(stop.after(&info(3, Role::Leader, 4, None)));
        assert!(!StopAt::WindowEnd.after(&info(3, Role::Leader, 4, None)));
        assert!(StopAt::FirstAnswer.after(&info(2, Role::Follower, 4, None)));
    }

    #[test]
    fn answers_of_other_clusters_are_ignored() {
        let here =
            br#"{"t":"server_here","cluster":"x","node":1,"addr":"a:1","role":"leader","epoch":1}"#;
        assert!(parse_answer(here, "faultline").is_none());
        assert_eq!(parse_answer(here, "x").unwrap().addr, "a:1");
    }
}
