//! copy() into and out of strata's store: store → OCI layout → another
//! store (same image ID, layers unpacked and registered, the name
//! resolves), a second copy skips everything, a lying layer leaves the
//! store as it was, and an image whose manifest names a layer blob the
//! store holds in another form is read back under a rewritten manifest.
//! Unpacking keeps file owners, so these need root.

use std::io::Write;
use std::path::{Path, PathBuf};

use strata_oci::{Descriptor, Digest, Manifest, Reference, media};
use strata_snapshot::{Driver, Snapshotter};
use strata_store::Store;
use strata_transfer::layout::Layout;
use strata_transfer::store::StoreLocation;
use strata_transfer::{CopyOptions, Source, copy, no_progress};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A store at `root` holding busybox imported as `busybox:test`; its image ID.
fn busybox_store(t: &Path, root: &Path) -> Option<Digest> {
    if !is_root() {
        eprintln!("skipped: needs root (layers are unpacked with their owners)");
        return None;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox is not installed (apt-get install busybox-static)");
        return None;
    }
    let rootfs = t.join("rootfs");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/busybox-rootfs.sh");
    let ok = std::process::Command::new("bash")
        .arg(&script)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(ok.success(), "busybox-rootfs.sh failed");
    let mut store = Store::open(root).unwrap();
    let imported = strata_image::import(
        &mut store,
        strata_image::ImportSource::Dir(rootfs),
        &strata_image::ImportOptions {
            reference: Some(Reference::parse("busybox:test").unwrap()),
            source_date_epoch: Some(0),
            ..Default::default()
        },
    )
    .unwrap();
    Some(imported.id)
}

/// What a copy could change: every file and directory under `blobs/`,
/// `layers/` (without the per-layer locks) and `tmp/`, and every image
/// with its names.
fn snapshot(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".locks") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            out.push(format!("{} {}", p.strip_prefix(root).unwrap().display(), m.len()));
            if m.is_dir() {
                walk(&p, root, out);
            }
        }
    }
    let mut out = Vec::new();
    for sub in ["blobs", "layers", "tmp"] {
        walk(&root.join(sub), root, &mut out);
    }
    out.sort();
    let store = Store::open(root).unwrap();
    for img in store.list_images().unwrap() {
        out.push(format!(
            "image {} {:?} {:?} {:?} {:?}",
            img.id, img.tags, img.repo_digests, img.manifests, img.diff_ids
        ));
    }
    out
}

fn blob_path(layout: &Path, d: &Digest) -> PathBuf {
    layout.join("blobs").join(d.algorithm().name()).join(d.hex())
}

fn manifest_in(layout: &Path, d: &Digest) -> Manifest {
    serde_json::from_slice(&std::fs::read(blob_path(layout, d)).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn store_to_layout_to_store_keeps_the_image_and_a_second_copy_skips_everything() {
    let t = tempfile::tempdir().unwrap();
    let (root_a, root_b, layout_dir) = (t.path().join("a"), t.path().join("b"), t.path().join("layout"));
    let Some(id) = busybox_store(t.path(), &root_a) else {
        return;
    };
    let opts = CopyOptions::default();

    let a = StoreLocation::open(&root_a).unwrap();
    let layout = Layout::create(&layout_dir).unwrap();
    let r = copy(
        &a,
        &layout,
        Some("busybox:test"),
        &["busybox:test".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, id);
    assert_eq!(r.blobs_copied, 2);
    drop(layout);

    let b = StoreLocation::open(&root_b).unwrap();
    let src = Layout::open(&layout_dir).unwrap();
    let r = copy(
        &src,
        &b,
        Some("busybox:test"),
        &["copied:1".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.images[0].1, id);
    assert_eq!((r.blobs_copied, r.blobs_skipped), (2, 0));
    drop(b);

    // Registered, unpacked, named.
    let store = Store::open(&root_b).unwrap();
    let img = store.image(&id).unwrap().expect("the image is in the second store");
    assert_eq!(img.diff_ids.len(), 1);
    assert!(store.held_layer(&img.diff_ids[0]).unwrap().is_some());
    let chain = strata_oci::chain_ids(&img.diff_ids);
    let snap = Snapshotter::new(&root_b, Driver::Copy);
    assert!(snap.has_layer(&chain[0]), "the layer is unpacked");
    assert!(snap.layer_dir(&chain[0]).join("bin/busybox").is_file());
    let resolved = strata_image::resolve(&store, "copied:1").unwrap();
    assert_eq!(resolved.image.id, id);
    assert_eq!(resolved.manifest, r.root.digest);
    // A bare name claims no registry: no repo digest.
    assert!(img.repo_digests.is_empty(), "{:?}", img.repo_digests);
    drop(store);

    // Again: everything is there, nothing changes.
    let before = snapshot(&root_b);
    let b = StoreLocation::open(&root_b).unwrap();
    let r = copy(
        &src,
        &b,
        Some("busybox:test"),
        &["copied:1".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!((r.blobs_copied, r.blobs_skipped), (0, 2));
    drop(b);
    assert_eq!(snapshot(&root_b), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_layer_leaves_the_store_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let (root_a, root_c, layout_dir) = (t.path().join("a"), t.path().join("c"), t.path().join("layout"));
    let Some(_) = busybox_store(t.path(), &root_a) else {
        return;
    };
    let opts = CopyOptions::default();
    let layout = Layout::create(&layout_dir).unwrap();
    let r = copy(
        &StoreLocation::open(&root_a).unwrap(),
        &layout,
        Some("busybox:test"),
        &["x".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    drop(layout);
    // Same size, other bytes: /etc/passwd says "soot" for "root".
    let layer = manifest_in(&layout_dir, &r.root.digest).layers[0].clone();
    let path = blob_path(&layout_dir, &layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(10)
        .position(|w| w == b"root:x:0:0")
        .expect("passwd in the layer");
    bytes[at] = b's';
    std::fs::write(&path, &bytes).unwrap();

    // The store has something already, which must stay as it is.
    std::fs::create_dir_all(t.path().join("tiny")).unwrap();
    std::fs::write(t.path().join("tiny/hello"), b"hi").unwrap();
    let mut store = Store::open(&root_c).unwrap();
    strata_image::import(
        &mut store,
        strata_image::ImportSource::Dir(t.path().join("tiny")),
        &strata_image::ImportOptions {
            reference: Some(Reference::parse("tiny").unwrap()),
            ..Default::default()
        },
    )
    .unwrap();
    drop(store);
    let before = snapshot(&root_c);

    let c = StoreLocation::open(&root_c).unwrap();
    let e = copy(
        &Layout::open(&layout_dir).unwrap(),
        &c,
        Some("x"),
        &["lie:1".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    drop(c);
    assert_eq!(snapshot(&root_c), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_held_in_another_form_is_skipped_and_read_back_in_the_held_form() {
    let t = tempfile::tempdir().unwrap();
    let (root_a, layout_dir, out_dir) = (t.path().join("a"), t.path().join("gz"), t.path().join("out"));
    let Some(id) = busybox_store(t.path(), &root_a) else {
        return;
    };
    let store = Store::open(&root_a).unwrap();
    let img = store.image(&id).unwrap().unwrap();
    let plain = store.held_layer(&img.diff_ids[0]).unwrap().unwrap().blob;
    let tar = std::fs::read(store.blob_path(&plain.digest)).unwrap();
    let config_bytes = store.read_blob(&id, media::MAX_DOCUMENT_SIZE).unwrap();
    drop(store);

    // The same layer gzipped, under another config (another image).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    config["created"] = "2001-01-01T00:00:00Z".into();
    let config = serde_json::to_vec(&config).unwrap();
    let put = |b: &[u8]| {
        let d = Digest::sha256_of(b);
        let p = blob_path(&layout_dir, &d);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
        d
    };
    let gz_desc = Descriptor::new(media::OCI_LAYER_GZIP, put(&gz), gz.len() as u64);
    let config_desc = Descriptor::new(media::OCI_CONFIG, put(&config), config.len() as u64);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": config_desc,
        "layers": [gz_desc],
    }))
    .unwrap();
    let m = put(&manifest);
    std::fs::write(
        layout_dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": media::OCI_MANIFEST, "digest": m.to_string(), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "gz"}}]}))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(layout_dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();

    // In: the layer "already exists" (its diff ID is held as a plain tar).
    let opts = CopyOptions::default();
    let a = StoreLocation::open(&root_a).unwrap();
    let r = copy(
        &Layout::open(&layout_dir).unwrap(),
        &a,
        Some("gz"),
        &["localhost:5000/gz:1".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!((r.blobs_copied, r.blobs_skipped), (1, 1));
    drop(a);
    let store = Store::open(&root_a).unwrap();
    assert!(!store.has_blob(&gz_desc.digest), "the other form is not stored");
    let gz_id = config_desc.digest.clone();
    let gz_img = store.image(&gz_id).unwrap().unwrap();
    assert_eq!(gz_img.manifests[0].0, m, "the manifest is kept byte for byte");
    // A name with its registry records the repo digest.
    assert_eq!(gz_img.repo_digests, vec![("localhost:5000/gz".to_string(), m.clone())]);
    drop(store);

    // Out: the held form, under a rewritten manifest; the image ID stays.
    let a = StoreLocation::open(&root_a).unwrap();
    let root = a.resolve(Some("localhost:5000/gz:1")).await.unwrap();
    assert_ne!(root.digest, m);
    let out = Layout::create(&out_dir).unwrap();
    let r = copy(
        &a,
        &out,
        Some("localhost:5000/gz:1"),
        &["gz".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, root.digest);
    assert_eq!(r.images[0].1, gz_id);
    drop(out);
    let written = manifest_in(&out_dir, &root.digest);
    assert_eq!(written.layers[0].digest, plain.digest);
    assert!(blob_path(&out_dir, &plain.digest).is_file());
}
