//! The little of ELF the binary cataloguers need: sections by name and
//! reading by virtual address through the program headers. Every offset
//! is bounds-checked against the file; nothing is loaded or executed.

pub(crate) struct Elf<'a> {
    data: &'a [u8],
    big_endian: bool,
    sections: Vec<Section>,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug)]
struct Section {
    name: String,
    kind: u32,
    offset: u64,
    size: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Segment {
    kind: u32,
    pub flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

const SHT_NOBITS: u32 = 8;
const PT_LOAD: u32 = 1;
pub(crate) const PF_W: u32 = 2;

impl<'a> Elf<'a> {
    pub fn parse(data: &'a [u8]) -> Result<Elf<'a>, &'static str> {
        if data.len() < 52 || &data[..4] != b"\x7fELF" {
            return Err("not an ELF file");
        }
        let is_64 = match data[4] {
            1 => false,
            2 => true,
            _ => return Err("unknown ELF class"),
        };
        let big_endian = match data[5] {
            1 => false,
            2 => true,
            _ => return Err("unknown ELF byte order"),
        };
        let mut elf = Elf {
            data,
            big_endian,
            sections: Vec::new(),
            segments: Vec::new(),
        };
        let r = |at: usize, n: usize| elf.uint(at, n).ok_or("truncated ELF header");
        let (phoff, shoff, phentsize, phnum, shentsize, shnum, shstrndx) = if is_64 {
            (
                r(32, 8)?,
                r(40, 8)?,
                r(54, 2)?,
                r(56, 2)?,
                r(58, 2)?,
                r(60, 2)?,
                r(62, 2)?,
            )
        } else {
            (
                r(28, 4)?,
                r(32, 4)?,
                r(42, 2)?,
                r(44, 2)?,
                r(46, 2)?,
                r(48, 2)?,
                r(50, 2)?,
            )
        };
        // Program headers.
        let min_ph = if is_64 { 56 } else { 32 };
        if phoff != 0 && phentsize >= min_ph {
            for i in 0..phnum {
                let Some(at) = phoff.checked_add(i * phentsize).and_then(|a| usize::try_from(a).ok()) else {
                    break;
                };
                let seg = if is_64 {
                    (|| {
                        Some(Segment {
                            kind: elf.uint(at, 4)? as u32,
                            flags: elf.uint(at + 4, 4)? as u32,
                            offset: elf.uint(at + 8, 8)?,
                            vaddr: elf.uint(at + 16, 8)?,
                            filesz: elf.uint(at + 32, 8)?,
                        })
                    })()
                } else {
                    (|| {
                        Some(Segment {
                            kind: elf.uint(at, 4)? as u32,
                            offset: elf.uint(at + 4, 4)?,
                            vaddr: elf.uint(at + 8, 4)?,
                            filesz: elf.uint(at + 16, 4)?,
                            flags: elf.uint(at + 24, 4)? as u32,
                        })
                    })()
                };
                match seg {
                    Some(s) => elf.segments.push(s),
                    None => break,
                }
            }
        }
        // Section headers.
        let min_sh = if is_64 { 64 } else { 40 };
        if shoff != 0 && shentsize >= min_sh {
            let header = |i: u64| -> Option<(u32, u32, u64, u64, u32)> {
                let at = usize::try_from(shoff.checked_add(i.checked_mul(shentsize)?)?).ok()?;
                Some(if is_64 {
                    (
                        elf.uint(at, 4)? as u32,
                        elf.uint(at + 4, 4)? as u32,
                        elf.uint(at + 24, 8)?,
                        elf.uint(at + 32, 8)?,
                        elf.uint(at + 40, 4)? as u32,
                    )
                } else {
                    (
                        elf.uint(at, 4)? as u32,
                        elf.uint(at + 4, 4)? as u32,
                        elf.uint(at + 16, 4)?,
                        elf.uint(at + 20, 4)?,
                        elf.uint(at + 24, 4)? as u32,
                    )
                })
            };
            let (mut count, mut strndx) = (shnum, shstrndx);
            if let Some((_, _, _, size0, link0)) = header(0) {
                if count == 0 {
                    count = size0; // extended numbering
                }
                if strndx == 0xffff {
                    strndx = u64::from(link0);
                }
            }
            let count = count.min(1 << 16);
            let raw: Vec<_> = (0..count).map_while(header).collect();
            let strtab = raw
                .get(strndx as usize)
                .and_then(|&(_, _, off, size, _)| elf.slice(off, size));
            elf.sections = raw
                .iter()
                .map(|&(name_off, kind, offset, size, _)| {
                    let name = strtab
                        .and_then(|t| t.get(name_off as usize..))
                        .and_then(|t| t.iter().position(|&b| b == 0).map(|end| &t[..end]))
                        .map(|n| String::from_utf8_lossy(n).into_owned())
                        .unwrap_or_default();
                    Section {
                        name,
                        kind,
                        offset,
                        size,
                    }
                })
                .collect();
        }
        Ok(elf)
    }

    fn uint(&self, at: usize, n: usize) -> Option<u64> {
        let b = self.data.get(at..at.checked_add(n)?)?;
        let mut v: u64 = 0;
        for i in 0..n {
            let byte = if self.big_endian { b[i] } else { b[n - 1 - i] };
            v = (v << 8) | u64::from(byte);
        }
        Some(v)
    }

    fn slice(&self, offset: u64, size: u64) -> Option<&'a [u8]> {
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        self.data.get(start..end)
    }

    /// The file bytes of the section called `name`.
    pub fn section(&self, name: &str) -> Option<&'a [u8]> {
        let s = self.sections.iter().find(|s| s.name == name && s.kind != SHT_NOBITS)?;
        self.slice(s.offset, s.size)
    }

    pub fn has_sections(&self) -> bool {
        !self.sections.is_empty()
    }

    pub fn load_segments(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.kind == PT_LOAD)
    }

    pub fn segment_data(&self, s: &Segment) -> Option<&'a [u8]> {
        self.slice(s.offset, s.filesz)
    }

    /// `len` bytes at virtual address `addr`, when a loaded segment holds them in the file.
    pub fn read_vaddr(&self, addr: u64, len: u64) -> Option<&'a [u8]> {
        let s = self
            .load_segments()
            .find(|s| addr >= s.vaddr && addr - s.vaddr < s.filesz)?;
        let rel = addr - s.vaddr;
        if len > s.filesz - rel {
            return None;
        }
        self.slice(s.offset + rel, len)
    }
}

/// Test helper: a minimal little-endian ELF64 with one PT_LOAD segment
/// covering the whole file at `vaddr` and the given named sections.
#[cfg(test)]
pub(crate) fn build_elf64(vaddr: u64, sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; 64 + 56];
    let mut placed = Vec::new();
    for (name, data) in sections {
        while !out.len().is_multiple_of(16) {
            out.push(0);
        }
        placed.push((out.len() as u64, data.len() as u64, *name));
        out.extend_from_slice(data);
    }
    let mut strtab = vec![0u8];
    let mut names = Vec::new();
    for (_, _, name) in &placed {
        names.push(strtab.len() as u32);
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
    }
    let shstr_name = strtab.len() as u32;
    strtab.extend_from_slice(b".shstrtab\0");
    let strtab_off = out.len() as u64;
    out.extend_from_slice(&strtab);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let sh = |out: &mut Vec<u8>, name: u32, kind: u32, off: u64, size: u64| {
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&name.to_le_bytes());
        h[4..8].copy_from_slice(&kind.to_le_bytes());
        h[24..32].copy_from_slice(&off.to_le_bytes());
        h[32..40].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&h);
    };
    sh(&mut out, 0, 0, 0, 0);
    for ((off, size, _), name) in placed.iter().zip(&names) {
        sh(&mut out, *name, 1, *off, *size);
    }
    sh(&mut out, shstr_name, 3, strtab_off, strtab.len() as u64);
    let total = out.len() as u64;
    out[0..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&2u16.to_le_bytes());
    out[18..20].copy_from_slice(&62u16.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes());
    out[40..48].copy_from_slice(&shoff.to_le_bytes());
    out[52..54].copy_from_slice(&64u16.to_le_bytes());
    out[54..56].copy_from_slice(&56u16.to_le_bytes());
    out[56..58].copy_from_slice(&1u16.to_le_bytes());
    out[58..60].copy_from_slice(&64u16.to_le_bytes());
    out[60..62].copy_from_slice(&(placed.len() as u16 + 2).to_le_bytes());
    out[62..64].copy_from_slice(&(placed.len() as u16 + 1).to_le_bytes());
    let ph = &mut out[64..120];
    ph[0..4].copy_from_slice(&PT_LOAD.to_le_bytes());
    ph[4..8].copy_from_slice(&(4u32 | PF_W).to_le_bytes());
    ph[8..16].copy_from_slice(&0u64.to_le_bytes());
    ph[16..24].copy_from_slice(&vaddr.to_le_bytes());
    ph[32..40].copy_from_slice(&total.to_le_bytes());
    ph[40..48].copy_from_slice(&total.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_vaddrs() {
        let f = build_elf64(0x400000, &[(".dep-v0", b"hello"), (".other", b"world!")]);
        let e = Elf::parse(&f).unwrap();
        assert_eq!(e.section(".dep-v0"), Some(&b"hello"[..]));
        assert_eq!(e.section(".other"), Some(&b"world!"[..]));
        assert_eq!(e.section(".nope"), None);
        assert_eq!(e.read_vaddr(0x400000, 4), Some(&b"\x7fELF"[..]));
        assert_eq!(e.read_vaddr(0x300000, 4), None);
        // Truncations and garbage never panic.
        for n in 0..f.len() {
            if let Ok(e) = Elf::parse(&f[..n]) {
                let _ = e.section(".dep-v0");
                let _ = e.read_vaddr(0x400000 + n as u64, 1 << 40);
            }
        }
        let mut junk = f.clone();
        for b in junk.iter_mut().skip(16).step_by(3) {
            *b = 0xff;
        }
        if let Ok(e) = Elf::parse(&junk) {
            let _ = e.section(".dep-v0");
        }
    }
}
