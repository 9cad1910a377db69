//! The caller's side of a foreground run or exec: fork the supervisor, read
//! errors from the report pipe, forward signals, relay a pty, wait.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

use rustix::fs::{Mode, OFlags};

use crate::child::{self, ChildFds, Proc};
use crate::confine;
use crate::spec::RunSpec;
use crate::sys;
use crate::{EXIT_RUNTIME_ERROR, RunError};

/// Where the container's stdin/stdout/stderr go; `None` means the caller's own
/// fd 0/1/2. Without `-i` the container's stdin is /dev/null whatever is given.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Stdio {
    /// The caller's own stdin, stdout and stderr.
    pub fn inherit() -> Stdio {
        Stdio::default()
    }
}

/// Runs the container in the foreground with the caller's stdio and returns
/// the process's exit code (128 + N when killed by signal N). `Err` when it
/// could not be started: the error's `code` is 125, 126 or 127 as Docker's.
///
/// While it runs, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
/// received by the caller are forwarded to the container's PID 1.
pub fn run(spec: &RunSpec) -> Result<i32, RunError> {
    run_with_stdio(spec, Stdio::inherit())
}

/// [`run`] with the container's stdio redirected (tests, `start -a`, logs).
pub fn run_with_stdio(spec: &RunSpec, io: Stdio) -> Result<i32, RunError> {
    run_outcome(spec, io).map(|o| o.code)
}

/// How a foreground container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code (128 + N when killed by signal N).
    pub code: i32,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// [`run_with_stdio`], telling also whether the container was OOM-killed.
pub fn run_outcome(spec: &RunSpec, io: Stdio) -> Result<Outcome, RunError> {
    spec.validate()?;
    launch(spec.tty, io, spec.stdin, |fds, caller| middle_create(spec, fds, caller))
}

/// The report line the supervisor writes when the container was OOM-killed.
const OOM_LINE: &[u8] = b"O\n";

/// The supervisor of a new container: unshares the PID namespace, forks PID 1, forwards signals.
fn middle_create(spec: &RunSpec, fds: ChildFds, caller: i32) -> ! {
    let (filter, cgroup) = match prepare_confinement(spec) {
        Ok(c) => c,
        Err(e) => child::fail(fds.report.as_fd(), e.code, &e.message),
    };
    let proc_ = Proc {
        args: &spec.args,
        env: &spec.env,
        cwd: &spec.cwd,
        user: &spec.user,
        tty: spec.tty,
        capabilities: spec.capabilities,
        hostname: spec.hostname_env.then_some(spec.hostname.as_str()),
        winsize: winsize_of(fds.stdio[1].as_ref().map(|f| f.as_fd())),
        no_new_privileges: spec.security.no_new_privileges,
        seccomp: filter.as_ref(),
        cgroup: cgroup.as_ref().map(|c| c.join_handle()),
    };
    if let Err(e) = child::die_with_parent(caller) {
        child::fail(fds.report.as_fd(), EXIT_RUNTIME_ERROR, &format!("prctl: {e}"));
    }
    // SAFETY: single-threaded fork child.
    if let Err(e) = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWPID) } {
        child::fail(
            fds.report.as_fd(),
            EXIT_RUNTIME_ERROR,
            &format!("unshare(CLONE_NEWPID): {e}"),
        );
    }
    match sys::fork() {
        Ok(0) => child::container_init(spec, &proc_, fds, 0),
        Ok(pid) => {
            // The report stays open here to tell the caller about an OOM kill.
            let outcome = fds.report.try_clone();
            drop(fds);
            let code = sys::forward_signals_until_exit(pid);
            if let Ok(fd) = &outcome
                && confine::oom_killed(&cgroup)
            {
                let _ = sys::write_all(fd.as_fd(), OOM_LINE);
            }
            drop(outcome);
            confine::remove_cgroup(cgroup);
            sys::exit_now(code)
        }
        Err(e) => {
            confine::remove_cgroup(cgroup);
            child::fail(fds.report.as_fd(), EXIT_RUNTIME_ERROR, &format!("fork: {e}"))
        }
    }
}

/// The seccomp filter and the cgroup of a new container, made by its supervisor.
pub(crate) fn prepare_confinement(
    spec: &RunSpec,
) -> Result<(Option<strata_seccomp::Filter>, Option<strata_cgroup::Cgroup>), RunError> {
    let filter = confine::seccomp_filter(&spec.security.seccomp, spec.capabilities)?;
    let cgroup = confine::create_cgroup(&spec.security)?;
    Ok((filter, cgroup))
}

pub(crate) fn winsize_of(fd: Option<BorrowedFd<'_>>) -> Option<rustix::termios::Winsize> {
    let fd = fd.unwrap_or_else(|| unsafe { BorrowedFd::borrow_raw(1) });
    rustix::termios::tcgetwinsize(fd).ok()
}

/// Forks `middle` (which must end in `_exit`) with the report pipe and the
/// container's stdio, then supervises it from the caller's side.
pub(crate) fn launch(
    tty: bool,
    io: Stdio,
    keep_stdin: bool,
    middle: impl FnOnce(ChildFds, i32) -> std::convert::Infallible,
) -> Result<Outcome, RunError> {
    // Known before the fork: the forked child only reads it.
    let _ = strata_rootless::privilege();
    let (rep_r, rep_w) = sys::pipe()?;
    let sockets = if tty { Some(sys::socketpair()?) } else { None };
    let devnull = || -> Result<OwnedFd, RunError> {
        rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| RunError::runtime(format!("opening /dev/null: {e}")))
    };
    let Stdio { stdin, stdout, stderr } = io;
    // In tty mode the container's stdio is the pty; the caller's fds are the relay's ends.
    let (child_stdio, relay_in, relay_out) = if tty {
        let out = match stdout {
            Some(f) => f,
            None => sys::dup_raw(1)?,
        };
        let inp = if keep_stdin {
            Some(match stdin {
                Some(f) => f,
                None => sys::dup_raw(0)?,
            })
        } else {
            None
        };
        // The winsize travels in stdio[1] to the supervisor: give it the caller's output.
        ([None, Some(sys::dup_raw(out.as_raw_fd())?), None], inp, Some(out))
    } else {
        let child_in = if keep_stdin { stdin } else { Some(devnull()?) };
        ([child_in, stdout, stderr], None, None)
    };
    let (parent_sock, child_sock) = match sockets {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let fds = ChildFds {
        report: rep_w,
        tty_sock: child_sock,
        stdio: child_stdio,
    };
    let caller = rustix::process::getpid().as_raw_nonzero().get();
    let old_mask = sys::block_all_signals();
    let pid = match sys::fork() {
        #[allow(unreachable_code)]
        Ok(0) => {
            drop(rep_r);
            drop(parent_sock);
            drop(relay_in);
            drop(relay_out);
            match middle(fds, caller) {}
        }
        Ok(pid) => pid,
        Err(e) => {
            sys::restore_signal_mask(&old_mask);
            return Err(RunError::runtime(format!("fork: {e}")));
        }
    };
    forwarding::register(pid);
    sys::restore_signal_mask(&old_mask);
    drop(fds);
    let relay = parent_sock.map(|sock| Relay::start(sock, relay_in, relay_out.expect("tty output")));
    let report = sys::read_to_end(rep_r.as_fd());
    let code = sys::wait_exit_code(pid);
    forwarding::unregister(pid);
    if let Some(r) = relay {
        r.finish();
    }
    let code = code?;
    let report = report?;
    if let Some(err) = parse_report(&report) {
        return Err(err);
    }
    Ok(Outcome {
        code,
        oom_killed: report.split(|&b| b == b'\n').any(|l| l == &OOM_LINE[..1]),
    })
}

/// The first error line (`E<code> <message>`) of a report, if any.
pub(crate) fn parse_report(report: &[u8]) -> Option<RunError> {
    let text = String::from_utf8_lossy(report);
    text.lines().find_map(|l| {
        let rest = l.strip_prefix('E')?;
        let (code, msg) = rest.split_once(' ')?;
        Some(RunError::new(code.parse().unwrap_or(EXIT_RUNTIME_ERROR), msg))
    })
}

/// Signals forwarded to running containers' supervisors while a foreground run lasts.
mod forwarding {
    use super::*;

    const SIGNALS: [i32; 6] = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ];
    static SLOTS: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
    static STATE: Mutex<(usize, Vec<(i32, libc::sigaction)>)> = Mutex::new((0, Vec::new()));

    extern "C" fn forward(sig: libc::c_int) {
        for s in &SLOTS {
            let pid = s.load(Ordering::Relaxed);
            if pid > 0 {
                unsafe { libc::kill(pid, sig) };
            }
        }
    }

    pub(super) fn register(pid: i32) {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = SLOTS.iter().find(|s| s.load(Ordering::Relaxed) == 0) {
            slot.store(pid, Ordering::Relaxed);
        }
        if st.0 == 0 {
            for sig in SIGNALS {
                unsafe {
                    let mut act: libc::sigaction = std::mem::zeroed();
                    act.sa_sigaction = forward as *const () as usize;
                    act.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut act.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(sig, &act, &mut old);
                    st.1.push((sig, old));
                }
            }
        }
        st.0 += 1;
    }

    pub(super) fn unregister(pid: i32) {
        let mut st = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = SLOTS.iter().find(|s| s.load(Ordering::Relaxed) == pid) {
            slot.store(0, Ordering::Relaxed);
        }
        st.0 = st.0.saturating_sub(1);
        if st.0 == 0 {
            for (sig, old) in st.1.drain(..) {
                unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
            }
        }
    }
}

/// Copies between the caller's terminal (or given fds) and the pty master.
struct Relay {
    out: JoinHandle<()>,
    input: Option<(JoinHandle<()>, OwnedFd)>,
    termios: Option<(OwnedFd, rustix::termios::Termios)>,
}

fn copy_loop(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut buf = [0u8; 8192];
    loop {
        match rustix::io::read(from, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if sys::write_all(to, &buf[..n]).is_err() {
                    return;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return, // EIO: every pty peer is closed
        }
    }
}

impl Relay {
    fn start(sock: OwnedFd, input: Option<OwnedFd>, output: OwnedFd) -> Relay {
        let (tx, rx) = std::sync::mpsc::channel::<OwnedFd>();
        let out = std::thread::spawn(move || {
            let Ok(Some(master)) = sys::recv_fd(sock.as_fd()) else {
                return;
            };
            if let Ok(dup) = master.try_clone() {
                let _ = tx.send(dup);
            }
            drop(tx);
            copy_loop(master.as_fd(), output.as_fd());
        });
        let mut termios = None;
        let input = input.and_then(|inp| {
            if let Ok(t) = rustix::termios::tcgetattr(&inp) {
                let mut raw = t.clone();
                raw.make_raw();
                if let Ok(keep) = inp.try_clone()
                    && rustix::termios::tcsetattr(&inp, rustix::termios::OptionalActions::Now, &raw).is_ok()
                {
                    termios = Some((keep, t));
                }
            }
            let (stop_r, stop_w) = sys::pipe().ok()?;
            let h = std::thread::spawn(move || {
                let Ok(master) = rx.recv() else { return };
                let mut buf = [0u8; 8192];
                loop {
                    let mut fds = [
                        rustix::event::PollFd::new(&inp, rustix::event::PollFlags::IN),
                        rustix::event::PollFd::new(&stop_r, rustix::event::PollFlags::IN),
                    ];
                    match rustix::event::poll(&mut fds, None) {
                        Ok(_) => {}
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(_) => return,
                    }
                    if !fds[1].revents().is_empty() {
                        return;
                    }
                    match rustix::io::read(&inp, &mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if sys::write_all(master.as_fd(), &buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return,
                    }
                }
            });
            Some((h, stop_w))
        });
        Relay { out, input, termios }
    }

    fn finish(self) {
        let _ = self.out.join();
        if let Some((h, stop)) = self.input {
            let _ = sys::write_all(stop.as_fd(), b"x");
            let _ = h.join();
        }
        if let Some((fd, t)) = self.termios {
            let _ = rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &t);
        }
    }
}
