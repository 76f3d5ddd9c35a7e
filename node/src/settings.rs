//! Server settings: every one a flag with an environment variable (`chat-node serve --help`).

use crate::duration::parse_duration;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

/// Which leader-election algorithm a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ElectionKind {
    /// LeLann–Chang–Roberts on the ring of live members ordered by id.
    Lcr,
    /// Raft's randomised-timeout voting with PreVote and CheckQuorum.
    Raft,
    /// Bully (Garcia-Molina): the best live node that can reach a quorum wins.
    Bully,
}

impl ElectionKind {
    /// Every algorithm the flag accepts, implemented or not.
    pub const ALL: [ElectionKind; 3] = [ElectionKind::Lcr, ElectionKind::Raft, ElectionKind::Bully];

    /// The kind named `name` (as in `--election` and a scenario's `election:`).
    pub fn parse(name: &str) -> Option<ElectionKind> {
        ElectionKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the core can run this algorithm today ([`crate::core::election::build`]).
    pub fn implemented(self) -> bool {
        crate::core::election::build(self, Default::default()).is_some()
    }

    /// The implemented algorithm named `name`, or the one error every front door shows
    /// (`chat-node serve`, scenario validation, `harness chaos`): unknown, or not yet implemented.
    pub fn parse_implemented(name: &str) -> Result<ElectionKind, String> {
        match ElectionKind::parse(name) {
            Some(kind) if kind.implemented() => Ok(kind),
            Some(_) => Err(format!(
                "election `{name}` is not implemented yet; use one of: {}",
                ElectionKind::implemented_names()
            )),
            None => Err(format!(
                "unknown election `{name}`; expected one of: {}",
                ElectionKind::implemented_names()
            )),
        }
    }

    /// The implemented algorithms' names, for error messages: `lcr`.
    pub fn implemented_names() -> String {
        ElectionKind::ALL
            .into_iter()
            .filter(|k| k.implemented())
            .map(ElectionKind::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn name(self) -> &'static str {
        match self {
            ElectionKind::Lcr => "lcr",
            ElectionKind::Raft => "raft",
            ElectionKind::Bully => "bully",
        }
    }
}

/// How many members a leader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuorumMode {
    /// A majority of `--cluster-size` (the safe default).
    Majority,
    /// No quorum at all: every side of a partition elects its own leader. Unsafe; exists only
    /// to reproduce the split brain of the seeds' implementations.
    None,
}

impl QuorumMode {
    pub fn name(self) -> &'static str {
        match self {
            QuorumMode::Majority => "majority",
            QuorumMode::None => "none",
        }
    }
}

/// Event output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (the harness reads this).
    Json,
    /// A short human-readable line per event.
    Pretty,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// `chat-node serve` flags.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// This node's id (a positive integer). Random when not given. Must be unique in the
    /// cluster and stable across restarts if the node has a data directory.
    #[arg(long, env = "CHAT_NODE_ID")]
    pub id: Option<u64>,

    /// Cluster name: datagrams from other clusters on the same network are ignored.
    #[arg(long, env = "CHAT_CLUSTER", default_value = "faultline")]
    pub cluster: String,

    /// Expected number of servers. A leader needs a majority of this many (see --quorum).
    /// Peers' addresses are never configured: they are discovered by broadcast.
    #[arg(long, env = "CHAT_CLUSTER_SIZE", default_value_t = 3)]
    pub cluster_size: usize,

    /// UDP port for discovery broadcasts and peer-to-peer datagrams.
    #[arg(long, env = "CHAT_PEER_PORT", default_value_t = 7400)]
    pub peer_port: u16,

    /// UDP port for heartbeats sent to the multicast group.
    #[arg(long, env = "CHAT_MULTICAST_PORT", default_value_t = 7401)]
    pub multicast_port: u16,

    /// IPv4 multicast group for heartbeats.
    #[arg(long, env = "CHAT_MULTICAST_GROUP", default_value = "239.255.74.1")]
    pub multicast_group: std::net::Ipv4Addr,

    /// TCP port clients connect to.
    #[arg(long, env = "CHAT_CLIENT_PORT", default_value_t = 7070)]
    pub client_port: u16,

    /// Network interface to use (its IPv4 address and broadcast address). Default: the first
    /// non-loopback interface that is up and has an IPv4 address.
    #[arg(long, env = "CHAT_INTERFACE")]
    pub interface: Option<String>,

    /// Interval between heartbeats.
    #[arg(long, env = "CHAT_HEARTBEAT", default_value = "100ms", value_parser = duration_arg)]
    pub heartbeat: Duration,

    /// Silence after which a peer is declared down (and, for the leader, an election starts).
    #[arg(long, env = "CHAT_FAILURE_TIMEOUT", default_value = "500ms", value_parser = duration_arg)]
    pub failure_timeout: Duration,

    /// Leader-election algorithm.
    #[arg(long, env = "CHAT_ELECTION", value_enum, default_value_t = ElectionKind::Lcr)]
    pub election: ElectionKind,

    /// Quorum rule. `none` is unsafe and exists only to reproduce split brain.
    #[arg(long, env = "CHAT_QUORUM", value_enum, default_value_t = QuorumMode::Majority)]
    pub quorum: QuorumMode,

    /// Event output format on stdout.
    #[arg(long, env = "CHAT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Directory for the durable epoch, vote and log. Without it state lives in memory only
    /// and a restarted node comes back empty (and must not have voted: see ARCHITECTURE.md).
    #[arg(long, env = "CHAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Client connections served at once. One more is answered with a `too_many_connections`
    /// error line and closed. Kept well below the open-file limit (the node lowers it and
    /// says so if it is not), so the node always has descriptors for its own work.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// Users logged in on this server at once (0: as many as `--max-connections` allows).
    /// A login beyond it gets `server_full` (log in on another server), and a full server
    /// does not answer discovery, so clients go where there is room (seed 002).
    #[arg(long, env = "CHAT_MAX_CLIENTS", default_value_t = 0)]
    pub max_clients: usize,

    /// Snapshot the chat state every this many log entries (0: never). The log is kept from
    /// the previous snapshot on, the state file is rewritten as the snapshot plus that tail,
    /// and a follower the log no longer reaches is sent the snapshot. Ignored (never) with
    /// `--quorum none`.
    #[arg(long, env = "CHAT_SNAPSHOT_EVERY", default_value_t = crate::core::snapshot::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,

    /// A client connection that has not logged in this long after connecting is closed with
    /// a `login_timeout` error line.
    #[arg(long, env = "CHAT_LOGIN_TIMEOUT", default_value = "5s", value_parser = duration_arg)]
    pub login_timeout: Duration,

    /// Start even though the data directory has a node id but no durable hard state (epoch
    /// and vote): the node may then vote a second time in an epoch it already voted in. Only
    /// for a node whose state was lost for good, while the rest of the cluster keeps a majority.
    #[arg(long, env = "CHAT_ACCEPT_DATA_LOSS")]
    pub accept_data_loss: bool,

    /// A file holding the cluster secret (its first line, at least 16 bytes; e.g.
    /// `openssl rand -hex 32 > secret`). Every member needs the same one: peer datagrams are
    /// sealed and checked with it (HMAC-SHA256), and those without a valid tag are refused.
    #[arg(long, env = "CHAT_CLUSTER_SECRET_FILE", value_name = "PATH")]
    pub cluster_secret_file: Option<PathBuf>,

    /// The cluster secret itself (at least 16 bytes). Prefer --cluster-secret-file or the
    /// environment: a command line is visible to every user of the host.
    #[arg(
        long,
        env = "CHAT_CLUSTER_SECRET",
        hide_env_values = true,
        conflicts_with = "cluster_secret_file"
    )]
    pub cluster_secret: Option<String>,

    /// Run without a cluster secret: anyone on the network can forge peer datagrams (one
    /// forged heartbeat deposes the leader). Only for experiments and self-tests.
    #[arg(long, env = "CHAT_INSECURE", conflicts_with_all = ["cluster_secret_file", "cluster_secret"])]
    pub insecure: bool,
}

/// `serve`'s flags alone, for parsing a serve command line.
#[derive(clap::Parser)]
struct ServeOnly {
    #[command(flatten)]
    serve: ServeArgs,
}

impl ServeArgs {
    /// The settings of a `chat-node serve …` command line (`argv[0]` the program), with the
    /// environment filling what the flags leave out, exactly as `serve` resolves them. None
    /// when it is not a serve command line or it does not parse.
    pub fn from_command_line(argv: &[String]) -> Option<ServeArgs> {
        use clap::Parser;
        if argv.get(1).map(String::as_str) != Some("serve") {
            return None;
        }
        let mut flags = vec![argv[0].clone()];
        flags.extend_from_slice(&argv[2..]);
        ServeOnly::try_parse_from(flags).ok().map(|c| c.serve)
    }

    /// The settings of the `serve` running as this container's PID 1 (read from
    /// `/proc/1/cmdline`): what `chat-node health` asks with, so the probe speaks the
    /// cluster name the node was started with, whatever the flags were.
    pub fn of_pid1() -> Option<ServeArgs> {
        let raw = std::fs::read("/proc/1/cmdline").ok()?;
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        ServeArgs::from_command_line(&argv)
    }
}

/// Helpers for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{ServeArgs, ServeOnly};
    use clap::Parser;

    /// `ServeArgs` exactly as `chat-node serve <flags>` parses them.
    pub(crate) fn serve_args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["chat-node"];
        argv.extend_from_slice(flags);
        ServeOnly::try_parse_from(argv)
            .expect("test flags parse")
            .serve
    }
}

#[cfg(test)]
mod tests {
    use super::ServeArgs;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_serve_command_line_gives_the_cluster_it_was_started_with() {
        // The harness starts `serve --cluster fl-<run>`: health must ask for that cluster.
        let s = ServeArgs::from_command_line(&argv(&[
            "/chat-node",
            "serve",
            "--id",
            "3",
            "--cluster",
            "fl-7c1e",
            "--peer-port",
            "7500",
        ]))
        .expect("parses");
        assert_eq!(s.cluster, "fl-7c1e");
        assert_eq!(s.peer_port, 7500);
        assert!(ServeArgs::from_command_line(&argv(&["/chat-node", "health"])).is_none());
        assert!(ServeArgs::from_command_line(&argv(&["/chat-node", "serve", "--bogus"])).is_none());
    }
}
