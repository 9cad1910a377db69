//! The pause process that holds a store's user and mount namespaces, and
//! joining it.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::subids::{id_map, subordinate_ranges, user_name};
use crate::{Error, Result};

const PID_FILE: &str = "rootless.pid";
const LOCK_FILE: &str = "rootless.lock";

/// What [`enter`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entered {
    /// Already root (on the host, or inside the namespace): nothing done.
    AlreadyRoot,
    /// Joined the namespaces of the store's pause process.
    Joined { pause_pid: i32, single_id: bool },
}

/// Enters the user and mount namespaces of the store at `store_root` as an
/// ordinary user, creating them (and the pause process that holds them)
/// on first use. Must be called while the process has one thread: `setns`
/// into a user namespace refuses a multi-threaded caller. Creates the
/// store's directory with mode 0700 (nothing in a rootless store is for
/// other users).
pub fn enter(store_root: &Path) -> Result<Entered> {
    if rustix::process::geteuid().is_root() {
        return Ok(Entered::AlreadyRoot);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    if !store_root.exists() {
        std::fs::create_dir_all(store_root).map_err(io(store_root))?;
        std::fs::set_permissions(store_root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(io(store_root))?;
    }
    let lock_path = store_root.join(LOCK_FILE);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| io(&lock_path)(e.into()))?;
    let pid_path = store_root.join(PID_FILE);
    let pid = match read_pid_file(&pid_path) {
        Some(pid) => pid,
        None => {
            let pid = create_pause()?;
            write_pid_file(&pid_path, pid).map_err(io(&pid_path))?;
            pid
        }
    };
    drop(lock);
    let single_id = join(pid)?;
    Ok(Entered::Joined {
        pause_pid: pid,
        single_id,
    })
}

/// Stops the pause process of the store at `store_root` (as `podman system
/// migrate` does): the next command makes a new namespace. Returns its pid.
pub fn stop_pause(store_root: &Path) -> Option<i32> {
    let pid = read_pid_file(&store_root.join(PID_FILE))?;
    rustix::process::kill_process(rustix::process::Pid::from_raw(pid)?, rustix::process::Signal::KILL).ok()?;
    let _ = std::fs::remove_file(store_root.join(PID_FILE));
    Some(pid)
}

fn read_pid_file(path: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut f = text.split_whitespace();
    let (pid, start): (i32, u64) = (f.next()?.parse().ok()?, f.next()?.parse().ok()?);
    (start_time(pid) == Some(start)).then_some(pid)
}

fn write_pid_file(path: &Path, pid: i32) -> std::io::Result<()> {
    let start = start_time(pid).ok_or_else(|| std::io::Error::other("the pause process died at once"))?;
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid} {start}\n"))?;
    std::fs::rename(&tmp, path)
}

/// The start time of a live (not zombie) process, from `/proc/PID/stat`.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Error::Unshare(e.into()))?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

/// Forks the pause process: it unshares a user and a mount namespace,
/// waits for its id maps, leaves the caller's session and sleeps forever.
fn create_pause() -> Result<i32> {
    let (mut from_child, to_parent) = pipe()?;
    let (from_parent, mut to_child) = pipe()?;
    // SAFETY: the caller is single-threaded (see `enter`), so the child may
    // run ordinary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::Unshare(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(from_child);
        drop(to_child);
        pause_main(to_parent, from_parent);
    }
    drop(to_parent);
    drop(from_parent);
    let fail = |e: Error| {
        // SAFETY: our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        e
    };
    let mut status = [0u8; 5];
    match from_child.read_exact(&mut status) {
        Ok(()) if status[0] == 0 => {}
        Ok(()) => {
            let errno = i32::from_ne_bytes([status[1], status[2], status[3], status[4]]);
            return Err(fail(Error::Unshare(std::io::Error::from_raw_os_error(errno))));
        }
        Err(e) => return Err(fail(Error::Unshare(e))),
    }
    if let Err(e) = write_id_maps(pid) {
        return Err(fail(e));
    }
    if to_child.write_all(&[1]).is_err() || from_child.read_exact(&mut status[..1]).is_err() {
        return Err(fail(Error::Unshare(std::io::Error::other(
            "the pause process ended before it was ready",
        ))));
    }
    Ok(pid)
}

/// The pause process: never returns.
fn pause_main(to_parent: std::fs::File, mut from_parent: std::fs::File) -> ! {
    let mut to_parent = to_parent;
    let report = |to: &mut std::fs::File, errno: i32| {
        let mut b = [1u8; 5];
        b[1..].copy_from_slice(&errno.to_ne_bytes());
        let _ = to.write_all(&b);
        // SAFETY: leaving the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(1) }
    };
    // SAFETY: plain syscalls in a single-threaded child.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        report(
            &mut to_parent,
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        );
    }
    let _ = to_parent.write_all(&[0; 5]);
    let mut go = [0u8; 1];
    if from_parent.read_exact(&mut go).is_err() || go[0] != 1 {
        unsafe { libc::_exit(1) };
    }
    // Mounts made in this namespace stay in it.
    let private = rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    );
    if let Err(e) = private {
        report(&mut to_parent, e.raw_os_error());
    }
    let _ = rustix::process::setsid();
    let _ = std::env::set_current_dir("/");
    let _ = rustix::thread::set_name(c"strata-pause");
    // SAFETY: stdio onto /dev/null, every other descriptor closed (a lock
    // the caller holds must not live on here).
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
        let keep = to_parent.as_raw_fd();
        libc::dup2(keep, 3);
        libc::close_range(4, u32::MAX, 0);
        let ready = std::fs::File::from(OwnedFd::from_raw_fd(3));
        let _ = (&ready).write_all(&[0]);
        drop(ready);
        std::mem::forget(to_parent);
        std::mem::forget(from_parent);
        for sig in [libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGPIPE, libc::SIGTSTP] {
            libc::signal(sig, libc::SIG_IGN);
        }
        loop {
            libc::pause();
        }
    }
}

/// Maps the user's subordinate ids into the pause process's namespace with
/// newuidmap/newgidmap, or only the user's own ids when it has none.
fn write_id_maps(pid: i32) -> Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = user_name(uid).unwrap_or_default();
    let subuid = subordinate_ranges(Path::new("/etc/subuid"), &name, uid);
    let subgid = subordinate_ranges(Path::new("/etc/subgid"), &name, uid);
    if subuid.is_empty() || subgid.is_empty() {
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let write = |file: &str, text: String| {
            std::fs::write(proc.join(file), text).map_err(|source| Error::IdMap { pid, source })
        };
        write("setgroups", "deny".into())?;
        write("uid_map", format!("0 {uid} 1\n"))?;
        return write("gid_map", format!("0 {gid} 1\n"));
    }
    for (tool, own, ranges) in [("newuidmap", uid, &subuid), ("newgidmap", gid, &subgid)] {
        let mut cmd = Command::new(tool);
        cmd.arg(pid.to_string());
        for (inside, outside, count) in id_map(own, ranges) {
            cmd.args([inside.to_string(), outside.to_string(), count.to_string()]);
        }
        let out = cmd
            .output()
            .map_err(|source| Error::IdMapToolMissing { tool, source })?;
        if !out.status.success() {
            return Err(Error::IdMapTool {
                tool,
                pid,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    Ok(())
}

/// Joins the user and mount namespaces of `pid`; returns whether only one
/// id is mapped. The working directory is kept (setns into a mount
/// namespace moves it to the namespace's root).
fn join(pid: i32) -> Result<bool> {
    let err = |source: std::io::Error| Error::Join { pid, source };
    let start = start_time(pid);
    let user = std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(err)?;
    let mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(err)?;
    if start.is_none() || start_time(pid) != start {
        return Err(err(std::io::Error::other("the pause process is gone")));
    }
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).map_err(err)?;
    let cwd = std::env::current_dir().ok();
    // SAFETY: setns on descriptors we own; the caller is single-threaded.
    unsafe {
        if libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        if libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) != 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
    }
    if let Some(cwd) = cwd {
        let _ = std::env::set_current_dir(cwd);
    }
    Ok(map.lines().filter(|l| !l.trim().is_empty()).count() <= 1)
}
