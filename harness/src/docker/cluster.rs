//! A run's cluster: one labelled bridge network with its own /24 and one container per node
//! at a static address.

use super::connect::{is_not_found, DockerError};
use super::subnet::{free_subnets, host_routes, Ipv4Net};
use super::{container_name, network_name, CLIENT_PORT, NODE_LABEL, RUN_LABEL};
use bollard::container::{
    Config, CreateContainerOptions, KillContainerOptions, NetworkingConfig, RemoveContainerOptions,
    StartContainerOptions,
};
use bollard::models::{EndpointIpamConfig, EndpointSettings, HostConfig, Ipam, IpamConfig};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use bollard::Docker;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

/// What to start.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub run_id: String,
    pub image: String,
    /// Number of containers (node ids 1..=nodes).
    pub nodes: usize,
    /// `chat-node serve` flags common to every node (the harness adds `--id` and
    /// `--data-dir /data`).
    pub serve_args: Vec<String>,
    /// Extra environment (`KEY=value`) for every node.
    pub env: Vec<String>,
}

/// One node's container.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub id: u64,
    pub name: String,
    pub container_id: String,
    pub ip: Ipv4Addr,
}

impl NodeHandle {
    /// Where the harness's clients reach this node (the host routes to the bridge directly).
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, CLIENT_PORT))
    }
}

/// A created cluster. Dropping it does not remove anything: call [`Cluster::remove`] (the
/// runner does, and a [`super::CleanupGuard`] covers errors and panics).
#[derive(Clone)]
pub struct Cluster {
    pub docker: Docker,
    pub run_id: String,
    pub network: String,
    pub subnet: Ipv4Net,
    pub nodes: Vec<NodeHandle>,
}

/// Host part of node `id`'s address: .11, .12, … (the gateway is .1).
fn host_part(id: u64) -> Option<u8> {
    u8::try_from(10 + id).ok().filter(|h| *h < 255)
}

impl Cluster {
    /// Creates the network and the containers (not started yet).
    pub async fn create(docker: &Docker, spec: &ClusterSpec) -> Result<Cluster, DockerError> {
        if spec.nodes == 0 || host_part(spec.nodes as u64).is_none() {
            return Err(DockerError::Other(format!(
                "a cluster needs 1..=244 nodes, the scenario asks for {}",
                spec.nodes
            )));
        }
        let network = network_name(&spec.run_id);
        let subnet = create_network(docker, &network, &spec.run_id).await?;
        let mut cluster = Cluster {
            docker: docker.clone(),
            run_id: spec.run_id.clone(),
            network,
            subnet,
            nodes: Vec::new(),
        };
        for id in 1..=spec.nodes as u64 {
            let node = create_node(docker, spec, &cluster.network, subnet, id).await?;
            cluster.nodes.push(node);
        }
        Ok(cluster)
    }

    /// Starts every container at once (concurrent start is the seeds' worst case, and the
    /// fastest way up).
    pub async fn start_all(&self) -> Result<(), DockerError> {
        let starts = self.nodes.iter().map(|n| self.start(n.id));
        for result in futures_util::future::join_all(starts).await {
            result?;
        }
        Ok(())
    }

    /// Starts (or restarts after a kill/stop) node `id`: same container, address and data.
    pub async fn start(&self, id: u64) -> Result<(), DockerError> {
        let node = self.node(id)?;
        self.docker
            .start_container(&node.container_id, None::<StartContainerOptions<String>>)
            .await
            .map_err(DockerError::api(format!("start {}", node.name)))
    }

    /// Node `id`, or an error naming the valid range.
    pub fn node(&self, id: u64) -> Result<&NodeHandle, DockerError> {
        self.nodes.iter().find(|n| n.id == id).ok_or_else(|| {
            DockerError::Other(format!(
                "no node {id} in this cluster (nodes are 1..={})",
                self.nodes.len()
            ))
        })
    }

    /// Node ids in order.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Node `id`'s container state as the engine reports it now.
    async fn state(&self, id: u64) -> Result<bollard::models::ContainerState, DockerError> {
        let node = self.node(id)?;
        let info = self
            .docker
            .inspect_container(&node.container_id, None)
            .await
            .map_err(DockerError::api(format!("inspect {}", node.name)))?;
        Ok(info.state.unwrap_or_default())
    }

    /// The pid of node `id`'s init process on the host, when it is running.
    pub async fn pid(&self, id: u64) -> Result<Option<u32>, DockerError> {
        let state = self.state(id).await?;
        let pid = state.pid.unwrap_or(0);
        Ok((state.running == Some(true) && pid > 0).then_some(pid as u32))
    }

    /// When node `id`'s process last exited, as the engine recorded it (host ms), once it is
    /// no longer running and the exit is not older than `since_ms`; polled for up to 2 s,
    /// since the engine records the exit a moment after `docker kill` returns.
    pub async fn exited_at_ms(&self, id: u64, since_ms: u64) -> Result<Option<u64>, DockerError> {
        for _ in 0..80 {
            let state = self.state(id).await?;
            let finished = state.finished_at.as_deref().and_then(rfc3339_ms);
            match finished {
                Some(ms) if state.running != Some(true) && ms + 1 >= since_ms => {
                    return Ok(Some(ms))
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
            }
        }
        Ok(None)
    }

    /// Sends `signal` (`SIGKILL`, `SIGTERM`, …) to node `id`'s process.
    pub async fn signal(&self, id: u64, signal: &str) -> Result<(), DockerError> {
        let node = self.node(id)?;
        self.docker
            .kill_container(&node.container_id, Some(KillContainerOptions { signal }))
            .await
            .map_err(DockerError::api(format!("kill -s {signal} {}", node.name)))
    }

    /// Removes the containers (forcibly) and the network. Missing objects are not errors.
    pub async fn remove(&self) -> Result<(), DockerError> {
        let removals = self.nodes.iter().map(|n| {
            self.docker.remove_container(
                &n.container_id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
        });
        for result in futures_util::future::join_all(removals).await {
            if let Err(e) = result {
                if !is_not_found(&e) {
                    return Err(DockerError::api("remove container")(e));
                }
            }
        }
        match self.docker.remove_network(&self.network).await {
            Err(e) if !is_not_found(&e) => Err(DockerError::api("remove network")(e)),
            _ => Ok(()),
        }
    }
}

/// Subnets already used by Docker networks.
async fn docker_subnets(docker: &Docker) -> Result<Vec<Ipv4Net>, DockerError> {
    let networks = docker
        .list_networks(None::<ListNetworksOptions<String>>)
        .await
        .map_err(DockerError::api("list networks"))?;
    Ok(networks
        .iter()
        .filter_map(|n| n.ipam.as_ref()?.config.as_ref())
        .flatten()
        .filter_map(|c| Ipv4Net::parse(c.subnet.as_deref()?))
        .collect())
}

/// Creates the run's bridge on the first free /24; retries on the next one if another run
/// took it in the meantime.
async fn create_network(docker: &Docker, name: &str, run_id: &str) -> Result<Ipv4Net, DockerError> {
    let mut used = docker_subnets(docker).await?;
    used.extend(host_routes());
    let start: u8 = rand::random();
    let mut last_error = None;
    for subnet in free_subnets(&used, start).into_iter().take(5) {
        let options = CreateNetworkOptions {
            name: name.to_string(),
            check_duplicate: true,
            driver: "bridge".to_string(),
            ipam: Ipam {
                driver: Some("default".to_string()),
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.to_string()),
                    gateway: Some(subnet.host(1).to_string()),
                    ..Default::default()
                }]),
                options: None,
            },
            labels: HashMap::from([(RUN_LABEL.to_string(), run_id.to_string())]),
            ..Default::default()
        };
        match docker.create_network(options).await {
            Ok(_) => return Ok(subnet),
            Err(e) => last_error = Some(e),
        }
    }
    Err(match last_error {
        Some(e) => DockerError::api(format!("create network {name}"))(e),
        None => DockerError::Other(
            "no free /24 left in 10.213.0.0/16: run `harness clean` to remove old runs".into(),
        ),
    })
}

async fn create_node(
    docker: &Docker,
    spec: &ClusterSpec,
    network: &str,
    subnet: Ipv4Net,
    id: u64,
) -> Result<NodeHandle, DockerError> {
    let name = container_name(&spec.run_id, id);
    let host = host_part(id).ok_or_else(|| DockerError::Other(format!("node id {id} too big")))?;
    let ip = subnet.host(host);
    let mut cmd = vec![
        "serve".to_string(),
        "--id".to_string(),
        id.to_string(),
        "--data-dir".to_string(),
        "/data".to_string(),
    ];
    cmd.extend(spec.serve_args.iter().cloned());
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let config = Config {
        image: Some(spec.image.clone()),
        hostname: Some(format!("n{id}")),
        cmd: Some(cmd),
        env: Some(spec.env.clone()),
        labels: Some(HashMap::from([
            (RUN_LABEL.to_string(), spec.run_id.clone()),
            (NODE_LABEL.to_string(), id.to_string()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: HashMap::from([(network.to_string(), endpoint)]),
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.clone(),
                platform: None,
            }),
            config,
        )
        .await
        .map_err(DockerError::api(format!("create container {name}")))?;
    Ok(NodeHandle {
        id,
        name,
        container_id: created.id,
        ip,
    })
}

/// Host ms of an RFC 3339 time such as the engine's `2026-12-04T03:57:15.123456789Z`; `None`
/// for the engine's "never" (`0001-01-01T00:00:00Z`) or anything unreadable.
fn rfc3339_ms(text: &str) -> Option<u64> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(t.timestamp_millis())
        .ok()
        .filter(|ms| *ms > 0)
}

#[cfg(test)]
mod exit_time_tests {
    use super::rfc3339_ms;

    #[test]
    fn the_engines_exit_times_are_read_to_the_millisecond() {
        assert_eq!(
            rfc3339_ms("2026-12-04T03:57:15.123456789Z"),
            Some(1_796_356_635_123)
        );
        assert_eq!(rfc3339_ms("0001-01-01T00:00:00Z"), None, "never exited");
        assert_eq!(rfc3339_ms("yesterday"), None);
    }
}
