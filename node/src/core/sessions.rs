//! Client connections on this node: parsing and validating lines, login state, requests
//! waiting for their entry to commit, and writing committed messages to logged-in clients.
//! Every server runs this, leader or follower (issue 12): a request becomes a proposal with a
//! [`ProposalId`]; the node appends it (leader) or forwards it to the leader (follower); when
//! the entry carrying that id is applied here, its client is answered. Deliveries and
//! presence come from this server's applied state, identical on every replica.
//!
//! A login is three steps: the password is checked or hashed by the driver off the event loop
//! ([`Action::Credential`], answered by [`Sessions::credential_done`]), then the login entry is
//! proposed and, once applied, answered. A stored mailbox is replayed in pages of
//! [`MAILBOX_PAGE`] messages; the next page follows the client's `ack` of the last one.

use super::chat::{Applied, ChatOp, ChatState};
use super::credentials::{
    CredentialJob, CredentialOutcome, CredentialResult, CredentialWork, Password,
};
use super::proposal::ProposalId;
use super::Millis;
use crate::events::Event;
use crate::ids::{ConnId, NodeId};
use crate::protocol::{
    ClientFrame, ErrorCode, ErrorReply, InboxMessage, OkReply, Request, ServerLine, MAX_LINE_BYTES,
    MAX_NAME_BYTES, MAX_PASSWORD_BYTES, MAX_TEXT_BYTES,
};
use std::collections::{BTreeMap, BTreeSet};

/// Stored messages sent at a login before the server waits for the client's `ack`.
pub const MAILBOX_PAGE: u64 = 256;

/// What the session layer wants written, closed or logged.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionOut {
    Line(ConnId, ServerLine),
    Close(ConnId),
    Event(Event),
}

#[derive(Clone, Debug, Default)]
struct Conn {
    peer: String,
    user: Option<String>,
    session: Option<String>,
    connected_at: Millis,
    /// A login's password work or entry is in flight.
    login_pending: bool,
    /// While a stored mailbox is being replayed: the highest `useq` sent so far. Live
    /// messages wait in the inbox until the replay reaches them.
    replay_sent: Option<u64>,
}

/// A login waiting for its password work.
#[derive(Clone, Debug)]
struct LoginJob {
    conn: ConnId,
    req: Option<u64>,
    user: String,
    /// Kept (in memory, on the leader only) until the login is decided: a registration whose
    /// name got registered meanwhile is checked against that registration instead.
    password: Password,
    /// The token the client presented.
    presented: Option<String>,
    since: Option<u64>,
}

/// A request whose log entry has not been applied yet.
#[derive(Clone, Debug)]
struct Pending {
    conn: ConnId,
    req: Option<u64>,
    /// When it was proposed: a request whose entry is not applied within the wait the node
    /// allows (its leader died with it, a forward was lost) is answered `unavailable`, and
    /// the client retries with the same message id.
    since: Millis,
    kind: PendingKind,
}

#[derive(Clone, Debug)]
enum PendingKind {
    Login {
        user: String,
        session: String,
        since: Option<u64>,
        /// A registration keeps the password (in memory, here only) until it is applied: if
        /// another server's registration of the name committed first — this server had not
        /// applied it yet — the login is checked against that one instead of failing.
        registering: Option<Password>,
    },
    Logout,
    Plain,
    Ack {
        user: String,
    },
}

/// What a client line asks the node to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Nothing more (already answered).
    Done,
    /// Append this op to the log with `id` as its origin (leader), or forward both to the
    /// leader (follower). The answer comes when the entry with that origin is applied.
    Propose { op: ChatOp, id: ProposalId },
    /// Hand this password work to the driver; it answers with [`Sessions::credential_done`].
    Credential(CredentialJob),
}

/// Parses one client line. The error carries the request number (if one could be read) and a
/// message that says what was wrong.
pub fn parse_line(line: &str) -> Result<ClientFrame, (Option<u64>, String)> {
    if line.len() > MAX_LINE_BYTES {
        return Err((
            None,
            format!("line is {} bytes, longer than {MAX_LINE_BYTES}", line.len()),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| (None, format!("invalid JSON: {e}")))?;
    let req = value.get("req").and_then(|r| r.as_u64());
    let frame: ClientFrame = serde_json::from_value(value)
        .map_err(|e| (req, format!("unknown op or bad fields: {e}")))?;
    validate(&frame.request).map_err(|m| (req, m))?;
    Ok(frame)
}

fn valid_name(kind: &str, name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !ok_chars {
        return Err(format!(
            "bad {kind} name `{}`: use 1..={MAX_NAME_BYTES} characters of A-Z a-z 0-9 _ . -",
            name.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

fn valid_text(text: &str) -> Result<(), String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "text is {} bytes, longer than {MAX_TEXT_BYTES}",
            text.len()
        ));
    }
    Ok(())
}

fn valid_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err("message id must be 1..=64 bytes".to_string());
    }
    Ok(())
}

fn validate(r: &Request) -> Result<(), String> {
    match r {
        Request::Login {
            user,
            password,
            session,
            ..
        } => {
            valid_name("user", user)?;
            if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
                return Err(format!("password must be 1..={MAX_PASSWORD_BYTES} bytes"));
            }
            if let Some(s) = session {
                if s.is_empty() || s.len() > 64 {
                    return Err("session token must be 1..=64 bytes".to_string());
                }
            }
            Ok(())
        }
        Request::Send { to, id, text } => {
            valid_name("user", to)?;
            valid_id(id)?;
            valid_text(text)
        }
        Request::Post { room, id, text } => {
            valid_name("room", room)?;
            valid_id(id)?;
            valid_text(text)
        }
        Request::Join { room } | Request::Leave { room } => valid_name("room", room),
        _ => Ok(()),
    }
}

pub fn ok_line(req: Option<u64>) -> ServerLine {
    ServerLine::Ok(OkReply {
        req,
        ..OkReply::default()
    })
}

pub fn error_line(req: Option<u64>, code: ErrorCode, message: impl Into<String>) -> ServerLine {
    ServerLine::Error(ErrorReply {
        req,
        code,
        message: message.into(),
        leader_addr: None,
    })
}

#[derive(Clone, Debug)]
pub struct Sessions {
    me: NodeId,
    conns: BTreeMap<ConnId, Conn>,
    pending: BTreeMap<ProposalId, Pending>,
    acks_in_flight: BTreeSet<String>,
    jobs: BTreeMap<u64, LoginJob>,
    next_job: u64,
    next_proposal: u64,
    now: Millis,
    /// Logins answered `unavailable` before their entry was applied, with when: if the entry
    /// commits after all, nobody holds its session, so it is logged out again (see
    /// [`Sessions::applied`]). Forgotten after [`ABANDONED_LOGIN_MS`].
    abandoned: BTreeMap<ProposalId, (String, String, Millis)>,
    /// `--max-clients`: logins beyond it get `server_full`.
    max_clients: Option<usize>,
}

/// How long an abandoned login is remembered in case its entry still commits.
const ABANDONED_LOGIN_MS: Millis = 60_000;

impl Sessions {
    /// Job and proposal serials start at `first_job` (distinct per start, so a late answer
    /// or entry meant for an earlier incarnation of node `me` matches nothing).
    pub fn new(me: NodeId, first_job: u64) -> Sessions {
        Sessions {
            me,
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            acks_in_flight: BTreeSet::new(),
            jobs: BTreeMap::new(),
            next_job: first_job,
            next_proposal: first_job,
            now: 0,
            abandoned: BTreeMap::new(),
            max_clients: None,
        }
    }

    /// The node's clock, for the age of pending requests.
    pub fn set_now(&mut self, now: Millis) {
        self.now = now;
    }

    pub fn set_max_clients(&mut self, max: Option<usize>) {
        self.max_clients = max;
    }

    pub fn max_clients(&self) -> Option<usize> {
        self.max_clients
    }

    /// Open client connections, logged in or not.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Users logged in here or logging in: the seats taken.
    pub fn taken(&self) -> usize {
        self.conns
            .values()
            .filter(|c| c.user.is_some() || c.login_pending)
            .count()
    }

    /// At its `--max-clients`, logins in flight included (a further login gets `server_full`).
    pub fn is_full(&self) -> bool {
        self.max_clients.is_some_and(|max| self.taken() >= max)
    }

    /// How many connections here are logged in (this server's load).
    pub fn logged_in(&self) -> usize {
        self.conns.values().filter(|c| c.user.is_some()).count()
    }

    pub fn connected(&mut self, conn: ConnId, peer: &str, now: Millis) {
        self.conns.insert(
            conn,
            Conn {
                peer: peer.to_string(),
                connected_at: now,
                ..Conn::default()
            },
        );
    }

    /// Closes connections that have not logged in within `timeout_ms` of connecting (a login
    /// still being checked gets its answer first).
    pub fn expire_logins(&mut self, now: Millis, timeout_ms: Millis, out: &mut Vec<SessionOut>) {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.user.is_none()
                    && !c.login_pending
                    && now.saturating_sub(c.connected_at) >= timeout_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in expired {
            self.conns.remove(&conn);
            out.push(SessionOut::Line(
                conn,
                error_line(
                    None,
                    ErrorCode::LoginTimeout,
                    format!("no login within {timeout_ms} ms of connecting; closing (log in right after the welcome line)"),
                ),
            ));
            out.push(SessionOut::Close(conn));
        }
    }

    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    pub fn peer(&self, conn: ConnId) -> String {
        self.conns
            .get(&conn)
            .map_or_else(|| conn.to_string(), |c| c.peer.clone())
    }

    /// Drops a connection. Returns the Logout to propose when it was the user's live session
    /// on this node and no other connection here took it over.
    pub fn disconnected(
        &mut self,
        conn: ConnId,
        chat: &ChatState,
    ) -> (Option<String>, Option<ChatOp>) {
        let Some(c) = self.conns.remove(&conn) else {
            return (None, None);
        };
        let (Some(user), Some(session)) = (c.user, c.session) else {
            return (None, None);
        };
        let taken_over = self
            .conns
            .values()
            .any(|o| o.user.as_deref() == Some(user.as_str()));
        let live = chat.online_session(&user) == Some(session.as_str());
        let logout = (!taken_over && live).then(|| ChatOp::Logout {
            user: user.clone(),
            session,
        });
        (Some(user), logout)
    }

    /// Handles a parsed request (status/ping/not-leader/unavailable are the node's).
    pub fn request(
        &mut self,
        conn: ConnId,
        frame: ClientFrame,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) -> Action {
        let req = frame.req;
        let user = self.conns.get(&conn).and_then(|c| c.user.clone());
        let reply = |out: &mut Vec<SessionOut>, line| out.push(SessionOut::Line(conn, line));
        match frame.request {
            Request::Who => {
                reply(
                    out,
                    ServerLine::Ok(OkReply {
                        req,
                        users: Some(chat.online_users()),
                        ..OkReply::default()
                    }),
                );
                Action::Done
            }
            Request::Rooms => {
                reply(
                    out,
                    ServerLine::Ok(OkReply {
                        req,
                        rooms: Some(chat.room_list()),
                        ..OkReply::default()
                    }),
                );
                Action::Done
            }
            Request::Login {
                user: name,
                password,
                session,
                since,
            } => {
                // Logins still in flight count: a burst of them must not all get in.
                let taken = self
                    .conns
                    .values()
                    .filter(|c| c.user.is_some() || c.login_pending)
                    .count();
                let full = self.max_clients.is_some_and(|max| {
                    taken >= max && self.conns.get(&conn).is_some_and(|c| c.user.is_none())
                });
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Action::Done;
                };
                if full {
                    reply(
                        out,
                        error_line(
                            req,
                            ErrorCode::ServerFull,
                            "this server already serves its --max-clients users; log in on another server",
                        ),
                    );
                    return Action::Done;
                }
                if c.login_pending {
                    reply(
                        out,
                        error_line(
                            req,
                            ErrorCode::BadRequest,
                            "a login is already in progress on this connection; wait for its reply",
                        ),
                    );
                    return Action::Done;
                }
                c.login_pending = true;
                let job = LoginJob {
                    conn,
                    req,
                    user: name,
                    password: Password(password),
                    presented: session,
                    since,
                };
                self.start_job(job, chat)
            }
            Request::Status | Request::Ping => {
                reply(out, ok_line(req));
                Action::Done
            }
            other => {
                let Some(user) = user else {
                    reply(out, error_line(req, ErrorCode::NotLoggedIn, "log in first"));
                    return Action::Done;
                };
                let session = self
                    .conns
                    .get(&conn)
                    .and_then(|c| c.session.clone())
                    .unwrap_or_default();
                let (op, kind) = match other {
                    Request::Logout => (ChatOp::Logout { user, session }, PendingKind::Logout),
                    Request::Send { to, id, text } => (
                        ChatOp::Send {
                            from: user,
                            to,
                            id,
                            text,
                        },
                        PendingKind::Plain,
                    ),
                    Request::Post { room, id, text } => (
                        ChatOp::Post {
                            from: user,
                            room,
                            id,
                            text,
                        },
                        PendingKind::Plain,
                    ),
                    Request::Join { room } => (ChatOp::Join { user, room }, PendingKind::Plain),
                    Request::Leave { room } => (ChatOp::Leave { user, room }, PendingKind::Plain),
                    Request::Ack { upto } => {
                        self.next_page_after_ack(conn, &user, upto, chat, out);
                        if upto <= chat.acked(&user) || self.acks_in_flight.contains(&user) {
                            reply(out, ok_line(req));
                            return Action::Done;
                        }
                        self.acks_in_flight.insert(user.clone());
                        (
                            ChatOp::Ack {
                                user: user.clone(),
                                upto,
                            },
                            PendingKind::Ack { user },
                        )
                    }
                    // Answered above.
                    Request::Who
                    | Request::Rooms
                    | Request::Login { .. }
                    | Request::Status
                    | Request::Ping => return Action::Done,
                };
                let id = self.stash(conn, req, kind);
                Action::Propose { op, id }
            }
        }
    }

    /// Verifies against the stored hash, or hashes for a registration.
    fn start_job(&mut self, job: LoginJob, chat: &ChatState) -> Action {
        let password = job.password.clone();
        let work = match chat.password_hash(&job.user) {
            Some(hash) => CredentialWork::Verify {
                password,
                hash: hash.to_string(),
            },
            None => CredentialWork::Hash { password },
        };
        let id = self.next_job;
        self.next_job = self.next_job.wrapping_add(1);
        self.jobs.insert(id, job);
        Action::Credential(CredentialJob { id, work })
    }

    /// The driver finished the password work of a login: propose the login, or refuse it.
    pub fn credential_done(
        &mut self,
        result: CredentialResult,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) -> Action {
        let Some(job) = self.jobs.remove(&result.id) else {
            return Action::Done;
        };
        if !self.conns.contains_key(&job.conn) {
            return Action::Done;
        }
        if matches!(result.outcome, CredentialOutcome::Hashed(_))
            && chat.password_hash(&job.user).is_some()
        {
            // Registered by another login while this one was hashed: check against that.
            return self.start_job(job, chat);
        }
        let Some(c) = self.conns.get_mut(&job.conn) else {
            return Action::Done;
        };
        let refuse = |c: &mut Conn, out: &mut Vec<SessionOut>, message: String| {
            c.login_pending = false;
            out.push(SessionOut::Line(
                job.conn,
                error_line(job.req, ErrorCode::AuthFailed, message),
            ));
            out.push(SessionOut::Event(Event::AuthFailed {
                user: job.user.clone(),
                conn: job.conn.0,
            }));
            Action::Done
        };
        let password_hash = match result.outcome {
            CredentialOutcome::Verified(false) => {
                return refuse(c, out, format!("wrong password for `{}`", job.user));
            }
            CredentialOutcome::Failed(why) => {
                return refuse(c, out, format!("the password could not be checked: {why}"));
            }
            CredentialOutcome::Verified(true) => None,
            CredentialOutcome::Hashed(hash) => Some(hash),
        };
        // The user's own token takes the live session over; anything else starts a new
        // session with a token the server drew (refused at apply if the name is online).
        let online = chat.online_session(&job.user);
        let session = match job.presented {
            Some(t) if password_hash.is_none() && online == Some(t.as_str()) => t,
            _ => result.token,
        };
        let registering = password_hash.as_ref().map(|_| job.password.clone());
        let id = self.stash(
            job.conn,
            job.req,
            PendingKind::Login {
                user: job.user.clone(),
                session: session.clone(),
                since: job.since,
                registering,
            },
        );
        Action::Propose {
            op: ChatOp::Login {
                user: job.user,
                session,
                password_hash,
            },
            id,
        }
    }

    /// Sends the next page of `conn`'s stored mailbox, or ends the replay when it is all out.
    fn send_page(&mut self, conn: ConnId, user: &str, chat: &ChatState, out: &mut Vec<SessionOut>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(sent) = c.replay_sent else {
            return;
        };
        let rest = chat.inbox_after(user, sent);
        let held = rest.len();
        let page: Vec<&InboxMessage> = rest.take(MAILBOX_PAGE as usize).collect();
        if let Some(last) = page.last() {
            c.replay_sent = Some(last.useq);
        }
        if page.len() == held {
            c.replay_sent = None; // everything stored is out: live delivery from now on
        }
        for msg in page {
            deliver(conn, user, msg, out);
        }
    }

    /// An `ack` that reaches the last message of the page sent releases the next page.
    fn next_page_after_ack(
        &mut self,
        conn: ConnId,
        user: &str,
        upto: u64,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) {
        let waiting = self
            .conns
            .get(&conn)
            .and_then(|c| c.replay_sent)
            .is_some_and(|sent| upto >= sent);
        if waiting {
            self.send_page(conn, user, chat, out);
        }
    }

    fn stash(&mut self, conn: ConnId, req: Option<u64>, kind: PendingKind) -> ProposalId {
        let id = self.new_proposal_id();
        self.pending.insert(
            id,
            Pending {
                conn,
                req,
                since: self.now,
                kind,
            },
        );
        id
    }

    /// A fresh id for a proposal that answers nobody (an orphaned session's logout).
    pub fn new_proposal_id(&mut self) -> ProposalId {
        let id = ProposalId {
            node: self.me,
            serial: self.next_proposal,
        };
        self.next_proposal = self.next_proposal.wrapping_add(1);
        id
    }

    /// The proposal `id` cannot commit through this server now (no leader to forward it to,
    /// or the leader refused it): its client gets a retryable `unavailable`.
    pub fn fail(&mut self, id: ProposalId, message: &str, out: &mut Vec<SessionOut>) {
        if let Some(p) = self.pending.remove(&id) {
            self.release(&p);
            if let PendingKind::Login { user, session, .. } = &p.kind {
                self.abandoned
                    .insert(id, (user.clone(), session.clone(), self.now));
            }
            if self.conns.contains_key(&p.conn) {
                out.push(SessionOut::Line(
                    p.conn,
                    error_line(p.req, ErrorCode::Unavailable, message),
                ));
            }
        }
    }

    /// Answers `unavailable` to every request waiting longer than `max_wait_ms`: its entry
    /// went down with a leader or its forward was lost. A retry with the same message id is
    /// exactly-once (a late commit of the first attempt makes the retry a duplicate).
    pub fn expire_pending(&mut self, now: Millis, max_wait_ms: Millis, out: &mut Vec<SessionOut>) {
        let stale: Vec<ProposalId> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.since) >= max_wait_ms)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.fail(
                id,
                "the request was not committed in time (the leader changed or is unreachable); retry with the same id",
                out,
            );
        }
    }

    /// Clears what a pending request holds on its connection and user.
    fn release(&mut self, p: &Pending) {
        if let PendingKind::Ack { user } = &p.kind {
            self.acks_in_flight.remove(user);
        }
        if let (PendingKind::Login { .. }, Some(c)) = (&p.kind, self.conns.get_mut(&p.conn)) {
            c.login_pending = false;
        }
    }

    /// An entry was applied: answer its proposer and deliver its messages.
    ///
    /// Returns a `Logout` to propose when a login committed after its connection had closed:
    /// nobody holds that session, and left online it would refuse the client's next login
    /// (which cannot know the token) with `name_taken`.
    /// The node installed a snapshot: the entries it skipped were never applied here, so
    /// their live deliveries never went out. Every connection that was live goes back to
    /// replaying its mailbox from the last message it was sent (`old`'s last delivery).
    pub fn snapshot_installed(
        &mut self,
        old: &ChatState,
        new: &ChatState,
        out: &mut Vec<SessionOut>,
    ) {
        let live: Vec<(ConnId, String)> = self
            .conns
            .iter_mut()
            .filter(|(_, c)| c.replay_sent.is_none())
            .filter_map(|(id, c)| {
                let user = c.user.clone()?;
                c.replay_sent = Some(old.delivered(&user));
                Some((*id, user))
            })
            .collect();
        for (conn, user) in live {
            self.send_page(conn, &user, new, out);
        }
    }

    pub fn applied(
        &mut self,
        origin: Option<ProposalId>,
        applied: &Applied,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) -> Option<Action> {
        let mut next = None;
        let now = self.now;
        self.abandoned
            .retain(|_, (_, _, at)| now.saturating_sub(*at) < ABANDONED_LOGIN_MS);
        if let Some((user, session, _)) = origin.and_then(|id| self.abandoned.remove(&id)) {
            if applied.reply.is_ok() {
                next = self.orphaned_logout(&user, &session, chat);
            }
        }
        let mut answered = None;
        if let Some(p) = origin.and_then(|id| self.pending.remove(&id)) {
            self.release(&p);
            answered = Some(p.conn);
            if self.conns.contains_key(&p.conn) {
                match p.kind {
                    PendingKind::Login {
                        user,
                        since,
                        registering: Some(password),
                        ..
                    } if matches!(applied.reply, Err((ErrorCode::AuthFailed, _)))
                        && chat.password_hash(&user).is_some() =>
                    {
                        if let Some(c) = self.conns.get_mut(&p.conn) {
                            c.login_pending = true;
                        }
                        let job = LoginJob {
                            conn: p.conn,
                            req: p.req,
                            user,
                            password,
                            presented: None,
                            since,
                        };
                        next = Some(self.start_job(job, chat));
                    }
                    _ => self.answer(p, applied, chat, out),
                }
            } else if let (PendingKind::Login { user, session, .. }, Ok(_)) =
                (&p.kind, &applied.reply)
            {
                next = self.orphaned_logout(user, session, chat);
            }
        }
        if let Some((user, _)) = &applied.session {
            self.taken_over(user, answered, out);
        }
        for (recipient, msg) in &applied.deliveries {
            let targets: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, c)| {
                    c.user.as_deref() == Some(recipient.as_str()) && c.replay_sent.is_none()
                })
                .map(|(id, _)| *id)
                .collect();
            for conn in targets {
                deliver(conn, recipient, msg, out);
            }
        }
        if let Some((user, online)) = &applied.presence {
            for (conn, c) in &self.conns {
                if c.user.is_some() && c.user.as_deref() != Some(user.as_str()) {
                    out.push(SessionOut::Line(
                        *conn,
                        ServerLine::Presence {
                            user: user.clone(),
                            online: *online,
                        },
                    ));
                }
            }
        }
        next
    }

    /// A login of `user` committed (on this server or another): its connections here other
    /// than `except` (the one that login answered) stop being its session. They are told why
    /// before they close, so that their client does not log in again and take the session
    /// back (the two would keep displacing each other).
    fn taken_over(&mut self, user: &str, except: Option<ConnId>, out: &mut Vec<SessionOut>) {
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(id, c)| Some(**id) != except && c.user.as_deref() == Some(user))
            .map(|(id, _)| *id)
            .collect();
        for other in others {
            if let Some(c) = self.conns.get_mut(&other) {
                c.user = None;
                c.session = None;
                c.replay_sent = None;
            }
            out.push(SessionOut::Line(
                other,
                error_line(
                    None,
                    ErrorCode::SessionTakenOver,
                    format!("another login took the session of `{user}` over; closing this connection (do not log in again from here)"),
                ),
            ));
            out.push(SessionOut::Close(other));
        }
    }

    /// A new epoch took every user offline: resume the sessions this server still holds.
    /// Nobody waits for these entries; one that commits after its connection closed is
    /// logged out again (as an abandoned login is).
    pub fn reassert(&mut self) -> Vec<Action> {
        let held: Vec<(String, String)> = self
            .conns
            .values()
            .filter_map(|c| Some((c.user.clone()?, c.session.clone()?)))
            .collect();
        held.into_iter()
            .map(|(user, session)| {
                let id = self.new_proposal_id();
                self.abandoned
                    .insert(id, (user.clone(), session.clone(), self.now));
                Action::Propose {
                    op: ChatOp::Resume { user, session },
                    id,
                }
            })
            .collect()
    }

    /// The logout for a committed login whose session nobody here holds, if it is still
    /// the user's online session.
    fn orphaned_logout(&mut self, user: &str, session: &str, chat: &ChatState) -> Option<Action> {
        let held = self.conns.values().any(|c| c.user.as_deref() == Some(user));
        if held || chat.online_session(user) != Some(session) {
            return None;
        }
        Some(Action::Propose {
            op: ChatOp::Logout {
                user: user.to_string(),
                session: session.to_string(),
            },
            id: self.new_proposal_id(),
        })
    }

    fn answer(
        &mut self,
        p: Pending,
        applied: &Applied,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) {
        let reply = match &applied.reply {
            Err((code, message)) => {
                out.push(SessionOut::Line(
                    p.conn,
                    error_line(p.req, *code, message.clone()),
                ));
                return;
            }
            Ok(r) => r,
        };
        match p.kind {
            PendingKind::Login {
                user,
                session,
                since,
                ..
            } => {
                let from = since.unwrap_or(0).max(chat.acked(&user));
                let mailbox = chat.inbox_after(&user, from).len() as u64;
                if let Some(c) = self.conns.get_mut(&p.conn) {
                    c.user = Some(user.clone());
                    c.session = Some(session.clone());
                    c.replay_sent = Some(from);
                }
                out.push(SessionOut::Line(
                    p.conn,
                    ServerLine::Ok(OkReply {
                        req: p.req,
                        mailbox: Some(mailbox),
                        session: Some(session),
                        registered: reply.registered,
                        ..OkReply::default()
                    }),
                ));
                out.push(SessionOut::Event(Event::LoggedIn {
                    user: user.clone(),
                    conn: p.conn.0,
                    mailbox,
                }));
                self.send_page(p.conn, &user, chat, out);
            }
            PendingKind::Logout => {
                if let Some(c) = self.conns.get_mut(&p.conn) {
                    c.user = None;
                    c.session = None;
                    c.replay_sent = None;
                }
                out.push(SessionOut::Line(p.conn, ok_line(p.req)));
                out.push(SessionOut::Close(p.conn));
            }
            PendingKind::Plain | PendingKind::Ack { .. } => {
                out.push(SessionOut::Line(
                    p.conn,
                    ServerLine::Ok(OkReply {
                        req: p.req,
                        index: reply.index,
                        room_seq: reply.room_seq,
                        duplicate: reply.duplicate,
                        ..OkReply::default()
                    }),
                ));
            }
        }
    }

    /// This server is cut off from the majority (no leader, no quorum in view): every waiting
    /// request fails with `unavailable`, and logged-in clients are disconnected so that they
    /// find a server that can serve them. A leader change alone sheds nothing: requests
    /// waiting here may still commit under the new leader, and are answered when they do.
    pub fn shed(&mut self, out: &mut Vec<SessionOut>) {
        let waiting: Vec<ProposalId> = self.pending.keys().copied().collect();
        for id in waiting {
            self.fail(
                id,
                "this server is cut off from the majority; retry with the same id on another server",
                out,
            );
        }
        for (_, job) in std::mem::take(&mut self.jobs) {
            out.push(SessionOut::Line(
                job.conn,
                error_line(
                    job.req,
                    ErrorCode::Unavailable,
                    "this server is cut off from the majority; log in on another server",
                ),
            ));
        }
        self.acks_in_flight.clear();
        for (id, c) in self.conns.iter_mut() {
            c.login_pending = false;
            c.replay_sent = None;
            if c.user.take().is_some() {
                c.session = None;
                out.push(SessionOut::Close(*id));
            }
        }
    }
}

fn deliver(conn: ConnId, user: &str, msg: &InboxMessage, out: &mut Vec<SessionOut>) {
    out.push(SessionOut::Line(conn, ServerLine::Message(msg.clone())));
    out.push(SessionOut::Event(Event::Delivered {
        user: user.to_string(),
        from: msg.from.clone(),
        id: msg.id.clone(),
        useq: msg.useq,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        assert!(parse_line("{").unwrap_err().1.contains("invalid JSON"));
        let (req, msg) = parse_line(r#"{"req":7,"op":"fly"}"#).unwrap_err();
        assert_eq!(req, Some(7));
        assert!(msg.contains("unknown op"), "{msg}");
        let long = format!(r#"{{"op":"join","room":"{}"}}"#, "x".repeat(40));
        assert!(parse_line(&long).unwrap_err().1.contains("bad room name"));
        let spaced = r#"{"op":"login","user":"a b","password":"p"}"#;
        assert!(parse_line(spaced).unwrap_err().1.contains("bad user name"));
        let text = format!(
            r#"{{"op":"send","to":"b","id":"1","text":"{}"}}"#,
            "x".repeat(MAX_TEXT_BYTES + 1)
        );
        assert!(parse_line(&text).unwrap_err().1.contains("text is"));
        let huge = "x".repeat(MAX_LINE_BYTES + 1);
        assert!(parse_line(&huge).unwrap_err().1.contains("longer than"));
        assert!(parse_line(r#"{"op":"send","to":"bob","id":"m1","text":"hi"}"#).is_ok());
    }

    #[test]
    fn requests_need_a_login() {
        let mut s = Sessions::new(NodeId(1), 1);
        s.connected(ConnId(1), "p", 0);
        let mut out = Vec::new();
        let frame = parse_line(r#"{"req":1,"op":"join","room":"r"}"#).unwrap();
        assert_eq!(
            s.request(ConnId(1), frame, &ChatState::default(), &mut out),
            Action::Done
        );
        assert!(matches!(
            &out[0],
            SessionOut::Line(_, ServerLine::Error(e)) if e.code == ErrorCode::NotLoggedIn
        ));
    }
}

#[cfg(test)]
mod proposal_tests {
    use super::*;
    use crate::core::rng::SplitMix64;

    /// Two logins whose proposals are both out before either is applied, applied in the
    /// opposite order: each answer reaches its own connection, matched by the entry's origin.
    #[test]
    fn proposals_are_answered_by_their_id_not_by_order() {
        let mut s = Sessions::new(NodeId(1), 1);
        let mut chat = ChatState::default();
        let mut rng = SplitMix64::new(7);
        let mut proposals = Vec::new();
        for (conn, user) in [(1, "alice"), (2, "bob")] {
            s.connected(ConnId(conn), "p", 0);
            let mut out = Vec::new();
            let line = format!(r#"{{"req":{conn},"op":"login","user":"{user}","password":"pw"}}"#);
            let frame = parse_line(&line).unwrap();
            let Action::Credential(job) = s.request(ConnId(conn), frame, &chat, &mut out) else {
                panic!("the password work goes to the driver")
            };
            let result = crate::sim::credentials::compute(job, &mut rng);
            let Action::Propose { id, op } = s.credential_done(result, &chat, &mut out) else {
                panic!("a registration is proposed")
            };
            proposals.push((conn, id, op));
        }
        proposals.reverse();
        for (index, (conn, id, op)) in proposals.iter().enumerate() {
            let applied = chat.apply(index as u64 + 1, op);
            let mut out = Vec::new();
            s.applied(Some(*id), &applied, &chat, &mut out);
            let answered: Vec<(u64, Option<u64>)> = out
                .iter()
                .filter_map(|o| match o {
                    SessionOut::Line(c, ServerLine::Ok(r)) => Some((c.0, r.req)),
                    _ => None,
                })
                .collect();
            assert_eq!(answered, vec![(*conn, Some(*conn))], "{out:?}");
        }
    }
}
