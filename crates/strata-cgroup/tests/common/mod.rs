//! Shared by the integration tests: skip checks, unique names, and a forked
//! probe that tries device accesses from inside (or outside) a cgroup.

#![allow(dead_code)] // each test file uses part of this

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use strata_cgroup::{DeviceBackend, JoinHandle, Options};

/// The options for `backend` on this host, or `None` after printing
/// `skipped: …` when the test cannot run here (not root, no cgroup file
/// system it needs, /sys/fs/cgroup read-only).
pub fn setup(backend: DeviceBackend) -> Option<Options> {
    if !rustix::process::geteuid().is_root() {
        println!("skipped: not root");
        return None;
    }
    let opts = match Options::detect() {
        Ok(opts) => opts.with_devices(backend),
        Err(e) => {
            println!("skipped: {e}");
            return None;
        }
    };
    let root = match backend {
        DeviceBackend::V1 => opts.hierarchy.devices_v1(),
        DeviceBackend::Bpf => opts.hierarchy.unified(),
        DeviceBackend::Auto => opts.hierarchy.devices_v1().or(opts.hierarchy.unified()),
    };
    let Some(root) = root else {
        println!("skipped: no cgroup hierarchy for {backend:?} on this host");
        return None;
    };
    for dir in [opts.hierarchy.devices_v1(), opts.hierarchy.unified(), Some(root)]
        .into_iter()
        .flatten()
    {
        if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
            println!("skipped: {} is not writable", dir.display());
            return None;
        }
    }
    Some(opts)
}

/// A cgroup name no other test process uses.
pub fn name(tag: &str) -> String {
    format!("stratatest-{}-{tag}", std::process::id())
}

/// What a probe child saw: 0 for success, else the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Joining the cgroup.
    pub join: i32,
    /// open("/dev/null", O_RDWR).
    pub null_rw: i32,
    /// mknod of `b 7:0` in the scratch directory.
    pub mknod_block: i32,
    /// open(O_RDONLY) of the `b 7:0` node made beforehand.
    pub open_block: i32,
    /// mknod of `c 1:3` in the scratch directory.
    pub mknod_char: i32,
}

fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// Makes the block node `b 7:0` (a loop device's number) at `path`.
pub fn make_block_node(path: &Path) {
    let c = cpath(path);
    // SAFETY: plain syscall on a NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0)) };
    assert_eq!(rc, 0, "mknod {}: {}", path.display(), std::io::Error::last_os_error());
}

/// Forks a child that joins `join` (if given), tries the accesses of
/// [`Probe`] (nodes it makes are unlinked again), reports and exits.
/// The child only makes raw system calls.
pub fn probe(join: Option<JoinHandle<'_>>, scratch: &Path, block_node: &Path) -> Probe {
    let null = cpath(Path::new("/dev/null"));
    let new_block = cpath(&scratch.join("probe-block"));
    let new_char = cpath(&scratch.join("probe-char"));
    let block = cpath(block_node);
    let mut fds = [0; 2];
    // SAFETY: plain syscalls; between fork and _exit the child only makes
    // async-signal-safe calls on memory prepared before the fork.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut out = [0i32; 5];
            if let Some(Err(e)) = join.map(|handle| handle.join(0)) {
                out[0] = e.raw_os_error();
            }
            let fd = libc::open(null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
            out[1] = if fd < 0 { errno() } else { 0 };
            if fd >= 0 {
                libc::close(fd);
            }
            let mk = |path: &CString, mode, dev| {
                if libc::mknod(path.as_ptr(), mode | 0o600, dev) < 0 {
                    errno()
                } else {
                    libc::unlink(path.as_ptr());
                    0
                }
            };
            out[2] = mk(&new_block, libc::S_IFBLK, libc::makedev(7, 0));
            let fd = libc::open(block.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC);
            out[3] = if fd < 0 { errno() } else { 0 };
            if fd >= 0 {
                libc::close(fd);
            }
            out[4] = mk(&new_char, libc::S_IFCHR, libc::makedev(1, 3));
            libc::write(fds[1], out.as_ptr().cast(), std::mem::size_of_val(&out));
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut out = [0i32; 5];
        let n = libc::read(fds[0], out.as_mut_ptr().cast(), std::mem::size_of_val(&out));
        libc::close(fds[0]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert_eq!(
            n as usize,
            std::mem::size_of_val(&out),
            "probe child reported nothing (status {status})"
        );
        Probe {
            join: out[0],
            null_rw: out[1],
            mknod_block: out[2],
            open_block: out[3],
            mknod_char: out[4],
        }
    }
}

/// A forked child that joins `join` and sleeps until the returned guard is
/// dropped (then it is killed and reaped).
pub struct Sleeper {
    pub pid: i32,
}

impl Sleeper {
    pub fn start(join: JoinHandle<'_>) -> Sleeper {
        let mut fds = [0; 2];
        // SAFETY: as in `probe`.
        unsafe {
            assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let ok: u8 = if join.join(0).is_ok() { 1 } else { 0 };
                libc::write(fds[1], (&ok as *const u8).cast(), 1);
                loop {
                    libc::pause();
                }
            }
            libc::close(fds[1]);
            let mut ok = 0u8;
            assert_eq!(libc::read(fds[0], (&mut ok as *mut u8).cast(), 1), 1);
            libc::close(fds[0]);
            assert_eq!(ok, 1, "sleeper could not join");
            Sleeper { pid }
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}
