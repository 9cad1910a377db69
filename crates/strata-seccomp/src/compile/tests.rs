use super::*;
use crate::bpf::run;
use crate::syscalls::{AARCH64, X86_64};

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;
const ENOSYS: u32 = 0x0005_0026;
const KILL_PROCESS: u32 = 0x8000_0000;
const AUDIT_X86_64: u32 = 0xC000_003E;
const AUDIT_I386: u32 = 0x4000_0003;
const AUDIT_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARM: u32 = 0x4000_0028;
/// Docker's default capability set.
const DOCKER_CAPS: u64 = 0xa804_25fb;
const CAP_SYS_ADMIN: u64 = 1 << 21;

fn ctx(capabilities: u64) -> Context {
    Context {
        capabilities,
        kernel: KernelVersion { kernel: 6, major: 1 },
    }
}

fn filter(p: &Profile, caps: u64, native: &'static Native) -> Vec<libc::sock_filter> {
    compile_for(p, &ctx(caps), native).unwrap().program
}

fn nr(t: &[(&str, u32)], name: &str) -> u32 {
    tables::lookup(t, name).unwrap()
}

#[test]
fn docker_default_on_x86_64() {
    let prog = filter(&Profile::docker_default(), DOCKER_CAPS, &X86_64);
    assert!(prog.len() < 600, "{} instructions", prog.len());
    let t = tables::x86_64::TABLE;
    let call = |name: &str, args: [u64; 6]| run(&prog, nr(t, name), AUDIT_X86_64, args);
    for name in [
        "read",
        "write",
        "exit_group",
        "openat",
        "arch_prctl",
        "ptrace",
        "getcwd",
    ] {
        assert_eq!(call(name, [0; 6]), ALLOW, "{name}");
    }
    for name in ["mount", "swapon", "keyctl", "unshare", "reboot", "bpf", "add_key"] {
        assert_eq!(call(name, [0; 6]), EPERM, "{name}");
    }
    assert_eq!(call("clone3", [0; 6]), ENOSYS);
    let sigchld = 17;
    assert_eq!(call("clone", [sigchld, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(call("clone", [0x003d_0f00, 0, 0, 0, 0, 0]), ALLOW); // pthreads
    assert_eq!(call("clone", [0x0002_0000 | sigchld, 0, 0, 0, 0, 0]), EPERM);
    assert_eq!(call("clone", [0x4000_0000, 0, 0, 0, 0, 0]), EPERM);
    for p in [0, 8, 0x20000, 0x20008, 0xffff_ffff] {
        assert_eq!(call("personality", [p, 0, 0, 0, 0, 0]), ALLOW, "{p:#x}");
    }
    for p in [1, 0x0040_0000, 0x1_0000_0000, u64::MAX] {
        assert_eq!(call("personality", [p, 0, 0, 0, 0, 0]), EPERM, "{p:#x}");
    }
    for (family, want) in [(1, ALLOW), (2, ALLOW), (10, ALLOW), (16, ALLOW), (37, ALLOW)]
        .into_iter()
        .chain([(38, EPERM), (39, ALLOW), (40, EPERM), (41, ALLOW), (44, ALLOW)])
    {
        assert_eq!(call("socket", [family, 1, 0, 0, 0, 0]), want, "AF {family}");
    }
    // Unassigned numbers inside the table get the default action; numbers
    // above everything the profile names get ENOSYS.
    assert_eq!(run(&prog, 400, AUDIT_X86_64, [0; 6]), EPERM);
    assert_eq!(run(&prog, 467, AUDIT_X86_64, [0; 6]), ENOSYS);
    assert_eq!(run(&prog, 0x3fff_ffff, AUDIT_X86_64, [0; 6]), ENOSYS);
    // x32 and i386 are in the profile's archMap for x86_64.
    let x32 = |name: &str| run(&prog, nr(tables::x32::TABLE, name) | 0x4000_0000, AUDIT_X86_64, [0; 6]);
    assert_eq!(x32("read"), ALLOW);
    assert_eq!(x32("execve"), ALLOW);
    assert_eq!(x32("mount"), EPERM);
    assert_eq!(run(&prog, 0x4000_0000 | 600, AUDIT_X86_64, [0; 6]), ENOSYS);
    let i386 = |name: &str, a0: u64| run(&prog, nr(tables::i386::TABLE, name), AUDIT_I386, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(i386("getpid", 0), ALLOW);
    assert_eq!(i386("socketcall", 0), ALLOW);
    assert_eq!(i386("mount", 0), EPERM);
    assert_eq!(i386("modify_ldt", 0), ALLOW);
    // 32-bit arguments: the high half is not looked at.
    assert_eq!(i386("personality", 0x1_0000_0008), ALLOW);
    assert_eq!(i386("personality", 4), EPERM);
    // Any other architecture dies.
    assert_eq!(run(&prog, 0, AUDIT_AARCH64, [0; 6]), KILL_PROCESS);
    assert_eq!(run(&prog, 0, 0, [0; 6]), KILL_PROCESS);
}

#[test]
fn capabilities_select_rules() {
    let p = Profile::docker_default();
    let t = tables::x86_64::TABLE;
    let admin = filter(&p, DOCKER_CAPS | CAP_SYS_ADMIN, &X86_64);
    let call =
        |prog: &[libc::sock_filter], name: &str, a0: u64| run(prog, nr(t, name), AUDIT_X86_64, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(call(&admin, "mount", 0), ALLOW);
    assert_eq!(call(&admin, "clone3", 0), ALLOW);
    assert_eq!(call(&admin, "clone", 0x0002_0000), ALLOW);
    assert_eq!(call(&admin, "reboot", 0), EPERM);
    let none = filter(&p, 0, &X86_64);
    assert_eq!(call(&none, "chroot", 0), EPERM);
    assert_eq!(call(&none, "ptrace", 0), ALLOW); // minKernel 4.8
    assert_eq!(call(&none, "kcmp", 0), EPERM);
    let all = filter(&p, u64::MAX, &X86_64);
    for name in [
        "chroot",
        "reboot",
        "kcmp",
        "init_module",
        "acct",
        "iopl",
        "settimeofday",
        "vhangup",
        "mbind",
        "syslog",
        "bpf",
        "perf_event_open",
        "open_by_handle_at",
    ] {
        assert_eq!(call(&all, name, 0), ALLOW, "{name}");
        assert_eq!(call(&none, name, 0), EPERM, "{name}");
    }
    // An old kernel: the minKernel 4.8 rule is left out.
    let old = Context {
        capabilities: 0,
        kernel: KernelVersion { kernel: 4, major: 4 },
    };
    let prog = compile_for(&p, &old, &X86_64).unwrap().program;
    assert_eq!(call(&prog, "ptrace", 0), EPERM);
}

#[test]
fn docker_default_on_aarch64() {
    let prog = filter(&Profile::docker_default(), DOCKER_CAPS, &AARCH64);
    let t = tables::aarch64::TABLE;
    let call = |name: &str, a0: u64| run(&prog, nr(t, name), AUDIT_AARCH64, [a0, 0, 0, 0, 0, 0]);
    assert_eq!(call("openat", 0), ALLOW);
    assert_eq!(call("mount", 0), EPERM);
    assert_eq!(call("clone3", 0), ENOSYS);
    assert_eq!(call("clone", 0x0002_0000), EPERM);
    assert_eq!(call("clone", 17), ALLOW);
    let arm = |name: &str| run(&prog, nr(tables::arm::TABLE, name), AUDIT_ARM, [0; 6]);
    assert_eq!(arm("read"), ALLOW);
    assert_eq!(arm("set_tls"), ALLOW);
    assert_eq!(arm("mount"), EPERM);
    assert_eq!(run(&prog, 0, AUDIT_X86_64, [0; 6]), KILL_PROCESS);
    // aarch64 has no x32-style bit: large numbers are just unknown.
    assert_eq!(run(&prog, 0x4000_0000, AUDIT_AARCH64, [0; 6]), ENOSYS);
}

#[test]
fn default_allow_list_resolves_on_x86_64() {
    // What the x86_64 ABI lacks: 32-bit, multiplexed and other arches' calls.
    let absent: &[&str] = &[
        "_llseek",
        "_newselect",
        "chown32",
        "clock_adjtime64",
        "clock_getres_time64",
        "clock_gettime64",
        "clock_nanosleep_time64",
        "fadvise64_64",
        "fchown32",
        "fcntl64",
        "fstat64",
        "fstatat64",
        "fstatfs64",
        "ftruncate64",
        "futex_time64",
        "getegid32",
        "geteuid32",
        "getgid32",
        "getgroups32",
        "getresgid32",
        "getresuid32",
        "getuid32",
        "io_pgetevents_time64",
        "ipc",
        "lchown32",
        "lstat64",
        "mmap2",
        "mq_timedreceive_time64",
        "mq_timedsend_time64",
        "ppoll_time64",
        "pselect6_time64",
        "recv",
        "recvmmsg_time64",
        "riscv_hwprobe",
        "rt_sigtimedwait_time64",
        "sched_rr_get_interval_time64",
        "semtimedop_time64",
        "send",
        "sendfile64",
        "setfsgid32",
        "setfsuid32",
        "setgid32",
        "setgroups32",
        "setregid32",
        "setresgid32",
        "setresuid32",
        "setreuid32",
        "setuid32",
        "sigprocmask",
        "sigreturn",
        "socketcall",
        "stat64",
        "statfs64",
        "timer_gettime64",
        "timer_settime64",
        "timerfd_gettime64",
        "timerfd_settime64",
        "truncate64",
        "ugetrlimit",
        "utimensat_time64",
        "waitpid",
    ];
    let p = Profile::docker_default();
    let mut missing: Vec<&str> = p.syscalls[0]
        .names
        .iter()
        .map(String::as_str)
        .filter(|n| tables::lookup(tables::x86_64::TABLE, n).is_none())
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, absent);
    // And every other name of the profile is known to some table.
    for r in &p.syscalls {
        for n in &r.names {
            let known = [
                tables::x86_64::TABLE,
                tables::i386::TABLE,
                tables::x32::TABLE,
                tables::aarch64::TABLE,
                tables::arm::TABLE,
            ]
            .iter()
            .any(|t| tables::lookup(t, n).is_some());
            let elsewhere = [
                "riscv_hwprobe",
                "riscv_flush_icache",
                "swapcontext",
                "s390_pci_mmio_read",
                "s390_pci_mmio_write",
                "s390_runtime_instr",
                "sync_file_range2",
                "epoll_ctl_old",
                "epoll_wait_old",
            ];
            assert!(known || elsewhere.contains(&n.as_str()), "{n}");
        }
    }
}

#[test]
fn rule_semantics() {
    let p = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
            {"names":["dup"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":5,"op":"SCMP_CMP_EQ"}]},
            {"names":["dup"],"action":"SCMP_ACT_KILL_PROCESS"},
            {"names":["dup2"],"action":"SCMP_ACT_ALLOW"},
            {"names":["dup3"],"action":"SCMP_ACT_ERRNO","errnoRet":9,"args":[
                {"index":0,"value":3,"op":"SCMP_CMP_EQ"},{"index":0,"value":4,"op":"SCMP_CMP_EQ"}]},
            {"names":["lseek"],"action":"SCMP_ACT_TRAP","args":[
                {"index":0,"value":3,"op":"SCMP_CMP_EQ"},{"index":2,"value":1,"op":"SCMP_CMP_NE"}]},
            {"names":["no_such_call"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let prog = filter(&p, 0, &X86_64);
    let t = tables::x86_64::TABLE;
    let call = |name: &str, args: [u64; 6]| run(&prog, nr(t, name), AUDIT_X86_64, args);
    assert_eq!(call("getcwd", [0; 6]), 0x0005_0026);
    // The argument-free rule wins over the conditional one.
    assert_eq!(call("dup", [5, 0, 0, 0, 0, 0]), KILL_PROCESS);
    assert_eq!(call("dup2", [0; 6]), ALLOW);
    // Two comparisons of one argument: either holds (runc).
    assert_eq!(call("dup3", [3, 0, 0, 0, 0, 0]), 0x0005_0009);
    assert_eq!(call("dup3", [4, 0, 0, 0, 0, 0]), 0x0005_0009);
    assert_eq!(call("dup3", [5, 0, 0, 0, 0, 0]), ALLOW);
    // Comparisons of different arguments: all must hold.
    assert_eq!(call("lseek", [3, 0, 0, 0, 0, 0]), 0x0003_0000);
    assert_eq!(call("lseek", [3, 0, 1, 0, 0, 0]), ALLOW);
    assert_eq!(call("lseek", [4, 0, 0, 0, 0, 0]), ALLOW);
    // Default allow: no ENOSYS stub; no architectures listed: x32 and i386 die.
    assert_eq!(run(&prog, 1000, AUDIT_X86_64, [0; 6]), ALLOW);
    assert_eq!(run(&prog, 0x4000_0000, AUDIT_X86_64, [0; 6]), KILL_PROCESS);
    assert_eq!(run(&prog, 20, AUDIT_I386, [0; 6]), KILL_PROCESS);
}

#[test]
fn architectures_and_flags() {
    let p = Profile::from_json(
        br#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86","SCMP_ARCH_AARCH64"],
            "flags":["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let f = compile_for(&p, &ctx(0), &X86_64).unwrap();
    assert_eq!(f.flags(), 2);
    assert_eq!(run(&f.program, 39, AUDIT_X86_64, [0; 6]), ALLOW);
    assert_eq!(run(&f.program, 20, AUDIT_I386, [0; 6]), ALLOW);
    assert_eq!(run(&f.program, 0x4000_0027, AUDIT_X86_64, [0; 6]), KILL_PROCESS);
    assert_eq!(f.to_bytes().len(), f.len() * 8);
}

#[test]
fn large_profiles_stay_correct() {
    // Every x86_64 syscall with its own errno: a deep tree, far jumps.
    let rules: Vec<String> = tables::x86_64::TABLE
        .iter()
        .map(|(n, nr)| {
            format!(
                r#"{{"names":["{n}"],"action":"SCMP_ACT_ERRNO","errnoRet":{},"args":[{{"index":1,"value":{nr},"op":"SCMP_CMP_GE"}}]}}"#,
                nr + 1
            )
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{}]}}"#,
        rules.join(",")
    );
    let p = Profile::from_json(json.as_bytes()).unwrap();
    let prog = filter(&p, 0, &X86_64);
    assert!(prog.len() > 256);
    for (_, nr) in tables::x86_64::TABLE.iter().filter(|(_, nr)| *nr > 0) {
        assert_eq!(
            run(&prog, *nr, AUDIT_X86_64, [0, u64::from(*nr), 0, 0, 0, 0]),
            0x0005_0000 | (nr + 1)
        );
        assert_eq!(
            run(&prog, *nr, AUDIT_X86_64, [0, u64::from(*nr) - 1, 0, 0, 0, 0]),
            ALLOW
        );
    }
}
