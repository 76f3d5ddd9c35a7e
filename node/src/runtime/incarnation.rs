//! The node's incarnation: a number higher at every start, signed into each peer frame so
//! that receivers' replay windows refuse what the node sent before it restarted (its
//! sequence numbers start again at 1). Each start takes max(stored + 1, wall-clock µs) and
//! makes it durable in the data directory before anything is sent, so a clock that went
//! back cannot reuse one; without a data directory the clock alone gives it.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// File in the data directory holding the last incarnation.
pub const FILE: &str = "incarnation";

/// This start's incarnation (see the module docs).
pub fn next(data_dir: Option<&Path>, now_micros: u64) -> anyhow::Result<u64> {
    let Some(dir) = data_dir else {
        return Ok(now_micros.max(1));
    };
    let path = dir.join(FILE);
    let stored = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().with_context(|| {
            format!(
                "{} does not hold a number; delete it to start a new incarnation from the clock",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let next = stored
        .checked_add(1)
        .context("the stored incarnation is at its maximum")?
        .max(now_micros);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    writeln!(f, "{next}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_is_higher_even_when_the_clock_goes_back() {
        let dir = std::env::temp_dir().join(format!("chat-node-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(next(Some(&dir), 1_000).unwrap(), 1_000);
        assert_eq!(next(Some(&dir), 500).unwrap(), 1_001, "clock went back");
        assert_eq!(next(Some(&dir), 5_000).unwrap(), 5_000);
        std::fs::write(dir.join(FILE), "garbage").unwrap();
        assert!(next(Some(&dir), 1).is_err());
        assert_eq!(next(None, 42).unwrap(), 42);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
