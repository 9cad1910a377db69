//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program
//! assembled by hand from the allow rules, loaded with `bpf(BPF_PROG_LOAD)`
//! and attached to a cgroup directory with `bpf(BPF_PROG_ATTACH,
//! BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)`. Raw `syscall(SYS_bpf)`, no libbpf.
//!
//! The program gets a `struct bpf_cgroup_dev_ctx { u32 access_type; u32
//! major; u32 minor; }` where `access_type` is `(access << 16) | type`, and
//! returns 1 to allow, 0 to deny (the kernel then fails with EPERM). The
//! shape follows runc's generator: the context is unpacked once into r2..r5,
//! then one block per rule jumps to the next block on the first field that
//! does not match and returns 1 at its end; after the last block the program
//! returns 0. Rules only allow, so their order does not matter.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use crate::{CgroupError, DeviceKind, DeviceRule};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

// `bpf_cgroup_dev_ctx` values.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61; // dst = *(u32 *)(src + off)
const ALU_AND_K: u8 = 0x54; // dst32 &= imm
const ALU_RSH_K: u8 = 0x74; // dst32 >>= imm
const ALU_MOV_K: u8 = 0xb4; // dst32 = imm
const ALU_MOV_X: u8 = 0xbc; // dst32 = src32
const JMP_JNE_K: u8 = 0x55; // if dst != imm goto pc + 1 + off
const JMP_JNE_X: u8 = 0x5d; // if dst != src goto pc + 1 + off
const JMP_EXIT: u8 = 0x95; // return r0

// Registers: r1 is the context on entry (then scratch), r0 the result.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2; // device type
const R3: u8 = 3; // requested access
const R4: u8 = 4; // major
const R5: u8 = 5; // minor

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg and src_reg, four bits each (dst in the low nibble on
    /// little-endian targets, as the C bit-field is laid out there).
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    #[cfg(target_endian = "little")]
    let regs = (src << 4) | dst;
    #[cfg(target_endian = "big")]
    let regs = (dst << 4) | src;
    Insn { code, regs, off, imm }
}

const fn exit_with(value: i32) -> [Insn; 2] {
    [insn(ALU_MOV_K, R0, 0, 0, value), insn(JMP_EXIT, 0, 0, 0, 0)]
}

/// The device filter for `rules`: allows what some rule allows, denies the
/// rest. A list with an allow-all rule gives a program that allows everything.
pub fn device_program(rules: &[DeviceRule]) -> Vec<Insn> {
    if rules.iter().any(DeviceRule::is_allow_all) {
        return exit_with(1).to_vec();
    }
    let mut prog = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),     // r2 = ctx->access_type
        insn(ALU_AND_K, R2, 0, 0, 0xffff), // r2 &= 0xffff: type
        insn(LDX_MEM_W, R3, R1, 0, 0),     // r3 = ctx->access_type
        insn(ALU_RSH_K, R3, 0, 0, 16),     // r3 >>= 16: access
        insn(LDX_MEM_W, R4, R1, 4, 0),     // r4 = ctx->major
        insn(LDX_MEM_W, R5, R1, 8, 0),     // r5 = ctx->minor
    ];
    for rule in rules.iter().filter(|r| !r.is_empty()) {
        // Each check is a jump to the end of this rule's block, patched below.
        let mut block: Vec<Insn> = Vec::new();
        match rule.kind {
            DeviceKind::Char => block.push(insn(JMP_JNE_K, R2, 0, 0, DEV_CHAR)),
            DeviceKind::Block => block.push(insn(JMP_JNE_K, R2, 0, 0, DEV_BLOCK)),
            DeviceKind::All => {}
        }
        let allowed = (if rule.read { ACC_READ } else { 0 })
            | (if rule.write { ACC_WRITE } else { 0 })
            | (if rule.mknod { ACC_MKNOD } else { 0 });
        if allowed != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // Requested access must be a subset: (r3 & allowed) == r3.
            block.push(insn(ALU_MOV_X, R1, R3, 0, 0));
            block.push(insn(ALU_AND_K, R1, 0, 0, allowed));
            block.push(insn(JMP_JNE_X, R1, R3, 0, 0));
        }
        // Device numbers fit in 12 (major) and 20 (minor) bits; a number too
        // big for the immediate sign-extends and so never matches, as no
        // device has it.
        if let Some(major) = rule.major {
            block.push(insn(JMP_JNE_K, R4, 0, 0, major as i32));
        }
        if let Some(minor) = rule.minor {
            block.push(insn(JMP_JNE_K, R5, 0, 0, minor as i32));
        }
        block.extend(exit_with(1));
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        prog.extend(block);
    }
    prog.extend(exit_with(0));
    prog
}

/// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH, up to `replace_bpf_fd`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, fully initialised bpf_attr prefix of the
    // size passed; the kernel zero-extends what it knows beyond it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Loads the device filter for `rules`; the returned fd holds the program.
pub fn load_device_program(rules: &[DeviceRule]) -> Result<OwnedFd, CgroupError> {
    let prog = device_program(rules);
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..14].copy_from_slice(b"strata_devices");
    let load = |log: Option<&mut Vec<u8>>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: prog.len() as u32,
            insns: prog.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            ..Default::default()
        };
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        sys_bpf(BPF_PROG_LOAD, &mut attr)
    };
    let fd = match load(None) {
        Ok(fd) => fd,
        Err(first) => {
            // Once more with the verifier's log, for the error message.
            let mut log = vec![0u8; 64 * 1024];
            match load(Some(&mut log)) {
                Ok(fd) => fd,
                Err(_) => {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
                    return Err(CgroupError::BpfLoad {
                        source: first,
                        log: if text.is_empty() {
                            String::new()
                        } else {
                            format!("\n{text}")
                        },
                    });
                }
            }
        }
    };
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches `prog` to the cgroup directory `cgroup` with BPF_F_ALLOW_MULTI
/// (ancestors' filters keep running too). The attachment lasts as long as
/// the cgroup; `prog` may be closed afterwards.
pub(crate) fn attach_device_program(cgroup: impl AsFd, prog: impl AsFd) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_fd().as_raw_fd() as u32,
        attach_bpf_fd: prog.as_fd().as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::default_device_rules;

    #[test]
    fn allow_all_is_two_insns() {
        let p = device_program(&[DeviceRule::allow_all(), default_device_rules()[0]]);
        assert_eq!(p, exit_with(1));
    }

    #[test]
    fn jumps_land_on_next_block() {
        let rules = default_device_rules();
        let p = device_program(&rules);
        // 6 prologue + 9 rules * (type, major, [minor], mov, exit) + 2.
        assert_eq!(p.len(), 6 + 8 * 5 + 4 + 2);
        for (pc, ins) in p.iter().enumerate() {
            if ins.code == JMP_JNE_K || ins.code == JMP_JNE_X {
                let target = pc + 1 + ins.off as usize;
                // A block starts with a type check, or is the final deny.
                let t = p[target];
                assert!(
                    (t.code == JMP_JNE_K && t.regs & 0xf == R2) || (t == exit_with(0)[0] && target == p.len() - 2),
                    "jump at {pc} lands on {t:?}"
                );
            }
        }
    }

    #[test]
    fn partial_access_checks_subset() {
        let r = DeviceRule::new(DeviceKind::Block, Some(7), Some(0), "r").unwrap();
        let p = device_program(&[r]);
        assert!(p.contains(&insn(ALU_AND_K, R1, 0, 0, ACC_READ)));
        assert!(p.contains(&insn(JMP_JNE_X, R1, R3, 4, 0)));
    }
}
