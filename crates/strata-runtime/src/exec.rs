//! `exec`: another process in a running container's namespaces and root.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::child::{self, ChildFds, Proc};
use crate::detached::{State, read_state_record, state};
use crate::launch::{Stdio, launch, winsize_of};
use crate::spec::{DEFAULT_CAPABILITIES, SeccompPolicy, UserSpec};
use crate::sys;
use crate::{EXIT_RUNTIME_ERROR, RunError};

/// The process to start in a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    pub args: Vec<String>,
    /// The full environment (Docker: the container's env plus `exec -e`).
    pub env: Vec<String>,
    pub cwd: String,
    pub user: UserSpec,
    pub tty: bool,
    pub stdin: bool,
    pub capabilities: u64,
    /// The container's `no-new-privileges` (Docker applies it to exec too).
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The container's seccomp policy (Docker applies it to exec too).
    #[serde(default)]
    pub seccomp: SeccompPolicy,
}

impl ExecSpec {
    pub fn new(args: Vec<String>) -> ExecSpec {
        ExecSpec {
            args,
            env: vec![format!("PATH={}", crate::DEFAULT_PATH)],
            cwd: "/".into(),
            user: UserSpec::default(),
            tty: false,
            stdin: false,
            capabilities: DEFAULT_CAPABILITIES,
            no_new_privileges: false,
            seccomp: SeccompPolicy::Default,
        }
    }
}

/// Runs `spec` in the running container of `state_dir` with the caller's stdio.
pub fn exec(state_dir: &Path, spec: &ExecSpec) -> Result<i32, RunError> {
    exec_with_stdio(state_dir, spec, Stdio::inherit())
}

const NAMESPACES: [&str; 5] = ["ipc", "uts", "net", "pid", "mnt"];

/// [`exec`] with redirected stdio. The new process joins the container's
/// IPC, UTS, network, PID and mount namespaces (`setns` on
/// `/proc/PID/ns/*`, opened and then checked to belong to the container's
/// PID 1 by its start time), and its root; it is not a child of PID 1 (its
/// parent is a supervisor outside, as with `docker exec`).
pub fn exec_with_stdio(state_dir: &Path, spec: &ExecSpec, io: Stdio) -> Result<i32, RunError> {
    if spec.args.is_empty() {
        return Err(RunError::runtime("no command specified"));
    }
    let rec = read_state_record(state_dir)?;
    let State::Running { pid } = state(state_dir)? else {
        return Err(RunError::runtime("container is not running"));
    };
    let mut ns = Vec::new();
    for name in NAMESPACES {
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = rustix::fs::open(path.as_str(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RunError::runtime(format!("opening {path}: {e}")))?;
        ns.push((name, fd));
    }
    let root = rustix::fs::open(
        format!("/proc/{pid}/root").as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RunError::runtime(format!("opening the root of {pid}: {e}")))?;
    let cgroup = crate::confine::cgroup_of(pid)?;
    if sys::process_start_time(pid) != Some(rec.start_time) {
        return Err(RunError::runtime("container is not running"));
    }
    let filter = crate::confine::seccomp_filter(&spec.seccomp, spec.capabilities)?;
    let joined = Joined {
        ns: &ns,
        root: &root,
        cgroup: cgroup.as_ref(),
        seccomp: filter.as_ref(),
    };
    launch(spec.tty, io, spec.stdin, |fds, caller| {
        middle_join(spec, &joined, fds, caller)
    })
    .map(|o| o.code)
}

/// What the joining process enters: the container's namespaces, root and
/// cgroup, and the filter it gets.
struct Joined<'a> {
    ns: &'a [(&'a str, OwnedFd)],
    root: &'a OwnedFd,
    cgroup: Option<&'a strata_cgroup::Cgroup>,
    seccomp: Option<&'a strata_seccomp::Filter>,
}

fn middle_join(spec: &ExecSpec, joined: &Joined<'_>, fds: ChildFds, caller: i32) -> ! {
    let Joined { ns, root, .. } = joined;
    let report = fds.report.as_fd();
    if let Err(e) = child::die_with_parent(caller) {
        child::fail(report, EXIT_RUNTIME_ERROR, &format!("prctl: {e}"));
    }
    // Before anything of the container can see this process (CVE-2019-5736);
    // inherited by the fork below, undone by its final execve.
    if let Err(e) = crate::sealed::set_non_dumpable() {
        child::fail(report, EXIT_RUNTIME_ERROR, &format!("prctl(PR_SET_DUMPABLE): {e}"));
    }
    for (name, fd) in ns.iter() {
        if unsafe { libc::setns(fd.as_raw_fd(), 0) } != 0 {
            let e = std::io::Error::last_os_error();
            child::fail(
                report,
                EXIT_RUNTIME_ERROR,
                &format!("joining the container's {name} namespace: {e}"),
            );
        }
    }
    if let Err(e) = rustix::process::fchdir(root).and_then(|_| rustix::process::chroot(".")) {
        child::fail(
            report,
            EXIT_RUNTIME_ERROR,
            &format!("entering the container's root: {e}"),
        );
    }
    let proc_ = Proc {
        args: &spec.args,
        env: &spec.env,
        cwd: &spec.cwd,
        user: &spec.user,
        tty: spec.tty,
        capabilities: spec.capabilities,
        hostname: None,
        winsize: winsize_of(fds.stdio[1].as_ref().map(|f| f.as_fd())),
        no_new_privileges: spec.no_new_privileges,
        seccomp: joined.seccomp,
        cgroup: joined.cgroup.map(|c| c.join_handle()),
    };
    match sys::fork() {
        Ok(0) => {
            sys::reset_signals();
            if let Err(e) = child::die_with_parent(0) {
                child::fail(report, EXIT_RUNTIME_ERROR, &format!("prctl: {e}"));
            }
            proc_.join_cgroup(report);
            for (i, fd) in fds.stdio.iter().enumerate() {
                if let Some(fd) = fd
                    && let Err(e) = sys::dup2(fd.as_fd(), i as i32)
                {
                    child::fail(report, EXIT_RUNTIME_ERROR, &format!("setting up stdio: {e}"));
                }
            }
            child::finish_and_exec(&proc_, &fds, 0)
        }
        Ok(pid) => {
            drop(fds);
            sys::forward_signals_and_exit(pid)
        }
        Err(e) => child::fail(report, EXIT_RUNTIME_ERROR, &format!("fork: {e}")),
    }
}
