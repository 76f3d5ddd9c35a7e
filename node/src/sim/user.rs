//! A simulated chat user: the real client state machine ([`ClientCore`], the one the tokio
//! session drives) over the simulator's connections, with an application on top that joins
//! the room and sends private and room messages one at a time with unique ids (`m<n>`). A
//! message whose operation failed for good (the core's retry deadline passed) is submitted
//! again with the same id, so the cluster must still deliver it exactly once.
//!
//! The user checks what the servers send: lines it cannot read, a login without a session
//! token, `bad_request` for a valid line, `auth_failed` for a session that logged in before,
//! an inbox position reused for another message, and a message delivered twice (same sender
//! and id at two positions).

use super::checker::{AckedMsg, Checker};
use crate::client::core::{
    ClientCore, Incoming, LinkId, OpId, Output, SessionConfig, SessionEvent,
};
use crate::client::ClientError;
use crate::core::rng::SplitMix64;
use crate::core::Millis;
use crate::events::Target;
use crate::ids::ConnId;
use crate::protocol::{ErrorCode, InboxMessage, Request};
use std::collections::BTreeMap;

/// Every user joins and posts to this room.
pub const ROOM: &str = "general";
/// Ack after this many messages (small, so mailboxes are pruned often in short runs).
const ACK_BATCH: u64 = 4;

/// What the user asks the simulator to do with its connections.
#[derive(Clone, Debug)]
pub enum UserAction {
    /// Open a connection to the server at `addr`; [`SimUser::bind`] names it.
    Connect {
        link: LinkId,
        addr: String,
    },
    Line {
        conn: ConnId,
        line: String,
    },
    Disconnect {
        conn: ConnId,
    },
}

#[derive(Clone, Debug)]
struct Msg {
    number: u64,
    id: String,
    target: Target,
}

/// What the operation in the core is for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Doing {
    Connect,
    Join,
    Message,
}

pub struct SimUser {
    pub user: String,
    core: ClientCore,
    rng: SplitMix64,
    links: BTreeMap<LinkId, ConnId>,
    op: Option<(OpId, Doing)>,
    current: Option<Msg>,
    next_send_at: Millis,
    sent: u64,
    total: u64,
    joined: bool,
    /// Inbox messages received, by useq.
    pub received: BTreeMap<u64, InboxMessage>,
    seen: BTreeMap<(String, String), u64>,
    pub acked: Vec<AckedMsg>,
    pub gave_up: u64,
    gap: (Millis, Millis),
}

impl SimUser {
    /// User `index` of a cluster whose servers listen for clients at `servers`; it tries them
    /// in its own random order.
    pub fn new(
        index: usize,
        servers: &[String],
        total: u64,
        gap: (Millis, Millis),
        seed: u64,
    ) -> SimUser {
        let mut rng = SplitMix64::new(seed);
        let mut order = servers.to_vec();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let user = format!("user{index}");
        let mut config = SessionConfig::new(&user, &format!("password-{index}-{seed:x}"));
        config.servers = order;
        // Every server serves: stay where the user landed (that spreads them).
        config.prefer_leader = false;
        config.ack_batch = ACK_BATCH;
        SimUser {
            user,
            core: ClientCore::new(config),
            rng,
            links: BTreeMap::new(),
            op: None,
            current: None,
            next_send_at: 0,
            sent: 0,
            total,
            joined: false,
            received: BTreeMap::new(),
            seen: BTreeMap::new(),
            acked: Vec::new(),
            gave_up: 0,
            gap,
        }
    }

    /// Where the user is, for a failure report.
    pub fn describe(&self) -> String {
        format!(
            "server={:?} link={:?} op={:?} joined={} sent={}/{} timer={:?}",
            self.core.server(),
            self.core.link(),
            self.op,
            self.joined,
            self.sent,
            self.total,
            self.core.poll_timeout()
        )
    }

    /// Everything sent and acknowledged, and logged in.
    pub fn finished(&self) -> bool {
        self.sent >= self.total
            && self.current.is_none()
            && self.op.is_none()
            && self.joined
            && self.core.is_ready()
    }

    /// The highest useq up to which every message has been received.
    pub fn contiguous(&self) -> u64 {
        let mut k = 0;
        while self.received.contains_key(&(k + 1)) {
            k += 1;
        }
        k
    }

    /// The simulator opened `link` as connection `conn`.
    pub fn bind(&mut self, link: LinkId, conn: ConnId) {
        self.links.insert(link, conn);
    }

    fn link_of(&self, conn: ConnId) -> Option<LinkId> {
        self.links
            .iter()
            .find(|(_, c)| **c == conn)
            .map(|(link, _)| *link)
    }

    /// Time passes: the core's timers, then the next thing the application wants.
    pub fn tick(&mut self, now: Millis, checker: &mut Checker) -> Vec<UserAction> {
        if self.core.poll_timeout().is_some_and(|at| now >= at) {
            self.core.handle_timeout(now);
        }
        let mut out = self.drain(now, checker);
        if self.op.is_none() {
            self.next_op(now, checker);
            out.extend(self.drain(now, checker));
        }
        out
    }

    /// A line from connection `conn`, or its end (`None`).
    pub fn receive(
        &mut self,
        now: Millis,
        conn: ConnId,
        line: Option<String>,
        checker: &mut Checker,
    ) -> Vec<UserAction> {
        let Some(link) = self.link_of(conn) else {
            return Vec::new();
        };
        match line {
            Some(line) => self.core.handle_line(now, link, &line),
            None => {
                self.links.remove(&link);
                self.core.handle_closed(now, link);
            }
        }
        self.drain(now, checker)
    }

    fn next_op(&mut self, now: Millis, checker: &Checker) {
        if !self.core.is_ready() {
            // The only holder of its session: taking it back is always right.
            self.op = Some((self.core.connect(now, true), Doing::Connect));
            return;
        }
        if !self.joined {
            let request = Request::Join { room: ROOM.into() };
            self.op = Some((self.core.submit(now, request), Doing::Join));
            return;
        }
        if now < self.next_send_at {
            return;
        }
        if self.current.is_none() && self.sent < self.total {
            let number = self.sent + 1;
            let others: Vec<&String> = checker
                .registered
                .iter()
                .filter(|u| **u != self.user)
                .collect();
            let target = if !others.is_empty() && self.rng.chance(0.5) {
                let to = others[self.rng.below(others.len() as u64) as usize];
                Target::User(to.clone())
            } else {
                Target::Room(ROOM.to_string())
            };
            self.current = Some(Msg {
                number,
                id: format!("m{number}"),
                target,
            });
        }
        let Some(msg) = self.current.clone() else {
            return;
        };
        let text = format!("{} says {}", self.user, msg.number);
        let request = match msg.target {
            Target::User(to) => Request::Send {
                to,
                id: msg.id,
                text,
            },
            Target::Room(room) => Request::Post {
                room,
                id: msg.id,
                text,
            },
        };
        self.op = Some((self.core.submit(now, request), Doing::Message));
    }

    /// Carries out the core's outputs (checking what they say about the servers).
    fn drain(&mut self, now: Millis, checker: &mut Checker) -> Vec<UserAction> {
        let mut actions = Vec::new();
        while let Some(output) = self.core.poll_output() {
            match output {
                Output::Connect { link, addr } => actions.push(UserAction::Connect { link, addr }),
                Output::Send { link, line } => {
                    if let Some(conn) = self.links.get(&link) {
                        actions.push(UserAction::Line { conn: *conn, line });
                    }
                }
                Output::Close { link } => {
                    if let Some(conn) = self.links.remove(&link) {
                        actions.push(UserAction::Disconnect { conn });
                    }
                }
                // The simulator configures its servers; it never discovers.
                Output::Discover { .. } => {}
                Output::Event(event) => self.on_event(now, event, checker),
                Output::Incoming(Incoming::Notice(_)) | Output::Incoming(_) => {}
                Output::Done { op, result } => self.done(now, op, *result, checker),
                Output::Unreadable { line, error } => {
                    checker.violation(now, "bad_server_line", format!("{error}: {line}"));
                }
            }
        }
        actions
    }

    fn on_event(&mut self, now: Millis, event: SessionEvent, checker: &mut Checker) {
        match event {
            SessionEvent::Connected { server, .. } => {
                checker.registered.insert(self.user.clone());
                if self.core.token().is_none() {
                    checker.violation(now, "login_without_token", server);
                }
            }
            SessionEvent::Received(m) => self.on_message(now, m, checker),
            SessionEvent::DuplicateDropped(m) => {
                if let Some(prev) = self.received.get(&m.useq) {
                    if *prev != m {
                        checker.violation(
                            now,
                            "inbox_position_reused",
                            format!("{} useq {}: {:?} then {:?}", self.user, m.useq, prev, m),
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn done(
        &mut self,
        now: Millis,
        op: OpId,
        result: Result<(crate::protocol::OkReply, u32), ClientError>,
        checker: &mut Checker,
    ) {
        let Some((_, doing)) = self.op.filter(|(id, _)| *id == op) else {
            return;
        };
        self.op = None;
        let error = match result {
            Ok((reply, _)) => {
                match doing {
                    Doing::Connect => {}
                    Doing::Join => self.joined = true,
                    Doing::Message => {
                        if let Some(msg) = self.current.take() {
                            let acked = AckedMsg {
                                from: self.user.clone(),
                                id: msg.id,
                                number: msg.number,
                                target: msg.target,
                                index: reply.index.unwrap_or(0),
                                duplicate: reply.duplicate,
                            };
                            checker.acked(now, &acked);
                            self.acked.push(acked);
                            self.sent += 1;
                            self.next_send_at = now + self.rng.range(self.gap.0, self.gap.1);
                        }
                    }
                }
                return;
            }
            Err(error) => error,
        };
        // Anything else (no server in time, a timeout past the deadline) is tried again at the
        // next tick, the same message with the same id.
        match error.code() {
            Some(ErrorCode::UnknownUser) if doing == Doing::Message => {
                // Only registered users are addressed; count it and move on.
                self.current = None;
                self.sent += 1;
                self.gave_up += 1;
            }
            Some(ErrorCode::NotMember) => self.joined = false,
            Some(ErrorCode::BadRequest | ErrorCode::LineTooLong | ErrorCode::NotUtf8) => {
                checker.violation(now, "bad_request_for_valid_line", error.to_string());
            }
            // Every simulated user keeps one password: a refusal after a login succeeded is a
            // server bug (before it, a retried first login may race its own registration).
            Some(ErrorCode::AuthFailed) if self.core.token().is_some() => {
                checker.violation(now, "auth_failed_for_right_password", error.to_string());
            }
            _ => {}
        }
    }

    fn on_message(&mut self, now: Millis, m: InboxMessage, checker: &mut Checker) {
        let key = (m.from.clone(), m.id.clone());
        if let Some(first) = self.seen.get(&key) {
            checker.violation(
                now,
                "duplicate_delivery",
                format!(
                    "{} got {}/{} at useq {} and {}",
                    self.user, m.from, m.id, first, m.useq
                ),
            );
        }
        self.seen.insert(key, m.useq);
        checker.room_message(now, &m);
        self.received.insert(m.useq, m);
    }
}
