//! Bridges, veth pairs and network namespaces, made with the `ip` binary
//! (iproute2: `ip -batch -` runs several changes in one process).

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Where `ip netns` keeps its namespaces (strata's are `strata-<id>`).
pub const NETNS_DIR: &str = "/run/netns";
pub const NETNS_PREFIX: &str = "strata-";

/// The first of `/usr/sbin/NAME`, `/sbin/NAME`, `/usr/bin/NAME`, `/bin/NAME` that exists.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .chain(from_path)
        .find(|p| p.is_file())
}

pub fn ip_binary() -> PathBuf {
    find_binary("ip").unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs a program, returning its stdout; `input` is written to its stdin.
pub fn run(program: &Path, args: &[&str], input: Option<&str>, hint: &'static str) -> Result<String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.display().to_string(),
        hint,
        source,
    })?;
    if let Some(text) = input
        && let Some(mut stdin) = child.stdin.take()
    {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        program: program.display().to_string(),
        hint,
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            program: format!("{} {}", program.display(), args.join(" ")),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const IP_HINT: &str = "apt-get install iproute2";

fn ip(args: &[&str]) -> Result<String> {
    run(&ip_binary(), args, None, IP_HINT)
}

/// Runs `ip [-n NS] -batch -` with one command a line.
pub fn ip_batch(netns: Option<&str>, lines: &[String]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-batch", "-"]);
    let text = lines.join("\n") + "\n";
    run(&ip_binary(), &args, Some(&text), IP_HINT).map(drop)
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn write_sysctl(path: &str, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(crate::error::io("setting", path))
}

/// Makes the bridge `name` with the gateway address, up. Its own
/// `route_localnet` lets connections the host makes to 127.0.0.1:PORT be
/// DNATed onto it (and masqueraded, see the nft table); IPv4 forwarding is
/// turned on as Docker does, for the containers' traffic to the outside.
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    if !link_exists(name) {
        ip_batch(
            None,
            &[
                format!("link add {name} type bridge"),
                format!("addr add {gateway}/{prefix} dev {name}"),
                format!("link set {name} up"),
            ],
        )?;
    }
    write_sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"), "1")?;
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() != "1") {
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    }
    Ok(())
}

pub fn delete_link(name: &str) -> Result<()> {
    if link_exists(name) {
        ip(&["link", "del", name])?;
    }
    Ok(())
}

pub fn netns_name(container_id: &str) -> String {
    format!("{NETNS_PREFIX}{}", &container_id[..container_id.len().min(12)])
}

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// A new network namespace with `lo` up, bind-mounted at `/run/netns/NAME`.
pub fn add_netns(name: &str) -> Result<PathBuf> {
    if netns_path(name).exists() {
        delete_netns(name)?;
    }
    ip(&["netns", "add", name])?;
    ip_batch(Some(name), &["link set lo up".to_string()])?;
    Ok(netns_path(name))
}

/// Deletes the namespace: its veths go with it (and their host ends).
pub fn delete_netns(name: &str) -> Result<()> {
    if netns_path(name).exists() {
        ip(&["netns", "del", name])?;
    }
    Ok(())
}

/// strata's namespaces present on the host.
pub fn list_netns() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(NETNS_PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

/// strata's bridges present on the host (`strata0`, `strata-<id>`).
pub fn list_bridges() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    (n == "strata0" || n.starts_with("strata-"))
                        && Path::new("/sys/class/net").join(n).join("bridge").exists()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One veth: `veth` on the host in `bridge`, `ifname` in the namespace
/// with `ip`/`prefix`; `gateway` becomes the default route when given.
pub struct VethPlan<'a> {
    pub netns: &'a str,
    pub veth: &'a str,
    pub ifname: &'a str,
    pub bridge: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// Docker's MAC for an address: 02:42 and the address's four bytes.
pub fn mac_of(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

pub fn add_veth(p: &VethPlan<'_>) -> Result<()> {
    let VethPlan {
        netns,
        veth,
        ifname,
        bridge,
        ip,
        prefix,
        gateway,
    } = p;
    if link_exists(veth) {
        delete_link(veth)?;
    }
    ip_batch(
        None,
        &[
            format!(
                "link add {veth} type veth peer name {ifname} address {} netns {netns}",
                mac_of(*ip)
            ),
            format!("link set {veth} master {bridge} up"),
        ],
    )?;
    let mut inside = vec![
        format!("addr add {ip}/{prefix} dev {ifname}"),
        format!("link set {ifname} up"),
    ];
    if let Some(gw) = gateway {
        inside.push(format!("route add default via {gw} dev {ifname}"));
    }
    ip_batch(Some(netns), &inside)
}
