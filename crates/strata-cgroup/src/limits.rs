//! Resource limits (memory, memory+swap, CFS quota, CPU shares, pids) on a
//! container's cgroup: in the v1 `memory`, `cpu` and `pids` hierarchies
//! where the host mounts them (legacy and hybrid hosts), else in the cgroup2
//! tree when its root offers the controller (unified hosts). Values are the
//! kernel's (bytes, microseconds, shares); Docker's flags are turned into
//! them by the caller. Also the OOM-kill counter of the memory controller.

use std::io;
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// What to limit; `None` leaves the kernel's default (unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory, bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory: Option<u64>,
    /// Memory plus swap, bytes (v1 `memory.memsw.limit_in_bytes`, v2
    /// `memory.swap.max` = this minus `memory`). Ignored without `memory`,
    /// and on a host without swap accounting.
    pub memory_swap: Option<u64>,
    /// CFS quota and period, microseconds (v1 `cpu.cfs_quota_us` and
    /// `cpu.cfs_period_us`, v2 `cpu.max`).
    pub cpu_quota: Option<(u64, u64)>,
    /// v1 `cpu.shares` (2 to 262144); v2 `cpu.weight` converted as runc does.
    pub cpu_shares: Option<u64>,
    /// Most tasks (v1 and v2 `pids.max`).
    pub pids: Option<u64>,
    /// Also put the cgroup in the accounting controllers the host has
    /// (v1 cpuacct, pids, blkio; on cgroup v2 memory, cpu, pids, io) without
    /// a limit, for [`crate::Cgroup::usage`]; one the host lacks, or that
    /// cannot be made, is skipped. A v1 memory or cpu cgroup is only made
    /// for a limit.
    pub accounting: bool,
}

/// A controller a limit or the usage statistics need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
    /// v1 CPU time accounting (cgroup v2 has `cpu.stat` in every cgroup).
    Cpuacct,
    /// v1 block I/O (`io` on cgroup v2).
    Blkio,
}

impl Controller {
    pub const ALL: [Controller; 5] = [
        Controller::Memory,
        Controller::Cpu,
        Controller::Pids,
        Controller::Cpuacct,
        Controller::Blkio,
    ];

    /// The kernel's name of the controller (cgroup v1).
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
            Controller::Cpuacct => "cpuacct",
            Controller::Blkio => "blkio",
        }
    }

    /// Its name on cgroup v2, if it is a controller there.
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Memory | Controller::Cpu | Controller::Pids => Some(self.name()),
            Controller::Cpuacct => None,
            Controller::Blkio => Some("io"),
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn is_empty(&self) -> bool {
        self.controllers().is_empty()
    }

    /// The controllers these limits need (not those only accounting wants).
    pub fn controllers(&self) -> Vec<Controller> {
        let mut out = Vec::new();
        if self.memory.is_some() {
            out.push(Controller::Memory);
        }
        if self.cpu_quota.is_some() || self.cpu_shares.is_some() {
            out.push(Controller::Cpu);
        }
        if self.pids.is_some() {
            out.push(Controller::Pids);
        }
        out
    }

    /// Writes the limits of `controller` into the v1 cgroup `dir` of that controller.
    pub(crate) fn apply_v1(&self, controller: Controller, dir: &Path) -> Result<(), CgroupError> {
        match controller {
            Controller::Memory => {
                if let Some(m) = self.memory {
                    write(dir, "memory.limit_in_bytes", &m.to_string())?;
                    if let Some(s) = self.memory_swap
                        && dir.join("memory.memsw.limit_in_bytes").exists()
                    {
                        write(dir, "memory.memsw.limit_in_bytes", &s.max(m).to_string())?;
                    }
                }
            }
            Controller::Cpu => {
                if let Some((quota, period)) = self.cpu_quota {
                    write(dir, "cpu.cfs_period_us", &period.to_string())?;
                    write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
                if let Some(shares) = self.cpu_shares {
                    write(dir, "cpu.shares", &shares.to_string())?;
                }
            }
            Controller::Pids => {
                if let Some(n) = self.pids {
                    write(dir, "pids.max", &n.to_string())?;
                }
            }
            Controller::Cpuacct | Controller::Blkio => {}
        }
        Ok(())
    }

    /// Writes the limits of `controller` into the cgroup2 leaf `dir`.
    pub(crate) fn apply_v2(&self, controller: Controller, dir: &Path) -> Result<(), CgroupError> {
        match controller {
            Controller::Memory => {
                if let Some(m) = self.memory {
                    write(dir, "memory.max", &m.to_string())?;
                    if let Some(s) = self.memory_swap
                        && dir.join("memory.swap.max").exists()
                    {
                        write(dir, "memory.swap.max", &s.saturating_sub(m).to_string())?;
                    }
                }
            }
            Controller::Cpu => {
                if let Some((quota, period)) = self.cpu_quota {
                    write(dir, "cpu.max", &format!("{quota} {period}"))?;
                }
                if let Some(shares) = self.cpu_shares {
                    write(dir, "cpu.weight", &shares_to_weight(shares).to_string())?;
                }
            }
            Controller::Pids => {
                if let Some(n) = self.pids {
                    write(dir, "pids.max", &n.to_string())?;
                }
            }
            Controller::Cpuacct | Controller::Blkio => {}
        }
        Ok(())
    }
}

/// runc's conversion of v1 CPU shares (2..262144) to a v2 weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value)
        .map_err(|e| CgroupError::io("write", &path, io::Error::new(e.kind(), format!("{value:?}: {e}"))))
}

/// The v1 mount points of the controllers limits use, from the text of a
/// `/proc/<pid>/mountinfo` (the last mount on a mount point wins; the first
/// mount point of a controller is taken).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct V1Mounts {
    pub memory: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub blkio: Option<PathBuf>,
}

impl V1Mounts {
    pub fn from_mountinfo(text: &str) -> V1Mounts {
        let mut mounts: Vec<(PathBuf, String, String)> = Vec::new();
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let point = PathBuf::from(crate::detect::unescape(pre[4]));
            mounts.retain(|(p, _, _)| *p != point);
            mounts.push((point, post[0].to_string(), post[2].to_string()));
        }
        let find = |name: &str| {
            mounts
                .iter()
                .find(|(_, fstype, opts)| fstype == "cgroup" && opts.split(',').any(|o| o == name))
                .map(|(p, _, _)| p.clone())
        };
        V1Mounts {
            memory: find("memory"),
            cpu: find("cpu"),
            pids: find("pids"),
            cpuacct: find("cpuacct"),
            blkio: find("blkio"),
        }
    }

    /// The mount point of `controller`, if the host has it on v1.
    pub fn get(&self, controller: Controller) -> Option<&Path> {
        match controller {
            Controller::Memory => self.memory.as_deref(),
            Controller::Cpu => self.cpu.as_deref(),
            Controller::Pids => self.pids.as_deref(),
            Controller::Cpuacct => self.cpuacct.as_deref(),
            Controller::Blkio => self.blkio.as_deref(),
        }
    }
}

/// Whether the cgroup2 tree at `root` offers `controller` (its `cgroup.controllers`).
pub(crate) fn v2_has(root: &Path, controller: Controller) -> bool {
    let Some(name) = controller.v2_name() else {
        return false;
    };
    std::fs::read_to_string(root.join("cgroup.controllers")).is_ok_and(|t| t.split_whitespace().any(|c| c == name))
}

/// Enables `controllers` for the children of `<root>/strata` (and of the
/// root, when it does not already give them to its children).
pub(crate) fn enable_v2(root: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
    for dir in [root.to_path_buf(), root.join(crate::PARENT)] {
        let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for name in controllers.iter().filter_map(|c| c.v2_name()) {
            if !enabled.split_whitespace().any(|e| e == name) {
                write(&dir, "cgroup.subtree_control", &format!("+{name}"))?;
            }
        }
    }
    Ok(())
}

/// The `oom_kill` count of a memory cgroup: v1 `memory.oom_control`, v2
/// `memory.events`. `None` when the file is not there.
pub(crate) fn oom_kills(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.oom_control"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.events")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// What a container's cgroup has used (see [`crate::Cgroup::usage`]);
/// `None` where the cgroup is not in the controller that counts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time, nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`).
    pub cpu_ns: Option<u64>,
    /// Memory in use minus inactive file pages, as Docker's `stats` counts it.
    pub memory: Option<u64>,
    /// The memory limit; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Tasks (`pids.current`).
    pub pids: Option<u64>,
    /// Bytes read from and written to block devices.
    pub io_read: Option<u64>,
    pub io_write: Option<u64>,
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `cpu.stat`).
fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join(file)).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Memory in use minus `inactive` (Docker's `stats`), or the plain usage.
fn memory_used(usage: u64, inactive: Option<u64>) -> u64 {
    match inactive {
        Some(i) if i < usage => usage - i,
        _ => usage,
    }
}

/// A v1 memory limit at or above this is "unlimited" (the kernel reports
/// `PAGE_COUNTER_MAX` pages as bytes).
const V1_UNLIMITED: u64 = 1 << 62;

impl Usage {
    /// Adds what the v1 leaf `dir` of `controller` counts.
    pub(crate) fn read_v1(&mut self, controller: Controller, dir: &Path) {
        match controller {
            Controller::Memory => {
                if let Some(u) = read_u64(dir, "memory.usage_in_bytes") {
                    self.memory = Some(memory_used(u, read_key(dir, "memory.stat", "total_inactive_file")));
                }
                self.memory_limit = read_u64(dir, "memory.limit_in_bytes").filter(|&l| l < V1_UNLIMITED);
            }
            Controller::Cpuacct => self.cpu_ns = read_u64(dir, "cpuacct.usage").or(self.cpu_ns),
            Controller::Pids => self.pids = read_u64(dir, "pids.current").or(self.pids),
            Controller::Blkio => {
                let text = std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes_recursive"))
                    .or_else(|_| std::fs::read_to_string(dir.join("blkio.io_service_bytes_recursive")))
                    .unwrap_or_default();
                let (mut r, mut w) = (0u64, 0u64);
                for line in text.lines() {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    if let [_, op, n] = f[..] {
                        let n: u64 = n.parse().unwrap_or(0);
                        match op {
                            "Read" => r += n,
                            "Write" => w += n,
                            _ => {}
                        }
                    }
                }
                self.io_read = Some(r);
                self.io_write = Some(w);
            }
            Controller::Cpu => {}
        }
    }

    /// Fills what is still unknown from the cgroup2 leaf `dir`.
    pub(crate) fn read_v2(&mut self, dir: &Path) {
        if self.cpu_ns.is_none() {
            self.cpu_ns = read_key(dir, "cpu.stat", "usage_usec").map(|u| u * 1000);
        }
        if self.memory.is_none()
            && let Some(u) = read_u64(dir, "memory.current")
        {
            self.memory = Some(memory_used(u, read_key(dir, "memory.stat", "inactive_file")));
            self.memory_limit = read_u64(dir, "memory.max");
        }
        if self.pids.is_none() {
            self.pids = read_u64(dir, "pids.current");
        }
        if self.io_read.is_none()
            && let Ok(text) = std::fs::read_to_string(dir.join("io.stat"))
        {
            let (mut r, mut w) = (0u64, 0u64);
            for field in text.split_whitespace() {
                if let Some(n) = field.strip_prefix("rbytes=") {
                    r += n.parse().unwrap_or(0);
                } else if let Some(n) = field.strip_prefix("wbytes=") {
                    w += n.parse().unwrap_or(0);
                }
            }
            self.io_read = Some(r);
            self.io_write = Some(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10000);
    }

    #[test]
    fn mounts() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
34 31 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let m = V1Mounts::from_mountinfo(text);
        assert_eq!(m.cpu.as_deref(), Some(Path::new("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(m.memory.as_deref(), Some(Path::new("/sys/fs/cgroup/memory")));
        assert_eq!(m.pids, None);
    }

    #[test]
    fn controllers() {
        assert!(Limits::default().is_empty());
        let l = Limits {
            cpu_shares: Some(512),
            pids: Some(10),
            ..Limits::default()
        };
        assert_eq!(l.controllers(), vec![Controller::Cpu, Controller::Pids]);
    }
}
