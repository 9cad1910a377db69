//! `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` of a container:
//! files under the store bind-mounted into it. They are rewritten in place
//! (a bind mount holds the inode: a rename would not be seen).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};

pub const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// One line of a hosts file: an address and its names.
pub type HostEntry = (Ipv4Addr, Vec<String>);

/// The hosts file: localhost, the container's own addresses and names,
/// then the other containers of its user networks.
pub fn hosts(own: &[HostEntry], others: &[HostEntry]) -> String {
    let mut s = HOSTS_HEADER.to_string();
    for (ip, names) in own.iter().chain(others) {
        let mut seen: Vec<&str> = Vec::new();
        for n in names {
            if !n.is_empty() && !seen.contains(&n.as_str()) {
                seen.push(n);
            }
        }
        if !seen.is_empty() {
            let _ = writeln!(s, "{ip}\t{}", seen.join(" "));
        }
    }
    s
}

fn nameservers_of(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|r| r.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// The container's resolv.conf from the host's: loopback nameservers
/// (systemd-resolved's 127.0.0.53 and the like) cannot be reached from
/// the container's namespace and are replaced by resolved's upstreams
/// (`/run/systemd/resolve/resolv.conf`), else dropped; with none left,
/// Docker's fallback (8.8.8.8, 8.8.4.4). search/options lines are kept.
pub fn resolv_conf(host: &str, resolved_upstreams: Option<&str>) -> String {
    let mut servers: Vec<String> = nameservers_of(host);
    if servers.iter().any(|n| is_loopback(n)) {
        let upstream = resolved_upstreams.map(nameservers_of).unwrap_or_default();
        servers.retain(|n| !is_loopback(n));
        servers.extend(upstream.into_iter().filter(|n| !is_loopback(n)));
    }
    servers.dedup();
    if servers.is_empty() {
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s = String::new();
    for l in host.lines() {
        let t = l.trim_start();
        if t.starts_with("search") || t.starts_with("domain") || t.starts_with("options") {
            s.push_str(t);
            s.push('\n');
        }
    }
    for n in servers {
        let _ = writeln!(s, "nameserver {n}");
    }
    s
}

/// The host's resolv.conf as a container sees it.
pub fn host_resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    resolv_conf(&host, upstream.as_deref())
}

/// Writes `text` into `path` in place (creating it).
pub fn write_in_place(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(io("writing", path))?;
    f.write_all(text.as_bytes()).map_err(io("writing", path))
}

/// The three files of a container, in its directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

impl Files {
    pub fn in_dir(dir: &Path) -> Files {
        Files {
            hosts: dir.join("hosts"),
            hostname: dir.join("hostname"),
            resolv_conf: dir.join("resolv.conf"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_stub_is_replaced_by_its_upstreams() {
        let host = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let up = "nameserver 192.0.2.53\nnameserver 127.0.0.1\n";
        assert_eq!(
            resolv_conf(host, Some(up)),
            "options edns0 trust-ad\nsearch lan\nnameserver 192.0.2.53\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\n", None),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        assert_eq!(resolv_conf("nameserver 10.1.1.1\n", None), "nameserver 10.1.1.1\n");
    }

    #[test]
    fn hosts_lists_own_names_then_the_others() {
        let h = hosts(
            &[(
                Ipv4Addr::new(10, 1, 0, 2),
                vec!["abc".into(), "web".into(), "abc".into()],
            )],
            &[(Ipv4Addr::new(10, 1, 0, 3), vec!["db".into(), "database".into()])],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.1.0.2\tabc web\n10.1.0.3\tdb database\n"), "{h}");
    }
}
