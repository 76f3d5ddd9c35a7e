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
         group), or set DOCKER_HOST=unix://<socket>"
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

/// Which engine `DOCKER_HOST` names: `None` for the default local socket, `Some(path)` for
/// a `unix://` socket. Any other scheme (tcp, ssh, …) is refused with what to do instead,
/// never silently replaced by the local engine: faults are applied through the engine's
/// processes under this host's `/proc`, which a remote engine's are not.
pub fn engine_socket(docker_host: Option<&str>) -> Result<Option<String>, String> {
    match docker_host.map(str::trim) {
        None | Some("") => Ok(None),
        Some(h) => match h.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(Some(path.to_string())),
            _ => Err(format!(
                "DOCKER_HOST={h} is not supported: the harness needs a local engine (a unix:// \
                 socket), because it applies faults through the containers' processes under \
                 this host's /proc. Unset DOCKER_HOST, or run the harness on the engine's host \
                 (a remote engine's socket forwarded with `ssh -L /tmp/d.sock:/var/run/docker.sock` \
                 still has its processes elsewhere)"
            )),
        },
    }
}

/// Connects to the local engine (`DOCKER_HOST=unix://…` or the default socket) and
/// negotiates the API version down to what the engine speaks (Debian's 20.10 speaks 1.41).
pub async fn connect() -> Result<Docker, DockerError> {
    let host = std::env::var("DOCKER_HOST").ok();
    let docker = match engine_socket(host.as_deref()).map_err(DockerError::Other)? {
        None => Docker::connect_with_local_defaults(),
        Some(path) => Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION),
    }
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

#[cfg(test)]
mod tests {
    use super::engine_socket;

    #[test]
    fn docker_host_is_honoured_for_unix_and_refused_otherwise() {
        assert_eq!(engine_socket(None), Ok(None));
        assert_eq!(engine_socket(Some("")), Ok(None));
        assert_eq!(
            engine_socket(Some("unix:///run/user/1000/docker.sock")),
            Ok(Some("/run/user/1000/docker.sock".to_string()))
        );
        for remote in ["tcp://10.0.0.5:2375", "ssh://me@host", "npipe:////./pipe/x"] {
            let e = engine_socket(Some(remote)).unwrap_err();
            assert!(e.contains(remote) && e.contains("not supported"), "{e}");
        }
    }
}
