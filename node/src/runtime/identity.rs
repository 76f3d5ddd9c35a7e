//! The node's id: `--id`, or a random one. With a data directory the id is kept in it, so a
//! restarted node comes back as itself (its durable log and vote belong to that id), and a
//! directory is never reused by a node with another id.

use super::config;
use crate::ids::NodeId;
use crate::settings::ServeArgs;
use anyhow::{bail, Context};

/// File in the data directory that holds the node's id.
pub const ID_FILE: &str = "node-id";

/// The id for this run (see the module docs).
pub fn resolve(args: &ServeArgs) -> anyhow::Result<NodeId> {
    let Some(dir) = &args.data_dir else {
        return Ok(config::node_id(args));
    };
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|id| *id > 0)
                .map(NodeId)
                .with_context(|| format!("{} does not hold a positive id", path.display()))?;
            match args.id {
                Some(id) if id != stored.0 => bail!(
                    "{} belongs to node {stored}, not {id}: pass --id {stored} or use another --data-dir",
                    dir.display()
                ),
                _ => Ok(stored),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = config::node_id(args);
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating data directory {}", dir.display()))?;
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::test_support::serve_args as args;

    #[test]
    fn a_data_directory_keeps_its_node_id() {
        let dir = std::env::temp_dir().join(format!("chat-node-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.to_str().unwrap();
        assert_eq!(
            resolve(&args(&["--id", "7", "--data-dir", d])).unwrap(),
            NodeId(7)
        );
        // Restarted without --id: still node 7.
        assert_eq!(resolve(&args(&["--data-dir", d])).unwrap(), NodeId(7));
        let err = resolve(&args(&["--id", "8", "--data-dir", d])).unwrap_err();
        assert!(err.to_string().contains("belongs to node 7"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
