//! A tree deeper than PATH_MAX and the open-file bound round-trips: the
//! writer walks it iteratively, unpack reaches each level from the last.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;

use rustix::fs::{CWD, Mode, OFlags};
use strata_layer::{Compression, Selected, UnpackOptions, WriteOptions, unpack, write_dir_layer, write_selected};

const DEPTH: usize = 3000;

fn open_dir(parent: impl std::os::fd::AsFd, name: &OsStr) -> OwnedFd {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// Levels of `d` below `top`, with a file `f` at the bottom; returns the
/// depth found below `top` (following `d`).
fn depth_of(top: &std::path::Path) -> usize {
    let mut fd = open_dir(CWD, top.as_os_str());
    let mut n = 0;
    while let Ok(next) = rustix::fs::openat(
        &fd,
        "d",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        fd = next;
        n += 1;
        // Every directory's time as the layer has it (set last, deepest first).
        assert_eq!(rustix::fs::fstat(&fd).unwrap().st_mtime, 0, "level {n}");
    }
    assert!(rustix::fs::statat(&fd, "f", rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok());
    n
}

#[test]
fn a_tree_deeper_than_path_max_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut fd = open_dir(CWD, src.as_os_str());
    for _ in 0..DEPTH {
        rustix::fs::mkdirat(&fd, "d", Mode::from_raw_mode(0o755)).unwrap();
        fd = open_dir(&fd, OsStr::new("d"));
    }
    drop(rustix::fs::openat(&fd, "f", OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::RUSR).unwrap());
    drop(fd);
    let opts = WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: Some(0),
    };
    let mut tar = Vec::new();
    write_dir_layer(&src, &opts, &mut tar).unwrap();
    let mut names = 0;
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        e.unwrap();
        names += 1;
    }
    assert_eq!(names, DEPTH + 1);
    // The same entries listed one by one (a copy-driver commit) make the
    // same layer.
    let mut listed = Vec::new();
    let mut p = std::path::PathBuf::new();
    for _ in 0..DEPTH {
        p.push("d");
        listed.push(Selected::Entry(p.clone()));
    }
    listed.push(Selected::Entry(p.join("f")));
    let mut selected = Vec::new();
    write_selected(&src, &listed, &opts, &mut selected).unwrap();
    assert!(selected == tar, "write_selected differs from write_dir_layer");
    let dst = t.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    unpack(&tar[..], &dst, &UnpackOptions::default()).unwrap();
    assert_eq!(depth_of(&dst), DEPTH);
    // Unpacking again over it replaces the tree's file and keeps the rest.
    unpack(&tar[..], &dst, &UnpackOptions::default()).unwrap();
    assert_eq!(depth_of(&dst), DEPTH);
    // The test's own clean-up (std's remove_dir_all) holds an fd per level.
    let st = std::process::Command::new("rm")
        .arg("-rf")
        .arg(t.path())
        .status()
        .unwrap();
    assert!(st.success());
}
