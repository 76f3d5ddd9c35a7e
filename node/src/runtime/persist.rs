//! Durable state: every [`Persist`] record appended as one checksummed line to
//! `<dir>/state.jsonl` (format and reading rules: [`super::state_file`]) and fsynced by the
//! [`super::writer`] thread, once per batch. At start the file is replayed.
//!
//! Beside it, `<dir>/state.mark` holds a length the file is known to have been durable at,
//! rewritten (atomically, by rename) at most once a second and at a graceful stop. A crash can
//! only tear bytes beyond it; a file shorter than its mark was cut by something else.
//!
//! A [`Persist::Checkpoint`] (the node took or installed a snapshot) replaces the file: it
//! holds everything before it, so the file is rewritten as that one record (write beside,
//! fsync, rename, fsync the directory; see [`Store::replace_with`]) and records go on being
//! appended after it. The file stays about one snapshot plus a tail long.
//!
//! A data directory that has a node id but no hard state (epoch and vote) lost it: the node
//! could vote a second time in an epoch it already voted in, so it starts only with
//! `--accept-data-loss`. A fresh directory gets an explicit epoch-0 hard state before its node
//! id is written, so "no hard state" never means "never voted".

use super::compaction::{Compaction, COMPACT_FILE};
use super::identity::ID_FILE;
use super::state_file::{self, Damage, Parsed};
use crate::core::{Persist, Restored};
use crate::events::Event;
use anyhow::{bail, Context};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the state file inside the data directory.
pub const STATE_FILE: &str = "state.jsonl";
/// Name of the file that holds the state file's last known durable length.
pub const MARK_FILE: &str = "state.mark";
/// How often the mark is brought up to date while records are written.
pub const MARK_EVERY: Duration = Duration::from_secs(1);

/// The mark's content.
#[derive(serde::Serialize, serde::Deserialize)]
struct Mark {
    durable_bytes: u64,
}

/// Where persisted records go: a file, or nowhere (memory-only node).
pub struct Store {
    file: Option<File>,
    dir: Option<PathBuf>,
    unsynced: bool,
    /// Bytes in the file, and how many of them are fsynced and marked.
    len: u64,
    synced_len: u64,
    marked_len: u64,
    marked_at: Option<Instant>,
    /// fsync calls and bytes appended since the store was opened (`io_stats`).
    fsyncs: u64,
    written: u64,
    /// A rewrite behind a snapshot this node took, going on beside the appends.
    compaction: Option<Compaction>,
}

/// What [`Store::open`] found.
pub struct Opened {
    pub store: Store,
    pub restored: Restored,
    /// Records replayed.
    pub records: usize,
    /// `state_repaired` events to write once the node has announced itself.
    pub notices: Vec<Event>,
}

impl Store {
    /// A store that keeps nothing (no `--data-dir`).
    pub fn memory() -> Store {
        Store {
            file: None,
            dir: None,
            unsynced: false,
            len: 0,
            synced_len: 0,
            marked_len: 0,
            marked_at: None,
            fsyncs: 0,
            written: 0,
            compaction: None,
        }
    }

    /// Opens (creating) `<dir>/state.jsonl` and replays it under the rules of
    /// [`state_file::parse`]: a torn last record is cut; damage anywhere else, a file cut
    /// short, or a node id without hard state refuses the start, unless `accept_data_loss`
    /// (then the good records before the damage are kept and the rest is dropped).
    pub fn open(dir: &Path, accept_data_loss: bool) -> anyhow::Result<Opened> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // A rewrite that crashed before its rename (torn or not): never the state, drop it.
        let _ = std::fs::remove_file(dir.join(format!("{STATE_FILE}.tmp")));
        let _ = std::fs::remove_file(dir.join(COMPACT_FILE));
        let has_id = dir.join(ID_FILE).exists();
        let durable = read_mark(dir)?;
        let file_name = path.display().to_string();
        let mut notices = Vec::new();
        let mut rewrite = false;
        let parsed = match state_file::parse(&text, durable as usize) {
            Ok(parsed) => parsed,
            Err(damage) if accept_data_loss => {
                let kept = state_file::parse(&text[..damage.offset], 0)
                    .expect("the prefix before the damage parses");
                tracing::warn!(
                    "{file_name} line {}: {}; --accept-data-loss: keeping the {} records before it",
                    damage.line,
                    damage.why,
                    damage.good_records
                );
                notices.push(Event::StateRepaired {
                    action: "data_loss_accepted".into(),
                    file: file_name.clone(),
                    line: damage.line as u64,
                    bytes: (text.len() - damage.offset) as u64,
                    detail: damage.why.clone(),
                });
                rewrite = true;
                kept
            }
            Err(damage) => bail!(refusal(&file_name, &damage)),
        };
        let Parsed {
            mut records,
            good_len,
            torn,
            legacy,
        } = parsed;
        if let Some(t) = &torn {
            tracing::warn!(
                "{file_name}: cutting a torn last record (line {}, {} bytes: {})",
                t.line,
                t.bytes,
                t.why
            );
            notices.push(Event::StateRepaired {
                action: "cut_torn_tail".into(),
                file: file_name.clone(),
                line: t.line as u64,
                bytes: t.bytes as u64,
                detail: t.why.clone(),
            });
        }
        if legacy {
            tracing::info!("{file_name}: written before checksums; rewriting it with them");
            notices.push(Event::StateRepaired {
                action: "upgraded".into(),
                file: file_name.clone(),
                line: records.len() as u64,
                bytes: good_len as u64,
                detail: "records without checksums rewritten with CRC32C".into(),
            });
            rewrite = true;
        }
        let has_hard_state = records
            .iter()
            .any(|r| matches!(r, Persist::HardState { .. } | Persist::Checkpoint { .. }));
        let mut append_hard_state = false;
        if !has_hard_state {
            if has_id && !accept_data_loss {
                bail!(
                    "{file_name} holds no epoch or vote, but {} has a node id: this node's hard state was lost, and started without it the node could vote twice in an epoch it already voted in (two leaders in one epoch). Restore the data directory from a backup; or, if the state is gone for good and the rest of the cluster holds a majority, start once with --accept-data-loss",
                    dir.join(ID_FILE).display()
                );
            }
            if has_id {
                tracing::warn!("{file_name}: no hard state; --accept-data-loss: starting at epoch 0 with no vote");
                notices.push(Event::StateRepaired {
                    action: "data_loss_accepted".into(),
                    file: file_name.clone(),
                    line: records.len() as u64 + 1,
                    bytes: 0,
                    detail: "no epoch or vote for a node that has an id".into(),
                });
            }
            // A fresh directory (or an accepted loss): an explicit hard state, so that from
            // now on its absence always means loss.
            append_hard_state = true;
        }
        let restored = Restored::replay(&records);
        if append_hard_state {
            records.push(Persist::HardState {
                epoch: restored.epoch,
                voted_for: None,
            });
        }
        let len = if rewrite {
            // The rewritten file may be shorter than the old mark: lower the mark first.
            write_mark(dir, 0)
                .with_context(|| format!("writing {}", dir.join(MARK_FILE).display()))?;
            rewrite_file(dir, &records)?
        } else {
            good_len as u64
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !rewrite && torn.is_some() {
            file.set_len(good_len as u64)?;
            file.sync_data()?;
        }
        let mut store = Store {
            file: None,
            dir: Some(dir.to_path_buf()),
            unsynced: false,
            len,
            synced_len: len,
            marked_len: durable,
            marked_at: None,
            fsyncs: 0,
            written: 0,
            compaction: None,
        };
        if append_hard_state && !rewrite {
            let line = state_file::encode(records.last().expect("just pushed"));
            file.write_all(&line)
                .with_context(|| format!("writing {}", path.display()))?;
            file.sync_data()
                .with_context(|| format!("fsync {}", path.display()))?;
            store.len += line.len() as u64;
            store.synced_len = store.len;
        }
        store.file = Some(file);
        // What is there now is durable: mark it, so a later cut below it is caught.
        store.mark();
        Ok(Opened {
            store,
            restored,
            records: records.len(),
            notices,
        })
    }

    /// Appends one record (buffered in the kernel until [`Store::sync`]).
    pub fn append(&mut self, record: &Persist) -> anyhow::Result<()> {
        self.append_all(std::iter::once(record))
    }

    /// Appends records with one `write`: on the container's filesystem (fuse-overlayfs)
    /// every write is a round trip through the FUSE daemon, so a group commit writes once.
    /// A checkpoint of a snapshot this node took starts a rewrite in the background
    /// ([`super::compaction`]) and appending goes on; any other checkpoint replaces the whole
    /// file at once ([`Store::replace_with`]). What follows a checkpoint goes after it.
    pub fn append_all<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Persist>,
    ) -> anyhow::Result<()> {
        if self.file.is_none() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for record in records {
            match record {
                Persist::Checkpoint {
                    in_background: true,
                    ..
                } => {
                    // The records before it stay the file's truth until the new file
                    // takes its place: they are written, not superseded.
                    self.write(&mut buf)?;
                    self.settle_compaction(true)?;
                    let dir = self.dir.clone().expect("a file has a directory");
                    self.compaction = Some(Compaction::start(&dir, record.clone()));
                }
                Persist::Checkpoint { .. } => {
                    // It supersedes what is buffered before it: that need not be written at
                    // all, and neither does a rewrite in progress.
                    buf.clear();
                    if let Some(c) = self.compaction.take() {
                        c.abandon();
                    }
                    self.replace_with(record)?;
                }
                _ => buf.extend_from_slice(&state_file::encode(record)),
            }
        }
        self.write(&mut buf)
    }

    /// Appends `buf` (emptying it) to the file, and to the rewrite's copy if one is going on.
    fn write(&mut self, buf: &mut Vec<u8>) -> anyhow::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = self.display();
        let file = self.file.as_mut().expect("checked by the caller");
        file.write_all(buf)
            .with_context(|| format!("writing {path}"))?;
        if let Some(c) = self.compaction.as_mut() {
            c.appended(buf);
        }
        self.unsynced = true;
        self.len += buf.len() as u64;
        self.written += buf.len() as u64;
        buf.clear();
        Ok(())
    }

    /// Whether a rewrite is going on (the writer then looks again soon).
    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Puts a finished rewrite in the old file's place (`wait`: waits for it first); the
    /// writer calls it after each batch and when quiet. The mark goes to 0 before the rename
    /// and to the new length after, as in [`Store::replace_with`].
    pub fn settle_compaction(&mut self, wait: bool) -> anyhow::Result<()> {
        let ready = self
            .compaction
            .as_ref()
            .is_some_and(|c| wait || c.is_done());
        let (true, Some(dir)) = (ready, self.dir.clone()) else {
            return Ok(());
        };
        let finished = self.compaction.take().expect("ready").finish()?;
        let checkpoint_len = finished.checkpoint_len();
        self.swap_in(&dir, |path| finished.complete(path))?;
        self.written += checkpoint_len;
        self.fsyncs += 3;
        Ok(())
    }

    /// Puts a new state file in place: the mark goes to 0 first (the new file may be shorter
    /// than the old one it vouched for), `write` puts the file at the path it is given and
    /// returns its length, then the file is reopened for appending and marked.
    fn swap_in(
        &mut self,
        dir: &Path,
        write: impl FnOnce(&Path) -> anyhow::Result<u64>,
    ) -> anyhow::Result<u64> {
        write_mark(dir, 0).with_context(|| format!("writing {}", dir.join(MARK_FILE).display()))?;
        self.marked_len = 0;
        let path = dir.join(STATE_FILE);
        let len = write(&path)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        self.file = Some(file);
        self.unsynced = false;
        self.len = len;
        self.synced_len = len;
        self.mark();
        Ok(len)
    }

    /// Replaces the file with `checkpoint` alone, durably, before anything after it is
    /// appended: it holds everything the records before it said (the core's
    /// `Persist::Checkpoint`), so the file stays about one snapshot plus its tail long. Records
    /// appended to the old file and not yet synced are superseded by it too.
    ///
    /// Crash safety: the mark goes to 0 first (the new file is shorter than the old one it
    /// vouched for), then the new file is written beside the old one, fsynced, renamed over
    /// it and the directory fsynced ([`rewrite_file`]), then marked. A crash before the
    /// rename leaves the old file (and perhaps a torn `state.jsonl.tmp`, never read), after
    /// it the new one; with mark 0 either way until the new mark is written.
    fn replace_with(&mut self, checkpoint: &Persist) -> anyhow::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let len = self.swap_in(&dir, |_| {
            rewrite_file(&dir, std::slice::from_ref(checkpoint))
        })?;
        self.written += len;
        self.fsyncs += 2;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        if let (Some(file), true) = (self.file.as_ref(), self.unsynced) {
            file.sync_data()
                .with_context(|| format!("fsync {}", self.display()))?;
            self.unsynced = false;
            self.fsyncs += 1;
            self.synced_len = self.len;
            self.tick();
        }
        Ok(())
    }

    /// Brings the mark up to date if it is behind and [`MARK_EVERY`] has passed (the
    /// driver calls this every tick, so an idle node's mark catches up too).
    pub fn tick(&mut self) {
        let due = self.marked_at.is_none_or(|at| at.elapsed() >= MARK_EVERY);
        if due && self.synced_len > self.marked_len {
            self.mark();
        }
    }

    /// Writes the mark now (a graceful stop; tests).
    pub fn mark(&mut self) {
        let Some(dir) = &self.dir else {
            return;
        };
        match write_mark(dir, self.synced_len) {
            Ok(()) => {
                self.marked_len = self.synced_len;
                self.marked_at = Some(Instant::now());
            }
            // Only the cut-file check depends on it; the records themselves are durable.
            Err(e) => tracing::warn!("{}: {e:#}", dir.join(MARK_FILE).display()),
        }
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
        self.dir
            .as_ref()
            .map(|d| d.join(STATE_FILE).display().to_string())
            .unwrap_or_default()
    }
}

/// Why the start is refused, and what to do about it.
fn refusal(file: &str, damage: &Damage) -> String {
    format!(
        "{file} line {}: {}. A crash can only tear the last record, so the file was damaged or edited after it was written, and the node refuses to start rather than forget votes or entries it acknowledged. Restore the data directory from a backup; or, if it cannot be restored and the rest of the cluster holds a majority, start once with --accept-data-loss to keep the {} records before line {} and drop the rest (the node may then vote twice in an epoch and forget entries it had acknowledged)",
        damage.line, damage.why, damage.good_records, damage.line
    )
}

/// The mark's durable length, 0 without one.
fn read_mark(dir: &Path) -> anyhow::Result<u64> {
    let path = dir.join(MARK_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    match state_file::decode::<Mark>(line) {
        Ok(mark) => Ok(mark.durable_bytes),
        Err(why) => bail!(
            "{} is damaged ({why}): it only guards against a state file cut short; remove it to start without that check",
            path.display()
        ),
    }
}

/// Replaces the mark (write, fsync, rename: never a half-written mark). Losing the rename in
/// a crash leaves the older, smaller mark, which is still true.
fn write_mark(dir: &Path, durable_bytes: u64) -> anyhow::Result<()> {
    let tmp = dir.join(format!("{MARK_FILE}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(&state_file::encode(&Mark { durable_bytes }))?;
    f.sync_data()?;
    std::fs::rename(&tmp, dir.join(MARK_FILE))?;
    Ok(())
}

/// Replaces the state file with `records` (write, fsync, rename, fsync the directory, so the
/// mark written next never outlives it); returns its length.
fn rewrite_file(dir: &Path, records: &[Persist]) -> anyhow::Result<u64> {
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let bytes: Vec<u8> = records.iter().flat_map(state_file::encode).collect();
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
        std::fs::rename(&tmp, dir.join(STATE_FILE))?;
        File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("rewriting {}", dir.join(STATE_FILE).display()))?;
    Ok(bytes.len() as u64)
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

    fn hard(epoch: u64) -> Persist {
        Persist::HardState {
            epoch,
            voted_for: Some(NodeId(2)),
        }
    }

    /// A data directory as a node leaves it: its id, `records` written and synced, the mark
    /// brought up to date (as a graceful stop or a second of quiet does).
    fn node_dir(name: &str, records: &[Persist]) -> PathBuf {
        let dir = temp_dir(name);
        let mut opened = Store::open(&dir, false).unwrap();
        std::fs::write(dir.join(ID_FILE), "7\n").unwrap();
        for r in records {
            opened.store.append(r).unwrap();
        }
        opened.store.sync().unwrap();
        opened.store.mark();
        dir
    }

    fn refusal_of(dir: &Path) -> String {
        match Store::open(dir, false) {
            Ok(_) => panic!("{} opened", dir.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    fn actions(notices: &[Event]) -> Vec<String> {
        notices
            .iter()
            .map(|e| match e {
                Event::StateRepaired { action, .. } => action.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_fresh_directory_gets_an_explicit_hard_state_and_replays_what_was_written() {
        let dir = node_dir("fresh", &[hard(4)]);
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(
            text.lines().next().unwrap().contains(r#""epoch":0"#),
            "{text}"
        );
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!(opened.records, 2);
        assert_eq!(
            (opened.restored.epoch, opened.restored.voted_for),
            (4, Some(NodeId(2)))
        );
        assert!(opened.notices.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_record_is_cut_with_an_event() {
        let dir = node_dir("torn", &[hard(4)]);
        // A crash in the middle of the next write.
        let path = dir.join(STATE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"r":{"p":"hard_state","epo"#).unwrap();
        drop(f);

        let mut opened = Store::open(&dir, false).unwrap();
        assert_eq!(opened.records, 2);
        assert_eq!(opened.restored.epoch, 4);
        assert_eq!(actions(&opened.notices), ["cut_torn_tail"]);
        match &opened.notices[0] {
            Event::StateRepaired { line, bytes, .. } => assert_eq!((*line, *bytes), (3, 27)),
            _ => unreachable!(),
        }
        opened.store.append(&hard(5)).unwrap();
        opened.store.sync().unwrap();
        // The torn bytes are gone, so the new record is a line of its own.
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!((opened.restored.epoch, opened.records), (5, 3));
        assert!(opened.notices.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_record_edited_into_valid_json_refuses_the_start_with_file_and_line() {
        let dir = node_dir("edited", &[hard(4), hard(5)]);
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(r#""epoch":4"#, r#""epoch":40"#, 1)).unwrap();
        let err = refusal_of(&dir);
        assert!(
            err.contains(&format!("{} line 2:", path.display())),
            "{err}"
        );
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("--accept-data-loss"), "{err}");
        // The last line, edited: already durable (marked), so not a torn write either.
        std::fs::write(&path, text.replacen(r#""epoch":5"#, r#""epoch":50"#, 1)).unwrap();
        let err = refusal_of(&dir);
        assert!(
            err.contains("line 3:") && err.contains("not a torn write"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_cut_in_half_refuses_the_start() {
        let records: Vec<Persist> = (1..=20).map(hard).collect();
        let dir = node_dir("half", &records);
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).unwrap();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let err = refusal_of(&dir);
        assert!(err.contains("cut short"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_emptied_file_with_the_node_id_kept_refuses_the_start() {
        let dir = node_dir("emptied", &[hard(3)]);
        std::fs::write(dir.join(STATE_FILE), b"").unwrap();
        let err = refusal_of(&dir);
        assert!(err.contains("cut short"), "{err}");
        // Without the mark too (state.jsonl and state.mark both gone): the id alone says a
        // hard state existed.
        std::fs::remove_file(dir.join(MARK_FILE)).unwrap();
        std::fs::remove_file(dir.join(STATE_FILE)).unwrap();
        let err = refusal_of(&dir);
        assert!(
            err.contains("holds no epoch or vote") && err.contains("vote twice"),
            "{err}"
        );
        assert!(err.contains("--accept-data-loss"), "{err}");
        // With the flag it starts at epoch 0, with no vote, and says so; the next start is a
        // normal one.
        let opened = Store::open(&dir, true).unwrap();
        assert_eq!(
            (opened.restored.epoch, opened.restored.voted_for),
            (0, None)
        );
        assert_eq!(actions(&opened.notices), ["data_loss_accepted"]);
        drop(opened);
        assert!(Store::open(&dir, false).unwrap().notices.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn accept_data_loss_keeps_the_records_before_the_damage() {
        let dir = node_dir("accept", &[hard(4), hard(5), hard(6)]);
        let path = dir.join(STATE_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen(r#""epoch":5"#, r#""epoch":9"#, 1)).unwrap();
        assert!(refusal_of(&dir).contains("keep the 2 records before line 3"));
        let opened = Store::open(&dir, true).unwrap();
        assert_eq!((opened.records, opened.restored.epoch), (2, 4));
        assert_eq!(actions(&opened.notices), ["data_loss_accepted"]);
        drop(opened);
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!((opened.records, opened.restored.epoch), (2, 4));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_round_one_file_without_checksums_is_upgraded_once() {
        let dir = temp_dir("legacy");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(ID_FILE), "7\n").unwrap();
        std::fs::write(
            dir.join(STATE_FILE),
            "{\"p\":\"hard_state\",\"epoch\":3,\"voted_for\":1}\n{\"p\":\"truncate_from\",\"from\":1}\n",
        )
        .unwrap();
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!((opened.records, opened.restored.epoch), (2, 3));
        assert_eq!(actions(&opened.notices), ["upgraded"]);
        drop(opened);
        let text = std::fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(text.lines().all(|l| l.starts_with(r#"{"r":"#)), "{text}");
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!((opened.records, opened.restored.epoch), (2, 3));
        assert!(opened.notices.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn checkpoint(index: u64, tail: u64) -> Persist {
        use crate::core::chat::ChatOp;
        use crate::core::snapshot::Snapshot;
        use crate::core::LogEntry;
        let mut chat = crate::core::chat::ChatState::default();
        chat.apply(
            1,
            &ChatOp::Login {
                user: "alice".into(),
                session: "s".into(),
                password_hash: None,
            },
        );
        Persist::Checkpoint {
            epoch: 6,
            voted_for: Some(NodeId(2)),
            snapshot: std::sync::Arc::new(Snapshot {
                index,
                epoch: 5,
                chat,
            }),
            log_start: (index, 5),
            entries: (index + 1..=index + tail)
                .map(|i| LogEntry {
                    index: i,
                    epoch: 6,
                    op: ChatOp::NewEpoch,
                    origin: None,
                })
                .collect(),
            in_background: false,
        }
    }

    fn append(index: u64) -> Persist {
        Persist::Append {
            entries: vec![crate::core::LogEntry {
                index,
                epoch: 6,
                op: crate::core::chat::ChatOp::NewEpoch,
                origin: None,
            }],
        }
    }

    #[test]
    fn a_checkpoint_replaces_the_file_and_a_restart_loads_it_then_the_tail() {
        let mut records: Vec<Persist> = (1..=50).map(hard).collect();
        records.extend((1..=200).map(append));
        let dir = node_dir("checkpoint", &records);
        let before = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        let mut opened = Store::open(&dir, false).unwrap();
        assert_eq!(opened.restored.log.len(), 200);
        opened.store.append(&checkpoint(180, 20)).unwrap();
        opened.store.append(&append(201)).unwrap();
        opened.store.sync().unwrap();
        let after = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        assert!(after < before / 4, "{after} of {before} bytes");
        assert_eq!(
            read_mark(&dir).unwrap(),
            after - state_file::encode(&append(201)).len() as u64
        );
        drop(opened);
        let opened = Store::open(&dir, false).unwrap();
        assert!(opened.notices.is_empty(), "{:?}", opened.notices);
        assert_eq!(opened.records, 2);
        let r = opened.restored;
        assert_eq!((r.epoch, r.voted_for), (6, Some(NodeId(2))));
        assert_eq!(r.snapshot.as_ref().map(|s| s.index), Some(180));
        assert!(r.snapshot.as_ref().unwrap().chat.is_registered("alice"));
        assert_eq!(r.log_start, (180, 5));
        assert_eq!(
            (r.log.first().map(|e| e.index), r.last_index()),
            (Some(181), 201)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn in_background(mut record: Persist) -> Persist {
        if let Persist::Checkpoint { in_background, .. } = &mut record {
            *in_background = true;
        }
        record
    }

    /// A store over 30 appends whose snapshot at 20 is being rewritten in the background.
    fn rewriting(name: &str) -> (PathBuf, Opened) {
        let records: Vec<Persist> = (1..=30).map(append).collect();
        let dir = node_dir(name, &records);
        let mut opened = Store::open(&dir, false).unwrap();
        opened
            .store
            .append(&in_background(checkpoint(20, 10)))
            .unwrap();
        (dir, opened)
    }

    #[test]
    fn a_taken_snapshots_rewrite_goes_on_beside_the_appends_and_takes_their_tail_along() {
        let mut records: Vec<Persist> = (1..=50).map(hard).collect();
        records.extend((1..=200).map(append));
        let dir = node_dir("background", &records);
        let before = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        let mut opened = Store::open(&dir, false).unwrap();
        let store = &mut opened.store;
        store
            .append_all([append(201), in_background(checkpoint(180, 21))].iter())
            .unwrap();
        // Appends go on into the old file while the checkpoint is written beside it.
        let old_len = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        assert!(old_len > before, "append 201 went to the old file");
        for i in 202..=230 {
            store.append(&append(i)).unwrap();
            store.sync().unwrap();
        }
        assert!(
            store.compacting(),
            "put in place only when the writer settles it"
        );
        assert!(std::fs::metadata(dir.join(STATE_FILE)).unwrap().len() > old_len);
        store.settle_compaction(true).unwrap();
        assert!(!store.compacting());
        assert!(!dir.join(COMPACT_FILE).exists());
        let after = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        assert!(after < before / 2, "{after} of {before} bytes");
        // The swap marked the new file (it may have grown since: marks are once a second).
        let mark = read_mark(&dir).unwrap();
        let checkpoint_len = state_file::encode(&checkpoint(180, 21)).len() as u64;
        assert!(
            (checkpoint_len..=after).contains(&mark),
            "{mark} of {after}"
        );
        store.append(&append(231)).unwrap();
        store.sync().unwrap();
        drop(opened);
        let opened = Store::open(&dir, false).unwrap();
        assert!(opened.notices.is_empty(), "{:?}", opened.notices);
        assert_eq!(
            opened.records,
            1 + 29 + 1,
            "the checkpoint, the tail, the last append"
        );
        let r = opened.restored;
        assert_eq!(r.snapshot.as_ref().map(|s| s.index), Some(180));
        assert_eq!(
            (r.log.first().map(|e| e.index), r.last_index()),
            (Some(181), 231)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_crash_before_the_background_rewrite_is_in_place_replays_the_old_file() {
        let (dir, mut opened) = rewriting("background-crash");
        opened.store.append(&append(31)).unwrap();
        opened.store.sync().unwrap();
        // The process dies here: the rewrite is never put in place (its file may be whole).
        let compaction = opened.store.compaction.take().unwrap();
        let _ = compaction.finish().unwrap();
        assert!(dir.join(COMPACT_FILE).exists());
        drop(opened);
        let opened = Store::open(&dir, false).unwrap();
        assert!(
            !dir.join(COMPACT_FILE).exists(),
            "a leftover rewrite is dropped"
        );
        let r = opened.restored;
        assert_eq!(
            r.snapshot, None,
            "the old file holds the same state as its records"
        );
        assert_eq!(r.last_index(), 31);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_installed_snapshot_replaces_a_background_rewrite_in_progress() {
        let (dir, mut opened) = rewriting("background-superseded");
        opened.store.append(&checkpoint(500, 0)).unwrap();
        opened.store.sync().unwrap();
        assert!(!opened.store.compacting());
        assert!(!dir.join(COMPACT_FILE).exists());
        drop(opened);
        let r = Store::open(&dir, false).unwrap().restored;
        assert_eq!(r.snapshot.as_ref().map(|s| s.index), Some(500));
        assert_eq!(r.last_index(), 500);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rewrite_torn_before_its_rename_leaves_the_old_state_and_a_torn_tail_is_cut() {
        let records: Vec<Persist> = (1..=30).map(append).collect();
        let dir = node_dir("torn-rewrite", &records);
        // The crash hit while the new file was being written: half of it beside the old one.
        let line = state_file::encode(&checkpoint(20, 10));
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        std::fs::write(&tmp, &line[..line.len() / 2]).unwrap();
        let mut opened = Store::open(&dir, false).unwrap();
        assert!(opened.notices.is_empty());
        assert_eq!(
            (
                opened.restored.last_index(),
                opened.restored.snapshot.is_none()
            ),
            (30, true)
        );
        assert!(!tmp.exists(), "the torn rewrite is dropped");
        // Renamed and then a torn append after it: the checkpoint stands, the tear is cut.
        opened.store.append(&checkpoint(20, 10)).unwrap();
        opened.store.sync().unwrap();
        drop(opened);
        let path = dir.join(STATE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&state_file::encode(&append(31))[..10]).unwrap();
        drop(f);
        let opened = Store::open(&dir, false).unwrap();
        assert_eq!(actions(&opened.notices), ["cut_torn_tail"]);
        assert_eq!(opened.restored.snapshot.as_ref().map(|s| s.index), Some(20));
        assert_eq!(opened.restored.last_index(), 30);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_mark_follows_synced_records_at_most_once_a_second() {
        let dir = node_dir("mark", &[]);
        let mark = || read_mark(&dir).unwrap();
        let before = mark();
        let mut opened = Store::open(&dir, false).unwrap();
        opened.store.append(&hard(1)).unwrap();
        opened.store.sync().unwrap();
        // Marked at open less than a second ago: not yet.
        assert_eq!(mark(), before);
        opened.store.marked_at = Some(Instant::now() - MARK_EVERY);
        opened.store.tick();
        let len = std::fs::metadata(dir.join(STATE_FILE)).unwrap().len();
        assert_eq!(mark(), len);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
