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

/// Where strata's network namespaces are bind-mounted: `ip netns`'s
/// directory as root; rootless, `netns` in the user's runtime directory
/// (the bind mounts live in the rootless mount namespace, which every
/// command joins), made by strata itself as `ip netns add` cannot.
pub fn netns_dir() -> PathBuf {
    if strata_rootless::privileged() {
        PathBuf::from(NETNS_DIR)
    } else {
        strata_rootless::runtime_dir().join("netns")
    }
}

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
    run_in(None, program, args, input, hint)
}

/// [`run`] inside the network namespace bind-mounted at `netns` (entered
/// between fork and exec).
pub fn run_in(
    netns: Option<&Path>,
    program: &Path,
    args: &[&str],
    input: Option<&str>,
    hint: &'static str,
) -> Result<String> {
    let mut cmd = Command::new(program);
    if let Some(ns) = netns {
        let fd = std::fs::File::open(ns).map_err(crate::error::io("opening", ns))?;
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let raw = fd.as_raw_fd();
        // SAFETY: only setns between fork and exec; `fd` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(raw, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = run_command(cmd, program, args, input, hint);
        drop(fd);
        return out;
    }
    run_command(cmd, program, args, input, hint)
}

fn run_command(
    mut cmd: Command,
    program: &Path,
    args: &[&str],
    input: Option<&str>,
    hint: &'static str,
) -> Result<String> {
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
    let text = lines.join("\n") + "\n";
    match netns {
        Some(ns) if !strata_rootless::privileged() => run_in(
            Some(&netns_path(ns)),
            &ip_binary(),
            &["-batch", "-"],
            Some(&text),
            IP_HINT,
        )
        .map(drop),
        Some(ns) => run(&ip_binary(), &["-n", ns, "-batch", "-"], Some(&text), IP_HINT).map(drop),
        None => run(&ip_binary(), &["-batch", "-"], Some(&text), IP_HINT).map(drop),
    }
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
    netns_dir().join(name)
}

/// A new network namespace with `lo` up, bind-mounted at `/run/netns/NAME`.
pub fn add_netns(name: &str) -> Result<PathBuf> {
    if netns_path(name).exists() {
        delete_netns(name)?;
    }
    if strata_rootless::privileged() {
        ip(&["netns", "add", name])?;
    } else {
        add_netns_unprivileged(&netns_path(name))?;
    }
    ip_batch(Some(name), &["link set lo up".to_string()])?;
    Ok(netns_path(name))
}

/// Deletes the namespace: its veths go with it (and their host ends).
pub fn delete_netns(name: &str) -> Result<()> {
    // What `ip netns del` does, without a process: the bind mount that
    // holds the namespace detached, its file removed.
    let path = netns_path(name);
    if path.exists() {
        let _ = rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH);
        std::fs::remove_file(&path).map_err(crate::error::io("removing", &path))?;
    }
    Ok(())
}

/// What `ip netns add` does, for a rootless namespace: a thread unshares
/// a network namespace (unshare is per thread for it) and bind-mounts it
/// on an empty file at `path`.
fn add_netns_unprivileged(path: &Path) -> Result<()> {
    let dir = path.parent().expect("netns path has a parent");
    std::fs::create_dir_all(dir).map_err(crate::error::io("creating", dir))?;
    std::fs::File::create(path).map_err(crate::error::io("creating", path))?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> std::io::Result<()> {
        // SAFETY: a network namespace is per thread; this thread ends here.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET)? };
        rustix::mount::mount_bind("/proc/thread-self/ns/net", &target)?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the namespace thread panicked")));
    made.map_err(|e| {
        let _ = std::fs::remove_file(path);
        crate::error::io("making the network namespace", path)(e)
    })
}

/// strata's namespaces present on the host.
pub fn list_netns() -> Vec<String> {
    std::fs::read_dir(netns_dir())
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
            // A container reaching its own published port: the DNATed
            // packet leaves by the bridge port it came in on.
            format!("link set {veth} type bridge_slave hairpin on"),
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
