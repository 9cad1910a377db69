//! The architectures a filter is made for: the native one of this build and
//! the sub-architectures the kernel runs beside it.

use crate::tables;

/// One architecture as seccomp sees it: `seccomp_data.arch` and the syscall
/// numbers.
#[derive(Debug)]
pub(crate) struct ArchDef {
    /// The profile's name for it (`SCMP_ARCH_X86`).
    pub scmp: &'static str,
    /// `AUDIT_ARCH_*`, what `seccomp_data.arch` holds.
    pub audit: u32,
    pub table: &'static [(&'static str, u32)],
    /// Added to every number (x32's `__X32_SYSCALL_BIT`).
    pub nr_base: u32,
    /// Whether syscall arguments are 64-bit (compared on both halves) or
    /// 32-bit (only the low half counts, as libseccomp does).
    pub wide: bool,
}

/// The native architecture of this build with its sub-architectures.
#[derive(Debug)]
pub(crate) struct Native {
    /// The libseccomp/Go name rules' `includes.arches` compare with.
    pub name: &'static str,
    pub arch: ArchDef,
    pub subs: &'static [ArchDef],
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// `__X32_SYSCALL_BIT`: x32 syscalls come with x86_64's audit arch and this bit.
pub(crate) const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub(crate) static X86_64: Native = Native {
    name: "amd64",
    arch: ArchDef {
        scmp: "SCMP_ARCH_X86_64",
        audit: AUDIT_ARCH_X86_64,
        table: tables::x86_64::TABLE,
        nr_base: 0,
        wide: true,
    },
    subs: &[
        ArchDef {
            scmp: "SCMP_ARCH_X86",
            audit: AUDIT_ARCH_I386,
            table: tables::i386::TABLE,
            nr_base: 0,
            wide: false,
        },
        ArchDef {
            scmp: "SCMP_ARCH_X32",
            audit: AUDIT_ARCH_X86_64,
            table: tables::x32::TABLE,
            nr_base: X32_SYSCALL_BIT,
            wide: true,
        },
    ],
};

pub(crate) static AARCH64: Native = Native {
    name: "arm64",
    arch: ArchDef {
        scmp: "SCMP_ARCH_AARCH64",
        audit: AUDIT_ARCH_AARCH64,
        table: tables::aarch64::TABLE,
        nr_base: 0,
        wide: true,
    },
    subs: &[ArchDef {
        scmp: "SCMP_ARCH_ARM",
        audit: AUDIT_ARCH_ARM,
        table: tables::arm::TABLE,
        nr_base: 0,
        wide: false,
    }],
};

/// The architecture this crate was built for, or its name when strata has no
/// table for it.
pub(crate) fn native() -> Result<&'static Native, &'static str> {
    if cfg!(target_arch = "x86_64") && cfg!(target_pointer_width = "64") {
        Ok(&X86_64)
    } else if cfg!(target_arch = "aarch64") && cfg!(target_endian = "little") {
        Ok(&AARCH64)
    } else {
        Err(std::env::consts::ARCH)
    }
}
