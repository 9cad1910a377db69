//! The copy (`vfs`) driver's diff and commit when a directory of the image
//! is replaced by a file: the file hides what was below the directory, so
//! nothing below it is reported deleted and the committed layer holds no
//! whiteout under the file (which could not be unpacked). A name that is
//! not UTF-8 is committed as it is.

use std::path::Path;
use std::process::Command;

use strata_container::{CommitOptions, Containers, CreateOptions};
use strata_image::{ImportOptions, ImportSource};

#[test]
fn vfs_directory_replaced_by_a_file() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: containers need root");
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox not found (apt-get install busybox-static)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    assert!(
        Command::new("bash")
            .arg(script)
            .arg(&rootfs)
            .status()
            .unwrap()
            .success()
    );
    // SAFETY: set before any thread of this test binary reads it; the only test in this binary.
    unsafe { std::env::set_var("STRATA_STORAGE_DRIVER", "vfs") };
    let mut c = Containers::open(&t.path().join("store")).unwrap();
    assert_eq!(c.snap.driver().name(), "vfs");
    let opts = ImportOptions {
        changes: vec!["CMD [\"/bin/sh\"]".into()],
        reference: Some(strata_oci::Reference::parse("busybox").unwrap()),
        ..Default::default()
    };
    strata_image::import(&mut c.store, ImportSource::Dir(rootfs), &opts).unwrap();
    let create = |cmd: &str| CreateOptions {
        cmd: vec!["sh".into(), "-c".into(), cmd.into()],
        ..Default::default()
    };
    // The image has /usr/bin (empty): /usr becomes a file. And a file
    // whose name is not UTF-8 is added.
    let rec = c
        .create(
            "busybox",
            &create("rm -r /usr && echo hi > /usr && touch \"$(printf '/x\\377')\""),
        )
        .unwrap();
    c.start(&rec).unwrap();
    assert_eq!(c.wait(&rec).unwrap(), 0);
    c.release(&rec).unwrap();
    let diff: Vec<String> = c
        .diff(&rec)
        .unwrap()
        .iter()
        .map(|ch| format!("{} {}", ch.kind.letter(), ch.path))
        .collect();
    assert_eq!(diff, ["C /usr", "A /x\u{FFFD}"]);
    c.commit(
        &rec,
        &CommitOptions {
            reference: Some(strata_oci::Reference::parse("committed").unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    let check = c
        .create(
            "committed",
            &create("test -f /usr && grep -qx hi /usr && test -f \"$(printf '/x\\377')\""),
        )
        .unwrap();
    c.start(&check).unwrap();
    assert_eq!(c.wait(&check).unwrap(), 0, "the committed image has the file");
    for r in [rec, check] {
        c.remove(&r, true, true).unwrap();
    }
}
