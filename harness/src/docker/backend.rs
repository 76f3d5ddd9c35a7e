//! Docker as a [`Backend`]: one labelled network and one container per node, faults by the
//! nemesis (signals, the cgroup freezer, nftables in each node's network namespace), the
//! nodes' stdout/stderr followed into history records, and everything removed by label at
//! the end (a guard also covers errors, Ctrl-C and panics).

use super::cluster::{Cluster, ClusterSpec};
use super::connect::{connect, ensure_image, DockerError};
use super::logs::{LogLine, LogStreams};
use super::nemesis::Nemesis;
use super::outsider::{self, Outsider};
use super::records::log_records;
use super::{now_ms, CleanupGuard, RUN_LABEL};
use crate::backend::{Backend, BackendError, LinkFault, OutsiderSpec, Stamped};
use crate::history::Record;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// A run's cluster on the Docker engine.
pub struct DockerBackend {
    cluster: Cluster,
    nemesis: Nemesis,
    logs: Option<LogStreams>,
    log_rx: UnboundedReceiver<LogLine>,
    /// Removes the run's objects if teardown never happens (error, panic).
    guard: Option<CleanupGuard>,
    /// The node image (the outsiders of `forge` steps run it too).
    image: String,
    /// Outsiders started by `forge` steps, removed at teardown before the network.
    outsiders: Vec<Outsider>,
    /// Harness notes not yet handed over (what the delayers did).
    notes: Vec<Record>,
}

impl DockerBackend {
    /// Notes what the delayers stopped so far did (all of them stopped first when `all`).
    fn note_delayers(&mut self, all: bool) {
        for msg in self.nemesis.delayer_notes(all) {
            crate::say!("  {msg}");
            self.notes
                .push(Record::Harness(crate::history::HarnessRecord {
                    ts_ms: super::now_ms(),
                    msg,
                }));
        }
    }

    /// Connects to the engine, checks the image and (when the scenario needs them) that
    /// network faults can be made here, then creates the network and the containers (not
    /// started yet) and starts following their logs.
    pub async fn create(spec: &ClusterSpec, network_faults: bool) -> Result<Self, DockerError> {
        if network_faults {
            let engine = super::engine().map_err(DockerError::Other)?;
            Nemesis::check_network_fault_support(&engine)?;
        }
        let client = connect().await?;
        ensure_image(&client, &spec.image).await?;
        let guard = CleanupGuard::new(&spec.run_id);
        let cluster = Cluster::create(&client, spec).await?;
        let (logs, log_rx) = LogStreams::start(&cluster);
        Ok(DockerBackend {
            nemesis: Nemesis::new(cluster.clone()),
            cluster,
            logs: Some(logs),
            log_rx,
            guard: Some(guard),
            image: spec.image.clone(),
            outsiders: Vec::new(),
            notes: Vec::new(),
        })
    }

    /// Runs `op` and stamps it with the time just before it (signals and the freezer act at
    /// once; the Docker round trip is after the stamp, so figures include it).
    async fn stamped<F>(op: F) -> Stamped
    where
        F: std::future::Future<Output = Result<(), DockerError>>,
    {
        let ts = now_ms();
        op.await?;
        Ok(ts)
    }

    async fn stamped_when_done<F>(op: F) -> Stamped
    where
        F: std::future::Future<Output = Result<(), DockerError>>,
    {
        op.await?;
        Ok(now_ms())
    }
}

fn failed(e: DockerError) -> BackendError {
    BackendError::from(e)
}

impl Backend for DockerBackend {
    fn describe(&self) -> String {
        format!(
            "docker: {} on {}",
            self.cluster.network, self.cluster.subnet
        )
    }

    fn ids(&self) -> Vec<u64> {
        self.cluster.ids()
    }

    fn client_addrs(&self) -> Vec<SocketAddr> {
        self.cluster.nodes.iter().map(|n| n.client_addr()).collect()
    }

    fn start<'a>(&'a mut self, ids: &'a [u64], all_at_once: bool) -> BoxFuture<'a, Stamped> {
        Box::pin(async move {
            let ts = now_ms();
            if all_at_once {
                let starts = ids.iter().map(|&id| self.cluster.start(id));
                for r in futures_util::future::join_all(starts).await {
                    r?;
                }
            } else {
                for &id in ids {
                    self.cluster.start(id).await?;
                }
            }
            Ok(ts)
        })
    }

    /// Stamped when the first target's process died, as the engine recorded it: under load
    /// the engine delivers SIGKILL up to ~300 ms after the request, and that delay is the
    /// harness's, not the cluster's (detection and failover are measured from the stamp).
    /// Falls back to the request's time when the engine does not say.
    fn kill<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move {
            let requested = now_ms();
            self.nemesis.kill(ids).await?;
            let mut died: Option<u64> = None;
            for &id in ids {
                if let Some(ms) = self.cluster.exited_at_ms(id, requested).await? {
                    died = Some(died.map_or(ms, |d| d.min(ms)));
                }
            }
            Ok(died.map_or(requested, |d| d.max(requested)))
        })
    }

    fn stop<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(Self::stamped(self.nemesis.stop(ids)))
    }

    /// Stamped when the engine says the container is frozen (the call returns then): under
    /// load the freeze took effect up to ~370 ms after the request (chaos seed 91: the
    /// observers' last heartbeat from the paused node arrived 372 ms after a request-time
    /// stamp), and that delay is the harness's, as with `kill`.
    fn pause<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(Self::stamped_when_done(self.nemesis.pause(ids)))
    }

    /// Stamped before the request, unlike `pause`: the node may run again any time after it,
    /// and its first events must not precede its wake-up stamp (the stale-leader rule's grace
    /// counts from there: a resume stamped when the call returned came 12 ms after the
    /// woken leader's first commit, and that commit was judged stale).
    fn resume<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(Self::stamped(self.nemesis.resume(ids)))
    }

    fn restart<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move {
            // Stamped when `docker start` is issued (after a stopping process has exited).
            let ts = self.nemesis.restart(ids).await.map_err(failed)?;
            if let Some(logs) = self.logs.as_ref() {
                for &id in ids {
                    logs.reattach(id);
                }
            }
            Ok(ts)
        })
    }

    fn partition<'a>(&'a mut self, groups: &'a [Vec<u64>]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { Ok(self.nemesis.partition(groups).await?) })
    }

    fn cut<'a>(&'a mut self, from: &'a [u64], to: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { Ok(self.nemesis.cut(from, to).await?) })
    }

    fn isolate<'a>(&'a mut self, ids: &'a [u64]) -> BoxFuture<'a, Stamped> {
        Box::pin(async move { Ok(self.nemesis.isolate(ids).await?) })
    }

    fn heal(&mut self) -> BoxFuture<'_, Stamped> {
        Box::pin(async move { Ok(self.nemesis.heal().await?) })
    }

    fn link<'a>(
        &'a mut self,
        fault: &'a LinkFault,
    ) -> BoxFuture<'a, Result<(u64, String), BackendError>> {
        Box::pin(self.nemesis.link(fault))
    }

    fn forge<'a>(
        &'a mut self,
        spec: &'a OutsiderSpec,
    ) -> BoxFuture<'a, Result<(u64, String), BackendError>> {
        Box::pin(async move {
            let number = self.outsiders.len() + 1;
            // Stamped when the container is asked to start: it forges from its first moment.
            let ts = now_ms();
            let o = outsider::start(&self.cluster, &self.image, number, spec)
                .await
                .map_err(failed)?;
            if let Some(logs) = self.logs.as_mut() {
                logs.follow_outsider(&self.cluster.docker, number, &o.container_id);
            }
            let address = o.ip.to_string();
            self.outsiders.push(o);
            Ok((ts, address))
        })
    }

    fn now_ms(&self) -> u64 {
        now_ms()
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }

    fn records(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        while let Ok(line) = self.log_rx.try_recv() {
            out.extend(log_records(line));
        }
        self.note_delayers(false);
        out.append(&mut self.notes);
        out
    }

    fn teardown(&mut self, keep: bool) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            // What the delayers did is noted before the cluster goes.
            self.note_delayers(true);
            // Lines already read stay in the channel for `records`.
            if let Some(l) = self.logs.take() {
                l.stop().await;
            }
            let cluster = &self.cluster;
            if keep {
                if let Some(g) = self.guard.take() {
                    g.disarm();
                }
                crate::say!(
                    "  --keep: cluster{} left running ({}: {}). Remove it with `harness clean`, or \
                     `docker rm -f $(docker ps -aq --filter label={}={})` and `docker network rm {}`",
                    if self.outsiders.is_empty() { "" } else { " and outsiders" },
                    cluster.network,
                    cluster
                        .nodes
                        .iter()
                        .map(|n| format!("{}={}", n.name, n.ip))
                        .collect::<Vec<_>>()
                        .join(" "),
                    RUN_LABEL,
                    cluster.run_id,
                    cluster.network
                );
                return;
            }
            let t0 = Instant::now();
            // Outsiders first: the network cannot go while they are attached to it.
            for o in std::mem::take(&mut self.outsiders) {
                if let Err(e) = outsider::remove(cluster, &o).await {
                    crate::say_err!("  teardown: {e}; the label cleanup retries");
                }
            }
            match cluster.remove().await {
                Ok(()) => {
                    if let Some(g) = self.guard.take() {
                        g.disarm();
                    }
                    crate::say!("  cluster removed in {} ms", t0.elapsed().as_millis());
                }
                // The guard's drop retries by label.
                Err(e) => {
                    crate::say_err!("  teardown: {e}; retrying by label");
                    self.guard = None;
                }
            }
        })
    }
}
