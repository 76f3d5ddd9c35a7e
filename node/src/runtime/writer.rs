//! The state file's writer, on a thread of its own: durable writes must never stall the event
//! loop (a slow fsync used to hold back heartbeats, and followers declared a healthy leader
//! down). The driver hands it each turn's [`Persist`] records in order; it writes whatever has
//! queued up, fsyncs **once** for all of it, and reports how many records are durable. The
//! driver feeds that back to the core as [`crate::core::Input::Persisted`]; the core holds
//! back what depends on it (see [`crate::core`]).

use super::persist::{Store, MARK_EVERY};
use crate::core::Persist;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use tokio::sync::mpsc as tokio_mpsc;

/// How often a quiet writer looks whether a rewrite in the background is done.
const COMPACTION_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// What the writer tells the driver after each fsync.
#[derive(Debug)]
pub struct Report {
    /// Records made durable since the store was handed over (the core's count).
    pub upto: u64,
    /// The store's counters (`io_stats`).
    pub fsyncs: u64,
    pub bytes: u64,
    /// How long this batch's write and fsync took (`io_stats`' `fsync_max_ms`).
    pub took_ms: u64,
}

/// The driver's handle on the writer thread.
pub struct Writer {
    batches: Option<mpsc::Sender<Vec<Persist>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread; reports (or the one error that stops it) arrive on `reports`.
    pub fn start(
        store: Store,
        reports: tokio_mpsc::UnboundedSender<anyhow::Result<Report>>,
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Vec<Persist>>();
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || write_loop(store, rx, reports))
            .expect("spawning the state writer thread");
        Writer {
            batches: Some(tx),
            thread: Some(thread),
        }
    }

    /// Queues one turn's records (in the order the core emitted them).
    pub fn write(&self, records: Vec<Persist>) {
        if records.is_empty() {
            return;
        }
        if let Some(tx) = &self.batches {
            // A writer that stopped has sent its error; the driver is on its way out.
            let _ = tx.send(records);
        }
    }

    /// Writes and fsyncs what is queued, marks the file and stops the thread (a graceful
    /// stop).
    pub fn finish(mut self) {
        self.batches = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(
    mut store: Store,
    rx: mpsc::Receiver<Vec<Persist>>,
    reports: tokio_mpsc::UnboundedSender<anyhow::Result<Report>>,
) {
    let mut upto = 0u64;
    loop {
        // A rewrite in the background is put in place soon after it is done, even when
        // nothing else is written meanwhile.
        let quiet = if store.compacting() {
            COMPACTION_POLL
        } else {
            MARK_EVERY
        };
        let first = match rx.recv_timeout(quiet) {
            Ok(batch) => batch,
            Err(RecvTimeoutError::Timeout) => {
                // Quiet: put a finished rewrite in place (an error there is as fatal as a
                // failed append), and let the mark catch up with what was synced.
                if !settled(&mut store, &reports) {
                    return;
                }
                store.tick();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let started = std::time::Instant::now();
        // Everything queued meanwhile goes into the same write and fsync (group commit on
        // disk).
        let batches: Vec<Vec<Persist>> = std::iter::once(first).chain(rx.try_iter()).collect();
        let n: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let result = store
            .append_all(batches.iter().flatten())
            .and_then(|()| store.sync());
        if let Err(e) = result {
            let _ = reports.send(Err(e));
            return;
        }
        upto += n;
        let report = Report {
            upto,
            fsyncs: store.fsyncs(),
            bytes: store.bytes_written(),
            took_ms: started.elapsed().as_millis() as u64,
        };
        if reports.send(Ok(report)).is_err() {
            break;
        }
        // After the report: what it vouches for is durable in the old file already, so its
        // acknowledgements do not wait for the swap's fsyncs.
        if !settled(&mut store, &reports) {
            return;
        }
    }
    if let Err(e) = store.settle_compaction(true) {
        tracing::warn!("{e:#}");
    }
    store.mark();
}

/// Puts a finished background rewrite in place; false (the error reported) if that failed,
/// which stops the writer like a failed append.
fn settled(
    store: &mut Store,
    reports: &tokio_mpsc::UnboundedSender<anyhow::Result<Report>>,
) -> bool {
    match store.settle_compaction(false) {
        Ok(()) => true,
        Err(e) => {
            let _ = reports.send(Err(e));
            false
        }
    }
}
