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

#[test]
fn an_index_names_one_image_after_its_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let host = image(&mut store, b"host layer", b"config host");
    let other = image(&mut store, b"other layer", b"config other");
    store.add_image(&other).unwrap();
    let index = store.put_blob(b"an index").unwrap();
    let idx = Descriptor::new(media::OCI_INDEX, index.clone(), 8);
    // The index needs its blob and its image.
    let missing = Descriptor::new(media::OCI_INDEX, Digest::sha256_of(b"nothing"), 7);
    assert!(matches!(
        store.add_index(&missing, &other.config_digest, true),
        Err(Error::BlobMissing(_))
    ));
    assert!(matches!(
        store.add_index(&idx, &host.config_digest, true),
        Err(Error::NoSuchImage(_))
    ));
    // Recorded for the first platform pulled; not moved without `replace`.
    store.add_index(&idx, &other.config_digest, false).unwrap();
    store.add_image(&host).unwrap();
    store.add_index(&idx, &host.config_digest, false).unwrap();
    assert_eq!(
        store.image_of_manifest(&index, None).unwrap(),
        Some(other.config_digest.clone())
    );
    // Moved with `replace`; the repo digest follows it.
    store.add_repo_digest("docker.io/library/app", &index).unwrap();
    store.add_index(&idx, &host.config_digest, true).unwrap();
    assert_eq!(
        store.image_of_manifest(&index, Some("docker.io/library/app")).unwrap(),
        Some(host.config_digest.clone())
    );
    let rec = store.image(&host.config_digest).unwrap().unwrap();
    // Registered after the image's manifest, and listed after it anyway.
    assert_eq!(rec.primary_manifest(), &host.manifest.digest);
    assert_eq!(rec.manifests.len(), 2);
    assert_eq!(rec.manifests[1], (index.clone(), media::OCI_INDEX.to_string(), 8));
    assert_eq!(
        rec.repo_digests,
        vec![("docker.io/library/app".to_string(), index.clone())]
    );
    assert!(store.image(&other.config_digest).unwrap().unwrap().manifests.len() == 1);
    // Deleting the image takes its index along.
    store.delete_image(&host.config_digest).unwrap();
    assert!(!store.has_blob(&index));
    assert_eq!(store.image_of_manifest(&index, None).unwrap(), None);
}

#[test]
fn untag_and_delete_unnamed_keeps_an_image_named_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = image(&mut store, b"layer", b"config a");
    store.add_image(&a).unwrap();
    let first = Reference::parse("first:1").unwrap();
    let second = Reference::parse("second:1").unwrap();
    store.set_tag(&first, &a.manifest.digest).unwrap();
    // The caller saw `first` as the last name; a `tag` added `second` since.
    store.set_tag(&second, &a.manifest.digest).unwrap();
    let lock = strata_store::StoreLock::exclusive(dir.path()).unwrap();
    let kept = store.untag_and_delete_unnamed(&first, &a.config_digest, &lock).unwrap();
    assert!(kept.is_none());
    let img = store.image(&a.config_digest).unwrap().expect("the image stays");
    assert_eq!(img.tags.len(), 1);
    assert_eq!(img.tags[0].repo, "docker.io/library/second");
    assert!(store.has_blob(&a.layers[0].blob.digest));
    // The last name: untagged and deleted together.
    let removed = store
        .untag_and_delete_unnamed(&second, &a.config_digest, &lock)
        .unwrap()
        .expect("deleted");
    assert!(removed.untagged.is_empty(), "the untag is the caller's to report");
    assert!(store.image(&a.config_digest).unwrap().is_none());
    assert!(!store.has_blob(&a.layers[0].blob.digest));
}
