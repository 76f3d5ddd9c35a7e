//! Durable state: every [`Persist`] record appended as one JSON line to `<dir>/state.jsonl` and
//! fsynced before the driver carries out any later output. At start the file is replayed.

use crate::core::{Persist, Restored};
use anyhow::{bail, Context};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the state file inside the data directory.
pub const STATE_FILE: &str = "state.jsonl";

/// Where persisted records go: a file, or nowhere (memory-only node).
pub struct Store {
    file: Option<File>,
    path: Option<PathBuf>,
    unsynced: bool,
    /// fsync calls and bytes appended since the store was opened (`io_stats`).
    fsyncs: u64,
    written: u64,
}

impl Store {
    /// A store that keeps nothing (no `--data-dir`).
    pub fn memory() -> Store {
        Store {
            file: None,
            path: None,
            unsynced: false,
            fsyncs: 0,
            written: 0,
        }
    }

    /// Opens (creating) `<dir>/state.jsonl` and replays it. A torn last line (a crash in the
    /// middle of a write) is cut off; a bad line before the end means the file was damaged
    /// some other way and the node refuses to start rather than forget votes or entries.
    pub fn open(dir: &Path) -> anyhow::Result<(Store, Restored, usize)> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let (records, good_len) = parse_records(&text)
            .with_context(|| format!("replaying {} (remove it to start empty)", path.display()))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if good_len < text.len() {
            tracing::warn!(
                "{}: cutting a torn last record ({} bytes)",
                path.display(),
                text.len() - good_len
            );
            file.set_len(good_len as u64)?;
            file.sync_data()?;
        }
        let restored = Restored::replay(&records);
        Ok((
            Store {
                file: Some(file),
                path: Some(path),
                unsynced: false,
                fsyncs: 0,
                written: 0,
            },
            restored,
            records.len(),
        ))
    }

    /// Appends one record (buffered in the kernel until [`Store::sync`]).
    pub fn append(&mut self, record: &Persist) -> anyhow::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        file.write_all(&line)
            .with_context(|| format!("writing {}", self.display()))?;
        self.unsynced = true;
        self.written += line.len() as u64;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        if let (Some(file), true) = (self.file.as_ref(), self.unsynced) {
            file.sync_data()
                .with_context(|| format!("fsync {}", self.display()))?;
            self.unsynced = false;
            self.fsyncs += 1;
        }
        Ok(())
    }

    /// fsync calls since the store was opened.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    /// Bytes appended since the store was opened.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn display(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Parses the records of a state file; returns them and the length of the good prefix.
fn parse_records(text: &[u8]) -> anyhow::Result<(Vec<Persist>, usize)> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < text.len() {
        let rest = &text[offset..];
        let Some(newline) = rest.iter().position(|b| *b == b'\n') else {
            // No newline: the last write was cut short.
            return Ok((records, offset));
        };
        let line = &rest[..newline];
        let is_last = offset + newline + 1 == text.len();
        match serde_json::from_slice::<Persist>(line) {
            Ok(p) => records.push(p),
            Err(_) if line.iter().all(u8::is_ascii_whitespace) => {}
            Err(_) if is_last => return Ok((records, offset)),
            Err(e) => bail!("record at byte {offset} is damaged: {e}"),
        }
        offset += newline + 1;
    }
    Ok((records, offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NodeId;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chat-node-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn replays_what_was_written_and_cuts_a_torn_tail() {
        let dir = temp_dir("torn");
        {
            let (mut store, restored, n) = Store::open(&dir).unwrap();
            assert_eq!((restored, n), (Restored::default(), 0));
            store
                .append(&Persist::HardState {
                    epoch: 4,
                    voted_for: Some(NodeId(2)),
                })
                .unwrap();
            store.sync().unwrap();
        }
        // A crash in the middle of the next write.
        let path = dir.join(STATE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"p":"hard_state","epo"#).unwrap();
        drop(f);

        let (mut store, restored, n) = Store::open(&dir).unwrap();
        assert_eq!(n, 1);
        assert_eq!(restored.epoch, 4);
        assert_eq!(restored.voted_for, Some(NodeId(2)));
        store
            .append(&Persist::HardState {
                epoch: 5,
                voted_for: None,
            })
            .unwrap();
        store.sync().unwrap();
        // The torn bytes are gone, so the new record is a line of its own.
        let (_, restored, n) = Store::open(&dir).unwrap();
        assert_eq!((restored.epoch, restored.voted_for, n), (5, None, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_a_damaged_middle_record_but_not_a_torn_last_one() {
        let good = br#"{"p":"hard_state","epoch":1,"voted_for":null}"#;
        let damaged = [&good[..], b"\ngarbage\n", &good[..], b"\n"].concat();
        assert!(parse_records(&damaged).is_err());
        let torn = [&good[..], b"\n", &good[..10], b"\n"].concat();
        let (records, len) = parse_records(&torn).unwrap();
        assert_eq!((records.len(), len), (1, good.len() + 1));
    }
}
