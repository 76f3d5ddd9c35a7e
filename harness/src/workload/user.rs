//! One simulated user, driven through the node's own client library
//! (`chat_node::client::Session`: leader-following, same-id retries, useq dedup, batched
//! acks). It logs in, joins the rooms, sends at its share of the rate from the moment every
//! user is registered, reads what the cluster pushes, and goes offline/online on command.
//! The [`Recorder`] turns the library's events into history records.

use super::recorder::Recorder;
use super::Shared;
use crate::docker::now_ms;
use crate::history::ClientAction;
use crate::scenario::SendTarget;
use chat_node::client::{Session, SessionConfig};
use rand::Rng;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Pause after a failed login before trying again.
const BACKOFF: Duration = Duration::from_millis(100);
/// While not every user is registered, look again this often.
const REGISTRATION_POLL: Duration = Duration::from_millis(50);
/// How long an idle user (no rate, nothing explicit) sleeps between wakes it does not need.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

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
    /// Stop generating messages, come online, finish what is queued.
    Drain,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Active,
    Offline,
    Draining,
}

pub struct User {
    pub index: usize,
    pub name: String,
    pub others: Vec<String>,
    pub rooms: Vec<String>,
    pub config: SessionConfig,
    /// Time between random sends (None: only explicit sends).
    pub interval: Option<Duration>,
    pub private_weight: f64,
    pub room_weight: f64,
    pub shared: Arc<Shared>,
    pub recorder: Arc<Recorder>,
}

struct State {
    mode: Mode,
    /// Logged in now (the library reconnects by itself while this is true).
    online: bool,
    joined: bool,
    counted: bool,
    sent: u64,
    explicit: VecDeque<SendTarget>,
    next_send: Instant,
}

impl User {
    fn set_busy(&self, busy: bool) {
        if let Some(flag) = self.shared.busy.get(self.index) {
            flag.store(busy, Ordering::Relaxed);
        }
    }

    /// Runs until the command channel closes (or the task is aborted).
    pub async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut session = Session::new(self.config.clone());
        session.set_observer(self.recorder.observer());
        let jitter = self
            .interval
            .map(|i| rand::thread_rng().gen_range(Duration::ZERO..=i))
            .unwrap_or_default();
        let mut st = State {
            mode: Mode::Active,
            online: false,
            joined: false,
            counted: false,
            sent: 0,
            explicit: VecDeque::new(),
            next_send: Instant::now() + jitter,
        };
        loop {
            self.set_busy(!st.explicit.is_empty());
            if st.mode == Mode::Offline {
                if st.online {
                    // Best effort: a dead server cannot take the logout, the user is gone anyway.
                    let _ = session.logout().await;
                    st.online = false;
                }
                match commands.recv().await {
                    Some(cmd) => self.apply(cmd, &mut st),
                    None => return,
                }
                continue;
            }
            if !st.online {
                tokio::select! {
                    cmd = commands.recv() => match cmd {
                        Some(cmd) => self.apply(cmd, &mut st),
                        None => return,
                    },
                    ok = self.login(&mut session, &mut st) => if !ok {
                        tokio::time::sleep(BACKOFF).await;
                    },
                }
                continue;
            }
            let all_in = self.shared.logged_in.load(Ordering::Relaxed) >= self.shared.users;
            let wake = if !st.explicit.is_empty() {
                Instant::now()
            } else if st.mode == Mode::Active && self.interval.is_some() && all_in {
                st.next_send
            } else if st.mode == Mode::Active && self.interval.is_some() {
                Instant::now() + REGISTRATION_POLL
            } else {
                // Nothing to send until a command comes: no timed wake, which would cancel
                // `next_incoming` every poll, and with it the reconnection an idle user needs
                // after its server dies (it never received again: lcr-liveness-one-way,
                // rate 0, lost 10 of 10 messages to u4).
                Instant::now() + IDLE_WAKE
            };
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.apply(cmd, &mut st),
                    None => return,
                },
                incoming = session.next_incoming() => {
                    // Receipts are recorded by the observer; an error means no server took
                    // the session back within the library's retry deadline: try again.
                    if incoming.is_err() {
                        tokio::time::sleep(BACKOFF).await;
                    }
                },
                _ = tokio::time::sleep_until(wake) => {
                    if let Some(to) = self.next_message(&mut st, all_in) {
                        self.set_busy(true);
                        self.send(&mut session, &mut st, to).await;
                    }
                },
            }
        }
    }

    fn apply(&self, cmd: Command, st: &mut State) {
        match cmd {
            Command::Offline if st.mode != Mode::Offline => {
                st.mode = Mode::Offline;
                self.recorder.record(ClientAction::Offline);
            }
            Command::Online if st.mode == Mode::Offline => {
                st.mode = Mode::Active;
                self.recorder.record(ClientAction::Online);
            }
            Command::Send { to, count } => st.explicit.extend(std::iter::repeat_n(to, count)),
            Command::Drain => {
                if st.mode == Mode::Offline {
                    self.recorder.record(ClientAction::Online);
                }
                st.mode = Mode::Draining;
            }
            _ => {}
        }
    }

    /// Logs in (the library finds the leader) and joins the rooms once. False on failure.
    async fn login(&self, session: &mut Session, st: &mut State) -> bool {
        if session.connect().await.is_err() {
            return false;
        }
        if !st.joined {
            for room in &self.rooms {
                if session.join(room).await.is_err() {
                    return false;
                }
                self.recorder
                    .record(ClientAction::Joined { room: room.clone() });
            }
            st.joined = true;
        }
        st.online = true;
        if !st.counted {
            st.counted = true;
            let now_in = self.shared.logged_in.fetch_add(1, Ordering::Relaxed) + 1;
            if now_in == self.shared.users {
                self.shared.all_in_at_ms.store(now_ms(), Ordering::Relaxed);
            }
        }
        true
    }

    /// An explicit message first; else a random one when it is due and every user exists.
    fn next_message(&self, st: &mut State, all_in: bool) -> Option<SendTarget> {
        if let Some(to) = st.explicit.pop_front() {
            return Some(to);
        }
        let interval = self.interval?;
        if st.mode != Mode::Active || !all_in || Instant::now() < st.next_send {
            return None;
        }
        st.next_send += interval;
        if st.next_send < Instant::now() {
            // Fell behind (a long retry): do not burst to catch up.
            st.next_send = Instant::now() + interval;
        }
        self.random_target()
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

    /// One message through the library, which retries with the same id across failovers;
    /// the recorder writes every attempt, the ack or the final failure.
    async fn send(&self, session: &mut Session, st: &mut State, to: SendTarget) {
        st.sent += 1;
        let id = session.next_message_id();
        let text = format!("{} #{} hello", self.name, st.sent);
        self.recorder.sending(text.len());
        // Errors are in the history already (the observer saw the failure).
        let _ = match &to {
            SendTarget::User(user) => session.send_with_id(user, &id, &text).await.map(|_| ()),
            SendTarget::Room(room) => session.post_with_id(room, &id, &text).await.map(|_| ()),
        };
    }
}
