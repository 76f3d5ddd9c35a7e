//! Scenarios: a YAML fault story parsed into a validated plan. Everything that can be wrong in
//! a file (unknown keys, typos, bad durations, unknown targets, aliases used before `as:`
//! defines them) is rejected here, before any container starts, with file:line:column.

mod deadline;
mod error;
mod forge;
mod link;
mod locate;
mod raw;
mod validate;

pub use deadline::{Deadline, Quantity, Setting, Term};
pub use error::ScenarioError;
pub use forge::{ForgeSource, ForgeStep};
pub use link::{rate_text, LinkStep};

use crate::history::FaultAction;
use chat_node::settings::ElectionKind;
use std::path::Path;
use std::time::Duration;

/// A validated scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// The fault story in one line.
    pub about: String,
    /// Where it was read from (for messages).
    pub file: String,
    pub cluster: ClusterSettings,
    pub workload: Workload,
    pub steps: Vec<Step>,
    /// The checkers to run after the steps, with any deadline overrides.
    pub checks: Vec<CheckSpec>,
    /// Self-tests: these checkers must FAIL (and all others pass) for the run to pass.
    pub expect_failures: Vec<CheckName>,
}

/// How the cluster is started and configured.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSettings {
    /// Containers to start (node ids 1..=nodes).
    pub nodes: usize,
    /// Election algorithm passed to `--election`: the node's own type, so validation,
    /// the checkers and the deadlines ask the algorithm rather than test its name.
    pub election: ElectionKind,
    /// `election_pinned: true`: the story is specific to this algorithm, so `harness run
    /// --election` and `harness matrix` do not run it under another one.
    pub election_pinned: bool,
    pub heartbeat: Duration,
    pub failure_timeout: Duration,
    pub quorum: Quorum,
    /// `--cluster-size` (defaults to `nodes`).
    pub cluster_size: usize,
    /// Extra flags appended to `chat-node serve`.
    pub flags: Vec<String>,
    pub start: StartMode,
    /// Nodes run without a cluster secret (`--insecure`): peer datagrams are not
    /// authenticated, so an outsider's forgeries reach the protocol (self-tests only).
    pub insecure: bool,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nodes: 5,
            election: ElectionKind::Lcr,
            election_pinned: false,
            heartbeat: Duration::from_millis(100),
            failure_timeout: Duration::from_millis(500),
            quorum: Quorum::Majority,
            cluster_size: 5,
            flags: Vec::new(),
            start: StartMode::Staggered,
            insecure: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quorum {
    Majority,
    /// Split-brain reproduction only.
    None,
}

impl Quorum {
    /// The value for `--quorum`.
    pub fn as_flag(self) -> &'static str {
        match self {
            Quorum::Majority => "majority",
            Quorum::None => "none",
        }
    }
}

/// How the containers are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// One after another, each after the previous one is running (the usual case).
    Staggered,
    /// All at once, so several nodes may form clusters and lead at the same moment.
    Simultaneous,
}

/// The simulated chat users that run through the whole scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Number of users; they are named `u1` … `uN` (see [`Workload::user_names`]).
    pub users: usize,
    /// Rooms every user joins at the start.
    pub rooms: Vec<String>,
    /// Messages per second across all users (0 = only explicit `send` steps).
    pub rate_per_s: f64,
    /// Relative weights of private messages and room posts.
    pub private_weight: f64,
    pub room_weight: f64,
    /// At the end: how long to wait, all users online again, for deliveries to arrive.
    pub drain: Duration,
    /// Which server each user logs in on.
    pub placement: Placement,
}

/// Which server a workload user logs in on (every server serves clients).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Placement {
    /// Every user moves to the leader (a follower's `welcome` names it).
    Leader,
    /// User `uK` starts on node `((K - 1) mod nodes) + 1` and stays on whichever server
    /// serves it; after a failure it logs in on the next server that answers.
    #[default]
    Spread,
    /// The named users start on the given node ids (the rest as in `Spread`).
    Pinned(std::collections::BTreeMap<String, usize>),
    /// Every user asks node 1 and logs in where the leader's assignment sends it (the
    /// least-loaded live server: a `welcome`'s `assigned_addr`); after a failure it follows
    /// the assignment of the next server it reaches.
    Assigned,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            users: 0,
            rooms: Vec::new(),
            rate_per_s: 0.0,
            private_weight: 1.0,
            room_weight: 1.0,
            drain: Duration::from_secs(2),
            placement: Placement::default(),
        }
    }
}

impl Workload {
    /// The user names the workload uses, in order.
    pub fn user_names(&self) -> Vec<String> {
        (1..=self.users).map(|i| format!("u{i}")).collect()
    }
}

/// One step of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// 0-based position in `steps`.
    pub index: usize,
    /// 1-based line of the step in the file (for messages).
    pub line: usize,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Wait for a condition; if it is not met within the deadline the run stops here.
    Await(ExpectStep),
    /// Check a condition; if it is not met within the deadline the step fails and the run goes on.
    Expect(ExpectStep),
    /// kill, stop, pause, resume, restart or isolate the target's nodes.
    Fault {
        action: FaultAction,
        target: Target,
        /// Save the resolved nodes under this name for later steps.
        alias: Option<String>,
    },
    /// Cut the network into groups that cannot reach each other; a group's `as:` saves its
    /// resolved nodes.
    Partition {
        groups: Vec<Group>,
        aliases: Vec<Option<String>>,
    },
    /// One-way: packets from `from` do not reach `to`; `as:` on either end saves its nodes.
    Cut {
        from: Target,
        to: Target,
        from_alias: Option<String>,
        to_alias: Option<String>,
    },
    /// Remove every partition, cut, isolation and link fault.
    Heal,
    /// Degrade links: loss, delay, bandwidth.
    Link(LinkStep),
    /// An outsider replays and forges peer datagrams, in the background, for a while.
    Forge(ForgeStep),
    Sleep(Duration),
    /// A workload user disconnects (messages to it go to its mailbox).
    Offline {
        user: String,
    },
    /// The user logs in again (and receives its mailbox).
    Online {
        user: String,
    },
    /// `count` explicit messages from a user to a user or a room.
    Send {
        from: String,
        to: SendTarget,
        count: usize,
    },
}

impl StepKind {
    /// The step's key as written in YAML.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Await(_) => "await",
            StepKind::Expect(_) => "expect",
            StepKind::Fault { action, .. } => action.keyword(),
            StepKind::Partition { .. } => "partition",
            StepKind::Cut { .. } => "cut",
            StepKind::Heal => "heal",
            StepKind::Link(l) => l.keyword(),
            StepKind::Forge(_) => "forge",
            StepKind::Sleep(_) => "sleep",
            StepKind::Offline { .. } => "offline",
            StepKind::Online { .. } => "online",
            StepKind::Send { .. } => "send",
        }
    }
}

/// Where a `send` step's messages go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendTarget {
    User(String),
    Room(String),
}

/// A set of nodes named in a step, resolved from the observed state when the step runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Leader,
    Followers,
    RandomFollower,
    /// `{node: n}`: node id n (1-based index).
    Node(u64),
    /// A majority of `cluster_size` that contains the leader.
    Majority,
    /// The complement of `Majority`.
    Minority,
    All,
    RingSuccessorOfLeader,
    /// Nodes saved by an earlier step's `as:`.
    Alias(String),
    /// Several targets resolved at one instant to distinct nodes (`[leader, random_follower]`).
    Several(Vec<Target>),
}

impl Target {
    /// Keywords a target word may be (anything else must be a defined alias).
    pub const KEYWORDS: &'static [&'static str] = &[
        "leader",
        "followers",
        "random_follower",
        "majority",
        "minority",
        "all",
        "ring_successor_of_leader",
    ];
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Leader => f.write_str("leader"),
            Target::Followers => f.write_str("followers"),
            Target::RandomFollower => f.write_str("random_follower"),
            Target::Node(n) => write!(f, "node {n}"),
            Target::Majority => f.write_str("majority"),
            Target::Minority => f.write_str("minority"),
            Target::All => f.write_str("all"),
            Target::RingSuccessorOfLeader => f.write_str("ring_successor_of_leader"),
            Target::Alias(a) => f.write_str(a),
            Target::Several(ts) => {
                let parts: Vec<String> = ts.iter().map(Target::to_string).collect();
                write!(f, "[{}]", parts.join(", "))
            }
        }
    }
}

/// A partition group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group {
    /// Every node not named in another group.
    Rest,
    Targets(Vec<Target>),
}

/// The body of `await` / `expect`.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectStep {
    pub condition: Condition,
    /// From the file, or the checker default for this condition (see `defaults`).
    pub within: Deadline,
}

/// A condition on the observed cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    Leader(LeaderCondition),
    /// Every observer reports the peer(s) down.
    Detected {
        peer: Target,
        by: Observers,
    },
    /// The node is back: alive, following a leader that counts it in its view.
    Rejoined {
        node: Target,
    },
    /// The node(s) no longer act as leader.
    SteppedDown {
        node: Target,
    },
    /// None of these nodes becomes leader for the whole duration.
    NoLeader {
        among: Target,
        duration: Duration,
    },
    /// None of these nodes commits an entry beyond what the cluster had committed when the
    /// window began, for the whole duration.
    NoCommit {
        among: Target,
        duration: Duration,
    },
    /// The leader of the window's start stays leader and nobody wins an election, for the
    /// whole duration.
    NoLeaderChange {
        duration: Duration,
    },
    /// One leader and one view among all live nodes.
    Converged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderCondition {
    Any,
    Is(Target),
    Not(Target),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observers {
    AllLive,
    Nodes(Target),
}

/// A post-run checker's name: one of [`crate::checkers::REGISTRY`] (the only list of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckName(&'static str);

impl CheckName {
    /// The checkers a scenario without `checks:` runs: every registered one judged by
    /// default (those measured in every run come along anyway; `balance` only when listed).
    pub fn all() -> Vec<CheckName> {
        crate::checkers::REGISTRY
            .iter()
            .filter(|c| c.judged_by_default())
            .map(|c| CheckName(c.name()))
            .collect()
    }

    /// Every registered name, for error messages.
    pub fn known() -> String {
        crate::checkers::REGISTRY
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The registered checker called `name` (or a synonym of it).
    pub fn from_name(name: &str) -> Option<CheckName> {
        crate::checkers::find(name).map(|c| CheckName(c.name()))
    }
}

/// A checker to run, with an optional deadline override.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckSpec {
    pub name: CheckName,
    pub within: Option<Deadline>,
}

/// Default deadlines, derived from the cluster's own settings.
pub mod defaults {
    use super::{ClusterSettings, Deadline, Quantity, Setting, Term};
    use std::time::Duration;

    /// One ring hop of the LCR token: a datagram plus the node's processing tick, generously.
    pub const HOP_MS: u64 = 20;
    /// A restarted container needs time to start its process before it can say anything.
    pub const STARTUP_MS: u64 = 1000;

    fn term(factor: f64, quantity: Quantity) -> Term {
        Term { factor, quantity }
    }

    /// Failure detection: the failure timeout, plus up to one heartbeat before the last one
    /// was missed and one more for the detector's tick to notice.
    pub fn detection_deadline(_c: &ClusterSettings) -> Deadline {
        Deadline {
            terms: vec![
                term(1.0, Quantity::Setting(Setting::FailureTimeout)),
                term(2.0, Quantity::Setting(Setting::Heartbeat)),
            ],
        }
    }

    /// Election allowance: what the cluster's algorithm declares
    /// ([`chat_node::core::election::Allowance`], derived in each algorithm's file), with
    /// [`HOP_MS`] per hop: LCR `2 hb + (2n + 2) hops`, Raft `1 ft + 2 hb + 4 hops`, Bully
    /// `4 hb + 4 hops`.
    pub fn election_allowance_deadline(c: &ClusterSettings) -> Deadline {
        let Some(a) = chat_node::core::election::allowance(c.election) else {
            // Validation accepts only implemented algorithms.
            return Deadline { terms: Vec::new() };
        };
        let hops = a.hops_per_member * c.cluster_size as u64 + a.hops;
        let mut terms = Vec::new();
        if a.failure_timeouts > 0 {
            terms.push(term(
                a.failure_timeouts as f64,
                Quantity::Setting(Setting::FailureTimeout),
            ));
        }
        if a.heartbeats > 0 {
            terms.push(term(
                a.heartbeats as f64,
                Quantity::Setting(Setting::Heartbeat),
            ));
        }
        if hops > 0 {
            terms.push(term(
                1.0,
                Quantity::Literal(Duration::from_millis(hops * HOP_MS)),
            ));
        }
        Deadline { terms }
    }

    /// The failover formula of the cluster's algorithm as the report prints it:
    /// `lcr: detection (ft + 2 hb) + 2 hb + (2n + 2) hops of 20 ms`.
    pub fn failover_formula(c: &ClusterSettings) -> String {
        let allowance = chat_node::core::election::allowance(c.election)
            .map(|a| a.formula())
            .unwrap_or_default();
        format!(
            "{}: detection (ft + 2 hb) + {allowance} of {HOP_MS} ms",
            c.election.name()
        )
    }

    /// Failover: detection, then an election.
    pub fn failover_deadline(c: &ClusterSettings) -> Deadline {
        detection_deadline(c).plus(election_allowance_deadline(c))
    }

    /// Convergence after a heal or restart: nodes must hear each other again (a heartbeat),
    /// a stale leader must notice and step down (up to a failure timeout), then one election,
    /// plus container start-up time after a restart.
    pub fn convergence_deadline(c: &ClusterSettings) -> Deadline {
        failover_deadline(c).plus(Deadline {
            terms: vec![
                term(1.0, Quantity::Setting(Setting::FailureTimeout)),
                term(1.0, Quantity::Literal(Duration::from_millis(STARTUP_MS))),
            ],
        })
    }

    /// [`detection_deadline`] for these settings.
    pub fn detection(c: &ClusterSettings) -> Duration {
        detection_deadline(c).resolve(c)
    }

    /// [`failover_deadline`] for these settings.
    pub fn failover(c: &ClusterSettings) -> Duration {
        failover_deadline(c).resolve(c)
    }

    /// [`convergence_deadline`] for these settings.
    pub fn convergence(c: &ClusterSettings) -> Duration {
        convergence_deadline(c).resolve(c)
    }
}

impl Scenario {
    /// Parses and validates a scenario held in memory; `file_name` is used in messages.
    pub fn parse(text: &str, file_name: &str) -> Result<Scenario, ScenarioError> {
        validate::parse(text, file_name, None)
    }

    /// Why this scenario may not run under `election` (it pins another algorithm), if so.
    pub fn refuses_election(&self, election: &str) -> Option<String> {
        (self.cluster.election_pinned && self.cluster.election.name() != election).then(|| {
            format!(
                "{} pins election `{}` (`election_pinned: true`); not run under `{election}`",
                self.name,
                self.cluster.election.name()
            )
        })
    }

    /// The deadline a checker uses: the scenario's override, or the checker's default from
    /// the settings (none for a checker without one, such as delivery).
    pub fn check_deadline(&self, name: CheckName) -> Option<Deadline> {
        if let Some(d) = self
            .checks
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.within.clone())
        {
            return Some(d);
        }
        crate::checkers::find(name.as_str())?.default_deadline(&self.cluster)
    }

    /// Whether the scenario asked for this checker.
    pub fn runs_check(&self, name: CheckName) -> bool {
        self.checks.iter().any(|c| c.name == name)
    }

    /// [`Scenario::runs_check`] by name.
    pub fn runs_check_named(&self, name: &str) -> bool {
        self.checks.iter().any(|c| c.name.as_str() == name)
    }
}

/// Parses a scenario held in memory.
pub fn parse(text: &str, file_name: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, file_name)
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    load_with(path, None)
}

/// [`load`] with the file's election algorithm replaced by `election` (`harness run
/// --election`, the matrix): validated as if the file said `election: <it>`, so every
/// default deadline derives from that algorithm. A pinned scenario keeps its own algorithm
/// ([`Scenario::refuses_election`] says so before this is called).
pub fn load_with(path: &Path, election: Option<&str>) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    validate::parse(&text, &file, election)
}

/// The `.yaml`/`.yml` files of a directory, sorted by name (for `harness run scenarios/`).
pub fn files_in(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml") | Some("yml")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_algorithm_declares_its_own_failover_allowance() {
        let mut c = ClusterSettings::default();
        let mut seen = Vec::new();
        for kind in ElectionKind::ALL {
            c.election = kind;
            seen.push((
                defaults::failover(&c),
                defaults::failover_deadline(&c).to_string(),
            ));
        }
        assert_eq!(
            seen,
            vec![
                (
                    Duration::from_millis(1140),
                    "failure_timeout + 4 * heartbeat + 240ms".into()
                ),
                (
                    Duration::from_millis(1480),
                    "2 * failure_timeout + 4 * heartbeat + 80ms".into()
                ),
                (
                    Duration::from_millis(1180),
                    "failure_timeout + 6 * heartbeat + 80ms".into()
                ),
            ]
        );
        c.election = ElectionKind::Raft;
        assert_eq!(
            defaults::failover_formula(&c),
            "raft: detection (ft + 2 hb) + 1 ft + 2 hb + 4 hops of 20 ms"
        );
    }

    #[test]
    fn default_deadlines_read_as_formulas_and_resolve_for_the_settings() {
        let c = ClusterSettings::default();
        // 5 nodes, heartbeat 100ms, failure timeout 500ms.
        assert_eq!(defaults::detection(&c), Duration::from_millis(700));
        assert_eq!(defaults::failover(&c), Duration::from_millis(1140));
        assert_eq!(defaults::convergence(&c), Duration::from_millis(2640));
        assert_eq!(
            defaults::failover_deadline(&c).to_string(),
            "failure_timeout + 4 * heartbeat + 240ms"
        );
        assert_eq!(
            defaults::convergence_deadline(&c).to_string(),
            "2 * failure_timeout + 4 * heartbeat + 240ms + 1s"
        );
    }

    #[test]
    fn deadlines_add_by_merging_settings_and_keeping_literals() {
        let a = Deadline::parse("failure_timeout + heartbeat + 20ms").unwrap();
        let b = Deadline::parse("2 * heartbeat + 1s").unwrap();
        assert_eq!(
            a.plus(b).to_string(),
            "failure_timeout + 3 * heartbeat + 20ms + 1s"
        );
    }
}
