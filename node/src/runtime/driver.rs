//! The driver loop: one task owns the [`Node`] and feeds it ticks, datagrams, client lines and
//! signals, then carries out its outputs in order. Durable records go to the
//! [`Writer`] thread, whose "durable up to" reports come back as `Input::Persisted`: no fsync
//! ever runs on this loop.

use super::clients::{ClientEvent, ConnCommand};
use super::credentials::CredentialWorker;
use super::discovery;
use super::event_log::EventLog;
use super::framing::LineProblem;
use super::io_stats::IoStats;
use super::persist::Store;
use super::writer::{Report, Writer};
use crate::core::credentials::CredentialResult;
use crate::core::{Input, Lane, Millis, Node, Output, TICK_MS};
use crate::events::{Event, EventRecord, EVENTS_VERSION};
use crate::ids::ConnId;
use crate::protocol::{ErrorReply, ServerLine};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

/// At most this many datagrams per socket are read ahead of a tick.
const MAX_DRAINED_PER_TICK: usize = 256;

/// How often the multicast group is joined again (a no-op while the membership holds).
const REJOIN_EVERY: Duration = Duration::from_secs(2);
/// Time given to the leave datagrams to leave the host after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);
/// Receive buffer: larger than any UDP payload, so oversized datagrams reach the core whole
/// and are rejected there with an event.
const RECV_BUFFER: usize = 64 * 1024;

/// Client events fed to the node in one turn at most (one group commit).
const MAX_TURN_INPUTS: usize = 512;

/// Where the node's datagrams go.
pub struct Network {
    /// Broadcast, multicast and control unicast (see [`super::sockets`]).
    pub peer: UdpSocket,
    /// The log's Appends; receives the unicast addressed to this node.
    pub bulk: UdpSocket,
    pub multicast: UdpSocket,
    pub interface_ip: Ipv4Addr,
    pub peer_port: u16,
    pub broadcast: SocketAddr,
    pub group: SocketAddrV4,
}

/// The single owner of the node and everything it talks through.
pub struct Driver {
    node: Node,
    cluster: String,
    client_addr: String,
    net: Network,
    writer: Option<Writer>,
    reports: Option<mpsc::UnboundedReceiver<anyhow::Result<Report>>>,
    events: EventLog,
    conns: HashMap<ConnId, mpsc::Sender<ConnCommand>>,
    clock: Instant,
    framing_rejections: u64,
    refused: u64,
    credentials: CredentialWorker,
    credential_results: Option<mpsc::UnboundedReceiver<CredentialResult>>,
    io: IoStats,
    /// Events to write right after the node's `started` (the state file's repairs).
    notices: Vec<Event>,
}

impl Driver {
    pub fn new(
        node: Node,
        cluster: String,
        client_addr: String,
        net: Network,
        store: Store,
        events: EventLog,
        clock: Instant,
    ) -> Driver {
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Driver {
            writer: Some(Writer::start(store, reports_tx)),
            reports: Some(reports_rx),
            refused: 0,
            credentials: CredentialWorker::new(results_tx),
            credential_results: Some(results_rx),
            node,
            cluster,
            client_addr,
            net,
            events,
            conns: HashMap::new(),
            clock,
            framing_rejections: 0,
            io: IoStats::default(),
            notices: Vec::new(),
        }
    }

    /// Writes `notices` once the node has announced itself (its first tick).
    pub fn announce(mut self, notices: Vec<Event>) -> Driver {
        self.notices = notices;
        self
    }

    fn now(&self) -> Millis {
        self.clock.elapsed().as_millis() as Millis
    }

    /// Our own datagrams loop back (broadcast and multicast); the core never needs them.
    fn is_own(&self, from: &SocketAddr) -> bool {
        *from == SocketAddr::from((self.net.interface_ip, self.net.peer_port))
    }

    /// Runs until SIGTERM or SIGINT, then leaves gracefully. Errors only when persisting fails
    /// (continuing without durable votes could elect two leaders in one epoch).
    pub async fn run(mut self, mut clients: mpsc::Receiver<ClientEvent>) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut rejoin = tokio::time::interval_at(Instant::now() + REJOIN_EVERY, REJOIN_EVERY);
        rejoin.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut peer_buf = vec![0u8; RECV_BUFFER];
        let mut bulk_buf = vec![0u8; RECV_BUFFER];
        let mut multicast_buf = vec![0u8; RECV_BUFFER];
        let mut credential_results = self.credential_results.take().expect("run is called once");
        let mut reports = self.reports.take().expect("run is called once");

        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.drain_peer_sockets(&mut peer_buf, &mut bulk_buf).await?;
                    self.step(Input::Tick)?;
                    for notice in std::mem::take(&mut self.notices) {
                        self.write_event(notice);
                    }
                    self.write_io_stats();
                }
                received = self.net.peer.recv_from(&mut peer_buf) => {
                    self.on_peer_datagram(received, &peer_buf, Lane::Control).await?;
                }
                received = self.net.bulk.recv_from(&mut bulk_buf) => {
                    self.on_peer_datagram(received, &bulk_buf, Lane::Bulk).await?;
                }
                received = self.net.multicast.recv_from(&mut multicast_buf) => {
                    if let Some(input) = self.datagram_input(received, &multicast_buf) {
                        self.step(input)?;
                    }
                }
                Some(event) = clients.recv() => {
                    // Everything the clients have queued goes in as one turn: one log append,
                    // one fsync and one Append per follower for all of it (group commit).
                    let mut inputs = Vec::new();
                    self.on_client(event, &mut inputs);
                    while inputs.len() < MAX_TURN_INPUTS {
                        let Ok(event) = clients.try_recv() else { break };
                        self.on_client(event, &mut inputs);
                    }
                    self.step_batch(inputs)?;
                }
                Some(result) = credential_results.recv() => {
                    self.step(Input::CredentialDone(result))?;
                }
                Some(report) = reports.recv() => {
                    // A failed write stops the node: going on without durable votes could
                    // elect two leaders in one epoch.
                    let mut report = report?;
                    while let Ok(next) = reports.try_recv() {
                        report = next?;
                    }
                    self.io.fsyncs = report.fsyncs;
                    self.io.persist_bytes = report.bytes;
                    self.step(Input::Persisted { upto: report.upto })?;
                }
                _ = rejoin.tick() => {
                    if super::sockets::rejoin_group(&self.net.multicast, *self.net.group.ip(), self.net.interface_ip) {
                        tracing::info!("rejoined multicast group {}", self.net.group);
                    }
                }
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
            }
            self.io.wrote_events(self.events.flush());
        }
        tracing::info!("stopping: announcing a graceful leave");
        self.step(Input::Shutdown)?;
        if let Some(writer) = self.writer.take() {
            // What is queued is written, fsynced and marked before the process ends.
            writer.finish();
        }
        self.io.wrote_events(self.events.flush());
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        Ok(())
    }

    fn datagram_input(
        &self,
        received: io::Result<(usize, SocketAddr)>,
        buf: &[u8],
    ) -> Option<Input> {
        match received {
            Ok((n, from)) if !self.is_own(&from) => Some(Input::Datagram {
                from: from.to_string(),
                bytes: buf[..n].to_vec(),
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("receiving a datagram: {e}");
                None
            }
        }
    }

    async fn on_peer_datagram(
        &mut self,
        received: io::Result<(usize, SocketAddr)>,
        buf: &[u8],
        via: Lane,
    ) -> anyhow::Result<()> {
        if let Ok((n, from)) = received {
            let node = &mut self.node;
            if let Some(reply) =
                discovery::answer(&buf[..n], &self.cluster, &self.client_addr, || {
                    (node.status(), node.assign_client())
                })
            {
                let socket = match via {
                    Lane::Control => &self.net.peer,
                    Lane::Bulk => &self.net.bulk,
                };
                if let Err(e) = socket.send_to(&reply, from).await {
                    tracing::debug!("answering discovery from {from}: {e}");
                }
                return Ok(());
            }
        }
        if let Some(input) = self.datagram_input(received, buf) {
            self.step(input)?;
        }
        Ok(())
    }

    /// Reads what has already arrived on both peer sockets, before a tick judges silence:
    /// `select!` picks among ready branches at random, so after a long turn (a snapshot, a
    /// stalled process) the tick could otherwise run first and suspect every peer whose
    /// heartbeat is waiting in this node's own socket. Bounded, so a flood cannot hold the
    /// tick back.
    async fn drain_peer_sockets(
        &mut self,
        peer_buf: &mut [u8],
        bulk_buf: &mut [u8],
    ) -> anyhow::Result<()> {
        for _ in 0..MAX_DRAINED_PER_TICK {
            let mut read = false;
            match self.net.peer.try_recv_from(peer_buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                received => {
                    read = true;
                    self.on_peer_datagram(received, peer_buf, Lane::Control)
                        .await?;
                }
            }
            match self.net.bulk.try_recv_from(bulk_buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                received => {
                    read = true;
                    self.on_peer_datagram(received, bulk_buf, Lane::Bulk)
                        .await?;
                }
            }
            if !read {
                break;
            }
        }
        Ok(())
    }

    /// Turns a client event into the node's input for this turn (or handles it here).
    fn on_client(&mut self, event: ClientEvent, inputs: &mut Vec<Input>) {
        match event {
            ClientEvent::Connected { conn, peer, outbox } => {
                self.conns.insert(conn, outbox);
                inputs.push(Input::ClientConnected {
                    conn,
                    peer: peer.to_string(),
                });
            }
            ClientEvent::Line { conn, line } => inputs.push(Input::ClientLine { conn, line }),
            ClientEvent::Problem { conn, problem } => self.reject_line(conn, &problem),
            ClientEvent::Disconnected { conn } => {
                self.conns.remove(&conn);
                inputs.push(Input::ClientDisconnected { conn });
            }
            ClientEvent::Refused { peer, open } => {
                self.refused += 1;
                let count = self.refused;
                self.write_event(Event::InputRejected {
                    source: "client".into(),
                    from: peer.to_string(),
                    reason: format!("too_many_connections: {open} open"),
                    count,
                    times: 1,
                });
            }
        }
    }

    /// A line the framing could not pass on: the client gets an error line and the
    /// connection stays open; the rejection is an event like the core's own.
    fn reject_line(&mut self, conn: ConnId, problem: &LineProblem) {
        self.framing_rejections += 1;
        let reason = problem.describe();
        let reply = ServerLine::Error(ErrorReply {
            req: None,
            code: problem.code(),
            message: reason.clone(),
            leader_addr: None,
        });
        if let Ok(line) = serde_json::to_string(&reply) {
            self.queue_line(conn, line);
        }
        self.write_event(Event::InputRejected {
            source: "client".into(),
            from: conn.to_string(),
            reason: format!("framing: {reason}"),
            count: self.framing_rejections,
            times: 1,
        });
    }

    /// An event the runtime itself observed (the core did not see the input).
    fn write_event(&mut self, event: Event) {
        let status = self.node.status();
        self.events.write(&EventRecord {
            v: EVENTS_VERSION,
            ts_ms: self.now(),
            node: status.node,
            epoch: status.epoch,
            role: status.role,
            event,
        });
    }

    /// `io_stats` about once a second, `send_failed` for refused datagrams.
    fn write_io_stats(&mut self) {
        for event in self.io.due(self.now()) {
            self.write_event(event);
        }
    }

    fn queue_line(&mut self, conn: ConnId, line: String) {
        let Some(outbox) = self.conns.get(&conn) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = outbox.try_send(ConnCommand::Line(line)) {
            // A client that does not read must not stall the node: drop it. Its task sees
            // the closed queue, closes the socket and reports the disconnect.
            tracing::warn!("client {conn} is not reading; disconnecting it");
            self.conns.remove(&conn);
        }
    }

    /// Feeds one input to the node and carries out the outputs in order.
    fn step(&mut self, input: Input) -> anyhow::Result<()> {
        self.step_batch(vec![input])
    }

    /// Feeds one turn's inputs to the node and carries out the outputs in order.
    fn step_batch(&mut self, inputs: Vec<Input>) -> anyhow::Result<()> {
        if inputs.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let now = self.now();
        let outputs = self.node.handle_batch(now, inputs);
        let result = self.carry_out(outputs);
        self.io.turn(started.elapsed().as_millis() as Millis);
        result
    }

    fn carry_out(&mut self, outputs: Vec<Output>) -> anyhow::Result<()> {
        let mut records = Vec::new();
        for output in outputs {
            match output {
                // The core holds back whatever depends on these until they are reported
                // durable, so the rest of this turn's outputs go out now.
                Output::Persist(record) => records.push(record),
                Output::Broadcast { bytes } => {
                    self.send_datagram(&bytes, self.net.broadcast, Lane::Control)
                }
                Output::Multicast { bytes } => {
                    // Only heartbeats (and the last leave) are multicast.
                    self.io.heartbeat(self.now());
                    self.send_datagram(&bytes, SocketAddr::V4(self.net.group), Lane::Control)
                }
                Output::Send {
                    to,
                    addr,
                    bytes,
                    lane,
                } => match addr.parse::<SocketAddr>() {
                    Ok(target) => self.send_datagram(&bytes, target, lane),
                    Err(_) => tracing::warn!("peer {to} has an unusable address `{addr}`"),
                },
                Output::ToClient { conn, line } => self.queue_line(conn, line),
                Output::CloseClient { conn } => {
                    if let Some(outbox) = self.conns.get(&conn) {
                        // If the queue is full the dropped sender closes the connection anyway.
                        let _ = outbox.try_send(ConnCommand::Close);
                    }
                    self.conns.remove(&conn);
                }
                Output::Event(record) => self.events.write(&record),
                Output::Credential(job) => self.credentials.start(job),
            }
        }
        if let Some(writer) = &self.writer {
            writer.write(records);
        }
        Ok(())
    }

    /// UDP sends never wait: a datagram the kernel refuses (a full socket buffer) is lost,
    /// which the protocol tolerates like any loss, and counted (`send_failed`, `io_stats`).
    /// Appends go out of their own socket, so a full bulk buffer never refuses a heartbeat.
    fn send_datagram(&mut self, bytes: &[u8], target: SocketAddr, lane: Lane) {
        let socket = match lane {
            Lane::Control => &self.net.peer,
            Lane::Bulk => &self.net.bulk,
        };
        match socket.try_send_to(bytes, target) {
            Ok(_) => self.io.sent(bytes.len()),
            Err(e) => {
                tracing::debug!("sending {} bytes to {target}: {e}", bytes.len());
                self.io.refused(target.to_string(), e.to_string());
            }
        }
    }
}
