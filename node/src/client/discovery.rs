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

/// Like [`discover`], but returns as soon as the leader itself has answered (what a client
/// that only wants to connect needs; [`discover`] waits the whole window to hear everyone).
pub async fn find_leader(
    cluster: &str,
    peer_port: u16,
    window: Duration,
) -> std::io::Result<Vec<ServerInfo>> {
    collect(
        cluster,
        &broadcast_targets(peer_port),
        window,
        StopAt::Leader,
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
enum StopAt {
    WindowEnd,
    Leader,
    FirstAnswer,
}

async fn collect(
    cluster: &str,
    targets: &[SocketAddr],
    window: Duration,
    stop_at: StopAt,
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
                let is_leader = info.role == Role::Leader;
                if !found.iter().any(|f| f.node == info.node) {
                    found.push(info);
                }
                if stop_at == StopAt::FirstAnswer || (stop_at == StopAt::Leader && is_leader) {
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
        } if theirs == cluster => Some(ServerInfo {
            node,
            addr,
            role,
            epoch,
            leader,
            leader_addr,
        }),
        _ => None,
    }
}

/// Client addresses to try, best first: the leader named by the newest epoch, then every
/// server that says it leads, then the rest.
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
        }
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

    #[test]
    fn answers_of_other_clusters_are_ignored() {
        let here =
            br#"{"t":"server_here","cluster":"x","node":1,"addr":"a:1","role":"leader","epoch":1}"#;
        assert!(parse_answer(here, "faultline").is_none());
        assert_eq!(parse_answer(here, "x").unwrap().addr, "a:1");
    }
}
