//! The high-level client: one user's session with the cluster.
//!
//! It finds the leader (explicit servers or discovery, following `not_leader` redirects),
//! logs in with a session token and `since` = the highest inbox sequence it holds, and
//! retries a request after a broken connection, `unavailable` or `not_leader` **with the same
//! message id** until a deadline, so the cluster delivers it exactly once. Received messages
//! are deduplicated by `useq` and acknowledged in batches. Every attempt, ack, failure and
//! receipt is reported to an optional observer with a wall-clock timestamp.
//!
//! An address that just failed (its connection broke, it could not be reached, it refused
//! the login) is tried after every other candidate for a while ([`RecentFailures`]), so a
//! reconnect after a leader crash goes to the new leader rather than to the dead address the
//! survivors may still name. A `session_taken_over` notice ends the session for good: another
//! login took it over, and logging in again from here would displace that one in turn.

use super::connection::{Connection, Pushed};
use super::discovery::{self, leader_first};
use super::error::ClientError;
use super::message_id::MessageIds;
use super::recent_failures::{RecentFailures, FAILED_ADDRESS_COOLDOWN};
use crate::ids::{NodeId, Role};
use crate::protocol::{
    ClusterStatus, ErrorCode, ErrorReply, InboxMessage, OkReply, Request, RoomInfo,
};
use crate::runtime::event_log::wall_clock_ms;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Time to open a TCP connection and read the `welcome` line. On a LAN both take a few
/// milliseconds; a crashed server's address usually does not answer at all (no RST from a
/// killed container, the SYN is retransmitted after 1 s, 3 s, …), so waiting longer only
/// delays the try of the next candidate. It equals the servers' default failure timeout: by
/// the time it fires, the survivors have normally elected a new leader.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time for one attempt of one request, from sending it to its reply. A reply comes after a
/// majority commit (a replication round trip and an fsync: milliseconds), a login after an
/// argon2id check (tens of milliseconds); under the heaviest measured load (256 requests
/// outstanding) the p99 was 1.7 s. 2 s lets a loaded leader answer, and abandons a leader
/// that froze or died without closing the connection within a few failure timeouts. A
/// timeout is safe: the request is retried with the same message id.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time for one request including every reconnection and retry. A failover takes about one
/// to three failure timeouts (0.5–1.5 s by default) until the new leader acknowledges; 10 s
/// rides out several in a row, a leader that is slow to apply its predecessors' log, and the
/// back-off between discovery rounds (50 ms doubling to 500 ms). After it the caller hears
/// the error and decides (the message may still have committed: retry it with its id).
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(10);
/// How long discovery listens. Answers come within milliseconds on a LAN; the broadcast is
/// sent three times within the window against UDP loss. Discovery stops early at the first
/// `role: leader` answer from an address that has not just failed.
pub const DEFAULT_DISCOVERY_WINDOW: Duration = Duration::from_millis(300);
/// Ack after this many unacknowledged messages even while more are arriving (and whenever
/// the queue drains). A mailbox page is 256 messages, so a reader acks many times per page.
pub const DEFAULT_ACK_BATCH: u64 = 16;

/// `unavailable` answers in a row a connection is given (100 ms apart, so an election's
/// worth) before the client tries another server.
pub const UNAVAILABLE_RETRIES: u32 = 15;

/// How a session reaches the cluster.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub cluster: String,
    /// The servers' peer port, where discovery broadcasts go.
    pub peer_port: u16,
    /// Client addresses (`ip:port`) to try; empty means "discover by broadcast".
    pub servers: Vec<String>,
    pub user: String,
    /// The user's password: registers the name at its first login, needed at every later one.
    pub password: String,
    /// Time allowed to open a connection and read the welcome line. Short: a crashed
    /// server's address often does not answer at all, and another server may be leading.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request.
    pub request_timeout: Duration,
    /// Time allowed for a request including reconnections and retries.
    pub retry_deadline: Duration,
    /// How long discovery listens for answers.
    pub discovery_window: Duration,
    /// Ack after this many unacknowledged messages even if more are arriving.
    pub ack_batch: u64,
    /// How long an address that just failed is tried only after every other candidate.
    pub failed_address_cooldown: Duration,
    /// Move to the leader when a follower's `welcome` names it (one hop less per write).
    /// Off, the session stays on the first server that serves (every server does while it
    /// knows a leader), which spreads users over the servers.
    pub prefer_leader: bool,
}

impl SessionConfig {
    pub fn new(user: &str, password: &str) -> SessionConfig {
        SessionConfig {
            cluster: "faultline".into(),
            peer_port: 7400,
            servers: Vec::new(),
            user: user.into(),
            password: password.into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry_deadline: DEFAULT_RETRY_DEADLINE,
            discovery_window: DEFAULT_DISCOVERY_WINDOW,
            ack_batch: DEFAULT_ACK_BATCH,
            failed_address_cooldown: FAILED_ADDRESS_COOLDOWN,
            prefer_leader: true,
        }
    }
}

/// What the observer hears about; each comes with wall-clock Unix ms.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// Logged in on `server` (node `node`); `mailbox` stored messages follow.
    Connected {
        server: String,
        node: NodeId,
        mailbox: u64,
    },
    /// The connection to `server` was given up.
    Disconnected { server: String, reason: String },
    /// One attempt of a request (`op` is the wire op; `id` the message id for send/post).
    Attempt {
        op: String,
        id: Option<String>,
        target: Option<String>,
        attempt: u32,
        server: String,
    },
    /// The request succeeded after `attempts` attempts.
    Acked {
        op: String,
        id: Option<String>,
        target: Option<String>,
        reply: Box<OkReply>,
        attempts: u32,
    },
    /// The request failed for good.
    Failed {
        op: String,
        id: Option<String>,
        target: Option<String>,
        error: String,
    },
    /// A new message arrived.
    Received(InboxMessage),
    /// A message arrived again (same `useq`) and was dropped.
    DuplicateDropped(InboxMessage),
}

/// Receives every [`SessionEvent`] with its wall-clock time in Unix ms.
pub type Observer = Arc<dyn Fn(u64, &SessionEvent) + Send + Sync>;

/// What [`Session::next_incoming`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Message(InboxMessage),
    Presence {
        user: String,
        online: bool,
    },
    /// The connection broke and the session logged in again on `server`.
    Reconnected {
        server: String,
        node: NodeId,
    },
    /// An error line the server sent without a request (e.g. a line it could not read).
    Notice(ErrorReply),
}

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

/// One user's session (see the module docs).
pub struct Session {
    config: SessionConfig,
    /// The session token the server issued at the last login.
    token: Option<String>,
    /// A login request got no answer (timeout, broken connection): it may have committed,
    /// so until the next successful login a `name_taken` or `auth_failed` may be our own
    /// earlier session or registration rather than someone else's.
    login_unanswered: bool,
    /// `unavailable` answers in a row on the current connection (see [`UNAVAILABLE_RETRIES`]).
    unavailable_streak: u32,
    ids: MessageIds,
    conn: Option<Connection>,
    /// Where the leader probably is (from a redirect or a welcome line).
    leader_hint: Option<String>,
    /// Addresses that just failed: tried last for a while.
    recent_failures: RecentFailures,
    /// Another login took this session over (`session_taken_over`): no more logins from here
    /// until the caller asks with [`Session::connect`].
    displaced: Option<ErrorReply>,
    highest_useq: u64,
    acked_upto: u64,
    duplicates_dropped: u64,
    logins: u64,
    /// Accepted (deduplicated) arrivals not yet returned by `next_incoming`.
    ready: VecDeque<Incoming>,
    observer: Option<Observer>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        let recent_failures = RecentFailures::new(config.failed_address_cooldown);
        Session {
            config,
            recent_failures,
            displaced: None,
            token: None,
            login_unanswered: false,
            unavailable_streak: 0,
            ids: MessageIds::new(),
            conn: None,
            leader_hint: None,
            highest_useq: 0,
            acked_upto: 0,
            duplicates_dropped: 0,
            logins: 0,
            ready: VecDeque::new(),
            observer: None,
        }
    }

    /// Reports every attempt, ack, failure and receipt to `observer`.
    pub fn set_observer(&mut self, observer: Observer) {
        self.observer = Some(observer);
    }

    pub fn user(&self) -> &str {
        &self.config.user
    }

    /// The address of the server this session is logged in on.
    pub fn server(&self) -> Option<&str> {
        self.conn.as_ref().map(|c| c.addr())
    }

    /// The node this session is logged in on.
    pub fn server_node(&self) -> Option<NodeId> {
        self.conn.as_ref().map(|c| c.welcome().node)
    }

    /// Highest inbox sequence received.
    pub fn highest_useq(&self) -> u64 {
        self.highest_useq
    }

    /// Messages that arrived twice and were dropped.
    pub fn duplicates_dropped(&self) -> u64 {
        self.duplicates_dropped
    }

    /// How many times the session logged in again after a broken connection.
    pub fn reconnects(&self) -> u64 {
        self.logins.saturating_sub(1)
    }

    /// The prefix of this session's message ids (unique per session).
    pub fn id_prefix(&self) -> &str {
        self.ids.prefix()
    }

    /// The next message id this session would use.
    pub fn next_message_id(&mut self) -> String {
        self.ids.next_id()
    }

    fn observe(&self, event: SessionEvent) {
        if let Some(observer) = &self.observer {
            observer(wall_clock_ms(), &event);
        }
    }

    /// Finds the leader and logs in (done automatically by every request). After a
    /// `session_taken_over` this is the only way to log in again: the caller decided to take
    /// the session back.
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        self.displaced = None;
        let deadline = Instant::now() + self.config.retry_deadline;
        self.ensure_connected(deadline).await
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
        self.message(request, id, to).await
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
        self.message(request, id, &format!("#{room}")).await
    }

    async fn message(
        &mut self,
        request: Request,
        id: &str,
        target: &str,
    ) -> Result<SendOutcome, ClientError> {
        let (reply, attempts) = self
            .call(request, Some(id.to_string()), Some(target.to_string()))
            .await?;
        Ok(SendOutcome {
            id: id.to_string(),
            index: reply.index,
            room_seq: reply.room_seq,
            duplicate: reply.duplicate,
            attempts,
        })
    }

    pub async fn join(&mut self, room: &str) -> Result<(), ClientError> {
        let target = Some(format!("#{room}"));
        self.call(Request::Join { room: room.into() }, None, target)
            .await
            .map(|_| ())
    }

    pub async fn leave(&mut self, room: &str) -> Result<(), ClientError> {
        let target = Some(format!("#{room}"));
        self.call(Request::Leave { room: room.into() }, None, target)
            .await
            .map(|_| ())
    }

    pub async fn who(&mut self) -> Result<Vec<String>, ClientError> {
        let (reply, _) = self.call(Request::Who, None, None).await?;
        Ok(reply.users.unwrap_or_default())
    }

    pub async fn rooms(&mut self) -> Result<Vec<RoomInfo>, ClientError> {
        let (reply, _) = self.call(Request::Rooms, None, None).await?;
        Ok(reply.rooms.unwrap_or_default())
    }

    pub async fn status(&mut self) -> Result<ClusterStatus, ClientError> {
        let (reply, _) = self.call(Request::Status, None, None).await?;
        reply
            .status
            .ok_or_else(|| ClientError::Protocol("status reply without status".into()))
    }

    /// Acknowledges everything received so far (also done automatically in batches).
    pub fn ack(&mut self) {
        if self.highest_useq > self.acked_upto {
            if let Some(conn) = &self.conn {
                if conn
                    .send_only(Request::Ack {
                        upto: self.highest_useq,
                    })
                    .is_ok()
                {
                    self.acked_upto = self.highest_useq;
                }
            }
        }
    }

    /// Logs out and closes the connection; the session can log in again later.
    pub async fn logout(&mut self) -> Result<(), ClientError> {
        self.ack();
        let outcome = match &self.conn {
            Some(conn) => conn
                .request(Request::Logout, self.config.request_timeout)
                .await
                .map(|_| ()),
            None => Ok(()),
        };
        self.drop_connection("logout");
        outcome
    }

    /// The next thing the server pushed: a new message (duplicates are dropped here), a
    /// presence change, or news of a reconnection. Cancel-safe between messages.
    pub async fn next_incoming(&mut self) -> Result<Incoming, ClientError> {
        loop {
            if let Some(incoming) = self.ready.pop_front() {
                return Ok(incoming);
            }
            if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
                if self.conn.is_some() {
                    self.lose_connection("the connection closed");
                    if !self.ready.is_empty() {
                        continue; // what arrived before the close comes first
                    }
                }
                let deadline = Instant::now() + self.config.retry_deadline;
                self.ensure_connected(deadline).await?;
                if let Some(conn) = &self.conn {
                    return Ok(Incoming::Reconnected {
                        server: conn.addr().to_string(),
                        node: conn.welcome().node,
                    });
                }
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            let pushed = match conn.try_next_pushed() {
                Some(pushed) => Some(pushed),
                None => {
                    // Nothing more waiting: a good moment to ack the batch.
                    self.ack();
                    let Some(conn) = self.conn.as_mut() else {
                        continue;
                    };
                    conn.next_pushed().await
                }
            };
            match pushed {
                Some(pushed) => {
                    if let Some(incoming) = self.accept(pushed) {
                        if self.highest_useq >= self.acked_upto + self.config.ack_batch {
                            self.ack();
                        }
                        return Ok(incoming);
                    }
                }
                None => self.lose_connection("the connection closed"),
            }
        }
    }

    /// Applies dedup to one pushed line.
    fn accept(&mut self, pushed: Pushed) -> Option<Incoming> {
        match pushed {
            Pushed::Message(message) => {
                if message.useq <= self.highest_useq {
                    self.duplicates_dropped += 1;
                    self.observe(SessionEvent::DuplicateDropped(message));
                    None
                } else {
                    self.highest_useq = message.useq;
                    self.observe(SessionEvent::Received(message.clone()));
                    Some(Incoming::Message(message))
                }
            }
            Pushed::Presence { user, online } => Some(Incoming::Presence { user, online }),
            Pushed::Error(error) => {
                if error.code == ErrorCode::SessionTakenOver {
                    self.displaced = Some(error.clone());
                }
                Some(Incoming::Notice(error))
            }
        }
    }

    /// Sends one request, reconnecting and retrying (same request, same id) on retryable
    /// failures until the deadline. Returns the reply and the number of attempts.
    async fn call(
        &mut self,
        request: Request,
        id: Option<String>,
        target: Option<String>,
    ) -> Result<(OkReply, u32), ClientError> {
        let op = op_name(&request);
        let deadline = Instant::now() + self.config.retry_deadline;
        let mut attempts = 0u32;
        loop {
            let outcome = match self.ensure_connected(deadline).await {
                Err(e) => Err(e),
                Ok(()) => {
                    attempts += 1;
                    let Some(conn) = self.conn.as_ref() else {
                        continue;
                    };
                    let server = conn.addr().to_string();
                    self.observe(SessionEvent::Attempt {
                        op: op.clone(),
                        id: id.clone(),
                        target: target.clone(),
                        attempt: attempts,
                        server,
                    });
                    let Some(conn) = self.conn.as_ref() else {
                        continue;
                    };
                    conn.request(request.clone(), self.config.request_timeout)
                        .await
                }
            };
            match outcome {
                Ok(reply) => {
                    self.unavailable_streak = 0;
                    self.observe(SessionEvent::Acked {
                        op,
                        id,
                        target,
                        reply: Box::new(reply.clone()),
                        attempts,
                    });
                    return Ok((reply, attempts));
                }
                Err(error) if error.is_retryable() && Instant::now() < deadline => {
                    self.after_failure(&error).await;
                }
                Err(error) => {
                    self.observe(SessionEvent::Failed {
                        op,
                        id,
                        target,
                        error: error.to_string(),
                    });
                    return Err(error);
                }
            }
        }
    }

    /// Drops the connection after a retryable failure and remembers where the leader is.
    async fn after_failure(&mut self, error: &ClientError) {
        if let ClientError::Server(reply) = error {
            if reply.code == ErrorCode::NotLeader {
                if let Some(addr) = &reply.leader_addr {
                    self.leader_hint = Some(addr.clone());
                }
            }
            if reply.code == ErrorCode::Unavailable {
                // The cluster is electing, or the request did not commit in time. The server
                // still serves (a server cut off from the majority says `not_leader`), so wait
                // a moment and retry on this connection: a leader change costs no reconnect.
                tokio::time::sleep(Duration::from_millis(100)).await;
                self.unavailable_streak += 1;
                if self.unavailable_streak < UNAVAILABLE_RETRIES {
                    return;
                }
            }
        }
        self.unavailable_streak = 0;
        self.lose_connection(&error.to_string());
    }

    /// The connection failed us: its address cools down, then it is dropped.
    fn lose_connection(&mut self, reason: &str) {
        if let Some(addr) = self.conn.as_ref().map(|c| c.addr().to_string()) {
            self.recent_failures.mark(&addr, Instant::now());
        }
        self.drop_connection(reason);
    }

    fn drop_connection(&mut self, reason: &str) {
        if let Some(mut conn) = self.conn.take() {
            // Keep what already arrived on the old connection, and count it in `since`
            // before logging in again.
            while let Some(pushed) = conn.try_next_pushed() {
                if let Some(incoming) = self.accept(pushed) {
                    self.ready.push_back(incoming);
                }
            }
            self.observe(SessionEvent::Disconnected {
                server: conn.addr().to_string(),
                reason: reason.to_string(),
            });
        }
    }

    /// Servers to try, best first; addresses that just failed last.
    async fn candidates(&mut self) -> Vec<String> {
        let mut out: Vec<String> = self.leader_hint.iter().cloned().collect();
        let found = if self.config.servers.is_empty() {
            let avoid = self.recent_failures.cooling(Instant::now());
            match discovery::find_leader(
                &self.config.cluster,
                self.config.peer_port,
                self.config.discovery_window,
                &avoid,
            )
            .await
            {
                Ok(servers) => leader_first(&servers),
                Err(e) => {
                    tracing::debug!("discovery: {e}");
                    Vec::new()
                }
            }
        } else {
            self.config.servers.clone()
        };
        for addr in found {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        self.recent_failures.order(out, Instant::now())
    }

    /// Connected and logged in on the leader, or an error at the deadline.
    async fn ensure_connected(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if self.conn.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(());
        }
        if self.conn.is_some() {
            self.lose_connection("the connection closed");
        }
        if let Some(notice) = &self.displaced {
            return Err(ClientError::Server(notice.clone()));
        }
        let mut backoff = Duration::from_millis(50);
        let mut tried: Vec<String> = Vec::new();
        loop {
            let mut queue: VecDeque<String> = self.candidates().await.into();
            // Bounded so that two servers naming each other cannot loop forever.
            let mut budget = queue.len() * 2 + 4;
            while let Some(addr) = queue.pop_front() {
                if budget == 0 || Instant::now() >= deadline {
                    break;
                }
                budget -= 1;
                if !tried.contains(&addr) {
                    tried.push(addr.clone());
                }
                match self.try_server(&addr).await {
                    Ok(()) => return Ok(()),
                    Err(Redirect::To(leader)) => {
                        if leader != addr {
                            self.leader_hint = Some(leader.clone());
                            queue.retain(|a| *a != leader);
                            // A redirect to an address that just failed is probably stale
                            // (the server has not given up on a dead leader yet).
                            if self.recent_failures.is_cooling(&leader, Instant::now()) {
                                queue.push_back(leader);
                            } else {
                                queue.push_front(leader);
                            }
                        }
                    }
                    Err(Redirect::Fatal(error)) => return Err(error),
                    Err(Redirect::Next) => {
                        self.recent_failures.mark(&addr, Instant::now());
                        if self.leader_hint.as_deref() == Some(addr.as_str()) {
                            self.leader_hint = None;
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ClientError::NoServer(if tried.is_empty() {
                    "no server found by discovery".into()
                } else {
                    tried.join(", ")
                }));
            }
            tokio::time::sleep(backoff.min(deadline - Instant::now())).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }

    /// Connects to `addr` and logs in there (or is sent on to the leader, with `prefer_leader`).
    async fn try_server(&mut self, addr: &str) -> Result<(), Redirect> {
        let timeout = self.config.request_timeout;
        let conn = Connection::connect(addr, self.config.connect_timeout)
            .await
            .map_err(|_| Redirect::Next)?;
        let welcome = conn.welcome().clone();
        if welcome.role != Role::Leader && self.config.prefer_leader {
            if let Some(leader) = welcome.leader_addr.filter(|l| l != addr) {
                return Err(Redirect::To(leader));
            }
        }
        let login = Request::Login {
            user: self.config.user.clone(),
            password: self.config.password.clone(),
            session: self.token.clone(),
            since: (self.highest_useq > 0).then_some(self.highest_useq),
        };
        // While the cluster elects, a server that still hears a majority answers
        // `unavailable`: stay and retry here a few times (100 ms apart) rather than pile
        // onto whichever server answers first, unless the session wants the leader anyway.
        let mut outcome = conn.request(login.clone(), timeout).await;
        let mut waits = 0;
        while !self.config.prefer_leader
            && waits < UNAVAILABLE_RETRIES
            && matches!(&outcome, Err(ClientError::Server(r)) if r.code == ErrorCode::Unavailable)
        {
            waits += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            outcome = conn.request(login.clone(), timeout).await;
        }
        match outcome {
            Ok(reply) => {
                self.login_unanswered = false;
                self.recent_failures.clear(addr);
                self.logins += 1;
                self.token = reply.session.clone();
                self.conn = Some(conn);
                self.observe(SessionEvent::Connected {
                    server: addr.to_string(),
                    node: welcome.node,
                    mailbox: reply.mailbox.unwrap_or(0),
                });
                Ok(())
            }
            Err(ClientError::Server(reply)) => match reply.code {
                ErrorCode::NotLeader => match reply.leader_addr {
                    Some(leader) => Err(Redirect::To(leader)),
                    None => Err(Redirect::Next),
                },
                ErrorCode::Unavailable | ErrorCode::TooManyConnections | ErrorCode::ServerFull => {
                    Err(Redirect::Next)
                }
                // After an unanswered login these may be our own earlier attempt (a session
                // the server closes when it sees the old connection gone, a registration that
                // committed): try again until the deadline.
                ErrorCode::AuthFailed | ErrorCode::NameTaken if self.login_unanswered => {
                    Err(Redirect::Next)
                }
                _ => Err(Redirect::Fatal(ClientError::Server(reply))),
            },
            Err(_) => {
                self.login_unanswered = true;
                Err(Redirect::Next)
            }
        }
    }
}

/// What to do after trying one server.
enum Redirect {
    To(String),
    Next,
    Fatal(ClientError),
}

/// The wire name of a request's op.
fn op_name(request: &Request) -> String {
    serde_json::to_value(request)
        .ok()
        .and_then(|v| v.get("op").and_then(|op| op.as_str()).map(str::to_string))
        .unwrap_or_default()
}
