//! A userspace packet delayer on NFQUEUE, for kernels without netem (this project's CI
//! kernel has `CONFIG_NETFILTER_XT_TARGET_NFQUEUE=y` but no `CONFIG_NET_SCH_NETEM`).
//!
//! An iptables rule in the node's network namespace queues every packet arriving on `eth0`
//! to queue 0 (`--queue-bypass`: with nobody listening, packets pass). A thread of the
//! harness enters that namespace (`setns`), binds the queue, holds each packet for
//! `ms ± jitter` (uniform) and re-injects it with verdict accept. Packets are released by
//! due time, not arrival order, so jitter also reorders them. With `duplicate` P %, each
//! packet is, with probability P/100, also copied: the copy (the whole IP packet as it
//! arrived, source address and all) is sent, at its own due time, from a raw socket in the
//! same namespace to the node's own address, so it arrives on `lo` (which the queue rule
//! does not match, so it is not held or copied again) and still meets the partition and
//! loss rules, which match on the source address. Stopping releases everything still held
//! at once (copies not yet sent are dropped).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The queue number the iptables rule and the delayer agree on (queues are per namespace).
pub const QUEUE: u16 = 0;
/// How often the thread looks for due packets and new ones.
const TICK: Duration = Duration::from_millis(1);

/// What a delayer does to each packet: hold it `ms ± jitter_ms`, copy it `duplicate_percent`
/// times in 100.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    pub ms: u64,
    pub jitter_ms: u64,
    pub duplicate_percent: u8,
}

/// What one packet gets: its hold, and the copy's hold when it is duplicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fate {
    pub hold_ms: u64,
    pub copy_hold_ms: Option<u64>,
}

/// Decides a packet's fate (pure: the thread and the tests share it). The copy draws its
/// own hold from the same distribution, so with jitter it may even overtake the original.
pub fn fate<R: Rng + ?Sized>(shape: Shape, rng: &mut R) -> Fate {
    let hold = |rng: &mut R| {
        let j = shape.jitter_ms as i64;
        let d = shape.ms as i64 + if j > 0 { rng.gen_range(-j..=j) } else { 0 };
        d.max(0) as u64
    };
    let hold_ms = hold(rng);
    let copy =
        shape.duplicate_percent > 0 && rng.gen_range(0..100u8) < shape.duplicate_percent.min(100);
    Fate {
        hold_ms,
        copy_hold_ms: copy.then(|| hold(rng)),
    }
}

/// What a delayer did, for the run's notes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets taken from the queue.
    pub held: u64,
    /// Packets released after one that arrived later (reordered by the jitter).
    pub reordered: u64,
    /// Copies sent.
    pub duplicated: u64,
    /// Copies that could not be made (a truncated or non-IPv4 packet, a failed send).
    pub copy_failed: u64,
}

#[derive(Default)]
struct SharedCounts {
    held: AtomicU64,
    reordered: AtomicU64,
    duplicated: AtomicU64,
    copy_failed: AtomicU64,
}

impl SharedCounts {
    fn get(&self) -> Counts {
        Counts {
            held: self.held.load(Ordering::Relaxed),
            reordered: self.reordered.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            copy_failed: self.copy_failed.load(Ordering::Relaxed),
        }
    }
}

/// The knobs a running delayer reads for each new packet.
struct Knobs {
    ms: AtomicU64,
    jitter_ms: AtomicU64,
    duplicate_percent: AtomicU64,
}

impl Knobs {
    fn store(&self, s: Shape) {
        self.ms.store(s.ms, Ordering::SeqCst);
        self.jitter_ms.store(s.jitter_ms, Ordering::SeqCst);
        self.duplicate_percent
            .store(s.duplicate_percent as u64, Ordering::SeqCst);
    }

    fn load(&self) -> Shape {
        Shape {
            ms: self.ms.load(Ordering::Relaxed),
            jitter_ms: self.jitter_ms.load(Ordering::Relaxed),
            duplicate_percent: self.duplicate_percent.load(Ordering::Relaxed) as u8,
        }
    }
}

/// One running delayer, bound to one network namespace.
pub struct Delayer {
    /// The pid whose namespace it serves (a restarted node has a new one).
    pub pid: u32,
    knobs: Arc<Knobs>,
    counts: Arc<SharedCounts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Enters the namespace of `pid`, binds the queue and starts holding packets. Fails
    /// (with what is missing) if the queue, or for duplication the raw socket, cannot be
    /// had there.
    pub fn start(pid: u32, shape: Shape, seed: u64) -> Result<Delayer, String> {
        let knobs = Arc::new(Knobs {
            ms: AtomicU64::new(0),
            jitter_ms: AtomicU64::new(0),
            duplicate_percent: AtomicU64::new(0),
        });
        knobs.store(shape);
        let counts = Arc::new(SharedCounts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (k, c, s) = (knobs.clone(), counts.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("delayer-{pid}"))
            .spawn(move || {
                let (queue, raw) = match open_in_netns(pid) {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                hold(queue, raw, &k, &c, &s, StdRng::seed_from_u64(seed));
            })
            .map_err(|e| format!("cannot start the delayer thread: {e}"))?;
        match ready_rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => Ok(Delayer {
                pid,
                knobs,
                counts,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the delayer did not bind its queue within 5 s".into()),
        }
    }

    /// Changes what a running delayer does (a second `delay` or `duplicate` step).
    pub fn set(&self, shape: Shape) {
        self.knobs.store(shape);
    }

    /// Releases every held packet and unbinds the queue; returns what it did.
    pub fn stop(mut self) -> Counts {
        self.halt();
        self.counts.get()
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

/// On this thread: enter the namespace, open and bind the queue (whole packets, so a copy
/// can be made), and open the raw socket copies leave from.
fn open_in_netns(pid: u32) -> Result<(nfq::Queue, OwnedFd), String> {
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
        q.set_copy_range(QUEUE, u16::MAX)?;
        q.set_queue_max_len(QUEUE, 10_000)?;
        q.set_nonblocking(true);
        Ok(q)
    };
    let queue = bind().map_err(|e| {
        format!(
            "cannot bind NFQUEUE {QUEUE} in the namespace of pid {pid}: {e} (the kernel needs \
             nfnetlink_queue, CONFIG_NETFILTER_NETLINK_QUEUE)"
        )
    })?;
    // SAFETY: a plain socket(2) call; the fd is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(format!(
            "cannot open a raw socket in the namespace of pid {pid}: {} (duplication needs \
             CAP_NET_RAW)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    Ok((queue, unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// A held packet, or a copy waiting to be sent.
enum Held {
    Packet { msg: nfq::Message, arrival: u64 },
    Copy(Vec<u8>),
}

/// The IPv4 packet in `payload`, whole (not cut at the copy range), if it is one.
fn whole_ipv4(msg: &nfq::Message) -> Option<Vec<u8>> {
    let p = msg.get_payload();
    let whole = p.len() == msg.get_original_len();
    (whole && p.len() >= 20 && p[0] >> 4 == 4).then(|| p.to_vec())
}

/// Sends a copy of an IPv4 packet, header included, to its own destination address.
fn send_copy(raw: &OwnedFd, packet: &[u8]) -> bool {
    let dst = [packet[16], packet[17], packet[18], packet[19]];
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the buffer and the address outlive the call; lengths are theirs.
    let n = unsafe {
        libc::sendto(
            raw.as_raw_fd(),
            packet.as_ptr() as *const libc::c_void,
            packet.len(),
            0,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    n == packet.len() as isize
}

/// The thread's loop: take new packets, release due ones, until told to stop.
fn hold(
    mut queue: nfq::Queue,
    raw: OwnedFd,
    knobs: &Knobs,
    counts: &SharedCounts,
    stop: &AtomicBool,
    mut rng: StdRng,
) {
    let mut held: BTreeMap<(Instant, u64), Held> = BTreeMap::new();
    let mut seq = 0u64;
    let mut order = Released::default();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        loop {
            match queue.recv() {
                Ok(msg) => {
                    let now = Instant::now();
                    let f = fate(knobs.load(), &mut rng);
                    counts.held.fetch_add(1, Ordering::Relaxed);
                    if let Some(copy_ms) = f.copy_hold_ms {
                        match whole_ipv4(&msg) {
                            Some(bytes) => {
                                let due = now + Duration::from_millis(copy_ms);
                                held.insert((due, seq), Held::Copy(bytes));
                                seq += 1;
                            }
                            None => {
                                counts.copy_failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    let due = now + Duration::from_millis(f.hold_ms);
                    held.insert((due, seq), Held::Packet { msg, arrival: seq });
                    seq += 1;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // An overrun or a closed socket: release what is held and end; the
                // `--queue-bypass` rule lets packets through without us.
                Err(_) => {
                    release(&mut queue, &raw, &mut held, None, counts, &mut order);
                    return;
                }
            }
        }
        if stopping {
            release(&mut queue, &raw, &mut held, None, counts, &mut order);
            let _ = queue.unbind(QUEUE);
            return;
        }
        release(
            &mut queue,
            &raw,
            &mut held,
            Some(Instant::now()),
            counts,
            &mut order,
        );
        std::thread::sleep(TICK);
    }
}

/// Counts packets released out of arrival order: one released after a later arrival was.
#[derive(Default)]
pub struct Released {
    latest_arrival: Option<u64>,
}

impl Released {
    /// Notes the release of the packet that arrived `arrival`-th; true if it is reordered.
    pub fn note(&mut self, arrival: u64) -> bool {
        let reordered = self.latest_arrival.is_some_and(|l| arrival < l);
        self.latest_arrival = Some(self.latest_arrival.map_or(arrival, |l| l.max(arrival)));
        reordered
    }
}

/// Accepts every held packet due by `until` (all of them when `None`; copies not yet due
/// are then dropped) and sends the due copies.
fn release(
    queue: &mut nfq::Queue,
    raw: &OwnedFd,
    held: &mut BTreeMap<(Instant, u64), Held>,
    until: Option<Instant>,
    counts: &SharedCounts,
    order: &mut Released,
) {
    while let Some(entry) = held.first_entry() {
        if until.is_some_and(|t| entry.key().0 > t) {
            break;
        }
        match entry.remove() {
            Held::Packet { mut msg, arrival } => {
                if order.note(arrival) {
                    counts.reordered.fetch_add(1, Ordering::Relaxed);
                }
                msg.set_verdict(nfq::Verdict::Accept);
                let _ = queue.verdict(msg);
            }
            Held::Copy(bytes) if until.is_some() => {
                let c = if send_copy(raw, &bytes) {
                    &counts.duplicated
                } else {
                    &counts.copy_failed
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
            Held::Copy(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_reorders_and_duplicate_copies_about_its_percent() {
        let mut rng = StdRng::seed_from_u64(3);
        // Packets arriving 1 ms apart, held 50 ± 20 ms: released by due time.
        let shape = Shape {
            ms: 50,
            jitter_ms: 20,
            duplicate_percent: 10,
        };
        let mut due: Vec<(u64, u64)> = Vec::new();
        let mut copies = 0;
        for arrival in 0..10_000u64 {
            let f = fate(shape, &mut rng);
            assert!((30..=70).contains(&f.hold_ms), "{f:?}");
            due.push((arrival + f.hold_ms, arrival));
            if let Some(c) = f.copy_hold_ms {
                assert!((30..=70).contains(&c));
                copies += 1;
            }
        }
        assert!(
            (800..1200).contains(&copies),
            "10% of 10,000 copied: {copies}"
        );
        due.sort();
        let mut order = Released::default();
        let reordered = due.iter().filter(|(_, a)| order.note(*a)).count();
        assert!(
            reordered > 1000,
            "jitter of 20 ms over 1 ms gaps reorders: {reordered}"
        );
        // No jitter, no duplicate: every packet held exactly, none copied, none reordered.
        let plain = Shape {
            ms: 50,
            ..Shape::default()
        };
        let mut order = Released::default();
        for arrival in 0..100 {
            let f = fate(plain, &mut rng);
            assert_eq!(
                f,
                Fate {
                    hold_ms: 50,
                    copy_hold_ms: None
                }
            );
            assert!(!order.note(arrival));
        }
        // 100 %: every packet copied.
        let all = Shape {
            duplicate_percent: 100,
            ..Shape::default()
        };
        assert!((0..100).all(|_| fate(all, &mut rng).copy_hold_ms == Some(0)));
    }
}
