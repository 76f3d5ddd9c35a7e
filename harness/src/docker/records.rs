//! Container log lines into history records: a node's stdout JSON event becomes a node
//! record; anything else (the human-readable tracing on stderr, ANSI-coloured) a harness
//! record with the colour codes stripped, so the history stays plain text.

use crate::docker::LogLine;
use crate::history::{HarnessRecord, Record};
use chat_node::events::EventRecord;

/// One log line as history records: one per event a node's `batch` line carries
/// (docs/EVENTS.md, schema v2), else exactly one.
pub fn log_records(line: LogLine) -> Vec<Record> {
    if line.outsider.is_none() && line.stdout {
        let events = EventRecord::from_line_all(&line.text);
        if !events.is_empty() {
            return events.into_iter().map(Record::Node).collect();
        }
    }
    vec![log_record(line)]
}

/// One log line as a history record (a `batch` stays one record: see [`log_records`]).
pub fn log_record(line: LogLine) -> Record {
    if let Some(k) = line.outsider {
        // The forge tool's JSON lines, kept as written (see `report::forge_summary`).
        let stream = if line.stdout { "" } else { " stderr" };
        return Record::Harness(HarnessRecord {
            ts_ms: line.received_ms,
            msg: format!("outsider{k}{stream}: {}", strip_ansi(&line.text)),
        });
    }
    if line.stdout {
        if let Some(event) = EventRecord::from_line(&line.text) {
            return Record::Node(event);
        }
    }
    let stream = if line.stdout { "stdout" } else { "stderr" };
    Record::Harness(HarnessRecord {
        ts_ms: line.received_ms,
        msg: format!("n{} {stream}: {}", line.node, strip_ansi(&line.text)),
    })
}

/// Removes ANSI escape sequences (CSI `ESC [ … final-byte`, and two-byte `ESC x`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        // CSI: parameters and intermediates up to a final byte in '@'..='~'. Any other
        // escape is two characters long: both are dropped.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped_and_plain_text_kept() {
        let coloured =
            "\x1b[2m2026-11-21T19:53:45Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[1mnode\x1b[0m: up";
        assert_eq!(strip_ansi(coloured), "2026-11-21T19:53:45Z  INFO node: up");
        assert_eq!(strip_ansi("plain [x] text"), "plain [x] text");
        assert_eq!(strip_ansi("cut at the end \x1b["), "cut at the end ");
    }

    #[test]
    fn stderr_becomes_a_plain_harness_record_and_stdout_events_node_records() {
        let stderr = LogLine {
            node: 2,
            outsider: None,
            stdout: false,
            text: "\x1b[33m WARN\x1b[0m peer 3 down".into(),
            received_ms: 7,
        };
        match log_record(stderr) {
            Record::Harness(h) => assert_eq!(h.msg, "n2 stderr:  WARN peer 3 down"),
            other => panic!("expected a harness record, got {other:?}"),
        }
        let garbage = LogLine {
            node: 1,
            outsider: None,
            stdout: true,
            text: "{not an event".into(),
            received_ms: 9,
        };
        assert!(matches!(log_record(garbage), Record::Harness(_)));
        let outsider = LogLine {
            node: 0,
            outsider: Some(2),
            stdout: true,
            text: r#"{"forge":"done","sent":5}"#.into(),
            received_ms: 11,
        };
        match log_record(outsider) {
            Record::Harness(h) => assert_eq!(h.msg, r#"outsider2: {"forge":"done","sent":5}"#),
            other => panic!("expected a harness record, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_line_becomes_one_node_record_per_event() {
        let batch = LogLine {
            node: 4,
            outsider: None,
            stdout: true,
            text: concat!(
                r#"{"v":2,"ts_ms":5,"node":4,"epoch":2,"role":"leader","event":"batch","events":["#,
                r#"{"event":"committed","index":19,"entry_epoch":2,"op":"noop"},"#,
                r#"{"event":"delivered","user":"bob","from":"alice","id":"a-7","useq":31}]}"#
            )
            .into(),
            received_ms: 6,
        };
        let records = log_records(batch);
        assert_eq!(records.len(), 2);
        assert!(matches!(&records[0], Record::Node(r) if r.node.0 == 4 && r.ts_ms == 5));
        match &records[1] {
            Record::Node(r) => assert!(
                matches!(
                    &r.event,
                    chat_node::events::Event::Delivered { useq: 31, .. }
                ),
                "{r:?}"
            ),
            other => panic!("expected a node record, got {other:?}"),
        }
        let plain = LogLine {
            node: 1,
            outsider: None,
            stdout: false,
            text: "hello".into(),
            received_ms: 1,
        };
        assert_eq!(log_records(plain).len(), 1);
    }
}
