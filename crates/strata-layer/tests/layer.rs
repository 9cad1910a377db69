//! Layers: deterministic writing, round trips, whiteouts and hostile tars.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use strata_layer::{Compression, LayerError, UnpackOptions, WhiteoutMode, WriteOptions, recompress, unpack};

/// A raw tar entry: the name is written as given, unchecked.
struct E<'a> {
    name: &'a str,
    kind: tar::EntryType,
    link: &'a str,
    data: &'a [u8],
    pax: Vec<(&'a str, &'a [u8])>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Regular,
        link: "",
        data,
        pax: vec![],
    }
}
fn dir(name: &str) -> E<'_> {
    E {
        name,
        kind: tar::EntryType::Directory,
        link: "",
        data: b"",
        pax: vec![],
    }
}
fn symlink_e<'a>(name: &'a str, target: &'a str) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Symlink,
        link: target,
        data: b"",
        pax: vec![],
    }
}
fn hardlink<'a>(name: &'a str, target: &'a str) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Link,
        link: target,
        data: b"",
        pax: vec![],
    }
}

fn raw_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.pax.is_empty() {
            b.append_pax_extensions(e.pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        h.set_entry_type(e.kind);
        h.set_mode(if e.kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(e.data.len() as u64);
        h.set_mtime(1_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn apply(tar: &[u8], root: &Path) -> Result<strata_layer::UnpackReport, LayerError> {
    unpack(tar, root, &UnpackOptions::default())
}

fn plain() -> WriteOptions {
    WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: None,
    }
}

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::write(root.join("bin/busybox"), vec![7u8; 300_000]).unwrap();
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o4755)).unwrap();
    symlink("/bin/busybox", root.join("bin/sh")).unwrap();
    fs::hard_link(root.join("bin/busybox"), root.join("bin/ls")).unwrap();
    fs::write(root.join("etc/deep/er/file"), b"hello").unwrap();
    let long = "x".repeat(180);
    fs::write(root.join("etc").join(&long), b"long name").unwrap();
    symlink("a".repeat(150), root.join("etc/longlink")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("etc/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

#[test]
fn writing_is_deterministic_and_hashes_both_forms() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    sample_tree(&src);
    let mut a = Vec::new();
    let da = strata_layer::write_dir_layer(&src, &plain(), &mut a).unwrap();
    let mut b = Vec::new();
    let db = strata_layer::write_dir_layer(&src, &plain(), &mut b).unwrap();
    assert_eq!(a, b);
    assert_eq!(da, db);
    assert_eq!(da.digest, da.diff_id);
    assert_eq!(da.size, a.len() as u64);
    for c in [Compression::Gzip, Compression::Zstd] {
        let mut out = Vec::new();
        let opts = WriteOptions {
            compression: c,
            level: None,
            source_date_epoch: None,
        };
        let d = strata_layer::write_dir_layer(&src, &opts, &mut out).unwrap();
        assert_eq!(d.diff_id, da.diff_id, "{c:?}");
        assert_ne!(d.digest, d.diff_id);
        assert_eq!(d.digest, strata_oci::Digest::sha256_of(&out));
        // Recompressing back to plain gives the same bytes.
        let mut back = Vec::new();
        let r = recompress(&out[..], &plain(), &mut back).unwrap();
        assert_eq!(r.diff_id, da.diff_id);
        assert_eq!(back, a);
    }
    // SOURCE_DATE_EPOCH clamps every time.
    let mut e1 = Vec::new();
    let opts = WriteOptions {
        source_date_epoch: Some(100),
        ..plain()
    };
    strata_layer::write_dir_layer(&src, &opts, &mut e1).unwrap();
    let mut ar = tar::Archive::new(&e1[..]);
    for e in ar.entries().unwrap() {
        assert_eq!(e.unwrap().header().mtime().unwrap(), 100);
    }
}

#[test]
fn round_trip_keeps_files_links_and_modes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    sample_tree(&src);
    let mut tar = Vec::new();
    let d = strata_layer::write_dir_layer(&src, &WriteOptions::default(), &mut tar).unwrap();
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let r = apply(&tar, &dst).unwrap();
    assert_eq!(r.diff_id, d.diff_id);
    assert_eq!(fs::read(dst.join("bin/busybox")).unwrap().len(), 300_000);
    assert_eq!(
        fs::metadata(dst.join("bin/busybox")).unwrap().permissions().mode() & 0o7777,
        0o4755
    );
    assert_eq!(fs::read_link(dst.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    assert_eq!(
        fs::metadata(dst.join("bin/ls")).unwrap().ino(),
        fs::metadata(dst.join("bin/busybox")).unwrap().ino()
    );
    assert_eq!(fs::read(dst.join("etc").join("x".repeat(180))).unwrap(), b"long name");
    assert_eq!(
        fs::read_link(dst.join("etc/longlink")).unwrap(),
        Path::new(&"a".repeat(150))
    );
    assert!(
        fs::symlink_metadata(dst.join("etc/fifo"))
            .unwrap()
            .file_type()
            .is_fifo_like()
    );
    // Writing the unpacked tree again gives the same diff ID.
    let d2 = strata_layer::write_dir_layer(&dst, &WriteOptions::default(), std::io::sink()).unwrap();
    assert_eq!(d2.diff_id, d.diff_id);
}

trait FifoLike {
    fn is_fifo_like(&self) -> bool;
}
impl FifoLike for fs::FileType {
    fn is_fifo_like(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo()
    }
}

#[test]
fn whiteouts_apply_and_opaque_keeps_own_entries() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    apply(
        &raw_tar(&[
            dir("a/"),
            file("a/b", b"1"),
            file("a/c", b"2"),
            dir("d/"),
            file("d/old", b"3"),
            dir("d/sub/"),
        ]),
        &root,
    )
    .unwrap();
    apply(
        &raw_tar(&[
            file("a/.wh.b", b""),
            file("d/new", b"4"),
            file("d/.wh..wh..opq", b""),
            file(".wh.nothing", b""),
        ]),
        &root,
    )
    .unwrap();
    assert!(!root.join("a/b").exists());
    assert!(root.join("a/c").exists());
    let mut names: Vec<_> = fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["new"]);
}

#[test]
fn overlay_form_round_trips_through_upper_writer() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: overlay form needs root (mknod, trusted xattrs)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layer = t.path().join("layer");
    fs::create_dir(&layer).unwrap();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Overlay,
        ..UnpackOptions::default()
    };
    let tar = raw_tar(&[
        dir("a/"),
        file("a/.wh.gone", b""),
        dir("o/"),
        file("o/.wh..wh..opq", b""),
        file("o/kept", b"k"),
    ]);
    unpack(&tar[..], &layer, &opts).unwrap();
    let st = rustix::fs::stat(layer.join("a/gone")).unwrap();
    assert_eq!(
        rustix::fs::FileType::from_raw_mode(st.st_mode),
        rustix::fs::FileType::CharacterDevice
    );
    assert_eq!(st.st_rdev, 0);
    let mut v = [0u8; 2];
    assert_eq!(
        rustix::fs::getxattr(layer.join("o"), "trusted.overlay.opaque", &mut v).unwrap(),
        1
    );
    let mut out = Vec::new();
    strata_layer::write_overlay_upper_layer(&layer, &plain(), &mut out).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&out[..]).entries().unwrap() {
        names.push(String::from_utf8(e.unwrap().path_bytes().to_vec()).unwrap());
    }
    assert_eq!(names, ["a/", "a/.wh.gone", "o/", "o/.wh..wh..opq", "o/kept"]);
}

/// Every hostile layer fails with `needle` in its message and leaves the
/// directory next to the root untouched.
fn refuse(layers: &[Vec<u8>], needle: &str) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("passwd"), b"host").unwrap();
    fs::create_dir_all(outside.join("sub/deeper")).unwrap();
    fs::write(outside.join("sub/deeper/file"), b"sentinel").unwrap();
    symlink("passwd", outside.join("link")).unwrap();
    fs::write(t.path().join("next-to-root"), b"sentinel").unwrap();
    let before = tree_hash(t.path(), &root);
    let mut err = None;
    for l in layers {
        if let Err(e) = apply(l, &root) {
            err = Some(e);
            break;
        }
    }
    let err = err
        .unwrap_or_else(|| panic!("accepted a layer that should fail with {needle:?}"))
        .to_string();
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(tree_hash(t.path(), &root), before, "something outside the root changed");
    // The stream check refuses the last layer too (recompress = load/import path).
    let last = layers.last().unwrap();
    // (A missing hard link target may be in a lower layer: only unpack knows.)
    if layers.len() == 1 && needle != "does not exist" {
        assert!(
            recompress(&last[..], &plain(), std::io::sink()).is_err(),
            "recompress accepted {needle:?}"
        );
    }
}

#[test]
fn hostile_layers_are_refused() {
    let out = "../outside/passwd";
    refuse(&[raw_tar(&[file(out, b"evil")])], "..");
    refuse(&[raw_tar(&[file("a/../../outside/x", b"evil")])], "..");
    refuse(&[raw_tar(&[file("/abs", b"evil")])], "absolute");
    refuse(&[raw_tar(&[hardlink("l", "../outside/passwd")])], "leaves the root");
    refuse(&[raw_tar(&[hardlink("l", "nothing/here")])], "does not exist");
    refuse(&[raw_tar(&[file(".wh.", b"")])], "bogus whiteout");
    refuse(&[raw_tar(&[file("d/.wh..", b"")])], "bogus whiteout");
    refuse(&[raw_tar(&[file("d/.wh...", b"")])], "bogus whiteout");
    // A symlink planted by an earlier entry of the same layer...
    let abs = format!("{}", tempfile::tempdir().unwrap().path().display());
    refuse(
        &[raw_tar(&[symlink_e("etc", "../outside"), file("etc/passwd", b"evil")])],
        "symlink",
    );
    refuse(
        &[raw_tar(&[symlink_e("etc", &abs), file("etc/passwd", b"evil")])],
        "symlink",
    );
    // ...or by an earlier layer.
    refuse(
        &[
            raw_tar(&[symlink_e("etc", "../outside")]),
            raw_tar(&[file("etc/passwd", b"evil")]),
        ],
        "symlink",
    );
    refuse(
        &[
            raw_tar(&[symlink_e("etc", "/")]),
            raw_tar(&[file(".wh.x", b""), file("etc/../x", b"")]),
        ],
        "..",
    );
    // A hard link whose target later becomes a symlink.
    refuse(
        &[raw_tar(&[
            file("f", b"x"),
            hardlink("l", "f"),
            symlink_e("f", "/etc/shadow"),
        ])],
        "hard link",
    );
    // A hard link through a planted symlink.
    refuse(
        &[raw_tar(&[symlink_e("s", "../outside"), hardlink("l", "s/passwd")])],
        "symlink",
    );
    // Overlay xattrs from the image.
    let mut e = file("f", b"x");
    e.pax = vec![("SCHILY.xattr.trusted.overlay.opaque", b"y")];
    refuse(&[raw_tar(&[e])], "overlay");
}

#[test]
fn overlay_mode_refuses_paths_through_lower_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let lower = t.path().join("lower");
    let upper = t.path().join("upper");
    fs::create_dir_all(&lower).unwrap();
    fs::create_dir_all(&upper).unwrap();
    symlink("/tmp/x", lower.join("etc")).unwrap();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Overlay,
        lowers: vec![lower.clone()],
        ..UnpackOptions::default()
    };
    let err = unpack(&raw_tar(&[file("etc/passwd", b"evil")])[..], &upper, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("symlink"), "{err}");
    // Replacing the symlink with a directory first is fine.
    let upper2 = t.path().join("upper2");
    fs::create_dir_all(&upper2).unwrap();
    unpack(&raw_tar(&[dir("etc/"), file("etc/passwd", b"ok")])[..], &upper2, &opts).unwrap();
}

#[test]
fn broken_streams_say_what_is_wrong() {
    let good = raw_tar(&[file("big", &[b'y'; 4096])]);
    let mut liar = good.clone();
    liar.truncate(2048);
    let e = recompress(&liar[..], &plain(), std::io::sink())
        .unwrap_err()
        .to_string();
    assert!(e.contains("truncated"), "{e}");
    let t = tempfile::tempdir().unwrap();
    let e = apply(&liar, t.path()).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw_tar(&[file("a", &vec![b'z'; 100_000])])).unwrap();
    let mut gz = gz.finish().unwrap();
    gz.truncate(gz.len() / 2);
    let e = recompress(&gz[..], &plain(), std::io::sink()).unwrap_err().to_string();
    assert!(e.contains("gzip"), "{e}");

    let e = recompress(&[0x42u8; 5000][..], &plain(), std::io::sink())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tar"), "{e}");
}

/// A digest of [`listing`] `top`, except the root being unpacked into.
fn tree_hash(top: &Path, skip: &Path) -> String {
    strata_oci::Digest::sha256_of(listing(top, Some(skip)).join("\n").as_bytes()).to_string()
}

/// Compressed layers are decompressed on a thread of their own while they
/// unpack: what they contain, their errors (corrupt, truncated, a hostile
/// entry early in a long stream) and the diff ID are as with plain input.
#[test]
fn compressed_layers_unpack_as_plain_ones() {
    let mut entries = Vec::new();
    let names: Vec<String> = (0..400).map(|i| format!("d/f{i}")).collect();
    let datas: Vec<Vec<u8>> = (0..400).map(|i| vec![(i % 251) as u8; 3000 + i * 17]).collect();
    entries.push(dir("d"));
    for (n, d) in names.iter().zip(&datas) {
        entries.push(file(n, d));
    }
    let tar = raw_tar(&entries);
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let plain_root = tempfile::tempdir().unwrap();
    let want = apply(&tar, plain_root.path()).unwrap();
    for (what, bytes) in [("gzip", &gz), ("zstd", &zst)] {
        let t = tempfile::tempdir().unwrap();
        let got = apply(bytes, t.path()).unwrap();
        assert_eq!(got.diff_id, want.diff_id, "{what}");
        assert_eq!(got.entries, want.entries, "{what}");
        assert_eq!(listing(t.path(), None), listing(plain_root.path(), None), "{what}");
        // Cut in the middle: truncated, naming the compression.
        let t = tempfile::tempdir().unwrap();
        let e = apply(&bytes[..bytes.len() / 2], t.path()).unwrap_err().to_string();
        assert!(e.contains(what) || e.contains("truncated"), "{what}: {e}");
    }
    // A corrupt byte in the gzip body.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad[mid + 1] ^= 0x55;
    let t = tempfile::tempdir().unwrap();
    assert!(apply(&bad, t.path()).is_err());
    // A hostile first entry in front of a long stream: refused at once,
    // and the decompressing thread stops (the call returns).
    let mut hostile = raw_tar(&[file("../escape", b"x")]);
    hostile.truncate(hostile.len() - 1024);
    hostile.extend_from_slice(&tar);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(&hostile).unwrap();
    for _ in 0..20 {
        e.write_all(&tar).unwrap();
    }
    let t = tempfile::tempdir().unwrap();
    let err = apply(&e.finish().unwrap(), t.path()).unwrap_err().to_string();
    assert!(err.contains(".."), "{err}");
}

/// Every path under `root` (relative, sorted) but `skip`, with its type and
/// mode, owner, and link target or content digest.
fn listing(root: &Path, skip: Option<&Path>) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, skip: Option<&Path>, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for p in names {
            if Some(p.as_path()) == skip {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            let extra = if m.file_type().is_symlink() {
                fs::read_link(&p).unwrap().display().to_string()
            } else if m.is_file() {
                strata_oci::Digest::sha256_of(&fs::read(&p).unwrap()).to_string()
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {extra}",
                p.strip_prefix(root).unwrap().display(),
                m.mode(),
                m.uid(),
                m.gid()
            ));
            if m.is_dir() {
                walk(root, &p, skip, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, skip, &mut out);
    out
}
