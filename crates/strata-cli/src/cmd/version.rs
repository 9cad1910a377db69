//! `version` and `info` (`system info`) in Docker's shape.
//!
//! strata has no daemon: the "server" is this same binary working on the
//! store (as podman reports for a local engine), so `Server.Version` is
//! strata's version and the engine's details are the store's. There is no
//! Engine API, so the API versions are empty.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use crate::format::{bytes_size, render, template};

const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Args)]
#[command(override_usage = "strata version [OPTIONS]")]
pub struct VersionArgs {
    /// Format output using a custom template ('json': JSON)
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
}

#[derive(Args)]
#[command(override_usage = "strata info [OPTIONS]")]
pub struct InfoArgs {
    /// Format output using a custom template ('json': JSON)
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default().trim().to_string()
}

/// The host's architecture as Docker names it (`amd64`, `arm64`).
fn arch() -> String {
    strata_oci::Platform::host().architecture
}

fn kernel() -> String {
    read_trimmed("/proc/sys/kernel/osrelease")
}

/// `--format` as docker takes it: `json` or `{{json .}}` for the JSON, else
/// a Go template on it (Go's field names, `APIVersion`, beside the JSON's).
fn print(format: Option<&str>, v: &Value, text: impl FnOnce() -> String) -> Result<ExitCode> {
    match format {
        None | Some("") => print!("{}", text()),
        Some("json" | "{{json .}}") => println!("{}", serde_json::to_string(v)?),
        Some(f) => {
            let mut view = v.clone();
            alias_api_version(&mut view);
            println!("{}", render(&template(f)?, &view)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn alias_api_version(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(a) = o.get("ApiVersion").cloned() {
                o.insert("APIVersion".into(), a);
            }
            o.values_mut().for_each(alias_api_version);
        }
        Value::Array(a) => a.iter_mut().for_each(alias_api_version),
        _ => {}
    }
}

pub fn version(root: &Path, a: VersionArgs) -> Result<ExitCode> {
    let (os, arch) = ("linux", arch());
    let arch = arch.as_str();
    let v = json!({
        "Client": {
            "Platform": {"Name": "strata"},
            "Version": VERSION, "ApiVersion": "", "DefaultAPIVersion": "", "GitCommit": "",
            "GoVersion": "", "Os": os, "Arch": arch, "BuildTime": "", "Context": "default",
        },
        "Server": {
            "Platform": {"Name": "strata (daemonless)"},
            "Components": [{"Name": "Engine", "Version": VERSION,
                            "Details": {"Os": os, "Arch": arch, "KernelVersion": kernel(), "Root": root.display().to_string()}}],
            "Version": VERSION, "ApiVersion": "", "MinAPIVersion": "", "GitCommit": "", "GoVersion": "",
            "Os": os, "Arch": arch, "KernelVersion": kernel(), "BuildTime": "",
        },
    });
    print(a.format.as_deref(), &v, || {
        format!(
            "Client: strata\n Version:           {VERSION}\n OS/Arch:           {os}/{arch}\n Context:           default\n\n\
             Server: strata (daemonless)\n Engine:\n  Version:          {VERSION}\n  API version:      none (no daemon, no Engine API)\n  \
             OS/Arch:          {os}/{arch}\n  Kernel version:   {}\n  Root:             {}\n",
            kernel(),
            root.display()
        )
    })
}

fn os_release() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn info(root: &Path, a: InfoArgs) -> Result<ExitCode> {
    let engine =
        strata_container::Containers::open(root).with_context(|| format!("opening the store at {}", root.display()))?;
    let containers = engine.list()?;
    let running = containers.iter().filter(|c| engine.status(c).is_running()).count();
    let images = engine.store.list_images()?.len();
    let driver = engine.snap.driver().name().to_string();
    let cgroup_version = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    // As Docker: rootless has no cgroup driver without a delegated v2 tree,
    // and says "rootless" among the security options.
    let rootless = strata_rootless::is_rootless();
    let cgroup_driver = if rootless { "none" } else { "cgroupfs" };
    let mut security = vec!["name=seccomp,profile=default".to_string()];
    if rootless {
        security.push("name=rootless".into());
    }
    let v = json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Driver": driver,
        "LoggingDriver": "json-file",
        "CgroupDriver": cgroup_driver,
        "SecurityOptions": security,
        "CgroupVersion": cgroup_version,
        "KernelVersion": kernel(),
        "OperatingSystem": os_release(),
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "DockerRootDir": root.display().to_string(),
        "Name": read_trimmed("/proc/sys/kernel/hostname"),
        "ServerVersion": VERSION,
        "Debug": false,
        "IndexServerAddress": "https://index.docker.io/v1/",
    });
    print(a.format.as_deref(), &v, || {
        let s = |k: &str| v[k].to_string().trim_matches('"').to_string();
        format!(
            "Client:\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: {}\n  Running: {}\n  Paused: 0\n  Stopped: {}\n \
             Images: {}\n Server Version: {VERSION}\n Storage Driver: {}\n Logging Driver: json-file\n Cgroup Driver: {cgroup_driver}\n \
             Cgroup Version: {}\n Security Options:\n  seccomp\n   Profile: default\n{} Kernel Version: {}\n Operating System: {}\n OSType: linux\n Architecture: {}\n CPUs: {}\n \
             Total Memory: {}\n Name: {}\n Docker Root Dir: {}\n Debug Mode: false\n",
            s("Containers"),
            s("ContainersRunning"),
            s("ContainersStopped"),
            s("Images"),
            s("Driver"),
            s("CgroupVersion"),
            if rootless { "  rootless\n" } else { "" },
            s("KernelVersion"),
            s("OperatingSystem"),
            s("Architecture"),
            s("NCPU"),
            bytes_size(mem_total()),
            s("Name"),
            s("DockerRootDir"),
        )
    })
}
