//! Client connections on this node: parsing and validating lines, login state, requests
//! waiting for their entry to commit, and writing committed messages to logged-in clients.
//! Only the leader serves chat; the node decides that and calls in here.
//!
//! A login is three steps: the password is checked or hashed by the driver off the event loop
//! ([`Action::Credential`], answered by [`Sessions::credential_done`]), then the login entry is
//! proposed and, once applied, answered. A stored mailbox is replayed in pages of
//! [`MAILBOX_PAGE`] messages; the next page follows the client's `ack` of the last one.

use super::chat::{Applied, ChatOp, ChatState};
use super::credentials::{
    CredentialJob, CredentialOutcome, CredentialResult, CredentialWork, Password,
};
use super::Millis;
use crate::events::Event;
use crate::ids::ConnId;
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

/// Names a request between [`Action::Propose`] and [`Sessions::proposed`], before the log
/// has given it an index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProposalId(u64);

/// A request whose log entry has not been applied yet.
#[derive(Clone, Debug)]
struct Pending {
    conn: ConnId,
    req: Option<u64>,
    /// The epoch the entry was proposed in: if the entry applied at that index has another
    /// epoch, ours was overwritten and the client must retry.
    epoch: u64,
    kind: PendingKind,
}

#[derive(Clone, Debug)]
enum PendingKind {
    Login {
        user: String,
        session: String,
        since: Option<u64>,
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
    /// Append this op to the log; call [`Sessions::proposed`] with `id` and its index.
    Propose { id: ProposalId, op: ChatOp },
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

#[derive(Clone, Debug, Default)]
pub struct Sessions {
    conns: BTreeMap<ConnId, Conn>,
    /// Requests proposed but not yet given an index (between an [`Action::Propose`] and its
    /// [`Sessions::proposed`]).
    proposals: BTreeMap<ProposalId, Pending>,
    next_proposal: u64,
    /// Requests by the log index of their entry, until it is applied.
    pending: BTreeMap<u64, Pending>,
    acks_in_flight: BTreeSet<String>,
    jobs: BTreeMap<u64, LoginJob>,
    next_job: u64,
}

impl Sessions {
    /// Job ids start at `first_job` (distinct per start, so a late answer meant for an earlier
    /// incarnation of the node matches nothing).
    pub fn new(first_job: u64) -> Sessions {
        Sessions {
            next_job: first_job,
            ..Sessions::default()
        }
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

    /// Handles a parsed request on the leader (status/ping/not-leader are the node's).
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
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Action::Done;
                };
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
                Action::Propose { id, op }
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
        let id = self.stash(
            job.conn,
            job.req,
            PendingKind::Login {
                user: job.user.clone(),
                session: session.clone(),
                since: job.since,
            },
        );
        Action::Propose {
            id,
            op: ChatOp::Login {
                user: job.user,
                session,
                password_hash,
            },
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
        let page = &rest[..rest.len().min(MAILBOX_PAGE as usize)];
        if let Some(last) = page.last() {
            c.replay_sent = Some(last.useq);
        }
        if page.len() == rest.len() {
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

    /// Keeps a request until its proposal is placed in the log ([`Sessions::proposed`]).
    fn stash(&mut self, conn: ConnId, req: Option<u64>, kind: PendingKind) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        self.proposals.insert(
            id,
            Pending {
                conn,
                req,
                epoch: 0,
                kind,
            },
        );
        id
    }

    /// Proposal `id` was appended at `index` in `epoch`.
    pub fn proposed(&mut self, id: ProposalId, index: u64, epoch: u64) {
        if let Some(mut p) = self.proposals.remove(&id) {
            p.epoch = epoch;
            self.pending.insert(index, p);
        }
    }

    /// An entry was applied: answer its proposer and deliver its messages.
    ///
    /// Returns a `Logout` to propose when a login committed after its connection had closed:
    /// nobody holds that session, and left online it would refuse the client's next login
    /// (which cannot know the token) with `name_taken`.
    pub fn applied(
        &mut self,
        index: u64,
        epoch: u64,
        applied: &Applied,
        chat: &ChatState,
        out: &mut Vec<SessionOut>,
    ) -> Option<ChatOp> {
        let mut orphan = None;
        if let Some(p) = self.pending.remove(&index) {
            if let PendingKind::Ack { user } = &p.kind {
                self.acks_in_flight.remove(user);
            }
            if let (PendingKind::Login { .. }, Some(c)) = (&p.kind, self.conns.get_mut(&p.conn)) {
                c.login_pending = false;
            }
            if p.epoch != epoch {
                out.push(SessionOut::Line(
                    p.conn,
                    error_line(
                        p.req,
                        ErrorCode::Unavailable,
                        "leadership changed before the request committed; retry",
                    ),
                ));
            } else if self.conns.contains_key(&p.conn) {
                self.answer(p, applied, chat, out);
            } else if let (PendingKind::Login { user, session, .. }, Ok(_)) =
                (&p.kind, &applied.reply)
            {
                let held = self
                    .conns
                    .values()
                    .any(|c| c.user.as_deref() == Some(user.as_str()));
                if !held && chat.online_session(user) == Some(session.as_str()) {
                    orphan = Some(ChatOp::Logout {
                        user: user.clone(),
                        session: session.clone(),
                    });
                }
            }
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
        orphan
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
            } => {
                // A takeover: other connections of this user here stop being its session.
                let others: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(id, c)| **id != p.conn && c.user.as_deref() == Some(user.as_str()))
                    .map(|(id, _)| *id)
                    .collect();
                // They are told why before they close, so that their client does not log in
                // again with the same token and take the session back (the two would keep
                // displacing each other).
                for other in others {
                    if let Some(c) = self.conns.get_mut(&other) {
                        c.user = None;
                        c.session = None;
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

    /// Leadership lost: every waiting request fails with `unavailable`, and logged-in clients
    /// are disconnected so that they find the new leader.
    pub fn step_down(&mut self, out: &mut Vec<SessionOut>) {
        let unplaced = std::mem::take(&mut self.proposals).into_values();
        for p in std::mem::take(&mut self.pending)
            .into_values()
            .chain(unplaced)
        {
            if self.conns.contains_key(&p.conn) {
                out.push(SessionOut::Line(
                    p.conn,
                    error_line(
                        p.req,
                        ErrorCode::Unavailable,
                        "this server lost its leadership before the request committed; retry with the same id on the new leader",
                    ),
                ));
            }
        }
        for (_, job) in std::mem::take(&mut self.jobs) {
            out.push(SessionOut::Line(
                job.conn,
                error_line(
                    job.req,
                    ErrorCode::Unavailable,
                    "this server lost its leadership before the login completed; log in on the new leader",
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
        let mut s = Sessions::default();
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

    /// Two logins whose proposals are both out before either is placed in the log, placed in
    /// the opposite order: each answer reaches its own connection (a single parking slot
    /// would have lost the first).
    #[test]
    fn proposals_are_placed_by_their_id_not_by_order() {
        let mut s = Sessions::new(1);
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
        // bob's entry lands at index 1, alice's at 2.
        proposals.reverse();
        for (index, (_, id, _)) in proposals.iter().enumerate() {
            s.proposed(*id, index as u64 + 1, 1);
        }
        for (index, (conn, _, op)) in proposals.iter().enumerate() {
            let index = index as u64 + 1;
            let applied = chat.apply(index, op);
            let mut out = Vec::new();
            s.applied(index, 1, &applied, &chat, &mut out);
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
