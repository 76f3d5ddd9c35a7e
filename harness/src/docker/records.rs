//! Container log lines into history records: a node's stdout JSON event becomes a node
//! record; anything else (the human-readable tracing on stderr, ANSI-coloured) a harness
//! record with the colour codes stripped, so the history stays plain text.

use crate::docker::LogLine;
use crate::history::{HarnessRecord, Record};
use chat_node::events::EventRecord;

/// One log line as a history record.
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
}
