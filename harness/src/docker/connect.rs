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
         group), or set DOCKER_HOST=unix://<socket> (for DOCKER_HOST=tcp://…: check the address \
         and that the engine listens there)"
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

/// The engine `DOCKER_HOST` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Unset: the default local socket.
    Default,
    /// `unix://<path>`.
    Unix(String),
    /// `tcp://host:port`, plain HTTP (no TLS in this build).
    Tcp(String),
}

impl Engine {
    /// Whether its containers' processes are expected under this host's `/proc` (checked
    /// again per process before a network fault: [`super::netaccess`]).
    pub fn is_local_socket(&self) -> bool {
        !matches!(self, Engine::Tcp(_))
    }
}

/// Reads `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`): a unix socket or plain tcp is honoured,
/// anything else refused with what to do instead, never silently replaced by the local
/// engine.
pub fn engine_from(docker_host: Option<&str>, tls_verify: Option<&str>) -> Result<Engine, String> {
    let h = match docker_host.map(str::trim) {
        None | Some("") => return Ok(Engine::Default),
        Some(h) => h,
    };
    let forward = "forward the engine's socket over ssh and name the local end: `ssh -nNT -L \
                   /tmp/fl-docker.sock:/var/run/docker.sock <user>@<host>`, then \
                   DOCKER_HOST=unix:///tmp/fl-docker.sock";
    if let Some(path) = h.strip_prefix("unix://") {
        return if path.is_empty() {
            Err(format!(
                "DOCKER_HOST={h} names no socket: write unix:///path/to/docker.sock"
            ))
        } else {
            Ok(Engine::Unix(path.to_string()))
        };
    }
    if let Some(addr) = h.strip_prefix("tcp://") {
        if addr.is_empty() {
            return Err(format!(
                "DOCKER_HOST={h} names no address: write tcp://<host>:2375"
            ));
        }
        if tls_verify.is_some_and(|v| !v.trim().is_empty() && v.trim() != "0") {
            return Err(format!(
                "DOCKER_HOST={h} with DOCKER_TLS_VERIFY: this harness is built without TLS \
                 for the engine API; {forward}"
            ));
        }
        return Ok(Engine::Tcp(format!("tcp://{addr}")));
    }
    if h.starts_with("ssh://") {
        return Err(format!(
            "DOCKER_HOST={h} is not supported: this harness's engine client has no ssh \
             transport; {forward}"
        ));
    }
    Err(format!(
        "DOCKER_HOST={h} is not supported: use unix:///path/to/docker.sock or \
         tcp://<host>:<port> (or unset it for the local engine)"
    ))
}

/// The engine `DOCKER_HOST` names in this process's environment.
pub fn engine() -> Result<Engine, String> {
    engine_from(
        std::env::var("DOCKER_HOST").ok().as_deref(),
        std::env::var("DOCKER_TLS_VERIFY").ok().as_deref(),
    )
}

/// Connects to the engine `DOCKER_HOST` names (the local socket by default) and negotiates
/// the API version down to what the engine speaks (Debian's 20.10 speaks 1.41).
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = match engine().map_err(DockerError::Other)? {
        Engine::Default => Docker::connect_with_local_defaults(),
        Engine::Unix(path) => Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION),
        Engine::Tcp(addr) => Docker::connect_with_http(&addr, 120, bollard::API_DEFAULT_VERSION),
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
    use super::*;

    #[test]
    fn docker_host_is_honoured_for_unix_and_tcp_and_refused_otherwise() {
        assert_eq!(engine_from(None, None), Ok(Engine::Default));
        assert_eq!(engine_from(Some(""), None), Ok(Engine::Default));
        assert_eq!(
            engine_from(Some("unix:///run/user/1000/docker.sock"), None),
            Ok(Engine::Unix("/run/user/1000/docker.sock".to_string()))
        );
        let tcp = engine_from(Some("tcp://10.0.0.5:2375"), None).unwrap();
        assert_eq!(tcp, Engine::Tcp("tcp://10.0.0.5:2375".to_string()));
        assert!(!tcp.is_local_socket() && Engine::Default.is_local_socket());
        assert_eq!(
            engine_from(Some("tcp://10.0.0.5:2375"), Some("0")),
            Ok(Engine::Tcp("tcp://10.0.0.5:2375".to_string()))
        );
        let e = engine_from(Some("tcp://10.0.0.5:2376"), Some("1")).unwrap_err();
        assert!(
            e.contains("without TLS") && e.contains("ssh -nNT -L"),
            "{e}"
        );
        let e = engine_from(Some("ssh://me@host"), None).unwrap_err();
        assert!(
            e.contains("ssh://me@host is not supported") && e.contains("ssh -nNT -L"),
            "{e}"
        );
        for bad in ["npipe:////./pipe/x", "unix://", "tcp://", "10.0.0.5:2375"] {
            let e = engine_from(Some(bad), None).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
