//! Which platforms this host runs: its own (from `uname`), the 32-bit
//! one its kernel may run too (386 on amd64, arm on arm64, found by running
//! a few-byte program of strata's own), and every platform a binfmt_misc
//! handler with the `F` flag emulates.

use std::path::PathBuf;
use std::sync::OnceLock;

use strata_oci::Platform;

use crate::arch::{ARCHES, Arch, arch_for_platform, find_arch};
use crate::binfmt::{Binfmt, Handler, ParseError};
use crate::error::EmulationError;

/// How a platform runs here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// The kernel runs it itself.
    Native,
    /// Through a binfmt_misc handler (QEMU user mode).
    Emulated { handler: String, interpreter: PathBuf },
}

/// What the host runs, as read once.
#[derive(Debug, Clone)]
pub struct Host {
    /// `uname -m`.
    pub machine: String,
    primary: &'static Arch,
    handlers: Vec<Handler>,
    /// binfmt_misc entries that did not parse (skipped).
    pub skipped: Vec<ParseError>,
    /// Why no handler could be read, when so.
    binfmt_note: Option<String>,
    binfmt_enabled: bool,
}

/// Whether `p` can run here, and how. The host's own platform is answered
/// without reading binfmt_misc.
pub fn can_run(p: &Platform) -> Result<How, EmulationError> {
    let arch = known_platform(p)?;
    let (machine, primary) = machine();
    if arch == primary {
        return Ok(How::Native);
    }
    Host::read(&Binfmt::system(), machine, primary).can_run(p)
}

/// The architecture of a platform strata knows, else an error naming it
/// and listing the platforms it does know.
pub fn known_platform(p: &Platform) -> Result<&'static Arch, EmulationError> {
    arch_for_platform(p).ok_or_else(|| EmulationError::UnknownPlatform {
        platform: p.to_string(),
    })
}

/// The host's own platform (`linux/amd64`), from `uname`.
pub fn host_platform() -> Platform {
    machine().1.platform()
}

/// `uname -m` and the architecture it is.
fn machine() -> (String, &'static Arch) {
    let m = rustix::system::uname().machine().to_string_lossy().into_owned();
    let name = match m.as_str() {
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        m => m,
    };
    let arch = find_arch(name)
        .or_else(|| find_arch(Platform::host().architecture.as_str()))
        .unwrap_or(&ARCHES[0]);
    (m, arch)
}

/// The 32-bit architecture a 64-bit kernel may run without help.
fn secondary(primary: &Arch) -> Option<&'static Arch> {
    let name = match primary.name {
        "amd64" => "386",
        "arm64" => "arm",
        _ => return None,
    };
    find_arch(name)
}

impl Host {
    /// Reads the system's binfmt_misc, mounting it first when it is not
    /// (and this process may): handlers registered before stay in the
    /// kernel when the file system is unmounted, and are only seen mounted.
    pub fn probe() -> Host {
        let (machine, primary) = machine();
        Host::read(&Binfmt::system(), machine, primary)
    }

    /// Reads handlers from `binfmt` (any directory laid out like it).
    pub fn probe_with(binfmt: &Binfmt) -> Host {
        let (machine, primary) = machine();
        Host::read(binfmt, machine, primary)
    }

    fn read(binfmt: &Binfmt, machine: String, primary: &'static Arch) -> Host {
        let mut note = None;
        if binfmt.dir == std::path::Path::new(crate::binfmt::BINFMT_MISC)
            && !binfmt.is_mounted()
            && rustix::process::geteuid().is_root()
            && binfmt.dir.is_dir()
            && let Err(e) = binfmt.ensure_mounted()
        {
            note = Some(format!(
                " (binfmt_misc is not mounted at {}: {})",
                binfmt.dir.display(),
                chain(&e)
            ));
        }
        let (handlers, skipped) = match binfmt.handlers() {
            Ok(h) => h,
            Err(e) => {
                note.get_or_insert_with(|| format!(" ({})", chain(&e)));
                (Vec::new(), Vec::new())
            }
        };
        if note.is_none() && !binfmt.is_mounted() {
            note = Some(format!(" (binfmt_misc is not mounted at {})", binfmt.dir.display()));
        }
        Host {
            machine,
            primary,
            handlers,
            skipped,
            binfmt_note: note,
            binfmt_enabled: binfmt.globally_enabled(),
        }
    }

    /// The host's own platform (`linux/amd64`).
    pub fn platform(&self) -> Platform {
        self.primary.platform()
    }

    /// Every handler read.
    pub fn handlers(&self) -> &[Handler] {
        &self.handlers
    }

    /// The handlers that take this architecture's programs (static and PIE).
    pub fn handlers_for(&self, arch: &Arch) -> impl Iterator<Item = &Handler> {
        let exec = arch.elf_header(2);
        let dyn_ = arch.elf_header(3);
        self.handlers
            .iter()
            .filter(move |h| h.matcher.matches(&exec) && h.matcher.matches(&dyn_))
    }

    /// The handler that runs this architecture in a container: enabled,
    /// with the F flag.
    pub fn emulator_for(&self, arch: &Arch) -> Option<&Handler> {
        if !self.binfmt_enabled {
            return None;
        }
        self.handlers_for(arch).find(|h| h.enabled && h.flags.fix_binary)
    }

    /// Whether `p` can run here, and how; the error names the platform and
    /// the command that fixes it.
    pub fn can_run(&self, p: &Platform) -> Result<How, EmulationError> {
        let arch = known_platform(p)?;
        if arch == self.primary {
            return Ok(How::Native);
        }
        if let Some(h) = self.emulator_for(arch) {
            return Ok(How::Emulated {
                handler: h.name.clone(),
                interpreter: h.interpreter.clone(),
            });
        }
        let platform = p.to_string();
        let host = self.primary.platforms[0];
        // An enabled handler without F takes the program before the
        // kernel's own ELF loader would, and fails in a container.
        if let Some(h) = self.handlers_for(arch).find(|h| h.enabled && self.binfmt_enabled) {
            return Err(EmulationError::NotFixed {
                platform,
                arch: arch.name,
                handler: h.name.clone(),
                interpreter: h.interpreter.clone(),
            });
        }
        if secondary(self.primary) == Some(arch) && runs_natively(arch) {
            return Ok(How::Native);
        }
        if !self.binfmt_enabled {
            return Err(EmulationError::BinfmtDisabled { platform, host });
        }
        if let Some(h) = self.handlers_for(arch).next() {
            return Err(EmulationError::Disabled {
                platform,
                host,
                arch: arch.name,
                handler: h.name.clone(),
            });
        }
        Err(EmulationError::NoEmulator {
            platform,
            host,
            arch: arch.name,
            note: self.binfmt_note.clone().unwrap_or_default(),
        })
    }

    /// The architectures the kernel runs itself, the host's first.
    pub fn native(&self) -> Vec<&'static Arch> {
        let mut out = vec![self.primary];
        if let Some(s) = secondary(self.primary)
            && self.handlers_for(s).all(|h| !h.enabled || !self.binfmt_enabled)
            && runs_natively(s)
        {
            out.push(s);
        }
        out
    }

    /// The architectures run through an emulator, in strata's order.
    pub fn emulated(&self) -> Vec<(&'static Arch, &Handler)> {
        let native = self.native();
        ARCHES
            .iter()
            .filter(|a| !native.contains(a))
            .filter_map(|a| Some((a, self.emulator_for(a)?)))
            .collect()
    }

    /// The platforms this host can run: native first, then emulated.
    pub fn platforms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for a in self.native() {
            out.extend(a.platforms.iter().map(|p| p.to_string()));
        }
        for (a, _) in self.emulated() {
            out.extend(a.platforms.iter().map(|p| p.to_string()));
        }
        out
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Whether the kernel runs this architecture's programs itself: a tiny
/// program of strata's own (exit(0), nothing else) is run once.
fn runs_natively(arch: &Arch) -> bool {
    static I386: OnceLock<bool> = OnceLock::new();
    static AARCH32: OnceLock<bool> = OnceLock::new();
    match arch.name {
        "386" => *I386.get_or_init(|| run_probe(&probe_elf(arch))),
        "arm" => *AARCH32.get_or_init(|| run_probe(&probe_elf(arch))),
        _ => false,
    }
}

/// A static 32-bit little-endian ELF that exits 0: one PT_LOAD segment
/// holding the headers and the code.
pub(crate) fn probe_elf(arch: &Arch) -> Vec<u8> {
    let (flags, base, code): (u32, u32, &[u8]) = match arch.name {
        // mov eax, 1; xor ebx, ebx; int 0x80
        "386" => (0, 0x0804_8000, &[0xb8, 1, 0, 0, 0, 0x31, 0xdb, 0xcd, 0x80]),
        // mov r0, #0; mov r7, #1; svc #0 (EABI 5)
        "arm" => (
            0x0500_0000,
            0x0001_0000,
            &[0x00, 0x00, 0xa0, 0xe3, 0x01, 0x70, 0xa0, 0xe3, 0x00, 0x00, 0x00, 0xef],
        ),
        _ => return Vec::new(),
    };
    let mut e = Vec::with_capacity(96);
    let total = 52 + 32 + code.len() as u32;
    e.extend_from_slice(&arch.elf_header(2)[..20]);
    e.extend_from_slice(&1u32.to_le_bytes()); // e_version
    e.extend_from_slice(&(base + 84).to_le_bytes()); // e_entry
    e.extend_from_slice(&52u32.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    e.extend_from_slice(&flags.to_le_bytes()); // e_flags
    for v in [52u16, 32, 1, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        e.extend_from_slice(&v.to_le_bytes());
    }
    // PT_LOAD, offset 0, vaddr, paddr, filesz, memsz, R+X, align
    for v in [1u32, 0, base, base, total, total, 5, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(code);
    e
}

/// Runs a probe from a sealed in-memory file; true when it exits 0.
fn run_probe(elf: &[u8]) -> bool {
    use rustix::fs::{MemfdFlags, Mode, OFlags};
    use std::os::fd::AsRawFd;
    if elf.is_empty() {
        return false;
    }
    let Ok(fd) = rustix::fs::memfd_create("strata-probe", MemfdFlags::CLOEXEC) else {
        return false;
    };
    if rustix::io::write(&fd, elf).ok() != Some(elf.len()) {
        return false;
    }
    // Exec needs no writer left (ETXTBSY): reopen read-only, inheritable,
    // and close the writable descriptor.
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let Ok(ro) = rustix::fs::open(path.as_str(), OFlags::RDONLY, Mode::empty()) else {
        return false;
    };
    drop(fd);
    let status = std::process::Command::new(format!("/proc/self/fd/{}", ro.as_raw_fd()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    drop(ro);
    status.is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_well_formed() {
        for name in ["386", "arm"] {
            let a = find_arch(name).unwrap();
            let e = probe_elf(a);
            assert_eq!(&e[..4], b"\x7fELF");
            assert_eq!(e.len(), 84 + if name == "386" { 9 } else { 12 });
            // The handler QEMU registers for it takes it.
            let m = crate::binfmt::unescape(a.magic).unwrap();
            let k = crate::binfmt::unescape(a.mask).unwrap();
            assert!(m.iter().zip(&k).zip(&e).all(|((m, k), b)| (b ^ m) & k == 0));
        }
    }

    #[test]
    fn the_arm_probe_exits_0_under_qemu() {
        // No AArch32 CPU here to try it on; QEMU's is the next best judge.
        let qemu = std::path::Path::new("/usr/bin/qemu-arm-static");
        if !qemu.exists() {
            eprintln!(
                "skipped: {} not installed (scripts/deps.d/emulation.sh)",
                qemu.display()
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("probe");
        std::fs::write(&f, probe_elf(find_arch("arm").unwrap())).unwrap();
        std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let st = std::process::Command::new(qemu).arg(&f).status().unwrap();
        assert!(st.success(), "{st}");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_i386_probe_runs_when_the_kernel_has_ia32_emulation() {
        // The kernel's config says whether it should; without a config, at
        // least the probe must not hang or panic.
        let ia32 = std::fs::read("/proc/config.gz").ok().map(|_| {
            let out = std::process::Command::new("sh")
                .args(["-c", "zcat /proc/config.gz | grep -c '^CONFIG_IA32_EMULATION=y'"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim() == "1"
        });
        let ran = run_probe(&probe_elf(find_arch("386").unwrap()));
        if let Some(want) = ia32 {
            let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
            if !cmdline.contains("ia32_emulation=") {
                assert_eq!(ran, want);
            }
        }
    }
}
