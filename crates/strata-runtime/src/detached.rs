//! Detached containers: a monitor process (double fork, setsid) that is the
//! parent of the container's PID 1, keeps its output in a json-lines log and
//! records its exit; the state read back is checked against the live
//! process table, so a reboot or a killed monitor never shows as running.
//!
//! `state_dir` holds `state.json` (written atomically: temp file + rename)
//! and `ctr.log` (Docker's json-file format: `{"log","stream","time"}`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::child::{self, ChildFds, Proc};
use crate::launch::{parse_report, winsize_of};
use crate::spec::{RestartPolicy, RunSpec};
use crate::sys;
use crate::{EXIT_RUNTIME_ERROR, RunError};

/// Exit code recorded when a container ended without its monitor seeing it
/// (monitor killed, host rebooted): Docker shows such containers as `Exited (255)`.
pub const EXIT_UNKNOWN: i32 = 255;

/// What a container is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// PID 1 of the container, as the host sees it, verified alive and ours.
    Running { pid: i32 },
    /// Exit code (128 + N when killed by signal N) and time (RFC 3339, UTC).
    Exited { code: i32, finished_at: String },
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRecord {
    /// Host pid of the container's PID 1.
    pub pid: i32,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22).
    pub start_time: u64,
    pub monitor_pid: i32,
    pub monitor_start_time: u64,
    /// `/proc/sys/kernel/random/boot_id` when started: pids mean nothing after a reboot.
    pub boot_id: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The kernel's OOM killer killed a process of the container.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
    /// Restarts by the restart policy before this run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restart_count: u32,
    /// The restart policy's keeper that starts the next run, when there is
    /// one: while it lives the container counts as running (its network
    /// stays) even between runs.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub keeper_pid: i32,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub keeper_start_time: u64,
    /// Why this run did not start (Docker's `State.Error`), for a restart
    /// (the first start reports to its caller instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The file that says the user stopped the container (`kill`, `stop`, `rm`):
/// its restart policy no longer applies until it is started again.
const STOPPED: &str = "stopped-by-user";

/// Says that the user stopped the container: it is not restarted.
pub fn mark_stopped(state_dir: &Path) -> std::io::Result<()> {
    fs::write(state_dir.join(STOPPED), b"")
}

/// Undoes [`mark_stopped`] (an explicit `start`).
pub fn clear_stopped(state_dir: &Path) {
    let _ = fs::remove_file(state_dir.join(STOPPED));
}

/// Whether the user stopped (or removed) the container since it was last started.
pub fn stopped_by_user(state_dir: &Path) -> bool {
    !state_dir.is_dir() || state_dir.join(STOPPED).exists()
}

/// One line of `ctr.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline (none for a last partial line or a 16 KiB piece).
    pub log: String,
    /// `stdout` or `stderr` (with a tty, everything is `stdout`).
    pub stream: String,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// `<state_dir>/ctr.log`.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("ctr.log")
}

/// Every entry of the container's log, oldest first.
pub fn read_log(state_dir: &Path) -> crate::Result<Vec<LogEntry>> {
    Ok(read_log_from(state_dir, 0)?.0)
}

/// The entries of the container's log from byte `offset` on, and the offset
/// after them (to follow a log without reading it again). Only complete
/// lines: one the monitor is still writing is left for the next call.
pub fn read_log_from(state_dir: &Path, offset: u64) -> crate::Result<(Vec<LogEntry>, u64)> {
    use crate::error::Context;
    use std::io::{Seek, SeekFrom};
    let path = log_path(state_dir);
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    f.seek(SeekFrom::Start(offset))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut reader = BufReader::new(f);
    let mut out = Vec::new();
    let mut pos = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        if line.pop() != Some(b'\n') {
            return Ok((out, pos));
        }
        pos += n as u64;
        if line.is_empty() {
            continue;
        }
        out.push(
            serde_json::from_slice(&line).map_err(|source| crate::Error::BadLogLine {
                path: path.clone(),
                source,
            })?,
        );
    }
}

fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

fn write_record(state_dir: &Path, rec: &StateRecord) -> std::io::Result<()> {
    let tmp = state_dir.join(format!(".state.json.{}", std::process::id()));
    let json = serde_json::to_vec_pretty(rec).map_err(std::io::Error::other)?;
    {
        let mut f = fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &json)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, state_path(state_dir))
}

fn read_record(state_dir: &Path) -> Result<StateRecord, RunError> {
    let path = state_path(state_dir);
    let bytes =
        fs::read(&path).map_err(|e| RunError::runtime(format!("reading container state {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| RunError::runtime(format!("bad container state {}: {e}", path.display())))
}

fn alive_and_ours(pid: i32, start_time: u64) -> bool {
    pid > 0 && sys::process_start_time(pid) == Some(start_time)
}

/// The container's state, verified: `Running` only if its PID 1 is alive,
/// started when recorded, and since this boot. A container that ended unseen
/// (monitor killed, reboot) is recorded as exited with code 255 now.
pub fn state(state_dir: &Path) -> Result<State, RunError> {
    loop {
        let mut rec = read_record(state_dir)?;
        if let (Some(code), Some(at)) = (rec.exit_code, &rec.finished_at) {
            return Ok(State::Exited {
                code,
                finished_at: at.clone(),
            });
        }
        let same_boot = rec.boot_id == sys::boot_id();
        if same_boot && alive_and_ours(rec.pid, rec.start_time) {
            return Ok(State::Running { pid: rec.pid });
        }
        if same_boot && alive_and_ours(rec.monitor_pid, rec.monitor_start_time) {
            // The container has ended and its monitor is recording it: wait for the monitor.
            wait_for_exit_of(rec.monitor_pid, rec.monitor_start_time);
            continue;
        }
        // Neither is alive. The monitor may have recorded the exit and ended
        // between the read above and these checks (it writes before it
        // exits): read again before calling the end unknown.
        let again = read_record(state_dir)?;
        if again.exit_code.is_some() && again.finished_at.is_some() {
            continue;
        }
        rec.exit_code = Some(EXIT_UNKNOWN);
        rec.finished_at = Some(sys::now_rfc3339());
        write_record(state_dir, &rec)
            .map_err(|e| RunError::runtime(format!("recording the end of the container: {e}")))?;
        return Ok(State::Exited {
            code: EXIT_UNKNOWN,
            finished_at: rec.finished_at.unwrap_or_default(),
        });
    }
}

/// The raw `state.json` (for `inspect`: start time, pids).
pub fn read_state_record(state_dir: &Path) -> Result<StateRecord, RunError> {
    read_record(state_dir)
}

/// Blocks until the process `pid` (if it is the one that started at `start_time`) ends.
fn wait_for_exit_of(pid: i32, start_time: u64) {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) else {
        return;
    };
    // The pidfd is for whatever has the pid now: check it is still ours.
    if !alive_and_ours(pid, start_time) {
        return;
    }
    loop {
        let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}

/// Sends `signal` to the container's PID 1 (through a pidfd, after checking
/// the pid is still the container's). Errors when it is not running.
pub fn kill(state_dir: &Path, signal: i32) -> Result<(), RunError> {
    let rec = read_record(state_dir)?;
    // Docker: a container killed or stopped by the user is not restarted.
    let _ = mark_stopped(state_dir);
    let State::Running { pid } = state(state_dir)? else {
        return Err(RunError::runtime("container is not running"));
    };
    let p = rustix::process::Pid::from_raw(pid).ok_or_else(|| RunError::runtime("bad pid"))?;
    let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
        .map_err(|e| RunError::runtime(format!("pidfd_open({pid}): {e}")))?;
    if !alive_and_ours(pid, rec.start_time) {
        return Err(RunError::runtime("container is not running"));
    }
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r != 0 {
        return Err(RunError::runtime(format!(
            "sending signal {signal} to the container: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Waits until the container has exited; returns its exit code and finish time.
pub fn wait(state_dir: &Path) -> Result<(i32, String), RunError> {
    loop {
        match state(state_dir)? {
            State::Exited { code, finished_at } => return Ok((code, finished_at)),
            State::Running { .. } => {
                let rec = read_record(state_dir)?;
                wait_for_exit_of(rec.monitor_pid, rec.monitor_start_time);
            }
        }
    }
}

/// Starts the container in the background and returns its PID 1's host pid.
///
/// A monitor (forked twice, in its own session, stdio on /dev/null, every
/// signal blocked so that only SIGKILL ends it) is the parent of the
/// container: it writes `state.json`, logs stdout/stderr to `ctr.log`, and
/// records the exit code and time when the container ends. The container
/// dies with its monitor (parent-death signal), so it is never left running
/// unwatched. stdin is /dev/null (`-i` is not supported detached). With
/// `tty`, the pty output is logged as `stdout`.
///
/// A command that cannot be started gives `Err` with Docker's code (126,
/// 127...), and the state records that exit code.
pub fn spawn_detached(spec: &RunSpec, state_dir: &Path) -> Result<i32, RunError> {
    spec.validate()?;
    // Known before the fork: the forked children only read it.
    let _ = strata_rootless::privilege();
    fs::create_dir_all(state_dir)
        .map_err(|e| RunError::runtime(format!("creating the state dir {}: {e}", state_dir.display())))?;
    let state_dir = fs::canonicalize(state_dir)?;
    if state_path(&state_dir).exists()
        && let State::Running { .. } = state(&state_dir)?
    {
        return Err(RunError::runtime("the container is already running"));
    }
    let (rep_r, rep_w) = sys::pipe()?;
    let devnull = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| RunError::runtime(format!("opening /dev/null: {e}")))?;
    let log = rustix::fs::open(
        log_path(&state_dir).as_path(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    )
    .map_err(|e| RunError::runtime(format!("opening {}: {e}", log_path(&state_dir).display())))?;
    let old_mask = sys::block_all_signals();
    let first = match sys::fork() {
        Ok(0) => {
            drop(rep_r);
            let _ = rustix::process::setsid();
            match sys::fork() {
                Ok(0) if spec.restart == RestartPolicy::No => monitor(spec, &state_dir, rep_w, devnull, log, true),
                Ok(0) => keeper(spec, &state_dir, rep_w, devnull, log),
                _ => sys::exit_now(0),
            }
        }
        Ok(pid) => pid,
        Err(e) => {
            sys::restore_signal_mask(&old_mask);
            return Err(RunError::runtime(format!("fork: {e}")));
        }
    };
    sys::restore_signal_mask(&old_mask);
    drop(rep_w);
    drop(devnull);
    drop(log);
    sys::wait_exit_code(first)?;
    let report = sys::read_to_end(rep_r.as_fd())?;
    if let Some(err) = parse_report(&report) {
        // A container that could not start is not restarted (Docker's rule).
        if spec.restart != RestartPolicy::No {
            let _ = mark_stopped(&state_dir);
        }
        return Err(err);
    }
    let text = String::from_utf8_lossy(&report);
    text.lines()
        .find_map(|l| l.strip_prefix('P')?.parse().ok())
        .ok_or_else(|| RunError::runtime("the container monitor did not start"))
}

/// Runs the spec's exit hook (the network's cleanup). A monitor's new
/// children would be born in its container's PID namespace, dead now:
/// the hook's (`ip`, `nft`) go back to the monitor's own.
fn run_exit_hook(spec: &RunSpec) {
    if let Some(h) = &spec.on_exit {
        if let Ok(fd) = rustix::fs::open("/proc/self/ns/pid", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
            // SAFETY: a plain syscall on an fd we own.
            unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::CLONE_NEWPID) };
        }
        (h.run)(&h.args);
    }
}

/// `last`: no keeper follows this run (the exit hook is run here).
fn monitor(spec: &RunSpec, state_dir: &Path, report: OwnedFd, devnull: OwnedFd, log: OwnedFd, last: bool) -> ! {
    let report_raw = std::os::fd::AsRawFd::as_raw_fd(&report);
    // SAFETY: `report` outlives every use (fail exits the process).
    let fail = |msg: &str| -> ! { child::fail(unsafe { BorrowedFd::borrow_raw(report_raw) }, EXIT_RUNTIME_ERROR, msg) };
    let _ = rustix::process::chdir("/");
    for i in 0..3 {
        let _ = sys::dup2(devnull.as_fd(), i);
    }
    let (out, err, sock) = if spec.tty {
        match sys::socketpair() {
            Ok((a, b)) => ((None, None), (None, None), Some((a, b))),
            Err(e) => fail(&format!("socketpair: {e}")),
        }
    } else {
        match (sys::pipe(), sys::pipe()) {
            (Ok((or, ow)), Ok((er, ew))) => ((Some(or), Some(ow)), (Some(er), Some(ew)), None),
            (Err(e), _) | (_, Err(e)) => fail(&format!("pipe: {e}")),
        }
    };
    // SAFETY: single-threaded fork child.
    if let Err(e) = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) } {
        fail(&format!("unshare(CLONE_NEWPID): {e}"));
    }
    let me = rustix::process::getpid().as_raw_nonzero().get();
    // Not the last run: the parent is the keeper.
    let keeper_pid = if last {
        0
    } else {
        rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get())
    };
    let (parent_sock, child_sock) = match sock {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let (out_r, out_w) = out;
    let (err_r, err_w) = err;
    let stdin = match devnull.try_clone() {
        Ok(f) => f,
        Err(e) => fail(&format!("dup: {e}")),
    };
    let fds = ChildFds {
        report,
        tty_sock: child_sock,
        stdio: [Some(stdin), out_w, err_w],
    };
    let (filter, cgroup) = match crate::launch::prepare_confinement(spec) {
        Ok(c) => c,
        Err(e) => fail(&e.message),
    };
    let proc_ = Proc {
        args: &spec.args,
        env: &spec.env,
        cwd: &spec.cwd,
        user: &spec.user,
        tty: spec.tty,
        capabilities: spec.capabilities,
        hostname: spec.hostname_env.then_some(spec.hostname.as_str()),
        winsize: winsize_of(None).or(Some(rustix::termios::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        })),
        no_new_privileges: spec.security.no_new_privileges,
        seccomp: filter.as_ref(),
        cgroup: cgroup.as_ref().map(|c| c.join_handle()),
    };
    let pid = match sys::fork() {
        Ok(0) => {
            drop(parent_sock);
            drop(out_r);
            drop(err_r);
            drop(log);
            child::container_init(spec, &proc_, fds, 0)
        }
        Ok(pid) => pid,
        Err(e) => child::fail(fds.report.as_fd(), EXIT_RUNTIME_ERROR, &format!("fork: {e}")),
    };
    let ChildFds {
        report,
        tty_sock,
        stdio,
    } = fds;
    drop(tty_sock);
    drop(stdio);
    let mut rec = StateRecord {
        pid,
        start_time: sys::process_start_time(pid).unwrap_or(0),
        monitor_pid: me,
        monitor_start_time: sys::process_start_time(me).unwrap_or(0),
        boot_id: sys::boot_id(),
        started_at: sys::now_rfc3339(),
        exit_code: None,
        finished_at: None,
        oom_killed: false,
        restart_count: spec.restart_count,
        keeper_pid,
        keeper_start_time: if keeper_pid > 0 {
            sys::process_start_time(keeper_pid).unwrap_or(0)
        } else {
            0
        },
        error: None,
    };
    if let Err(e) = write_record(state_dir, &rec) {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        fail(&format!("writing {}: {e}", state_path(state_dir).display()));
    }
    let _ = sys::write_all(report.as_fd(), format!("P{pid}\n").as_bytes());
    drop(report);

    let mut streams: Vec<(OwnedFd, &str)> = Vec::new();
    if let Some(sock) = parent_sock {
        if let Ok(Some(master)) = sys::recv_fd(sock.as_fd()) {
            streams.push((master, "stdout"));
        }
    } else {
        streams.extend(out_r.map(|f| (f, "stdout")));
        streams.extend(err_r.map(|f| (f, "stderr")));
    }
    pump_logs(streams, log.as_fd());
    let code = sys::wait_exit_code(pid).unwrap_or(EXIT_RUNTIME_ERROR);
    rec.oom_killed = crate::confine::oom_killed(&cgroup);
    crate::confine::remove_cgroup(cgroup);
    rec.exit_code = Some(code);
    rec.finished_at = Some(sys::now_rfc3339());
    let _ = write_record(state_dir, &rec);
    if last {
        run_exit_hook(spec);
    }
    sys::exit_now(0)
}

/// The restart policy's keeper: runs a monitor (a process of its own: a
/// monitor's PID namespace dies with its container, so it cannot start
/// another), and when it has recorded the exit, starts the next one as the
/// policy says, after Docker's back-off (100 ms doubling up to a minute,
/// back to 100 ms after a run of 10 s or more). It stops when the user
/// stopped or removed the container.
fn keeper(spec: &RunSpec, state_dir: &Path, report: OwnedFd, devnull: OwnedFd, log: OwnedFd) -> ! {
    // Like the monitor: hold none of the caller's stdio or directories.
    let _ = rustix::process::chdir("/");
    for i in 0..3 {
        let _ = sys::dup2(devnull.as_fd(), i);
    }
    let mut spec = spec.clone();
    let mut report = Some(report);
    let mut delay = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        // Only the first run reports to `spawn_detached`; a restart's report
        // is read here, for the error of a start that failed.
        let mut restart_report = None;
        let rep = match report.take() {
            Some(r) => r,
            None => match sys::pipe() {
                Ok((r, w)) => {
                    restart_report = Some(r);
                    w
                }
                Err(_) => sys::exit_now(0),
            },
        };
        let (Ok(dn), Ok(lg)) = (devnull.try_clone(), log.try_clone()) else {
            sys::exit_now(0)
        };
        match sys::fork() {
            Ok(0) => monitor(&spec, state_dir, rep, dn, lg, false),
            Ok(pid) => {
                drop((rep, dn, lg));
                let _ = sys::wait_exit_code(pid);
            }
            Err(_) => sys::exit_now(0),
        }
        let Ok(mut rec) = read_record(state_dir) else {
            sys::exit_now(0)
        };
        let Some(code) = rec.exit_code else { sys::exit_now(0) };
        if let Some(error) = restart_report.and_then(|r| start_error(&r)) {
            rec.error = Some(error);
            let _ = write_record(state_dir, &rec);
        }
        if stopped_by_user(state_dir) || !spec.restart.should_restart(code, spec.restart_count) {
            run_exit_hook(&spec);
            sys::exit_now(0)
        }
        if started.elapsed() >= Duration::from_secs(10) {
            delay = Duration::from_millis(100);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(60));
        // Stopped, removed, or started by someone else meanwhile: not ours to restart.
        let again = read_record(state_dir).ok();
        if stopped_by_user(state_dir) || again.as_ref().is_none_or(|r| r.monitor_pid != rec.monitor_pid) {
            // Started by someone else meanwhile: the network is that run's now.
            if again.is_some_and(|r| r.monitor_pid == rec.monitor_pid) {
                run_exit_hook(&spec);
            }
            sys::exit_now(0)
        }
        spec.restart_count += 1;
    }
}

/// The message of an `E<code> <message>` line in what a run reported (all
/// of it was written: the run has ended).
fn start_error(report: &OwnedFd) -> Option<String> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(report, &mut buf) {
        if n == 0 || bytes.len() > 64 * 1024 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&bytes).lines().find_map(|l| {
        let rest = l.strip_prefix('E')?;
        let (code, msg) = rest.split_once(' ')?;
        code.parse::<i32>().ok().map(|_| msg.to_string())
    })
}

const MAX_LINE: usize = 16 * 1024;

fn log_line(log: BorrowedFd<'_>, stream: &str, bytes: &[u8]) {
    let entry = LogEntry {
        log: String::from_utf8_lossy(bytes).into_owned(),
        stream: stream.to_string(),
        time: sys::now_rfc3339(),
    };
    if let Ok(mut line) = serde_json::to_vec(&entry) {
        line.push(b'\n');
        let _ = sys::write_all(log, &line);
    }
}

/// Copies the container's output into the log, a line per entry, until every stream ends.
fn pump_logs(streams: Vec<(OwnedFd, &str)>, log: BorrowedFd<'_>) {
    let mut open: Vec<(OwnedFd, &str, Vec<u8>)> = streams.into_iter().map(|(f, s)| (f, s, Vec::new())).collect();
    let mut buf = [0u8; 8192];
    while !open.is_empty() {
        let mut pfds: Vec<_> = open
            .iter()
            .map(|(f, _, _)| rustix::event::PollFd::new(f, rustix::event::PollFlags::IN))
            .collect();
        match rustix::event::poll(&mut pfds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        }
        let ready: Vec<bool> = pfds.iter().map(|p| !p.revents().is_empty()).collect();
        drop(pfds);
        let mut closed = Vec::new();
        for (i, (fd, stream, pending)) in open.iter_mut().enumerate() {
            if !ready[i] {
                continue;
            }
            match rustix::io::read(&*fd, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => closed.push(i),
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=pos).collect();
                        log_line(log, stream, &line);
                    }
                    while pending.len() >= MAX_LINE {
                        let piece: Vec<u8> = pending.drain(..MAX_LINE).collect();
                        log_line(log, stream, &piece);
                    }
                }
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            let (_, stream, pending) = open.remove(i);
            if !pending.is_empty() {
                log_line(log, stream, &pending);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_log_from_resumes_and_leaves_a_partial_line() {
        let d = tempfile::tempdir().unwrap();
        let line = |s: &str| format!("{{\"log\":\"{s}\\n\",\"stream\":\"stdout\",\"time\":\"t\"}}\n");
        let (first, second) = (line("a"), line("b"));
        fs::write(log_path(d.path()), format!("{first}{second}{{\"log\":\"c")).unwrap();
        let (entries, at) = read_log_from(d.path(), 0).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(),
            ["a\n", "b\n"]
        );
        assert_eq!(at, (first.len() + second.len()) as u64);
        let (entries, again) = read_log_from(d.path(), first.len() as u64).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].log, "b\n");
        assert_eq!(again, at);
        assert_eq!(read_log(d.path()).unwrap().len(), 2);
        let none = tempfile::tempdir().unwrap();
        assert_eq!(read_log_from(none.path(), 7).unwrap(), (Vec::new(), 7));
    }
}
