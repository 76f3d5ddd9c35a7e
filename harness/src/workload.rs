//! The workload: simulated chat users that run through the whole scenario, each a task driving
//! the node's own client library (see [`user`]). The runner steers them (offline / online /
//! explicit sends / drain) and every operation lands in the history as a `client` record
//! (see [`recorder`]).

mod recorder;
mod user;

pub use user::Command;

use crate::docker::now_ms;
use crate::history::Record;
use crate::scenario::{Placement, SendTarget, Workload as WorkloadSpec};
use chat_node::client::SessionConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// State the users share with the runner.
pub struct Shared {
    pub users: usize,
    /// Users that have logged in (and joined their rooms) at least once: random sends start
    /// when all have, so nobody sends to a name that is not registered yet.
    pub logged_in: AtomicUsize,
    /// Host ms when the last user logged in for the first time (0: not yet).
    pub all_in_at_ms: AtomicU64,
    /// Host ms of the latest receipt by any user.
    pub last_receipt_ms: AtomicU64,
    /// Per user: explicit messages queued or a message in flight.
    pub busy: Vec<AtomicBool>,
}

/// The running users.
pub struct Workload {
    commands: HashMap<String, mpsc::UnboundedSender<Command>>,
    tasks: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// How long without a receipt counts as "delivery has settled" in the drain.
const QUIET: Duration = Duration::from_secs(1);
/// One attempt of one request: short, so a user leaves a dead or frozen leader quickly.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
/// A message is retried (same id) across failovers for this long before it counts as failed.
const RETRY_DEADLINE: Duration = Duration::from_secs(10);

/// A random password for one workload user: 24 hex digits (96 bits).
fn generated_password() -> String {
    use rand::Rng;
    let bits: u128 = rand::thread_rng().gen::<u128>() >> 32;
    format!("{bits:024x}")
}

impl Workload {
    /// Starts the users against `servers` (the nodes' client addresses) of cluster `cluster`;
    /// records go to `sink`.
    pub fn start(
        spec: &WorkloadSpec,
        cluster: &str,
        servers: Vec<SocketAddr>,
        sink: mpsc::UnboundedSender<Record>,
    ) -> Workload {
        let names = spec.user_names();
        let shared = Arc::new(Shared {
            users: names.len(),
            logged_in: AtomicUsize::new(0),
            all_in_at_ms: AtomicU64::new(0),
            last_receipt_ms: AtomicU64::new(0),
            busy: names.iter().map(|_| AtomicBool::new(false)).collect(),
        });
        let interval = (spec.rate_per_s > 0.0 && !names.is_empty())
            .then(|| Duration::from_secs_f64(names.len() as f64 / spec.rate_per_s));
        let servers: Vec<String> = servers.iter().map(SocketAddr::to_string).collect();
        let mut commands = HashMap::new();
        let mut tasks = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            commands.insert(name.clone(), tx);
            // Each user registers with a fresh random password at its first login and keeps
            // it for the run (protocol version 2: a name's later logins need it).
            let password = generated_password();
            let mut config = SessionConfig::new(name, &password);
            config.cluster = cluster.to_string();
            // Every user starts on a different server (or the one `placement` pins it to);
            // with `spread` it stays on the server that serves it.
            let first = match &spec.placement {
                Placement::Pinned(pinned) => pinned.get(name).map(|n| n - 1),
                Placement::Assigned => Some(0),
                _ => None,
            }
            .unwrap_or(index);
            config.servers = servers.clone();
            config.servers.rotate_left(first % servers.len().max(1));
            // The fallbacks: the k-th user of a server tries the (k+1)-th next one first, so
            // the users of a server that fails spread over the survivors instead of all
            // landing on its neighbour (the client tries its list in order).
            if config.servers.len() > 2 {
                let n = config.servers.len();
                config.servers[1..].rotate_left((index / n) % (n - 1));
            }
            config.prefer_leader = spec.placement == Placement::Leader;
            config.follow_assignment = spec.placement == Placement::Assigned;
            config.request_timeout = REQUEST_TIMEOUT;
            config.retry_deadline = RETRY_DEADLINE;
            let user = user::User {
                index,
                name: name.clone(),
                others: names.iter().filter(|n| *n != name).cloned().collect(),
                rooms: spec.rooms.clone(),
                config,
                interval,
                private_weight: spec.private_weight,
                room_weight: spec.room_weight,
                shared: shared.clone(),
                recorder: recorder::Recorder::new(name, sink.clone(), shared.clone()),
            };
            tasks.push(tokio::spawn(user.run(rx)));
        }
        Workload {
            commands,
            tasks,
            shared,
        }
    }

    /// Sends `cmd` to `user`; an error names the unknown user.
    pub fn command(&self, user: &str, cmd: Command) -> Result<(), String> {
        let tx = self
            .commands
            .get(user)
            .ok_or_else(|| format!("no workload user `{user}`"))?;
        tx.send(cmd)
            .map_err(|_| format!("workload user `{user}` has stopped"))
    }

    pub fn send(&self, from: &str, to: SendTarget, count: usize) -> Result<(), String> {
        self.command(from, Command::Send { to, count })
    }

    /// Waits until every user has been sending for at least `window` (waiting at most
    /// `login_wait` for the last user to log in). Returns how long they have been sending,
    /// or None when not every user logged in.
    pub async fn ensure_send_window(
        &self,
        window: Duration,
        login_wait: Duration,
    ) -> Option<Duration> {
        let give_up = tokio::time::Instant::now() + login_wait;
        loop {
            let all_in = self.shared.all_in_at_ms.load(Ordering::Relaxed);
            if all_in > 0 {
                let sending = Duration::from_millis(now_ms().saturating_sub(all_in));
                if sending < window {
                    tokio::time::sleep(window - sending).await;
                }
                return Some(Duration::from_millis(now_ms().saturating_sub(all_in)));
            }
            if tokio::time::Instant::now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// All users online, no new messages; waits until nothing is queued or in flight and no
    /// receipt came for [`QUIET`], or `max` passed. Returns whether it settled.
    pub async fn drain(&self, max: Duration) -> bool {
        for tx in self.commands.values() {
            let _ = tx.send(Command::Drain);
        }
        let start = tokio::time::Instant::now();
        let started_ms = now_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let busy = self.shared.busy.iter().any(|b| b.load(Ordering::Relaxed));
            let last = self
                .shared
                .last_receipt_ms
                .load(Ordering::Relaxed)
                .max(started_ms);
            let quiet = now_ms().saturating_sub(last) >= QUIET.as_millis() as u64;
            if !busy && quiet {
                return true;
            }
            if start.elapsed() >= max {
                return false;
            }
        }
    }

    /// Stops every user (connections close).
    pub async fn stop(self) {
        drop(self.commands);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
