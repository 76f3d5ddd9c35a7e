//! The in-memory replicated log (indexes start at 1; index 0 has epoch 0).

use super::durable::LogEntry;

#[derive(Clone, Debug, Default)]
pub struct Log {
    entries: Vec<LogEntry>,
}

impl Log {
    pub fn from_entries(entries: Vec<LogEntry>) -> Log {
        // A restored log is contiguous by construction (Restored::apply keeps it so).
        Log { entries }
    }

    pub fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    pub fn last_epoch(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    /// Epoch of the entry at `index`; `Some(0)` for index 0, `None` past the end.
    pub fn epoch_at(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.get(index).map(|e| e.epoch)
    }

    pub fn get(&self, index: u64) -> Option<&LogEntry> {
        if index == 0 {
            return None;
        }
        self.entries.get(index as usize - 1)
    }

    pub fn push(&mut self, entry: LogEntry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Removes every entry with `index >= from`.
    pub fn truncate_from(&mut self, from: u64) {
        let keep = from.saturating_sub(1) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
    }

    /// Entries from `from` on, at most `max_count` of them and about `max_bytes` of JSON
    /// (always at least one when any exist, so a big entry still moves).
    pub fn batch_from(&self, from: u64, max_count: usize, max_bytes: usize) -> Vec<LogEntry> {
        let start = from.max(1) as usize - 1;
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
}
