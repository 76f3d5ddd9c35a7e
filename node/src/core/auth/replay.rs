//! The replay window: per sender, its newest incarnation and a 1024-wide sliding bitmap of
//! the sequence numbers seen below the highest one. A frame is fresh once: a second copy
//! (a network duplicate or a captured frame sent again), one older than the window, or one of
//! an older incarnation (sent before the sender restarted) is refused. A receiver that
//! restarts forgets its windows; see the threat model in docs/ARCHITECTURE.md.

use crate::ids::NodeId;
use std::collections::BTreeMap;

/// Sequence numbers tracked below the highest seen.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Senders tracked at most. Only frames with a valid tag reach the window, so with a secret
/// these are members; `--insecure` lets anyone invent ids, and this keeps that bounded.
pub const MAX_SENDERS: usize = 4096;

/// Why a frame is not fresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The sender has restarted since.
    OldIncarnation { newest: u64 },
    /// Already seen.
    Duplicate,
    /// More than [`WINDOW`] below the highest seen.
    TooOld { highest: u64 },
}

#[derive(Clone, Debug)]
struct Window {
    incarnation: u64,
    highest: u64,
    /// Bit `k` is sequence `highest - k` (bit 0 is `highest` itself).
    seen: [u64; WORDS],
}

impl Window {
    fn fresh(incarnation: u64, seq: u64) -> Window {
        let mut seen = [0u64; WORDS];
        seen[0] = 1;
        Window {
            incarnation,
            highest: seq,
            seen,
        }
    }

    fn bit(&self, back: u64) -> bool {
        self.seen[(back / 64) as usize] >> (back % 64) & 1 == 1
    }

    fn set(&mut self, back: u64) {
        self.seen[(back / 64) as usize] |= 1 << (back % 64);
    }

    fn check(&self, seq: u64) -> Result<(), Stale> {
        if seq > self.highest {
            return Ok(());
        }
        let back = self.highest - seq;
        if back >= WINDOW {
            return Err(Stale::TooOld {
                highest: self.highest,
            });
        }
        if self.bit(back) {
            Err(Stale::Duplicate)
        } else {
            Ok(())
        }
    }

    fn mark(&mut self, seq: u64) {
        if seq > self.highest {
            let shift = seq - self.highest;
            self.shift(shift);
            self.highest = seq;
            self.set(0);
        } else {
            self.set(self.highest - seq);
        }
    }

    /// Moves every bit `by` places further back (older); bits past the window fall off.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        for i in (0..WORDS).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.seen[s]);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map_or(0, |s| self.seen[s]);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

/// Every sender's window.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindows {
    senders: BTreeMap<NodeId, Window>,
}

impl ReplayWindows {
    /// Whether `(from, incarnation, seq)` is fresh; changes nothing.
    pub fn check(&self, from: NodeId, incarnation: u64, seq: u64) -> Result<(), Stale> {
        match self.senders.get(&from) {
            None => Ok(()),
            Some(w) if incarnation < w.incarnation => Err(Stale::OldIncarnation {
                newest: w.incarnation,
            }),
            Some(w) if incarnation > w.incarnation => Ok(()),
            Some(w) => w.check(seq),
        }
    }

    /// Records a frame that [`ReplayWindows::check`] passed and the node accepted.
    pub fn mark(&mut self, from: NodeId, incarnation: u64, seq: u64) {
        if !self.senders.contains_key(&from) && self.senders.len() >= MAX_SENDERS {
            // Forget the lowest id: only reachable without a secret.
            if let Some(first) = self.senders.keys().next().copied() {
                self.senders.remove(&first);
            }
        }
        match self.senders.get_mut(&from) {
            Some(w) if w.incarnation == incarnation => w.mark(seq),
            Some(w) if w.incarnation > incarnation => {}
            _ => {
                self.senders.insert(from, Window::fresh(incarnation, seq));
            }
        }
    }

    /// The newest incarnation heard from `from`.
    pub fn incarnation(&self, from: NodeId) -> Option<u64> {
        self.senders.get(&from).map(|w| w.incarnation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admit(w: &mut ReplayWindows, inc: u64, seq: u64) -> Result<(), Stale> {
        w.check(NodeId(1), inc, seq)?;
        w.mark(NodeId(1), inc, seq);
        Ok(())
    }

    #[test]
    fn each_sequence_number_is_fresh_once_in_any_order() {
        let mut w = ReplayWindows::default();
        for seq in [5, 3, 4, 10, 1, 2, 9, 6, 8, 7] {
            assert_eq!(admit(&mut w, 1, seq), Ok(()), "{seq}");
        }
        for seq in 1..=10 {
            assert_eq!(admit(&mut w, 1, seq), Err(Stale::Duplicate), "{seq}");
        }
        // Jumps of every size keep what is still inside the window.
        for seq in [11, 75, 76, 140, 200] {
            assert_eq!(admit(&mut w, 1, seq), Ok(()));
        }
        for seq in [1, 10, 11, 75, 76, 140, 200] {
            assert_eq!(admit(&mut w, 1, seq), Err(Stale::Duplicate), "{seq}");
        }
        for seq in [1100, 1101] {
            assert_eq!(admit(&mut w, 1, seq), Ok(()));
        }
        for seq in [140, 200, 1100, 1101] {
            assert_eq!(admit(&mut w, 1, seq), Err(Stale::Duplicate), "{seq}");
        }
        assert_eq!(admit(&mut w, 1, 75), Err(Stale::TooOld { highest: 1101 }));
        assert_eq!(admit(&mut w, 1, 150), Ok(()), "inside the window, unseen");
        assert_eq!(
            admit(&mut w, 1, 77),
            Err(Stale::TooOld { highest: 1101 }),
            "1101 - 77 = 1024: just outside"
        );
        assert_eq!(admit(&mut w, 1, 78), Ok(()), "just inside");
    }

    #[test]
    fn a_new_incarnation_starts_over_and_an_old_one_is_refused() {
        let mut w = ReplayWindows::default();
        admit(&mut w, 5, 100).unwrap();
        assert_eq!(admit(&mut w, 6, 1), Ok(()));
        assert_eq!(
            admit(&mut w, 5, 101),
            Err(Stale::OldIncarnation { newest: 6 })
        );
        assert_eq!(admit(&mut w, 6, 1), Err(Stale::Duplicate));
        assert_eq!(w.incarnation(NodeId(1)), Some(6));
    }

    #[test]
    fn matches_a_set_model_on_random_input() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut w = ReplayWindows::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = (highest + 50).saturating_sub(x % 1400).max(1);
            let expect = if highest >= seq && highest - seq >= WINDOW {
                Err(Stale::TooOld { highest })
            } else if seen.contains(&seq) {
                Err(Stale::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(admit(&mut w, 1, seq), expect, "seq {seq} highest {highest}");
            if expect.is_ok() {
                seen.insert(seq);
                highest = highest.max(seq);
            }
        }
    }
}
