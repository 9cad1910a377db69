//! Real overlay mounts and copies (needs root: CAP_SYS_ADMIN for mounts,
//! `trusted.*` xattrs). Each test works in its own temp dir and unmounts what
//! it mounted.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_oci::Digest;
use strata_snapshot::{Driver, Kind, MountApi, Snapshotter, detect_driver};

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: these tests need root (mounts, trusted.* xattrs)");
    false
}

fn chain_id(n: usize) -> Digest {
    Digest::sha256_of(format!("test layer {n}").as_bytes())
}

fn whiteout(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    assert_eq!(
        r,
        0,
        "mknod whiteout {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

fn opaque(path: &Path) {
    rustix::fs::setxattr(path, "trusted.overlay.opaque", b"y", rustix::fs::XattrFlags::empty()).unwrap();
}

/// Layers for the whiteout/opaque rules through three layers:
/// 1: a, keep, dir/{x,y}, gone/z, link -> a
/// 2: whiteout a, dir opaque with only dir/new, b
/// 3: whiteout gone, a again (re-created), dir/y2, b replaced by a directory
fn three_layers(s: &Snapshotter) -> Vec<Digest> {
    let l1 = s
        .ensure_layer(&chain_id(1), |d| -> anyhow::Result<()> {
            fs::write(d.join("a"), "a1")?;
            fs::write(d.join("keep"), "keep")?;
            fs::create_dir(d.join("dir"))?;
            fs::write(d.join("dir/x"), "x")?;
            fs::write(d.join("dir/y"), "y")?;
            fs::create_dir(d.join("gone"))?;
            fs::write(d.join("gone/z"), "z")?;
            std::os::unix::fs::symlink("a", d.join("link"))?;
            fs::set_permissions(d.join("keep"), fs::Permissions::from_mode(0o640))?;
            rustix::fs::chown(d.join("keep"), Some(rustix::fs::Uid::from_raw(12)), None)?;
            fs::hard_link(d.join("keep"), d.join("keep-hard"))?;
            Ok(())
        })
        .unwrap();
    assert!(l1.is_dir());
    s.ensure_layer(&chain_id(2), |d| -> anyhow::Result<()> {
        whiteout(&d.join("a"));
        fs::create_dir(d.join("dir"))?;
        opaque(&d.join("dir"));
        fs::write(d.join("dir/new"), "new")?;
        fs::write(d.join("b"), "b2")?;
        Ok(())
    })
    .unwrap();
    s.ensure_layer(&chain_id(3), |d| -> anyhow::Result<()> {
        whiteout(&d.join("gone"));
        fs::write(d.join("a"), "a3")?;
        fs::create_dir(d.join("dir"))?;
        fs::write(d.join("dir/y2"), "y2")?;
        fs::create_dir(d.join("b"))?;
        fs::write(d.join("b/inner"), "inner")?;
        Ok(())
    })
    .unwrap();
    vec![chain_id(1), chain_id(2), chain_id(3)]
}

/// path -> description (kind, mode, uid, content or link target).
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for p in entries {
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = md.file_type();
            let desc = if ft.is_dir() {
                walk(root, &p, out);
                format!("dir {:o} {}", md.mode() & 0o7777, md.uid())
            } else if ft.is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_char_device() {
                format!("chardev {}", md.rdev())
            } else {
                format!(
                    "file {:o} {} {}",
                    md.mode() & 0o7777,
                    md.uid(),
                    String::from_utf8_lossy(&fs::read(&p).unwrap())
                )
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn expected_three_layers() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("a".into(), "file 644 0 a3".into());
    m.insert("b".into(), "dir 755 0".into());
    m.insert("b/inner".into(), "file 644 0 inner".into());
    m.insert("dir".into(), "dir 755 0".into());
    m.insert("dir/new".into(), "file 644 0 new".into());
    m.insert("dir/y2".into(), "file 644 0 y2".into());
    m.insert("keep".into(), "file 640 12 keep".into());
    m.insert("keep-hard".into(), "file 640 12 keep".into());
    m.insert("link".into(), "link -> a".into());
    m
}

fn store() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new().prefix("strata-snap-test").tempdir().unwrap();
    let p = t.path().join("store");
    fs::create_dir(&p).unwrap();
    (t, p)
}

struct Unmount<'a>(&'a Snapshotter, PathBuf);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = self.0.unmount(&self.1);
    }
}

#[test]
fn detects_overlay_on_ext4() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let (driver, why) = detect_driver(&root);
    assert_eq!(driver, Driver::Overlay, "{why:?}");
    assert!(why.is_none());
    // The probe leaves nothing behind.
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn falls_back_to_copy_when_the_store_sits_on_an_overlay() {
    if !is_root() {
        return;
    }
    // A store inside an overlay mount: overlayfs cannot use it as an upper dir.
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    s.ensure_layer(&chain_id(1), |d| fs::write(d.join("f"), "f")).unwrap();
    let snap = s.prepare("outer", &[chain_id(1)]).unwrap();
    let merged = snap.merged_dir();
    s.mount(&snap, &merged, false).unwrap();
    let _guard = Unmount(&s, merged.clone());
    let inner_store = merged.join("inner-store");
    fs::create_dir(&inner_store).unwrap();
    let (driver, why) = detect_driver(&inner_store);
    assert_eq!(driver, Driver::Copy);
    let why = why.unwrap();
    assert!(why.contains("vfs") && why.contains("inner-store"), "{why}");
}

#[test]
fn overlay_writes_land_in_upper_and_deletions_are_whiteouts() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    let chain = three_layers(&s);
    let snap = s.prepare("c1", &chain).unwrap();
    assert_eq!(snap.kind, Kind::Active);
    assert_eq!(s.get("c1").unwrap(), snap);
    let merged = snap.merged_dir();
    s.mount(&snap, &merged, false).unwrap();
    let guard = Unmount(&s, merged.clone());
    assert_eq!(tree(&merged), expected_three_layers());

    fs::write(merged.join("written"), "hello").unwrap();
    fs::remove_file(merged.join("keep")).unwrap();
    fs::write(merged.join("a"), "changed").unwrap();
    let upper = s.upper_dir(&snap);
    assert_eq!(fs::read_to_string(upper.join("written")).unwrap(), "hello");
    assert_eq!(fs::read_to_string(upper.join("a")).unwrap(), "changed");
    let wh = fs::symlink_metadata(upper.join("keep")).unwrap();
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "deletion is a 0/0 char device in upper"
    );
    // The lower layers are untouched.
    for l in s.lower_dirs(&chain) {
        assert!(!l.join("written").exists());
    }
    assert_eq!(fs::read_to_string(s.layer_dir(&chain[0]).join("keep")).unwrap(), "keep");
    assert_eq!(fs::read_to_string(s.layer_dir(&chain[2]).join("a")).unwrap(), "a3");
    drop(guard);

    // Mounting again from the recorded key shows the same changes.
    let again = s.get("c1").unwrap();
    s.mount(&again, &merged, true).unwrap();
    let guard = Unmount(&s, merged.clone());
    assert_eq!(fs::read_to_string(merged.join("written")).unwrap(), "hello");
    assert!(!merged.join("keep").exists());
    let err = fs::write(merged.join("ro"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    drop(guard);

    // remove unmounts merged itself and leaves nothing.
    s.mount(&again, &merged, false).unwrap();
    s.remove("c1").unwrap();
    assert!(!s.exists("c1"));
    assert!(!root.join("containers/c1").exists());
    assert_eq!(fs::read_dir(root.join("containers")).unwrap().count(), 0);
    assert!(s.remove("c1").is_err());
}

#[test]
fn copy_driver_flattens_like_overlay() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Copy);
    let chain = three_layers(&s);
    let snap = s.prepare("copy1", &chain).unwrap();
    assert_eq!(snap.driver, Driver::Copy);
    let rootfs = s.upper_dir(&snap);
    assert_eq!(tree(&rootfs), expected_three_layers());
    // Hard links within a layer stay hard links.
    assert_eq!(
        fs::metadata(rootfs.join("keep")).unwrap().ino(),
        fs::metadata(rootfs.join("keep-hard")).unwrap().ino()
    );
    // No overlay xattrs leak into the copy.
    assert!(rustix::fs::getxattr(rootfs.join("dir"), "trusted.overlay.opaque", &mut [0u8; 4][..]).is_err());

    let merged = snap.merged_dir();
    s.mount(&snap, &merged, false).unwrap();
    let guard = Unmount(&s, merged.clone());
    fs::write(merged.join("written"), "w").unwrap();
    assert!(rootfs.join("written").exists());
    assert!(!s.layer_dir(&chain[2]).join("written").exists());
    drop(guard);

    let view = s.view("copyview", &chain).unwrap();
    let vm = view.merged_dir();
    s.mount(&view, &vm, false).unwrap();
    let guard = Unmount(&s, vm.clone());
    assert_eq!(tree(&vm), expected_three_layers());
    assert_eq!(
        fs::write(vm.join("x"), "x").unwrap_err().raw_os_error(),
        Some(libc::EROFS)
    );
    drop(guard);
    s.remove("copy1").unwrap();
    s.remove("copyview").unwrap();
}

#[test]
fn views_are_read_only_including_a_single_layer() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    let chain = three_layers(&s);
    for (key, chain) in [("v1", &chain[..1]), ("v3", &chain[..])] {
        let v = s.view(key, chain).unwrap();
        let m = v.merged_dir();
        s.mount(&v, &m, false).unwrap();
        let guard = Unmount(&s, m.clone());
        assert!(m.join("keep").exists());
        assert_eq!(
            fs::write(m.join("x"), "x").unwrap_err().raw_os_error(),
            Some(libc::EROFS)
        );
        drop(guard);
        s.remove(key).unwrap();
    }
    // An empty chain gives an empty writable root.
    let e = s.prepare("empty", &[]).unwrap();
    let m = e.merged_dir();
    s.mount(&e, &m, false).unwrap();
    let guard = Unmount(&s, m.clone());
    assert_eq!(fs::read_dir(&m).unwrap().count(), 0);
    fs::write(m.join("f"), "f").unwrap();
    drop(guard);
    assert!(s.upper_dir(&e).join("f").exists());
}

#[test]
fn ensure_layer_names_nothing_partial_and_fills_once() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    let id = chain_id(42);
    let err = s
        .ensure_layer(&id, |d| -> anyhow::Result<()> {
            fs::write(d.join("half"), "x")?;
            anyhow::bail!("disk on fire")
        })
        .unwrap_err();
    assert!(format!("{:#}", anyhow::Error::from(err)).contains("disk on fire"));
    assert!(!s.has_layer(&id));
    let leftovers: Vec<_> = fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".locks")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Many threads race: exactly one fills.
    let fills = AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for _ in 0..6 {
            sc.spawn(|| {
                let p = s
                    .ensure_layer(&id, |d| -> anyhow::Result<()> {
                        fills.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok(fs::write(d.join("f"), "full")?)
                    })
                    .unwrap();
                assert_eq!(fs::read_to_string(p.join("f")).unwrap(), "full");
            });
        }
    });
    assert_eq!(fills.load(Ordering::SeqCst), 1);

    // Prepare refuses a chain whose layer is missing, and bad keys.
    let e = s.prepare("c", &[chain_id(7)]).unwrap_err();
    assert!(format!("{e:#}").contains("not unpacked"), "{e:#}");
    assert!(s.prepare("../x", &[]).is_err());
    assert!(s.prepare(".hidden", &[]).is_err());
    s.prepare("dup", &[]).unwrap();
    assert!(format!("{:#}", s.prepare("dup", &[]).unwrap_err()).contains("already exists"));

    s.remove_layer(&id).unwrap();
    assert!(!s.has_layer(&id));
}

fn many_layers(s: &Snapshotter, n: usize) -> Vec<Digest> {
    (0..n)
        .map(|i| {
            let id = chain_id(1000 + i);
            s.ensure_layer(&id, |d| -> anyhow::Result<()> {
                fs::write(d.join(format!("f{i}")), format!("{i}"))?;
                fs::write(d.join("top"), format!("{i}"))?;
                if i == 10 {
                    whiteout(&d.join("f5"));
                }
                Ok(())
            })
            .unwrap();
            id
        })
        .collect()
}

fn check_many(merged: &Path, n: usize) {
    assert_eq!(fs::read_to_string(merged.join("top")).unwrap(), format!("{}", n - 1));
    for i in 0..n {
        assert_eq!(merged.join(format!("f{i}")).exists(), i != 5, "f{i}");
    }
    assert_eq!(fs::read_to_string(merged.join("f0")).unwrap(), "0");
}

#[test]
fn two_hundred_layers_with_lowerdir_plus_and_with_short_paths() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    let chain = many_layers(&s, 200);
    // With full paths this chain's option string would be far over 4 KiB.
    let joined: usize = s.lower_dirs(&chain).iter().map(|p| p.as_os_str().len() + 1).sum();
    assert!(joined > 4096);
    for (key, api) in [("new-api", MountApi::Auto), ("legacy", MountApi::Legacy)] {
        let s = s.clone().with_mount_api(api);
        let snap = s.prepare(key, &chain).unwrap();
        let m = snap.merged_dir();
        s.mount(&snap, &m, false).unwrap();
        let guard = Unmount(&s, m.clone());
        check_many(&m, 200);
        fs::write(m.join("w"), "w").unwrap();
        assert!(s.upper_dir(&snap).join("w").exists());
        drop(guard);
        s.remove(key).unwrap();
    }
    // And the copy driver gives the same root.
    let c = Snapshotter::new(&root, Driver::Copy);
    let snap = c.prepare("copy200", &chain).unwrap();
    check_many(&c.upper_dir(&snap), 200);
    c.remove("copy200").unwrap();
}

/// A committed step's upper dir becomes the unpacked layer as it is (as
/// containerd commits): a snapshot over the chain plus that layer shows the
/// step's changes, deletions included; nothing moves for a mounted
/// snapshot, a layer already there, or the copy driver.
#[test]
fn adopt_upper_names_the_upper_dir_as_the_next_layer() {
    if !is_root() {
        return;
    }
    let (_t, root) = store();
    let s = Snapshotter::new(&root, Driver::Overlay);
    let chain = three_layers(&s);
    let snap = s.prepare("step", &chain).unwrap();
    let merged = snap.merged_dir();
    s.mount(&snap, &merged, false).unwrap();
    fs::write(merged.join("written"), "hello").unwrap();
    fs::remove_file(merged.join("keep")).unwrap();
    fs::remove_dir_all(merged.join("dir")).unwrap();
    fs::create_dir(merged.join("dir")).unwrap();
    fs::write(merged.join("dir/only"), "only").unwrap();
    let next = chain_id(4);
    // Still mounted: refused, nothing moved.
    assert!(s.adopt_upper(&snap, &next).is_err());
    assert!(!s.has_layer(&next));
    s.unmount(&merged).unwrap();
    assert!(s.adopt_upper(&snap, &next).unwrap());
    assert!(s.has_layer(&next));
    assert!(!s.upper_dir(&snap).exists());
    // The snapshot is removed without its upper dir; the layer stays.
    s.remove("step").unwrap();
    assert_eq!(fs::read_to_string(s.layer_dir(&next).join("written")).unwrap(), "hello");
    // A root over the four layers shows the step's changes.
    let mut four = chain.clone();
    four.push(next.clone());
    let view = s.view("view", &four).unwrap();
    let m = view.merged_dir();
    s.mount(&view, &m, true).unwrap();
    let guard = Unmount(&s, m.clone());
    assert_eq!(fs::read_to_string(m.join("written")).unwrap(), "hello");
    assert!(
        !m.join("keep").exists(),
        "the deletion is a whiteout in the adopted layer"
    );
    let mut dir: Vec<_> = fs::read_dir(m.join("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    dir.sort();
    assert_eq!(
        dir,
        vec![std::ffi::OsString::from("only")],
        "the re-created dir is opaque"
    );
    drop(guard);
    s.remove("view").unwrap();
    // A layer already there: nothing moves.
    let again = s.prepare("again", &chain).unwrap();
    assert!(!s.adopt_upper(&again, &next).unwrap());
    assert!(s.upper_dir(&again).is_dir());
    s.remove("again").unwrap();
    // The copy driver's rootfs is the whole root, never a layer.
    let c = Snapshotter::new(&root, Driver::Copy);
    let copy = c.prepare("copy", &chain).unwrap();
    assert!(!c.adopt_upper(&copy, &chain_id(5)).unwrap());
    assert!(!c.has_layer(&chain_id(5)));
    c.remove("copy").unwrap();
}
