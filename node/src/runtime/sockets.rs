//! The UDP sockets of a node.
//!
//! - The peer socket, bound to `0.0.0.0:<peer_port>`, receives discovery broadcasts and sends
//!   broadcast, multicast and control unicast (heartbeats, election messages, acks).
//! - The bulk socket, bound to `<interface ip>:<peer_port>`, sends the log's Appends: its own
//!   send buffer, so Appends that pile up in the kernel (a dead peer's address never resolves)
//!   cannot crowd out a heartbeat. Being bound to the more specific address, it also receives
//!   the unicast sent to this node. Both sockets send from `<interface ip>:<peer_port>`, so
//!   peers still see one source address per node.
//! - The multicast socket, bound to `0.0.0.0:<multicast_port>`, only receives the heartbeat
//!   group, joined with the interface's own address (joining with 0.0.0.0 lets the kernel pick
//!   an interface, which is the wrong one in multi-homed containers).

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use tokio::net::{TcpListener, UdpSocket};

fn udp_socket(port: u16) -> anyhow::Result<Socket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Several nodes may share a host in tests; a restarted node must not wait for TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .with_context(|| format!("binding UDP 0.0.0.0:{port}"))?;
    Ok(socket)
}

/// Multicast send options: out of our interface, one hop, looped back so nodes that share a
/// host hear each other.
fn set_multicast_sending(socket: &Socket, interface_ip: Ipv4Addr) -> anyhow::Result<()> {
    socket.set_multicast_if_v4(&interface_ip)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(true)?;
    Ok(())
}

/// The peer socket (see the module docs).
pub fn peer_socket(port: u16, interface_ip: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let socket = udp_socket(port)?;
    socket.set_broadcast(true)?;
    set_multicast_sending(&socket, interface_ip)?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// The bulk socket (see the module docs).
pub fn bulk_socket(port: u16, interface_ip: Ipv4Addr) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(interface_ip, port)).into())
        .with_context(|| format!("binding UDP {interface_ip}:{port}"))?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// The multicast receive socket (see the module docs).
pub fn multicast_socket(
    port: u16,
    group: Ipv4Addr,
    interface_ip: Ipv4Addr,
) -> anyhow::Result<UdpSocket> {
    let socket = udp_socket(port)?;
    // Linux delivers every group joined by any socket on the port unless this is off.
    #[cfg(target_os = "linux")]
    socket.set_multicast_all_v4(false)?;
    set_multicast_sending(&socket, interface_ip)?;
    socket
        .join_multicast_v4(&group, &interface_ip)
        .with_context(|| format!("joining {group} on {interface_ip}"))?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// Joins the group again: after an interface went down and came back the kernel has dropped
/// the membership. "Already a member" is the normal answer and is not an error.
pub fn rejoin_group(socket: &UdpSocket, group: Ipv4Addr, interface_ip: Ipv4Addr) -> bool {
    match socket.join_multicast_v4(group, interface_ip) {
        Ok(()) => true,
        // EADDRINUSE: the socket is still a member.
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => false,
        Err(e) => {
            tracing::warn!("rejoining multicast group {group} on {interface_ip}: {e}");
            false
        }
    }
}

/// The client listener on `0.0.0.0:<port>`, with SO_REUSEADDR so that a restarted node can
/// bind while connections of its previous life sit in TIME_WAIT.
pub fn client_listener(port: u16) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).into())
        .with_context(|| format!("binding TCP 0.0.0.0:{port}"))?;
    socket.listen(1024)?;
    Ok(TcpListener::from_std(socket.into())?)
}
