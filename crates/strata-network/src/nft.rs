//! The nftables table `inet strata`, rendered whole from the state and
//! applied atomically with `nft -f -` (the previous table replaced in the
//! same transaction), only when it differs from the one applied last; it
//! holds every network's rules while networks exist. Nothing outside this
//! table is touched.
//!
//! Published ports are DNAT rules in the `prerouting` chain (traffic from
//! outside) and the `output` chain (connections the host itself makes,
//! to its own addresses and to 127.0.0.1). A connection from 127.0.0.1
//! DNATed onto a bridge needs two things, both here rather than in a
//! userland forwarder process: `route_localnet` on strata's bridge (set
//! when the bridge is made, on that bridge only) so the kernel routes a
//! 127.0.0.1 source off `lo`, and a masquerade of 127.0.0.0/8 leaving the
//! bridge so the container answers the bridge's address. This keeps
//! `run -d -p` free of any per-container process (daemonless) and costs
//! the same per packet as Docker's `userland-proxy: false`.

use std::fmt::Write;

use crate::error::Result;
use crate::link::{find_binary, run};
use crate::state::State;

pub const TABLE: &str = "strata";

/// The table for the state, or `None` when no container needs one.
pub fn render(state: &State) -> Option<String> {
    let mut nets: Vec<(&str, &str)> = Vec::new();
    let mut dnat = String::new();
    // Every network's rules, used or not (as Docker's for docker0): the
    // table then changes only when a port is published or a network made
    // or removed, and a plain `run` applies nothing (see [`apply`]).
    for n in state.networks.values() {
        if !n.bridge.is_empty() && !nets.iter().any(|(b, _)| *b == n.bridge) {
            nets.push((&n.bridge, &n.subnet));
        }
    }
    for c in state.containers.values() {
        let Some(live) = &c.live else { continue };
        if !is_bridge_mode(state, &c.mode) {
            continue;
        }
        // Published ports go to the address on the container's first network.
        let Some(ip) = c.attachments.iter().find_map(|a| a.ip) else {
            continue;
        };
        for p in &live.ports {
            let dst = if p.host_ip.is_unspecified() {
                "fib daddr type local".to_string()
            } else {
                format!("ip daddr {}", p.host_ip)
            };
            let _ = writeln!(
                dnat,
                "\t\tmeta nfproto ipv4 {dst} {proto} dport {hp} dnat ip to {ip}:{cp}",
                proto = p.proto.as_str(),
                hp = p.host_port,
                cp = p.container_port
            );
        }
    }
    if nets.is_empty() {
        return None;
    }
    let mut post = String::new();
    for (bridge, subnet) in &nets {
        let _ = writeln!(post, "\t\tip saddr {subnet} oifname != \"{bridge}\" masquerade");
        let _ = writeln!(post, "\t\tip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade");
        let _ = writeln!(
            post,
            "\t\tct status dnat ip saddr {subnet} oifname \"{bridge}\" masquerade"
        );
    }
    // Networks are isolated from each other (Docker's isolation chains):
    // the host routes between its bridges, this table does not let it.
    // Published ports stay reachable from every network.
    let mut forward = String::from("\t\tct status dnat accept\n");
    for (a, _) in &nets {
        for (b, _) in &nets {
            if a != b {
                let _ = writeln!(forward, "\t\tiifname \"{a}\" oifname \"{b}\" drop");
            }
        }
    }
    Some(format!(
        "table inet {TABLE} {{\n\
         \tchain publish {{\n{dnat}\t}}\n\
         \tchain prerouting {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump publish\n\t}}\n\
         \tchain output {{\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump publish\n\t}}\n\
         \tchain postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n{post}\t}}\n\
         \tchain forward {{\n\t\ttype filter hook forward priority filter; policy accept;\n{forward}\t}}\n\
         }}\n"
    ))
}

/// Whether containers of this mode sit on a strata bridge.
pub fn is_bridge_mode(state: &State, mode: &str) -> bool {
    mode == "bridge" || (state.networks.get(mode).is_some_and(|n| n.user))
}

pub fn nft_binary() -> Option<std::path::PathBuf> {
    find_binary("nft")
}

/// What the last [`apply`] since boot made the table (on a tmpfs: a
/// reboot, which empties the kernel's tables, removes it too).
const APPLIED: &str = "/run/strata/nft-table";

/// Replaces the table with the one the state needs (or deletes it), unless
/// it is the one applied last: an `nft` run is ~15 ms, most of a
/// `run --rm` on a bridge. (A table flushed behind strata's back, e.g. by
/// `nft flush ruleset`, comes back with the next change, as Docker's
/// iptables rules do after `iptables -F`.)
pub fn apply(state: &State) -> Result<()> {
    let table = render(state);
    if table.is_none() && !strata_rootless::privileged() {
        // Rootless: no table of ours can exist, and nft could not look.
        return Ok(());
    }
    let wanted = table.clone().unwrap_or_default();
    if std::fs::read_to_string(APPLIED).is_ok_and(|applied| applied == wanted) {
        return Ok(());
    }
    let Some(nft) = nft_binary() else {
        if table.is_none() {
            return Ok(());
        }
        return Err(crate::error::Error::Unsupported {
            mode: "bridge".into(),
            why: "the nft binary is missing (apt-get install nftables)".into(),
        });
    };
    let mut script = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if let Some(t) = &table {
        script.push_str(t);
    }
    // Forgotten first: if nft fails half-way, the next apply runs it again.
    let _ = std::fs::remove_file(APPLIED);
    run(&nft, &["-f", "-"], Some(&script), "apt-get install nftables")?;
    if std::fs::create_dir_all("/run/strata").is_ok() {
        let tmp = format!("{APPLIED}.{}", std::process::id());
        if std::fs::write(&tmp, &wanted).is_ok() && std::fs::rename(&tmp, APPLIED).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Proto, Published};
    use crate::state::{Attach, Ctr, Live, NetDef};
    use std::net::Ipv4Addr;

    #[test]
    fn the_table_has_every_networks_rules_and_dnat_for_published_ports() {
        let mut s = State::default();
        assert!(render(&s).is_none());
        s.networks.insert(
            "bridge".into(),
            NetDef {
                id: "i".into(),
                name: "bridge".into(),
                bridge: "strata0".into(),
                subnet: "10.88.0.0/16".into(),
                gateway: Ipv4Addr::new(10, 88, 0, 1),
                created: String::new(),
                labels: Default::default(),
                user: false,
                store: String::new(),
                last_lease: None,
            },
        );
        s.containers.insert(
            "c".into(),
            Ctr {
                store: String::new(),
                name: "web".into(),
                hostname: "web".into(),
                mode: "bridge".into(),
                attachments: vec![Attach {
                    network: "bridge".into(),
                    aliases: vec![],
                    ip: Some(Ipv4Addr::new(10, 88, 0, 2)),
                    veth: Some("svx".into()),
                    ifname: Some("eth0".into()),
                }],
                live: Some(Live {
                    netns: "/run/netns/strata-c".into(),
                    owner_pid: 1,
                    owner_start: 0,
                    ports: vec![Published {
                        container_port: 80,
                        proto: Proto::Tcp,
                        host_ip: Ipv4Addr::UNSPECIFIED,
                        host_port: 8080,
                    }],
                    helper_pid: None,
                    helper_start: 0,
                }),
            },
        );
        let t = render(&s).unwrap();
        assert!(
            t.contains("fib daddr type local tcp dport 8080 dnat ip to 10.88.0.2:80"),
            "{t}"
        );
        assert!(
            t.contains("ip saddr 10.88.0.0/16 oifname != \"strata0\" masquerade"),
            "{t}"
        );
        assert!(t.contains("ip saddr 127.0.0.0/8 oifname \"strata0\" masquerade"), "{t}");
        assert!(!t.contains("drop"), "one network: nothing to isolate\n{t}");
        // A second, user network: isolated from the first both ways.
        let mut user = s.networks["bridge"].clone();
        user.name = "app".into();
        user.bridge = "strata-1234abcd".into();
        user.subnet = "10.89.0.0/16".into();
        user.user = true;
        s.networks.insert("app".into(), user);
        let mut c2 = s.containers["c"].clone();
        c2.mode = "app".into();
        c2.attachments[0].network = "app".into();
        c2.attachments[0].ip = Some(Ipv4Addr::new(10, 89, 0, 2));
        c2.live.as_mut().unwrap().ports.clear();
        s.containers.insert("d".into(), c2);
        let t = render(&s).unwrap();
        assert!(
            t.contains("iifname \"strata0\" oifname \"strata-1234abcd\" drop"),
            "{t}"
        );
        assert!(
            t.contains("iifname \"strata-1234abcd\" oifname \"strata0\" drop"),
            "{t}"
        );
        assert!(
            t.contains("ip saddr 10.89.0.0/16 oifname != \"strata-1234abcd\" masquerade"),
            "{t}"
        );
        assert_eq!(t.matches("dnat ip to").count(), 1, "{t}");
        // No container running: the networks' rules stay, no DNAT.
        s.containers.remove("d");
        s.containers.get_mut("c").unwrap().live = None;
        let t = render(&s).unwrap();
        assert!(!t.contains("dnat ip to"), "{t}");
        assert!(t.contains("oifname != \"strata0\" masquerade"), "{t}");
        // No network: no table.
        s.networks.clear();
        s.containers.clear();
        assert!(render(&s).is_none());
    }
}
