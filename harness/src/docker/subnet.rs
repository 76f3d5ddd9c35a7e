//! Choosing a free /24 for a run's bridge network: one not used by any Docker network and not
//! routed on the host, inside 10.213.0.0/16.

use std::net::Ipv4Addr;

/// An IPv4 network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d/len`; `None` for anything else (IPv6 subnets are ignored by the caller).
    pub fn parse(s: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = s.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    fn first(&self) -> u32 {
        u32::from(self.addr) & self.mask()
    }

    fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    /// True when the two networks share at least one address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The `host`-th address of the network (`host` 1 is the gateway of a Docker bridge).
    pub fn host(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::from(self.first() | u32::from(host))
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.first()), self.prefix)
    }
}

/// The /24s of 10.213.0.0/16 not overlapping any of `used`, starting at `start` (a random
/// offset, so concurrent runs rarely race for the same one) and wrapping around.
pub fn free_subnets(used: &[Ipv4Net], start: u8) -> Vec<Ipv4Net> {
    (0..=255u16)
        .map(|i| start.wrapping_add(i as u8))
        .map(|third| Ipv4Net {
            addr: Ipv4Addr::new(10, 213, third, 0),
            prefix: 24,
        })
        .filter(|candidate| !used.iter().any(|u| u.overlaps(candidate)))
        .collect()
}

/// Networks routed on the host (from /proc/net/route), so a run never shadows a real LAN.
pub fn host_routes() -> Vec<Ipv4Net> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    parse_proc_net_route(&text)
}

/// Parses /proc/net/route: destination and mask are little-endian hex; the default route
/// (mask 0) is skipped because it overlaps everything.
pub fn parse_proc_net_route(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // The kernel prints the in-memory (native-endian) u32 of a network-order address.
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net {
                addr: Ipv4Addr::from(dest.to_ne_bytes()),
                prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_detects_overlap() {
        let a = Ipv4Net::parse("10.213.4.0/24").unwrap();
        let b = Ipv4Net::parse("10.213.0.0/16").unwrap();
        let c = Ipv4Net::parse("10.213.5.0/24").unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert_eq!(Ipv4Net::parse("fd00::/64"), None);
        assert_eq!(Ipv4Net::parse("10.0.0.0/33"), None);
        assert_eq!(a.host(11), Ipv4Addr::new(10, 213, 4, 11));
        assert_eq!(a.to_string(), "10.213.4.0/24");
    }

    #[test]
    fn skips_used_subnets_and_wraps() {
        let used = vec![
            Ipv4Net::parse("10.213.250.0/24").unwrap(),
            Ipv4Net::parse("10.213.251.0/23").unwrap(),
        ];
        let free = free_subnets(&used, 250);
        assert_eq!(free[0].to_string(), "10.213.252.0/24");
        assert_eq!(
            free.len(),
            256 - 2,
            "a /23 written from .251 covers .250 and .251"
        );
        assert!(free.iter().any(|n| n.to_string() == "10.213.0.0/24"));
        assert!(free_subnets(&[Ipv4Net::parse("10.0.0.0/8").unwrap()], 0).is_empty());
    }

    #[test]
    fn reads_host_routes() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_proc_net_route(text);
        assert_eq!(routes, vec![Ipv4Net::parse("172.17.0.0/16").unwrap()]);
    }
}
