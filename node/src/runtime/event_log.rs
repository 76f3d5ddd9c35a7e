//! Events on stdout: one JSON object per line (the harness's contract) or a short human line.
//! Buffered and written with one `write` per driver turn ([`EventLog::flush`]): under load a
//! turn emits many events, and a write per line through Docker's log driver cost more CPU
//! than the nodes themselves. For the same reason consecutive `committed` and `delivered`
//! events (one per message per node) share one `batch` line of at most [`BATCH_EVENTS`]
//! (schema v2, docs/EVENTS.md). The harness streams container logs, so a turn's events are
//! never held longer than the turn.

use crate::events::{Event, EventRecord};
use crate::settings::LogFormat;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock Unix milliseconds (event timestamps; never used for timers).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats one event for stdout, with `ts_ms` replaced by `wall_ms`.
pub fn format_event(record: &EventRecord, format: LogFormat, wall_ms: u64) -> String {
    let mut record = record.clone();
    record.ts_ms = wall_ms;
    match format {
        LogFormat::Json => record.to_line(),
        LogFormat::Pretty => pretty(&record),
    }
}

/// `12:04:05.123 n3 e7 leader    leader_elected leader=3 votes=3 …`
fn pretty(record: &EventRecord) -> String {
    let secs = record.ts_ms / 1000;
    let clock = format!(
        "{:02}:{:02}:{:02}.{:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        record.ts_ms % 1000
    );
    let mut fields = String::new();
    let mut name = String::from("?");
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&record.event) {
        for (key, value) in map {
            if key == "event" {
                name = value.as_str().unwrap_or("?").to_string();
                continue;
            }
            let shown = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.push_str(&format!(" {key}={shown}"));
        }
    }
    format!(
        "{clock} n{} e{} {:<9} {name}{fields}",
        record.node,
        record.epoch,
        record.role.to_string()
    )
}

/// Events in one `batch` line at most: a worst-case `committed` (64-byte id, every byte
/// escaped) is under 600 bytes, so a batch stays below Docker's 16 KiB log line.
pub const BATCH_EVENTS: usize = 16;

/// The per-message events, which go in `batch` lines.
fn batchable(event: &Event) -> bool {
    matches!(event, Event::Committed { .. } | Event::Delivered { .. })
}

/// Writes formatted events to stdout (or, in tests, to memory).
pub struct EventLog {
    format: LogFormat,
    memory: Option<Arc<Mutex<Vec<String>>>>,
    /// Lines written since the last flush.
    pending: Vec<String>,
    /// The `batch` being filled (its header is that of its first event).
    batch: Option<EventRecord>,
}

impl EventLog {
    pub fn new(format: LogFormat) -> EventLog {
        EventLog {
            format,
            memory: None,
            pending: Vec::new(),
            batch: None,
        }
    }

    /// Collects the lines in `lines` instead of printing them (tests run nodes in-process).
    pub fn in_memory(format: LogFormat, lines: Arc<Mutex<Vec<String>>>) -> EventLog {
        EventLog {
            format,
            memory: Some(lines),
            pending: Vec::new(),
            batch: None,
        }
    }

    /// Queues one event until [`EventLog::flush`], in order. In JSON, a `committed` or
    /// `delivered` joins the open batch when the header (node, epoch, role) matches.
    pub fn write(&mut self, record: &EventRecord) {
        if matches!(self.format, LogFormat::Json) && batchable(&record.event) {
            if let Some(open) = &mut self.batch {
                let same = (open.v, open.node, open.epoch, open.role)
                    == (record.v, record.node, record.epoch, record.role);
                if let (true, Event::Batch { events }) = (same, &mut open.event) {
                    if events.len() < BATCH_EVENTS {
                        events.push(record.event.clone());
                        return;
                    }
                }
            }
            self.close_batch();
            self.batch = Some(EventRecord {
                event: Event::Batch {
                    events: vec![record.event.clone()],
                },
                ..record.clone()
            });
            return;
        }
        self.close_batch();
        self.pending
            .push(format_event(record, self.format, wall_clock_ms()));
    }

    /// Formats the open batch (a batch of one is written as its event).
    fn close_batch(&mut self) {
        let Some(mut open) = self.batch.take() else {
            return;
        };
        if let Event::Batch { events } = &mut open.event {
            if events.len() == 1 {
                open.event = events.pop().expect("one event");
            }
        }
        self.pending
            .push(format_event(&open, self.format, wall_clock_ms()));
    }

    /// Writes the queued events to stdout, in one write when it accepts them. Returns the
    /// lines and bytes (newlines included) written, for `io_stats`.
    pub fn flush(&mut self) -> (u64, u64) {
        self.close_batch();
        if self.pending.is_empty() {
            return (0, 0);
        }
        let lines = self.pending.len() as u64;
        let bytes: usize = self.pending.iter().map(|l| l.len() + 1).sum();
        if let Some(memory) = &self.memory {
            if let Ok(mut memory) = memory.lock() {
                memory.append(&mut self.pending);
            }
            self.pending.clear();
            return (lines, bytes as u64);
        }
        let mut text = String::with_capacity(bytes);
        for line in self.pending.drain(..) {
            text.push_str(&line);
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the node: the cluster still needs it.
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
        (lines, bytes as u64)
    }

    /// Lines queued and not yet flushed (an open batch counts as one).
    pub fn pending(&self) -> usize {
        self.pending.len() + usize::from(self.batch.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EVENTS_VERSION};
    use crate::ids::{NodeId, Role};

    fn record() -> EventRecord {
        EventRecord {
            v: EVENTS_VERSION,
            ts_ms: 42,
            node: NodeId(3),
            epoch: 7,
            role: Role::Follower,
            event: Event::PeerDown {
                peer: NodeId(5),
                silence_ms: 510,
            },
        }
    }

    #[test]
    fn json_lines_carry_the_wall_clock() {
        let line = format_event(&record(), LogFormat::Json, 1_700_000_000_123);
        let back = EventRecord::from_line(&line).unwrap();
        assert_eq!(back.ts_ms, 1_700_000_000_123);
        assert_eq!(back.event, record().event);
    }

    #[test]
    fn events_wait_for_the_flush_and_keep_their_order() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut log = EventLog::in_memory(LogFormat::Json, lines.clone());
        let mut second = record();
        second.epoch = 8;
        log.write(&record());
        log.write(&second);
        assert!(lines.lock().unwrap().is_empty(), "nothing before the flush");
        assert_eq!(log.pending(), 2);
        let (n, bytes) = log.flush();
        assert_eq!(n, 2);
        assert!(bytes > 20);
        let got: Vec<u64> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| EventRecord::from_line(l).unwrap().epoch)
            .collect();
        assert_eq!(got, vec![7, 8]);
        assert_eq!(log.pending(), 0);
    }

    fn committed(index: u64) -> EventRecord {
        EventRecord {
            event: Event::Committed {
                index,
                entry_epoch: 7,
                op: "send".into(),
                from: Some("alice".into()),
                id: Some(format!("a-{index}")),
                target: None,
                room_seq: None,
                duplicate: false,
            },
            ..record()
        }
    }

    #[test]
    fn per_message_events_share_batch_lines_in_order() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut log = EventLog::in_memory(LogFormat::Json, lines.clone());
        log.write(&committed(1));
        log.write(&record());
        for i in 2..(3 + BATCH_EVENTS as u64) {
            log.write(&committed(i));
        }
        let mut other_epoch = committed(100);
        other_epoch.epoch = 8;
        log.write(&other_epoch);
        log.flush();
        let lines = lines.lock().unwrap().clone();
        // A lone committed, the peer_down, a full batch, the rest, then the new epoch's.
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].contains(r#""event":"committed""#), "{}", lines[0]);
        assert!(lines[2].contains(r#""event":"batch""#), "{}", lines[2]);
        let all: Vec<EventRecord> = lines
            .iter()
            .flat_map(|l| EventRecord::from_line_all(l))
            .collect();
        let mut want = vec![committed(1), record()];
        want.extend((2..(3 + BATCH_EVENTS as u64)).map(committed));
        want.push(other_epoch);
        let strip = |r: &EventRecord| (r.epoch, r.event.clone());
        assert_eq!(
            all.iter().map(strip).collect::<Vec<_>>(),
            want.iter().map(strip).collect::<Vec<_>>()
        );
    }

    #[test]
    fn pretty_lines_are_short_and_readable() {
        let line = format_event(&record(), LogFormat::Pretty, 3_723_004);
        assert_eq!(
            line,
            "01:02:03.004 n3 e7 follower  peer_down peer=5 silence_ms=510"
        );
    }
}
