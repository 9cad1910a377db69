//! Docker's seccomp profile format (`docker run --security-opt seccomp=FILE`):
//! the types and the JSON reader.

use serde::Deserialize;

use crate::SeccompError;
use crate::compile::KernelVersion;

/// A seccomp profile in Docker's JSON format: moby's `seccomp.Seccomp`, the
/// runtime-spec's `LinuxSeccomp` with `archMap` and conditional rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `defaultAction` (with `defaultErrnoRet`): what a syscall no rule
    /// matches gets.
    pub default_action: Action,
    /// `architectures`: `SCMP_ARCH_*` names filtered besides the native one.
    pub architectures: Vec<String>,
    /// `archMap`: per native architecture, the sub-architectures to filter
    /// (only the entry of the native architecture is used).
    pub arch_map: Vec<ArchMapEntry>,
    /// `flags`: `SECCOMP_FILTER_FLAG_*` names passed to `seccomp(2)`.
    pub flags: Vec<String>,
    /// `syscalls`: the rules, in order.
    pub syscalls: Vec<Rule>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchMapEntry {
    /// `architecture`, e.g. `SCMP_ARCH_X86_64`.
    pub architecture: String,
    /// `subArchitectures`, e.g. `SCMP_ARCH_X86`, `SCMP_ARCH_X32`.
    pub sub_architectures: Vec<String>,
}

/// What a syscall gets (`SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `SCMP_ACT_ALLOW`.
    Allow,
    /// `SCMP_ACT_ERRNO` with `errnoRet` (`EPERM` when absent): the syscall
    /// fails with this errno without running.
    Errno(u16),
    /// `SCMP_ACT_KILL`, `SCMP_ACT_KILL_THREAD`: the thread dies (SIGSYS).
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`: the process dies (SIGSYS, core dump).
    KillProcess,
    /// `SCMP_ACT_TRAP`: SIGSYS is delivered.
    Trap,
    /// `SCMP_ACT_TRACE` with `errnoRet` as the message (`EPERM` when
    /// absent): a ptrace tracer is notified; without one, `ENOSYS`.
    Trace(u16),
    /// `SCMP_ACT_LOG`: allowed and logged.
    Log,
}

/// One rule of `syscalls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `names` (or the older single `name`). Names the architecture lacks are
    /// skipped, as libseccomp does.
    pub names: Vec<String>,
    pub action: Action,
    /// `args`: all must hold (when two compare the same argument, each is a
    /// rule of its own instead, as runc does).
    pub args: Vec<Arg>,
    /// `includes`: the rule applies only when all of these hold.
    pub includes: Condition,
    /// `excludes`: the rule does not apply when any of these holds.
    pub excludes: Condition,
}

/// One argument comparison: `args[index] OP value` (`(args[index] & value)
/// == valueTwo` for `SCMP_CMP_MASKED_EQ`), unsigned, on 64 bits (32 on a
/// 32-bit architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arg {
    /// 0 to 5.
    pub index: u8,
    pub value: u64,
    /// `valueTwo`: the expected value after masking, for `MaskedEq` only.
    pub value_two: u64,
    pub op: CmpOp,
}

/// `SCMP_CMP_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    MaskedEq,
}

/// `includes` / `excludes` of a rule. An empty list does not take part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    /// Capability names (`CAP_SYS_ADMIN`), matched against the container's
    /// bounding set; includes need all of them, excludes any.
    pub caps: Vec<String>,
    /// libseccomp architecture names (`amd64`, `arm64`, `x86`, `x32`, ...),
    /// matched against the native architecture only, as moby does.
    pub arches: Vec<String>,
    /// `minKernel` (`"4.8"`): the host kernel is at least this version.
    pub min_kernel: Option<KernelVersion>,
}

/// The `SCMP_ARCH_*` names a profile may list.
const ARCHES: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// `SECCOMP_FILTER_FLAG_*` names and bits. `WAIT_KILLABLE_RECV` only matters
/// with a notification listener, which strata never asks for: it is accepted
/// and dropped.
pub(crate) const FLAGS: &[(&str, u32)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", 1),
    ("SECCOMP_FILTER_FLAG_LOG", 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 0),
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    default_action: Option<String>,
    default_errno_ret: Option<u64>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<RawArch>>,
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
    syscalls: Option<Vec<RawSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArch {
    architecture: Option<String>,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSyscall {
    names: Option<Vec<String>>,
    name: Option<String>,
    action: Option<String>,
    errno_ret: Option<u64>,
    args: Option<Vec<RawArg>>,
    includes: Option<RawFilter>,
    excludes: Option<RawFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArg {
    index: Option<u64>,
    value: Option<u64>,
    value_two: Option<u64>,
    op: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

impl Profile {
    /// Reads a profile in Docker's JSON format. Unknown fields are ignored
    /// (as Go's decoder does); unknown actions, operators, architectures and
    /// flags, argument indexes above 5, errno values above 65535, and both
    /// `name` and `names` in one rule are errors naming the field. Syscall
    /// names are not checked here: [`crate::compile`] skips names the
    /// architecture lacks.
    pub fn from_json(json: &[u8]) -> Result<Profile, SeccompError> {
        if json.len() > crate::MAX_PROFILE_SIZE {
            return Err(SeccompError::TooLarge {
                size: json.len(),
                limit: crate::MAX_PROFILE_SIZE,
            });
        }
        let raw: RawProfile = serde_json::from_slice(json)?;
        let rules = raw.syscalls.unwrap_or_default();
        let Some(default) = raw.default_action.filter(|a| !a.is_empty()) else {
            if rules.is_empty() {
                return Err(SeccompError::Empty);
            }
            return Err(SeccompError::invalid("defaultAction", "missing"));
        };
        let default_action = action("defaultAction", "defaultErrnoRet", &default, raw.default_errno_ret)?;
        if let Some(path) = raw.listener_path.filter(|p| !p.is_empty()) {
            return Err(SeccompError::Unsupported {
                field: "listenerPath".into(),
                message: format!("a notification listener ({path:?})"),
            });
        }
        let architectures = raw.architectures.unwrap_or_default();
        for (i, a) in architectures.iter().enumerate() {
            arch(&format!("architectures[{i}]"), a)?;
        }
        let mut arch_map = Vec::new();
        for (i, m) in raw.arch_map.unwrap_or_default().into_iter().enumerate() {
            let field = format!("archMap[{i}]");
            let architecture = m
                .architecture
                .ok_or_else(|| SeccompError::invalid(format!("{field}.architecture"), "missing"))?;
            arch(&format!("{field}.architecture"), &architecture)?;
            let sub_architectures = m.sub_architectures.unwrap_or_default();
            for (j, a) in sub_architectures.iter().enumerate() {
                arch(&format!("{field}.subArchitectures[{j}]"), a)?;
            }
            arch_map.push(ArchMapEntry {
                architecture,
                sub_architectures,
            });
        }
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(SeccompError::invalid(
                "architectures",
                "both 'architectures' and 'archMap' are given; use one",
            ));
        }
        let flags = raw.flags.unwrap_or_default();
        for (i, f) in flags.iter().enumerate() {
            if !FLAGS.iter().any(|(n, _)| n == f) {
                return Err(SeccompError::invalid(
                    format!("flags[{i}]"),
                    format!("unknown flag {f:?}"),
                ));
            }
        }
        let syscalls = rules
            .into_iter()
            .enumerate()
            .map(|(i, r)| rule(i, r))
            .collect::<Result<_, _>>()?;
        Ok(Profile {
            default_action,
            architectures,
            arch_map,
            flags,
            syscalls,
        })
    }
}

fn rule(i: usize, r: RawSyscall) -> Result<Rule, SeccompError> {
    let mut names = r.names.unwrap_or_default();
    // The field path names the rule by its first syscall, for the reader.
    let at = |names: &[String]| match names.first() {
        Some(n) => format!("syscalls[{i}] ({n:?})"),
        None => format!("syscalls[{i}]"),
    };
    if let Some(name) = r.name.filter(|n| !n.is_empty()) {
        if !names.is_empty() {
            return Err(SeccompError::invalid(
                at(&names),
                "both 'name' and 'names' are given; use one",
            ));
        }
        names.push(name);
    }
    let at = at(&names);
    for (j, n) in names.iter().enumerate() {
        if n.is_empty() || n.len() > 64 || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(SeccompError::invalid(
                format!("{at}.names[{j}]"),
                format!("{n:?} is not a syscall name"),
            ));
        }
    }
    let act = r
        .action
        .ok_or_else(|| SeccompError::invalid(format!("{at}.action"), "missing"))?;
    let action = action(&format!("{at}.action"), &format!("{at}.errnoRet"), &act, r.errno_ret)?;
    let mut args = Vec::new();
    for (j, a) in r.args.unwrap_or_default().into_iter().enumerate() {
        let field = format!("{at}.args[{j}]");
        let index = a.index.unwrap_or(0);
        if index > 5 {
            return Err(SeccompError::invalid(
                format!("{field}.index"),
                format!("{index} is not an argument index (0 to 5)"),
            ));
        }
        let op =
            a.op.ok_or_else(|| SeccompError::invalid(format!("{field}.op"), "missing"))?;
        args.push(Arg {
            index: index as u8,
            value: a.value.unwrap_or(0),
            value_two: a.value_two.unwrap_or(0),
            op: cmp_op(&format!("{field}.op"), &op)?,
        });
    }
    Ok(Rule {
        names,
        action,
        args,
        includes: condition(&format!("{at}.includes"), r.includes)?,
        excludes: condition(&format!("{at}.excludes"), r.excludes)?,
    })
}

fn condition(field: &str, f: Option<RawFilter>) -> Result<Condition, SeccompError> {
    let Some(f) = f else {
        return Ok(Condition::default());
    };
    let min_kernel = match f.min_kernel.as_deref() {
        None | Some("") => None,
        Some(v) => Some(kernel_version(v).ok_or_else(|| {
            SeccompError::invalid(
                format!("{field}.minKernel"),
                format!("{v:?} is not a kernel version \"<kernel>.<major>\""),
            )
        })?),
    };
    Ok(Condition {
        caps: f.caps.unwrap_or_default(),
        arches: f.arches.unwrap_or_default(),
        min_kernel,
    })
}

/// moby's `KernelVersion` syntax: exactly `<kernel>.<major>`, each 0..=255,
/// not `0.0`.
fn kernel_version(v: &str) -> Option<KernelVersion> {
    let (k, m) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(k) || !digits(m) {
        return None;
    }
    let (kernel, major) = (k.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
    if kernel == 0 && major == 0 {
        return None;
    }
    Some(KernelVersion {
        kernel: kernel.into(),
        major: major.into(),
    })
}

fn action(field: &str, errno_field: &str, name: &str, errno: Option<u64>) -> Result<Action, SeccompError> {
    let data = || -> Result<u16, SeccompError> {
        match errno {
            None => Ok(libc::EPERM as u16),
            Some(e) => u16::try_from(e).map_err(|_| SeccompError::invalid(errno_field, format!("{e} is above 65535"))),
        }
    };
    Ok(match name {
        "SCMP_ACT_ALLOW" => Action::Allow,
        "SCMP_ACT_ERRNO" => Action::Errno(data()?),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
        "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
        "SCMP_ACT_TRAP" => Action::Trap,
        "SCMP_ACT_TRACE" => Action::Trace(data()?),
        "SCMP_ACT_LOG" => Action::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(SeccompError::Unsupported {
                field: field.into(),
                message: "SCMP_ACT_NOTIFY".into(),
            });
        }
        other => {
            return Err(SeccompError::invalid(field, format!("unknown action {other:?}")));
        }
    })
}

fn cmp_op(field: &str, name: &str) -> Result<CmpOp, SeccompError> {
    Ok(match name {
        "SCMP_CMP_NE" => CmpOp::Ne,
        "SCMP_CMP_LT" => CmpOp::Lt,
        "SCMP_CMP_LE" => CmpOp::Le,
        "SCMP_CMP_EQ" => CmpOp::Eq,
        "SCMP_CMP_GE" => CmpOp::Ge,
        "SCMP_CMP_GT" => CmpOp::Gt,
        "SCMP_CMP_MASKED_EQ" => CmpOp::MaskedEq,
        other => {
            return Err(SeccompError::invalid(field, format!("unknown operator {other:?}")));
        }
    })
}

fn arch(field: &str, name: &str) -> Result<(), SeccompError> {
    if ARCHES.contains(&name) {
        Ok(())
    } else {
        Err(SeccompError::invalid(field, format!("unknown architecture {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        Profile::from_json(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_profile() {
        let p = Profile::from_json(
            br#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
                 "architectures":["SCMP_ARCH_X86_64"],
                 "syscalls":[{"name":"getcwd","action":"SCMP_ACT_ERRNO","errnoRet":38},
                   {"names":["personality"],"action":"SCMP_ACT_ALLOW",
                    "args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}],
                    "includes":{"minKernel":"4.8","caps":["CAP_SYS_ADMIN"]},
                    "excludes":{"arches":["s390x"]}, "comment": "x"}]}"#,
        )
        .unwrap();
        assert_eq!(p.default_action, Action::Errno(1));
        assert_eq!(p.syscalls[0].names, ["getcwd"]);
        assert_eq!(p.syscalls[0].action, Action::Errno(38));
        let r = &p.syscalls[1];
        assert_eq!(
            r.args,
            [Arg {
                index: 0,
                value: 8,
                value_two: 0,
                op: CmpOp::Eq
            }]
        );
        assert_eq!(r.includes.min_kernel, Some(KernelVersion { kernel: 4, major: 8 }));
        assert_eq!(r.excludes.arches, ["s390x"]);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(err("{").contains("decoding seccomp profile failed"));
        assert_eq!(
            err(r#"{"defaultAction":"SCMP_ACT_NOPE"}"#),
            "seccomp profile: defaultAction: unknown action \"SCMP_ACT_NOPE\""
        );
        assert_eq!(
            err(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#
            ),
            "seccomp profile: syscalls[0] (\"read\").args[0].index: 6 is not an argument index (0 to 5)"
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_FOO"}]}]}"#)
                .contains("syscalls[0] (\"read\").args[0].op: unknown operator")
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"a","names":["b"],"action":"SCMP_ACT_ERRNO"}]}"#)
                .contains("both 'name' and 'names'")
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_Z80"]}"#)
                .contains("architectures[0]: unknown architecture")
        );
        assert!(
            err(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4"}}]}"#)
                .contains("includes.minKernel")
        );
        assert!(err(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).contains("not supported"));
        assert!(matches!(Profile::from_json(b"{}"), Err(SeccompError::Empty)));
        let big = vec![b' '; crate::MAX_PROFILE_SIZE + 1];
        assert!(matches!(Profile::from_json(&big), Err(SeccompError::TooLarge { .. })));
    }
}
