//! The runtime's I/O counters: fsyncs, persisted bytes, datagrams and refused sends, event
//! bytes. They turn into an `io_stats` event about once a second (what `harness bench` divides
//! by the acknowledged messages), and a refused send into a rate-limited `send_failed` event,
//! so that a datagram the kernel drops is never silent.

use crate::core::Millis;
use crate::events::Event;

/// `io_stats` and `send_failed` are written at most this often.
pub const STATS_EVERY_MS: Millis = 1000;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    pub fsyncs: u64,
    pub persist_bytes: u64,
    pub datagrams_sent: u64,
    pub datagram_bytes: u64,
    pub send_errors: u64,
    pub event_lines: u64,
    pub event_bytes: u64,
    /// Window maxima, reset at each report: the longest gap between two multicast heartbeats
    /// and the longest driver turn.
    pub heartbeat_gap_max_ms: u64,
    pub turn_max_ms: u64,
    last_heartbeat: Option<Millis>,
    /// What the last `io_stats` event said (nothing new: no event).
    last_reported: Option<Box<IoStats>>,
    next_report: Millis,
    /// The latest refusal not yet reported, and when the next report may be written.
    unreported_failure: Option<(String, String)>,
    next_failure_report: Millis,
}

impl IoStats {
    pub fn sent(&mut self, bytes: usize) {
        self.datagrams_sent += 1;
        self.datagram_bytes += bytes as u64;
    }

    pub fn refused(&mut self, to: String, reason: String) {
        self.send_errors += 1;
        self.unreported_failure = Some((to, reason));
    }

    /// A heartbeat (multicast) went out at `now`.
    pub fn heartbeat(&mut self, now: Millis) {
        if let Some(prev) = self.last_heartbeat {
            self.heartbeat_gap_max_ms = self.heartbeat_gap_max_ms.max(now.saturating_sub(prev));
        }
        self.last_heartbeat = Some(now);
    }

    /// One driver turn took `ms`.
    pub fn turn(&mut self, ms: Millis) {
        self.turn_max_ms = self.turn_max_ms.max(ms);
    }

    /// One flush of the event log wrote `lines` lines of `bytes` bytes.
    pub fn wrote_events(&mut self, (lines, bytes): (u64, u64)) {
        self.event_lines += lines;
        self.event_bytes += bytes;
    }

    fn snapshot(&self) -> IoStats {
        IoStats {
            fsyncs: self.fsyncs,
            persist_bytes: self.persist_bytes,
            datagrams_sent: self.datagrams_sent,
            datagram_bytes: self.datagram_bytes,
            send_errors: self.send_errors,
            event_lines: self.event_lines,
            event_bytes: self.event_bytes,
            ..IoStats::default()
        }
    }

    /// The events due at `now`: a `send_failed` for an unreported refusal (at most once per
    /// [`STATS_EVERY_MS`]) and an `io_stats` when the counters moved since the last one.
    pub fn due(&mut self, now: Millis) -> Vec<Event> {
        let mut out = Vec::new();
        if now >= self.next_failure_report {
            if let Some((to, reason)) = self.unreported_failure.take() {
                out.push(Event::SendFailed {
                    to,
                    reason,
                    count: self.send_errors,
                });
                self.next_failure_report = now + STATS_EVERY_MS;
            }
        }
        if now >= self.next_report {
            self.next_report = now + STATS_EVERY_MS;
            let snap = self.snapshot();
            if self.last_reported.as_deref() != Some(&snap) {
                out.push(Event::IoStats {
                    fsyncs: snap.fsyncs,
                    persist_bytes: snap.persist_bytes,
                    datagrams_sent: snap.datagrams_sent,
                    datagram_bytes: snap.datagram_bytes,
                    send_errors: snap.send_errors,
                    event_lines: snap.event_lines,
                    event_bytes: snap.event_bytes,
                    heartbeat_gap_max_ms: self.heartbeat_gap_max_ms,
                    turn_max_ms: self.turn_max_ms,
                });
                self.last_reported = Some(Box::new(snap));
                self.heartbeat_gap_max_ms = 0;
                self.turn_max_ms = 0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_a_second_and_only_when_something_moved() {
        let mut s = IoStats::default();
        s.sent(100);
        assert!(matches!(
            s.due(0).as_slice(),
            [Event::IoStats {
                datagrams_sent: 1,
                datagram_bytes: 100,
                ..
            }]
        ));
        s.sent(50);
        assert!(s.due(500).is_empty(), "not before a second has passed");
        assert_eq!(s.due(1000).len(), 1);
        assert!(s.due(2000).is_empty(), "nothing moved");
    }

    #[test]
    fn heartbeat_gaps_and_turns_are_window_maxima() {
        let mut s = IoStats::default();
        s.sent(1);
        for t in [0, 100, 200, 870, 970] {
            s.heartbeat(t);
        }
        s.turn(3);
        s.turn(40);
        s.turn(5);
        assert!(matches!(
            s.due(1000).as_slice(),
            [Event::IoStats {
                heartbeat_gap_max_ms: 670,
                turn_max_ms: 40,
                ..
            }]
        ));
        s.sent(1);
        s.heartbeat(1070);
        assert!(matches!(
            s.due(2000).as_slice(),
            [Event::IoStats {
                heartbeat_gap_max_ms: 100,
                turn_max_ms: 0,
                ..
            }]
        ));
    }

    #[test]
    fn refused_sends_are_reported_rate_limited_with_the_running_count() {
        let mut s = IoStats::default();
        s.refused("10.0.0.2:7400".into(), "full".into());
        let first = s.due(0);
        assert!(first
            .iter()
            .any(|e| matches!(e, Event::SendFailed { count: 1, to, .. } if to == "10.0.0.2:7400")));
        s.refused("10.0.0.3:7400".into(), "full".into());
        s.refused("10.0.0.3:7400".into(), "full".into());
        assert!(!s
            .due(10)
            .iter()
            .any(|e| matches!(e, Event::SendFailed { .. })));
        assert!(s
            .due(1000)
            .iter()
            .any(|e| matches!(e, Event::SendFailed { count: 3, .. })));
    }
}
