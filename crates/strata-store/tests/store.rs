use strata_oci::{Descriptor, Digest, Reference, media};
use strata_store::{Error, LayerRecord, NewImage, Store};

fn image(store: &mut Store, layer: &[u8], config: &[u8]) -> NewImage {
    let l = store.put_blob(layer).unwrap();
    let c = store.put_blob(config).unwrap();
    let m = store.put_blob(format!("manifest for {c}").as_bytes()).unwrap();
    NewImage {
        config_digest: c,
        created: None,
        os: "linux".into(),
        arch: "amd64".into(),
        variant: None,
        manifest: Descriptor::new(media::OCI_MANIFEST, m, 10),
        layers: vec![LayerRecord {
            diff_id: l.clone(),
            diff_size: layer.len() as u64,
            blob: Descriptor::new(media::OCI_LAYER_TAR, l, layer.len() as u64),
        }],
    }
}

#[test]
fn blob_digest_is_checked_and_nothing_is_named_on_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let wrong = Digest::sha256_of(b"other");
    let err = store.put_blob_verified(&wrong, None, &b"content"[..]).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&wrong));
    assert_eq!(std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    let right = Digest::sha256_of(b"content");
    assert_eq!(store.put_blob_verified(&right, Some(7), &b"content"[..]).unwrap(), 7);
    assert_eq!(store.read_blob(&right, 100).unwrap(), b"content");
    // A corrupted blob is caught when read.
    std::fs::write(store.blob_path(&right), b"tampered").unwrap();
    assert!(matches!(
        store.read_blob(&right, 100),
        Err(Error::DigestMismatch { .. })
    ));
}

#[test]
fn tags_retag_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = image(&mut store, b"shared layer", b"config a");
    let b = image(&mut store, b"shared layer", b"config b");
    store.add_image(&a).unwrap();
    store.add_image(&b).unwrap();
    let r = Reference::parse("busybox").unwrap().with_default_tag();
    assert_eq!(store.set_tag(&r, &a.manifest.digest).unwrap(), None);
    // Re-tagging onto b leaves a dangling.
    assert_eq!(
        store.set_tag(&r, &b.manifest.digest).unwrap(),
        Some(a.config_digest.clone())
    );
    let imgs = store.list_images().unwrap();
    assert_eq!(imgs.len(), 2);
    let ia = imgs.iter().find(|i| i.id == a.config_digest).unwrap();
    assert!(ia.is_dangling());
    assert_eq!(store.total_layer_size().unwrap(), 12, "shared layer counted once");
    // Deleting a keeps the shared layer blob for b.
    let removed = store.delete_image(&a.config_digest).unwrap();
    assert!(removed.chains_removed.is_empty());
    assert!(store.has_blob(&b.layers[0].blob.digest));
    assert!(!store.has_blob(&a.config_digest));
    assert!(!store.has_blob(&a.manifest.digest));
    let removed = store.delete_image(&b.config_digest).unwrap();
    assert_eq!(removed.untagged, vec!["docker.io/library/busybox:latest".to_string()]);
    assert!(!store.has_blob(&b.layers[0].blob.digest));
    assert_eq!(store.list_images().unwrap().len(), 0);
}

#[test]
fn image_needs_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut img = image(&mut store, b"l", b"c");
    img.layers[0].blob.digest = Digest::sha256_of(b"missing");
    assert!(matches!(store.add_image(&img), Err(Error::BlobMissing(_))));
    assert!(store.list_images().unwrap().is_empty());
}
