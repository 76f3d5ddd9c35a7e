//! The faults, on nodes already resolved to ids: kill (SIGKILL), stop (SIGTERM), pause and
//! resume (cgroup freezer), restart (same container: same id, address and data), and
//! partitions (nftables, see [`super::partition`]).

use super::cluster::Cluster;
use super::connect::DockerError;
use super::partition::{apply_in_netns, nft_script, partition_prerequisites, Blocks};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Injects faults into one cluster and remembers the partition rules so a restarted node (a
/// new network namespace) gets them again.
pub struct Nemesis {
    cluster: Cluster,
    blocks: Blocks,
}

impl Nemesis {
    pub fn new(cluster: Cluster) -> Nemesis {
        Nemesis {
            cluster,
            blocks: Blocks::default(),
        }
    }

    /// Crash: SIGKILL, no goodbye.
    pub async fn kill(&self, ids: &[u64]) -> Result<(), DockerError> {
        self.each(ids, |id| self.cluster.signal(id, "SIGKILL"))
            .await
    }

    /// Graceful stop: SIGTERM; the node leaves and exits by itself (the container stays).
    pub async fn stop(&self, ids: &[u64]) -> Result<(), DockerError> {
        self.each(ids, |id| self.cluster.signal(id, "SIGTERM"))
            .await
    }

    pub async fn pause(&self, ids: &[u64]) -> Result<(), DockerError> {
        self.each(ids, |id| async move {
            let node = self.cluster.node(id)?;
            self.cluster
                .docker
                .pause_container(&node.container_id)
                .await
                .map_err(DockerError::api(format!("pause {}", node.name)))
        })
        .await
    }

    pub async fn resume(&self, ids: &[u64]) -> Result<(), DockerError> {
        self.each(ids, |id| async move {
            let node = self.cluster.node(id)?;
            self.cluster
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
    pub async fn restart(&self, ids: &[u64]) -> Result<u64, DockerError> {
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
            if let Some(pid) = self.cluster.pid(id).await? {
                self.apply_rules(id, pid).await?;
            }
        }
        Ok(issued_ms)
    }

    /// Cuts the network between groups (added to any cuts already in place). Network faults
    /// return the host ms at which the rules started going in (see [`Nemesis::apply_all`]).
    pub async fn partition(&mut self, groups: &[Vec<u64>]) -> Result<u64, DockerError> {
        self.blocks.partition(groups);
        self.apply_all().await
    }

    /// One-way cut: `to` stops hearing `from`.
    pub async fn cut(&mut self, from: &[u64], to: &[u64]) -> Result<u64, DockerError> {
        for &f in from {
            for &t in to {
                self.blocks.cut(f, t);
            }
        }
        self.apply_all().await
    }

    /// Cuts `ids` off from every other node, both ways.
    pub async fn isolate(&mut self, ids: &[u64]) -> Result<u64, DockerError> {
        let all = self.cluster.ids();
        for &id in ids {
            self.blocks.isolate(id, &all);
        }
        self.apply_all().await
    }

    /// Removes every cut.
    pub async fn heal(&mut self) -> Result<u64, DockerError> {
        self.blocks.clear();
        self.apply_all().await
    }

    /// Checks, before a scenario that needs partitions starts, that they can be made.
    pub fn check_partition_support() -> Result<(), DockerError> {
        partition_prerequisites().map_err(DockerError::Other)
    }

    /// Writes every node's drop list into its namespace, all at once. The containers' pids
    /// are looked up first, so the returned timestamp (taken just before the first `nft`
    /// starts) marks the fault without the Docker round trips in front of it.
    async fn apply_all(&self) -> Result<u64, DockerError> {
        let ids = self.cluster.ids();
        let pids = futures_util::future::join_all(ids.iter().map(|&id| self.cluster.pid(id))).await;
        let mut running = Vec::new();
        for (id, pid) in ids.into_iter().zip(pids) {
            // A node that is not running gets its rules at its restart.
            if let Some(pid) = pid? {
                running.push((id, pid));
            }
        }
        let started_ms = super::now_ms();
        let applies = running
            .into_iter()
            .map(|(id, pid)| self.apply_rules(id, pid));
        for r in futures_util::future::join_all(applies).await {
            r?;
        }
        Ok(started_ms)
    }

    /// Writes node `id`'s current drop list into the namespace of its process `pid`.
    async fn apply_rules(&self, id: u64, pid: u32) -> Result<(), DockerError> {
        let sources: Vec<Ipv4Addr> = self
            .blocks
            .dropped_by(id)
            .into_iter()
            .filter_map(|s| self.cluster.node(s).ok().map(|n| n.ip))
            .collect();
        apply_in_netns(pid, &nft_script(&sources))
            .await
            .map_err(|e| DockerError::Other(format!("{e}; partitions need root and nftables")))
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
