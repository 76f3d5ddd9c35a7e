//! The workload: simulated chat users that run through the whole scenario. Each user is a
//! task (see [`user`]); the runner steers them (offline / online / explicit sends / drain)
//! and every operation lands in the history as a `client` record.

mod conn;
mod user;

pub use user::Command;

use crate::history::Record;
use crate::scenario::{SendTarget, Workload as WorkloadSpec};
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
    /// Host ms of the latest receipt by any user.
    pub last_receipt_ms: AtomicU64,
    /// Per user: a message is pending or queued.
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

impl Workload {
    /// Starts the users against `servers` (the nodes' client addresses); records go to `sink`.
    pub fn start(
        spec: &WorkloadSpec,
        servers: Vec<SocketAddr>,
        sink: mpsc::UnboundedSender<Record>,
    ) -> Workload {
        let names = spec.user_names();
        let shared = Arc::new(Shared {
            users: names.len(),
            logged_in: AtomicUsize::new(0),
            last_receipt_ms: AtomicU64::new(0),
            busy: names.iter().map(|_| AtomicBool::new(false)).collect(),
        });
        let interval = (spec.rate_per_s > 0.0 && !names.is_empty())
            .then(|| Duration::from_secs_f64(names.len() as f64 / spec.rate_per_s));
        let mut commands = HashMap::new();
        let mut tasks = Vec::new();
        for (index, name) in names.iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            commands.insert(name.clone(), tx);
            let user = user::User {
                index,
                name: name.clone(),
                others: names.iter().filter(|n| *n != name).cloned().collect(),
                rooms: spec.rooms.clone(),
                servers: servers.clone(),
                interval,
                private_weight: spec.private_weight,
                room_weight: spec.room_weight,
                shared: shared.clone(),
                records: sink.clone(),
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

    /// All users online, no new messages; waits until nothing is pending and no receipt came
    /// for [`QUIET`], or `max` passed. Returns whether it settled.
    pub async fn drain(&self, max: Duration) -> bool {
        for tx in self.commands.values() {
            let _ = tx.send(Command::Drain);
        }
        let start = tokio::time::Instant::now();
        let started_ms = crate::docker::now_ms();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let busy = self.shared.busy.iter().any(|b| b.load(Ordering::Relaxed));
            let last = self
                .shared
                .last_receipt_ms
                .load(Ordering::Relaxed)
                .max(started_ms);
            let quiet = crate::docker::now_ms().saturating_sub(last) >= QUIET.as_millis() as u64;
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
