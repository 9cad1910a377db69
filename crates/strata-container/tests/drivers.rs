//! The container engine on both storage drivers: the same run gives the
//! same diff, and commit carries the change into a new image.

use std::path::Path;
use std::process::Command;

use strata_container::{CommitOptions, Containers, CreateOptions};
use strata_image::{ImportOptions, ImportSource};

fn busybox_rootfs(dir: &Path) -> bool {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox not found (apt-get install busybox-static)");
        return false;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    assert!(Command::new("bash").arg(script).arg(dir).status().unwrap().success());
    true
}

/// On `driver`: a container of busybox runs `change`, its diff is `diff`
/// (Docker's `A|C|D /path` lines), and an image committed from it passes
/// `check_cmd` (a shell command exiting 0).
fn diff_and_commit(driver: &str, change: &str, diff: &[&str], check_cmd: &str) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: containers need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    if !busybox_rootfs(&rootfs) {
        return;
    }
    let store_root = t.path().join("store");
    // SAFETY: set before any thread of this test binary reads it; each test sets the same variable
    // only through this function, and the two tests run in separate processes under nextest.
    unsafe { std::env::set_var("STRATA_STORAGE_DRIVER", driver) };
    let mut c = Containers::open(&store_root).unwrap();
    assert_eq!(c.snap.driver().name(), if driver == "vfs" { "vfs" } else { "overlay" });
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
    let rec = c.create("busybox", &create(change)).unwrap();
    c.start(&rec).unwrap();
    assert_eq!(c.wait(&rec).unwrap(), 0);
    c.release(&rec).unwrap();
    let got: Vec<String> = c
        .diff(&rec)
        .unwrap()
        .iter()
        .map(|ch| format!("{} {}", ch.kind.letter(), ch.path))
        .collect();
    assert_eq!(got, diff);
    let img = c
        .commit(
            &rec,
            &CommitOptions {
                reference: Some(strata_oci::Reference::parse("committed").unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(img.id.to_string().starts_with("sha256:"));
    let check = c.create("committed", &create(check_cmd)).unwrap();
    c.start(&check).unwrap();
    assert_eq!(c.wait(&check).unwrap(), 0, "the committed image passes {check_cmd:?}");
    for r in [rec, check] {
        c.remove(&r, true, true).unwrap();
    }
}

const CHANGE: &str = "mkdir -p /new/dir && echo x > /new/dir/f && echo y >> /etc/passwd && rm /bin/ls";
const DIFF: &[&str] = &[
    "C /bin",
    "D /bin/ls",
    "C /etc",
    "C /etc/passwd",
    "A /new",
    "A /new/dir",
    "A /new/dir/f",
];
const CHECK: &str = "test -f /new/dir/f && ! test -e /bin/ls && tail -1 /etc/passwd | grep -qx y";

#[test]
fn overlay_driver_diff_and_commit() {
    diff_and_commit("overlay", CHANGE, DIFF, CHECK);
}

#[test]
fn vfs_driver_diff_and_commit() {
    diff_and_commit("vfs", CHANGE, DIFF, CHECK);
}

/// The copy (`vfs`) driver when a directory of the image is replaced by a
/// file: the file hides what was below the directory, so nothing below it
/// is reported deleted and the committed layer holds no whiteout under the
/// file (which could not be unpacked). A name that is not UTF-8 is
/// committed as it is. (The image has /usr/bin, empty.)
#[test]
fn vfs_directory_replaced_by_a_file() {
    diff_and_commit(
        "vfs",
        "rm -r /usr && echo hi > /usr && touch \"$(printf '/x\\377')\"",
        &["C /usr", "A /x\u{FFFD}"],
        "test -f /usr && grep -qx hi /usr && test -f \"$(printf '/x\\377')\"",
    );
}
