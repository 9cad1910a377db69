//! CVE-2021-41091: a local user must not reach image or container content
//! through the store (setuid binaries and device nodes in unpacked layers,
//! running containers' roots). The attack runs as `nobody`.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use strata_store::Store;

/// Runs `paths` opens as uid/gid 65534 in a forked child: the errno of each (0 = opened).
fn open_as_nobody(paths: &[&Path]) -> Vec<i32> {
    let cpaths: Vec<CString> = paths
        .iter()
        .map(|p| CString::new(p.as_os_str().as_encoded_bytes()).unwrap())
        .collect();
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (r, w) = (fds[0], fds[1]);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        unsafe {
            libc::close(r);
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(99);
            }
            for p in &cpaths {
                let fd = libc::open(p.as_ptr(), libc::O_RDONLY);
                let errno: i32 = if fd >= 0 { 0 } else { *libc::__errno_location() };
                libc::write(w, (&errno as *const i32).cast(), 4);
            }
            libc::_exit(0);
        }
    }
    unsafe { libc::close(w) };
    let mut out = Vec::new();
    let mut buf = [0u8; 4];
    while unsafe { libc::read(r, buf.as_mut_ptr().cast(), 4) } == 4 {
        out.push(i32::from_ne_bytes(buf));
    }
    let mut status = 0;
    unsafe {
        libc::close(r);
        libc::waitpid(pid, &mut status, 0);
    }
    assert_eq!(libc::WEXITSTATUS(status), 0, "the child could not become nobody");
    out
}

#[test]
fn nobody_cannot_traverse_the_store() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to become nobody)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("store");
    // An existing store made as before: everything 0755.
    for d in [
        "layers/abc/bin",
        "containers/c1/merged",
        "blobs/sha256",
        "volumes/v/_data",
        "tmp",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for d in [
        "",
        "layers",
        "layers/abc",
        "layers/abc/bin",
        "containers",
        "blobs",
        "volumes",
        "tmp",
    ] {
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let planted = [
        root.join("layers/abc/bin/su"),
        root.join("containers/c1/merged/secret"),
        root.join("blobs/sha256/0123"),
        root.join("volumes/v/_data/data"),
    ];
    for p in &planted {
        std::fs::write(p, b"x").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o4755)).unwrap();
    }
    let refs: Vec<&Path> = planted.iter().map(|p| p.as_path()).collect();
    // The attack works on the old layout...
    assert_eq!(open_as_nobody(&refs), vec![0; planted.len()]);

    // ...and not once the store has been opened.
    let store = Store::open(&root).unwrap();
    assert_eq!(open_as_nobody(&refs), vec![libc::EACCES; planted.len()]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&root), 0o711);
    for d in ["layers", "containers", "blobs", "volumes", "tmp"] {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}");
    }
    assert_eq!(mode(&root.join("strata.db")), 0o600);
    drop(store);

    // A new store is made that way from the start.
    let fresh = dir.path().join("fresh");
    Store::open(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o711);
    assert_eq!(mode(&fresh.join("layers")), 0o700);
    assert_eq!(
        open_as_nobody(&[&fresh.join("strata.db"), &fresh.join("layers")]),
        vec![libc::EACCES; 2]
    );
}
