//! Docker's confinement of a container's processes beyond namespaces and
//! capabilities: the device cgroup (only the harmless nodes, `--device`
//! additions, everything with `--privileged`) and the seccomp filter.
//! Prepared by the supervisor before it forks (allocation and file system
//! work happen there); the forked child only joins and installs.

use strata_cgroup::{Cgroup, DeviceRule};
use strata_seccomp::{Filter, Profile};

use crate::RunError;
use crate::spec::{SeccompPolicy, Security};

/// The compiled seccomp filter of a process (`None`: unconfined).
pub(crate) fn seccomp_filter(policy: &SeccompPolicy, capabilities: u64) -> Result<Option<Filter>, RunError> {
    let mut profile = match policy {
        SeccompPolicy::Unconfined => return Ok(None),
        SeccompPolicy::Default => Profile::docker_default(),
        SeccompPolicy::Profile(doc) => match Profile::from_json(doc.as_bytes()) {
            Ok(p) => p,
            // `{}`: Docker runs such a container without a filter.
            Err(strata_seccomp::SeccompError::Empty) => return Ok(None),
            Err(e) => return Err(RunError::runtime(format!("loading the seccomp profile: {e}"))),
        },
    };
    if strata_rootless::single_id() {
        // Only one id exists in the namespace: a chown to another fails
        // with EINVAL. As `ignore_chown_errors` promises, it is ignored:
        // the first argument-free rule for a syscall decides, so this one
        // makes the chown family return 0 without running.
        let names = [
            "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32", "lchown32",
        ];
        profile.syscalls.insert(
            0,
            strata_seccomp::Rule {
                names: names.iter().map(|n| n.to_string()).collect(),
                action: strata_seccomp::Action::Errno(0),
                args: Vec::new(),
                includes: Default::default(),
                excludes: Default::default(),
            },
        );
    }
    let filter = strata_seccomp::compile(&profile, &strata_seccomp::Context::new(capabilities))
        .map_err(|e| RunError::runtime(format!("compiling the seccomp profile: {e}")))?;
    Ok(Some(filter))
}

/// Checks a seccomp profile in Docker's JSON format (for `--security-opt seccomp=FILE` at create).
pub fn check_seccomp_profile(doc: &[u8]) -> Result<(), strata_seccomp::SeccompError> {
    let profile = match Profile::from_json(doc) {
        Err(strata_seccomp::SeccompError::Empty) => return Ok(()),
        other => other?,
    };
    strata_seccomp::compile(&profile, &strata_seccomp::Context::new(crate::DEFAULT_CAPABILITIES))?;
    Ok(())
}

/// The device allow-list of a container.
fn device_rules(security: &Security) -> Result<Vec<DeviceRule>, RunError> {
    if security.privileged {
        return Ok(vec![DeviceRule::allow_all()]);
    }
    let mut rules = strata_cgroup::default_device_rules();
    for d in &security.devices {
        rules.push(
            DeviceRule::for_node(&d.host, &d.permissions)
                .map_err(|e| RunError::runtime(format!("--device {}: {e}", d.host.display())))?,
        );
    }
    Ok(rules)
}

/// A container's own cgroup, `strata/<supervisor pid>-<its start time>`,
/// made by the supervisor (which stays outside) and joined by the
/// container's first process before it does anything else. Leftovers of
/// killed supervisors are removed when the next container starts.
/// Rootless, the host's cgroups are not the user's: no cgroup (the device
/// rules are moot without mknod), and limits are refused.
pub(crate) fn create_cgroup(security: &Security) -> Result<Option<Cgroup>, RunError> {
    if strata_rootless::is_rootless() {
        let limits = security.resources.limits();
        let asked = limits.memory.is_some()
            || limits.memory_swap.is_some()
            || limits.cpu_quota.is_some()
            || limits.cpu_shares.is_some()
            || limits.pids.is_some();
        if asked {
            return Err(RunError::runtime(
                "resource limits (--memory, --cpus, --cpu-shares, --pids-limit) need cgroups, and rootless strata \
                 has none delegated to it on this host: run without them, or as root"
                    .to_string(),
            ));
        }
        return Ok(None);
    }
    let _ = Cgroup::remove_stale(supervisor_is_alive);
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let name = format!("{me}-{}", crate::sys::process_start_time(me).unwrap_or(0));
    let rules = device_rules(security)?;
    let opts = strata_cgroup::Options::detect()
        .map_err(|e| RunError::runtime(format!("creating the container's cgroup: {e}")))?;
    let limits = strata_cgroup::Limits {
        accounting: true,
        ..security.resources.limits()
    };
    Cgroup::create_with_limits(&opts, &name, &rules, &limits)
        .map(Some)
        .map_err(|e| RunError::runtime(format!("creating the container's cgroup: {e}")))
}

fn supervisor_is_alive(name: &str) -> bool {
    let Some((pid, start)) = name.split_once('-') else {
        return true;
    };
    match (pid.parse::<i32>(), start.parse::<u64>()) {
        (Ok(pid), Ok(start)) => crate::sys::process_start_time(pid) == Some(start),
        _ => true, // not one of ours: leave it
    }
}

/// What the running container whose PID 1 is `pid` has used (`stats`);
/// `None` when it has no cgroup of strata's.
pub fn usage_of(pid: i32) -> Result<Option<strata_cgroup::Usage>, RunError> {
    Ok(cgroup_of(pid)?.map(|c| c.usage()))
}

/// Whether the kernel's OOM killer killed a process of the container.
pub(crate) fn oom_killed(cgroup: &Option<Cgroup>) -> bool {
    cgroup.as_ref().and_then(|c| c.oom_kills()).is_some_and(|n| n > 0)
}

/// Removes a container's cgroup once its processes are gone (they may take
/// a moment to leave after PID 1 is reaped); what cannot be removed now is
/// a leftover for [`create_cgroup`]'s sweep.
pub(crate) fn remove_cgroup(cgroup: Option<Cgroup>) {
    let Some(cgroup) = cgroup else { return };
    let name = cgroup.name().to_string();
    if cgroup.remove().is_ok() {
        return;
    }
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        match Cgroup::open(&name) {
            Ok(c) => {
                if c.remove().is_ok() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// The cgroup of a running container, found from its PID 1 (`exec` joins it).
pub(crate) fn cgroup_of(pid: i32) -> Result<Option<Cgroup>, RunError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| RunError::runtime(format!("reading /proc/{pid}/cgroup: {e}")))?;
    let prefix = format!("/{}/", strata_cgroup::PARENT);
    let name = text
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find_map(|path| path.strip_prefix(&prefix).filter(|n| !n.contains('/')));
    match name {
        Some(n) => Cgroup::open(n)
            .map(Some)
            .map_err(|e| RunError::runtime(format!("opening the container's cgroup: {e}"))),
        None => Ok(None),
    }
}
