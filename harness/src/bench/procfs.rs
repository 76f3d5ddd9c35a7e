//! What the host's /proc says about a node's process (the harness runs on the engine's host,
//! as the partitions need anyway): CPU time, resident memory, and the bytes and packets its
//! network namespace sent on `eth0`.

use std::path::Path;

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture
/// the kernel exports to user space.
const USER_HZ: u64 = 100;

/// One reading of one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// User + system CPU time, milliseconds.
    pub cpu_ms: u64,
    /// Resident set size and its peak, KiB.
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// `eth0` in the process's network namespace (everything it sent: peers and clients).
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// Reads `/proc/<pid>`; `None` when the process is gone or a file is unreadable.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let base = Path::new("/proc").join(pid.to_string());
    let stat = std::fs::read_to_string(base.join("stat")).ok()?;
    let status = std::fs::read_to_string(base.join("status")).ok()?;
    let dev = std::fs::read_to_string(base.join("net/dev")).ok()?;
    let (tx_bytes, tx_packets) = parse_net_dev(&dev, "eth0").unwrap_or((0, 0));
    Some(ProcSample {
        cpu_ms: parse_cpu_ms(&stat)?,
        rss_kb: parse_status_kb(&status, "VmRSS:").unwrap_or(0),
        hwm_kb: parse_status_kb(&status, "VmHWM:").unwrap_or(0),
        tx_bytes,
        tx_packets,
    })
}

/// utime + stime from `/proc/<pid>/stat` (fields 14 and 15, counted after the `(comm)`,
/// which may itself contain spaces).
fn parse_cpu_ms(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state): utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000 / USER_HZ)
}

fn parse_status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Transmitted bytes and packets of `iface` from `/proc/net/dev`.
fn parse_net_dev(dev: &str, iface: &str) -> Option<(u64, u64)> {
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{iface}:")))?;
    let numbers: Vec<u64> = line
        .split_once(':')?
        .1
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    // 8 receive columns, then transmit bytes, packets, …
    Some((*numbers.get(8)?, *numbers.get(9)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_kernels_formats() {
        let stat =
            "42 (chat node) S 1 42 42 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 3 0 100 1000 200";
        assert_eq!(parse_cpu_ms(stat), Some(3800));
        let status = "Name:\tchat-node\nVmHWM:\t   9000 kB\nVmRSS:\t    8123 kB\n";
        assert_eq!(parse_status_kb(status, "VmRSS:"), Some(8123));
        assert_eq!(parse_status_kb(status, "VmHWM:"), Some(9000));
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  eth0: 1234567    890    0    0    0     0          0         5   7654321    4321    0    0    0     0       0          0\n";
        assert_eq!(parse_net_dev(dev, "eth0"), Some((7654321, 4321)));
        assert_eq!(parse_net_dev(dev, "eth1"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).expect("our own /proc entry");
        assert!(s.rss_kb > 0);
    }
}
