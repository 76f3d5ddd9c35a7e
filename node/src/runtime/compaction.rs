//! Rewriting the state file behind a snapshot the node took, without holding up appends.
//!
//! Why: the rewrite (encode the snapshot and the log after it, write, fsync, rename, fsync the
//! directory) holds the writer thread, and with it every acknowledgement that waits for
//! durability, for as long as it takes, and that grows with the chat state (every mailbox,
//! every user). In `harness bench` (8 users, a checkpoint of a few MB every 0.7 s) moving it off
//! the writer changed nothing measurable; it is there so that a large state cannot hold up
//! commits. A snapshot the node took of its own applied log is implied by what is already in
//! the file, so nothing has to wait for it: a thread of its own writes the
//! checkpoint to `state.jsonl.compact` and fsyncs it, while the writer goes on appending to
//! `state.jsonl` and keeps a copy of what it appended since. When the thread is done the writer
//! appends that copy to the new file, fsyncs it and renames it over the old one
//! ([`Finished::complete`]): the file it replaces holds the same state, so a crash at any
//! point leaves a whole state either way.

use crate::core::Persist;
use anyhow::Context;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// Name of the new file while it is being written (a leftover is dropped at start).
pub const COMPACT_FILE: &str = "state.jsonl.compact";

/// A rewrite in progress.
pub struct Compaction {
    thread: JoinHandle<anyhow::Result<(File, u64)>>,
    /// What was appended to the old file after the checkpoint, to go after it in the new one.
    since: Vec<u8>,
    path: PathBuf,
}

/// A rewrite whose checkpoint is written and fsynced, ready to take the old file's place.
pub struct Finished {
    file: File,
    checkpoint_len: u64,
    since: Vec<u8>,
    path: PathBuf,
}

impl Compaction {
    /// Starts writing `checkpoint` into `dir`'s compact file on a thread of its own.
    pub fn start(dir: &Path, checkpoint: Persist) -> Compaction {
        let path = dir.join(COMPACT_FILE);
        let target = path.clone();
        let thread = std::thread::Builder::new()
            .name("state-compaction".into())
            .spawn(move || write_checkpoint(&target, &checkpoint))
            .expect("spawning the state compaction thread");
        Compaction {
            thread,
            since: Vec::new(),
            path,
        }
    }

    /// `bytes` were appended to the old file after the checkpoint.
    pub fn appended(&mut self, bytes: &[u8]) {
        self.since.extend_from_slice(bytes);
    }

    pub fn is_done(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread.
    pub fn finish(self) -> anyhow::Result<Finished> {
        let (file, checkpoint_len) = self
            .thread
            .join()
            .map_err(|_| anyhow::anyhow!("the state compaction thread panicked"))??;
        Ok(Finished {
            file,
            checkpoint_len,
            since: self.since,
            path: self.path,
        })
    }

    /// Gives the rewrite up (a checkpoint that supersedes it came): waits for the thread and
    /// removes its file.
    pub fn abandon(self) {
        let _ = self.thread.join();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Finished {
    /// Appends what came after the checkpoint, fsyncs, renames the new file over `state`
    /// and fsyncs the directory. Returns the new file's length; the caller lowers the mark
    /// first (the new file may be shorter than the old one it vouched for).
    pub fn complete(mut self, state: &Path) -> anyhow::Result<u64> {
        let dir = state.parent().unwrap_or(Path::new("."));
        let mut done = || -> std::io::Result<()> {
            self.file.write_all(&self.since)?;
            self.file.sync_data()?;
            std::fs::rename(&self.path, state)?;
            File::open(dir)?.sync_all()
        };
        done().with_context(|| format!("compacting {}", state.display()))?;
        Ok(self.checkpoint_len + self.since.len() as u64)
    }

    /// Bytes of the checkpoint record itself.
    pub fn checkpoint_len(&self) -> u64 {
        self.checkpoint_len
    }
}

fn write_checkpoint(path: &Path, checkpoint: &Persist) -> anyhow::Result<(File, u64)> {
    let bytes = super::state_file::encode(checkpoint);
    let write = || -> std::io::Result<File> {
        let mut f = File::create(path)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        Ok(f)
    };
    let file = write().with_context(|| format!("writing {}", path.display()))?;
    Ok((file, bytes.len() as u64))
}
