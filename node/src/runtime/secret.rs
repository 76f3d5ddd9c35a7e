//! The cluster secret from `--cluster-secret-file`, `--cluster-secret` or
//! `CHAT_CLUSTER_SECRET`, or `--insecure`. Without any of them the node refuses to start and
//! says how to fix it: an unauthenticated cluster is one forged datagram from losing its
//! leader (docs/ARCHITECTURE.md, "Threat model").

use crate::core::auth::PeerKey;
use crate::settings::ServeArgs;
use anyhow::{bail, Context};

/// Shortest secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 16;

/// The key every peer frame is sealed and checked with.
pub fn peer_key(args: &ServeArgs) -> anyhow::Result<PeerKey> {
    let secret = match (&args.cluster_secret_file, &args.cluster_secret) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --cluster-secret-file {}", path.display()))?;
            let first = text.lines().next().unwrap_or("").trim().to_string();
            check(&first, &format!("--cluster-secret-file {}", path.display()))?;
            first
        }
        (None, Some(s)) => {
            check(s.trim(), "--cluster-secret (or CHAT_CLUSTER_SECRET)")?;
            s.trim().to_string()
        }
        (None, None) if args.insecure => return Ok(PeerKey::insecure()),
        (None, None) => bail!(
            "no cluster secret: give every node the same one with --cluster-secret-file PATH \
             (create it with `openssl rand -hex 32 > PATH`), --cluster-secret or \
             CHAT_CLUSTER_SECRET; or pass --insecure for an experiment (then anyone on the \
             network can forge peer datagrams)"
        ),
    };
    Ok(PeerKey::from_secret(secret.as_bytes()))
}

fn check(secret: &str, source: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "{source}: the cluster secret is {} bytes; use at least {MIN_SECRET_BYTES} \
             (e.g. `openssl rand -hex 32`)",
            secret.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::auth::Mode;
    use crate::settings::test_support::serve_args as args;

    #[test]
    fn no_secret_and_no_insecure_refuses_with_the_fix() {
        let err = peer_key(&args(&[])).unwrap_err().to_string();
        assert!(
            err.contains("--cluster-secret-file") && err.contains("--insecure"),
            "{err}"
        );
        assert_eq!(
            peer_key(&args(&["--insecure"])).unwrap().mode(),
            Mode::Insecure
        );
        let short = peer_key(&args(&["--cluster-secret", "abc"])).unwrap_err();
        assert!(short.to_string().contains("at least 16"), "{short}");
    }

    #[test]
    fn the_file_and_the_flag_give_the_same_key() {
        let path = std::env::temp_dir().join(format!("chat-node-secret-{}", std::process::id()));
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let from_file = peer_key(&args(&["--cluster-secret-file", path.to_str().unwrap()]));
        let from_flag = peer_key(&args(&["--cluster-secret", "0123456789abcdef0123"]));
        let (a, b) = (from_file.unwrap(), from_flag.unwrap());
        assert_eq!(a.mode(), Mode::Hmac);
        assert_eq!(a.tag(b"x"), b.tag(b"x"));
        std::fs::remove_file(&path).unwrap();
        let missing = peer_key(&args(&["--cluster-secret-file", "/nonexistent/secret"]));
        assert!(missing.unwrap_err().to_string().contains("reading"));
    }
}
