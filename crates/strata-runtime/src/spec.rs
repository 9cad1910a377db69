//! What to run, and its OCI runtime spec.

use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use oci_spec::runtime as oci;
use serde::{Deserialize, Serialize};

/// `return Err(Error::Invalid(format!(...)))`: a value the runtime cannot use.
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err(Error::Invalid(format!($($arg)*)))
    };
}

/// `PATH` when the image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
/// SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD,
/// AUDIT_WRITE, SETFCAP (a bit per capability number; `CapBnd` 00000000a80425fb).
pub const DEFAULT_CAPABILITIES: u64 = 0xa804_25fb;

/// Capability names by number, shared with the seccomp compiler.
use strata_seccomp::CAPABILITY_NAMES as CAP_NAMES;

/// Every capability this process may give (`--privileged`, `--cap-add
/// ALL`): the kernel's, less what the caller's own permitted set lacks (a
/// host root may itself run without some, e.g. CAP_SYS_RESOURCE here).
pub fn all_capabilities() -> u64 {
    let last = crate::child::last_cap().min(63);
    let known = if last == 63 { u64::MAX } else { (1u64 << (last + 1)) - 1 };
    let permitted = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapPrm:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(known);
    known & permitted
}

/// `base` with Docker's `--cap-add`/`--cap-drop` applied: names with or
/// without `CAP_`, any case, `ALL` for every capability. Drops apply first
/// unless the add is `ALL` (as Docker: `--cap-drop X --cap-add ALL` keeps all).
pub fn apply_capability_changes(base: u64, add: &[String], drop: &[String]) -> Result<u64> {
    let parse = |name: &str| -> Result<Option<u64>> {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(None);
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        match CAP_NAMES.iter().position(|n| *n == full) {
            Some(i) => Ok(Some(1u64 << i)),
            None => Err(Error::Invalid(format!("unknown capability: {name:?}"))),
        }
    };
    let mut caps = base;
    for d in drop {
        match parse(d)? {
            None => caps = 0,
            Some(bit) => caps &= !bit,
        }
    }
    for a in add {
        match parse(a)? {
            None => caps = all_capabilities(),
            Some(bit) => caps |= bit,
        }
    }
    Ok(caps)
}

/// Numeric identity of the process (resolve names with [`crate::resolve_user`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (empty: none).
    pub additional_gids: Vec<u32>,
}

/// `--network`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Share the host's network namespace (Docker's `--network host`; strata's default).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

impl Network {
    pub fn parse(s: &str) -> Result<Network> {
        match s {
            "host" | "default" => Ok(Network::Host),
            "none" => Ok(Network::None),
            other => invalid!("network {other:?} is not supported (use host or none)"),
        }
    }
}

/// A function a detached container's monitor calls with `args` when the
/// container has ended for good (it survives the fork: no exec).
#[derive(Debug, Clone)]
pub struct ExitHook {
    pub run: fn(&[String]),
    pub args: Vec<String>,
}

impl PartialEq for ExitHook {
    fn eq(&self, o: &ExitHook) -> bool {
        std::ptr::fn_addr_eq(self.run, o.run) && self.args == o.args
    }
}

impl Eq for ExitHook {}

/// A bind mount `HOST:CTR[:ro|rw]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path (file or directory), absolute.
    pub source: PathBuf,
    /// Path inside the container, absolute; resolved inside the root, created if missing.
    pub destination: String,
    pub readonly: bool,
}

impl BindMount {
    /// Parses `-v HOST:CTR[:OPTS]` where OPTS is a comma list of `ro`, `rw`
    /// (and `z`/`Z`, accepted and ignored as without SELinux). Named volumes
    /// (`NAME:CTR`) are the caller's: resolve them to a host path first.
    pub fn parse(s: &str) -> Result<BindMount> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [src, dst] => (*src, *dst, ""),
            [src, dst, opts] => (*src, *dst, *opts),
            _ => invalid!("invalid volume specification {s:?}: expected HOST:CONTAINER[:ro]"),
        };
        if !src.starts_with('/') {
            invalid!("invalid volume specification {s:?}: the host path must be absolute");
        }
        if !dst.starts_with('/') {
            invalid!("invalid volume specification {s:?}: the container path must be absolute");
        }
        let mut readonly = false;
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "z" | "Z" => {}
                other => invalid!("invalid volume specification {s:?}: unknown option {other:?}"),
            }
        }
        Ok(BindMount {
            source: PathBuf::from(src),
            destination: dst.to_string(),
            readonly,
        })
    }
}

/// A file given to one process only (a build secret): the runtime copies it
/// into a private tmpfs inside the container's mount namespace, sets owner
/// and mode there, and binds it read-only on `destination`. The host copy is
/// only read (it stays root's, 0400, in a 0700 directory: the caller's job);
/// nothing on the host is ever chowned to a container uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// Host file, read by the runtime before the container starts.
    pub source: PathBuf,
    /// Absolute path inside the container; resolved inside the root, created if missing.
    pub destination: String,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits inside the container (e.g. 0o400).
    pub mode: u32,
}

/// A host device given to the container (`--device HOST[:CTR[:PERMS]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// The host's device node, absolute (`/dev/loop0`).
    pub host: PathBuf,
    /// Where it appears in the container (`/dev/loop0` when not given).
    pub container: String,
    /// Any of `r`, `w`, `m` (Docker's cgroup permissions; `rwm` by default).
    pub permissions: String,
}

impl DeviceMapping {
    /// Parses Docker's `--device HOST[:CONTAINER][:PERMISSIONS]`.
    pub fn parse(s: &str) -> Result<DeviceMapping> {
        let parts: Vec<&str> = s.split(':').collect();
        let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if is_perms(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if is_perms(p) => (*h, *c, *p),
            _ => invalid!(
                "invalid device specification {s:?}: expected HOST[:CONTAINER][:PERMISSIONS] (permissions: r, w, m)"
            ),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            invalid!("invalid device specification {s:?}: paths must be absolute");
        }
        Ok(DeviceMapping {
            host: PathBuf::from(host),
            container: container.to_string(),
            permissions: permissions.to_string(),
        })
    }
}

/// The seccomp filter of a process (`--security-opt seccomp=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompPolicy {
    /// Docker's default profile.
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format (the document itself, read at create).
    Profile(String),
}

/// Docker's confinement of a container beyond namespaces: seccomp, devices,
/// `no-new-privileges`, `--privileged`. The default is Docker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Security {
    pub seccomp: SeccompPolicy,
    /// `--security-opt no-new-privileges`: setuid bits and file capabilities stop granting anything.
    pub no_new_privileges: bool,
    /// `--privileged`: every capability, every device, no seccomp, no masked
    /// or read-only paths in /proc and /sys.
    pub privileged: bool,
    /// `--device`: host devices bound in and allowed in the device cgroup.
    pub devices: Vec<DeviceMapping>,
    /// `--memory`, `--cpus`, `--pids-limit`...: limits on the container's cgroup.
    pub resources: Resources,
}

/// Docker's resource limits, in the units and with the meaning of its
/// `HostConfig` (as `inspect` shows them): 0 (or `None`) is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// `--memory`, bytes.
    pub memory: i64,
    /// `--memory-swap`: memory plus swap, bytes; -1 unlimited swap.
    pub memory_swap: i64,
    /// `--cpus` × 10⁹.
    pub nano_cpus: i64,
    /// `--cpu-shares` (relative weight; 1024 is a full share).
    pub cpu_shares: i64,
    /// `--pids-limit` (`None` or ≤ 0: unlimited).
    pub pids_limit: Option<i64>,
}

/// The CFS period `--cpus` is applied with (Docker's and runc's), microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Resources {
    /// The cgroup limits these mean (runc's conversions: `--cpus` is a
    /// quota per 100 ms period, at least 1 ms; shares within 2..262144).
    pub fn limits(&self) -> strata_cgroup::Limits {
        let pos = |v: i64| u64::try_from(v).ok().filter(|&v| v > 0);
        strata_cgroup::Limits {
            memory: pos(self.memory),
            memory_swap: pos(self.memory_swap),
            cpu_quota: pos(self.nano_cpus).map(|n| ((n * CPU_PERIOD_US / 1_000_000_000).max(1000), CPU_PERIOD_US)),
            cpu_shares: pos(self.cpu_shares).map(|s| s.clamp(2, 262_144)),
            pids: self.pids_limit.and_then(pos),
            accounting: false,
        }
    }
}

/// `--restart`: what the detached monitor does when the container ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// `no` (the default): never restart.
    #[default]
    No,
    /// `always`: restart whatever the exit code, unless stopped by the user.
    Always,
    /// `unless-stopped`: as `always` (there is no daemon restart to tell them apart).
    UnlessStopped,
    /// `on-failure[:N]`: restart on a non-zero exit code, at most N times (0: no limit).
    OnFailure(u32),
}

impl RestartPolicy {
    /// Docker's `--restart` syntax and refusals.
    pub fn parse(text: &str) -> std::result::Result<RestartPolicy, String> {
        let (name, count) = match text.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (text, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let n = match count {
                    None => 0,
                    Some(c) => c.parse::<u32>().map_err(|_| {
                        "invalid restart policy format: maximum retry count must be an integer".to_string()
                    })?,
                };
                return Ok(RestartPolicy::OnFailure(n));
            }
            _ => return Err(format!("invalid restart policy '{name}'")),
        };
        if count.is_some() {
            return Err(format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            ));
        }
        Ok(policy)
    }

    /// Docker's `HostConfig.RestartPolicy.Name`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure(_) => "on-failure",
        }
    }

    /// `HostConfig.RestartPolicy.MaximumRetryCount`.
    pub fn max_retries(&self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => *n,
            _ => 0,
        }
    }

    /// Whether a container that exited with `code` after `restarts` restarts
    /// is started again (a container stopped by the user never is).
    pub fn should_restart(&self, code: i32, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
            RestartPolicy::OnFailure(max) => code != 0 && (*max == 0 || restarts < *max),
        }
    }
}

/// One container process: what `run` needs, close to an OCI [`oci::Spec`]
/// (see [`to_oci_spec`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The root filesystem (a mounted snapshot), absolute.
    pub root: PathBuf,
    /// The command: `args[0]` is looked up in the container's `PATH` unless it has a `/`.
    pub args: Vec<String>,
    /// `KEY=VALUE`; `PATH` defaults to [`DEFAULT_PATH`], `HOME` to the user's home from
    /// the container's `/etc/passwd` (or `/`), `TERM=xterm` with a tty.
    pub env: Vec<String>,
    /// Working directory inside the container, absolute; created if missing.
    pub cwd: String,
    pub user: UserSpec,
    pub hostname: String,
    /// Whether the process gets `HOSTNAME=<hostname>` in its environment
    /// (as `docker run`); a build's RUN does not (as BuildKit).
    #[serde(default = "yes")]
    pub hostname_env: bool,
    pub network: Network,
    /// A network namespace to join (a bind-mounted nsfs file made by the
    /// network layer, e.g. `/run/netns/strata-<id>`); takes precedence over
    /// `network`.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Run by a detached container's monitor (or its restart keeper) once
    /// the container has ended for good: the network layer's cleanup.
    #[serde(skip)]
    pub on_exit: Option<ExitHook>,
    pub mounts: Vec<BindMount>,
    /// `--read-only`: the root mount is read-only (volumes, /dev, /proc keep theirs).
    pub readonly_root: bool,
    /// `-t`: the process gets a pty from the container's own devpts.
    pub tty: bool,
    /// `-i`: stdin is passed through; otherwise the process reads /dev/null.
    pub stdin: bool,
    /// Capability bits (effective, permitted and bounding set; none inheritable);
    /// [`DEFAULT_CAPABILITIES`] unless told otherwise.
    pub capabilities: u64,
    /// Files placed in the container through a private tmpfs (build secrets).
    #[serde(default)]
    pub secrets: Vec<SecretFile>,
    /// `--restart` (detached containers: [`crate::spawn_detached`]).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// How many times the container has been restarted before this run.
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub security: Security,
}

fn yes() -> bool {
    true
}

impl RunSpec {
    /// `args` in `root`, with Docker's defaults: root user, cwd `/`, host network.
    pub fn new(root: impl Into<PathBuf>, args: Vec<String>) -> RunSpec {
        RunSpec {
            root: root.into(),
            args,
            env: vec![format!("PATH={DEFAULT_PATH}")],
            cwd: "/".to_string(),
            user: UserSpec::default(),
            hostname: "strata".to_string(),
            hostname_env: true,
            network: Network::Host,
            netns: None,
            on_exit: None,
            mounts: Vec::new(),
            readonly_root: false,
            tty: false,
            stdin: false,
            capabilities: DEFAULT_CAPABILITIES,
            secrets: Vec::new(),
            restart: RestartPolicy::No,
            restart_count: 0,
            security: Security::default(),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.args.is_empty() {
            invalid!("no command specified");
        }
        if !self.root.is_absolute() {
            invalid!("the container root {} must be an absolute path", self.root.display());
        }
        if !self.root.is_dir() {
            invalid!("the container root {} is not a directory", self.root.display());
        }
        if !self.cwd.starts_with('/') {
            invalid!("the working directory {:?} must be an absolute path", self.cwd);
        }
        for m in &self.mounts {
            if !m.destination.starts_with('/') {
                invalid!("volume destination {:?} must be an absolute path", m.destination);
            }
            std::fs::symlink_metadata(&m.source).map_err(|source| Error::VolumeSource {
                path: m.source.clone(),
                source,
            })?;
        }
        for s in &self.secrets {
            if !s.destination.starts_with('/') {
                invalid!("secret destination {:?} must be an absolute path", s.destination);
            }
            check_id(s.uid, "uid")?;
            check_id(s.gid, "gid")?;
        }
        check_id(self.user.uid, "uid")?;
        check_id(self.user.gid, "gid")?;
        for g in &self.user.additional_gids {
            check_id(*g, "gid")?;
        }
        if self.hostname.len() > 64 {
            invalid!("hostname {:?} is longer than 64 bytes", self.hostname);
        }
        Ok(())
    }
}

pub(crate) fn check_id(id: u32, what: &'static str) -> Result<()> {
    if id > i32::MAX as u32 {
        return Err(Error::IdOutOfRange { what, id: id.into() });
    }
    Ok(())
}

fn cap_names(mask: u64) -> Vec<oci::Capability> {
    CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .filter_map(|(_, n)| n.trim_start_matches("CAP_").parse().ok())
        .collect()
}

/// The OCI runtime spec (`config.json`) equivalent to `spec`: what an
/// external runtime (crun, runc) needs to run the same container. cgroups
/// are not set (as strata's own runtime).
pub fn to_oci_spec(spec: &RunSpec) -> Result<oci::Spec> {
    let caps: oci::Capabilities = cap_names(spec.capabilities).into_iter().collect();
    let process = oci::ProcessBuilder::default()
        .terminal(spec.tty)
        .args(spec.args.clone())
        .env(spec.env.clone())
        .cwd(PathBuf::from(&spec.cwd))
        .user(
            oci::UserBuilder::default()
                .uid(spec.user.uid)
                .gid(spec.user.gid)
                .additional_gids(spec.user.additional_gids.clone())
                .build()?,
        )
        .capabilities(
            oci::LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .inheritable(std::collections::HashSet::new())
                .permitted(caps)
                .build()?,
        )
        .no_new_privileges(false)
        .build()?;
    let m = |dest: &str, typ: &str, src: &str, opts: &[&str]| -> Result<oci::Mount> {
        Ok(oci::MountBuilder::default()
            .destination(PathBuf::from(dest))
            .typ(typ.to_string())
            .source(PathBuf::from(src))
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()?)
    };
    let mut mounts = vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        )?,
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        m("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"])?,
        m("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])?,
    ];
    for b in &spec.mounts {
        let src = b.source.to_string_lossy();
        let mode = if b.readonly { "ro" } else { "rw" };
        mounts.push(m(&b.destination, "bind", &src, &["rbind", mode])?);
    }
    let mut namespaces = vec![
        oci::LinuxNamespaceType::Pid,
        oci::LinuxNamespaceType::Ipc,
        oci::LinuxNamespaceType::Uts,
        oci::LinuxNamespaceType::Mount,
    ];
    if spec.network == Network::None || spec.netns.is_some() {
        namespaces.push(oci::LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|t| {
            let b = oci::LinuxNamespaceBuilder::default().typ(t);
            match (t, &spec.netns) {
                (oci::LinuxNamespaceType::Network, Some(p)) => b.path(p.clone()).build(),
                _ => b.build(),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let linux = oci::LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            [
                "/proc/asound",
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        )
        .readonly_paths(
            ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;
    let root = oci::RootBuilder::default()
        .path(spec.root.clone())
        .readonly(spec.readonly_root)
        .build()?;
    Ok(oci::SpecBuilder::default()
        .version("1.0.2".to_string())
        .process(process)
        .root(root)
        .hostname(spec.hostname.clone())
        .mounts(mounts)
        .linux(linux)
        .build()?)
}

/// Writes `<dir>/config.json` for an external runtime (`crun run -b DIR ID`).
/// The root path stays absolute, so the bundle needs no `rootfs` beside it.
pub fn write_bundle(spec: &oci::Spec, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating bundle dir {}", dir.display()))?;
    let path = dir.join("config.json");
    let json = serde_json::to_vec_pretty(spec).map_err(Error::EncodeBundle)?;
    let tmp = dir.join(".config.json.tmp");
    std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
