//! Removing what the harness created, by label: at the end of a run, on error, on Ctrl-C, on
//! panic (a guard plus a panic hook, since release builds abort on panic and skip `Drop`),
//! and for `harness clean`.

use super::connect::{connect, is_not_found, DockerError};
use super::RUN_LABEL;
use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::network::ListNetworksOptions;
use bollard::Docker;
use std::collections::HashMap;
use std::sync::{Mutex, Once};

/// What a cleanup removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupSummary {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
}

/// Removes every container and network labelled `faultline.run=<run_id>`.
pub async fn clean_run(docker: &Docker, run_id: &str) -> Result<CleanupSummary, DockerError> {
    clean_by_label(docker, &format!("{RUN_LABEL}={run_id}")).await
}

/// Removes every container and network labelled `faultline.run` (any run), and nothing else.
pub async fn clean_all(docker: &Docker) -> Result<CleanupSummary, DockerError> {
    clean_by_label(docker, RUN_LABEL).await
}

async fn clean_by_label(docker: &Docker, label: &str) -> Result<CleanupSummary, DockerError> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::api("list containers"))?;
    let mut summary = CleanupSummary::default();
    for c in containers {
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| id.clone());
        match docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => summary
                .containers
                .push(name.trim_start_matches('/').to_string()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::api(format!("remove container {name}"))(e)),
        }
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions { filters }))
        .await
        .map_err(DockerError::api("list networks"))?;
    for n in networks {
        let Some(name) = n.name else { continue };
        match docker.remove_network(&name).await {
            Ok(()) => summary.networks.push(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::api(format!("remove network {name}"))(e)),
        }
    }
    Ok(summary)
}

/// Runs that are up right now: the panic hook removes them.
static ACTIVE_RUNS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Cleans `run_id` synchronously from any context (also inside a tokio runtime or a panic
/// hook) on a fresh thread with its own runtime.
fn clean_blocking(run_id: String) {
    let worker = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if let Ok(docker) = connect().await {
                match clean_run(&docker, &run_id).await {
                    Ok(s) => crate::say_err!(
                        "harness: cleaned up run {run_id} ({} containers, {} networks)",
                        s.containers.len(),
                        s.networks.len()
                    ),
                    Err(e) => crate::say_err!(
                        "harness: cleanup of run {run_id} failed: {e}; run `harness clean`"
                    ),
                }
            }
        });
    });
    let _ = worker.join();
}

/// While alive, the run's Docker objects are removed if the process panics or the guard is
/// dropped without [`CleanupGuard::disarm`] (an early return, an unwinding panic).
pub struct CleanupGuard {
    run_id: Option<String>,
}

impl CleanupGuard {
    pub fn new(run_id: &str) -> CleanupGuard {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                previous(info);
                let runs: Vec<String> = match ACTIVE_RUNS.lock() {
                    Ok(mut runs) => runs.drain(..).collect(),
                    Err(poisoned) => poisoned.into_inner().drain(..).collect(),
                };
                for run in runs {
                    clean_blocking(run);
                }
            }));
        });
        if let Ok(mut runs) = ACTIVE_RUNS.lock() {
            runs.push(run_id.to_string());
        }
        CleanupGuard {
            run_id: Some(run_id.to_string()),
        }
    }

    /// The run was cleaned up (or is kept on purpose): do nothing on drop.
    pub fn disarm(mut self) {
        if let Some(run) = self.run_id.take() {
            forget_run(&run);
        }
    }
}

fn forget_run(run_id: &str) {
    if let Ok(mut runs) = ACTIVE_RUNS.lock() {
        runs.retain(|r| r != run_id);
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        if let Some(run) = self.run_id.take() {
            forget_run(&run);
            clean_blocking(run);
        }
    }
}
