//! `cp` copies files named `.wh.*` as the files they are: they delete
//! nothing, in the container or on the host.

use std::fs;
use std::path::Path;

use strata_container::{Containers, CopyTarget, CreateOptions};
use strata_image::{ImportOptions, ImportSource};

fn container_path(c: &str, p: &str) -> CopyTarget {
    CopyTarget::Container {
        container: c.into(),
        path: p.into(),
    }
}

/// A directory holding whiteout-looking names.
fn hostile_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(".wh..wh..opq"), b"opaque?").unwrap();
    fs::write(dir.join(".wh.passwd"), b"whiteout?").unwrap();
    fs::write(dir.join(".wh."), b"bare").unwrap();
    fs::write(dir.join("new"), b"new").unwrap();
}

#[test]
fn cp_writes_whiteout_names_as_plain_files() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: containers need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let rootfs = t.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(rootfs.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let mut c = Containers::open(&t.path().join("store")).unwrap();
    let opts = ImportOptions {
        reference: Some(strata_oci::Reference::parse("tiny").unwrap()),
        ..Default::default()
    };
    strata_image::import(&mut c.store, ImportSource::Dir(rootfs), &opts).unwrap();
    let rec = c
        .create(
            "tiny",
            &CreateOptions {
                cmd: vec!["/bin/true".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let id = rec.id.clone();

    // The contents of a directory into /etc, and a directory named etc into /.
    let src = t.path().join("src");
    hostile_dir(&src);
    c.copy(&CopyTarget::Host(src.join(".")), &container_path(&id, "/etc"))
        .unwrap();
    let named = t.path().join("named/etc");
    hostile_dir(&named);
    c.copy(&CopyTarget::Host(named), &container_path(&id, "/")).unwrap();

    // Back out to the host: /etc kept its files and gained the new ones.
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    c.copy(&container_path(&id, "/etc"), &CopyTarget::Host(out.clone()))
        .unwrap();
    let etc = out.join("etc");
    assert_eq!(fs::read(etc.join("passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
    assert_eq!(fs::read(etc.join("hosts")).unwrap(), b"127.0.0.1 localhost\n");
    assert_eq!(fs::read(etc.join(".wh..wh..opq")).unwrap(), b"opaque?");
    assert_eq!(fs::read(etc.join(".wh.passwd")).unwrap(), b"whiteout?");
    assert_eq!(fs::read(etc.join(".wh.")).unwrap(), b"bare");
    assert_eq!(fs::read(etc.join("new")).unwrap(), b"new");

    // Copying out into a host directory deletes nothing there either.
    let host = t.path().join("host");
    fs::create_dir(&host).unwrap();
    fs::write(host.join("passwd"), b"host").unwrap();
    c.copy(&container_path(&id, "/etc/."), &CopyTarget::Host(host.clone()))
        .unwrap();
    assert_eq!(fs::read(host.join("passwd")).unwrap(), b"root:x:0:0::/root:/bin/sh\n");
    let host2 = t.path().join("host2");
    fs::create_dir(&host2).unwrap();
    fs::write(host2.join("passwd"), b"host").unwrap();
    c.copy(
        &container_path(&id, "/etc/.wh.passwd"),
        &CopyTarget::Host(host2.clone()),
    )
    .unwrap();
    assert_eq!(fs::read(host2.join("passwd")).unwrap(), b"host");
    assert_eq!(fs::read(host2.join(".wh.passwd")).unwrap(), b"whiteout?");

    c.remove(&rec, true, true).unwrap();
}
