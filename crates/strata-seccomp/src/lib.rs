//! Docker-compatible seccomp for strata: this crate owns reading seccomp
//! profiles in Docker's JSON format ([`Profile`]), Docker's default profile
//! ([`Profile::docker_default`]), compiling a profile for one container's
//! capabilities into a classic BPF program ([`compile`]) and installing it
//! ([`Filter::install`]).
//!
//! It must never decide policy (which profile a container gets, whether
//! `--privileged` disables seccomp: the runtime does), never touch the
//! process's capabilities or `no_new_privs` itself, and never allocate or
//! take locks in [`Filter::install`], which runs in a forked child.
//!
//! ```no_run
//! use strata_seccomp::{Context, Profile, compile};
//! let profile = Profile::docker_default();
//! let filter = compile(&profile, &Context::new(0xa80425fb)).unwrap();
//! // ... fork; in the child, after prctl(PR_SET_NO_NEW_PRIVS, 1):
//! filter.install().unwrap();
//! ```
//!
//! # Semantics
//!
//! Rules are selected as moby's `profiles/seccomp` package does (see
//! [`compile`]); the selected rules are then turned into a filter with the
//! semantics runc gets from libseccomp: the native architecture is always
//! filtered, the profile's architectures add sub-filters (on x86_64: x86 and
//! x32; on aarch64: arm), any other architecture kills the process, rules
//! whose action is the default action are dropped, an argument-free rule for a
//! syscall overrides that syscall's conditional rules, and a syscall numbered
//! above every syscall the selected rules name gets `ENOSYS` (runc's stub, so
//! that libc falls back from syscalls newer than the profile).

mod bpf;
mod caps;
mod compile;
mod default_profile;
mod error;
mod profile;
mod syscalls;
mod tables;

use std::io;

pub use caps::CAPABILITY_NAMES;
pub use compile::{Context, KernelVersion, compile};
pub use error::SeccompError;
pub use profile::{Action, ArchMapEntry, Arg, CmpOp, Condition, Profile, Rule};

/// The largest profile document [`Profile::from_json`] reads (4 MiB; moby's
/// default profile is about 20 KiB).
pub const MAX_PROFILE_SIZE: usize = 4 << 20;

/// A compiled seccomp filter: a classic BPF program for
/// `seccomp(SECCOMP_SET_MODE_FILTER)`, made by [`compile`].
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_uint,
}

impl Filter {
    /// Installs the filter on the calling thread (and, with the profile flag
    /// `SECCOMP_FILTER_FLAG_TSYNC`, on all its threads):
    /// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog)`.
    ///
    /// The kernel accepts this only from a thread with `no_new_privs` set
    /// (`prctl(PR_SET_NO_NEW_PRIVS, 1)`) or with `CAP_SYS_ADMIN` in its user
    /// namespace; otherwise it fails with `EACCES`. With TSYNC, a thread that
    /// cannot take the filter makes it fail with `EBUSY`. A filter cannot be removed:
    /// it applies to the process and to everything it executes or forks.
    ///
    /// Async-signal-safe: it only makes the system call, without allocating,
    /// so it may run in a child between `fork` and `exec`.
    pub fn install(&self) -> io::Result<()> {
        let prog = libc::sock_fprog {
            // compile() refuses programs longer than BPF_MAXINSNS (4096).
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `self.program`, alive for the whole call;
        // the kernel copies the program and keeps no pointer into it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match r {
            0 => Ok(()),
            // With TSYNC, the id of a thread that could not be synchronised.
            r if r > 0 => Err(io::Error::from_raw_os_error(libc::EBUSY)),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// The number of BPF instructions (at most 4096).
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Never true: every filter ends in a return.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits [`Filter::install`] passes.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The program in the kernel's `struct sock_filter` layout (8 bytes an
    /// instruction, native endian), e.g. to save it or to disassemble it with
    /// `bpf_dbg`/`seccomp-tools`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.program.len() * 8);
        for i in &self.program {
            out.extend_from_slice(&i.code.to_ne_bytes());
            out.push(i.jt);
            out.push(i.jf);
            out.extend_from_slice(&i.k.to_ne_bytes());
        }
        out
    }
}
