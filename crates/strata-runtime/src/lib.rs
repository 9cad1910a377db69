//! strata-runtime: runs one process in a prepared root filesystem, like
//! `runc run` does for Docker: new mount, PID, UTS and IPC namespaces (and a
//! network namespace with only `lo` for `--network none`), `pivot_root`,
//! `/proc`, a minimal `/dev`, read-only `/sys`, bind volumes resolved inside
//! the root, user/groups, env, workdir, Docker's default capability set, exit
//! status passed through (125/126/127 as Docker), signals forwarded, no host
//! file descriptor leaked, a pty for `-t`. Also detached containers (a
//! monitor process that outlives the caller, json-file logs, verified state),
//! `exec` into a running container, and the OCI runtime spec of a run, so an
//! external runtime (crun, runc) can be used instead.
//!
//! Owns namespaces, mounts inside the container's mount namespace, and the
//! processes it starts. Must never: touch a host mount (everything is made
//! private in the new mount namespace first), resolve a container path
//! outside the root (always `openat2(RESOLVE_IN_ROOT)`), raise rlimits (the
//! host root lacks CAP_SYS_RESOURCE), or leave a container shown as running
//! when it is not (pid and start time are checked). cgroups are not handled
//! yet (the host is hybrid v1/v2): no resource limits.
//!
//! PID 1 in the container's PID namespace is the user's process itself, as
//! with Docker without `--init`: it reaps what it starts, and signals it has
//! no handler for are ignored by the kernel (so `stop` needs SIGKILL after a
//! grace period for a shell that ignores SIGTERM, as with Docker). Outside
//! the namespace a small supervisor process (the parent of PID 1) forwards
//! signals and relays the exit status; in detached mode that supervisor is the
//! monitor.
//!
//! Process model: the caller forks (glibc `fork`, so malloc stays usable in
//! the child of a multi-threaded caller); the child unshares the PID
//! namespace and forks the container's PID 1, which unshares the other
//! namespaces and sets the root up. Errors before `execve` travel back on a
//! close-on-exec pipe.

mod child;
mod confine;
mod detached;
mod error;
mod exec;
mod launch;
mod sealed;
mod spec;
mod sys;
mod user;

pub use confine::{check_seccomp_profile, usage_of};
pub use detached::{
    EXIT_UNKNOWN, LogEntry, State, StateRecord, clear_stopped, kill, log_path, mark_stopped, read_log, read_log_from,
    read_state_record, spawn_detached, state, stopped_by_user, wait,
};
pub use error::{Error, Result};
pub use exec::{ExecSpec, exec, exec_with_stdio};
pub use launch::{Outcome, Stdio, run, run_outcome, run_with_stdio};
pub use sealed::{reexec_sealed, running_sealed};
pub use spec::{
    BindMount, CPU_PERIOD_US, DEFAULT_CAPABILITIES, DEFAULT_PATH, DeviceMapping, ExitHook, Network, Resources,
    RestartPolicy, RunSpec, SeccompPolicy, SecretFile, Security, UserSpec, all_capabilities, apply_capability_changes,
    to_oci_spec, write_bundle,
};
pub use strata_cgroup::Usage;
pub use sys::process_start_time;
pub use user::{ResolvedUser, resolve_user};

/// Docker's exit code for an error of the engine itself.
pub const EXIT_RUNTIME_ERROR: i32 = 125;
/// Docker's exit code when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// Docker's exit code when the command is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// A container could not be started (or signalled, or waited for). `code`
/// is the exit status Docker would give: 125 for an engine error, 126 when
/// the command is not executable, 127 when it is not found. The message
/// follows Docker's wording, e.g. `exec: "foo": executable file not found in
/// $PATH`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    pub code: i32,
    pub message: String,
}

impl RunError {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RunError {
            code,
            message: message.into(),
        }
    }

    /// An engine error (exit status 125).
    pub fn runtime(message: impl Into<String>) -> Self {
        RunError::new(EXIT_RUNTIME_ERROR, message)
    }
}

impl From<Error> for RunError {
    fn from(e: Error) -> Self {
        RunError::runtime(e.chain())
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::runtime(e.to_string())
    }
}
