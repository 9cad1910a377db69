//! strata-emulation: which platforms this host can run, and registering
//! emulators for the others. A foreign binary runs through the kernel's
//! binfmt_misc: a handler whose magic matches the ELF header hands the
//! program to an interpreter (QEMU user mode). strata reads
//! `/proc/sys/fs/binfmt_misc/*`, maps each handler to platforms by what its
//! magic/mask matches (ELF class, byte order, `e_machine`; never by its
//! name), and only counts a handler with the `F` flag (the kernel opened
//! the interpreter at registration, so it works in a container's mount
//! namespace, where no QEMU binary exists). `install` registers Debian's
//! `/usr/bin/qemu-<arch>-static` with flags `POCF` and QEMU's own
//! magic/mask values, mounting binfmt_misc first when needed; `uninstall`
//! removes handlers.
//!
//! It owns no store and never runs anything from an image: the only
//! programs it starts are its own few-byte probes (does the kernel run
//! 32-bit x86 or AArch32 natively?).

mod arch;
mod binfmt;
mod error;
mod host;
mod install;

pub use arch::{ARCHES, Arch, DEFAULT_INSTALL, arch_for_platform, find_arch};
pub use binfmt::{BINFMT_MISC, Binfmt, Flags, Handler, Matcher, ParseError};
pub use error::EmulationError;
pub use host::{Host, How, can_run, host_platform, known_platform};
pub use install::{InstallOptions, Outcome, install, parse_arches, uninstall};
