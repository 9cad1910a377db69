//! Address management: subnets that avoid the host's routes, and leases.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::state::State;

/// An IPv4 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: u32,
    pub len: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = || Error::BadSubnet(s.to_string());
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        Ok(Subnet {
            base: u32::from(addr) & mask(len),
            len,
        })
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == self.base
    }

    pub fn overlaps(&self, o: &Subnet) -> bool {
        let l = self.len.min(o.len);
        self.base & mask(l) == o.base & mask(l)
    }

    /// The first usable address (the gateway, `.1`).
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn broadcast(&self) -> u32 {
        self.base | !mask(self.len)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.base), self.len)
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// The host's IPv4 routes (every table), as prefixes.
pub fn host_routes() -> Vec<Subnet> {
    let out = std::process::Command::new(crate::link::ip_binary())
        .args(["-4", "-o", "route", "show", "table", "all"])
        .output();
    let Ok(out) = out else { return Vec::new() };
    parse_routes(&String::from_utf8_lossy(&out.stdout))
}

pub(crate) fn parse_routes(text: &str) -> Vec<Subnet> {
    let mut v = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(mut w) = words.next() else { continue };
        if matches!(
            w,
            "local" | "broadcast" | "unicast" | "multicast" | "anycast" | "blackhole" | "unreachable"
        ) {
            let Some(n) = words.next() else { continue };
            w = n;
        }
        if w == "default" {
            continue;
        }
        if let Ok(s) = Subnet::parse(w) {
            v.push(s);
        }
    }
    v
}

/// The first free 10.X.0.0/16 (X from 88 up, wrapping) that overlaps
/// neither the host's routes nor another strata network.
pub fn pick_subnet(state: &State, host: &[Subnet]) -> Result<Subnet> {
    let taken: Vec<Subnet> = state
        .networks
        .values()
        .filter_map(|n| Subnet::parse(&n.subnet).ok())
        .chain(host.iter().copied())
        .collect();
    for x in (88u32..=255).chain(0..88) {
        let s = Subnet {
            base: (10 << 24) | (x << 16),
            len: 16,
        };
        if !taken.iter().any(|t| t.overlaps(&s)) {
            return Ok(s);
        }
    }
    Err(Error::NoFreeSubnet)
}

/// Checks that a subnet asked for by the user is free.
pub fn check_free(state: &State, host: &[Subnet], s: &Subnet) -> Result<()> {
    let own: Vec<Subnet> = state
        .networks
        .values()
        .filter_map(|n| Subnet::parse(&n.subnet).ok())
        .collect();
    // The host's routes to strata's own bridges are the networks themselves.
    if own
        .iter()
        .chain(host.iter().filter(|h| !own.contains(h)))
        .any(|t| t.overlaps(s))
    {
        return Err(Error::SubnetOverlap(s.to_string()));
    }
    Ok(())
}

/// A free address of `network` (lowest first, after the gateway).
pub fn lease(state: &mut State, network: &str) -> Result<Ipv4Addr> {
    let net = state
        .networks
        .get(network)
        .ok_or_else(|| Error::NoSuchNetwork(network.to_string()))?;
    let subnet = Subnet::parse(&net.subnet)?;
    let used: BTreeSet<u32> = state
        .containers
        .values()
        .flat_map(|c| c.attachments.iter())
        .filter(|a| a.network == network)
        .filter_map(|a| a.ip.map(u32::from))
        .chain([u32::from(net.gateway)])
        .collect();
    // Serially, from the one after the last lease, wrapping around.
    let after = net
        .last_lease
        .map(u32::from)
        .filter(|l| *l > subnet.base && *l < subnet.broadcast());
    let first = after.map_or(subnet.base + 1, |l| l + 1);
    let ip = (first..subnet.broadcast())
        .chain(subnet.base + 1..first)
        .find(|ip| !used.contains(ip))
        .map(Ipv4Addr::from)
        .ok_or_else(|| Error::NoFreeAddress(network.to_string()))?;
    if let Some(n) = state.networks.get_mut(network) {
        n.last_lease = Some(ip);
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Attach, Ctr, NetDef};

    fn state_with(subnet: &str) -> State {
        let mut s = State::default();
        s.networks.insert(
            "bridge".into(),
            NetDef {
                id: "x".into(),
                name: "bridge".into(),
                bridge: "strata0".into(),
                subnet: subnet.into(),
                gateway: Subnet::parse(subnet).unwrap().first(),
                created: String::new(),
                labels: Default::default(),
                user: false,
                store: String::new(),
                last_lease: None,
            },
        );
        s
    }

    #[test]
    fn subnets_avoid_the_hosts_routes_and_other_networks() {
        let routes = parse_routes(
            "default via 192.0.2.1 dev eth0\n10.88.0.0/16 dev x proto kernel\nlocal 10.89.3.4 dev lo table local\n",
        );
        assert_eq!(routes.len(), 2);
        let s = pick_subnet(&State::default(), &routes).unwrap();
        assert_eq!(s.to_string(), "10.90.0.0/16");
        let st = state_with("10.90.0.0/16");
        assert_eq!(pick_subnet(&st, &routes).unwrap().to_string(), "10.91.0.0/16");
        assert!(check_free(&st, &routes, &Subnet::parse("10.90.5.0/24").unwrap()).is_err());
        assert!(check_free(&st, &routes, &Subnet::parse("172.30.0.0/16").unwrap()).is_ok());
        assert!(Subnet::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn leases_skip_the_gateway_and_taken_addresses() {
        let mut st = state_with("10.88.0.0/16");
        assert_eq!(lease(&mut st, "bridge").unwrap(), Ipv4Addr::new(10, 88, 0, 2));
        st.containers.insert(
            "a".into(),
            Ctr {
                store: String::new(),
                name: "a".into(),
                hostname: "a".into(),
                mode: "bridge".into(),
                attachments: vec![Attach {
                    network: "bridge".into(),
                    aliases: vec![],
                    ip: Some(Ipv4Addr::new(10, 88, 0, 2)),
                    veth: None,
                    ifname: None,
                }],
                live: None,
            },
        );
        assert_eq!(lease(&mut st, "bridge").unwrap(), Ipv4Addr::new(10, 88, 0, 3));
        assert!(lease(&mut st, "nope").is_err());
        // .2 released: the next lease goes on from .3, not back to .2.
        st.containers.clear();
        assert_eq!(lease(&mut st, "bridge").unwrap(), Ipv4Addr::new(10, 88, 0, 4));
        // At the end of the subnet it wraps to the lowest free address.
        st.networks.get_mut("bridge").unwrap().last_lease = Some(Ipv4Addr::new(10, 88, 255, 254));
        assert_eq!(lease(&mut st, "bridge").unwrap(), Ipv4Addr::new(10, 88, 0, 2));
    }
}
