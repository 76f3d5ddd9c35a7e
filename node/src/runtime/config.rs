//! Builds the core's [`Config`] from the command-line settings.

use crate::core::auth::PeerKey;
use crate::core::Config;
use crate::ids::NodeId;
use crate::settings::{ElectionKind, ServeArgs};
use anyhow::bail;
use rand::Rng;
use std::net::Ipv4Addr;

/// Largest random id: ids stay exact in JSON readers that use doubles (JavaScript, jq).
const MAX_RANDOM_ID: u64 = (1 << 53) - 1;

/// Checks settings that clap cannot.
pub fn validate(args: &ServeArgs) -> anyhow::Result<()> {
    if let Err(msg) = ElectionKind::parse_implemented(args.election.name()) {
        bail!("--election: {msg}");
    }
    if args.cluster_size == 0 {
        bail!("--cluster-size must be at least 1");
    }
    if args.id == Some(0) {
        bail!("--id must be a positive integer");
    }
    if args.heartbeat.is_zero() || args.failure_timeout <= args.heartbeat {
        bail!(
            "--failure-timeout ({:?}) must be longer than --heartbeat ({:?})",
            args.failure_timeout,
            args.heartbeat
        );
    }
    if args.max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    if args.login_timeout.is_zero() {
        bail!("--login-timeout must be longer than 0");
    }
    if args.cluster.is_empty() || args.cluster.len() > 255 {
        bail!("--cluster must be 1 to 255 bytes (it is in every peer frame)");
    }
    if args.peer_port == args.multicast_port {
        bail!("--peer-port and --multicast-port must differ");
    }
    Ok(())
}

/// The node's id: the flag, or a random one.
pub fn node_id(args: &ServeArgs) -> NodeId {
    NodeId(
        args.id
            .unwrap_or_else(|| rand::thread_rng().gen_range(1..=MAX_RANDOM_ID)),
    )
}

/// The core's settings for a node with `id` reachable by clients at `interface_ip`.
/// `peer_key` is [`super::secret::peer_key`]'s, `incarnation` [`super::incarnation::next`]'s.
pub fn core_config(
    args: &ServeArgs,
    id: NodeId,
    interface_ip: Ipv4Addr,
    now_nanos: u64,
    peer_key: PeerKey,
    incarnation: u64,
) -> Config {
    Config {
        id,
        cluster: args.cluster.clone(),
        cluster_size: args.cluster_size,
        heartbeat_ms: args.heartbeat.as_millis() as u64,
        failure_timeout_ms: args.failure_timeout.as_millis() as u64,
        election: args.election,
        quorum: args.quorum,
        client_addr: format!("{interface_ip}:{}", args.client_port),
        // Distinct per node and per start, so restarted nodes do not replay their jitter.
        seed: id.0.rotate_left(32) ^ now_nanos,
        login_timeout_ms: args.login_timeout.as_millis() as u64,
        peer_key,
        // Both peer sockets send from the interface address and the peer port.
        peer_addr: format!("{interface_ip}:{}", args.peer_port),
        incarnation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::serve_args as args;

    #[test]
    fn accepts_every_election_and_refuses_bad_timing() {
        for e in ["lcr", "raft", "bully"] {
            assert!(validate(&args(&["--election", e])).is_ok(), "{e}");
        }
        assert!(validate(&args(&[])).is_ok());
        assert!(validate(&args(&["--heartbeat", "1s", "--failure-timeout", "500ms"])).is_err());
    }

    #[test]
    fn advertises_the_interface_address() {
        let a = args(&["--id", "7", "--client-port", "9000", "--heartbeat", "50ms"]);
        let c = core_config(
            &a,
            node_id(&a),
            Ipv4Addr::new(10, 99, 0, 4),
            1,
            PeerKey::insecure(),
            7,
        );
        assert_eq!(c.id, NodeId(7));
        assert_eq!(c.client_addr, "10.99.0.4:9000");
        assert_eq!(c.heartbeat_ms, 50);
        assert_eq!((c.peer_addr.as_str(), c.incarnation), ("10.99.0.4:7400", 7));
        let random = node_id(&args(&[]));
        assert!(random.0 >= 1 && random.0 <= MAX_RANDOM_ID);
    }
}
