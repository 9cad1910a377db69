//! Registering QEMU's user-mode emulators with binfmt_misc, and removing
//! them. What tonistiigi/binfmt does, for Debian's qemu-user-static: one
//! handler `qemu-<arch>` per architecture, QEMU's magic and mask, the
//! interpreter `/usr/bin/qemu-<arch>-static`, flags `POCF`:
//!
//! - `F` (fix binary): the kernel opens the interpreter now, so it runs
//!   programs in any mount namespace (a container has no QEMU binary; none
//!   is ever copied into an image);
//! - `P` (preserve argv[0]): the program sees the argv[0] it was run with
//!   (QEMU 7.2, Debian's, reads the flag from `AT_FLAGS`);
//! - `C` (credentials, which implies `O`, open binary): setuid programs in
//!   the image keep their meaning.

use std::fmt;
use std::path::PathBuf;

use crate::arch::{ARCHES, Arch, DEFAULT_INSTALL, find_arch};
use crate::binfmt::{Binfmt, Flags, registration};
use crate::error::EmulationError;
use crate::host::Host;

/// Where and how to register.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub binfmt: Binfmt,
    /// Where `qemu-<arch>-static` are (Debian: `/usr/bin`).
    pub qemu_dir: PathBuf,
    pub flags: Flags,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            binfmt: Binfmt::system(),
            qemu_dir: PathBuf::from("/usr/bin"),
            flags: Flags {
                preserve_argv0: true,
                open_binary: true,
                credentials: true,
                fix_binary: true,
            },
        }
    }
}

impl InstallOptions {
    /// The interpreter registered for an architecture.
    pub fn interpreter(&self, arch: &Arch) -> PathBuf {
        self.qemu_dir.join(format!("qemu-{}-static", arch.qemu))
    }

    /// The architectures `install` takes without a list: the common ones
    /// (`DEFAULT_INSTALL`) that the host does not run itself and whose
    /// interpreter is installed.
    pub fn default_arches(&self, host: &Host) -> Vec<&'static Arch> {
        let native = host.native();
        DEFAULT_INSTALL
            .iter()
            .filter_map(|n| find_arch(n))
            .filter(|a| !native.contains(a) && self.interpreter(a).exists())
            .collect()
    }
}

/// What happened to one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Installed {
        arch: &'static str,
        handler: String,
        interpreter: PathBuf,
    },
    /// A handler of that name was there, not usable in containers (no F,
    /// disabled) or for another interpreter: replaced.
    Replaced {
        arch: &'static str,
        handler: String,
        interpreter: PathBuf,
        was: String,
    },
    AlreadyInstalled {
        arch: &'static str,
        handler: String,
        interpreter: PathBuf,
    },
    /// The host runs it without an emulator: nothing registered.
    Native {
        arch: &'static str,
    },
    Removed {
        arch: &'static str,
        handler: String,
    },
    /// Uninstall found nothing for it.
    NotInstalled {
        arch: &'static str,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Installed {
                arch,
                handler,
                interpreter,
            } => write!(f, "installing: {arch} OK ({handler}: {})", interpreter.display()),
            Outcome::Replaced {
                arch,
                handler,
                interpreter,
                was,
            } => write!(
                f,
                "installing: {arch} OK ({handler}: {}, replacing {was})",
                interpreter.display()
            ),
            Outcome::AlreadyInstalled {
                arch,
                handler,
                interpreter,
            } => write!(
                f,
                "installing: {arch} already installed ({handler}: {})",
                interpreter.display()
            ),
            Outcome::Native { arch } => write!(f, "installing: {arch} runs natively, no emulator needed"),
            Outcome::Removed { arch, handler } => write!(f, "uninstalling: {arch} OK ({handler})"),
            Outcome::NotInstalled { arch } => write!(f, "uninstalling: {arch} not installed"),
        }
    }
}

/// Architectures by name (`arm64`, `aarch64`, `linux/arm/v7`, `all`).
pub fn parse_arches(names: &[String]) -> Result<Vec<&'static Arch>, EmulationError> {
    let mut out: Vec<&'static Arch> = Vec::new();
    for n in names {
        let found: Vec<&'static Arch> = if n == "all" {
            ARCHES.iter().collect()
        } else {
            vec![find_arch(n).ok_or_else(|| EmulationError::UnknownArch { name: n.clone() })?]
        };
        for a in found {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    Ok(out)
}

/// Registers an emulator for each architecture (the default set when
/// `arches` is empty), telling `report` what happened to each. Stops at
/// the first failure; what was done before it stays done.
pub fn install(
    arches: &[&'static Arch],
    opts: &InstallOptions,
    mut report: impl FnMut(Outcome),
) -> Result<(), EmulationError> {
    opts.binfmt.ensure_mounted()?;
    let host = Host::probe_with(&opts.binfmt);
    let arches: Vec<&'static Arch> = if arches.is_empty() {
        opts.default_arches(&host)
    } else {
        arches.to_vec()
    };
    let native = host.native();
    for arch in arches {
        if native.contains(&arch) {
            report(Outcome::Native { arch: arch.name });
            continue;
        }
        report(install_one(arch, opts)?);
    }
    Ok(())
}

fn install_one(arch: &'static Arch, opts: &InstallOptions) -> Result<Outcome, EmulationError> {
    let interpreter = opts.interpreter(arch);
    if !interpreter.is_file() {
        return Err(EmulationError::NoInterpreter {
            arch: arch.name,
            path: interpreter,
        });
    }
    let name = arch.handler_name();
    let mut was = None;
    if let Some(h) = opts.binfmt.handler(&name)? {
        if h.enabled && h.flags == opts.flags && h.interpreter == interpreter {
            return Ok(Outcome::AlreadyInstalled {
                arch: arch.name,
                handler: name,
                interpreter,
            });
        }
        was = Some(format!(
            "{} {} flags {:?}",
            if h.enabled { "enabled" } else { "disabled" },
            h.interpreter.display(),
            h.flags.to_string()
        ));
        opts.binfmt.remove(&name)?;
    }
    let line = registration(&name, arch.magic, arch.mask, &interpreter, opts.flags);
    if let Err(e) = opts.binfmt.register(&line) {
        // Another strata registering the same at the same time: its
        // handler is this one.
        if let EmulationError::Io { source, .. } = &e
            && source.raw_os_error() == Some(libc_eexist())
            && opts
                .binfmt
                .handler(&name)?
                .is_some_and(|h| h.enabled && h.flags == opts.flags && h.interpreter == interpreter)
        {
            return Ok(Outcome::AlreadyInstalled {
                arch: arch.name,
                handler: name,
                interpreter,
            });
        }
        return Err(match e {
            EmulationError::Io { source, .. } => EmulationError::Register {
                handler: name.clone(),
                line: line.clone(),
                source,
            },
            e => e,
        });
    }
    // Some kernels show a new entry only once the mount point is touched
    // (as tonistiigi/binfmt notes); then it must be there, enabled.
    let _ = std::fs::File::open(&opts.binfmt.dir);
    match opts.binfmt.handler(&name)? {
        Some(h) if h.enabled => {}
        _ => return Err(EmulationError::NotRegistered { handler: name }),
    }
    Ok(match was {
        Some(was) => Outcome::Replaced {
            arch: arch.name,
            handler: name,
            interpreter,
            was,
        },
        None => Outcome::Installed {
            arch: arch.name,
            handler: name,
            interpreter,
        },
    })
}

fn libc_eexist() -> i32 {
    rustix::io::Errno::EXIST.raw_os_error()
}

/// Removes every handler that takes each architecture's programs (whatever
/// its name); every emulated architecture when `arches` is empty.
pub fn uninstall(arches: &[&'static Arch], binfmt: &Binfmt) -> Result<Vec<Outcome>, EmulationError> {
    binfmt.ensure_mounted()?;
    let host = Host::probe_with(binfmt);
    let all = arches.is_empty();
    let arches: Vec<&'static Arch> = if all { ARCHES.iter().collect() } else { arches.to_vec() };
    let mut out = Vec::new();
    for arch in arches {
        let handlers: Vec<String> = host.handlers_for(arch).map(|h| h.name.clone()).collect();
        if handlers.is_empty() {
            if !all {
                out.push(Outcome::NotInstalled { arch: arch.name });
            }
            continue;
        }
        for handler in handlers {
            // Two architectures may share a handler (a loose mask): once.
            if out
                .iter()
                .any(|o| matches!(o, Outcome::Removed { handler: h, .. } if *h == handler))
            {
                continue;
            }
            binfmt.remove(&handler)?;
            out.push(Outcome::Removed {
                arch: arch.name,
                handler,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arch_lists() {
        let a = parse_arches(&["arm64".into(), "aarch64".into(), "linux/arm/v7".into()]).unwrap();
        assert_eq!(a.iter().map(|a| a.name).collect::<Vec<_>>(), ["arm64", "arm"]);
        assert_eq!(parse_arches(&["all".into()]).unwrap().len(), ARCHES.len());
        let e = parse_arches(&["sparc".into()]).unwrap_err().to_string();
        assert!(
            e.contains("unknown architecture \"sparc\"") && e.contains("arm64"),
            "{e}"
        );
    }

    #[test]
    fn default_flags_are_pocf() {
        assert_eq!(InstallOptions::default().flags.to_string(), "POCF");
        assert_eq!(
            InstallOptions::default().interpreter(find_arch("arm64").unwrap()),
            PathBuf::from("/usr/bin/qemu-aarch64-static")
        );
    }
}
