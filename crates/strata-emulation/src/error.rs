//! What can go wrong: each error names the platform or handler concerned
//! and, where one exists, the command that fixes it.

use std::io;
use std::path::PathBuf;

use crate::arch::ARCHES;
use crate::binfmt::ParseError;

fn known_platforms() -> String {
    ARCHES
        .iter()
        .flat_map(|a| a.platforms.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

fn known_arches() -> String {
    ARCHES.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// The command that registers an emulator for `arch`.
pub(crate) fn fix(arch: &str) -> String {
    format!("strata buildx install-emulators {arch}")
}

#[derive(Debug, thiserror::Error)]
pub enum EmulationError {
    /// A platform strata does not know (not Linux, an unknown architecture
    /// or variant).
    #[error("unknown platform {platform}: strata knows {}", known_platforms())]
    UnknownPlatform { platform: String },
    /// An architecture name `install-emulators` does not know.
    #[error("unknown architecture {name:?}: strata knows {}", known_arches())]
    UnknownArch { name: String },
    /// No handler for the platform.
    #[error(
        "platform {platform} cannot run on this host ({host}): no emulator is registered for it \
         with binfmt_misc{note}; `{fix}` registers QEMU's (as root)",
        fix = fix(arch)
    )]
    NoEmulator {
        platform: String,
        host: &'static str,
        arch: &'static str,
        /// Why none could be seen, when binfmt_misc is not readable.
        note: String,
    },
    /// Handlers exist, but none is enabled.
    #[error(
        "platform {platform} cannot run on this host ({host}): its binfmt_misc handler {handler} is disabled; \
         `{fix}` registers QEMU's again (as root)",
        fix = fix(arch)
    )]
    Disabled {
        platform: String,
        host: &'static str,
        arch: &'static str,
        handler: String,
    },
    /// binfmt_misc is switched off as a whole.
    #[error(
        "platform {platform} cannot run on this host ({host}): binfmt_misc is disabled \
         (`echo 1 > /proc/sys/fs/binfmt_misc/status` turns it on)"
    )]
    BinfmtDisabled { platform: String, host: &'static str },
    /// The handler lacks the F flag, so its interpreter would be looked up
    /// inside the container, where it is not.
    #[error(
        "platform {platform} cannot run in a container: its binfmt_misc handler {handler} ({interpreter}) \
         was registered without the F (fix binary) flag; `{fix}` registers it with F (as root)",
        interpreter = interpreter.display(),
        fix = fix(arch)
    )]
    NotFixed {
        platform: String,
        arch: &'static str,
        handler: String,
        interpreter: PathBuf,
    },
    /// The interpreter to register is not installed.
    #[error(
        "{} not found: QEMU's user-mode emulator for {arch} comes with Debian's qemu-user-static \
         (apt-get install qemu-user-static)",
        path.display()
    )]
    NoInterpreter { arch: &'static str, path: PathBuf },
    /// binfmt_misc could not be mounted.
    #[error("mounting binfmt_misc at {} (needs root)", dir.display())]
    Mount {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a registration.
    #[error("registering {handler} ({line}) with binfmt_misc")]
    Register {
        handler: String,
        line: String,
        #[source]
        source: io::Error,
    },
    /// A registration that does not show up afterwards.
    #[error("registering {handler}: binfmt_misc shows no enabled entry {handler} afterwards")]
    NotRegistered { handler: String },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl EmulationError {
    /// The architecture whose emulator would fix this, if any.
    pub fn arch(&self) -> Option<&'static str> {
        match self {
            EmulationError::NoEmulator { arch, .. }
            | EmulationError::Disabled { arch, .. }
            | EmulationError::NotFixed { arch, .. } => Some(*arch),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    /// Small enough to carry inline in the callers' error enums.
    #[test]
    fn size() {
        assert!(std::mem::size_of::<super::EmulationError>() <= 96);
    }
}
