//! strata-cgroup: the cgroups of strata's containers. A container gets a
//! cgroup of its own, `strata/<name>`, in each hierarchy the host has for it
//! (the v1 devices controller and/or the cgroup2 tree); its processes are
//! moved in there, and Docker's device allow-list is enforced there: through
//! v1 `devices.allow`/`devices.deny`, or on cgroup v2 through a
//! BPF_PROG_TYPE_CGROUP_DEVICE program generated from the rules. Resource
//! [`Limits`] (memory, swap, CFS quota, shares, pids) go into more leaves of
//! the same name in the v1 memory/cpu/pids hierarchies, or into the cgroup2
//! leaf when the host's cgroup2 root has those controllers.
//!
//! Owns `<hierarchy>/strata/` and nothing else. Must never: write to a
//! cgroup outside `strata/` (other than moving the caller itself out to the
//! hierarchy root when the `strata` parent cannot hold it), rmdir anything
//! but a `strata/<name>` leaf, accept a name that is not one plain path
//! component, or allocate or lock between `fork` and `exec` (joining from a
//! forked child is a `write` of a pre-formatted pid to a pre-opened fd:
//! [`JoinHandle`]).
//!
//! Layouts (see [`Hierarchy`]): on a hybrid host the v1 devices cgroup
//! enforces the rules and a leaf in the cgroup2 tree tracks the processes;
//! [`DeviceBackend::Bpf`] instead enforces with a BPF filter in the cgroup2
//! tree (the only way on a pure v2 host). A cgroup stays until
//! [`Cgroup::remove`] (dropping the handle only closes its fds);
//! [`Cgroup::remove_stale`] cleans up after a crash.

pub mod bpf;
mod cgroup;
mod detect;
mod device;
mod error;
mod limits;
pub mod v1;

pub use cgroup::{Cgroup, JoinHandle, LeafKind, validate_name};
pub use detect::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, Hierarchy};
pub use device::{DeviceKind, DeviceRule, default_device_rules, parse_permissions};
pub use error::CgroupError;
pub use limits::{Controller, Limits, Usage, V1Mounts, shares_to_weight};

/// Where the cgroup file systems are mounted on a usual host.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The directory under each hierarchy's root that holds strata's cgroups.
pub const PARENT: &str = "strata";

/// How device rules are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceBackend {
    /// The v1 devices controller when the host has one, else a BPF filter.
    #[default]
    Auto,
    /// The v1 devices controller (legacy and hybrid hosts).
    V1,
    /// A BPF filter on the cgroup2 leaf (unified hosts; hybrid hosts too,
    /// where no v1 devices cgroup is made then).
    Bpf,
}

/// The host layout and how to use it; [`Options::detect`] for the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub hierarchy: Hierarchy,
    pub devices: DeviceBackend,
    /// The v1 memory, cpu and pids mounts (resource limits go there when
    /// present, else into the cgroup2 tree).
    pub v1: V1Mounts,
}

impl Options {
    /// The host's layout, [`DeviceBackend::Auto`].
    pub fn detect() -> Result<Options, CgroupError> {
        let path = "/proc/self/mountinfo";
        let text = std::fs::read_to_string(path).map_err(|e| CgroupError::io("read", path, e))?;
        Ok(Options {
            hierarchy: Hierarchy::detect()?,
            devices: DeviceBackend::Auto,
            v1: V1Mounts::from_mountinfo(&text),
        })
    }

    /// The same layout with another device backend.
    pub fn with_devices(self, devices: DeviceBackend) -> Options {
        Options { devices, ..self }
    }
}
