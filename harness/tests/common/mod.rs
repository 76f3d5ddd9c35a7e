//! Shared by the Docker integration tests.

use harness::docker::{self, connect, ensure_image, RUN_LABEL};
use std::collections::HashMap;

/// The engine and the node image to test, or `None` (with a printed reason) when either is
/// missing, so `cargo test` on a machine without Docker skips instead of failing.
/// `make test` builds the image first, so in CI these tests run.
pub async fn docker_and_image_or_skip() -> Option<(bollard::Docker, String)> {
    let image =
        std::env::var("FAULTLINE_TEST_IMAGE").unwrap_or_else(|_| docker::DEFAULT_IMAGE.to_string());
    let docker = match connect().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP: {e}");
            return None;
        }
    };
    if let Err(e) = ensure_image(&docker, &image).await {
        eprintln!("SKIP: {e}");
        return None;
    }
    Some((docker, image))
}

/// The containers labelled with this run id (running or not).
pub async fn labelled_containers(
    docker: &bollard::Docker,
    run_id: &str,
) -> Vec<bollard::models::ContainerSummary> {
    docker
        .list_containers(Some(bollard::container::ListContainersOptions {
            all: true,
            filters: run_filter(run_id),
            ..Default::default()
        }))
        .await
        .expect("list containers")
}

/// The networks labelled with this run id.
pub async fn labelled_networks(
    docker: &bollard::Docker,
    run_id: &str,
) -> Vec<bollard::models::Network> {
    docker
        .list_networks(Some(bollard::network::ListNetworksOptions {
            filters: run_filter(run_id),
        }))
        .await
        .expect("list networks")
}

fn run_filter(run_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])])
}

/// Containers plus networks labelled with this run id: what a run left behind.
pub async fn labelled_objects(docker: &bollard::Docker, run_id: &str) -> usize {
    labelled_containers(docker, run_id).await.len() + labelled_networks(docker, run_id).await.len()
}
