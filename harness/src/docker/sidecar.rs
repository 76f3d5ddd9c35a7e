//! Network faults through the engine, for nodes whose namespace this host cannot enter
//! ([`super::netaccess`]): the nft script runs in a short-lived sidecar container that shares
//! the node's network namespace (`--network container:<id>`, `NET_ADMIN`), labelled with the
//! run so teardown and `harness clean` remove it. The node image has no `nft`, and there may
//! be no registry, so the sidecar image is built here, `FROM scratch`, out of this host's own
//! `nft` binary and the libraries `ldd` lists for it (DESIGN.md) — which assumes the engine's
//! host has this host's architecture.
//!
//! Only nft-made faults go this way (partitions, cuts, isolation, loss, heal). Delay and
//! duplication by the NFQUEUE delayer need a harness thread inside the namespace, and
//! netem/tbf the host end of the node's veth: both are refused as unsupported there.

use super::{DockerError, RUN_LABEL};
use bollard::container::{
    Config, CreateContainerOptions, LogsOptions, RemoveContainerOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use bollard::image::BuildImageOptions;
use bollard::models::HostConfig;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Label carrying the node id a sidecar served.
pub const SIDECAR_LABEL: &str = "faultline.sidecar";
/// The sidecar image's name (the tag says which nft it holds).
const IMAGE_REPO: &str = "faultline/nft-sidecar";

/// One file for a tar archive: its path inside, its bytes, its mode.
pub struct TarEntry {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A ustar archive of regular files (what the engine's build and upload calls take).
pub fn tar(entries: &[TarEntry]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        let (prefix, name) = split_ustar_path(&e.path)?;
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let octal = |v: u64, width: usize| format!("{v:0w$o}\0", w = width - 1);
        h[100..108].copy_from_slice(octal(e.mode as u64, 8).as_bytes());
        h[108..116].copy_from_slice(octal(0, 8).as_bytes());
        h[116..124].copy_from_slice(octal(0, 8).as_bytes());
        h[124..136].copy_from_slice(octal(e.data.len() as u64, 12).as_bytes());
        h[136..148].copy_from_slice(octal(0, 12).as_bytes());
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        // The checksum is computed with its own field as spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

/// ustar keeps a path as a prefix (≤ 155 bytes) and a name (≤ 100), split at a `/`.
fn split_ustar_path(path: &str) -> Result<(&str, &str), String> {
    if path.len() <= 100 {
        return Ok(("", path));
    }
    path.char_indices()
        .filter(|(_, c)| *c == '/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(p, n)| p.len() <= 155 && n.len() <= 100 && !n.is_empty())
        .ok_or_else(|| format!("path too long for a tar archive: {path}"))
}

/// The libraries `ldd` lists (`libx.so => /lib/…/libx.so (0x…)` and the loader's own line).
pub fn ldd_paths(ldd_output: &str) -> Vec<PathBuf> {
    ldd_output
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The build context: a Dockerfile and `rootfs/` holding nft and its libraries at their own
/// paths (symlinks followed: the file's bytes under the name the loader asks for).
fn build_context(nft: &Path) -> Result<Vec<u8>, String> {
    let ldd = std::process::Command::new("ldd")
        .arg(nft)
        .output()
        .map_err(|e| format!("cannot run ldd on {}: {e}", nft.display()))?;
    let mut files = vec![nft.to_path_buf()];
    files.extend(ldd_paths(&String::from_utf8_lossy(&ldd.stdout)));
    let mut entries = vec![TarEntry {
        path: "Dockerfile".into(),
        data: format!(
            "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"{}\"]\n",
            nft.display()
        )
        .into_bytes(),
        mode: 0o644,
    }];
    for f in files {
        let data = std::fs::read(&f)
            .map_err(|e| format!("cannot read {} for the sidecar: {e}", f.display()))?;
        entries.push(TarEntry {
            path: format!("rootfs{}", f.display()),
            data,
            mode: 0o755,
        });
    }
    tar(&entries)
}

/// The sidecar image, built once per engine if it is not there yet.
pub async fn ensure_image(docker: &Docker) -> Result<String, DockerError> {
    let nft = super::partition::find_nft().ok_or_else(|| {
        DockerError::Other(
            "network faults through a sidecar need this host's `nft` to build it from: \
             apt-get install nftables"
                .into(),
        )
    })?;
    let version = std::process::Command::new(&nft)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let tag: String = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("unknown")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let image = format!("{IMAGE_REPO}:{tag}");
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let context = build_context(&nft).map_err(DockerError::Other)?;
    let opts = BuildImageOptions {
        t: image.clone(),
        rm: true,
        ..Default::default()
    };
    let mut build = docker.build_image(opts, None, Some(context.into()));
    while let Some(step) = build.next().await {
        let info = step.map_err(DockerError::api(format!("build {image}")))?;
        if let Some(e) = info.error {
            return Err(DockerError::Other(format!("building {image}: {e}")));
        }
    }
    Ok(image)
}

/// A sidecar created and loaded with its script, not started yet.
pub struct Prepared {
    id: String,
    node_id: u64,
}

/// Creates the sidecar that will run `nft -f` with `script` in the network namespace of
/// container `node_container`, labelled with the run and the node, and loads the script.
/// [`Prepared::run`] starts it and removes it (also on failure).
pub async fn prepare(
    docker: &Docker,
    image: &str,
    run_id: &str,
    node_id: u64,
    node_container: &str,
    script: &str,
) -> Result<Prepared, String> {
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (SIDECAR_LABEL.to_string(), node_id.to_string()),
    ]);
    let config = Config {
        image: Some(image.to_string()),
        cmd: Some(vec!["-f".to_string(), "/rules.nft".to_string()]),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(format!("container:{node_container}")),
            cap_add: Some(vec!["NET_ADMIN".to_string()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions<String>>, config)
        .await
        .map_err(|e| format!("creating the nft sidecar of node {node_id}: {e}"))?;
    let prepared = Prepared {
        id: created.id,
        node_id,
    };
    if let Err(e) = upload(docker, &prepared.id, node_id, script).await {
        prepared.remove(docker).await;
        return Err(e);
    }
    Ok(prepared)
}

impl Prepared {
    /// Starts the sidecar, waits for nft, and removes the sidecar; nft's complaint on failure.
    pub async fn run(self, docker: &Docker) -> Result<(), String> {
        let result = run_sidecar(docker, &self.id, self.node_id).await;
        self.remove(docker).await;
        result
    }

    async fn remove(&self, docker: &Docker) {
        let _ = docker
            .remove_container(
                &self.id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
}

async fn upload(docker: &Docker, id: &str, node_id: u64, script: &str) -> Result<(), String> {
    let archive = tar(&[TarEntry {
        path: "rules.nft".into(),
        data: script.as_bytes().to_vec(),
        mode: 0o644,
    }])?;
    docker
        .upload_to_container(
            id,
            Some(UploadToContainerOptions {
                path: "/",
                ..Default::default()
            }),
            archive.into(),
        )
        .await
        .map_err(|e| format!("uploading the nft script of node {node_id}: {e}"))
}

async fn run_sidecar(docker: &Docker, id: &str, node_id: u64) -> Result<(), String> {
    docker
        .start_container::<String>(id, None)
        .await
        .map_err(|e| format!("starting the nft sidecar of node {node_id}: {e}"))?;
    let mut wait = docker.wait_container(id, None::<WaitContainerOptions<String>>);
    let code = match wait.next().await {
        Some(Ok(r)) => r.status_code,
        // A non-zero exit comes back as an error carrying the code.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => {
            return Err(format!(
                "waiting for the nft sidecar of node {node_id}: {e}"
            ))
        }
        None => -1,
    };
    if code == 0 {
        return Ok(());
    }
    let mut logs = docker.logs(
        id,
        Some(LogsOptions::<String> {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut said = String::new();
    while let Some(Ok(chunk)) = logs.next().await {
        said.push_str(&chunk.to_string());
    }
    Err(format!(
        "nft in the sidecar of node {node_id} exited {code}: {}",
        said.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_library_paths() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tlibgone.so => not found\n";
        assert_eq!(
            ldd_paths(out),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libnftables.so.1"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn the_tar_archive_reads_back_with_tar() {
        let long = format!("rootfs/{}/libx.so", "d".repeat(120));
        let a = tar(&[
            TarEntry {
                path: "rules.nft".into(),
                data: b"table inet faultline\n".to_vec(),
                mode: 0o644,
            },
            TarEntry {
                path: long.clone(),
                data: vec![7; 1000],
                mode: 0o755,
            },
        ])
        .unwrap();
        assert_eq!(a.len() % 512, 0);
        let dir = std::env::temp_dir().join(format!("fl-tar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.tar");
        std::fs::write(&file, &a).unwrap();
        let Ok(out) = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&file)
            .output()
        else {
            eprintln!("skipped: no tar command");
            return;
        };
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            listing.contains("rules.nft") && listing.contains(" 21 "),
            "{listing}"
        );
        assert!(
            listing.contains(&long) && listing.contains(" 1000 "),
            "{listing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
