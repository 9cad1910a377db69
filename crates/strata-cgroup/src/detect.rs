//! Which cgroup layout the host has: cgroup v1 with the devices controller,
//! the hybrid layout (v1 controllers plus an empty cgroup2 mount, usually at
//! `/sys/fs/cgroup/unified`), or the unified cgroup v2 hierarchy.
//!
//! Read from `/proc/self/mountinfo` (the last mount on a mount point is the
//! visible one) and checked with `statfs` on the chosen mount points.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::CgroupError;

/// `statfs` magic of a cgroup v1 mount.
pub const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
/// `statfs` magic of a cgroup2 mount.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The host's cgroup layout, with the mount points strata uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v1 only; `devices` is the devices controller's mount point.
    Legacy { devices: PathBuf },
    /// cgroup v1 controllers (devices among them) plus a cgroup2 mount
    /// (`unified`) that has no controllers but tracks processes and can run
    /// BPF device filters.
    Hybrid { devices: PathBuf, unified: PathBuf },
    /// Pure cgroup v2 (`root` is usually `/sys/fs/cgroup`).
    Unified { root: PathBuf },
}

impl Hierarchy {
    /// Detects the layout of the calling process's mount namespace.
    pub fn detect() -> Result<Hierarchy, CgroupError> {
        let path = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))?;
        let found = Self::from_mountinfo(&text)?;
        if let Some(devices) = found.devices_v1() {
            check_magic(devices, CGROUP_SUPER_MAGIC)?;
        }
        if let Some(unified) = found.unified() {
            check_magic(unified, CGROUP2_SUPER_MAGIC)?;
        }
        Ok(found)
    }

    /// The layout described by the text of a `/proc/<pid>/mountinfo`.
    ///
    /// A cgroup2 mount at `/sys/fs/cgroup` makes the host unified whatever
    /// else is mounted; otherwise a v1 devices mount makes it legacy, or
    /// hybrid when a cgroup2 mount exists too; otherwise any cgroup2 mount is
    /// a unified root.
    pub fn from_mountinfo(text: &str) -> Result<Hierarchy, CgroupError> {
        // Mount point -> (fstype, super options); later mounts shadow earlier ones.
        let mut mounts: BTreeMap<PathBuf, (String, String)> = BTreeMap::new();
        let mut order: Vec<PathBuf> = Vec::new();
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let point = PathBuf::from(unescape(pre[4]));
            if !order.contains(&point) {
                order.push(point.clone());
            }
            mounts.insert(point, (post[0].to_string(), post[2].to_string()));
        }
        let mut devices = None;
        let mut unified = None;
        for point in &order {
            let (fstype, opts) = &mounts[point];
            match fstype.as_str() {
                "cgroup2" if point == Path::new(crate::CGROUP_ROOT) || unified.is_none() => {
                    unified = Some(point.clone());
                }
                "cgroup" if devices.is_none() && opts.split(',').any(|o| o == "devices") => {
                    devices = Some(point.clone());
                }
                _ => {}
            }
        }
        match (devices, unified) {
            (_, Some(root)) if root == Path::new(crate::CGROUP_ROOT) => Ok(Hierarchy::Unified { root }),
            (Some(devices), Some(unified)) => Ok(Hierarchy::Hybrid { devices, unified }),
            (Some(devices), None) => Ok(Hierarchy::Legacy { devices }),
            (None, Some(root)) => Ok(Hierarchy::Unified { root }),
            (None, None) => Err(CgroupError::Unsupported(
                "neither a cgroup v1 devices controller nor a cgroup2 file system is mounted".into(),
            )),
        }
    }

    /// The v1 devices controller's mount point, if the host has one.
    pub fn devices_v1(&self) -> Option<&Path> {
        match self {
            Hierarchy::Legacy { devices } | Hierarchy::Hybrid { devices, .. } => Some(devices),
            Hierarchy::Unified { .. } => None,
        }
    }

    /// The cgroup2 mount point, if the host has one.
    pub fn unified(&self) -> Option<&Path> {
        match self {
            Hierarchy::Hybrid { unified, .. } => Some(unified),
            Hierarchy::Unified { root } => Some(root),
            Hierarchy::Legacy { .. } => None,
        }
    }
}

fn check_magic(path: &Path, magic: i64) -> Result<(), CgroupError> {
    let st = rustix::fs::statfs(path).map_err(|e| CgroupError::io("statfs", path, e))?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let found = st.f_type as i64;
    if found != magic {
        return Err(CgroupError::Unsupported(format!(
            "{} is not a {} mount (statfs magic {found:#x})",
            path.display(),
            if magic == CGROUP2_SUPER_MAGIC {
                "cgroup2"
            } else {
                "cgroup"
            }
        )));
    }
    Ok(())
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
pub(crate) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid() {
        assert_eq!(
            Hierarchy::from_mountinfo(HYBRID).unwrap(),
            Hierarchy::Hybrid {
                devices: "/sys/fs/cgroup/devices".into(),
                unified: "/sys/fs/cgroup/unified".into()
            }
        );
    }

    #[test]
    fn unified() {
        let text = "27 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            Hierarchy::from_mountinfo(text).unwrap(),
            Hierarchy::Unified {
                root: "/sys/fs/cgroup".into()
            }
        );
    }

    #[test]
    fn legacy_comounted() {
        let text = "\
25 22 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/dev\\040ices rw shared:10 - cgroup cgroup rw,devices,freezer
";
        assert_eq!(
            Hierarchy::from_mountinfo(text).unwrap(),
            Hierarchy::Legacy {
                devices: "/sys/fs/cgroup/dev ices".into()
            }
        );
    }

    #[test]
    fn shadowed_mount_and_nothing() {
        // cgroup2 at /sys/fs/cgroup hidden by a later tmpfs: not unified there.
        let text = "\
27 22 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
28 27 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw
";
        assert!(matches!(
            Hierarchy::from_mountinfo(text),
            Err(CgroupError::Unsupported(_))
        ));
    }
}
