//! Where a node's network namespace can be reached from, decided per process from this
//! host's `/proc`: faults go in with `nsenter --net=/proc/<pid>/ns/net` when the engine's
//! processes are this host's (the usual local engine), else from a sidecar container that
//! shares the node's namespace ([`super::sidecar`]): a remote engine (`DOCKER_HOST=tcp://…`),
//! or one whose pid namespace is not ours (a harness in a container, a VM-backed engine).
//!
//! The engine's `State.Pid` is a pid in the engine's pid namespace. Here it may not exist at
//! all, or be some other process: so the pid counts as ours only if its cgroups name the
//! container's id (Docker's cgroup paths end in it, with either cgroup driver).

/// How network faults reach a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetAccess {
    /// `nsenter` into `/proc/<pid>/ns/net` on this host.
    Nsenter,
    /// A labelled sidecar container with `--network container:<id>`; why nsenter cannot.
    Sidecar { why: String },
}

/// `FAULTLINE_NET_FAULTS`: `auto` (default), `nsenter` or `sidecar` (forces the sidecar even
/// where nsenter would work: how the sidecar path is tested on a local engine).
pub const FORCE_ENV: &str = "FAULTLINE_NET_FAULTS";

/// Decides from what `/proc/<pid>/cgroup` holds here (`None`: no such process) and the
/// forcing variable. Pure: the tests give it texts.
pub fn decide(
    pid: u32,
    container_id: &str,
    cgroup: Option<&str>,
    forced: Option<&str>,
) -> Result<NetAccess, String> {
    match forced.map(str::trim) {
        None | Some("") | Some("auto") => {}
        Some("nsenter") => return Ok(NetAccess::Nsenter),
        Some("sidecar") => {
            return Ok(NetAccess::Sidecar {
                why: format!("{FORCE_ENV}=sidecar"),
            })
        }
        Some(other) => {
            return Err(format!(
                "{FORCE_ENV}={other}: expected auto, nsenter or sidecar"
            ))
        }
    }
    let short = &container_id[..container_id.len().min(12)];
    match cgroup {
        None => Ok(NetAccess::Sidecar {
            why: format!(
                "the engine says container {short} runs as pid {pid}, and this host has no \
                 such process: the engine is remote or its pid namespace is not this host's"
            ),
        }),
        Some(text) if !container_id.is_empty() && text.contains(container_id) => {
            Ok(NetAccess::Nsenter)
        }
        Some(_) => Ok(NetAccess::Sidecar {
            why: format!(
                "pid {pid} on this host is not container {short} (its cgroups do not name \
                 it): the engine's pid namespace is not this host's"
            ),
        }),
    }
}

/// [`decide`] for a running container, reading `/proc/<pid>/cgroup` and the environment.
pub fn probe(pid: u32, container_id: &str) -> Result<NetAccess, String> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok();
    let forced = std::env::var(FORCE_ENV).ok();
    decide(pid, container_id, cgroup.as_deref(), forced.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2a9be0d7c3b18e5a6f70d2c49b1e3a8f6d5c7b9e0a1f2d3c4b5a6e7f8091";

    #[test]
    fn a_process_of_ours_is_entered_and_anything_else_goes_through_a_sidecar() {
        // cgroup v1, cgroupfs driver (this machine) and v2 with systemd.
        let v1 = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n0::/docker/{ID}\n");
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        for text in [&v1, &v2] {
            assert_eq!(decide(4242, ID, Some(text), None), Ok(NetAccess::Nsenter));
        }
        // No such pid here: remote engine.
        match decide(4242, ID, None, None).unwrap() {
            NetAccess::Sidecar { why } => {
                assert!(
                    why.contains("no such process") && why.contains("4f1c2a9be0d7"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
        // The pid exists but is someone else (another pid namespace).
        let other = "0::/user.slice/user-1000.slice/session-2.scope\n";
        match decide(4242, ID, Some(other), Some("auto")).unwrap() {
            NetAccess::Sidecar { why } => assert!(why.contains("not container"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Forcing either way, and a typo refused.
        assert!(matches!(
            decide(4242, ID, Some(&v1), Some("sidecar")),
            Ok(NetAccess::Sidecar { .. })
        ));
        assert_eq!(
            decide(4242, ID, None, Some("nsenter")),
            Ok(NetAccess::Nsenter)
        );
        assert!(decide(4242, ID, None, Some("side"))
            .unwrap_err()
            .contains("expected auto"));
    }

    #[test]
    fn this_process_is_not_taken_for_a_container() {
        let me = std::process::id();
        assert!(
            matches!(probe(me, ID), Ok(NetAccess::Sidecar { .. }))
                || std::env::var(FORCE_ENV).is_ok()
        );
    }
}
