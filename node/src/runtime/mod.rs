//! The tokio runtime around the sans-IO core: interface discovery, sockets, the client TCP
//! server, the discovery responder, persistence, event output and the driver loop that owns
//! the [`crate::core::Node`]. One concept per file.

pub mod clients;
pub mod compaction;
pub mod config;
pub mod credentials;
pub mod discovery;
pub mod driver;
pub mod event_log;
pub mod framing;
pub mod identity;
pub mod incarnation;
pub mod io_stats;
pub mod limits;
pub mod memory;
pub mod net;
pub mod persist;
pub mod secret;
pub mod sockets;
pub mod state_file;
pub mod writer;

use crate::core::{Node, Restored};
use crate::settings::ServeArgs;
use std::net::{SocketAddr, SocketAddrV4};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Client events queued towards the driver before connection tasks wait.
const CLIENT_QUEUE: usize = 4096;

/// `chat-node serve`: runs one node until SIGTERM/SIGINT, events on stdout.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let events = event_log::EventLog::new(args.log_format);
    serve_with_events(args, events).await
}

/// [`serve`] with the events going to `events`.
pub async fn serve_with_events(args: ServeArgs, events: event_log::EventLog) -> anyhow::Result<()> {
    config::validate(&args)?;
    let peer_key = secret::peer_key(&args)?;
    let interface = net::pick_interface(args.interface.as_deref())?;
    let opened = match &args.data_dir {
        Some(dir) => persist::Store::open(dir, args.accept_data_loss)?,
        None => persist::Opened {
            store: persist::Store::memory(),
            restored: Restored::default(),
            records: 0,
            notices: vec![],
        },
    };
    let persist::Opened {
        store,
        restored,
        records,
        notices,
    } = opened;
    let id = identity::resolve(&args)?;
    let now_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let incarnation = incarnation::next(args.data_dir.as_deref(), now_nanos / 1000)?;
    let core_config =
        config::core_config(&args, id, interface.ip, now_nanos, peer_key, incarnation);
    let client_addr = core_config.client_addr.clone();

    let peer = sockets::peer_socket(args.peer_port, interface.ip)?;
    let bulk = sockets::bulk_socket(args.peer_port, interface.ip)?;
    let multicast =
        sockets::multicast_socket(args.multicast_port, args.multicast_group, interface.ip)?;
    let listener = sockets::client_listener(args.client_port)?;
    tracing::info!(
        "node {id} on {} ({}/{}, broadcast {}), clients at {client_addr}, {records} durable records replayed",
        interface.name,
        interface.ip,
        interface.netmask,
        interface.broadcast
    );

    let (client_tx, client_rx) = mpsc::channel(CLIENT_QUEUE);
    let max_connections = limits::max_connections(args.max_connections);
    tokio::spawn(clients::accept_loop(listener, client_tx, max_connections));

    let clock = Instant::now();
    let node = Node::new(core_config, restored, 0)
        .limit_clients(args.max_clients)
        .snapshot_every(args.snapshot_every);
    let network = driver::Network {
        peer,
        bulk,
        multicast,
        interface_ip: interface.ip,
        peer_port: args.peer_port,
        broadcast: SocketAddr::from((interface.broadcast, args.peer_port)),
        group: SocketAddrV4::new(args.multicast_group, args.multicast_port),
    };
    driver::Driver::new(
        node,
        args.cluster.clone(),
        client_addr,
        network,
        store,
        events,
        clock,
    )
    .announce(notices)
    .run(client_rx)
    .await
}
