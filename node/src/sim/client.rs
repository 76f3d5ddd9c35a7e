//! A simulated chat user speaking the real client protocol: it connects to a random live
//! server and logs in there if that server knows a leader (every server serves; otherwise it
//! follows `welcome` and `not_leader` redirects), logs in with its session token, joins the room,
//! sends private and room messages one at a time with unique ids, and after a failover
//! reconnects and retries the unacknowledged message with the same id.

use super::checker::{AckedMsg, Checker};
use crate::core::rng::SplitMix64;
use crate::core::Millis;
use crate::events::Target;
use crate::ids::{ConnId, Role};
use crate::protocol::{ErrorCode, InboxMessage, ServerLine, Welcome};
use std::collections::BTreeMap;

/// Every client joins and posts to this room.
pub const ROOM: &str = "general";
/// A request with no answer for this long is given up: reconnect and retry.
const REQUEST_TIMEOUT_MS: Millis = 2000;

/// What the client asks the simulator to do.
#[derive(Clone, Debug)]
pub enum ClientAction {
    Connect { node: usize },
    ConnectAddr { addr: String },
    Line { conn: ConnId, line: String },
    Disconnect { conn: ConnId },
}

#[derive(Clone, Debug, PartialEq)]
enum Phase {
    Idle { retry_at: Millis },
    AwaitWelcome,
    LoggingIn,
    Joining,
    Ready,
}

#[derive(Clone, Debug)]
struct Msg {
    number: u64,
    id: String,
    target: Target,
}

pub struct SimClient {
    pub user: String,
    password: String,
    /// The token the server issued at the last login (sent back to take the session over).
    session: Option<String>,
    /// Login requests sent before the first one succeeded.
    first_logins_sent: u32,
    rng: SplitMix64,
    conn: Option<ConnId>,
    phase: Phase,
    redirects: u32,
    next_req: u64,
    /// The request awaiting its answer, and when it was sent.
    waiting: Option<(u64, Millis)>,
    current: Option<Msg>,
    next_send_at: Millis,
    sent: u64,
    total: u64,
    joined: bool,
    /// Inbox messages received, by useq.
    pub received: BTreeMap<u64, InboxMessage>,
    seen: BTreeMap<(String, String), u64>,
    acks_sent_upto: u64,
    pub acked: Vec<AckedMsg>,
    pub gave_up: u64,
    gap: (Millis, Millis),
}

impl SimClient {
    pub fn new(index: usize, total: u64, gap: (Millis, Millis), seed: u64) -> SimClient {
        SimClient {
            user: format!("user{index}"),
            password: format!("password-{index}-{seed:x}"),
            session: None,
            first_logins_sent: 0,
            rng: SplitMix64::new(seed),
            conn: None,
            phase: Phase::Idle { retry_at: 0 },
            redirects: 0,
            next_req: 1,
            waiting: None,
            current: None,
            next_send_at: 0,
            sent: 0,
            total,
            joined: false,
            received: BTreeMap::new(),
            seen: BTreeMap::new(),
            acks_sent_upto: 0,
            acked: Vec::new(),
            gave_up: 0,
            gap,
        }
    }

    /// Everything sent and acknowledged, and logged in.
    /// Where the client is, for a failure report.
    pub fn describe(&self) -> String {
        format!(
            "phase={:?} conn={:?} waiting={:?} sent={}/{}",
            self.phase, self.conn, self.waiting, self.sent, self.total
        )
    }

    pub fn finished(&self) -> bool {
        self.sent >= self.total && self.current.is_none() && self.phase == Phase::Ready
    }

    /// The highest useq up to which every message has been received.
    pub fn contiguous(&self) -> u64 {
        let mut k = 0;
        while self.received.contains_key(&(k + 1)) {
            k += 1;
        }
        k
    }

    pub fn connected(&mut self, conn: ConnId, _node: usize) {
        self.conn = Some(conn);
        self.phase = Phase::AwaitWelcome;
    }

    fn request(&mut self, now: Millis, body: serde_json::Value) -> Vec<ClientAction> {
        let Some(conn) = self.conn else {
            return Vec::new();
        };
        let req = self.next_req;
        self.next_req += 1;
        let mut body = body;
        body["req"] = req.into();
        self.waiting = Some((req, now));
        vec![ClientAction::Line {
            conn,
            line: body.to_string(),
        }]
    }

    fn drop_connection(&mut self, now: Millis) -> Vec<ClientAction> {
        let mut out = Vec::new();
        if let Some(conn) = self.conn.take() {
            out.push(ClientAction::Disconnect { conn });
        }
        self.waiting = None;
        self.phase = Phase::Idle {
            retry_at: now + self.rng.range(50, 150),
        };
        out
    }

    pub fn tick(&mut self, now: Millis, live: &[usize], checker: &Checker) -> Vec<ClientAction> {
        match self.phase {
            Phase::Idle { retry_at } => {
                if now < retry_at || live.is_empty() {
                    return Vec::new();
                }
                let node = live[self.rng.below(live.len() as u64) as usize];
                self.redirects = 0;
                self.waiting = Some((0, now));
                return vec![ClientAction::Connect { node }];
            }
            _ => {
                if let Some((_, sent_at)) = self.waiting {
                    if now.saturating_sub(sent_at) > REQUEST_TIMEOUT_MS {
                        return self.drop_connection(now);
                    }
                }
            }
        }
        if self.phase != Phase::Ready || self.waiting.is_some() || now < self.next_send_at {
            return Vec::new();
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
            return Vec::new();
        };
        let text = format!("{} says {}", self.user, msg.number);
        let body = match &msg.target {
            Target::User(to) => {
                serde_json::json!({"op": "send", "to": to, "id": msg.id, "text": text})
            }
            Target::Room(room) => {
                serde_json::json!({"op": "post", "room": room, "id": msg.id, "text": text})
            }
        };
        self.request(now, body)
    }

    pub fn receive(
        &mut self,
        now: Millis,
        conn: ConnId,
        line: Option<String>,
        checker: &mut Checker,
    ) -> Vec<ClientAction> {
        if self.conn != Some(conn) {
            return Vec::new(); // an old connection's leftovers
        }
        let Some(line) = line else {
            self.conn = None;
            return self.drop_connection(now);
        };
        let parsed: ServerLine = match serde_json::from_str(&line) {
            Ok(l) => l,
            Err(e) => {
                checker.violation(now, "bad_server_line", format!("{e}: {line}"));
                return Vec::new();
            }
        };
        match parsed {
            ServerLine::Welcome(Welcome {
                role,
                leader,
                leader_addr,
                ..
            }) => {
                // Every server serves while it knows a leader (issue 12): stay where we are.
                if role == Role::Leader || leader.is_some() {
                    self.phase = Phase::LoggingIn;
                    let since = self.contiguous();
                    let mut body = serde_json::json!({"op": "login", "user": self.user, "password": self.password, "since": since});
                    match &self.session {
                        Some(token) => body["session"] = token.clone().into(),
                        None => self.first_logins_sent += 1,
                    }
                    return self.request(now, body);
                }
                self.redirect(now, leader_addr)
            }
            ServerLine::Ok(reply) => {
                if self.waiting.map(|w| Some(w.0)) != Some(reply.req) {
                    return Vec::new(); // an ack's answer
                }
                self.waiting = None;
                match self.phase {
                    Phase::LoggingIn => {
                        checker.registered.insert(self.user.clone());
                        if reply.session.is_none() {
                            checker.violation(now, "login_without_token", line.clone());
                        }
                        self.session = reply.session.clone();
                        if self.joined {
                            self.phase = Phase::Ready;
                            Vec::new()
                        } else {
                            self.phase = Phase::Joining;
                            self.request(now, serde_json::json!({"op": "join", "room": ROOM}))
                        }
                    }
                    Phase::Joining => {
                        self.joined = true;
                        self.phase = Phase::Ready;
                        Vec::new()
                    }
                    Phase::Ready => {
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
                        Vec::new()
                    }
                    _ => Vec::new(),
                }
            }
            ServerLine::Error(e) => {
                if self.waiting.map(|w| Some(w.0)) != Some(e.req) {
                    return Vec::new();
                }
                self.waiting = None;
                match e.code {
                    ErrorCode::NotLeader => self.redirect(now, e.leader_addr),
                    ErrorCode::Unavailable
                    | ErrorCode::NameTaken
                    | ErrorCode::NotLoggedIn
                    | ErrorCode::ServerFull => self.drop_connection(now),
                    ErrorCode::UnknownUser => {
                        // Only registered users are addressed; count it and move on.
                        self.current = None;
                        self.sent += 1;
                        self.gave_up += 1;
                        Vec::new()
                    }
                    ErrorCode::NotMember => {
                        self.joined = false;
                        self.phase = Phase::Joining;
                        self.request(now, serde_json::json!({"op": "join", "room": ROOM}))
                    }
                    ErrorCode::BadRequest | ErrorCode::LineTooLong | ErrorCode::NotUtf8 => {
                        checker.violation(now, "bad_request_for_valid_line", e.message);
                        Vec::new()
                    }
                    // Every simulated user keeps one password: a refusal is a server bug, except
                    // when a retried first login raced its own earlier registration.
                    ErrorCode::AuthFailed => {
                        if self.session.is_some() || self.first_logins_sent < 2 {
                            checker.violation(now, "auth_failed_for_right_password", e.message);
                        }
                        self.drop_connection(now)
                    }
                    ErrorCode::TooManyConnections
                    | ErrorCode::LoginTimeout
                    | ErrorCode::SessionTakenOver => self.drop_connection(now),
                }
            }
            ServerLine::Message(m) => self.on_message(now, m, checker),
            ServerLine::Presence { .. } => Vec::new(),
        }
    }

    fn redirect(&mut self, now: Millis, leader_addr: Option<String>) -> Vec<ClientAction> {
        let mut out = self.drop_connection(now);
        if let Some(addr) = leader_addr {
            if self.redirects < 3 {
                self.redirects += 1;
                self.waiting = Some((0, now));
                out.push(ClientAction::ConnectAddr { addr });
            }
        }
        out
    }

    fn on_message(
        &mut self,
        now: Millis,
        m: InboxMessage,
        checker: &mut Checker,
    ) -> Vec<ClientAction> {
        if let Some(prev) = self.received.get(&m.useq) {
            if *prev != m {
                checker.violation(
                    now,
                    "inbox_position_reused",
                    format!("{} useq {}: {:?} then {:?}", self.user, m.useq, prev, m),
                );
            }
            return Vec::new(); // a benign re-send of a message we already have
        }
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
        let upto = self.contiguous();
        if upto >= self.acks_sent_upto + 4 && self.phase == Phase::Ready {
            if let Some(conn) = self.conn {
                self.acks_sent_upto = upto;
                return vec![ClientAction::Line {
                    conn,
                    line: serde_json::json!({"op": "ack", "upto": upto}).to_string(),
                }];
            }
        }
        Vec::new()
    }
}
