//! `layer_apply`: a hostile layer applied into a root inside a parent
//! directory; oracle: nothing in the parent outside the root changes (no
//! file written, linked, chmod-ed, touched or removed there), the root
//! stays a directory, and no panic.
//!
//! Input: a mode byte, then either (bit 0 clear) the layer's bytes as they
//! are (plain, gzip or zstd: sniffed), or (bit 0 set) a structured list of
//! [`Entry`]s written as a tar with raw headers (names unchecked, so `..`,
//! absolute names, long names, links and whiteouts all get through). Bits
//! 1-2 pick the whiteout mode (apply, overlay with a lower layer, plain),
//! bit 3 follows symlinks inside the root (as `ADD` does).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use sha2::Digest as _;
use strata_layer::{UnpackOptions, WhiteoutMode, unpack};

/// Path components the structured entries are made of, so that names meet
/// the planted symlinks, each other, and the way out.
const WORDS: &[&str] = &[
    "a",
    "b",
    "..",
    ".",
    "",
    "up",
    "abs",
    "loop",
    "out",
    "secret",
    ".wh.a",
    ".wh..wh..opq",
    ".wh.up",
    "etc",
    "link",
];

#[derive(Debug, Arbitrary)]
enum Part {
    Word(u8),
    Any(String),
}

#[derive(Debug, Arbitrary)]
struct Entry {
    kind: u8,
    absolute: bool,
    name: Vec<Part>,
    link: Vec<Part>,
    mode: u32,
    size_delta: i8,
    data: Vec<u8>,
    pax: Vec<(u8, Vec<Part>)>,
}

const KINDS: &[u8] = b"0123456757LKxgS";
const PAX_KEYS: &[&str] = &[
    "path",
    "linkpath",
    "size",
    "uid",
    "gid",
    "mtime",
    "SCHILY.xattr.user.x",
    "GNU.sparse.map",
];

fn join(parts: &[Part], absolute: bool) -> Vec<u8> {
    let mut out = Vec::new();
    if absolute {
        out.push(b'/');
    }
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        match p {
            Part::Word(w) => out.extend_from_slice(WORDS[*w as usize % WORDS.len()].as_bytes()),
            Part::Any(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
    out
}

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(512) * 512, 0);
}

fn raw_member(out: &mut Vec<u8>, kind: u8, name: &[u8], link: &[u8], mode: u32, size: u64, data: &[u8]) {
    if name.len() > 100 {
        raw_member(
            out,
            b'L',
            b"././@LongLink",
            b"",
            0o644,
            name.len() as u64 + 1,
            &[name, b"\0"].concat(),
        );
    }
    if link.len() > 100 {
        raw_member(
            out,
            b'K',
            b"././@LongLink",
            b"",
            0o644,
            link.len() as u64 + 1,
            &[link, b"\0"].concat(),
        );
    }
    let mut h = tar::Header::new_gnu();
    let n = name.len().min(100);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    h.as_old_mut().linkname[..l].copy_from_slice(&link[..l]);
    h.set_mode(mode & 0o7777);
    h.set_size(size);
    h.set_mtime(1_000_000);
    h.as_old_mut().linkflag = [kind];
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    pad(out);
}

/// The structured entries as a tar stream.
fn entries_tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.pax.is_empty() {
            let mut body = Vec::new();
            for (k, v) in &e.pax {
                let key = PAX_KEYS[*k as usize % PAX_KEYS.len()];
                let value = join(v, false);
                let rest = key.len() + value.len() + 3;
                let mut len = rest + 1;
                while len.to_string().len() + rest != len {
                    len += 1;
                }
                body.extend_from_slice(format!("{len} {key}=").as_bytes());
                body.extend_from_slice(&value);
                body.push(b'\n');
            }
            raw_member(&mut out, b'x', b"pax", b"", 0o644, body.len() as u64, &body);
        }
        let kind = KINDS[e.kind as usize % KINDS.len()];
        let size = (e.data.len() as i64 + e.size_delta as i64).max(0) as u64;
        raw_member(
            &mut out,
            kind,
            &join(&e.name, e.absolute),
            &join(&e.link, false),
            e.mode,
            size,
            &e.data,
        );
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Everything under `dir` but `skip`, by path: type, mode, owner, links,
/// size, modification time and content (files) or target (symlinks).
fn listing(dir: &Path, skip: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        let key = p.display().to_string();
        if p == skip {
            out.insert(key, format!("root dir={}", m.is_dir()));
            continue;
        }
        let mut v = format!("{:o} {}:{} n{} ", m.mode(), m.uid(), m.gid(), m.nlink());
        if m.file_type().is_symlink() {
            v += &format!("-> {:?}", fs::read_link(&p).ok());
        } else if m.is_file() {
            let mut h = sha2::Sha256::new();
            let mut buf = Vec::new();
            if let Ok(mut f) = fs::File::open(&p) {
                let _ = f.read_to_end(&mut buf);
            }
            h.update(&buf);
            v += &format!("{} {} {:x?}", m.len(), m.mtime(), &h.finalize()[..8]);
        }
        out.insert(key, v);
        if m.is_dir() {
            listing(&p, skip, out);
        }
    }
}

/// Applies `layer` into `parent/root` after planting a way out, and checks
/// that nothing outside the root changed.
pub fn apply_contained(layer: &[u8], mode: u8) {
    let parent = tempfile::tempdir().expect("a temporary directory");
    let p = parent.path();
    let root = p.join("root");
    let lower = p.join("lower");
    fs::create_dir_all(p.join("out/sub")).unwrap();
    fs::write(p.join("out/secret"), b"outside").unwrap();
    fs::write(p.join("out/sub/deep"), b"outside too").unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(lower.join("a")).unwrap();
    fs::write(root.join("etc/file"), b"inside").unwrap();
    fs::write(root.join("a"), b"inside a").unwrap();
    fs::write(lower.join("a/b"), b"lower").unwrap();
    symlink("../out", root.join("up")).unwrap();
    symlink(p.join("out"), root.join("abs")).unwrap();
    symlink("../out/secret", root.join("secret")).unwrap();
    symlink("loop", root.join("loop")).unwrap();
    symlink("../out", lower.join("up")).unwrap();
    let mut before = BTreeMap::new();
    listing(p, &root, &mut before);
    let opts = UnpackOptions {
        whiteouts: match (mode >> 1) % 3 {
            0 => WhiteoutMode::Apply,
            1 => WhiteoutMode::Overlay,
            _ => WhiteoutMode::Plain,
        },
        chown: false,
        devices: false,
        lowers: if (mode >> 1) % 3 == 1 {
            vec![lower.clone()]
        } else {
            Vec::new()
        },
        max_unpacked_size: 64 << 20,
        follow_symlinks: mode & 8 != 0,
    };
    let _ = unpack(layer, &root, &opts);
    let mut after = BTreeMap::new();
    listing(p, &root, &mut after);
    if before != after {
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .chain(before.iter().filter(|(k, _)| !after.contains_key(*k)))
            .collect();
        panic!("the layer changed the parent outside its root: {changed:?}");
    }
    assert!(
        fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()),
        "the root is no longer a directory"
    );
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        apply_contained(rest, mode);
        return;
    }
    let mut u = Unstructured::new(rest);
    let Ok(entries) = Vec::<Entry>::arbitrary(&mut u) else {
        return;
    };
    if entries.len() > 64 {
        return;
    }
    apply_contained(&entries_tar(&entries), mode);
}
