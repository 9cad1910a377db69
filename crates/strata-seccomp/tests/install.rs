//! Filters installed for real: a forked child sets no_new_privs, installs a
//! compiled filter, makes syscalls and sends their results (return value or
//! -errno) back through a pipe.

use std::ffi::CString;

use strata_seccomp::{Context, Filter, Profile, SeccompError, compile};

/// Docker's default capability set (`CapBnd` 00000000a80425fb).
const DOCKER_CAPS: u64 = 0xa804_25fb;
const CAP_SYS_ADMIN: u64 = 1 << 21;
const MAX_CHECKS: usize = 32;

/// Runs `checks` in a child under `filter`; returns their results, or the
/// signal that killed the child as `Err`.
fn in_child(filter: &Filter, checks: fn(&mut [i64; MAX_CHECKS])) -> Result<[i64; MAX_CHECKS], i32> {
    let mut fds = [0; 2];
    // SAFETY: plain libc calls; the child only makes syscalls and _exits.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::close(fds[0]);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(100);
            }
            if filter.install().is_err() {
                libc::_exit(101);
            }
            let mut out = [i64::MIN; MAX_CHECKS];
            checks(&mut out);
            let n = std::mem::size_of_val(&out);
            let w = libc::write(fds[1], out.as_ptr().cast(), n);
            libc::_exit(if w == n as isize { 0 } else { 102 });
        }
        libc::close(fds[1]);
        let mut out = [i64::MIN; MAX_CHECKS];
        let n = std::mem::size_of_val(&out);
        let r = libc::read(fds[0], out.as_mut_ptr().cast(), n);
        libc::close(fds[0]);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        if libc::WIFSIGNALED(status) {
            return Err(libc::WTERMSIG(status));
        }
        assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
        assert_eq!(r, n as isize);
        Ok(out)
    }
}

/// A syscall's result: its return value, or -errno.
fn res(r: libc::c_long) -> i64 {
    if r == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

fn default_filter(caps: u64) -> Filter {
    compile(&Profile::docker_default(), &Context::new(caps)).unwrap()
}

/// Whether `/proc/self/status` says `Seccomp:\t2`, read without allocating.
fn seccomp_mode_is_filter() -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into a stack buffer.
    let n = unsafe {
        let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY);
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    n > 0 && buf[..n as usize].windows(11).any(|w| w == b"Seccomp:\t2\n")
}

#[test]
fn docker_default_allows_and_denies() {
    let out = in_child(&default_filter(DOCKER_CAPS), |out| unsafe {
        out[0] = res(libc::syscall(libc::SYS_getpid));
        let mut buf = [0u8; 256];
        out[1] = res(libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()));
        out[2] = res(libc::syscall(
            libc::SYS_mount,
            c"none".as_ptr(),
            c"/".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            0,
        ));
        out[3] = res(libc::syscall(libc::SYS_swapon, c"/nonexistent".as_ptr(), 0));
        out[4] = res(libc::syscall(
            libc::SYS_keyctl,
            0, /* KEYCTL_GET_KEYRING_ID */
            -3,
            0,
        ));
        out[5] = res(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS));
        out[6] = res(libc::syscall(libc::SYS_clone3, 0, 0));
        out[7] = res(libc::syscall(libc::SYS_personality, 0xffff_ffffu64));
        out[8] = res(libc::syscall(libc::SYS_personality, 0));
        out[9] = res(libc::syscall(
            libc::SYS_personality,
            0x0040_0000, /* ADDR_NO_RANDOMIZE */
        ));
        // 64-bit argument: the high half counts.
        out[10] = res(libc::syscall(libc::SYS_personality, 0x1_0000_0000u64));
        out[11] = res(libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0));
        out[12] = res(libc::syscall(libc::SYS_socket, libc::AF_VSOCK, libc::SOCK_STREAM, 0));
        out[13] = res(libc::syscall(libc::SYS_socket, libc::AF_ALG, libc::SOCK_SEQPACKET, 0));
        out[14] = i64::from(seccomp_mode_is_filter());
        // fork() is clone(SIGCHLD): allowed; clone with CLONE_NEWNS is not.
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(7);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        out[15] = i64::from(libc::WEXITSTATUS(status));
        out[16] = res(libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWNS | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        ));
        out[17] = res(libc::syscall(libc::SYS_reboot, 0, 0, 0, 0));
        out[18] = res(libc::syscall(libc::SYS_chroot, c"/".as_ptr()));
        // settimeofday(NULL, NULL) is a no-op for root when let through.
        out[19] = res(libc::syscall(libc::SYS_settimeofday, 0, 0));
    })
    .unwrap();
    let (eperm, enosys) = (-i64::from(libc::EPERM), -i64::from(libc::ENOSYS));
    assert!(out[0] > 0, "getpid {}", out[0]);
    assert!(out[1] > 0, "getcwd {}", out[1]);
    assert_eq!(out[2], eperm, "mount");
    assert_eq!(out[3], eperm, "swapon");
    assert_eq!(out[4], eperm, "keyctl");
    assert_eq!(out[5], eperm, "unshare(CLONE_NEWNS)");
    assert_eq!(out[6], enosys, "clone3");
    assert!(out[7] >= 0, "personality(0xffffffff) {}", out[7]);
    assert!(out[8] >= 0, "personality(0) {}", out[8]);
    assert_eq!(out[9], eperm, "personality(ADDR_NO_RANDOMIZE)");
    assert_eq!(out[10], eperm, "personality(1 << 32)");
    assert!(out[11] >= 0, "socket(AF_UNIX) {}", out[11]);
    assert_eq!(out[12], eperm, "socket(AF_VSOCK)");
    assert_eq!(out[13], eperm, "socket(AF_ALG)");
    assert_eq!(out[14], 1, "Seccomp: 2 in /proc/self/status");
    assert_eq!(out[15], 7, "fork");
    assert_eq!(out[16], eperm, "clone(CLONE_NEWNS)");
    assert_eq!(out[17], eperm, "reboot without CAP_SYS_BOOT");
    assert_eq!(out[18], 0, "chroot with Docker's CAP_SYS_CHROOT");
    assert_eq!(out[19], eperm, "settimeofday without CAP_SYS_TIME");
}

#[test]
fn cap_sys_admin_lifts_the_namespace_rules() {
    let out = in_child(&default_filter(DOCKER_CAPS | CAP_SYS_ADMIN), |out| unsafe {
        // A NULL clone_args of size 0: the kernel says EINVAL once the filter
        // lets clone3 through.
        out[0] = res(libc::syscall(libc::SYS_clone3, 0, 0));
        // Mount a filesystem type that does not exist: ENODEV (or EPERM
        // from the kernel when not root), no longer the filter's EPERM.
        out[1] = res(libc::syscall(
            libc::SYS_mount,
            c"none".as_ptr(),
            c"/".as_ptr(),
            c"strata-no-such-fs".as_ptr(),
            0,
            0,
        ));
        out[2] = libc::geteuid().into();
    })
    .unwrap();
    assert_eq!(out[0], -i64::from(libc::EINVAL), "clone3");
    if out[2] == 0 {
        assert_eq!(out[1], -i64::from(libc::ENODEV), "mount");
    }
}

#[test]
fn custom_profile_errno_ret() {
    let profile = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
            {"name":"dup","action":"SCMP_ACT_ERRNO","errnoRet":13,
             "args":[{"index":0,"value":100,"op":"SCMP_CMP_GE"}]}]}"#,
    )
    .unwrap();
    let filter = compile(&profile, &Context::new(DOCKER_CAPS)).unwrap();
    let out = in_child(&filter, |out| unsafe {
        let mut buf = [0u8; 256];
        out[0] = res(libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()));
        out[1] = res(libc::syscall(libc::SYS_getpid));
        out[2] = res(libc::syscall(libc::SYS_dup, 1000));
        out[3] = res(libc::syscall(libc::SYS_dup, 0));
        // 64-bit: 2^32 + 1 >= 100 even though its low half is 1.
        out[4] = res(libc::syscall(libc::SYS_dup, 0x1_0000_0001u64));
    })
    .unwrap();
    assert_eq!(out[0], -38, "getcwd");
    assert!(out[1] > 0);
    assert_eq!(out[2], -13, "dup(1000)");
    assert!(out[3] >= 0, "dup(0) {}", out[3]);
    assert_eq!(out[4], -13, "dup(1 << 32 | 1)");
}

#[test]
fn default_profile_runs_a_shell() {
    let filter = default_filter(DOCKER_CAPS);
    let sh = c"/bin/sh";
    let script = CString::new("ls / >/dev/null && grep -q '^Seccomp:.2$' /proc/self/status && exit 3").unwrap();
    let argv = [sh.as_ptr(), c"-c".as_ptr(), script.as_ptr(), std::ptr::null()];
    // SAFETY: fork/exec with everything prepared before the fork.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || filter.install().is_err() {
                libc::_exit(100);
            }
            libc::execv(sh.as_ptr(), argv.as_ptr());
            libc::_exit(101);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 3);
    }
}

/// i386 syscalls (`int 0x80`) are filtered with i386 numbers when the
/// profile lists x86, and kill the process when it does not.
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_syscalls() {
    fn int80(nr: u32) -> i64 {
        let mut ret = nr;
        // SAFETY: an i386 syscall without arguments; int 0x80 preserves
        // every register but eax.
        unsafe { std::arch::asm!("int 0x80", inout("eax") ret) };
        i64::from(ret as i32)
    }
    const I386_GETPID: u32 = 20;
    const I386_MOUNT: u32 = 21;
    if int80(I386_GETPID) < 0 {
        eprintln!("skipped: no IA32 emulation in this kernel");
        return;
    }
    let out = in_child(&default_filter(DOCKER_CAPS), |out| {
        out[0] = int80(I386_GETPID);
        out[1] = int80(I386_MOUNT);
    })
    .unwrap();
    assert!(out[0] > 0, "getpid {}", out[0]);
    assert_eq!(out[1], -i64::from(libc::EPERM), "mount");

    let native_only = Profile::from_json(br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let filter = compile(&native_only, &Context::new(0)).unwrap();
    let killed = in_child(&filter, |out| {
        out[0] = int80(I386_GETPID);
    });
    assert_eq!(killed.unwrap_err(), libc::SIGSYS);
}

#[test]
fn kill_process_action() {
    let p = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getppid"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#,
    )
    .unwrap();
    let filter = compile(&p, &Context::new(0)).unwrap();
    let r = in_child(&filter, |out| unsafe {
        out[0] = res(libc::syscall(libc::SYS_getppid));
    });
    assert_eq!(r.unwrap_err(), libc::SIGSYS);
}

#[test]
fn malformed_profiles_are_errors() {
    let e = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOWED"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "seccomp profile: syscalls[0] (\"read\").action: unknown action \"SCMP_ACT_ALLOWED\""
    );
    let e = Profile::from_json(br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":"zero"}]}]}"#)
        .unwrap_err();
    assert!(matches!(e, SeccompError::Json(_)), "{e}");
    assert!(e.to_string().contains("line 1 column"), "{e}");
    let e = Profile::from_json(b"not json").unwrap_err();
    assert!(e.to_string().starts_with("decoding seccomp profile failed"), "{e}");
    // Unknown syscall names are skipped, not errors.
    let p = Profile::from_json(br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["no_such_syscall","read"],"action":"SCMP_ACT_ALLOW"}]}"#)
        .unwrap();
    compile(&p, &Context::new(0)).unwrap();
}
