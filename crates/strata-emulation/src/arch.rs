//! The architectures strata knows: their OCI platform names, their ELF
//! identity (class, byte order, `e_machine`), and QEMU's binfmt_misc
//! magic/mask for them (as `scripts/qemu-binfmt-conf.sh` defines them;
//! the same values Debian's qemu-user-static ships in /usr/lib/binfmt.d).

use strata_oci::Platform;

/// One CPU architecture as an OCI platform and as an ELF machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// The OCI `architecture` (`arm64`, `arm`, `386`...).
    pub name: &'static str,
    /// The platforms it stands for, as `buildx ls` lists them.
    pub platforms: &'static [&'static str],
    /// Variants a platform of this architecture may name.
    pub variants: &'static [&'static str],
    /// QEMU's name for it (`qemu-<qemu>-static`, handler `qemu-<qemu>`).
    pub qemu: &'static str,
    /// ELFCLASS64 (else 32).
    pub class64: bool,
    /// ELFDATA2MSB (else little endian).
    pub big_endian: bool,
    /// `e_machine`.
    pub machine: u16,
    /// QEMU's binfmt magic, in binfmt_misc's `\xHH` spelling.
    pub magic: &'static str,
    /// QEMU's binfmt mask, likewise.
    pub mask: &'static str,
}

const X86_MASK: &str = r"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
const LE64_MASK: &str = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

/// Every architecture strata can name, the common ones first.
pub const ARCHES: &[Arch] = &[
    Arch {
        name: "amd64",
        platforms: &["linux/amd64"],
        variants: &["v1", "v2", "v3", "v4"],
        qemu: "x86_64",
        class64: true,
        big_endian: false,
        machine: 0x3e,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
        mask: X86_MASK,
    },
    Arch {
        name: "arm64",
        platforms: &["linux/arm64"],
        variants: &["v8"],
        qemu: "aarch64",
        class64: true,
        big_endian: false,
        machine: 0xb7,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
        mask: LE64_MASK,
    },
    Arch {
        name: "arm",
        platforms: &["linux/arm/v7", "linux/arm/v6"],
        variants: &["v5", "v6", "v7", "v8"],
        qemu: "arm",
        class64: false,
        big_endian: false,
        machine: 0x28,
        magic: r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
        mask: LE64_MASK,
    },
    Arch {
        name: "riscv64",
        platforms: &["linux/riscv64"],
        variants: &[],
        qemu: "riscv64",
        class64: true,
        big_endian: false,
        machine: 0xf3,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
        mask: LE64_MASK,
    },
    Arch {
        name: "ppc64le",
        platforms: &["linux/ppc64le"],
        variants: &[],
        qemu: "ppc64le",
        class64: true,
        big_endian: false,
        machine: 0x15,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
    },
    Arch {
        name: "s390x",
        platforms: &["linux/s390x"],
        variants: &[],
        qemu: "s390x",
        class64: true,
        big_endian: true,
        machine: 0x16,
        magic: r"\x7f\x45\x4c\x46\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
    },
    Arch {
        name: "386",
        platforms: &["linux/386"],
        variants: &[],
        qemu: "i386",
        class64: false,
        big_endian: false,
        machine: 0x03,
        magic: r"\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
        mask: X86_MASK,
    },
    Arch {
        name: "mips64le",
        platforms: &["linux/mips64le"],
        variants: &[],
        qemu: "mips64el",
        class64: true,
        big_endian: false,
        machine: 0x08,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08\x00",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    },
    Arch {
        name: "mips64",
        platforms: &["linux/mips64"],
        variants: &[],
        qemu: "mips64",
        class64: true,
        big_endian: true,
        machine: 0x08,
        magic: r"\x7f\x45\x4c\x46\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x08",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\x00\xfe\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
    },
    Arch {
        name: "loong64",
        platforms: &["linux/loong64"],
        variants: &[],
        qemu: "loongarch64",
        class64: true,
        big_endian: false,
        machine: 0x102,
        magic: r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x02\x01",
        mask: r"\xff\xff\xff\xff\xff\xff\xff\xfc\x00\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff",
    },
];

/// What `install-emulators` registers without arguments (those of them the
/// host does not run natively and Debian's qemu-user-static provides): the
/// architectures Docker Official Images are published for.
pub const DEFAULT_INSTALL: &[&str] = &["amd64", "arm64", "arm", "riscv64", "ppc64le", "s390x", "386"];

/// An architecture by any of its names: OCI (`arm64`), QEMU's (`aarch64`),
/// Debian's (`armhf`, `i386`), or a platform (`linux/arm/v7`).
pub fn find_arch(name: &str) -> Option<&'static Arch> {
    let name = name.trim().to_ascii_lowercase();
    let arch = match name.split('/').collect::<Vec<_>>().as_slice() {
        [_os, arch] | [_os, arch, _] => arch.to_string(),
        _ => name,
    };
    let arch = match arch.as_str() {
        "x86_64" | "x86-64" => "amd64",
        "armhf" | "armel" | "armv7" | "armv7l" | "armv6l" => "arm",
        "i386" | "i486" | "i586" | "i686" | "x86" => "386",
        "mips64el" => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    };
    ARCHES.iter().find(|a| a.name == arch || a.qemu == arch)
}

/// The architecture a platform is for, when strata knows it: Linux only,
/// a known architecture, and a variant that architecture has.
pub fn arch_for_platform(p: &Platform) -> Option<&'static Arch> {
    if p.os != "linux" {
        return None;
    }
    let a = ARCHES.iter().find(|a| a.name == p.architecture)?;
    match &p.variant {
        Some(v) if !a.variants.contains(&v.as_str()) => None,
        _ => Some(a),
    }
}

impl Arch {
    /// The start of an ELF file of this architecture (ident, `e_type`,
    /// `e_machine`, `e_version`): what a handler's magic is tested on.
    pub fn elf_header(&self, e_type: u16) -> [u8; 24] {
        let mut h = [0u8; 24];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if self.class64 { 2 } else { 1 };
        h[5] = if self.big_endian { 2 } else { 1 };
        h[6] = 1;
        let u16b = |v: u16| {
            if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        h[16..18].copy_from_slice(&u16b(e_type));
        h[18..20].copy_from_slice(&u16b(self.machine));
        h[20..24].copy_from_slice(&if self.big_endian {
            1u32.to_be_bytes()
        } else {
            1u32.to_le_bytes()
        });
        h
    }

    /// The platform to show for it: its first (`linux/arm/v7` for arm).
    pub fn platform(&self) -> Platform {
        Platform::parse(self.platforms[0]).expect("the table's platforms parse")
    }

    /// QEMU's magic and mask as the kernel holds them.
    pub fn matcher(&self) -> crate::binfmt::Matcher {
        crate::binfmt::Matcher::Magic {
            offset: 0,
            magic: crate::binfmt::unescape(self.magic).expect("the table's magic decodes"),
            mask: Some(crate::binfmt::unescape(self.mask).expect("the table's mask decodes")),
        }
    }

    /// `qemu-<arch>`: the handler name strata registers.
    pub fn handler_name(&self) -> String {
        format!("qemu-{}", self.qemu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(find_arch("aarch64").unwrap().name, "arm64");
        assert_eq!(find_arch("linux/arm/v7").unwrap().name, "arm");
        assert_eq!(find_arch("armhf").unwrap().name, "arm");
        assert_eq!(find_arch("x86_64").unwrap().name, "amd64");
        assert_eq!(find_arch("i386").unwrap().name, "386");
        assert_eq!(find_arch("mips64el").unwrap().name, "mips64le");
        assert!(find_arch("sparc").is_none());
        let p = |s| Platform::parse(s).unwrap();
        assert_eq!(arch_for_platform(&p("linux/arm64/v8")).unwrap().name, "arm64");
        assert_eq!(arch_for_platform(&p("linux/arm/v6")).unwrap().name, "arm");
        assert!(arch_for_platform(&p("linux/arm/v9")).is_none());
        assert!(arch_for_platform(&p("windows/amd64")).is_none());
        assert!(arch_for_platform(&p("linux/foo")).is_none());
        for a in ARCHES {
            assert_eq!(arch_for_platform(&a.platform()), Some(a));
        }
    }

    #[test]
    fn each_magic_takes_its_own_programs_and_no_others() {
        for a in ARCHES {
            let m = a.matcher();
            for b in ARCHES {
                for e_type in [2, 3] {
                    assert_eq!(
                        m.matches(&b.elf_header(e_type)),
                        a == b,
                        "{} magic on {} type {e_type}",
                        a.name,
                        b.name
                    );
                }
            }
            // Core dumps and relocatables are not programs.
            assert!(
                !m.matches(&a.elf_header(1)) && !m.matches(&a.elf_header(4)),
                "{}",
                a.name
            );
        }
    }
}
