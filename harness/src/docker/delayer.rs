//! A userspace packet delayer on NFQUEUE, for kernels without netem (this project's CI
//! kernel has `CONFIG_NETFILTER_XT_TARGET_NFQUEUE=y` but no `CONFIG_NET_SCH_NETEM`).
//!
//! An iptables rule in the node's network namespace queues every packet arriving on `eth0`
//! to queue 0 (`--queue-bypass`: with nobody listening, packets pass). A thread of the
//! harness enters that namespace (`setns`), binds the queue, holds each packet for
//! `ms ± jitter` (uniform) and re-injects it with verdict accept. Packets are released by
//! due time, not arrival order, so jitter also reorders them. Stopping releases everything
//! still held at once.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The queue number the iptables rule and the delayer agree on (queues are per namespace).
pub const QUEUE: u16 = 0;
/// How often the thread looks for due packets and new ones.
const TICK: Duration = Duration::from_millis(1);

/// One running delayer, bound to one network namespace.
pub struct Delayer {
    /// The pid whose namespace it serves (a restarted node has a new one).
    pub pid: u32,
    ms: Arc<AtomicU64>,
    jitter_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Enters the namespace of `pid`, binds the queue and starts holding packets. Fails
    /// (with what is missing) if the queue cannot be bound there.
    pub fn start(pid: u32, ms: u64, jitter_ms: u64, seed: u64) -> Result<Delayer, String> {
        let ms_a = Arc::new(AtomicU64::new(ms));
        let jitter_a = Arc::new(AtomicU64::new(jitter_ms));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (m, j, s) = (ms_a.clone(), jitter_a.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("delayer-{pid}"))
            .spawn(move || {
                let queue = match open_in_netns(pid) {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                hold(queue, &m, &j, &s, StdRng::seed_from_u64(seed));
            })
            .map_err(|e| format!("cannot start the delayer thread: {e}"))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Delayer {
                pid,
                ms: ms_a,
                jitter_ms: jitter_a,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the delayer did not bind its queue within 5 s".into()),
        }
    }

    /// Changes the delay of a running delayer (a second `delay` step to the same node).
    pub fn set(&self, ms: u64, jitter_ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
        self.jitter_ms.store(jitter_ms, Ordering::SeqCst);
    }

    /// Releases every held packet and unbinds the queue.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// On this thread: enter the namespace, open and bind the queue (metadata only: the
/// verdict needs no payload).
fn open_in_netns(pid: u32) -> Result<nfq::Queue, String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .map_err(|e| format!("cannot open the network namespace of pid {pid}: {e}"))?;
    // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "cannot enter the network namespace of pid {pid}: {} (needs root)",
            std::io::Error::last_os_error()
        ));
    }
    let bind = || -> std::io::Result<nfq::Queue> {
        let mut q = nfq::Queue::open()?;
        q.bind(QUEUE)?;
        q.set_copy_range(QUEUE, 0)?;
        q.set_queue_max_len(QUEUE, 10_000)?;
        q.set_nonblocking(true);
        Ok(q)
    };
    bind().map_err(|e| {
        format!(
            "cannot bind NFQUEUE {QUEUE} in the namespace of pid {pid}: {e} (the kernel needs \
             nfnetlink_queue, CONFIG_NETFILTER_NETLINK_QUEUE)"
        )
    })
}

/// The thread's loop: take new packets, release due ones, until told to stop.
fn hold(
    mut queue: nfq::Queue,
    ms: &AtomicU64,
    jitter_ms: &AtomicU64,
    stop: &AtomicBool,
    mut rng: StdRng,
) {
    let mut held: BTreeMap<(Instant, u64), nfq::Message> = BTreeMap::new();
    let mut seq = 0u64;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        loop {
            match queue.recv() {
                Ok(msg) => {
                    let base = ms.load(Ordering::Relaxed) as i64;
                    let j = jitter_ms.load(Ordering::Relaxed) as i64;
                    let d = if j > 0 {
                        base + rng.gen_range(-j..=j)
                    } else {
                        base
                    };
                    let due = Instant::now() + Duration::from_millis(d.max(0) as u64);
                    held.insert((due, seq), msg);
                    seq += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An overrun or a closed socket: release what is held and end; the
                // `--queue-bypass` rule lets packets through without us.
                Err(_) => {
                    release(&mut queue, &mut held, None);
                    return;
                }
            }
        }
        if stopping {
            release(&mut queue, &mut held, None);
            let _ = queue.unbind(QUEUE);
            return;
        }
        release(&mut queue, &mut held, Some(Instant::now()));
        std::thread::sleep(TICK);
    }
}

/// Accepts every held packet due by `until` (all of them when `None`).
fn release(
    queue: &mut nfq::Queue,
    held: &mut BTreeMap<(Instant, u64), nfq::Message>,
    until: Option<Instant>,
) {
    while let Some(entry) = held.first_entry() {
        if until.is_some_and(|t| entry.key().0 > t) {
            break;
        }
        let mut msg = entry.remove();
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = queue.verdict(msg);
    }
}
