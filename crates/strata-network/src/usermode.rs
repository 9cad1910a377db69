//! User-mode networking: `pasta` (passt) or `slirp4netns` serve the
//! container's namespace from a process of the host that needs no bridge,
//! no nftables and no root (Podman's rootless networking). Published ports
//! are bound by that helper on the host.
//!
//! In both, the container's gateway leads to the host itself (pasta maps
//! its gateway address to the host, slirp4netns its 10.0.2.2 to the host's
//! 127.0.0.1), as Podman's `host.containers.internal`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::link::{find_binary, run};
use crate::ports::{Proto, Published};

pub const PASTA: &str = "pasta";
pub const SLIRP: &str = "slirp4netns";

/// Installed, and able to make its tap device: rootless, `/dev/net/tun`
/// must be usable by the user (0666 as Debian's udev rules make it).
pub fn available(mode: &str) -> bool {
    find_binary(mode).is_some() && (strata_rootless::privileged() || tun_usable())
}

pub fn tun_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok()
}

fn binary(mode: &str) -> Result<std::path::PathBuf> {
    find_binary(mode).ok_or_else(|| Error::Unsupported {
        mode: mode.to_string(),
        why: format!(
            "{mode} is not installed (apt-get install {})",
            if mode == PASTA { "passt" } else { "slirp4netns" }
        ),
    })
}

fn pasta_spec(ports: &[Published], proto: Proto) -> Vec<String> {
    let v: Vec<String> = ports
        .iter()
        .filter(|p| p.proto == proto)
        .map(|p| {
            let addr = if p.host_ip.is_unspecified() {
                String::new()
            } else {
                format!("{}/", p.host_ip)
            };
            format!("{addr}{}:{}", p.host_port, p.container_port)
        })
        .collect();
    if v.is_empty() { vec!["none".into()] } else { v }
}

/// Starts the helper for the namespace at `netns`; returns its PID.
pub fn start(mode: &str, netns: &Path, ctr_dir: &Path, ports: &[Published]) -> Result<i32> {
    match mode {
        PASTA => start_pasta(netns, ctr_dir, ports),
        _ => start_slirp(netns, ctr_dir, ports),
    }
}

fn start_pasta(netns: &Path, ctr_dir: &Path, ports: &[Published]) -> Result<i32> {
    let bin = binary(PASTA)?;
    let pidfile = ctr_dir.join("pasta.pid");
    let _ = std::fs::remove_file(&pidfile);
    let mut args: Vec<String> = vec![
        "--config-net".into(),
        "--quiet".into(),
        // As root pasta would become nobody, who cannot enter the namespace.
        "--runas".into(),
        rustix::process::geteuid().as_raw().to_string(),
        "--ipv4-only".into(),
        "--netns".into(),
        netns.display().to_string(),
        "--pid".into(),
        pidfile.display().to_string(),
        "-T".into(),
        "none".into(),
        "-U".into(),
        "none".into(),
    ];
    for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        for s in pasta_spec(ports, proto) {
            args.push(flag.into());
            args.push(s);
        }
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    // pasta goes to the background once the namespace is configured.
    run(&bin, &refs, None, "apt-get install passt")?;
    let pid = std::fs::read_to_string(&pidfile)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::Other(format!("pasta did not write its PID to {}", pidfile.display())))?;
    Ok(pid)
}

fn start_slirp(netns: &Path, ctr_dir: &Path, ports: &[Published]) -> Result<i32> {
    let bin = binary(SLIRP)?;
    let ns = netns
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let api = api_socket(&ns);
    let _ = std::fs::remove_file(&api);
    let log_path = ctr_dir.join("slirp4netns.log");
    let log = std::fs::File::create(&log_path).map_err(crate::error::io("creating", &log_path))?;
    let mut child = Command::new(&bin)
        .args(["--configure", "--mtu=65520", "--netns-type=path", "--api-socket"])
        .arg(&api)
        .arg(netns)
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: bin.display().to_string(),
            hint: "apt-get install slirp4netns",
            source,
        })?;
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let up = crate::link::run_in(
            Some(netns),
            &crate::link::ip_binary(),
            &["-4", "-o", "addr", "show", "dev", "tap0"],
            None,
            "apt-get install iproute2",
        )
        .is_ok_and(|o| o.contains("inet "));
        if up && api.exists() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Command {
                program: bin.display().to_string(),
                status: status.to_string(),
                stderr: std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            });
        }
        if Instant::now() > deadline {
            stop(pid, 0);
            return Err(Error::Other(
                "slirp4netns did not configure the namespace in 5 s".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Not waited for: it lives as long as the container, then is killed
    // (a zombie of a short-lived strata process is reaped by init).
    drop(child);
    for p in ports {
        let req = format!(
            "{{\"execute\":\"add_hostfwd\",\"arguments\":{{\"proto\":\"{}\",\"host_addr\":\"{}\",\"host_port\":{},\"guest_port\":{}}}}}",
            p.proto.as_str(),
            p.host_ip,
            p.host_port,
            p.container_port
        );
        let reply = (|| -> std::io::Result<String> {
            let mut s = UnixStream::connect(&api)?;
            s.write_all(req.as_bytes())?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        })()
        .map_err(|e| Error::Other(format!("slirp4netns API: {e}")))?;
        if reply.contains("\"error\"") {
            stop(pid, 0);
            return Err(Error::PortInUse {
                addr: format!("{}/{}", p.host_addr(), p.proto.as_str()),
                source: std::io::Error::other(reply.trim().to_string()),
            });
        }
    }
    Ok(pid)
}

/// slirp4netns's API socket for the namespace `ns` (a socket path has at
/// most 107 bytes: not under the store).
fn api_socket(ns: &str) -> std::path::PathBuf {
    let runtime = if strata_rootless::privileged() {
        std::path::PathBuf::from("/run")
    } else {
        strata_rootless::runtime_dir()
    };
    runtime.join(format!("{ns}.slirp4netns.sock"))
}

/// Removes what a helper of the namespace `ns` left (its API socket).
pub fn cleanup(ns: &str) {
    let _ = std::fs::remove_file(api_socket(ns));
}

/// Ends the helper (when it still is the process started).
pub fn stop(pid: i32, start: u64) {
    if pid <= 0 {
        return;
    }
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let ours = matches!(comm.trim(), "pasta" | "passt" | "slirp4netns")
        && (start == 0 || crate::state::start_time(pid) == Some(start));
    if ours {
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}
