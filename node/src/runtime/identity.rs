//! The node's id: `--id`, or a random one that is kept in the data directory so that a
//! restarted node comes back as itself (its durable log and vote belong to that id).

use super::config;
use crate::ids::NodeId;
use crate::settings::ServeArgs;
use anyhow::Context;

/// File in the data directory that holds a generated id.
pub const ID_FILE: &str = "node-id";

/// The id for this run (see the module docs).
pub fn resolve(args: &ServeArgs) -> anyhow::Result<NodeId> {
    if let Some(id) = args.id {
        return Ok(NodeId(id));
    }
    let Some(dir) = &args.data_dir else {
        return Ok(config::node_id(args));
    };
    let path = dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|id| *id > 0)
            .map(NodeId)
            .with_context(|| format!("{} does not hold a positive id", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = config::node_id(args);
            std::fs::write(&path, format!("{id}\n"))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
