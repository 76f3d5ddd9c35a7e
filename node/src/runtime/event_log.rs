//! Events on stdout: one JSON object per line (the harness's contract) or a short human line.
//! Buffered and written with one `write` per driver turn ([`EventLog::flush`]): under load a
//! turn emits many events, and a write per line through Docker's log driver cost more CPU
//! than the nodes themselves. The harness streams container logs, so a turn's events are
//! never held longer than the turn.

use crate::events::EventRecord;
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

/// Writes formatted events to stdout (or, in tests, to memory).
pub struct EventLog {
    format: LogFormat,
    memory: Option<Arc<Mutex<Vec<String>>>>,
    /// Lines written since the last flush.
    pending: Vec<String>,
}

impl EventLog {
    pub fn new(format: LogFormat) -> EventLog {
        EventLog {
            format,
            memory: None,
            pending: Vec::new(),
        }
    }

    /// Collects the lines in `lines` instead of printing them (tests run nodes in-process).
    pub fn in_memory(format: LogFormat, lines: Arc<Mutex<Vec<String>>>) -> EventLog {
        EventLog {
            format,
            memory: Some(lines),
            pending: Vec::new(),
        }
    }

    /// Queues one event until [`EventLog::flush`]; returns the bytes it takes (newline
    /// included).
    pub fn write(&mut self, record: &EventRecord) -> usize {
        let line = format_event(record, self.format, wall_clock_ms());
        let bytes = line.len() + 1;
        self.pending.push(line);
        bytes
    }

    /// Writes the queued events to stdout, in one write when it accepts them.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(memory) = &self.memory {
            if let Ok(mut lines) = memory.lock() {
                lines.append(&mut self.pending);
            }
            self.pending.clear();
            return;
        }
        let mut text = String::with_capacity(self.pending.iter().map(|l| l.len() + 1).sum());
        for line in self.pending.drain(..) {
            text.push_str(&line);
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the node: the cluster still needs it.
        let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    }

    /// Events queued and not yet flushed.
    pub fn pending(&self) -> usize {
        self.pending.len()
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
        assert!(log.write(&record()) > 10);
        log.write(&second);
        assert!(lines.lock().unwrap().is_empty(), "nothing before the flush");
        assert_eq!(log.pending(), 2);
        log.flush();
        let got: Vec<u64> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| EventRecord::from_line(l).unwrap().epoch)
            .collect();
        assert_eq!(got, vec![7, 8]);
        assert_eq!(log.pending(), 0);
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
