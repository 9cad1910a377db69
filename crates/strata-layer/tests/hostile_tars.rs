//! Layers built to exhaust memory or disk, and `.wh.` names outside layer
//! application: refused, bounded, or written as plain files.

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use strata_layer::{Compression, LayerError, UnpackOptions, WhiteoutMode, WriteOptions, recompress, unpack};

const GIB: u64 = 1 << 30;

fn plain() -> WriteOptions {
    WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: None,
    }
}

fn pad(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(512) * 512, 0);
}

fn end(mut v: Vec<u8>) -> Vec<u8> {
    v.extend_from_slice(&[0u8; 1024]);
    v
}

/// A raw header (ustar, or GNU for `gnu`), checksummed.
fn header(name: &str, kind: tar::EntryType, size: u64, gnu: bool) -> tar::Header {
    let mut h = if gnu {
        tar::Header::new_gnu()
    } else {
        tar::Header::new_ustar()
    };
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_000_000);
    h.set_cksum();
    h
}

/// Appends a member: header then content, padded.
fn member(v: &mut Vec<u8>, name: &str, kind: tar::EntryType, data: &[u8]) {
    v.extend_from_slice(header(name, kind, data.len() as u64, false).as_bytes());
    v.extend_from_slice(data);
    pad(v);
}

/// A PAX body of the given records (`key=value`), lengths computed.
fn pax_body(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len.to_string().len() + rest != len {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

/// A GNU sparse member of apparent size `real` whose data segments
/// (at most 4, each 512 bytes but the last) are `segs`.
fn sparse_member(v: &mut Vec<u8>, name: &str, real: u64, segs: &[(u64, &[u8])]) {
    let stored: u64 = segs.iter().map(|(_, d)| d.len() as u64).sum();
    let mut h = header(name, tar::EntryType::GNUSparse, stored, true);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real);
    for (i, (off, d)) in segs.iter().enumerate() {
        gnu.sparse[i].set_offset(*off);
        gnu.sparse[i].set_length(d.len() as u64);
    }
    h.set_cksum();
    v.extend_from_slice(h.as_bytes());
    for (_, d) in segs {
        v.extend_from_slice(d);
    }
    pad(v);
}

fn four_gib_sparse_layer() -> Vec<u8> {
    let mut v = Vec::new();
    member(&mut v, "d/", tar::EntryType::Directory, b"");
    sparse_member(
        &mut v,
        "d/big",
        4 * GIB,
        &[(0, &[b'x'; 512]), (4 * GIB - 512, &[b'y'; 512])],
    );
    end(v)
}

#[test]
fn a_sparse_entry_unpacks_with_holes() {
    let layer = four_gib_sparse_layer();
    assert!(layer.len() < 4096);
    let t = tempfile::tempdir().unwrap();
    let report = unpack(&layer[..], t.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(report.entries, 2);
    let big = t.path().join("d/big");
    let meta = fs::metadata(&big).unwrap();
    assert_eq!(meta.len(), 4 * GIB, "apparent size");
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "a 4 GiB sparse entry took {} MiB of disk",
        (meta.blocks() * 512) >> 20
    );
    let f = fs::File::open(&big).unwrap();
    let mut b = [0u8; 512];
    f.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(b, [b'x'; 512]);
    f.read_exact_at(&mut b, 2 * GIB).unwrap();
    assert_eq!(b, [0; 512]);
    f.read_exact_at(&mut b, 4 * GIB - 512).unwrap();
    assert_eq!(b, [b'y'; 512]);
    // The stream check (import/load) accepts it as well.
    recompress(&layer[..], &plain(), io::sink()).unwrap();
}

#[test]
fn the_unpacked_size_is_capped() {
    // A sparse file counts by its apparent size.
    let t = tempfile::tempdir().unwrap();
    let opts = UnpackOptions {
        max_unpacked_size: GIB,
        ..UnpackOptions::default()
    };
    let e = unpack(&four_gib_sparse_layer()[..], t.path(), &opts).unwrap_err();
    match &e {
        LayerError::UnpackedTooLarge {
            root,
            entry,
            total,
            cap,
        } => {
            assert_eq!((root.as_path(), entry.as_str()), (t.path(), "d/big"));
            assert_eq!((*total, *cap), (4 * GIB, GIB));
        }
        other => panic!("expected UnpackedTooLarge, got {other}"),
    }
    assert!(
        e.to_string().contains("d/big") && e.to_string().contains("1073741824"),
        "{e}"
    );
    assert!(!t.path().join("d/big").exists());
    // So do plain files, all together.
    let mut v = Vec::new();
    member(&mut v, "a", tar::EntryType::Regular, &[1; 600]);
    member(&mut v, "b", tar::EntryType::Regular, &[2; 600]);
    let layer = end(v);
    let opts = UnpackOptions {
        max_unpacked_size: 1000,
        ..UnpackOptions::default()
    };
    let t = tempfile::tempdir().unwrap();
    let e = unpack(&layer[..], t.path(), &opts).unwrap_err();
    assert!(
        matches!(&e, LayerError::UnpackedTooLarge { entry, total: 1200, cap: 1000, .. } if entry == "b"),
        "{e}"
    );
    let opts = UnpackOptions {
        max_unpacked_size: 1200,
        ..UnpackOptions::default()
    };
    let t = tempfile::tempdir().unwrap();
    unpack(&layer[..], t.path(), &opts).unwrap();
}

/// Unpacks `layer` into a fresh directory and returns the error.
fn refused(layer: &[u8]) -> LayerError {
    let t = tempfile::tempdir().unwrap();
    let e = unpack(layer, t.path(), &UnpackOptions::default()).expect_err("unpack accepted the layer");
    let again = recompress(layer, &plain(), io::sink()).expect_err("recompress accepted the layer");
    assert_eq!(e.to_string(), again.to_string(), "unpack and recompress agree");
    assert!(matches!(e, LayerError::TarLimit(_)), "{e}");
    e
}

fn with_pax(kind: tar::EntryType, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    member(&mut v, "PaxHeaders/f", kind, body);
    member(&mut v, "f", tar::EntryType::Regular, b"data");
    end(v)
}

#[test]
fn tar_metadata_is_capped_at_one_mib() {
    // A PAX header of exactly 1 MiB is fine; one byte more is not.
    let mib = 1usize << 20;
    let body = |len: usize| pax_body(&[("comment", &vec![b'c'; len - 17][..])]);
    assert_eq!(body(mib).len(), mib);
    for kind in [tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
        let t = tempfile::tempdir().unwrap();
        unpack(&with_pax(kind, &body(mib))[..], t.path(), &UnpackOptions::default()).unwrap();
        assert_eq!(fs::read(t.path().join("f")).unwrap(), b"data");
        let e = refused(&with_pax(kind, &body(mib + 1))).to_string();
        assert!(e.contains("PaxHeaders/f") && e.contains("1048576"), "{e}");
    }
    // GNU long names and long link names.
    for kind in [tar::EntryType::GNULongName, tar::EntryType::GNULongLink] {
        let mut v = Vec::new();
        let name = vec![b'n'; mib + 1];
        v.extend_from_slice(header("././@LongLink", kind, name.len() as u64, true).as_bytes());
        v.extend_from_slice(&name);
        pad(&mut v);
        member(&mut v, "f", tar::EntryType::Regular, b"data");
        let e = refused(&end(v)).to_string();
        assert!(e.contains("././@LongLink") && e.contains("1048576"), "{e}");
    }
}

#[test]
fn pax_records_per_header_are_capped() {
    let many: Vec<(&str, &[u8])> = vec![("comment", b"x"); 20_000];
    let body = pax_body(&many);
    assert!(body.len() < 1 << 20);
    for kind in [tar::EntryType::XHeader, tar::EntryType::XGlobalHeader] {
        let e = refused(&with_pax(kind, &body)).to_string();
        assert!(e.contains("PaxHeaders/f") && e.contains("records"), "{e}");
    }
    // A hundred records are fine.
    let t = tempfile::tempdir().unwrap();
    let some = pax_body(&many[..100]);
    unpack(
        &with_pax(tar::EntryType::XHeader, &some)[..],
        t.path(),
        &UnpackOptions::default(),
    )
    .unwrap();
}

/// A header claiming 2 GiB of PAX records.
fn huge_pax_header() -> Vec<u8> {
    header("PaxHeaders/huge", tar::EntryType::XHeader, 2 * GIB, false)
        .as_bytes()
        .to_vec()
}

#[test]
fn a_pax_size_record_moves_the_next_header() {
    // The header of `f` says 0 bytes, its PAX size 1024: the tar reader takes
    // the next 1024 bytes as content (a lookalike header among them).
    let mut v = Vec::new();
    member(
        &mut v,
        "PaxHeaders/f",
        tar::EntryType::XHeader,
        &pax_body(&[("size", b"1024")]),
    );
    v.extend_from_slice(header("f", tar::EntryType::Regular, 0, false).as_bytes());
    let mut content = huge_pax_header();
    content.resize(1024, b'z');
    v.extend_from_slice(&content);
    member(&mut v, "g", tar::EntryType::Regular, b"after");
    let layer = end(v);
    let t = tempfile::tempdir().unwrap();
    unpack(&layer[..], t.path(), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(t.path().join("f")).unwrap(), content);
    assert_eq!(fs::read(t.path().join("g")).unwrap(), b"after");
    recompress(&layer[..], &plain(), io::sink()).unwrap();

    // The other way round: the header says 1024 bytes, the PAX size 0, so
    // what looks like content is the next header, a huge PAX one.
    let mut v = Vec::new();
    member(
        &mut v,
        "PaxHeaders/f",
        tar::EntryType::XHeader,
        &pax_body(&[("size", b"0")]),
    );
    v.extend_from_slice(header("f", tar::EntryType::Regular, 1024, false).as_bytes());
    v.extend_from_slice(&huge_pax_header());
    v.extend_from_slice(&[b'a'; 512]);
    let e = refused(&end(v)).to_string();
    assert!(e.contains("PaxHeaders/huge") && e.contains("1048576"), "{e}");
}

#[test]
fn sparse_maps_are_capped() {
    // 4 entries in the header and 21 in each extension block: zero-length
    // data segments, so the map costs nothing in the stream but memory in
    // the reader.
    let blocks = 4000u64;
    let entries = 4 + 21 * blocks;
    let mut v = Vec::new();
    let mut h = header("sparse", tar::EntryType::GNUSparse, 0, true);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(entries - 1);
    gnu.set_is_extended(true);
    for (i, s) in gnu.sparse.iter_mut().enumerate() {
        s.set_offset(i as u64);
        s.set_length(0);
    }
    h.set_cksum();
    v.extend_from_slice(h.as_bytes());
    for b in 0..blocks {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (i, s) in ext.sparse.iter_mut().enumerate() {
            s.set_offset(4 + b * 21 + i as u64);
            s.set_length(0);
        }
        ext.set_is_extended(b + 1 < blocks);
        v.extend_from_slice(ext.as_bytes());
    }
    let e = refused(&end(v)).to_string();
    assert!(e.contains("sparse") && e.contains("65536"), "{e}");
}

#[test]
fn plain_mode_writes_whiteout_names_as_files() {
    let mut v = Vec::new();
    member(&mut v, "etc/", tar::EntryType::Directory, b"");
    member(&mut v, "etc/.wh..wh..opq", tar::EntryType::Regular, b"opq");
    member(&mut v, "etc/.wh.passwd", tar::EntryType::Regular, b"wh");
    member(&mut v, "etc/.wh..wh.plnk", tar::EntryType::Regular, b"aufs");
    member(&mut v, "etc/.wh.", tar::EntryType::Regular, b"bare");
    let layer = end(v);
    let t = tempfile::tempdir().unwrap();
    fs::create_dir(t.path().join("etc")).unwrap();
    fs::write(t.path().join("etc/passwd"), b"root").unwrap();
    fs::write(t.path().join("etc/hosts"), b"localhost").unwrap();
    let opts = UnpackOptions {
        whiteouts: WhiteoutMode::Plain,
        ..UnpackOptions::default()
    };
    unpack(&layer[..], t.path(), &opts).unwrap();
    let etc = t.path().join("etc");
    assert_eq!(fs::read(etc.join("passwd")).unwrap(), b"root");
    assert_eq!(fs::read(etc.join("hosts")).unwrap(), b"localhost");
    assert_eq!(fs::read(etc.join(".wh..wh..opq")).unwrap(), b"opq");
    assert_eq!(fs::read(etc.join(".wh.passwd")).unwrap(), b"wh");
    assert_eq!(fs::read(etc.join(".wh..wh.plnk")).unwrap(), b"aufs");
    assert_eq!(fs::read(etc.join(".wh.")).unwrap(), b"bare");
}

/// A sparse member with `segs` data segments of 512 bytes each at
/// 1 MiB steps: 4 in its header, the rest in extension blocks.
fn extended_sparse_member(v: &mut Vec<u8>, name: &str, segs: u64) {
    let step = 1u64 << 20;
    let real = (segs - 1) * step + 512;
    let mut h = header(name, tar::EntryType::GNUSparse, segs * 512, true);
    let gnu = h.as_gnu_mut().unwrap();
    gnu.set_real_size(real);
    gnu.set_is_extended(segs > 4);
    for (i, s) in gnu.sparse.iter_mut().enumerate().take(segs as usize) {
        s.set_offset(i as u64 * step);
        s.set_length(512);
    }
    h.set_cksum();
    v.extend_from_slice(h.as_bytes());
    let rest: Vec<u64> = (4..segs).collect();
    let chunks: Vec<&[u64]> = rest.chunks(21).collect();
    for (c, chunk) in chunks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (s, i) in ext.sparse.iter_mut().zip(chunk.iter()) {
            s.set_offset(i * step);
            s.set_length(512);
        }
        ext.set_is_extended(c + 1 < chunks.len());
        v.extend_from_slice(ext.as_bytes());
    }
    for i in 0..segs {
        v.extend_from_slice(&[b'a' + (i % 26) as u8; 512]);
    }
}

#[test]
fn the_guard_follows_sparse_extension_blocks() {
    // 30 segments: the header's 4 and two extension blocks; then a file.
    let mut v = Vec::new();
    extended_sparse_member(&mut v, "s", 30);
    member(&mut v, "after", tar::EntryType::Regular, b"after");
    let layer = end(v.clone());
    let t = tempfile::tempdir().unwrap();
    unpack(&layer[..], t.path(), &UnpackOptions::default()).unwrap();
    let f = fs::File::open(t.path().join("s")).unwrap();
    let mut b = [0u8; 512];
    f.read_exact_at(&mut b, 29 << 20).unwrap();
    assert_eq!(b, [b'a' + 3; 512]);
    assert_eq!(f.metadata().unwrap().len(), (29 << 20) + 512);
    assert_eq!(fs::read(t.path().join("after")).unwrap(), b"after");
    recompress(&layer[..], &plain(), io::sink()).unwrap();
    // In step: a huge PAX header after them is seen for what it is.
    v.extend_from_slice(&huge_pax_header());
    v.extend_from_slice(&[b'a'; 512]);
    let e = refused(&end(v)).to_string();
    assert!(e.contains("PaxHeaders/huge"), "{e}");
}

#[test]
fn gnu_tar_sparse_archives_unpack_sparse() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = fs::File::create(src.join("big")).unwrap();
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(b"end", 3 * GIB).unwrap();
    drop(f);
    let layer = t.path().join("layer.tar");
    let made = std::process::Command::new("tar")
        .args(["--format=gnu", "--sparse", "-cf"])
        .arg(&layer)
        .arg("-C")
        .arg(&src)
        .arg("big")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: GNU tar not available");
        return;
    }
    let bytes = fs::read(&layer).unwrap();
    assert!(bytes.len() < 1 << 20, "GNU tar wrote the holes out");
    let dest = t.path().join("dest");
    fs::create_dir(&dest).unwrap();
    unpack(&bytes[..], &dest, &UnpackOptions::default()).unwrap();
    let meta = fs::metadata(dest.join("big")).unwrap();
    assert_eq!(meta.len(), 3 * GIB + 3);
    assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    let f = fs::File::open(dest.join("big")).unwrap();
    let mut b = [0u8; 5];
    f.read_exact_at(&mut b, 0).unwrap();
    assert_eq!(&b, b"start");
    f.read_exact_at(&mut b[..3], 3 * GIB).unwrap();
    assert_eq!(&b[..3], b"end");
}
