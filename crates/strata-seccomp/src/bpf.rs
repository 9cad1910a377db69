//! Classic BPF generation for seccomp.
//!
//! The program is built backwards, from its last instruction to its first,
//! so that every jump target already has its place when the jump is made: a
//! conditional jump farther than 255 instructions goes through an
//! unconditional `ja` (32-bit offset) placed right after it.

use std::collections::HashMap;

use crate::profile::{Action, Arg, CmpOp};

const BPF_LD: u16 = 0x00;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_AND: u16 = 0x50;
const BPF_K: u16 = 0x00;
const BPF_JA: u16 = 0x00;
pub(crate) const BPF_JEQ: u16 = 0x10;
pub(crate) const BPF_JGT: u16 = 0x20;
pub(crate) const BPF_JGE: u16 = 0x30;

/// Offsets in `struct seccomp_data`.
pub(crate) const OFF_NR: u32 = 0;
pub(crate) const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

/// The kernel's `BPF_MAXINSNS`.
pub(crate) const MAX_INSNS: usize = 4096;

/// `SECCOMP_RET_*` value of an action.
pub(crate) fn ret_value(a: Action) -> u32 {
    match a {
        Action::KillThread => 0x0000_0000,
        Action::KillProcess => 0x8000_0000,
        Action::Trap => 0x0003_0000,
        Action::Errno(e) => 0x0005_0000 | u32::from(e),
        Action::Trace(d) => 0x7ff0_0000 | u32::from(d),
        Action::Log => 0x7ffc_0000,
        Action::Allow => 0x7fff_0000,
    }
}

/// A place in the program: the number of instructions from it to the end,
/// itself included (stable while the program grows at the front).
pub(crate) type Label = usize;

#[derive(Default)]
pub(crate) struct Builder {
    /// The program, last instruction first.
    rev: Vec<libc::sock_filter>,
    /// Where a `ret` of each value was last placed, for reuse nearby.
    rets: HashMap<u32, Label>,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl Builder {
    fn push(&mut self, i: libc::sock_filter) -> Label {
        self.rev.push(i);
        self.rev.len()
    }

    /// The distance from the instruction about to be placed to `target`.
    fn dist(&self, target: Label) -> usize {
        self.rev.len() - target
    }

    pub(crate) fn ret(&mut self, value: u32) -> Label {
        if let Some(&l) = self.rets.get(&value)
            && self.dist(l) < 128
        {
            return l;
        }
        let l = self.push(insn(BPF_RET | BPF_K, 0, 0, value));
        self.rets.insert(value, l);
        l
    }

    pub(crate) fn load(&mut self, offset: u32) -> Label {
        self.push(insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset))
    }

    fn and(&mut self, k: u32) -> Label {
        self.push(insn(BPF_ALU | BPF_AND | BPF_K, 0, 0, k))
    }

    fn ja(&mut self, target: Label) -> Label {
        let d = self.dist(target) as u32;
        self.push(insn(BPF_JMP | BPF_JA, 0, 0, d))
    }

    /// `if A <op> k goto t else goto f`.
    pub(crate) fn jump(&mut self, op: u16, k: u32, mut t: Label, mut f: Label) -> Label {
        loop {
            if self.dist(t) > 255 {
                t = self.ja(t);
            } else if self.dist(f) > 255 {
                f = self.ja(f);
            } else {
                break;
            }
        }
        let (jt, jf) = (self.dist(t) as u8, self.dist(f) as u8);
        self.push(insn(BPF_JMP | op | BPF_K, jt, jf, k))
    }

    /// Makes `target` the next instruction placed so far: a `ja` unless it
    /// already is. For code reached by falling through.
    pub(crate) fn fall_into(&mut self, target: Label) -> Label {
        if target == self.rev.len() {
            target
        } else {
            self.ja(target)
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rev.len()
    }

    pub(crate) fn finish(mut self) -> Vec<libc::sock_filter> {
        self.rev.reverse();
        self.rev
    }

    /// Code that goes to `yes` when `arg` holds and to `no` otherwise. On a
    /// 64-bit architecture both 32-bit halves are compared (high first, as
    /// unsigned 64-bit numbers); on a 32-bit one only the low half.
    pub(crate) fn compare(&mut self, arg: &Arg, wide: bool, yes: Label, no: Label) -> Label {
        // seccomp_data.args are u64 in native byte order.
        let lo_off = OFF_ARGS + 8 * u32::from(arg.index) + if cfg!(target_endian = "little") { 0 } else { 4 };
        let hi_off = OFF_ARGS + 8 * u32::from(arg.index) + if cfg!(target_endian = "little") { 4 } else { 0 };
        let (vh, vl) = ((arg.value >> 32) as u32, arg.value as u32);
        match arg.op {
            CmpOp::Eq => self.eq(lo_off, hi_off, vh, vl, wide, yes, no),
            CmpOp::Ne => self.eq(lo_off, hi_off, vh, vl, wide, no, yes),
            CmpOp::Gt => self.gt(BPF_JGT, lo_off, hi_off, vh, vl, wide, yes, no),
            CmpOp::Ge => self.gt(BPF_JGE, lo_off, hi_off, vh, vl, wide, yes, no),
            CmpOp::Le => self.gt(BPF_JGT, lo_off, hi_off, vh, vl, wide, no, yes),
            CmpOp::Lt => self.gt(BPF_JGE, lo_off, hi_off, vh, vl, wide, no, yes),
            CmpOp::MaskedEq => {
                let (mh, ml) = ((arg.value >> 32) as u32, arg.value as u32);
                let (dh, dl) = ((arg.value_two >> 32) as u32, arg.value_two as u32);
                // (x & 0) == d is decided without looking at x.
                let low = if ml == 0 {
                    if dl == 0 { yes } else { no }
                } else {
                    self.jump(BPF_JEQ, dl, yes, no);
                    if ml != u32::MAX {
                        self.and(ml);
                    }
                    self.load(lo_off)
                };
                if !wide {
                    return low;
                }
                if mh == 0 {
                    return if dh == 0 { low } else { no };
                }
                self.jump(BPF_JEQ, dh, low, no);
                if mh != u32::MAX {
                    self.and(mh);
                }
                self.load(hi_off)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn eq(&mut self, lo: u32, hi: u32, vh: u32, vl: u32, wide: bool, yes: Label, no: Label) -> Label {
        self.jump(BPF_JEQ, vl, yes, no);
        let low = self.load(lo);
        if !wide {
            return low;
        }
        self.jump(BPF_JEQ, vh, low, no);
        self.load(hi)
    }

    /// `>` (op `BPF_JGT`) or `>=` (op `BPF_JGE`): the high halves decide
    /// unless equal, then the low halves do.
    #[allow(clippy::too_many_arguments)]
    fn gt(&mut self, op: u16, lo: u32, hi: u32, vh: u32, vl: u32, wide: bool, yes: Label, no: Label) -> Label {
        self.jump(op, vl, yes, no);
        let low = self.load(lo);
        if !wide {
            return low;
        }
        let equal = self.jump(BPF_JEQ, vh, low, no);
        self.jump(BPF_JGT, vh, yes, equal);
        self.load(hi)
    }
}

/// A small interpreter of the programs made here, for tests.
#[cfg(test)]
pub(crate) fn run(prog: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u32; 16];
    data[0] = nr;
    data[1] = arch;
    for (i, a) in args.iter().enumerate() {
        data[4 + 2 * i] = *a as u32;
        data[5 + 2 * i] = (*a >> 32) as u32;
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => acc = data[i.k as usize / 4],
            c if c == BPF_ALU | BPF_AND | BPF_K => acc &= i.k,
            c if c == BPF_RET | BPF_K => return i.k,
            c if c == BPF_JMP | BPF_JA => pc += i.k as usize,
            c => {
                let hit = match c & 0xf0 {
                    BPF_JEQ => acc == i.k,
                    BPF_JGT => acc > i.k,
                    BPF_JGE => acc >= i.k,
                    _ => panic!("unexpected opcode {c:#x}"),
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YES: u32 = 1;
    const NO: u32 = 2;

    fn check(op: CmpOp, value: u64, value_two: u64, wide: bool, x: u64) -> bool {
        let mut b = Builder::default();
        let no = b.ret(NO);
        let yes = b.ret(YES);
        let arg = Arg {
            index: 2,
            value,
            value_two,
            op,
        };
        let start = b.compare(&arg, wide, yes, no);
        b.fall_into(start);
        let prog = b.finish();
        match run(&prog, 0, 0, [0, 0, x, 0, 0, 0]) {
            YES => true,
            NO => false,
            r => panic!("ret {r}"),
        }
    }

    #[test]
    fn comparisons_are_unsigned_64_bit() {
        let vals = [
            0u64,
            1,
            7,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0007,
            0x8000_0000_0000_0000,
            u64::MAX,
        ];
        for &v in &vals {
            for &x in &vals {
                assert_eq!(check(CmpOp::Eq, v, 0, true, x), x == v, "{x} == {v}");
                assert_eq!(check(CmpOp::Ne, v, 0, true, x), x != v, "{x} != {v}");
                assert_eq!(check(CmpOp::Lt, v, 0, true, x), x < v, "{x} < {v}");
                assert_eq!(check(CmpOp::Le, v, 0, true, x), x <= v, "{x} <= {v}");
                assert_eq!(check(CmpOp::Gt, v, 0, true, x), x > v, "{x} > {v}");
                assert_eq!(check(CmpOp::Ge, v, 0, true, x), x >= v, "{x} >= {v}");
                for &d in &vals {
                    assert_eq!(check(CmpOp::MaskedEq, v, d, true, x), x & v == d, "{x} & {v} == {d}");
                }
                // 32-bit architectures: only the low halves count.
                let (v32, x32) = (v as u32, x as u32);
                assert_eq!(check(CmpOp::Eq, v, 0, false, x), x32 == v32);
                assert_eq!(check(CmpOp::Lt, v, 0, false, x), x32 < v32);
                assert_eq!(check(CmpOp::Gt, v, 0, false, x), x32 > v32);
            }
        }
    }

    #[test]
    fn far_jumps_go_through_ja() {
        let mut b = Builder::default();
        let far = b.ret(YES);
        for i in 0..600 {
            b.load(i % 64);
        }
        let near = b.ret(NO);
        b.jump(BPF_JEQ, 5, far, near);
        b.load(OFF_NR);
        let prog = b.finish();
        assert_eq!(run(&prog, 5, 0, [0; 6]), YES);
        assert_eq!(run(&prog, 6, 0, [0; 6]), NO);
    }
}
