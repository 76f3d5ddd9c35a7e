//! Keeps `--max-connections` below the process's open-file limit: the node needs descriptors
//! of its own (sockets, the state file, refusing the connection one past the cap), so a cap
//! at or above the limit would let clients starve it again.

/// Descriptors kept for the node itself beyond its client connections.
pub const RESERVED_FDS: usize = 64;

/// The soft limit on open files, from `/proc/self/limits` (`None` where it cannot be read
/// or is unlimited).
pub fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&text)
}

fn parse_open_file_limit(text: &str) -> Option<usize> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `requested`, lowered (with a warning) to fit the open-file limit.
pub fn max_connections(requested: usize) -> usize {
    match open_file_limit() {
        Some(limit) => fit(requested, limit),
        None => requested,
    }
}

fn fit(requested: usize, limit: usize) -> usize {
    let room = limit
        .saturating_sub(RESERVED_FDS + super::clients::LOOPBACK_RESERVE)
        .max(1);
    if requested > room {
        tracing::warn!(
            "--max-connections {requested} does not fit the open-file limit {limit}; serving at most {room} (raise `ulimit -n` for more)"
        );
        room
    } else {
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit_and_lowers_a_cap_that_does_not_fit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_open_file_limit(text), Some(1024));
        assert_eq!(
            parse_open_file_limit("Max open files unlimited unlimited files"),
            None
        );
        assert_eq!(fit(1000, 20000), 1000);
        assert_eq!(
            fit(1000, 1024),
            1024 - RESERVED_FDS - super::super::clients::LOOPBACK_RESERVE
        );
        assert!(open_file_limit().is_some(), "Linux has /proc/self/limits");
    }
}
