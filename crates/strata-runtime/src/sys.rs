//! Small system helpers: paths resolved inside a root, mounts by fd, process
//! start times, pipes, timestamps.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::mount::{MoveMountFlags, move_mount};

pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` (absolute or relative, as the container sees it) inside the
/// root `root` as an `O_PATH` directory, creating missing directories
/// (mode 0755, owned by `owner` when given). Symlinks and `..` resolve
/// inside the root, dangling ones too (their target is created inside the
/// root, as runc does); magic links (`/proc/self/fd/N`) are refused.
pub(crate) fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &str, owner: Option<(u32, u32)>) -> io::Result<OwnedFd> {
    let mut path = path.to_string();
    for _ in 0..40 {
        match mkdir_all_step(root, &path, owner)? {
            Ok(fd) => return Ok(fd),
            Err(redirected) => path = redirected,
        }
    }
    Err(io::Error::from_raw_os_error(libc::ELOOP))
}

fn open_dir_in_root(root: BorrowedFd<'_>, p: &str) -> rustix::io::Result<OwnedFd> {
    let p = if p.is_empty() { "." } else { p };
    rustix::fs::openat2(
        root,
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
}

/// One pass: `Ok(Ok(fd))` when done, `Ok(Err(path))` to start again on the
/// path a dangling symlink points to.
fn mkdir_all_step(root: BorrowedFd<'_>, path: &str, owner: Option<(u32, u32)>) -> io::Result<Result<OwnedFd, String>> {
    match open_dir_in_root(root, path) {
        Ok(fd) => return Ok(Ok(fd)),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let mut cur = open_dir_in_root(root, "")?;
    let mut prefix = String::new();
    for (i, comp) in comps.iter().enumerate() {
        let next = if prefix.is_empty() {
            comp.to_string()
        } else {
            format!("{prefix}/{comp}")
        };
        match open_dir_in_root(root, &next) {
            Ok(fd) => {
                cur = fd;
                prefix = next;
                continue;
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match rustix::fs::mkdirat(&cur, *comp, Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                let fd = open_dir_in_root(root, &next)?;
                if let Some((uid, gid)) = owner {
                    chown_fd(fd.as_fd(), uid, gid)?;
                }
                cur = fd;
                prefix = next;
            }
            Err(Errno::EXIST) => {
                // A dangling symlink: follow it by hand, inside the root.
                let target = rustix::fs::readlinkat(&cur, *comp, Vec::new())
                    .map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
                let target = target.to_string_lossy();
                let rest = comps[i + 1..].join("/");
                let redirected = if target.starts_with('/') {
                    format!("{target}/{rest}")
                } else {
                    format!("{prefix}/{target}/{rest}")
                };
                return Ok(Err(redirected));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Ok(cur))
}

fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    rustix::fs::chownat(
        fd,
        "",
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::EMPTY_PATH,
    )?;
    Ok(())
}

/// Opens (creating it, and its parents, if missing) a file at `path` inside
/// `root`, as an `O_PATH` fd: the mount point of a file bind mount.
pub(crate) fn touch_in_root(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    let trimmed = path.trim_end_matches('/');
    // An existing target is not opened for writing: on overlay that would
    // copy it up into the container's layer (diff and commit would show it).
    if let Ok(fd) = rustix::fs::openat2(root, trimmed, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
        return Ok(fd);
    }
    if let Some((parent, _)) = trimmed.rsplit_once('/') {
        mkdir_all_in_root(root, parent, None)?;
    }
    match rustix::fs::openat2(
        root,
        trimmed,
        OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
        IN_ROOT,
    ) {
        Ok(_) | Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(rustix::fs::openat2(
        root,
        trimmed,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )?)
}

/// Attaches a detached mount (from `fsmount` or `open_tree`) on the object `target` refers to.
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {attr_set})`.
pub(crate) fn mount_setattr(fd: BorrowedFd<'_>, attr_set: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pipe, both ends close-on-exec: (read, write).
pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?)
}

/// Writes all of `buf` to a raw fd (retrying on EINTR); errors are ignored by callers in children.
pub(crate) fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads until EOF.
pub(crate) fn read_to_end(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// `waitpid(pid)` until it ends; returns the Docker-style exit code
/// (the status, or 128 + signal number).
pub(crate) fn wait_exit_code(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(status_to_code(status));
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

pub(crate) fn status_to_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Start time of a process (clock ticks since boot, field 22 of
/// `/proc/PID/stat`); `None` when there is no such process.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the comm: state is field 3, starttime is field 22.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let st: u64 = fields.get(19)?.parse().ok()?;
    // A zombie is not running any more.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    Some(st)
}

pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Now, as RFC 3339 with nanoseconds in UTC (Docker's log and state format).
pub(crate) fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

pub(crate) fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub(crate) fn cstring(s: &str, what: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} contains a NUL byte: {s:?}"),
        )
    })
}

/// Duplicates a raw fd we do not own into an owned one.
pub(crate) fn dup_raw(fd: RawFd) -> io::Result<OwnedFd> {
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Sends one fd over a unix socket (SCM_RIGHTS).
pub(crate) fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let fds = [fd];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    anc.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(sock, &[io::IoSlice::new(b"T")], &mut anc, SendFlags::empty())?;
    Ok(())
}

/// Receives one fd sent with [`send_fd`]; `None` at EOF (the sender died first).
pub(crate) fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    loop {
        match recvmsg(
            sock,
            &mut [io::IoSliceMut::new(&mut byte)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) if r.bytes == 0 => return Ok(None),
            Ok(_) => break,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    for msg in anc.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(Some(fd));
        }
    }
    Ok(None)
}

/// A unix stream socket pair, close-on-exec.
pub(crate) fn socketpair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
    Ok(socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Brings `lo` up in the current network namespace.
pub(crate) fn loopback_up() -> io::Result<()> {
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = OwnedFd::from_raw_fd(s);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Blocks every signal in this thread; returns the previous mask.
pub(crate) fn block_all_signals() -> libc::sigset_t {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

pub(crate) fn restore_signal_mask(old: &libc::sigset_t) {
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Every signal back to its default action, none blocked (for the container process).
pub(crate) fn reset_signals() {
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// `fork()`: `Ok(0)` in the child.
pub(crate) fn fork() -> io::Result<i32> {
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// The process exits at once with `code`, without running destructors or atexit handlers.
pub(crate) fn exit_now(code: i32) -> ! {
    unsafe { libc::_exit(code) }
}

/// A supervisor's loop: with every signal blocked, forwards each signal it
/// receives (but SIGCHLD) to `child`, and exits with the child's exit code
/// (128 + signal number when it was killed) once it ends.
pub(crate) fn forward_signals_and_exit(child: i32) -> ! {
    exit_now(forward_signals_until_exit(child))
}

/// [`forward_signals_and_exit`]'s loop, returning the child's exit code
/// (signals stay blocked: the caller is about to exit).
pub(crate) fn forward_signals_until_exit(child: i32) -> i32 {
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        loop {
            let mut status = 0;
            let r = libc::waitpid(child, &mut status, libc::WNOHANG);
            if r == child {
                return status_to_code(status);
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                return crate::EXIT_RUNTIME_ERROR;
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&all, &mut info);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
        }
    }
}

/// Marks every fd above 2 close-on-exec.
pub(crate) fn cloexec_from_3() -> io::Result<()> {
    let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(crate) fn dup2(from: BorrowedFd<'_>, to: RawFd) -> io::Result<()> {
    if from.as_raw_fd() == to {
        // Clear close-on-exec: the target must survive exec.
        let r = unsafe { libc::fcntl(to, libc::F_SETFD, 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        return Ok(());
    }
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
