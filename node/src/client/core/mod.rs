//! The client state machine without I/O (sans-IO, like quinn-proto or raft-rs): one user's
//! session with the cluster, driven by the tokio [`Session`](super::Session), the simulator's
//! users and, through the session, the harness's workload — one implementation of the
//! redirect, retry and dedup rules of `docs/PROTOCOL.md` section 8.
//!
//! Inputs: operations ([`submit`](ClientCore::submit), [`connect`](ClientCore::connect)),
//! lines received on a connection, the end of a connection, discovery answers, and the time
//! ([`handle_timeout`](ClientCore::handle_timeout) at [`poll_timeout`](ClientCore::poll_timeout)).
//! Outputs ([`poll_output`](ClientCore::poll_output)): connections to open and close, lines
//! to write, a discovery to run, deliveries for the application, events for the observer,
//! finished operations. Time is the driver's milliseconds (virtual in the simulator).
//!
//! The machine: DISCOVER (or take the configured servers) → CONNECT to the next candidate
//! (`connect_timeout` for TCP and `welcome`; with `prefer_leader` a follower's `welcome`
//! naming the leader redirects there) → LOGIN with the session token and `since` = the
//! highest `useq` held → READY: the queued operations go one at a time, each retried with the
//! same request (so the same message id) after `unavailable` (100 ms later on the same
//! connection, 15 times), `not_leader`, a reply timeout or a broken connection (on another
//! connection) until its retry deadline. A candidate that fails is marked in
//! [`RecentFailures`] and tried after the others for a while. A `session_taken_over` notice
//! stops the machine until the caller asks with [`connect`](ClientCore::connect).
//! Received messages are deduplicated by `useq` and acknowledged in batches.
//!
//! The core only connects while an operation waits: a lost connection with nothing to do is
//! taken up again at the next operation (the tokio session submits one when the application
//! waits for incoming messages).

mod config;
mod inbox;
mod op;
mod output;

pub use config::*;
pub use output::{Incoming, LinkId, OpId, Output, SessionEvent};

use super::error::ClientError;
use super::recent_failures::RecentFailures;
use crate::core::Millis;
use crate::ids::{NodeId, Role};
use crate::protocol::{ClientFrame, ErrorCode, ErrorReply, OkReply, Request, ServerLine, Welcome};
use config::ms;
use inbox::Inbox;
use op::Op;
use std::collections::VecDeque;

/// Where the connection stands.
#[derive(Clone, Debug)]
enum Conn {
    /// Not connected and not trying (nothing to do, or stopped).
    Offline,
    /// Waiting for the driver's discovery answer.
    Discovering,
    /// Every candidate failed: the next round starts at `until`.
    BackingOff { until: Millis },
    /// TCP connect and `welcome`, until `until`.
    Opening {
        link: LinkId,
        addr: String,
        until: Millis,
    },
    /// The login `req` in flight until `until`, or (`req: None`) answered `unavailable` and
    /// sent again at `until`; `waits` such answers so far.
    LoggingIn {
        link: LinkId,
        addr: String,
        node: NodeId,
        req: Option<u64>,
        until: Millis,
        waits: u32,
    },
    /// Logged in.
    Ready {
        link: LinkId,
        addr: String,
        node: NodeId,
    },
}

/// One user's session (see the module docs).
pub struct ClientCore {
    config: SessionConfig,
    connect_timeout: Millis,
    request_timeout: Millis,
    retry_deadline: Millis,
    conn: Conn,
    ops: VecDeque<Op>,
    next_op: u64,
    next_link: u64,
    next_req: u64,
    /// The session token the server issued at the last login.
    token: Option<String>,
    /// A login got no answer (timeout, broken connection): it may have committed, so until
    /// the next successful login a `name_taken` or `auth_failed` may be our own earlier
    /// session or registration rather than someone else's.
    login_unanswered: bool,
    /// Where the leader probably is (from a redirect or a welcome line).
    leader_hint: Option<String>,
    /// This connection round already followed an assignment (reset at the next login).
    moved: bool,
    /// The last `welcome` named no leader, so it could carry no assignment either.
    welcomed_without_leader: bool,
    recent_failures: RecentFailures,
    /// Another login took this session over: no more logins until [`ClientCore::connect`].
    displaced: Option<ErrorReply>,
    inbox: Inbox,
    logins: u64,
    /// This round's candidates, how many more tries it allows (two servers naming each other
    /// cannot loop forever), the addresses tried since the core went looking, the back-off.
    queue: VecDeque<String>,
    budget: usize,
    tried: Vec<String>,
    backoff: Millis,
    out: VecDeque<Output>,
}

impl ClientCore {
    pub fn new(config: SessionConfig) -> ClientCore {
        ClientCore {
            connect_timeout: ms(config.connect_timeout),
            request_timeout: ms(config.request_timeout),
            retry_deadline: ms(config.retry_deadline),
            recent_failures: RecentFailures::new(config.failed_address_cooldown),
            config,
            conn: Conn::Offline,
            ops: VecDeque::new(),
            next_op: 1,
            next_link: 1,
            next_req: 1,
            token: None,
            login_unanswered: false,
            leader_hint: None,
            moved: false,
            welcomed_without_leader: false,
            displaced: None,
            inbox: Inbox::default(),
            logins: 0,
            queue: VecDeque::new(),
            budget: 0,
            tried: Vec::new(),
            backoff: BACKOFF_FIRST_MS,
            out: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn user(&self) -> &str {
        &self.config.user
    }

    /// The address of the server this session is logged in on.
    pub fn server(&self) -> Option<&str> {
        match &self.conn {
            Conn::Ready { addr, .. } => Some(addr),
            _ => None,
        }
    }

    /// The node this session is logged in on.
    pub fn server_node(&self) -> Option<NodeId> {
        match &self.conn {
            Conn::Ready { node, .. } => Some(*node),
            _ => None,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.conn, Conn::Ready { .. })
    }

    /// The link the core is using or opening, if any.
    pub fn link(&self) -> Option<LinkId> {
        match &self.conn {
            Conn::Opening { link, .. }
            | Conn::LoggingIn { link, .. }
            | Conn::Ready { link, .. } => Some(*link),
            _ => None,
        }
    }

    /// The session token of the last login.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The `session_taken_over` notice that stopped the session, if one did.
    pub fn displaced(&self) -> Option<&ErrorReply> {
        self.displaced.as_ref()
    }

    pub fn highest_useq(&self) -> u64 {
        self.inbox.highest_useq
    }

    pub fn duplicates_dropped(&self) -> u64 {
        self.inbox.duplicates_dropped
    }

    /// Logins after the first.
    pub fn reconnects(&self) -> u64 {
        self.logins.saturating_sub(1)
    }

    /// Operations not finished yet.
    pub fn pending_ops(&self) -> usize {
        self.ops.len()
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Queues a request; it is sent once logged in (logging in first if needed) and retried
    /// until its deadline. A `logout` is sent once and only if logged in, and closes.
    pub fn submit(&mut self, now: Millis, request: Request) -> OpId {
        let id = self.op_id();
        if matches!(request, Request::Logout) {
            self.flush_acks();
            if !self.is_ready() {
                self.out.push_back(Output::Done {
                    op: id,
                    result: Box::new(Ok((OkReply::default(), 0))),
                });
                return id;
            }
        }
        self.ops
            .push_back(Op::new(id, Some(request), now + self.retry_deadline));
        self.advance(now);
        id
    }

    /// Be logged in. `take_back`: the caller decided to log in again after a
    /// `session_taken_over` (otherwise the operation fails with that notice).
    pub fn connect(&mut self, now: Millis, take_back: bool) -> OpId {
        if take_back {
            self.displaced = None;
        }
        let id = self.op_id();
        self.ops
            .push_back(Op::new(id, None, now + self.retry_deadline));
        self.advance(now);
        id
    }

    /// Acks everything received (the driver calls it when nothing more is waiting).
    pub fn flush_acks(&mut self) {
        if let Some(upto) = self.inbox.ack_due(self.config.ack_batch, true) {
            self.send_ack(upto);
        }
    }

    /// The earliest time [`handle_timeout`](ClientCore::handle_timeout) has work.
    pub fn poll_timeout(&self) -> Option<Millis> {
        match &self.conn {
            Conn::Offline | Conn::Discovering => None,
            Conn::BackingOff { until }
            | Conn::Opening { until, .. }
            | Conn::LoggingIn { until, .. } => Some(*until),
            Conn::Ready { .. } => self
                .ops
                .front()
                .and_then(|op| op.in_flight.map(|(_, until)| until).or(op.resend_at)),
        }
    }

    pub fn handle_timeout(&mut self, now: Millis) {
        match self.conn.clone() {
            Conn::Opening { link, until, .. } if now >= until => {
                self.give_up_candidate(now, link);
            }
            Conn::LoggingIn {
                link, req, until, ..
            } if now >= until => match req {
                Some(_) => {
                    self.login_unanswered = true;
                    self.give_up_candidate(now, link);
                }
                None => self.send_login(now),
            },
            Conn::BackingOff { until } if now >= until => self.start_round(now),
            Conn::Ready { .. } => {
                let Some(op) = self.ops.front_mut() else {
                    return;
                };
                if op.in_flight.is_some_and(|(_, until)| now >= until) {
                    let timeout = self.config.request_timeout;
                    self.op_failed(now, ClientError::Timeout(timeout));
                } else if op.resend_at.is_some_and(|at| now >= at) {
                    op.resend_at = None;
                    self.send_front(now);
                }
            }
            _ => {}
        }
    }

    /// The driver's discovery answer: addresses, best first.
    pub fn handle_discovered(&mut self, now: Millis, found: Vec<String>) {
        if matches!(self.conn, Conn::Discovering) {
            self.candidates_ready(now, found);
        }
    }

    /// The connection ended (or could not be opened).
    pub fn handle_closed(&mut self, now: Millis, link: LinkId) {
        if self.link() != Some(link) {
            return;
        }
        match self.conn.clone() {
            Conn::Opening { .. } => self.give_up_candidate(now, link),
            Conn::LoggingIn { .. } => {
                self.login_unanswered = true;
                self.give_up_candidate(now, link);
            }
            Conn::Ready { .. } => {
                self.lose_connection(now, "the connection closed");
                if self.ops.front().is_some_and(|op| op.in_flight.is_some()) {
                    self.op_failed(now, ClientError::Closed);
                } else {
                    self.advance(now);
                }
            }
            _ => {}
        }
    }

    /// One line the server sent on `link`.
    pub fn handle_line(&mut self, now: Millis, link: LinkId, line: &str) {
        if self.link() != Some(link) {
            return; // an old connection's leftovers
        }
        let parsed: ServerLine = match serde_json::from_str(line) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.out.push_back(Output::Unreadable {
                    line: line.to_string(),
                    error: e.to_string(),
                });
                if matches!(self.conn, Conn::Opening { .. }) {
                    self.give_up_candidate(now, link);
                }
                return;
            }
        };
        match (self.conn.clone(), parsed) {
            (Conn::Opening { addr, .. }, ServerLine::Welcome(welcome)) => {
                self.on_welcome(now, link, addr, welcome)
            }
            (Conn::Opening { .. }, _) => self.give_up_candidate(now, link),
            (Conn::LoggingIn { req, .. }, ServerLine::Ok(reply))
                if req.is_some() && reply.req == req =>
            {
                self.on_login_ok(now, reply)
            }
            (Conn::LoggingIn { req, .. }, ServerLine::Error(error))
                if req.is_some() && error.req == req =>
            {
                self.on_login_error(now, link, error)
            }
            (Conn::Ready { .. }, ServerLine::Ok(reply)) => {
                if self.in_flight_req().is_some() && reply.req == self.in_flight_req() {
                    self.op_ok(now, reply);
                } else if let Some(req) = reply.req {
                    self.inbox.ack_answered(req);
                }
            }
            (Conn::Ready { .. }, ServerLine::Error(error))
                if error.req.is_some() && error.req == self.in_flight_req() =>
            {
                self.op_failed(now, ClientError::Server(error))
            }
            (_, line) => self.pushed(line),
        }
    }

    // ----- connecting ------------------------------------------------------------------

    fn op_id(&mut self) -> OpId {
        let id = OpId(self.next_op);
        self.next_op += 1;
        id
    }

    fn req(&mut self) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        req
    }

    fn write(&mut self, link: LinkId, request: Request) -> u64 {
        let req = self.req();
        let frame = ClientFrame {
            req: Some(req),
            request,
        };
        let line = serde_json::to_string(&frame).unwrap_or_default();
        self.out.push_back(Output::Send { link, line });
        req
    }

    /// Starts connecting if an operation waits and nothing is under way; runs the queue
    /// when logged in.
    fn advance(&mut self, now: Millis) {
        match self.conn {
            Conn::Offline if !self.ops.is_empty() => {
                if let Some(notice) = self.displaced.clone() {
                    while !self.ops.is_empty() {
                        self.finish(Err(ClientError::Server(notice.clone())));
                    }
                    return;
                }
                self.tried.clear();
                self.backoff = BACKOFF_FIRST_MS;
                self.start_round(now);
            }
            Conn::Ready { .. } => self.send_front(now),
            _ => {}
        }
    }

    fn start_round(&mut self, now: Millis) {
        if self.config.servers.is_empty() {
            self.conn = Conn::Discovering;
            self.out.push_back(Output::Discover {
                avoid: self.recent_failures.cooling(now),
            });
        } else {
            let servers = self.config.servers.clone();
            self.candidates_ready(now, servers);
        }
    }

    /// The hint first, then `found`; addresses that just failed last.
    fn candidates_ready(&mut self, now: Millis, found: Vec<String>) {
        let mut all: Vec<String> = self.leader_hint.iter().cloned().collect();
        for addr in found {
            if !all.contains(&addr) {
                all.push(addr);
            }
        }
        self.queue = self.recent_failures.order(all, now).into();
        self.budget = self.queue.len() * 2 + 4;
        self.next_candidate(now);
    }

    fn next_candidate(&mut self, now: Millis) {
        loop {
            let Some(deadline) = self.ops.front().map(|op| op.deadline) else {
                self.conn = Conn::Offline; // nothing waits for a connection any more
                return;
            };
            if now >= deadline {
                let tried = if self.tried.is_empty() {
                    "no server found by discovery".to_string()
                } else {
                    self.tried.join(", ")
                };
                self.finish(Err(ClientError::NoServer(tried)));
                continue;
            }
            if self.budget == 0 || self.queue.is_empty() {
                let until = now + self.backoff.min(deadline - now);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX_MS);
                self.conn = Conn::BackingOff { until };
                return;
            }
            self.budget -= 1;
            let Some(addr) = self.queue.pop_front() else {
                continue;
            };
            if !self.tried.contains(&addr) {
                self.tried.push(addr.clone());
            }
            let link = LinkId(self.next_link);
            self.next_link += 1;
            self.out.push_back(Output::Connect {
                link,
                addr: addr.clone(),
            });
            self.conn = Conn::Opening {
                link,
                addr,
                until: now + self.connect_timeout,
            };
            return;
        }
    }

    /// Closes a link that never became the session's connection.
    fn close_attempt(&mut self, link: LinkId) {
        self.out.push_back(Output::Close { link });
    }

    /// The candidate failed (no connection, no welcome, no login): it cools down; next one.
    fn give_up_candidate(&mut self, now: Millis, link: LinkId) {
        let addr = match &self.conn {
            Conn::Opening { addr, .. } | Conn::LoggingIn { addr, .. } => addr.clone(),
            _ => return,
        };
        self.close_attempt(link);
        self.recent_failures.mark(&addr, now);
        if self.leader_hint.as_deref() == Some(addr.as_str()) {
            self.leader_hint = None;
        }
        self.next_candidate(now);
    }

    /// `from` sent us to `leader`: try it next (last if it just failed: probably stale).
    fn redirect(&mut self, now: Millis, link: LinkId, from: &str, leader: String) {
        if leader == from {
            self.close_attempt(link);
            return self.next_candidate(now);
        }
        self.leader_hint = Some(leader.clone());
        self.hop_to(now, link, leader);
    }

    /// Leaves this attempt for `to`: next in line, or last if it just failed.
    fn hop_to(&mut self, now: Millis, link: LinkId, to: String) {
        self.close_attempt(link);
        self.queue.retain(|a| *a != to);
        if self.recent_failures.is_cooling(&to, now) {
            self.queue.push_back(to);
        } else {
            self.queue.push_front(to);
        }
        self.next_candidate(now);
    }

    fn on_welcome(&mut self, now: Millis, link: LinkId, addr: String, welcome: Welcome) {
        if welcome.role != Role::Leader && self.config.prefer_leader {
            if let Some(leader) = welcome.leader_addr.filter(|l| *l != addr) {
                return self.redirect(now, link, &addr, leader);
            }
        }
        self.welcomed_without_leader = welcome.role != Role::Leader && welcome.leader.is_none();
        if self.follows_assignment() && !self.moved {
            if let Some(to) = welcome
                .assigned_addr
                .filter(|to| *to != addr && !self.recent_failures.is_cooling(to, now))
            {
                // The leader's assignment: this server is full or clearly busier. One move
                // per connection round, so two servers' views cannot bounce a client.
                self.moved = true;
                return self.hop_to(now, link, to);
            }
        }
        self.conn = Conn::LoggingIn {
            link,
            addr,
            node: welcome.node,
            req: None,
            until: now,
            waits: 0,
        };
        self.send_login(now);
    }

    fn follows_assignment(&self) -> bool {
        !self.config.prefer_leader && self.config.follow_assignment
    }

    fn send_login(&mut self, now: Millis) {
        let Conn::LoggingIn { link, .. } = self.conn else {
            return;
        };
        let login = Request::Login {
            user: self.config.user.clone(),
            password: self.config.password.clone(),
            session: self.token.clone(),
            since: (self.inbox.highest_useq > 0).then_some(self.inbox.highest_useq),
        };
        let sent = self.write(link, login);
        if let Conn::LoggingIn { req, until, .. } = &mut self.conn {
            *req = Some(sent);
            *until = now + self.request_timeout;
        }
    }

    fn on_login_ok(&mut self, now: Millis, reply: OkReply) {
        let Conn::LoggingIn {
            link, addr, node, ..
        } = self.conn.clone()
        else {
            return;
        };
        self.login_unanswered = false;
        self.moved = false;
        self.recent_failures.clear(&addr);
        self.logins += 1;
        self.token = reply.session.clone();
        self.backoff = BACKOFF_FIRST_MS;
        self.out.push_back(Output::Event(SessionEvent::Connected {
            server: addr.clone(),
            node,
            mailbox: reply.mailbox.unwrap_or(0),
        }));
        self.conn = Conn::Ready { link, addr, node };
        // What the last connection delivered but did not get acked: ack it here.
        self.inbox.reconnected();
        self.flush_acks();
        self.send_front(now);
    }

    fn on_login_error(&mut self, now: Millis, link: LinkId, error: ErrorReply) {
        let Conn::LoggingIn { addr, waits, .. } = self.conn.clone() else {
            return;
        };
        match error.code {
            // A session that follows the assignment and was welcomed while no leader was
            // known (a cluster still electing) asks again with a new connection after the
            // pause: the next `welcome` can say where the leader's assignment sends it.
            ErrorCode::Unavailable
                if self.follows_assignment() && self.welcomed_without_leader && !self.moved =>
            {
                self.close_attempt(link);
                self.conn = Conn::BackingOff {
                    until: now + UNAVAILABLE_PAUSE_MS,
                };
            }
            // While the cluster elects, a server that still hears a majority answers
            // `unavailable`: stay and retry here (100 ms apart) rather than pile onto
            // whichever server answers first, unless the session wants the leader anyway.
            ErrorCode::Unavailable if !self.config.prefer_leader && waits < UNAVAILABLE_RETRIES => {
                if let Conn::LoggingIn {
                    req, until, waits, ..
                } = &mut self.conn
                {
                    *req = None;
                    *until = now + UNAVAILABLE_PAUSE_MS;
                    *waits += 1;
                }
            }
            ErrorCode::NotLeader => match error.leader_addr {
                Some(leader) => self.redirect(now, link, &addr, leader),
                None => self.give_up_candidate(now, link),
            },
            ErrorCode::Unavailable | ErrorCode::TooManyConnections | ErrorCode::ServerFull => {
                self.give_up_candidate(now, link)
            }
            // After an unanswered login these may be our own earlier attempt (a session the
            // server closes when it sees the old connection gone, a registration that
            // committed): try again until the deadline.
            ErrorCode::AuthFailed | ErrorCode::NameTaken if self.login_unanswered => {
                self.give_up_candidate(now, link)
            }
            // For the user: the operation that wanted the login fails.
            _ => {
                self.close_attempt(link);
                self.conn = Conn::Offline;
                self.finish(Err(ClientError::Server(error)));
            }
        }
    }

    /// The session's connection failed us: its address cools down, then it is dropped.
    fn lose_connection(&mut self, now: Millis, reason: &str) {
        if let Conn::Ready { addr, .. } = &self.conn {
            let addr = addr.clone();
            self.recent_failures.mark(&addr, now);
            self.drop_connection(reason);
        }
    }

    fn drop_connection(&mut self, reason: &str) {
        if let Conn::Ready { link, addr, .. } = std::mem::replace(&mut self.conn, Conn::Offline) {
            self.out.push_back(Output::Close { link });
            self.out
                .push_back(Output::Event(SessionEvent::Disconnected {
                    server: addr,
                    reason: reason.to_string(),
                }));
        }
    }

    // ----- operations ------------------------------------------------------------------

    fn in_flight_req(&self) -> Option<u64> {
        self.ops
            .front()
            .and_then(|op| op.in_flight.map(|(req, _)| req))
    }

    /// Sends the first queued operation if it is not in flight or waiting.
    fn send_front(&mut self, now: Millis) {
        loop {
            let Conn::Ready { link, ref addr, .. } = self.conn else {
                return;
            };
            let addr = addr.clone();
            let Some(op) = self.ops.front_mut() else {
                return;
            };
            if op.in_flight.is_some() || op.resend_at.is_some() {
                return;
            }
            let Some(request) = op.request.clone() else {
                self.finish(Ok((OkReply::default(), 0)));
                continue; // logged in: a connect operation is done
            };
            op.attempts += 1;
            let event = SessionEvent::Attempt {
                op: op.name.clone(),
                id: op.msg_id.clone(),
                target: op.target.clone(),
                attempt: op.attempts,
                server: addr,
            };
            self.out.push_back(Output::Event(event));
            let req = self.write(link, request);
            let until = now + self.request_timeout;
            if let Some(op) = self.ops.front_mut() {
                op.in_flight = Some((req, until));
            }
            return;
        }
    }

    fn op_ok(&mut self, now: Millis, reply: OkReply) {
        let logout = self.ops.front().is_some_and(Op::is_logout);
        self.finish(Ok((reply, 0)));
        if logout {
            self.drop_connection("logout");
        }
        self.send_front(now);
    }

    /// The attempt in flight failed: retry (here after `unavailable`, elsewhere otherwise)
    /// while the deadline allows, else the operation ends with `error`.
    fn op_failed(&mut self, now: Millis, error: ClientError) {
        let Some(op) = self.ops.front_mut() else {
            return;
        };
        op.in_flight = None;
        let (logout, deadline) = (op.is_logout(), op.deadline);
        if logout {
            self.finish(Err(error));
            self.drop_connection("logout");
            return self.advance(now);
        }
        if !(error.is_retryable() && now < deadline) {
            self.finish(Err(error));
            return self.advance(now);
        }
        if let ClientError::Server(reply) = &error {
            if reply.code == ErrorCode::Unavailable {
                // The cluster is electing, or the request did not commit in time. The server
                // still serves (a server cut off from the majority says `not_leader`), so
                // wait a moment and retry on this connection: a leader change costs no
                // reconnect.
                if let Some(op) = self.ops.front_mut() {
                    op.unavailable_streak += 1;
                    if op.unavailable_streak < UNAVAILABLE_RETRIES {
                        op.resend_at = Some(now + UNAVAILABLE_PAUSE_MS);
                        return;
                    }
                }
            }
            if reply.code == ErrorCode::NotLeader {
                if let Some(addr) = &reply.leader_addr {
                    self.leader_hint = Some(addr.clone());
                }
            }
        }
        if let Some(op) = self.ops.front_mut() {
            op.unavailable_streak = 0;
        }
        self.lose_connection(now, &error.to_string());
        self.advance(now);
    }

    /// Ends the first operation with `result` (attempts filled in from the operation).
    fn finish(&mut self, result: Result<(OkReply, u32), ClientError>) {
        let Some(op) = self.ops.pop_front() else {
            return;
        };
        let result = match result {
            Ok((reply, _)) => {
                if op.request.is_some() {
                    self.out.push_back(Output::Event(SessionEvent::Acked {
                        op: op.name.clone(),
                        id: op.msg_id.clone(),
                        target: op.target.clone(),
                        reply: Box::new(reply.clone()),
                        attempts: op.attempts,
                    }));
                }
                Ok((reply, op.attempts))
            }
            Err(error) => {
                if op.request.is_some() {
                    self.out.push_back(Output::Event(SessionEvent::Failed {
                        op: op.name.clone(),
                        id: op.msg_id.clone(),
                        target: op.target.clone(),
                        error: error.to_string(),
                    }));
                }
                Err(error)
            }
        };
        self.out.push_back(Output::Done {
            op: op.id,
            result: Box::new(result),
        });
    }

    // ----- pushed lines ----------------------------------------------------------------

    fn pushed(&mut self, line: ServerLine) {
        match line {
            ServerLine::Message(message) => {
                if self.inbox.accept(&message) {
                    self.out
                        .push_back(Output::Event(SessionEvent::Received(message.clone())));
                    self.out
                        .push_back(Output::Incoming(Incoming::Message(message)));
                    if let Some(upto) = self.inbox.ack_due(self.config.ack_batch, false) {
                        self.send_ack(upto);
                    }
                } else {
                    self.out
                        .push_back(Output::Event(SessionEvent::DuplicateDropped(message)));
                }
            }
            ServerLine::Presence { user, online } => {
                self.out
                    .push_back(Output::Incoming(Incoming::Presence { user, online }));
            }
            ServerLine::Error(error) if error.req.is_none() => {
                if error.code == ErrorCode::SessionTakenOver {
                    self.displaced = Some(error.clone());
                }
                self.out
                    .push_back(Output::Incoming(Incoming::Notice(error)));
            }
            // Replies to acks and to attempts given up; a repeated welcome.
            _ => {}
        }
    }

    fn send_ack(&mut self, upto: u64) {
        if let Conn::Ready { link, .. } = self.conn {
            let req = self.write(link, Request::Ack { upto });
            self.inbox.acked_upto = upto;
            self.inbox.acks_in_flight.push((req, upto));
        }
    }
}

#[cfg(test)]
mod tests;
