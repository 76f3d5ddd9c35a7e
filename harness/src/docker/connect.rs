//! Connecting to the engine and checking that the node image exists, with errors that say
//! what to do next.

use bollard::Docker;
use std::fmt;

/// Why the harness could not use Docker. Every variant's message ends with what to do.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine ({0}). Start it (`systemctl start docker`), check that \
         /var/run/docker.sock exists and that you may use it (run as root or join the `docker` \
         group), or set DOCKER_HOST"
    )]
    Unreachable(String),
    #[error("image `{0}` is missing: run `make image` (or pass --image with a tag that exists)")]
    ImageMissing(String),
    #[error("Docker call `{what}` failed: {source}")]
    Api {
        what: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl DockerError {
    /// Wraps an engine error with the call that produced it.
    pub fn api(what: impl fmt::Display) -> impl FnOnce(bollard::errors::Error) -> DockerError {
        let what = what.to_string();
        move |source| DockerError::Api { what, source }
    }
}

/// Connects to the local engine (DOCKER_HOST or the Unix socket) and negotiates the API
/// version down to what the engine speaks (Debian's 20.10 speaks 1.41).
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|e| DockerError::Unreachable(e.to_string()))?;
    let docker = docker
        .with_timeout(std::time::Duration::from_secs(30))
        .negotiate_version()
        .await
        .map_err(|e| DockerError::Unreachable(e.to_string()))?;
    Ok(docker)
}

/// Fails with [`DockerError::ImageMissing`] unless `image` exists locally (nothing is pulled:
/// there may be no registry).
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<(), DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Err(DockerError::ImageMissing(image.to_string())),
        Err(e) => Err(DockerError::api(format!("inspect image {image}"))(e)),
    }
}

/// True when `e` is the engine's "no such object" answer.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
