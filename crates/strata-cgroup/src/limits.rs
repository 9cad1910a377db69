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
}

/// A controller a limit needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    /// The kernel's name of the controller.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn is_empty(&self) -> bool {
        self.controllers().is_empty()
    }

    /// The controllers these limits need.
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
        }
    }

    /// The mount point of `controller`, if the host has it on v1.
    pub fn get(&self, controller: Controller) -> Option<&Path> {
        match controller {
            Controller::Memory => self.memory.as_deref(),
            Controller::Cpu => self.cpu.as_deref(),
            Controller::Pids => self.pids.as_deref(),
        }
    }
}

/// Whether the cgroup2 tree at `root` offers `controller` (its `cgroup.controllers`).
pub(crate) fn v2_has(root: &Path, controller: Controller) -> bool {
    std::fs::read_to_string(root.join("cgroup.controllers"))
        .is_ok_and(|t| t.split_whitespace().any(|c| c == controller.name()))
}

/// Enables `controllers` for the children of `<root>/strata` (and of the
/// root, when it does not already give them to its children).
pub(crate) fn enable_v2(root: &Path, controllers: &[Controller]) -> Result<(), CgroupError> {
    for dir in [root.to_path_buf(), root.join(crate::PARENT)] {
        let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for c in controllers {
            if !enabled.split_whitespace().any(|e| e == c.name()) {
                write(&dir, "cgroup.subtree_control", &format!("+{}", c.name()))?;
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
