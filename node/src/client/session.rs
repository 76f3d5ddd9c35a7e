//! The tokio driver of the [`ClientCore`]: one user's session with the cluster as async
//! calls. The core decides everything (which server, redirects, retries with the same
//! message id, `useq` dedup, acks); this file only opens the TCP connections, runs UDP
//! discovery, moves lines, keeps the time and reports every [`SessionEvent`] to an optional
//! observer with a wall-clock timestamp.
//!
//! [`Session::next_incoming`] is cancel-safe: a connection being opened, a discovery under
//! way and a reconnection are kept in the session, not in the future.

use super::core::{ClientCore, LinkId, OpId, Output};
use super::discovery::{self, assigned_first, leader_first};
use super::error::ClientError;
use super::link::Link;
use super::message_id::MessageIds;
use crate::core::Millis;
use crate::ids::NodeId;
use crate::protocol::{ClusterStatus, OkReply, Request, RoomInfo};
use crate::runtime::event_log::wall_clock_ms;
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::future::pending;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use super::core::{
    Incoming, SessionConfig, SessionEvent, DEFAULT_ACK_BATCH, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DISCOVERY_WINDOW, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_DEADLINE, UNAVAILABLE_RETRIES,
};

/// Receives every [`SessionEvent`] with its wall-clock time in Unix ms.
pub type Observer = Arc<dyn Fn(u64, &SessionEvent) + Send + Sync>;

/// The result of a successful `send` or `post`.
#[derive(Clone, Debug, PartialEq)]
pub struct SendOutcome {
    pub id: String,
    pub index: Option<u64>,
    pub room_seq: Option<u64>,
    /// The server had already committed this id (a retry of a message that got through).
    pub duplicate: bool,
    pub attempts: u32,
}

type OpResult = Result<(OkReply, u32), ClientError>;

/// What woke the driver.
enum Wake {
    Opened(LinkId, std::io::Result<Link>),
    Line(LinkId, Option<String>),
    Discovered(Vec<String>),
    Timer,
}

/// One user's session (see the module docs).
pub struct Session {
    core: ClientCore,
    /// Time zero of the core's milliseconds.
    start: Instant,
    ids: MessageIds,
    link: Option<(LinkId, Link)>,
    opening: Option<(LinkId, BoxFuture<'static, std::io::Result<Link>>)>,
    discovering: Option<BoxFuture<'static, Vec<String>>>,
    /// Arrivals not yet returned by `next_incoming`.
    ready: VecDeque<Incoming>,
    done: HashMap<OpId, OpResult>,
    /// The login `next_incoming` asked for after the connection was lost.
    reconnect: Option<OpId>,
    observer: Option<Observer>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            core: ClientCore::new(config),
            start: Instant::now(),
            ids: MessageIds::new(),
            link: None,
            opening: None,
            discovering: None,
            ready: VecDeque::new(),
            done: HashMap::new(),
            reconnect: None,
            observer: None,
        }
    }

    /// Reports every attempt, ack, failure and receipt to `observer`.
    pub fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    pub fn user(&self) -> &str {
        self.core.user()
    }

    /// The address of the server this session is logged in on.
    pub fn server(&self) -> Option<&str> {
        self.core.server()
    }

    /// The node this session is logged in on.
    pub fn server_node(&self) -> Option<NodeId> {
        self.core.server_node()
    }

    /// Highest inbox sequence received.
    pub fn highest_useq(&self) -> u64 {
        self.core.highest_useq()
    }

    /// Messages that arrived twice and were dropped.
    pub fn duplicates_dropped(&self) -> u64 {
        self.core.duplicates_dropped()
    }

    /// How many times the session logged in again after a broken connection.
    pub fn reconnects(&self) -> u64 {
        self.core.reconnects()
    }

    /// The prefix of this session's message ids (unique per session).
    pub fn id_prefix(&self) -> &str {
        self.ids.prefix()
    }

    /// The next message id this session would use.
    pub fn next_message_id(&mut self) -> String {
        self.ids.next_id()
    }

    /// Finds a server and logs in (done automatically by every request). After a
    /// `session_taken_over` this is the only way to log in again: the caller decided to take
    /// the session back.
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        let now = self.now();
        let op = self.core.connect(now, true);
        self.wait(op).await.map(|_| ())
    }

    /// A private message with a fresh id.
    pub async fn send(&mut self, to: &str, text: &str) -> Result<SendOutcome, ClientError> {
        let id = self.ids.next_id();
        self.send_with_id(to, &id, text).await
    }

    /// A private message with a caller-chosen id (retries keep it).
    pub async fn send_with_id(
        &mut self,
        to: &str,
        id: &str,
        text: &str,
    ) -> Result<SendOutcome, ClientError> {
        let request = Request::Send {
            to: to.into(),
            id: id.into(),
            text: text.into(),
        };
        self.message(request, id).await
    }

    /// A room post with a fresh id.
    pub async fn post(&mut self, room: &str, text: &str) -> Result<SendOutcome, ClientError> {
        let id = self.ids.next_id();
        self.post_with_id(room, &id, text).await
    }

    /// A room post with a caller-chosen id.
    pub async fn post_with_id(
        &mut self,
        room: &str,
        id: &str,
        text: &str,
    ) -> Result<SendOutcome, ClientError> {
        let request = Request::Post {
            room: room.into(),
            id: id.into(),
            text: text.into(),
        };
        self.message(request, id).await
    }

    async fn message(&mut self, request: Request, id: &str) -> Result<SendOutcome, ClientError> {
        let (reply, attempts) = self.call(request).await?;
        Ok(SendOutcome {
            id: id.to_string(),
            index: reply.index,
            room_seq: reply.room_seq,
            duplicate: reply.duplicate,
            attempts,
        })
    }

    pub async fn join(&mut self, room: &str) -> Result<(), ClientError> {
        self.call(Request::Join { room: room.into() })
            .await
            .map(|_| ())
    }

    pub async fn leave(&mut self, room: &str) -> Result<(), ClientError> {
        self.call(Request::Leave { room: room.into() })
            .await
            .map(|_| ())
    }

    pub async fn who(&mut self) -> Result<Vec<String>, ClientError> {
        let (reply, _) = self.call(Request::Who).await?;
        Ok(reply.users.unwrap_or_default())
    }

    pub async fn rooms(&mut self) -> Result<Vec<RoomInfo>, ClientError> {
        let (reply, _) = self.call(Request::Rooms).await?;
        Ok(reply.rooms.unwrap_or_default())
    }

    pub async fn status(&mut self) -> Result<ClusterStatus, ClientError> {
        let (reply, _) = self.call(Request::Status).await?;
        reply
            .status
            .ok_or_else(|| ClientError::Protocol("status reply without status".into()))
    }

    /// Acknowledges everything received so far (also done automatically in batches).
    pub fn ack(&mut self) {
        self.core.flush_acks();
        self.apply_outputs();
    }

    /// Logs out and closes the connection; the session can log in again later.
    pub async fn logout(&mut self) -> Result<(), ClientError> {
        self.call(Request::Logout).await.map(|_| ())
    }

    /// The next thing the server pushed: a new message (duplicates are dropped), a presence
    /// change, or news of a reconnection. Cancel-safe.
    pub async fn next_incoming(&mut self) -> Result<Incoming, ClientError> {
        loop {
            self.apply_outputs();
            if let Some(incoming) = self.ready.pop_front() {
                if self.ready.is_empty() {
                    self.ack_if_idle();
                }
                return Ok(incoming);
            }
            if let Some(op) = self.reconnect {
                if let Some(result) = self.done.remove(&op) {
                    self.reconnect = None;
                    result?;
                    if let (Some(server), Some(node)) =
                        (self.core.server(), self.core.server_node())
                    {
                        return Ok(Incoming::Reconnected {
                            server: server.to_string(),
                            node,
                        });
                    }
                    continue;
                }
            } else if !self.core.is_ready() {
                let now = self.now();
                self.reconnect = Some(self.core.connect(now, false));
                continue;
            }
            self.ack_if_idle();
            self.wake().await;
        }
    }

    /// Nothing more waiting: a good moment to ack the batch.
    fn ack_if_idle(&mut self) {
        if self.link.as_ref().is_some_and(|(_, l)| !l.has_waiting()) {
            self.ack();
        }
    }

    fn now(&self) -> Millis {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn call(&mut self, request: Request) -> OpResult {
        let now = self.now();
        let op = self.core.submit(now, request);
        self.wait(op).await
    }

    async fn wait(&mut self, op: OpId) -> OpResult {
        loop {
            self.apply_outputs();
            if let Some(result) = self.done.remove(&op) {
                return result;
            }
            self.wake().await;
        }
    }

    /// Carries out what the core asked for.
    fn apply_outputs(&mut self) {
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Connect { link, addr } => {
                    self.link = None;
                    self.opening = Some((link, Box::pin(Link::open(addr))));
                }
                Output::Send { link, line } => {
                    if let Some((id, l)) = &self.link {
                        if *id == link {
                            l.send(line);
                        }
                    }
                }
                Output::Close { link } => {
                    if self.link.as_ref().is_some_and(|(id, _)| *id == link) {
                        self.link = None;
                    }
                    if self.opening.as_ref().is_some_and(|(id, _)| *id == link) {
                        self.opening = None;
                    }
                }
                Output::Discover { avoid } => {
                    let config = self.core.config();
                    let (cluster, port, window) = (
                        config.cluster.clone(),
                        config.peer_port,
                        config.discovery_window,
                    );
                    let assigned = !config.prefer_leader && config.follow_assignment;
                    self.discovering = Some(Box::pin(async move {
                        match discovery::find_leader(&cluster, port, window, &avoid).await {
                            Ok(servers) if assigned => assigned_first(&servers),
                            Ok(servers) => leader_first(&servers),
                            Err(e) => {
                                tracing::debug!("discovery: {e}");
                                Vec::new()
                            }
                        }
                    }));
                }
                Output::Event(event) => {
                    if let Some(observer) = &self.observer {
                        observer(wall_clock_ms(), &event);
                    }
                }
                Output::Incoming(incoming) => self.ready.push_back(incoming),
                Output::Done { op, result } => {
                    self.done.insert(op, *result);
                }
                Output::Unreadable { line, error } => {
                    tracing::warn!("unreadable server line ({error}): {line}");
                }
            }
        }
    }

    /// Waits for the next input (a connection opened, a line or the end of one, discovery
    /// answers, the core's timer) and hands it to the core.
    async fn wake(&mut self) {
        let deadline = self
            .core
            .poll_timeout()
            .map(|ms| self.start + Duration::from_millis(ms));
        let Session {
            link,
            opening,
            discovering,
            ..
        } = self;
        if link.is_none() && opening.is_none() && discovering.is_none() && deadline.is_none() {
            // Nothing can happen (not expected: every waiting state has a timer or I/O).
            tokio::time::sleep(Duration::from_millis(10)).await;
            return;
        }
        let wake = tokio::select! {
            (id, opened) = async {
                match opening.as_mut() {
                    Some((id, f)) => (*id, f.as_mut().await),
                    None => pending().await,
                }
            } => Wake::Opened(id, opened),
            (id, line) = async {
                match link.as_mut() {
                    Some((id, l)) => (*id, l.recv().await),
                    None => pending().await,
                }
            } => Wake::Line(id, line),
            found = async {
                match discovering.as_mut() {
                    Some(f) => f.as_mut().await,
                    None => pending().await,
                }
            } => Wake::Discovered(found),
            _ = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => pending().await,
                }
            } => Wake::Timer,
        };
        let now = self.now();
        match wake {
            Wake::Opened(id, Ok(l)) => {
                self.opening = None;
                self.link = Some((id, l));
            }
            Wake::Opened(id, Err(_)) => {
                self.opening = None;
                self.core.handle_closed(now, id);
            }
            Wake::Line(id, Some(line)) => self.core.handle_line(now, id, &line),
            Wake::Line(id, None) => {
                self.link = None;
                self.core.handle_closed(now, id);
            }
            Wake::Discovered(found) => {
                self.discovering = None;
                self.core.handle_discovered(now, found);
            }
            Wake::Timer => {
                // What already arrived counts before a timeout gives the connection up.
                if let Some((id, l)) = self.link.as_mut() {
                    let id = *id;
                    while let Some(line) = l.try_recv() {
                        self.core.handle_line(now, id, &line);
                    }
                }
                self.core.handle_timeout(now);
            }
        }
    }
}
