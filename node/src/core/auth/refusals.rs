//! Rate-limited refusal events: an outsider can send thousands of bad datagrams a second, and
//! each must not become an event line (the event log would be the flood). The first refusal
//! of a kind (`unauthenticated`, `replayed`, …) is an event at once; later ones of that kind
//! within a second are counted, and the next event of the kind (the next refusal after the
//! second is up, or the tick that closes the second) carries how many it stands for (`times`).

use super::super::Millis;
use std::collections::BTreeMap;

/// At most one event per refusal kind this often.
pub const EVENT_INTERVAL_MS: Millis = 1000;

/// One `input_rejected` event to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub from: String,
    pub reason: String,
    /// Refusals this event stands for (the latest one's `from` and `reason`).
    pub times: u64,
}

#[derive(Clone, Debug, Default)]
struct Kind {
    last_event: Option<Millis>,
    pending: u64,
    latest: Option<(String, String)>,
}

/// Refusals per kind since the kind's last event.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    kinds: BTreeMap<&'static str, Kind>,
}

impl Refusals {
    /// Counts one refusal; the event to write now, if it is due.
    pub fn refuse(
        &mut self,
        now: Millis,
        kind: &'static str,
        from: &str,
        reason: String,
    ) -> Option<Report> {
        let k = self.kinds.entry(kind).or_default();
        k.pending += 1;
        k.latest = Some((from.to_string(), reason));
        let due = k
            .last_event
            .is_none_or(|t| now.saturating_sub(t) >= EVENT_INTERVAL_MS);
        due.then(|| Self::report(k, now)).flatten()
    }

    /// Events for kinds whose second is up with refusals not yet reported.
    pub fn flush(&mut self, now: Millis) -> Vec<Report> {
        self.kinds
            .values_mut()
            .filter(|k| {
                k.pending > 0
                    && k.last_event
                        .is_none_or(|t| now.saturating_sub(t) >= EVENT_INTERVAL_MS)
            })
            .filter_map(|k| Self::report(k, now))
            .collect()
    }

    fn report(k: &mut Kind, now: Millis) -> Option<Report> {
        let (from, reason) = k.latest.take()?;
        let times = std::mem::take(&mut k.pending);
        k.last_event = Some(now);
        Some(Report {
            from,
            reason,
            times,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_event_per_kind_per_second_and_none_is_lost() {
        let mut r = Refusals::default();
        let mut events = Vec::new();
        for t in 0..3000u64 {
            events.extend(r.refuse(t, "unauthenticated", "x", format!("unauthenticated: {t}")));
            if t % 2 == 0 {
                events.extend(r.refuse(t, "replayed", "y", "replayed: d".into()));
            }
            events.extend(r.flush(t));
        }
        events.extend(r.flush(10_000));
        let by = |k: &str| -> Vec<u64> {
            events
                .iter()
                .filter(|e| e.reason.starts_with(k))
                .map(|e| e.times)
                .collect()
        };
        // At 0, 1000 and 2000, then the tail of the last second.
        assert_eq!(by("unauthenticated"), vec![1, 1000, 1000, 999]);
        assert_eq!(by("replayed").iter().sum::<u64>(), 1500);
        assert_eq!(by("replayed").len(), 4);
        assert!(r.flush(20_000).is_empty());
    }
}
