//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong creating, joining or removing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// A cgroup name that is not one path component of safe characters.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// Device permissions that are not a non-empty subset of `rwm`.
    #[error("invalid device permissions {0:?}: expected a non-empty subset of \"rwm\"")]
    InvalidPermissions(String),
    /// `--device` named something that is not a character or block device.
    #[error("{0} is not a character or block device")]
    NotADevice(PathBuf),
    /// The host's cgroup layout cannot do what was asked.
    #[error("cgroups: {0}")]
    Unsupported(String),
    /// `create` found the cgroup already there (a leftover: see `remove_stale`).
    #[error("cgroup {0} already exists")]
    Exists(PathBuf),
    /// `open` found the cgroup in no hierarchy.
    #[error("cgroup {0:?} does not exist")]
    NotFound(String),
    /// rmdir refused: processes (or child cgroups) are still inside.
    #[error("cgroup {0} still has processes in it")]
    Busy(PathBuf),
    /// A file system operation on the cgroup tree failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing a pid to `cgroup.procs` failed.
    #[error("moving pid {pid} into {path}: {source}")]
    Join {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused the device filter program (the verifier's log, if any, follows).
    #[error("loading the cgroup device filter (BPF_PROG_LOAD): {source}{log}")]
    BpfLoad {
        #[source]
        source: io::Error,
        log: String,
    },
    /// The kernel refused to attach the device filter to the cgroup.
    #[error("attaching the device filter to {path} (BPF_PROG_ATTACH): {source}")]
    BpfAttach {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CgroupError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Self {
        CgroupError::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }
}
