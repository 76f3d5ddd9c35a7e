//! One simulated user: logs in on the leader, joins the rooms, sends at its share of the
//! rate, records every send, acknowledgement, failure and receipt, follows the leader when
//! its server dies, retries with the same message id, and goes offline/online on command.

use super::conn::{reply_to, Conn, Reply};
use super::Shared;
use crate::docker::now_ms;
use crate::history::{ClientAction, ClientRecord, Record};
use crate::scenario::SendTarget;
use chat_node::ids::NodeId;
use chat_node::protocol::{ErrorCode, Request, ServerLine};
use rand::Rng;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a send may wait for its acknowledgement before the user reconnects and retries.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before retrying after `unavailable` or a failed connect.
const BACKOFF: Duration = Duration::from_millis(100);

/// What the runner tells a user.
#[derive(Debug, Clone)]
pub enum Command {
    Offline,
    Online,
    /// Send `count` explicit messages.
    Send {
        to: SendTarget,
        count: usize,
    },
    /// Stop generating messages, come online, finish what is pending.
    Drain,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Active,
    Offline,
    Draining,
}

/// A message being sent (retries keep the id).
#[derive(Clone)]
struct Pending {
    id: String,
    to: SendTarget,
    text: String,
    attempt: u32,
}

pub struct User {
    pub index: usize,
    pub name: String,
    pub others: Vec<String>,
    pub rooms: Vec<String>,
    pub servers: Vec<SocketAddr>,
    /// Time between random sends (None: only explicit sends).
    pub interval: Option<Duration>,
    pub private_weight: f64,
    pub room_weight: f64,
    pub shared: Arc<Shared>,
    pub records: mpsc::UnboundedSender<Record>,
}

struct State {
    session: String,
    preferred: Option<SocketAddr>,
    rotation: usize,
    last_useq: u64,
    replay_left: u64,
    joined: bool,
    counted_login: bool,
    sent: u64,
    pending: Option<Pending>,
    explicit: VecDeque<SendTarget>,
    mode: Mode,
    next_send: Instant,
}

impl User {
    fn record(&self, action: ClientAction) {
        let _ = self.records.send(Record::Client(ClientRecord {
            ts_ms: now_ms(),
            user: self.name.clone(),
            action,
        }));
    }

    fn set_busy(&self, st: &State) {
        let busy = st.pending.is_some() || !st.explicit.is_empty();
        if let Some(flag) = self.shared.busy.get(self.index) {
            flag.store(busy, Ordering::Relaxed);
        }
    }

    /// Runs until the command channel closes.
    pub async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let jitter = self
            .interval
            .map(|i| rand::thread_rng().gen_range(Duration::ZERO..=i))
            .unwrap_or_default();
        let mut st = State {
            session: format!("{}-{:08x}", self.name, rand::random::<u32>()),
            preferred: None,
            rotation: self.index,
            last_useq: 0,
            replay_left: 0,
            joined: false,
            counted_login: false,
            sent: 0,
            pending: None,
            explicit: VecDeque::new(),
            mode: Mode::Active,
            next_send: Instant::now() + jitter,
        };
        let mut conn: Option<Conn> = None;
        loop {
            self.set_busy(&st);
            if st.mode == Mode::Offline {
                match commands.recv().await {
                    None => return,
                    Some(cmd) => self.command(cmd, &mut st, &mut conn).await,
                }
                continue;
            }
            let Some(c) = conn.as_mut() else {
                tokio::select! {
                    cmd = commands.recv() => match cmd {
                        None => return,
                        Some(cmd) => self.command(cmd, &mut st, &mut conn).await,
                    },
                    c = self.connect(&mut st) => conn = c,
                }
                continue;
            };
            let all_in = self.shared.logged_in.load(Ordering::Relaxed) >= self.shared.users;
            let has_work = st.pending.is_some() || !st.explicit.is_empty();
            let random_due = st.mode == Mode::Active && self.interval.is_some() && all_in;
            // Until every user is registered, look again every 50 ms (nothing else would wake us).
            let wake = if !all_in {
                Instant::now() + Duration::from_millis(50)
            } else if has_work {
                Instant::now()
            } else if random_due {
                st.next_send
            } else {
                Instant::now() + Duration::from_millis(200)
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None => return,
                    Some(cmd) => self.command(cmd, &mut st, &mut conn).await,
                },
                line = c.next_line() => match line {
                    Ok(line) => self.push_line(line, &mut st),
                    Err(e) => {
                        self.record_failure_if_pending(&st, &e);
                        conn = None;
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    if !all_in {
                        continue;
                    }
                    if st.pending.is_none() {
                        self.prepare_next(&mut st);
                    }
                    if st.pending.is_some() && !self.send_pending(c, &mut st).await {
                        conn = None;
                    }
                }
            }
        }
    }

    async fn command(&self, cmd: Command, st: &mut State, conn: &mut Option<Conn>) {
        match cmd {
            Command::Offline if st.mode != Mode::Offline => {
                if let Some(c) = conn.as_mut() {
                    let _ = c.send(Request::Logout).await;
                }
                *conn = None;
                st.mode = Mode::Offline;
                self.record(ClientAction::Offline);
            }
            Command::Online if st.mode == Mode::Offline => {
                st.mode = Mode::Active;
                self.record(ClientAction::Online);
            }
            Command::Send { to, count } => {
                st.explicit.extend(std::iter::repeat_n(to, count));
            }
            Command::Drain => {
                if st.mode == Mode::Offline {
                    self.record(ClientAction::Online);
                }
                st.mode = Mode::Draining;
            }
            _ => {}
        }
    }

    /// Picks the next message: an explicit one first, else a random private message or post.
    fn prepare_next(&self, st: &mut State) {
        let to = if let Some(to) = st.explicit.pop_front() {
            to
        } else if st.mode == Mode::Active && Instant::now() >= st.next_send {
            if let Some(interval) = self.interval {
                st.next_send += interval;
                if st.next_send < Instant::now() {
                    st.next_send = Instant::now() + interval;
                }
            }
            match self.random_target() {
                Some(t) => t,
                None => return,
            }
        } else {
            return;
        };
        st.sent += 1;
        let id = format!("{}-{}", self.name, st.sent);
        st.pending = Some(Pending {
            text: format!("{id} says hello"),
            id,
            to,
            attempt: 0,
        });
    }

    fn random_target(&self) -> Option<SendTarget> {
        let mut rng = rand::thread_rng();
        let private = !self.others.is_empty();
        let room = !self.rooms.is_empty();
        let total = self.private_weight + self.room_weight;
        let pick_private = match (private, room) {
            (false, false) => return None,
            (true, false) => true,
            (false, true) => false,
            (true, true) => total <= 0.0 || rng.gen_range(0.0..total) < self.private_weight,
        };
        Some(if pick_private {
            SendTarget::User(self.others[rng.gen_range(0..self.others.len())].clone())
        } else {
            SendTarget::Room(self.rooms[rng.gen_range(0..self.rooms.len())].clone())
        })
    }

    fn record_failure_if_pending(&self, st: &State, error: &str) {
        if let Some(p) = &st.pending {
            if p.attempt > 0 {
                self.record(ClientAction::Failed {
                    id: p.id.clone(),
                    error: error.to_string(),
                });
            }
        }
    }

    /// Sends the pending message once; false when the connection must be dropped.
    async fn send_pending(&self, c: &mut Conn, st: &mut State) -> bool {
        let Some(p) = st.pending.as_mut() else {
            return true;
        };
        p.attempt += 1;
        let (request, to, room) = match &p.to {
            SendTarget::User(u) => (
                Request::Send {
                    to: u.clone(),
                    id: p.id.clone(),
                    text: p.text.clone(),
                },
                Some(u.clone()),
                None,
            ),
            SendTarget::Room(r) => (
                Request::Post {
                    room: r.clone(),
                    id: p.id.clone(),
                    text: p.text.clone(),
                },
                None,
                Some(r.clone()),
            ),
        };
        self.record(ClientAction::Send {
            id: p.id.clone(),
            to,
            room,
            text_len: p.text.len(),
            attempt: p.attempt,
        });
        let id = p.id.clone();
        let reply = match c.send(request).await {
            Ok(req) => self.await_reply(c, req, st).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(Reply::Ok(ok)) => {
                self.record(ClientAction::Acked {
                    id,
                    index: ok.index.unwrap_or(0),
                    room_seq: ok.room_seq,
                    duplicate: ok.duplicate,
                });
                st.pending = None;
                true
            }
            Ok(Reply::Refused {
                code,
                message,
                leader_addr,
            }) => {
                self.record(ClientAction::Failed {
                    id,
                    error: format!("{code:?}: {message}"),
                });
                match code {
                    ErrorCode::Unavailable => {
                        tokio::time::sleep(BACKOFF).await;
                        true
                    }
                    ErrorCode::NotLeader | ErrorCode::NotLoggedIn => {
                        st.preferred = leader_addr.and_then(|a| a.parse().ok());
                        false
                    }
                    // Not retryable: the message is dropped (it was never acknowledged).
                    _ => {
                        st.pending = None;
                        true
                    }
                }
            }
            Err(e) => {
                self.record(ClientAction::Failed { id, error: e });
                false
            }
        }
    }

    /// Reads lines until the reply to `req`, recording receipts on the way.
    async fn await_reply(&self, c: &mut Conn, req: u64, st: &mut State) -> Result<Reply, String> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(deadline, c.next_line())
                .await
                .map_err(|_| format!("no reply within {REPLY_TIMEOUT:?}"))??;
            if let Some(reply) = reply_to(&line, req) {
                return Ok(reply);
            }
            self.push_line(line, st);
        }
    }

    fn push_line(&self, line: ServerLine, st: &mut State) {
        if let ServerLine::Message(message) = line {
            st.last_useq = st.last_useq.max(message.useq);
            let replay = st.replay_left > 0;
            st.replay_left = st.replay_left.saturating_sub(1);
            self.shared
                .last_receipt_ms
                .store(now_ms(), Ordering::Relaxed);
            self.record(ClientAction::Received { message, replay });
        }
    }

    /// Finds the leader, logs in and joins the rooms. None after a failed attempt (the
    /// caller loops).
    async fn connect(&self, st: &mut State) -> Option<Conn> {
        let mut target = st.preferred.take().or_else(|| {
            st.rotation += 1;
            self.servers
                .get(st.rotation % self.servers.len().max(1))
                .copied()
        })?;
        for _hop in 0..3 {
            let mut c = match Conn::open(target).await {
                Ok(c) => c,
                Err(_) => break,
            };
            if !c.is_leader {
                if let Some(addr) = c.leader_addr.as_deref().and_then(|a| a.parse().ok()) {
                    if addr != target {
                        target = addr;
                        continue;
                    }
                }
            }
            if self.login(&mut c, st).await {
                return Some(c);
            }
            break;
        }
        tokio::time::sleep(BACKOFF).await;
        None
    }

    async fn login(&self, c: &mut Conn, st: &mut State) -> bool {
        let request = Request::Login {
            user: self.name.clone(),
            session: Some(st.session.clone()),
            since: (st.last_useq > 0).then_some(st.last_useq),
        };
        let Ok(req) = c.send(request).await else {
            return false;
        };
        match self.await_reply(c, req, st).await {
            Ok(Reply::Ok(ok)) => {
                let mailbox = ok.mailbox.unwrap_or(0);
                st.replay_left = mailbox;
                self.record(ClientAction::Login {
                    node: Some(NodeId(c.node)),
                    mailbox,
                });
            }
            Ok(Reply::Refused { leader_addr, .. }) => {
                st.preferred = leader_addr.and_then(|a| a.parse().ok());
                return false;
            }
            Err(_) => return false,
        }
        if !st.joined {
            for room in &self.rooms {
                let Ok(req) = c.send(Request::Join { room: room.clone() }).await else {
                    return false;
                };
                match self.await_reply(c, req, st).await {
                    Ok(Reply::Ok(_)) => self.record(ClientAction::Joined { room: room.clone() }),
                    _ => return false,
                }
            }
            st.joined = true;
        }
        if !st.counted_login {
            st.counted_login = true;
            self.shared.logged_in.fetch_add(1, Ordering::Relaxed);
        }
        true
    }
}
