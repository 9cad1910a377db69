//! From a profile and a container's capabilities to a BPF program.

use std::collections::BTreeMap;

use crate::bpf::{self, BPF_JEQ, BPF_JGE, Builder, Label};
use crate::profile::{Action, Arg, Condition, FLAGS, Profile, Rule};
use crate::syscalls::{self, ArchDef, Native, X32_SYSCALL_BIT};
use crate::{Filter, SeccompError, caps, tables};

/// A kernel version as profiles' `minKernel` have it: `4.8` is kernel 4,
/// major revision 8 (minor revisions and suffixes do not count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    pub kernel: u32,
    pub major: u32,
}

impl KernelVersion {
    /// The running kernel's version (`uname -r`), or `None` when it cannot
    /// be read.
    pub fn host() -> Option<KernelVersion> {
        // SAFETY: utsname is plain bytes; uname fills it.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `uts` is a valid, writable utsname.
        if unsafe { libc::uname(&mut uts) } != 0 {
            return None;
        }
        let release: Vec<u8> = uts.release.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        let release = String::from_utf8_lossy(&release);
        let mut parts = release.splitn(3, |c: char| !c.is_ascii_digit());
        let kernel = parts.next()?.parse().ok()?;
        let major = parts.next()?.parse().ok()?;
        Some(KernelVersion { kernel, major })
    }
}

/// What rules are selected by: the container and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    /// The container's bounding capability set, a bit per capability number
    /// (`1 << 21` is `CAP_SYS_ADMIN`).
    pub capabilities: u64,
    /// The host kernel, for `minKernel`.
    pub kernel: KernelVersion,
}

impl Context {
    /// A context for a container with `capabilities` on this host's kernel
    /// (`0.0`, which no `minKernel` is below, when it cannot be read).
    pub fn new(capabilities: u64) -> Context {
        Context {
            capabilities,
            kernel: KernelVersion::host().unwrap_or_default(),
        }
    }
}

/// Compiles `profile` for a container in `ctx` into a filter for the native
/// architecture of this build (x86_64 or aarch64).
///
/// Rules are selected as moby does: `excludes` drops a rule when the native
/// architecture is among its arches, or any of its caps is in the set, or the
/// kernel is at least its minKernel; `includes` keeps it only when the native
/// architecture is among its arches, all its caps are in the set and the
/// kernel is at least its minKernel. The filter covers the native
/// architecture and the profile's `architectures` (or the native entry of
/// its `archMap`) that run beside it: x86 (i386) and x32 on x86_64, arm on
/// aarch64, each with its own syscall numbers; a syscall from any other
/// architecture kills the process. Syscall names an architecture lacks are
/// skipped.
///
/// For each syscall: an argument-free rule wins (the first one); otherwise
/// the rules with arguments are tried in profile order and the first that
/// holds decides; otherwise the default action applies, or `ENOSYS` for a
/// syscall numbered above all the selected rules name when the default
/// action is neither allow nor log (runc's stub for syscalls newer than the
/// profile).
pub fn compile(profile: &Profile, ctx: &Context) -> Result<Filter, SeccompError> {
    let native = syscalls::native().map_err(SeccompError::UnsupportedArch)?;
    compile_for(profile, ctx, native)
}

/// [`compile`] for a given native architecture (tests build aarch64 filters
/// on x86_64 and back).
pub(crate) fn compile_for(profile: &Profile, ctx: &Context, native: &'static Native) -> Result<Filter, SeccompError> {
    let rules: Vec<&Rule> = profile.syscalls.iter().filter(|r| selected(r, native, ctx)).collect();
    let default = bpf::ret_value(profile.default_action);

    // The architectures besides the native one, as runc hands them to
    // libseccomp.
    let listed: Vec<&str> = if profile.arch_map.is_empty() {
        profile.architectures.iter().map(String::as_str).collect()
    } else {
        profile
            .arch_map
            .iter()
            .filter(|m| m.architecture == native.arch.scmp)
            .flat_map(|m| std::iter::once(&m.architecture).chain(&m.sub_architectures))
            .map(String::as_str)
            .collect()
    };
    let subs: Vec<&ArchDef> = native.subs.iter().filter(|a| listed.contains(&a.scmp)).collect();

    let mut flags = 0;
    for f in &profile.flags {
        flags |= FLAGS.iter().find(|(n, _)| n == f).map_or(0, |(_, b)| *b);
    }

    let mut b = Builder::default();
    let kill = bpf::ret_value(Action::KillProcess);
    let stub = match profile.default_action {
        Action::Allow | Action::Log => default,
        _ => bpf::ret_value(Action::Errno(libc::ENOSYS as u16)),
    };
    let plan = |arch: &ArchDef| Plan::new(arch, &rules, default, stub);
    // Built backwards: the sub-architectures' blocks come last.
    let mut entries: Vec<(u32, Label)> = Vec::new();
    let mut x32 = None;
    for arch in subs.iter().rev() {
        let tree = plan(arch).emit(&mut b, arch.wide);
        if arch.nr_base == X32_SYSCALL_BIT {
            x32 = Some(tree);
        } else {
            b.fall_into(tree);
            entries.push((arch.audit, b.load(bpf::OFF_NR)));
        }
    }
    // Each block starts by loading the number and falls through into its tree.
    let tree = plan(&native.arch).emit(&mut b, native.arch.wide);
    if std::ptr::eq(native, &syscalls::X86_64) {
        // x32 syscalls carry x86_64's audit arch and __X32_SYSCALL_BIT.
        let x32 = x32.unwrap_or_else(|| b.ret(kill));
        b.jump(BPF_JGE, X32_SYSCALL_BIT, x32, tree);
    } else {
        b.fall_into(tree);
    }
    entries.push((native.arch.audit, b.load(bpf::OFF_NR)));
    let mut next = b.ret(kill);
    for (audit, label) in entries {
        next = b.jump(BPF_JEQ, audit, label, next);
    }
    b.load(bpf::OFF_ARCH);
    if b.len() > bpf::MAX_INSNS {
        return Err(SeccompError::TooLong(b.len()));
    }
    Ok(Filter {
        program: b.finish(),
        flags,
    })
}

/// Whether moby's generator keeps `rule` for this architecture and context.
fn selected(rule: &Rule, native: &Native, ctx: &Context) -> bool {
    let kernel_ok = |c: &Condition| c.min_kernel.is_none_or(|v| ctx.kernel >= v);
    let e = &rule.excludes;
    if e.arches.iter().any(|a| a == native.name)
        || e.caps.iter().any(|c| caps::has(ctx.capabilities, c))
        || (e.min_kernel.is_some() && kernel_ok(e))
    {
        return false;
    }
    let i = &rule.includes;
    (i.arches.is_empty() || i.arches.iter().any(|a| a == native.name))
        && i.caps.iter().all(|c| caps::has(ctx.capabilities, c))
        && kernel_ok(i)
}

/// What one syscall number gets.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Leaf {
    /// One action whatever the arguments.
    Ret(u32),
    /// Argument-conditional rules in order, then the default.
    Rules(Vec<(Vec<Arg>, u32)>),
}

/// The decisions for one architecture, by syscall number.
struct Plan {
    by_nr: BTreeMap<u32, Leaf>,
    /// The first number above everything the rules name.
    end: u32,
    base: u32,
    default: u32,
    stub: u32,
}

impl Plan {
    fn new(arch: &ArchDef, rules: &[&Rule], default: u32, stub: u32) -> Plan {
        let mut by_nr: BTreeMap<u32, Leaf> = BTreeMap::new();
        let mut end = arch.nr_base;
        for rule in rules {
            let action = bpf::ret_value(rule.action);
            // Two comparisons of one argument: each is a rule of its own
            // (runc's handling of such profiles).
            let mut seen = [0u8; 6];
            for a in &rule.args {
                seen[usize::from(a.index)] += 1;
            }
            let alternatives: Vec<Vec<Arg>> = if seen.iter().any(|&n| n > 1) {
                rule.args.iter().map(|a| vec![*a]).collect()
            } else {
                vec![rule.args.clone()]
            };
            for name in &rule.names {
                let Some(nr) = tables::lookup(arch.table, name) else {
                    continue;
                };
                let nr = nr + arch.nr_base;
                end = end.max(nr + 1);
                if action == default {
                    continue; // as runc: libseccomp refuses such rules
                }
                let leaf = by_nr.entry(nr).or_insert(Leaf::Rules(Vec::new()));
                match leaf {
                    // An argument-free rule already decided.
                    Leaf::Ret(_) => {}
                    Leaf::Rules(_) if rule.args.is_empty() => *leaf = Leaf::Ret(action),
                    Leaf::Rules(conds) => {
                        conds.extend(alternatives.iter().map(|args| (args.clone(), action)));
                    }
                }
            }
        }
        Plan {
            by_nr,
            end,
            base: arch.nr_base,
            default,
            // Nothing named on this architecture: nothing is "newer".
            stub: if end == arch.nr_base { default } else { stub },
        }
    }

    /// Ranges of syscall numbers (each from its start to the next one's)
    /// with what they get, neighbours with one action merged.
    fn segments(&self) -> Vec<(u32, Leaf)> {
        let mut segs: Vec<(u32, Leaf)> = Vec::new();
        let mut push = |lo: u32, leaf: Leaf| match (segs.last(), &leaf) {
            (Some((_, Leaf::Ret(prev))), Leaf::Ret(r)) if prev == r => {}
            _ => segs.push((lo, leaf)),
        };
        let mut cursor = self.base;
        for (&nr, leaf) in &self.by_nr {
            if nr > cursor {
                push(cursor, Leaf::Ret(self.default));
            }
            match leaf {
                Leaf::Rules(r) if r.is_empty() => push(nr, Leaf::Ret(self.default)),
                _ => push(nr, leaf.clone()),
            }
            cursor = nr + 1;
        }
        if cursor < self.end {
            push(cursor, Leaf::Ret(self.default));
        }
        push(self.end, Leaf::Ret(self.stub));
        segs
    }

    /// Emits the decision tree (the syscall number in the accumulator) and
    /// returns its start.
    fn emit(&self, b: &mut Builder, wide: bool) -> Label {
        tree(b, &self.segments(), self.default, wide)
    }
}

/// A binary search over the segments' starts.
fn tree(b: &mut Builder, segs: &[(u32, Leaf)], default: u32, wide: bool) -> Label {
    if let [(_, leaf)] = segs {
        return match leaf {
            Leaf::Ret(r) => b.ret(*r),
            Leaf::Rules(rules) => {
                let mut next = b.ret(default);
                for (args, action) in rules.iter().rev() {
                    let mut yes = b.ret(*action);
                    for a in args.iter().rev() {
                        yes = b.compare(a, wide, yes, next);
                    }
                    next = yes;
                }
                next
            }
        };
    }
    let mid = segs.len() / 2;
    let right = tree(b, &segs[mid..], default, wide);
    let left = tree(b, &segs[..mid], default, wide);
    b.jump(BPF_JGE, segs[mid].0, right, left)
}

#[cfg(test)]
mod tests;
