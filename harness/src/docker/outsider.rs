//! The outsider of a `forge` step: a container of the node image running the
//! `chat-node forge` test tool on the run's network, at an address no node has (.200 and
//! up; nodes are .11 …), labelled with the run like everything else so every cleanup path
//! (teardown, the guard, `harness clean`) removes it. It is never a member: nothing in the
//! cluster knows it, the partitions' drop lists do not name it, so it reaches every node.
//! The tool stops by itself when its time is up; teardown removes the container.

use super::cluster::Cluster;
use super::connect::{is_not_found, DockerError};
use super::RUN_LABEL;
use crate::backend::OutsiderSpec;
use bollard::container::{
    Config, CreateContainerOptions, NetworkingConfig, RemoveContainerOptions, StartContainerOptions,
};
use bollard::models::{EndpointIpamConfig, EndpointSettings, HealthConfig, HostConfig};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Label carrying an outsider container's number in its run (1-based).
pub const OUTSIDER_LABEL: &str = "faultline.outsider";
/// Host part of the first outsider's address.
const FIRST_HOST: u8 = 200;
/// Outsiders one run may start.
pub const MAX_OUTSIDERS: usize = 50;
/// The nodes' peer port (the harness never changes it).
const PEER_PORT: u16 = 7400;

/// A started outsider.
#[derive(Clone, Debug)]
pub struct Outsider {
    pub number: usize,
    pub name: String,
    pub container_id: String,
    pub ip: Ipv4Addr,
}

/// The tool's command line: every node's peer address as a target (an outsider on the
/// bridge learns them from the first broadcast hello anyway).
pub fn command(cluster: &Cluster, spec: &OutsiderSpec) -> Vec<String> {
    let mut cmd = vec![
        "forge".to_string(),
        "--for".to_string(),
        format!("{}ms", spec.duration.as_millis()),
        "--rate".to_string(),
        spec.rate_per_s.to_string(),
        "--kinds".to_string(),
        spec.kinds.join(","),
        "--seed".to_string(),
        spec.seed.to_string(),
    ];
    for n in &cluster.nodes {
        cmd.push("--target".to_string());
        cmd.push(format!("{}:{PEER_PORT}", n.ip));
    }
    for u in &spec.users {
        cmd.push("--user".to_string());
        cmd.push(u.clone());
    }
    for r in &spec.rooms {
        cmd.push("--room".to_string());
        cmd.push(r.clone());
    }
    cmd
}

/// Creates and starts outsider `number` (1-based) of the run.
pub async fn start(
    cluster: &Cluster,
    image: &str,
    number: usize,
    spec: &OutsiderSpec,
) -> Result<Outsider, DockerError> {
    if number == 0 || number > MAX_OUTSIDERS {
        return Err(DockerError::Other(format!(
            "a run can start at most {MAX_OUTSIDERS} outsiders (forge steps)"
        )));
    }
    let name = format!("fl-{}-outsider{number}", cluster.run_id);
    let ip = cluster.subnet.host(FIRST_HOST + (number - 1) as u8);
    let network = cluster.network.clone();
    let endpoint = EndpointSettings {
        ipam_config: Some(EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let config = Config {
        image: Some(image.to_string()),
        hostname: Some(format!("outsider{number}")),
        cmd: Some(command(cluster, spec)),
        labels: Some(HashMap::from([
            (RUN_LABEL.to_string(), cluster.run_id.clone()),
            (OUTSIDER_LABEL.to_string(), number.to_string()),
        ])),
        // The image's healthcheck asks a local node; there is none here.
        healthcheck: Some(HealthConfig {
            test: Some(vec!["NONE".to_string()]),
            ..Default::default()
        }),
        host_config: Some(HostConfig {
            network_mode: Some(network.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: HashMap::from([(network, endpoint)]),
        }),
        ..Default::default()
    };
    let created = cluster
        .docker
        .create_container(
            Some(CreateContainerOptions {
                name: name.clone(),
                platform: None,
            }),
            config,
        )
        .await
        .map_err(DockerError::api(format!("create container {name}")))?;
    cluster
        .docker
        .start_container(&created.id, None::<StartContainerOptions<String>>)
        .await
        .map_err(DockerError::api(format!("start {name}")))?;
    Ok(Outsider {
        number,
        name,
        container_id: created.id,
        ip,
    })
}

/// Removes an outsider's container (forcibly; a missing one is no error).
pub async fn remove(cluster: &Cluster, o: &Outsider) -> Result<(), DockerError> {
    match cluster
        .docker
        .remove_container(
            &o.container_id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
    {
        Err(e) if !is_not_found(&e) => Err(DockerError::api(format!("remove {}", o.name))(e)),
        _ => Ok(()),
    }
}
