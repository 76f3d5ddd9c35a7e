//! Network partitions as nftables rules inside each receiving node's network namespace,
//! matched on the source address — so unicast, broadcast and multicast are all cut, and a
//! one-way cut is just a rule on one side. Which sources each node drops comes from the
//! shared fault model ([`chat_node::faults::FaultState::dropped_by`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// Our own nftables table; flushing it (deleting it) heals everything.
pub const NFT_TABLE: &str = "faultline";

/// The nft script that makes a node drop everything from `sources` (an empty list leaves the
/// table in place, empty: an idempotent heal). Recreating the table replaces earlier rules.
pub fn nft_script(sources: &[Ipv4Addr]) -> String {
    nft_script_with(sources, &[])
}

/// [`nft_script`] plus `extra` rules in the same input chain after the drops (link loss).
pub fn nft_script_with(sources: &[Ipv4Addr], extra: &[String]) -> String {
    let mut script = format!(
        "table inet {NFT_TABLE}\ndelete table inet {NFT_TABLE}\ntable inet {NFT_TABLE} {{\n  \
         chain input {{\n    type filter hook input priority -10; policy accept;\n"
    );
    if !sources.is_empty() {
        let list: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        script.push_str(&format!("    ip saddr {{ {} }} drop\n", list.join(", ")));
    }
    for rule in extra {
        script.push_str(&format!("    {rule}\n"));
    }
    script.push_str("  }\n}\n");
    script
}

/// Why partitions cannot be made on this host; says how to fix it.
pub fn partition_prerequisites() -> Result<(), String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Err(
            "partitions need root (nsenter into the containers' network namespaces): \
                    run the harness as root (sudo)"
                .into(),
        );
    }
    for tool in ["nft", "nsenter"] {
        if find_in_path(tool).is_none() {
            let package = if tool == "nft" {
                "nftables"
            } else {
                "util-linux"
            };
            return Err(format!(
                "partitions need the `{tool}` command: apt-get install {package}"
            ));
        }
    }
    Ok(())
}

/// This host's `nft` binary, if installed.
pub fn find_nft() -> Option<std::path::PathBuf> {
    find_in_path("nft")
}

fn find_in_path(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(tool))
        .find(|p| Path::new(p).is_file())
}

/// Applies `script` in the network namespace of process `pid`.
pub async fn apply_in_netns(pid: u32, script: &str) -> Result<(), String> {
    let nft =
        find_in_path("nft").ok_or("the `nft` command is missing: apt-get install nftables")?;
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nsenter: {e} (apt-get install util-linux)"))?;
    // A write that fails (nsenter already gone: the process exited, or no permission) is
    // not the story: what nsenter said on stderr is.
    let mut write_error = None;
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(script.as_bytes()).await {
            write_error = Some(e);
        }
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for nft: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match (out.status.success(), write_error) {
        (true, None) => Ok(()),
        (true, Some(e)) => Err(format!("writing the nft script for pid {pid}: {e}")),
        (false, _) => Err(format!(
            "nsenter/nft in the namespace of pid {pid} failed: {}",
            if stderr.is_empty() {
                "(no message)"
            } else {
                &stderr
            }
        )),
    }
}

/// Whether process `pid`'s network namespace can still be entered (it has not exited).
pub fn netns_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}/ns/net")).exists()
}

/// What to do about a node whose rules failed to go in, once its container has been
/// inspected again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Its process exited meanwhile: nothing to do now, it gets its rules at its restart.
    Skip,
    /// It was restarted meanwhile: apply the rules to its new process.
    RetryAt(u32),
    /// Still running as the same process: the failure is real.
    Fail,
}

/// Decides [`AfterFailure`] from the pid the rules were written for, the container's pid
/// now (`None`: not running) and whether the old process's namespace still exists (Docker may
/// still call a container running for a moment after its process exited).
pub fn after_failure(tried: u32, now: Option<u32>, tried_alive: bool) -> AfterFailure {
    match now {
        None => AfterFailure::Skip,
        Some(pid) if pid != tried => AfterFailure::RetryAt(pid),
        Some(_) if !tried_alive => AfterFailure::Skip,
        Some(_) => AfterFailure::Fail,
    }
}

/// Runs `tool args…` in the network namespace of process `pid`; its stdout on success.
pub async fn output_in_netns(pid: u32, tool: &str, args: &[&str]) -> Result<String, String> {
    let path = find_in_path(tool).ok_or_else(|| format!("the `{tool}` command is missing"))?;
    let out = tokio::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run nsenter: {e} (apt-get install util-linux)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{tool} {}` in the namespace of pid {pid} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// [`output_in_netns`] for commands whose output does not matter.
pub async fn run_in_netns(pid: u32, tool: &str, args: &[&str]) -> Result<(), String> {
    output_in_netns(pid, tool, args).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_drops_listed_sources_and_heals_when_empty() {
        let s = nft_script(&[Ipv4Addr::new(10, 213, 1, 11), Ipv4Addr::new(10, 213, 1, 12)]);
        assert!(
            s.contains("ip saddr { 10.213.1.11, 10.213.1.12 } drop"),
            "{s}"
        );
        assert!(s.starts_with("table inet faultline\ndelete table inet faultline\n"));
        assert!(!nft_script(&[]).contains("drop"));
    }

    #[test]
    fn a_node_that_exited_while_its_rules_went_in_is_skipped_not_failed() {
        // The `stop` then `heal` race: the container exited after its pid was looked up.
        assert_eq!(after_failure(4242, None, false), AfterFailure::Skip);
        // Docker has not noticed yet, but the process is gone.
        assert_eq!(after_failure(4242, Some(4242), false), AfterFailure::Skip);
        // Restarted meanwhile: its new namespace needs the rules.
        assert_eq!(
            after_failure(4242, Some(5000), false),
            AfterFailure::RetryAt(5000)
        );
        // Same live process: a real failure.
        assert_eq!(after_failure(4242, Some(4242), true), AfterFailure::Fail);
    }

    #[tokio::test]
    async fn a_process_that_exited_gives_nsenters_reason_not_a_broken_pipe() {
        if find_in_path("nsenter").is_none() || find_in_path("nft").is_none() {
            eprintln!("skipped: nsenter or nft missing");
            return;
        }
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!netns_exists(pid));
        let err = apply_in_netns(pid, &nft_script(&[])).await.unwrap_err();
        assert!(err.contains(&format!("pid {pid}")), "{err}");
        assert!(
            !err.contains("Broken pipe") && !err.contains("root"),
            "{err}"
        );
    }
}
