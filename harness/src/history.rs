//! The history: one JSON object per line in `history.jsonl`, merging node events, the
//! harness's fault operations, client operations and step outcomes. Every record has `ts_ms`
//! (Unix milliseconds; containers share the host's clock) and a `src` tag.

use chat_node::events::EventRecord;
use chat_node::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;

/// One line of the history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "src", rename_all = "snake_case")]
pub enum Record {
    /// A node's event, as the node wrote it.
    Node(EventRecord),
    /// A fault the harness injected (or repaired), recorded when the action took effect.
    Fault(FaultRecord),
    /// A simulated user's operation or observation.
    Client(ClientRecord),
    /// A step started, was met or failed.
    Step(StepRecord),
    /// Anything else the harness wants on the timeline.
    Harness(HarnessRecord),
}

impl Record {
    pub fn ts_ms(&self) -> u64 {
        match self {
            Record::Node(r) => r.ts_ms,
            Record::Fault(r) => r.ts_ms,
            Record::Client(r) => r.ts_ms,
            Record::Step(r) => r.ts_ms,
            Record::Harness(r) => r.ts_ms,
        }
    }

    /// One JSON line (no newline).
    pub fn to_line(&self) -> String {
        // Records hold only strings, numbers and lists: serialisation cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_line(line: &str) -> Result<Record, serde_json::Error> {
        serde_json::from_str(line.trim())
    }
}

/// What the nemesis did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    /// The cluster's containers were started (at the beginning of the run).
    Start,
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a graceful stop.
    Stop,
    /// cgroup freeze.
    Pause,
    Resume,
    /// The same container started again (same id, same address).
    Restart,
    /// The nodes in `groups` can only reach their own group.
    Partition,
    /// One-way: `nodes` (from) no longer reach `to`.
    Cut,
    /// `nodes` can reach nobody and nobody reaches them.
    Isolate,
    /// All partitions, cuts, isolations and link faults removed.
    Heal,
    /// Packets from `nodes` to `to` dropped at random (`link.percent`).
    Loss,
    /// Packets to `nodes` held for `link.ms` ± `link.jitter_ms` (reordered by the jitter).
    Delay,
    /// Traffic to `nodes` limited to `link.rate_bps`.
    Bandwidth,
    /// Packets to `nodes` delivered twice, `link.percent` in 100.
    Duplicate,
    /// An outsider (no member) replays and forges peer datagrams to `nodes` for
    /// `forge.for_ms` (`forge`: what and how fast). Nobody is cut: it must change nothing.
    Forge,
}

impl FaultAction {
    pub fn keyword(self) -> &'static str {
        match self {
            FaultAction::Start => "start",
            FaultAction::Kill => "kill",
            FaultAction::Stop => "stop",
            FaultAction::Pause => "pause",
            FaultAction::Resume => "resume",
            FaultAction::Restart => "restart",
            FaultAction::Partition => "partition",
            FaultAction::Cut => "cut",
            FaultAction::Isolate => "isolate",
            FaultAction::Heal => "heal",
            FaultAction::Loss => "loss",
            FaultAction::Delay => "delay",
            FaultAction::Bandwidth => "bandwidth",
            FaultAction::Duplicate => "duplicate",
            FaultAction::Forge => "forge",
        }
    }

    /// Actions that end a fault rather than start one.
    pub fn is_repair(self) -> bool {
        matches!(
            self,
            FaultAction::Resume | FaultAction::Restart | FaultAction::Heal
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    pub ts_ms: u64,
    pub action: FaultAction,
    /// The nodes acted on (for `cut`: the sending side).
    #[serde(default)]
    pub nodes: Vec<NodeId>,
    /// The step that did it (0-based); absent for the initial start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// For `partition`: the groups, every node in exactly one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<NodeId>>,
    /// For `cut` and `loss`: the receiving side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<NodeId>,
    /// For link faults (`loss`, `delay`, `bandwidth`): how bad the link is, and the
    /// mechanism that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkParams>,
    /// For `forge`: the outsider's kinds, rate, duration and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forge: Option<ForgeParams>,
}

/// A `forge` fault as started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeParams {
    pub kinds: Vec<String>,
    pub rate_per_s: u32,
    pub for_ms: u64,
    /// The outsider's address on the run's network.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub outsider: String,
    /// Seeds the outsider's choices.
    pub seed: u64,
}

/// A link fault's parameters as applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_bps: Option<u64>,
    /// What made it: `nft numgen`, `netem`, `nfqueue delayer`, `tbf`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mechanism: String,
}

/// A user's operation or observation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub ts_ms: u64,
    pub user: String,
    #[serde(flatten)]
    pub action: ClientAction,
}

/// What a user did or saw, tagged by `"action"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ClientAction {
    /// A send or post attempt (retries repeat the same id with a higher attempt).
    Send {
        id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        text_len: usize,
        attempt: u32,
    },
    /// The server acknowledged the message (committed on a majority).
    Acked {
        id: String,
        index: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room_seq: Option<u64>,
        #[serde(default)]
        duplicate: bool,
    },
    /// An attempt failed (error line, timeout, lost connection); the workload may retry.
    Failed {
        id: String,
        error: String,
    },
    /// A message arrived. `replay` is true for the mailbox replayed at login.
    Received {
        #[serde(flatten)]
        message: chat_node::protocol::InboxMessage,
        #[serde(default)]
        replay: bool,
    },
    /// Logged in on `node`; `mailbox` stored messages follow.
    Login {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
        #[serde(default)]
        mailbox: u64,
    },
    Logout,
    /// The scenario brought the user back (an `online` step, or the final drain).
    Online,
    /// The scenario took the user away (an `offline` step).
    Offline,
    /// A room join was acknowledged.
    Joined {
        room: String,
    },
    /// A room leave was acknowledged.
    Left {
        room: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Start,
    Met,
    Failed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub ts_ms: u64,
    /// 0-based step index.
    pub index: usize,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HarnessRecord {
    pub ts_ms: u64,
    pub msg: String,
}

/// The records of one run, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct History {
    records: Vec<Record>,
}

impl History {
    pub fn new() -> Self {
        History::default()
    }

    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records sorted by timestamp (stable: same-ms records keep arrival order).
    pub fn sorted(&self) -> Vec<Record> {
        let mut v = self.records.clone();
        v.sort_by_key(Record::ts_ms);
        v
    }

    /// Appends records to a JSONL file (creating it).
    pub fn append_to_file(path: &Path, records: &[Record]) -> std::io::Result<()> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut w = std::io::BufWriter::new(file);
        for r in records {
            writeln!(w, "{}", r.to_line())?;
        }
        w.flush()
    }

    /// Writes the whole history, sorted by time, to a JSONL file (replacing it).
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        let _ = std::fs::remove_file(path);
        Self::append_to_file(path, &self.sorted())
    }

    /// Loads a JSONL history. Blank lines are skipped; a bad line is an error naming it.
    pub fn load(path: &Path) -> std::io::Result<History> {
        let file = std::fs::File::open(path)?;
        let mut h = History::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let rec = Record::from_line(&line).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: {e}", path.display(), i + 1),
                )
            })?;
            h.push(rec);
        }
        Ok(h)
    }
}

impl From<Vec<Record>> for History {
    fn from(records: Vec<Record>) -> Self {
        History { records }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_node::events::{Event, EVENTS_VERSION};
    use chat_node::ids::Role;
    use chat_node::protocol::InboxMessage;

    fn samples() -> Vec<Record> {
        vec![
            Record::Node(EventRecord {
                v: EVENTS_VERSION,
                ts_ms: 5,
                node: NodeId(2),
                epoch: 3,
                role: Role::Follower,
                event: Event::PeerDown {
                    peer: NodeId(1),
                    silence_ms: 510,
                },
            }),
            Record::Fault(FaultRecord {
                ts_ms: 1,
                action: FaultAction::Kill,
                nodes: vec![NodeId(1)],
                step: Some(1),
                groups: vec![],
                to: vec![],
                link: None,
                forge: None,
            }),
            Record::Client(ClientRecord {
                ts_ms: 7,
                user: "u2".into(),
                action: ClientAction::Received {
                    message: InboxMessage {
                        useq: 4,
                        from: "u1".into(),
                        room: Some("general".into()),
                        room_seq: Some(9),
                        id: "u1-3".into(),
                        text: "hi".into(),
                        index: 40,
                    },
                    replay: true,
                },
            }),
            Record::Client(ClientRecord {
                ts_ms: 6,
                user: "u1".into(),
                action: ClientAction::Acked {
                    id: "u1-3".into(),
                    index: 40,
                    room_seq: Some(9),
                    duplicate: false,
                },
            }),
            Record::Step(StepRecord {
                ts_ms: 8,
                index: 2,
                status: StepStatus::Met,
                figure_ms: Some(640),
                deadline_ms: Some(700),
                message: None,
            }),
            Record::Harness(HarnessRecord {
                ts_ms: 9,
                msg: "done".into(),
            }),
        ]
    }

    #[test]
    fn records_are_flat_json_tagged_by_src() {
        let lines: Vec<String> = samples().iter().map(Record::to_line).collect();
        assert!(lines[0].starts_with(r#"{"src":"node","#), "{}", lines[0]);
        assert!(lines[0].contains(r#""event":"peer_down""#), "{}", lines[0]);
        assert!(lines[1].contains(r#""action":"kill""#), "{}", lines[1]);
        assert!(lines[2].contains(r#""action":"received""#) && lines[2].contains(r#""useq":4"#));
        for (line, rec) in lines.iter().zip(samples()) {
            assert_eq!(Record::from_line(line).unwrap(), rec, "{line}");
        }
    }

    #[test]
    fn file_round_trip_sorts_by_time() {
        let dir = std::env::temp_dir().join(format!("hcheck-hist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.jsonl");
        let h = History::from(samples());
        h.write_file(&path).unwrap();
        let back = History::load(&path).unwrap();
        let ts: Vec<u64> = back.records().iter().map(Record::ts_ms).collect();
        assert_eq!(ts, vec![1, 5, 6, 7, 8, 9]);
        std::fs::write(&path, "{\"src\":\"nope\"}\n").unwrap();
        assert!(History::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
