//! `-p`, `-P` and `--expose`: parsing, host port checks, Docker's display.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn parse(s: &str) -> Option<Proto> {
        match s {
            "" | "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One `-p [IP:][HOST:]CONTAINER[/PROTO]` as asked (`host_port: None`:
/// an ephemeral port is chosen at start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    #[serde(default)]
    pub host_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

/// A port published while the container runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Published {
    pub container_port: u16,
    pub proto: Proto,
    /// `0.0.0.0` for every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
}

impl Published {
    pub fn host_addr(&self) -> String {
        format!("{}:{}", self.host_ip, self.host_port)
    }
}

fn port(spec: &str, s: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::BadPublish {
            spec: spec.to_string(),
            why: format!("invalid port {s:?}"),
        }),
    }
}

/// Parses a `-p` value that may hold port ranges, as Docker's
/// `nat.ParsePortSpec`: `8000-8002:80-82` pairs the ports up (the ranges
/// must be as long), `80-82` publishes each on an ephemeral port. A host
/// range for one container port (Docker picks a free one of it) is refused.
pub fn parse_publish_ranges(spec: &str) -> Result<Vec<PortSpec>> {
    let bad = |why: &str| Error::BadPublish {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, format!("/{p}")),
        None => (spec, String::new()),
    };
    if !rest.contains('-') {
        return Ok(vec![parse_publish(spec)?]);
    }
    let (front, ctr) = rest.rsplit_once(':').unwrap_or(("", rest));
    let (ip, host) = match front.rsplit_once(':') {
        Some((i, h)) => (format!("{i}:"), h),
        None if front.is_empty() => (String::new(), ""),
        None => (String::new(), front),
    };
    let range = |s: &str| -> Result<(u16, u16)> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let (a, b) = (port(spec, a)?, port(spec, b)?);
        if b < a {
            return Err(bad("the range ends before it starts"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(ctr)?;
    let hosts = if host.is_empty() { None } else { Some(range(host)?) };
    if let Some((h0, h1)) = hosts
        && h1 - h0 != c1 - c0
    {
        return Err(bad(if c0 == c1 {
            "a host port range for one container port is not supported; give one host port"
        } else {
            "the host and container port ranges are not as long"
        }));
    }
    (0..=c1 - c0)
        .map(|i| {
            let host = hosts.map(|(h0, _)| (h0 + i).to_string()).unwrap_or_default();
            parse_publish(&format!("{ip}{host}:{}{proto}", c0 + i))
        })
        .collect()
}

/// Parses a `-p` value of single ports (IPv4 host addresses).
pub fn parse_publish(spec: &str) -> Result<PortSpec> {
    let bad = |why: &str| Error::BadPublish {
        spec: spec.to_string(),
        why: why.to_string(),
    };
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| bad("the protocol must be tcp or udp"))?,
        ),
        None => (spec, Proto::Tcp),
    };
    if rest.contains('-') {
        return Err(bad("port ranges are not supported"));
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [i, h, c] => (Some(*i), Some(*h), *c),
        _ => {
            return Err(bad(
                "want [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO] (IPv6 addresses are not supported)",
            ));
        }
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(i) => Some(i.parse::<Ipv4Addr>().map_err(|_| bad("invalid IP address"))?),
    };
    let host_port = match host {
        None | Some("") => None,
        Some(h) => Some(port(spec, h)?),
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port: port(spec, ctr)?,
        proto,
    })
}

/// Parses an `--expose` value or an image's `ExposedPorts` key:
/// `PORT[/PROTO]` or `START-END[/PROTO]`.
pub fn parse_expose(spec: &str) -> Result<Vec<(u16, Proto)>> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (
            r,
            Proto::parse(p).ok_or_else(|| Error::BadPublish {
                spec: spec.to_string(),
                why: "the protocol must be tcp or udp".into(),
            })?,
        ),
        None => (spec, Proto::Tcp),
    };
    let (a, b) = rest.split_once('-').unwrap_or((rest, rest));
    let (a, b) = (port(spec, a)?, port(spec, b)?);
    if b < a {
        return Err(Error::BadPublish {
            spec: spec.to_string(),
            why: "the range ends before it starts".into(),
        });
    }
    Ok((a..=b).map(|p| (p, proto)).collect())
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, 443/tcp`.
pub fn format_ports(published: &[Published], exposed: &[(u16, Proto)]) -> String {
    // Docker's types.Port: (private, ip, public, type); exposed-only ports
    // have no ip and no public port.
    let mut ports: Vec<(u16, String, u16, &str)> = published
        .iter()
        .map(|p| (p.container_port, p.host_ip.to_string(), p.host_port, p.proto.as_str()))
        .collect();
    for (port, proto) in exposed {
        if !published.iter().any(|p| p.container_port == *port && p.proto == *proto) {
            ports.push((*port, String::new(), 0, proto.as_str()));
        }
    }
    ports.sort();
    ports.dedup();
    displayable_ports(&ports)
}

/// Docker CLI's `DisplayablePorts`: runs of consecutive ports published on
/// the same port number (or only exposed) of one address and protocol
/// become `IP:A-B->A-B/tcp` (`A-B/tcp`); other mappings are listed one by
/// one after them.
fn displayable_ports(sorted: &[(u16, String, u16, &str)]) -> String {
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    let form = |key: &str, first: u16, last: u16| {
        let (ip, proto) = key.rsplit_once('/').map_or(("", key), |(i, p)| (i, p));
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{proto}")
    };
    for (private, ip, public, proto) in sorted {
        let mut key = proto.to_string();
        if !ip.is_empty() {
            if public != private {
                mappings.push(format!("{ip}:{public}->{private}/{proto}"));
                continue;
            }
            key = format!("{ip}/{proto}");
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, *private, *private)),
            Some(g) if *private == g.2 + 1 => g.2 = *private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                (g.1, g.2) = (*private, *private);
            }
        }
    }
    result.extend(groups.iter().map(|(k, a, b)| form(k, *a, *b)));
    result.extend(mappings);
    result.join(", ")
}

/// Whether two host addresses meet (`0.0.0.0` meets every address).
fn same_addr(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

/// Whether another live container of the state publishes this port.
fn allocated(state: &State, me: &str, ip: Ipv4Addr, port: u16, proto: Proto) -> bool {
    state
        .containers
        .iter()
        .filter(|(id, _)| id.as_str() != me)
        .filter_map(|(_, c)| c.live.as_ref())
        .flat_map(|l| l.ports.iter())
        .any(|p| p.proto == proto && p.host_port == port && same_addr(p.host_ip, ip))
}

/// Tries to bind the host port: a process of the host holding it is a
/// clear error now rather than a rule that silently shadows it.
fn bindable(ip: Ipv4Addr, port: u16, proto: Proto) -> std::io::Result<()> {
    let addr = SocketAddrV4::new(ip, port);
    match proto {
        Proto::Tcp => TcpListener::bind(addr).map(drop),
        Proto::Udp => UdpSocket::bind(addr).map(drop),
    }
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut w = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((w.next()??, w.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Resolves the asked ports into host ports for container `me`: checks
/// fixed ones, picks free ephemeral ones. `check_host` tries to bind each
/// (off for user-mode helpers, which bind the ports themselves).
pub fn resolve(state: &State, me: &str, specs: &[PortSpec], check_host: bool) -> Result<Vec<Published>> {
    let mut out: Vec<Published> = Vec::new();
    let (lo, hi) = ephemeral_range();
    let span = (hi - lo) as u32 + 1;
    let seed =
        std::process::id().wrapping_mul(2654435761) ^ me.bytes().fold(0u32, |h, b| h.wrapping_mul(31) ^ b as u32);
    for s in specs {
        let ip = s.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mine = |port: u16| {
            out.iter()
                .any(|p| p.proto == s.proto && p.host_port == port && same_addr(p.host_ip, ip))
        };
        let host_port = match s.host_port {
            Some(port) => {
                let addr = format!("{ip}:{port}");
                if allocated(state, me, ip, port, s.proto) || mine(port) {
                    return Err(Error::PortAllocated { addr });
                }
                if check_host {
                    bindable(ip, port, s.proto).map_err(|source| Error::PortInUse {
                        addr: format!("{addr}/{}", s.proto.as_str()),
                        source,
                    })?;
                }
                port
            }
            None => (0..span)
                .map(|i| lo + ((seed.wrapping_add(i * 7919)) % span) as u16)
                .find(|&p| !allocated(state, me, ip, p, s.proto) && !mine(p) && bindable(ip, p, s.proto).is_ok())
                .ok_or_else(|| Error::NoFreePort {
                    what: format!("{}/{}", s.container_port, s.proto.as_str()),
                })?,
        };
        out.push(Published {
            container_port: s.container_port,
            proto: s.proto,
            host_ip: ip,
            host_port,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_as_dockers() {
        let p = parse_publish("8080:80").unwrap();
        assert_eq!(
            (p.host_ip, p.host_port, p.container_port, p.proto),
            (None, Some(8080), 80, Proto::Tcp)
        );
        let p = parse_publish("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(p.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(p.proto, Proto::Udp);
        let p = parse_publish("127.0.0.1::80").unwrap();
        assert_eq!(p.host_port, None);
        assert_eq!(parse_publish("80").unwrap().host_port, None);
        for bad in ["", "x:80", "80/sctp", "1:2:3:4", "0:80", "70000:80", "1.2.3:80:80"] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
        let r = parse_publish_ranges("127.0.0.1:8000-8002:80-82/udp").unwrap();
        let got: Vec<_> = r
            .iter()
            .map(|p| (p.host_ip, p.host_port, p.container_port, p.proto))
            .collect();
        assert_eq!(
            got,
            [8000, 8001, 8002].map(|h| (Some(Ipv4Addr::LOCALHOST), Some(h), h - 7920, Proto::Udp))
        );
        let r = parse_publish_ranges("7000-7001").unwrap();
        assert_eq!((r.len(), r[1].host_port, r[1].container_port), (2, None, 7001));
        assert_eq!(parse_publish_ranges("8080:80").unwrap()[0].host_port, Some(8080));
        for bad in ["8000-8002:80-81", "8000-8010:80", "82-80", "8000-8002:x-y"] {
            assert!(parse_publish_ranges(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_expose("7000-7002/udp").unwrap().len(), 3);
        let ports = |v: &[(u16, &str, u16, &'static str)]| {
            displayable_ports(
                &v.iter()
                    .map(|(a, b, c, d)| (*a, b.to_string(), *c, *d))
                    .collect::<Vec<_>>(),
            )
        };
        // As docker ps: same-number runs collapse, other mappings follow.
        assert_eq!(
            ports(&[
                (80, "0.0.0.0", 8080, "tcp"),
                (443, "", 0, "tcp"),
                (8000, "0.0.0.0", 8000, "tcp"),
                (8001, "0.0.0.0", 8001, "tcp"),
                (9000, "", 0, "udp"),
                (9001, "", 0, "udp"),
            ]),
            "443/tcp, 0.0.0.0:8000-8001->8000-8001/tcp, 9000-9001/udp, 0.0.0.0:8080->80/tcp"
        );
        assert!(parse_expose("9-8").is_err());
    }

    #[test]
    fn ports_column_is_dockers() {
        let p = vec![Published {
            container_port: 80,
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 8080,
        }];
        assert_eq!(
            format_ports(&p, &[(80, Proto::Tcp), (443, Proto::Tcp)]),
            "443/tcp, 0.0.0.0:8080->80/tcp"
        );
        assert_eq!(format_ports(&[], &[]), "");
    }

    #[test]
    fn a_port_held_on_the_host_is_refused_and_ephemeral_ones_are_free() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let spec = parse_publish(&format!("127.0.0.1:{port}:80")).unwrap();
        let e = resolve(&State::default(), "me", &[spec], true).unwrap_err();
        assert!(matches!(e, Error::PortInUse { .. }), "{e}");
        let any = parse_publish("127.0.0.1::80").unwrap();
        let got = resolve(&State::default(), "me", &[any.clone(), any], true).unwrap();
        assert_ne!(got[0].host_port, got[1].host_port);
    }
}
