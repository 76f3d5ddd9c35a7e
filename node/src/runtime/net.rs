//! Which interface the node speaks on: its IPv4 address, netmask and subnet broadcast address.
//! Read from the interface itself (getifaddrs), never by resolving the hostname or by
//! connecting to a public address (both give wrong answers inside containers).

use anyhow::{bail, Context};
use std::net::Ipv4Addr;

/// The IPv4 side of one network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ip: Ipv4Addr,
    pub netmask: Ipv4Addr,
    /// The subnet's directed broadcast address, computed from address and netmask: the
    /// kernel's own field is unreliable (`ip addr add 10.0.0.2/24` without `brd +` leaves it
    /// unset, and getifaddrs then reports the interface's own address).
    pub broadcast: Ipv4Addr,
}

/// The subnet broadcast address: the address with every host bit set.
pub fn subnet_broadcast(ip: Ipv4Addr, netmask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ip) | !u32::from(netmask))
}

/// Every IPv4 interface with its running state, in the order the kernel lists them.
fn ipv4_interfaces() -> anyhow::Result<Vec<(Interface, bool)>> {
    let all = if_addrs::get_if_addrs().context("listing network interfaces")?;
    Ok(all
        .into_iter()
        .filter_map(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => Some((
                Interface {
                    name: i.name.clone(),
                    ip: v4.ip,
                    netmask: v4.netmask,
                    broadcast: subnet_broadcast(v4.ip, v4.netmask),
                },
                i.is_oper_up(),
            )),
            if_addrs::IfAddr::V6(_) => None,
        })
        .collect())
}

/// Picks the interface named `wanted`, or else the first non-loopback IPv4 interface that is up.
pub fn pick_interface(wanted: Option<&str>) -> anyhow::Result<Interface> {
    let all = ipv4_interfaces()?;
    choose(&all, wanted)
}

fn choose(all: &[(Interface, bool)], wanted: Option<&str>) -> anyhow::Result<Interface> {
    let names = || {
        all.iter()
            .map(|(i, _)| format!("{} ({})", i.name, i.ip))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = wanted {
        return match all.iter().find(|(i, _)| i.name == name) {
            Some((i, _)) => Ok(i.clone()),
            None => bail!(
                "interface `{name}` has no IPv4 address; IPv4 interfaces: {}",
                names()
            ),
        };
    }
    match all.iter().find(|(i, up)| *up && !i.ip.is_loopback()) {
        Some((i, _)) => Ok(i.clone()),
        None => bail!(
            "no non-loopback IPv4 interface is up (found: {}); pass --interface",
            names()
        ),
    }
}

/// Broadcast addresses of every non-loopback IPv4 interface, for clients looking for servers.
pub fn broadcast_addresses() -> Vec<Ipv4Addr> {
    let mut out: Vec<Ipv4Addr> = ipv4_interfaces()
        .unwrap_or_default()
        .into_iter()
        .filter(|(i, _)| !i.ip.is_loopback())
        .map(|(i, _)| i.broadcast)
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ip: [u8; 4], mask: [u8; 4]) -> Interface {
        Interface {
            name: name.into(),
            ip: ip.into(),
            netmask: mask.into(),
            broadcast: subnet_broadcast(ip.into(), mask.into()),
        }
    }

    #[test]
    fn computes_the_subnet_broadcast() {
        assert_eq!(
            subnet_broadcast([10, 99, 0, 7].into(), [255, 255, 255, 0].into()),
            Ipv4Addr::new(10, 99, 0, 255)
        );
        assert_eq!(
            subnet_broadcast([172, 28, 5, 2].into(), [255, 255, 240, 0].into()),
            Ipv4Addr::new(172, 28, 15, 255)
        );
    }

    #[test]
    fn skips_loopback_and_down_interfaces() {
        let all = vec![
            (iface("lo", [127, 0, 0, 1], [255, 0, 0, 0]), true),
            (iface("eth1", [10, 1, 0, 2], [255, 255, 0, 0]), false),
            (iface("eth0", [10, 99, 0, 3], [255, 255, 255, 0]), true),
        ];
        assert_eq!(choose(&all, None).unwrap().name, "eth0");
        assert_eq!(choose(&all, Some("eth1")).unwrap().name, "eth1");
        let err = choose(&all, Some("wlan0")).unwrap_err().to_string();
        assert!(err.contains("wlan0") && err.contains("eth0"), "{err}");
        assert!(choose(&all[..2], None).is_err());
    }
}
