//! The load generator: `connections` users logged in on the leader (or spread round-robin
//! over the servers given), each keeping its share of
//! `outstanding` sends in flight on one connection (pipelined with `req`). Closed loop by
//! default (a new send as soon as one is acknowledged); with a rate, open loop: send k is due
//! at `start + k / rate` and its latency counts from that scheduled time, so a stalled cluster
//! cannot hide its stall by slowing the generator down (no coordinated omission).
//! Every user sends to the next one, reads what it is sent and acknowledges it.

use chat_node::client::{ClientError, Connection, Pushed};
use chat_node::protocol::Request;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Barrier;
use tokio::time::Instant;

/// How long sends still in flight at the end may take before they are counted as lost.
const DRAIN: Duration = Duration::from_secs(5);
/// Received messages are acknowledged this often.
const ACK_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Where the users log in: user `i` on `addrs[i % addrs.len()]`.
    pub addrs: Vec<String>,
    pub connections: usize,
    pub outstanding: usize,
    /// Messages per second in total (open loop); `None`: closed loop.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub text_bytes: usize,
    pub request_timeout: Duration,
}

/// What the generator saw.
pub struct LoadResult {
    /// Wall-clock Unix ms of every acknowledgement.
    pub ack_ms: Vec<u64>,
    /// Latency in microseconds of the sends scheduled inside the measured window.
    pub latency_us: Histogram<u64>,
    pub sent: u64,
    pub errors: BTreeMap<String, u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static histogram bounds are valid")
}

fn wall_ms() -> u64 {
    chat_node::runtime::event_log::wall_clock_ms()
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Server(reply) => serde_json::to_value(reply.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "server_error".into()),
        ClientError::Timeout(_) => "timeout".into(),
        ClientError::Closed => "closed".into(),
        ClientError::Io(_) => "io".into(),
        ClientError::Protocol(_) => "protocol".into(),
        ClientError::NoServer(_) => "no_server".into(),
    }
}

/// Runs the load. `started` receives the instant sending began (after every user logged in)
/// and the measured window: `[started + warmup, started + duration)`.
pub async fn run(
    spec: LoadSpec,
    warmup: Duration,
    started: tokio::sync::oneshot::Sender<Instant>,
) -> Result<LoadResult, String> {
    let n = spec.connections.max(1);
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut tasks = Vec::new();
    for i in 0..n {
        let spec = spec.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            drive(i, n, &spec, warmup, barrier).await
        }));
    }
    // Every user is logged in (or failed) once the barrier opens.
    barrier.wait().await;
    let _ = started.send(Instant::now());
    let mut result = LoadResult {
        ack_ms: Vec::new(),
        latency_us: histogram(),
        sent: 0,
        errors: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                result.ack_ms.extend(r.ack_ms);
                result
                    .latency_us
                    .add(&r.latency_us)
                    .map_err(|e| e.to_string())?;
                result.sent += r.sent;
                for (k, v) in r.errors {
                    *result.errors.entry(k).or_default() += v;
                }
            }
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(format!("load task: {e}")),
        }
    }
    if failures.len() == n {
        return Err(format!("no user could send: {}", failures.join("; ")));
    }
    for f in failures {
        *result.errors.entry(format!("user: {f}")).or_default() += 1;
    }
    result.ack_ms.sort_unstable();
    Ok(result)
}

async fn login(i: usize, spec: &LoadSpec) -> Result<Connection, String> {
    let addr = &spec.addrs[i % spec.addrs.len().max(1)];
    let conn = Connection::connect(addr, Duration::from_secs(5))
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    let login = Request::Login {
        user: format!("bench-{i}"),
        password: format!("bench-password-{i}"),
        session: None,
        since: None,
    };
    conn.request(login, Duration::from_secs(10))
        .await
        .map_err(|e| format!("logging in bench-{i}: {e}"))?;
    Ok(conn)
}

async fn drive(
    i: usize,
    n: usize,
    spec: &LoadSpec,
    warmup: Duration,
    barrier: Arc<Barrier>,
) -> Result<LoadResult, String> {
    let logged_in = login(i, spec).await;
    barrier.wait().await;
    let mut conn = logged_in?;
    let start = Instant::now();
    let window = (start + warmup, start + spec.duration);
    let mut pushed = conn.take_pushed();
    let highest = Arc::new(AtomicU64::new(0));
    let seen = highest.clone();
    let reader = tokio::spawn(async move {
        while let Some(p) = pushed.recv().await {
            if let Pushed::Message(m) = p {
                seen.fetch_max(m.useq, Ordering::Relaxed);
            }
        }
    });
    // This user's share of the outstanding window (at least one).
    let share = (spec.outstanding / n + usize::from(i < spec.outstanding % n)).max(1);
    let to = format!("bench-{}", (i + 1) % n);
    let text = "x".repeat(spec.text_bytes);
    let mut out = LoadResult {
        ack_ms: Vec::new(),
        latency_us: histogram(),
        sent: 0,
        errors: BTreeMap::new(),
    };
    let mut inflight = FuturesUnordered::new();
    let mut k: u64 = 0;
    let mut acked_upto = 0;
    let mut next_ack = start + ACK_EVERY;
    let due = |k: u64| -> Instant {
        match spec.rate {
            Some(rate) => start + Duration::from_secs_f64((k * n as u64 + i as u64) as f64 / rate),
            None => Instant::now(),
        }
    };
    let conn = &conn;
    let send = |k: u64, scheduled: Instant| {
        let request = Request::Send {
            to: to.clone(),
            id: format!("b{i}-{k}"),
            text: text.clone(),
        };
        async move {
            let r = conn.request(request, spec.request_timeout).await;
            (scheduled, r)
        }
    };
    let record = |out: &mut LoadResult, scheduled: Instant, r: Result<_, ClientError>| {
        let now = Instant::now();
        match r {
            Ok(_) => {
                out.ack_ms.push(wall_ms());
                if scheduled >= window.0 && scheduled < window.1 {
                    let us = now.saturating_duration_since(scheduled).as_micros() as u64;
                    let _ = out.latency_us.record(us.max(1));
                }
            }
            Err(e) => *out.errors.entry(error_kind(&e)).or_default() += 1,
        }
    };
    loop {
        let now = Instant::now();
        if now >= next_ack {
            let h = highest.load(Ordering::Relaxed);
            if h > acked_upto {
                acked_upto = h;
                let _ = conn.send_only(Request::Ack { upto: h });
            }
            next_ack = now + ACK_EVERY;
        }
        let next_due = due(k);
        if next_due >= window.1 {
            break;
        }
        if spec.rate.is_none() {
            // Closed loop: refill the window at once. (A `sleep_until(now)` waits for the
            // timer's next millisecond tick, which capped each user's sends.)
            while inflight.len() < share {
                inflight.push(send(k, Instant::now()));
                out.sent += 1;
                k += 1;
            }
        }
        let room = inflight.len() < share;
        tokio::select! {
            _ = tokio::time::sleep_until(next_due), if room && spec.rate.is_some() => {
                inflight.push(send(k, next_due));
                out.sent += 1;
                k += 1;
            }
            Some((scheduled, r)) = inflight.next(), if !inflight.is_empty() => {
                record(&mut out, scheduled, r);
            }
            _ = tokio::time::sleep_until(next_ack) => {}
        }
    }
    let drain_until = Instant::now() + DRAIN;
    while !inflight.is_empty() {
        match tokio::time::timeout_at(drain_until, inflight.next()).await {
            Ok(Some((scheduled, r))) => record(&mut out, scheduled, r),
            Ok(None) => break,
            Err(_) => {
                *out.errors.entry("unanswered_at_end".into()).or_default() += inflight.len() as u64;
                break;
            }
        }
    }
    reader.abort();
    Ok(out)
}
