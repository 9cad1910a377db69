//! Go binaries: the build info the linker embeds (`\xff Go buildinf:`), in
//! the Go 1.18+ inline format (varint-prefixed strings after the 32-byte
//! header) and the older pointer format (addresses of Go strings, read
//! through the program headers). Gives the main module, its dependencies
//! (with `=>` replacements applied) and the Go version (package `stdlib`).

use crate::elf::{Elf, PF_W};
use crate::model::{Package, PackageType};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const ALIGN: usize = 16;
const HEADER: usize = 32;
/// Longest version or module-info string believed (a real one is a few KiB).
const MAX_STRING: u64 = 16 << 20;

pub(crate) struct BuildInfo {
    pub go_version: String,
    pub modinfo: String,
}

pub(crate) fn catalog_binary(data: &[u8], path: &str, notes: &mut Vec<String>) -> Vec<Package> {
    let Ok(elf) = Elf::parse(data) else { return Vec::new() };
    match read_build_info(&elf) {
        None => Vec::new(),
        Some(Err(e)) => {
            notes.push(format!(
                "a Go binary whose build info cannot be read ({e}); its modules are not listed"
            ));
            Vec::new()
        }
        Some(Ok(bi)) => packages(&bi, path),
    }
}

/// `None`: not a Go binary.
pub(crate) fn read_build_info(elf: &Elf) -> Option<Result<BuildInfo, String>> {
    // Where Go's debug/buildinfo looks: the section, else (no section
    // headers) the first writable loaded segment.
    let region = match elf.section(".go.buildinfo") {
        Some(s) => s,
        None if !elf.has_sections() => elf
            .load_segments()
            .find(|s| s.flags & PF_W != 0)
            .and_then(|s| elf.segment_data(s))?,
        None => return None,
    };
    let at = find_magic(region)?;
    let h = &region[at..];
    if h.len() < HEADER {
        return Some(Err("truncated header".into()));
    }
    let ptr_size = h[14] as usize;
    let flags = h[15];
    let (version, modinfo) = if flags & 2 != 0 {
        let Some((v, rest)) = varint_string(&h[HEADER..]) else {
            return Some(Err("truncated version".into()));
        };
        let Some((m, _)) = varint_string(rest) else {
            return Some(Err("truncated module info".into()));
        };
        (v.to_vec(), m.to_vec())
    } else {
        if ptr_size != 4 && ptr_size != 8 {
            return Some(Err(format!("pointer size {ptr_size}")));
        }
        let big = flags != 0;
        let ptr = |b: &[u8]| -> Option<u64> {
            let b = b.get(..ptr_size)?;
            let mut v = 0u64;
            for i in 0..ptr_size {
                v = (v << 8) | u64::from(if big { b[i] } else { b[ptr_size - 1 - i] });
            }
            Some(v)
        };
        let string = |addr: u64| -> Option<Vec<u8>> {
            let hdr = elf.read_vaddr(addr, 2 * ptr_size as u64)?;
            let (data, len) = (ptr(hdr)?, ptr(&hdr[ptr_size..])?);
            if len > MAX_STRING {
                return None;
            }
            elf.read_vaddr(data, len).map(<[u8]>::to_vec)
        };
        let v = ptr(&h[16..]).and_then(string);
        let m = ptr(&h[16 + ptr_size..]).and_then(string);
        match (v, m) {
            (Some(v), Some(m)) => (v, m),
            _ => return Some(Err("a string pointer leads outside the file".into())),
        }
    };
    if version.is_empty() {
        return Some(Err("no Go version".into()));
    }
    // Module info is framed by 16-byte sentinels.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        modinfo[16..modinfo.len() - 16].to_vec()
    } else {
        Vec::new()
    };
    Some(Ok(BuildInfo {
        go_version: String::from_utf8_lossy(&version).into_owned(),
        modinfo: String::from_utf8_lossy(&modinfo).into_owned(),
    }))
}

fn find_magic(region: &[u8]) -> Option<usize> {
    let mut from = 0;
    while from < region.len() {
        let i = from + region[from..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        if i.is_multiple_of(ALIGN) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

fn varint_string(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut n: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let rest = &b[i + 1..];
            if n > MAX_STRING || n as usize > rest.len() {
                return None;
            }
            return Some(rest.split_at(n as usize));
        }
    }
    None
}

/// Packages from module info lines (`path`, `mod`, `dep`, `=>`, `build`).
fn packages(bi: &BuildInfo, location: &str) -> Vec<Package> {
    // `go1.21.5`, `go1.21.5 X:boringcrypto`, `devel go1.23-abcdef Tue …`
    let mut words = bi.go_version.split_whitespace();
    let go = match words.next() {
        Some("devel") => words.next().unwrap_or("devel"),
        w => w.unwrap_or(""),
    };
    let go = go.strip_prefix("go").unwrap_or(go);
    let mut out: Vec<Package> = Vec::new();
    for line in bi.modinfo.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["mod", path, version, rest @ ..] | ["dep", path, version, rest @ ..] => {
                let mut p = Package::new(PackageType::GoModule, *path, *version, location).meta("goVersion", go);
                if let Some(sum) = rest.first() {
                    p = p.meta("checksum", *sum);
                }
                if f[0] == "mod" {
                    p = p.meta("mainModule", "true");
                }
                out.push(p);
            }
            ["=>", path, version, rest @ ..] => {
                // Replaces the previous module: by another module (which is
                // what was built), or by a local directory (the required
                // path and version stay, the directory is noted).
                let Some(p) = out.last_mut() else { continue };
                if path.starts_with('.') || path.starts_with('/') || version.is_empty() || *version == "(devel)" {
                    p.metadata.insert("replacement".into(), path.to_string());
                } else {
                    p.name = path.to_string();
                    p.version = version.to_string();
                    p.metadata.remove("checksum");
                    if let Some(sum) = rest.first().filter(|s| !s.is_empty()) {
                        p.metadata.insert("checksum".into(), sum.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if !go.is_empty() {
        out.push(Package::new(PackageType::GoModule, "stdlib", go, location).meta("goVersion", go));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::build_elf64;

    const MODINFO: &str = "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\n\
dep\tgolang.org/x/text\tv0.14.0\th1:abc=\ndep\texample.com/old\tv1.0.0\th1:x=\n=>\texample.com/new\tv1.1.0\th1:y=\n\
dep\texample.com/local\tv0.0.0\n=>\t./local\t\t\nbuild\tGOOS=linux\n";

    /// Go frames module info with two 16-byte sentinels; the text ends in a newline.
    fn framed(s: &str) -> Vec<u8> {
        let mut m = vec![b'0'; 16];
        m.extend_from_slice(s.as_bytes());
        m.extend_from_slice(&[b'1'; 16]);
        m
    }

    fn check(pkgs: &[Package]) {
        let got: Vec<(&str, &str)> = pkgs.iter().map(|p| (p.name.as_str(), p.version.as_str())).collect();
        assert_eq!(
            got,
            [
                ("example.com/hello", "(devel)"),
                ("golang.org/x/text", "v0.14.0"),
                ("example.com/new", "v1.1.0"),
                ("example.com/local", "v0.0.0"),
                ("stdlib", "1.21.5"),
            ]
        );
        assert_eq!(pkgs[0].metadata.get("mainModule").map(String::as_str), Some("true"));
    }

    #[test]
    fn go_version_strings() {
        for (raw, want) in [
            ("go1.21.5", "1.21.5"),
            ("go1.21.5 X:boringcrypto", "1.21.5"),
            ("devel go1.23-abc Tue", "1.23-abc"),
        ] {
            let bi = BuildInfo {
                go_version: raw.into(),
                modinfo: String::new(),
            };
            let p = packages(&bi, "x");
            assert_eq!((p[0].name.as_str(), p[0].version.as_str()), ("stdlib", want));
        }
    }

    #[test]
    fn inline_format() {
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 2]);
        s.resize(HEADER, 0);
        let v = b"go1.21.5";
        let m = framed(MODINFO);
        s.push(v.len() as u8);
        s.extend_from_slice(v);
        let mut n = m.len();
        while n >= 0x80 {
            s.push((n as u8) | 0x80);
            n >>= 7;
        }
        s.push(n as u8);
        s.extend_from_slice(&m);
        let f = build_elf64(0x400000, &[(".go.buildinfo", &s)]);
        let mut notes = Vec::new();
        check(&catalog_binary(&f, "usr/bin/hello", &mut notes));
        assert!(notes.is_empty());
        // Truncated build info: a note or nothing, never a panic.
        for cut in [20, 40, s.len() - 5] {
            let f = build_elf64(0x400000, &[(".go.buildinfo", &s[..cut])]);
            let mut notes = Vec::new();
            assert!(catalog_binary(&f, "x", &mut notes).is_empty());
        }
    }

    #[test]
    fn pointer_format() {
        // Layout inside the section (file offsets are known once placed):
        // header(32) | string headers (2 × 16) | version bytes | modinfo bytes.
        let vaddr = 0x400000u64;
        let probe = build_elf64(vaddr, &[(".go.buildinfo", &[0u8; 1])]);
        let e = Elf::parse(&probe).unwrap();
        let sec_off = e.section(".go.buildinfo").unwrap().as_ptr() as usize - probe.as_ptr() as usize;
        let base = vaddr + sec_off as u64;
        let v = b"go1.21.5".to_vec();
        let m = framed(MODINFO);
        let (vh, mh, vd) = (base + 32, base + 48, base + 64);
        let md = vd + v.len() as u64;
        let mut s = MAGIC.to_vec();
        s.extend_from_slice(&[8, 0]);
        s.extend_from_slice(&vh.to_le_bytes());
        s.extend_from_slice(&mh.to_le_bytes());
        s.extend_from_slice(&vd.to_le_bytes());
        s.extend_from_slice(&(v.len() as u64).to_le_bytes());
        s.extend_from_slice(&md.to_le_bytes());
        s.extend_from_slice(&(m.len() as u64).to_le_bytes());
        s.extend_from_slice(&v);
        s.extend_from_slice(&m);
        let f = build_elf64(vaddr, &[(".go.buildinfo", &s)]);
        let mut notes = Vec::new();
        check(&catalog_binary(&f, "usr/bin/hello", &mut notes));
        // A pointer leading nowhere is a note.
        let mut bad = s.clone();
        bad[16..24].copy_from_slice(&0xdead_beef_u64.to_le_bytes());
        let f = build_elf64(vaddr, &[(".go.buildinfo", &bad)]);
        assert!(catalog_binary(&f, "x", &mut notes).is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
