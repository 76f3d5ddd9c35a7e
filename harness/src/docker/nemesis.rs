//! The faults, on nodes already resolved to ids: kill (SIGKILL), stop (SIGTERM), pause and
//! resume (cgroup freezer), restart (same container: same id, address and data), and
//! partitions (nftables, see [`super::partition`]), and link faults (loss, delay, bandwidth,
//! see [`super::links`]). Network rules go in with nsenter where this host sees the node's
//! process, else through a sidecar container ([`super::netaccess`], [`super::sidecar`]),
//! decided once, at the run's first network fault.

use super::cluster::Cluster;
use super::connect::DockerError;
use super::links::{self, DelayMechanism, Delayers, LinkState};
use super::netaccess::{self, NetAccess};
use super::partition::{
    after_failure, apply_in_netns, netns_exists, nft_script_with, partition_prerequisites,
    AfterFailure,
};
use super::sidecar;
use crate::backend::{BackendError, LinkFault};
use chat_node::faults::FaultState;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Injects faults into one cluster and keeps the fault state it applied (the shared model),
/// so a restarted node (a new network namespace) gets its rules again.
pub struct Nemesis {
    cluster: Cluster,
    state: FaultState<u64>,
    links: LinkState,
    delayers: Delayers,
    /// Nodes whose delay or bandwidth mechanism was set up (to undo at the heal).
    shaped: BTreeSet<u64>,
    /// Seeds the delayers' jitter.
    seed: u64,
    /// How network rules reach the nodes; decided at the first network fault.
    net: Option<NetPath>,
    /// Some network rules were written (a restarted node then needs its own again).
    rules_ever: bool,
}

/// A node's rules, ready to go in.
enum PendingRules {
    Nsenter { id: u64, pid: u32, script: String },
    Sidecar(u64, sidecar::Prepared),
}

/// How this run's network rules reach the nodes' namespaces.
#[derive(Clone, Debug)]
enum NetPath {
    Nsenter,
    /// Through the sidecar image; why nsenter cannot.
    Sidecar {
        image: String,
        why: String,
    },
}

impl Nemesis {
    pub fn new(cluster: Cluster) -> Nemesis {
        Nemesis {
            state: FaultState::new(cluster.ids()),
            cluster,
            links: LinkState::default(),
            delayers: Delayers::default(),
            shaped: BTreeSet::new(),
            seed: 0,
            net: None,
            rules_ever: false,
        }
    }

    /// What has been applied so far: who is down or paused, which links are cut.
    pub fn state(&self) -> &FaultState<u64> {
        &self.state
    }

    /// What the delayers stopped since the last call did, one line each (all of them are
    /// stopped first when `all`, at the end of a run).
    pub fn delayer_notes(&mut self, all: bool) -> Vec<String> {
        if all {
            self.delayers.clear();
        }
        self.delayers.take_notes()
    }

    /// Seeds the delayers' jitter (the run's seed).
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// Crash: SIGKILL, no goodbye.
    pub async fn kill(&mut self, ids: &[u64]) -> Result<(), DockerError> {
        ids.iter().for_each(|id| self.state.crash(*id));
        self.each(ids, |id| self.cluster.signal(id, "SIGKILL"))
            .await
    }

    /// Graceful stop: SIGTERM; the node leaves and exits by itself (the container stays).
    pub async fn stop(&mut self, ids: &[u64]) -> Result<(), DockerError> {
        ids.iter().for_each(|id| self.state.crash(*id));
        self.each(ids, |id| self.cluster.signal(id, "SIGTERM"))
            .await
    }

    pub async fn pause(&mut self, ids: &[u64]) -> Result<(), DockerError> {
        ids.iter().for_each(|id| self.state.pause(*id));
        let this = &*self;
        this.each(ids, |id| async move {
            let node = this.cluster.node(id)?;
            this.cluster
                .docker
                .pause_container(&node.container_id)
                .await
                .map_err(DockerError::api(format!("pause {}", node.name)))
        })
        .await
    }

    pub async fn resume(&mut self, ids: &[u64]) -> Result<(), DockerError> {
        ids.iter().for_each(|id| self.state.resume(*id));
        let this = &*self;
        this.each(ids, |id| async move {
            let node = this.cluster.node(id)?;
            this.cluster
                .docker
                .unpause_container(&node.container_id)
                .await
                .map_err(DockerError::api(format!("unpause {}", node.name)))
        })
        .await
    }

    /// Starts stopped/killed nodes again. A node still running (e.g. a SIGTERM not yet
    /// finished) is waited for up to 5 s first. Partition rules are re-applied.
    /// Returns the host ms just before the first `docker start` is issued (after waiting for
    /// a stopping process to exit), so a rejoin figure includes the whole start.
    pub async fn restart(&mut self, ids: &[u64]) -> Result<u64, DockerError> {
        ids.iter().for_each(|id| self.state.restart(*id));
        for &id in ids {
            let mut waited = Duration::ZERO;
            while self.cluster.pid(id).await?.is_some() && waited < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(25)).await;
                waited += Duration::from_millis(25);
            }
        }
        let issued_ms = super::now_ms();
        for &id in ids {
            self.cluster.start(id).await?;
            if !self.rules_ever {
                continue;
            }
            if let Some(pid) = self.cluster.pid(id).await? {
                self.apply_rules(id, pid).await?;
                if self.shaped.contains(&id) {
                    self.apply_shaping(id, pid)
                        .await
                        .map_err(|e| DockerError::Other(e.to_string()))?;
                }
            }
        }
        Ok(issued_ms)
    }

    /// Cuts the network between groups (added to any cuts already in place). Network faults
    /// return the host ms at which the rules started going in (see [`Nemesis::apply_all`]).
    pub async fn partition(&mut self, groups: &[Vec<u64>]) -> Result<u64, DockerError> {
        self.decide_net_path().await?;
        self.state.partition(groups);
        self.apply_all().await
    }

    /// One-way cut: `to` stops hearing `from`.
    pub async fn cut(&mut self, from: &[u64], to: &[u64]) -> Result<u64, DockerError> {
        self.decide_net_path().await?;
        for &f in from {
            for &t in to {
                self.state.cut(f, t);
            }
        }
        self.apply_all().await
    }

    /// Cuts `ids` off from every other node, both ways.
    pub async fn isolate(&mut self, ids: &[u64]) -> Result<u64, DockerError> {
        self.decide_net_path().await?;
        for &id in ids {
            self.state.isolate(id);
        }
        self.apply_all().await
    }

    /// Removes every cut and every link fault.
    pub async fn heal(&mut self) -> Result<u64, DockerError> {
        self.decide_net_path().await?;
        self.state.heal();
        self.links.clear();
        // Every part of the heal is attempted even if one fails, then the failures are told.
        let lifted = self.apply_all().await;
        // Delays and rate limits go after the drops are lifted (the stamp is the lift).
        self.delayers.clear();
        let mut failures = Vec::new();
        for id in std::mem::take(&mut self.shaped) {
            if let Some(pid) = self.cluster.pid(id).await? {
                if let Err(e) = self.apply_shaping(id, pid).await {
                    // A node that exited meanwhile has no shaping left to undo.
                    if netns_exists(pid) {
                        failures.push(format!("node {id}: {e}"));
                    }
                }
            }
        }
        match (lifted, failures.is_empty()) {
            (Ok(ts), true) => Ok(ts),
            (Ok(_), false) => Err(DockerError::Other(format!(
                "heal: delay or bandwidth not undone: {}",
                failures.join("; ")
            ))),
            (Err(e), _) => {
                failures.insert(0, e.to_string());
                Err(DockerError::Other(format!("heal: {}", failures.join("; "))))
            }
        }
    }

    /// Degrades links; returns the stamp and the mechanism used.
    pub async fn link(&mut self, fault: &LinkFault) -> Result<(u64, String), BackendError> {
        self.decide_net_path().await?;
        if let (Some(NetPath::Sidecar { why, .. }), false) =
            (&self.net, matches!(fault, LinkFault::Loss { .. }))
        {
            return Err(BackendError::Unsupported(format!(
                "delay, duplicate and bandwidth need this host to reach the node's network \
                 namespace (the NFQUEUE delayer runs here; netem and tbf go on the host end of \
                 its veth), and here it cannot: {why}. Loss, partitions and cuts work through \
                 the sidecar"
            )));
        }
        match fault {
            LinkFault::Loss { from, to, percent } => {
                for &t in to {
                    for &f in from {
                        if f != t {
                            self.links.loss.entry(t).or_default().insert(f, *percent);
                        }
                    }
                }
                let ts = self.apply_all().await?;
                Ok((ts, "nft numgen".to_string()))
            }
            LinkFault::Delay { to, ms, jitter_ms } => {
                for &t in to {
                    self.links.delay.insert(t, (*ms, *jitter_ms));
                }
                self.shape(to).await
            }
            LinkFault::Duplicate { to, percent } => {
                for &t in to {
                    self.links.duplicate.insert(t, *percent);
                }
                self.shape(to).await
            }
            LinkFault::Bandwidth { to, rate_bps } => {
                for &t in to {
                    self.links.bandwidth.insert(t, *rate_bps);
                }
                self.shape(to).await
            }
        }
    }

    /// Applies delay and bandwidth to the running nodes among `ids`.
    async fn shape(&mut self, ids: &[u64]) -> Result<(u64, String), BackendError> {
        let mut running = Vec::new();
        for &id in ids {
            if let Some(pid) = self.cluster.pid(id).await? {
                running.push((id, pid));
            }
        }
        let ts = super::now_ms();
        let mut mechanism = String::new();
        for (id, pid) in running {
            self.shaped.insert(id);
            mechanism = self.apply_shaping(id, pid).await?;
        }
        Ok((ts, mechanism))
    }

    /// Makes node `id`'s delay and bandwidth what [`LinkState`] says (none: undone).
    /// Returns the mechanisms used.
    async fn apply_shaping(&mut self, id: u64, pid: u32) -> Result<String, BackendError> {
        let shape = self.links.shape(id);
        let rate = self.links.bandwidth.get(&id).copied();
        let mut used = Vec::new();
        let mut netem = None;
        match shape {
            Some(shape) => match links::delay_mechanism(pid).await? {
                DelayMechanism::Netem => {
                    netem = Some(shape);
                    used.push(DelayMechanism::Netem.name());
                }
                DelayMechanism::Nfqueue => {
                    self.delayers.set(id, pid, shape, self.seed)?;
                    links::set_queue_rule(pid, true).await?;
                    used.push(DelayMechanism::Nfqueue.name());
                }
            },
            None => {
                self.delayers.remove(id);
                links::set_queue_rule(pid, false).await?;
            }
        }
        if rate.is_some() {
            used.push("tbf");
        }
        links::set_host_qdisc(pid, netem, rate).await?;
        Ok(used.join(" + "))
    }

    /// Checks, before a scenario that needs partitions starts, that they can be made.
    pub fn check_partition_support() -> Result<(), DockerError> {
        partition_prerequisites().map_err(DockerError::Other)
    }

    /// [`Nemesis::check_partition_support`] for the engine in use: with a local socket
    /// (unless the sidecar is forced) nsenter's prerequisites; otherwise only this host's
    /// `nft`, which the sidecar image is built from.
    pub fn check_network_fault_support(engine: &super::Engine) -> Result<(), DockerError> {
        let forced = std::env::var(netaccess::FORCE_ENV).unwrap_or_default();
        if engine.is_local_socket() && forced.trim() != "sidecar" {
            return Self::check_partition_support();
        }
        if super::partition::find_nft().is_none() {
            return Err(DockerError::Other(
                "network faults on this engine go through a sidecar built from this host's \
                 `nft`: apt-get install nftables"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Decides, from the first running node, how network rules reach the nodes (once per
    /// run: all nodes live on one engine). Nothing is decided while no node runs.
    async fn decide_net_path(&mut self) -> Result<(), DockerError> {
        if self.net.is_some() {
            return Ok(());
        }
        for id in self.cluster.ids() {
            let Some(pid) = self.cluster.pid(id).await? else {
                continue;
            };
            let container = self.cluster.node(id)?.container_id.clone();
            let path = match netaccess::probe(pid, &container).map_err(DockerError::Other)? {
                NetAccess::Nsenter => NetPath::Nsenter,
                NetAccess::Sidecar { why } => {
                    let image = sidecar::ensure_image(&self.cluster.docker).await?;
                    crate::say!("    network faults go through a sidecar container ({why})");
                    NetPath::Sidecar { image, why }
                }
            };
            self.net = Some(path);
            break;
        }
        Ok(())
    }

    /// Writes every node's drop list into its namespace, all at once. The containers' pids
    /// are looked up first, so the returned timestamp (taken just before the first `nft`
    /// starts) marks the fault without the Docker round trips in front of it.
    async fn apply_all(&mut self) -> Result<u64, DockerError> {
        self.rules_ever = true;
        let ids = self.cluster.ids();
        let pids = futures_util::future::join_all(ids.iter().map(|&id| self.cluster.pid(id))).await;
        let mut running = Vec::new();
        for (id, pid) in ids.into_iter().zip(pids) {
            // A node that is not running gets its rules at its restart.
            if let Some(pid) = pid? {
                running.push((id, pid));
            }
        }
        // Sidecars are created and loaded first, so the stamp is taken just before every nft
        // starts, as with nsenter (a sidecar's creation costs the engine most of a second).
        let prepares = running.iter().map(|&(id, pid)| self.prepare_rules(id, pid));
        let prepared = futures_util::future::join_all(prepares).await;
        let started_ms = super::now_ms();
        let this = &*self;
        let applies = prepared.into_iter().map(|p| async move {
            match p {
                Ok(pending) => this.commit_rules(pending).await,
                Err(e) => Err(e),
            }
        });
        let results = futures_util::future::join_all(applies).await;
        // Every node was tried; now look again at the ones that failed. A node that exited
        // meanwhile (a `stop` just before) is skipped: the fault state already holds its rules
        // for its restart. Anything else is a real failure, reported per node, so the run
        // never goes on as if the fault were in force.
        let mut failures = Vec::new();
        for ((id, pid), result) in running.into_iter().zip(results) {
            let Err(first) = result else { continue };
            let now = match self.cluster.pid(id).await {
                Ok(now) => now,
                Err(e) => {
                    failures.push(format!("{first} (and inspecting it again failed: {e})"));
                    continue;
                }
            };
            // Through a sidecar this host cannot look at the old process: alive if still it.
            let tried_alive = match self.net {
                Some(NetPath::Sidecar { .. }) => now == Some(pid),
                _ => netns_exists(pid),
            };
            match after_failure(pid, now, tried_alive) {
                AfterFailure::Skip => crate::say!(
                    "    node {id} exited while its network rules went in: they apply at its restart"
                ),
                AfterFailure::RetryAt(new_pid) => {
                    if let Err(e) = self.apply_rules(id, new_pid).await {
                        failures.push(e.to_string());
                    }
                }
                AfterFailure::Fail => failures.push(first.to_string()),
            }
        }
        if failures.is_empty() {
            Ok(started_ms)
        } else {
            Err(DockerError::Other(format!(
                "network rules not applied on every running node: {}",
                failures.join("; ")
            )))
        }
    }

    /// Writes node `id`'s current drop list (and its loss rules) into the namespace of its
    /// process `pid`.
    async fn apply_rules(&self, id: u64, pid: u32) -> Result<(), DockerError> {
        let pending = self.prepare_rules(id, pid).await?;
        self.commit_rules(pending).await
    }

    /// The first half of [`Nemesis::apply_rules`]: the script, and its sidecar created and
    /// loaded (not started) when it goes through one.
    async fn prepare_rules(&self, id: u64, pid: u32) -> Result<PendingRules, DockerError> {
        let ip_of = |s: u64| self.cluster.node(s).ok().map(|n| n.ip);
        let sources: Vec<Ipv4Addr> = self
            .state
            .dropped_by(id)
            .into_iter()
            .filter_map(ip_of)
            .collect();
        let loss = self.links.loss_rules(id, ip_of);
        let script = nft_script_with(&sources, &loss);
        match &self.net {
            Some(NetPath::Sidecar { image, .. }) => {
                let node = self.cluster.node(id)?;
                sidecar::prepare(
                    &self.cluster.docker,
                    image,
                    &self.cluster.run_id,
                    id,
                    &node.container_id,
                    &script,
                )
                .await
                .map(|s| PendingRules::Sidecar(id, s))
                .map_err(|e| DockerError::Other(format!("node {id}: {e}")))
            }
            _ => Ok(PendingRules::Nsenter { id, pid, script }),
        }
    }

    /// The second half: the rules go in.
    async fn commit_rules(&self, pending: PendingRules) -> Result<(), DockerError> {
        let (id, applied) = match pending {
            PendingRules::Nsenter { id, pid, script } => (id, apply_in_netns(pid, &script).await),
            PendingRules::Sidecar(id, s) => (id, s.run(&self.cluster.docker).await),
        };
        applied.map_err(|e| DockerError::Other(format!("node {id}: {e}")))
    }

    async fn each<'a, F, Fut>(&'a self, ids: &[u64], op: F) -> Result<(), DockerError>
    where
        F: Fn(u64) -> Fut,
        Fut: std::future::Future<Output = Result<(), DockerError>> + 'a,
    {
        for r in futures_util::future::join_all(ids.iter().map(|&id| op(id))).await {
            r?;
        }
        Ok(())
    }
}
