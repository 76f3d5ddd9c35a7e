//! The in-memory replicated log (indexes start at 1; index 0 has epoch 0). Compaction drops
//! a prefix (it is in a snapshot, [`crate::core::snapshot`]): the log then starts after
//! `offset`, and remembers the epoch of the entry at `offset` so that an Append right after
//! it can still be checked (log matching).

use super::durable::LogEntry;

#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Entries up to here were compacted away; `entries[0]` has index `offset + 1`.
    offset: u64,
    offset_epoch: u64,
    entries: Vec<LogEntry>,
}

impl Log {
    /// A log that starts after `(offset, offset_epoch)` with `entries` (contiguous by
    /// construction: `Restored::apply` keeps them so).
    pub fn from_entries(offset: u64, offset_epoch: u64, entries: Vec<LogEntry>) -> Log {
        Log {
            offset,
            offset_epoch,
            entries,
        }
    }

    /// Index and epoch of the last compacted entry ((0, 0): nothing compacted).
    pub fn start(&self) -> (u64, u64) {
        (self.offset, self.offset_epoch)
    }

    pub fn last_index(&self) -> u64 {
        self.offset + self.entries.len() as u64
    }

    pub fn last_epoch(&self) -> u64 {
        self.entries.last().map_or(self.offset_epoch, |e| e.epoch)
    }

    /// Epoch of the entry at `index`; `Some(0)` for index 0, the remembered epoch at the
    /// compaction point, `None` past the end or before it.
    pub fn epoch_at(&self, index: u64) -> Option<u64> {
        if index == self.offset {
            return Some(self.offset_epoch);
        }
        self.get(index).map(|e| e.epoch)
    }

    pub fn get(&self, index: u64) -> Option<&LogEntry> {
        if index <= self.offset {
            return None;
        }
        self.entries.get((index - self.offset) as usize - 1)
    }

    /// The entries held, in order.
    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// Drops every entry up to `index` (kept in a snapshot). `epoch` is the epoch of the
    /// entry at `index`: a compaction point beyond the log (an installed snapshot the log
    /// does not reach, or whose entry there conflicts) empties the log.
    pub fn compact_to(&mut self, index: u64, epoch: u64) {
        if index <= self.offset {
            return;
        }
        if self.epoch_at(index) == Some(epoch) {
            self.entries.drain(..(index - self.offset) as usize);
        } else {
            self.entries.clear();
        }
        self.offset = index;
        self.offset_epoch = epoch;
    }

    pub fn push(&mut self, entry: LogEntry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Removes every entry with `index >= from` (never a compacted one: those are committed).
    pub fn truncate_from(&mut self, from: u64) {
        let keep = from.saturating_sub(1).saturating_sub(self.offset) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
    }

    /// Entries from `from` on, at most `max_count` of them and about `max_bytes` of JSON
    /// (always at least one when any exist, so a big entry still moves).
    pub fn batch_from(&self, from: u64, max_count: usize, max_bytes: usize) -> Vec<LogEntry> {
        let start = from.max(self.offset + 1) - self.offset - 1;
        let start = start as usize;
        let mut out = Vec::new();
        let mut bytes = 0;
        for e in self.entries.iter().skip(start).take(max_count) {
            let size = serde_json::to_vec(e).map_or(0, |v| v.len());
            if !out.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            out.push(e.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::chat::ChatOp;

    fn entry(index: u64, epoch: u64) -> LogEntry {
        LogEntry {
            index,
            epoch,
            op: ChatOp::NewEpoch,
            origin: None,
        }
    }

    #[test]
    fn appends_truncates_and_batches() {
        let mut log = Log::default();
        for i in 1..=5 {
            log.push(entry(i, 1 + i / 3));
        }
        assert_eq!(log.last_index(), 5);
        assert_eq!(log.epoch_at(0), Some(0));
        assert_eq!(log.epoch_at(3), Some(2));
        assert_eq!(log.epoch_at(6), None);
        assert_eq!(log.batch_from(2, 2, 1 << 20).len(), 2);
        assert_eq!(log.batch_from(5, 64, 1).len(), 1, "at least one entry");
        log.truncate_from(3);
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.last_epoch(), 1);
    }

    #[test]
    fn compaction_keeps_indexes_and_the_epoch_at_the_compaction_point() {
        let mut log = Log::default();
        for i in 1..=6 {
            log.push(entry(i, 1 + i / 4));
        }
        log.compact_to(4, 2);
        assert_eq!(log.start(), (4, 2));
        assert_eq!((log.last_index(), log.entries().len()), (6, 2));
        assert_eq!(log.get(4), None, "compacted");
        assert_eq!(log.epoch_at(4), Some(2), "still checkable by an Append");
        assert_eq!(log.epoch_at(3), None);
        assert_eq!(log.get(5).map(|e| e.index), Some(5));
        assert_eq!(
            log.batch_from(1, 64, 1 << 20).len(),
            2,
            "from the start held"
        );
        log.truncate_from(2);
        assert_eq!(
            log.last_index(),
            4,
            "a truncation never reaches below the compaction"
        );
        log.push(entry(5, 3));
        // A snapshot the log does not match (another epoch at 5) empties it.
        log.compact_to(5, 2);
        assert_eq!((log.last_index(), log.last_epoch()), (5, 2));
        assert!(log.entries().is_empty());
        log.compact_to(9, 4);
        assert_eq!(
            (log.last_index(), log.last_epoch(), log.start()),
            (9, 4, (9, 4))
        );
    }
}
