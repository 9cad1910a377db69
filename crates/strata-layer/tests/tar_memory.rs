//! A layer whose tar metadata is huge (a 1 GiB PAX record, GNU long name or
//! long link) is refused without reading it into memory. Its own test
//! binary: the check is the process's peak resident size (VmHWM), which
//! other tests in the same process would disturb.

use std::io::{self, Cursor, Read};

use strata_layer::{Compression, LayerError, UnpackOptions, WriteOptions, recompress, unpack};

const GIB: u64 = 1 << 30;

/// The process's peak resident set size, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A tar whose first member is a `kind` entry of `size` bytes, generated
/// as it is read (never held in memory), followed by a small file: the
/// body of a PAX header is one well-formed `path` record.
fn huge_meta_tar(kind: tar::EntryType, size: u64) -> impl Read + Send {
    let mut h = if matches!(kind, tar::EntryType::GNULongName | tar::EntryType::GNULongLink) {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h
    } else {
        let mut h = tar::Header::new_ustar();
        h.set_path("PaxHeaders/big").unwrap();
        h
    };
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_cksum();
    let body: Box<dyn Read + Send> = if kind.is_pax_local_extensions() || kind.is_pax_global_extensions() {
        // "<len> path=aaa…\n", <len> counting the whole record.
        let prefix = format!("{size} path=");
        let fill = size - prefix.len() as u64 - 1;
        Box::new(Cursor::new(prefix).chain(io::repeat(b'a').take(fill)).chain(&b"\n"[..]))
    } else {
        Box::new(io::repeat(b'a').take(size))
    };
    let pad = (512 - size % 512) % 512;
    let mut tail = tar::Header::new_ustar();
    tail.set_path("f").unwrap();
    tail.set_size(0);
    tail.set_mode(0o644);
    tail.set_cksum();
    let mut end = tail.as_bytes().to_vec();
    end.extend_from_slice(&[0u8; 1024]);
    Cursor::new(h.as_bytes().to_vec())
        .chain(body)
        .chain(io::repeat(0).take(pad))
        .chain(Cursor::new(end))
}

#[test]
fn huge_tar_metadata_is_refused_in_bounded_memory() {
    let kinds = [
        tar::EntryType::XHeader,
        tar::EntryType::XGlobalHeader,
        tar::EntryType::GNULongName,
        tar::EntryType::GNULongLink,
    ];
    let before = peak_rss();
    for kind in kinds {
        let t = tempfile::tempdir().unwrap();
        let got = unpack(huge_meta_tar(kind, GIB), t.path(), &UnpackOptions::default());
        check(kind, "unpack", got.map(drop));
        let opts = WriteOptions {
            compression: Compression::None,
            level: None,
            source_date_epoch: None,
        };
        let got = recompress(huge_meta_tar(kind, GIB), &opts, io::sink());
        check(kind, "recompress", got.map(drop));
    }
    let grew = peak_rss().saturating_sub(before);
    assert!(
        grew < 64 << 20,
        "peak RSS grew by {} MiB reading 1 GiB tar metadata",
        grew >> 20
    );
}

fn check(kind: tar::EntryType, path: &str, got: Result<(), LayerError>) {
    let e = got.expect_err("a 1 GiB metadata entry was accepted");
    // The error may quote the name: keep the message short.
    let msg: String = e.to_string().chars().take(400).collect();
    assert!(
        msg.contains("1048576"),
        "{path} of a 1 GiB {kind:?} entry: the error names the limit: {msg}"
    );
    let LayerError::TarLimit(l) = e else {
        panic!("{path}: expected LayerError::TarLimit, got {msg}")
    };
    assert_eq!((l.found, l.limit), (GIB, strata_layer::MAX_TAR_METADATA_SIZE));
    assert_eq!(l.offset, 0);
}
