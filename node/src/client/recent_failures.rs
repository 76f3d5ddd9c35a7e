//! Addresses that just failed us, tried only after every other candidate for a while.
//!
//! When a leader dies, the survivors keep naming it (`server_here`, `welcome`, `not_leader`)
//! until they have not heard it for half their failure timeout, and the session's own
//! `leader_hint` still points at it. A client that takes those answers in order connects to
//! the dead address first and waits out its connect timeout before it tries the new leader
//! (issue 8: the first connection went to the dead address in 6 of 6 sessions). So an
//! address whose connection broke, could not be opened, or refused our login is *cooling*
//! for [`FAILED_ADDRESS_COOLDOWN`]: candidates that are not cooling come first, cooling ones
//! last (the longest-cooling first), and discovery does not stop listening at a `role:
//! leader` answer from a cooling address. Nothing is ever dropped: if the cooling address is
//! the only one, or really leads again, it is still tried, only later.

use crate::core::Millis;
use std::time::Duration;

/// How long a failed address is de-prioritised. The servers stop advertising a silent leader
/// after half their failure timeout (250 ms by default) and elect a new one within about one
/// failure timeout plus an election (0.5–1 s by default); 2 s covers that window with
/// margin, and after it a failed address is an ordinary candidate again (it may have
/// restarted, or been elected once more).
pub const FAILED_ADDRESS_COOLDOWN: Duration = Duration::from_secs(2);

/// Addresses with the time they last failed.
#[derive(Clone, Debug)]
/// Times are the caller's milliseconds (virtual in the simulator, since the session
/// started in the tokio driver).
pub struct RecentFailures {
    cooldown: Millis,
    failed: Vec<(String, Millis)>,
}

impl Default for RecentFailures {
    fn default() -> Self {
        RecentFailures::new(FAILED_ADDRESS_COOLDOWN)
    }
}

impl RecentFailures {
    pub fn new(cooldown: Duration) -> RecentFailures {
        RecentFailures {
            cooldown: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            failed: Vec::new(),
        }
    }

    /// `addr` failed at `now`.
    pub fn mark(&mut self, addr: &str, now: Millis) {
        self.forget_old(now);
        self.failed.retain(|(a, _)| a != addr);
        self.failed.push((addr.to_string(), now));
    }

    /// `addr` served us: it is a good candidate again.
    pub fn clear(&mut self, addr: &str) {
        self.failed.retain(|(a, _)| a != addr);
    }

    /// True while `addr` failed less than the cooldown ago.
    pub fn is_cooling(&self, addr: &str, now: Millis) -> bool {
        self.failed_at(addr, now).is_some()
    }

    /// Every cooling address.
    pub fn cooling(&self, now: Millis) -> Vec<String> {
        self.failed
            .iter()
            .filter(|(_, at)| now.saturating_sub(*at) < self.cooldown)
            .map(|(a, _)| a.clone())
            .collect()
    }

    /// `candidates` (best first) with the cooling ones moved to the end, the one that failed
    /// longest ago first among them; the order is otherwise kept.
    pub fn order(&self, candidates: Vec<String>, now: Millis) -> Vec<String> {
        let (mut cooling, mut fresh): (Vec<String>, Vec<String>) = candidates
            .into_iter()
            .partition(|a| self.is_cooling(a, now));
        cooling.sort_by_key(|a| self.failed_at(a, now));
        fresh.extend(cooling);
        fresh
    }

    fn failed_at(&self, addr: &str, now: Millis) -> Option<Millis> {
        self.failed
            .iter()
            .find(|(a, at)| a == addr && now.saturating_sub(*at) < self.cooldown)
            .map(|(_, at)| *at)
    }

    fn forget_old(&mut self, now: Millis) {
        let cooldown = self.cooldown;
        self.failed
            .retain(|(_, at)| now.saturating_sub(*at) < cooldown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_just_failed_leader_is_tried_after_the_fresh_one_until_the_cooldown_ends() {
        let t0: Millis = 1_000;
        let mut recent = RecentFailures::new(Duration::from_secs(2));
        recent.mark("10.0.0.1:7070", t0);
        // Discovery still names the dead leader first; the new one comes second.
        let found = addrs(&["10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"]);
        let soon = t0 + 300;
        assert_eq!(
            recent.order(found.clone(), soon),
            addrs(&["10.0.0.2:7070", "10.0.0.3:7070", "10.0.0.1:7070"])
        );
        assert!(recent.is_cooling("10.0.0.1:7070", soon));
        // After the cooldown it is an ordinary candidate again (it may lead once more).
        let later = t0 + 2_000;
        assert_eq!(
            recent.order(found, later),
            addrs(&["10.0.0.1:7070", "10.0.0.2:7070", "10.0.0.3:7070"])
        );
        assert!(recent.cooling(later).is_empty());
    }

    #[test]
    fn cooling_addresses_are_never_dropped_and_the_oldest_failure_goes_first() {
        let t0: Millis = 1_000;
        let mut recent = RecentFailures::default();
        recent.mark("b", t0 + 10);
        recent.mark("a", t0 + 20);
        let now = t0 + 100;
        assert_eq!(recent.order(addrs(&["a", "b"]), now), addrs(&["b", "a"]));
        // Failing again moves it to the back; serving us clears it.
        recent.mark("b", t0 + 50);
        assert_eq!(recent.order(addrs(&["a", "b"]), now), addrs(&["a", "b"]));
        recent.clear("b");
        assert_eq!(recent.order(addrs(&["a", "b"]), now), addrs(&["b", "a"]));
        assert_eq!(recent.cooling(now), addrs(&["a"]));
    }
}
