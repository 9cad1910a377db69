//! Keeping the host's `strata` binary out of reach of container processes
//! (CVE-2019-5736). A process that joins a container (`exec`) runs strata's
//! own code inside the container's PID namespace until its final `execve`;
//! a container process could open it through `/proc/PID/exe` and, once no
//! process runs that file any more, overwrite the host binary.
//!
//! Two layers, as runc has: the joining process is non-dumpable until it
//! execs (so `/proc/PID/exe` and `/proc/PID/fd` are closed to processes
//! without `CAP_SYS_PTRACE`), and a command that joins containers first
//! re-executes itself from a sealed memfd copy of its binary, so even a
//! process that may open `/proc/PID/exe` finds a file that cannot be written.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};

/// The name the sealed copy shows in `/proc/PID/exe` (`/memfd:strata-sealed (deleted)`).
const MEMFD_NAME: &str = "strata-sealed";

/// Whether this process already runs from a sealed copy.
pub fn running_sealed() -> bool {
    std::fs::read_link("/proc/self/exe")
        .map(|p| {
            p.as_os_str()
                .as_bytes()
                .starts_with(format!("/memfd:{MEMFD_NAME}").as_bytes())
        })
        .unwrap_or(false)
}

/// Re-executes the current process (same arguments and environment) from a
/// sealed memfd copy of its binary, unless it already runs from one.
/// Returns only on error. Call it before anything else is started (threads,
/// open files the command needs): the process image is replaced.
pub fn reexec_sealed() -> io::Result<()> {
    if running_sealed() {
        return Ok(());
    }
    let copy = sealed_copy_of_self()?;
    let args: Vec<CString> = std::env::args_os().map(cstring).collect::<io::Result<_>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<io::Result<_>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            copy.as_raw_fd(),
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Err(io::Error::last_os_error())
}

fn cstring(s: impl Into<OsString>) -> io::Result<CString> {
    CString::new(s.into().as_bytes().to_vec()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A memfd holding this process's binary, sealed against every change.
fn sealed_copy_of_self() -> io::Result<OwnedFd> {
    let exe = rustix::fs::open("/proc/self/exe", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let size = rustix::fs::fstat(&exe)?.st_size as u64;
    let mfd = rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    let mut left = size;
    while left > 0 {
        let n = rustix::fs::copy_file_range(&exe, None, &mfd, None, left.min(1 << 30) as usize)
            .or_else(|_| rustix::fs::sendfile(&mfd, &exe, None, left.min(1 << 30) as usize))?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the binary shrank while copied",
            ));
        }
        left -= n as u64;
    }
    rustix::fs::fcntl_add_seals(
        mfd.as_fd(),
        SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
    )?;
    Ok(mfd)
}

/// Makes the calling process non-dumpable: `/proc/PID/{exe,fd,mem,environ,…}`
/// need `CAP_SYS_PTRACE` over it. `execve` of an ordinary binary makes a
/// process dumpable again, so this lasts exactly until the container's program runs.
pub(crate) fn set_non_dumpable() -> io::Result<()> {
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
