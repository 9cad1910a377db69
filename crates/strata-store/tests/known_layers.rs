//! A layer held in one form (blob) serves every image that names another
//! form of the same diff ID: `add_image` accepts an image whose manifest
//! names a layer blob the store does not hold when the store holds the
//! layer otherwise, records no row for the missing blob, and deleting
//! images keeps the held form while any image uses the diff ID.

use strata_oci::{Descriptor, Digest, media};
use strata_store::{Error, LayerRecord, NewImage, Store};

/// An image over `layers` (diff ID, blob descriptor); config and manifest stored.
fn image(store: &Store, config: &[u8], layers: &[(Digest, Descriptor)]) -> NewImage {
    let c = store.put_blob(config).unwrap();
    let m = store.put_blob(format!("manifest for {c}").as_bytes()).unwrap();
    NewImage {
        config_digest: c,
        created: None,
        os: "linux".into(),
        arch: "amd64".into(),
        variant: None,
        manifest: Descriptor::new(media::OCI_MANIFEST, m, 10),
        layers: layers
            .iter()
            .map(|(diff_id, blob)| LayerRecord {
                diff_id: diff_id.clone(),
                diff_size: 5,
                blob: blob.clone(),
            })
            .collect(),
    }
}

fn referenced(store: &Store) -> Vec<Digest> {
    let (refs, bad) = store.blob_references().unwrap();
    assert!(bad.is_empty(), "{bad:?}");
    refs.into_iter().map(|r| r.digest).collect()
}

#[test]
fn a_layer_held_in_another_form_is_accepted_without_a_row_for_the_missing_blob() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    // Image a holds layer D as a plain tar.
    let plain = store.put_blob(b"layer").unwrap();
    let diff = plain.clone();
    let plain_desc = Descriptor::new(media::OCI_LAYER_TAR, plain.clone(), 5);
    let a = image(&store, b"config a", &[(diff.clone(), plain_desc.clone())]);
    store.add_image(&a).unwrap();

    // Image b's manifest names a gzip form of D the store does not hold.
    let gzip = Digest::sha256_of(b"a gzip form of the layer");
    let gzip_desc = Descriptor::new(media::OCI_LAYER_GZIP, gzip.clone(), 24);
    let b = image(&store, b"config b", &[(diff.clone(), gzip_desc.clone())]);
    store.add_image(&b).unwrap();
    // Idempotent.
    store.add_image(&b).unwrap();
    let rec = store.image(&b.config_digest).unwrap().unwrap();
    assert_eq!(rec.diff_ids, vec![diff.clone()]);
    assert_eq!(rec.manifests[0].0, b.manifest.digest);
    // Rows only name held forms: the gzip blob is neither a form of the
    // layer nor a blob the metadata references (so not "missing").
    let forms: Vec<Digest> = store
        .layer_blobs(&diff)
        .unwrap()
        .into_iter()
        .map(|d| d.digest)
        .collect();
    assert_eq!(forms, vec![plain.clone()]);
    let held: Vec<Digest> = store
        .held_layer_blobs(&diff)
        .unwrap()
        .into_iter()
        .map(|d| d.digest)
        .collect();
    assert_eq!(held, vec![plain.clone()]);
    assert!(!referenced(&store).contains(&gzip));
    assert!(store.dangling_rows().unwrap().is_empty());

    // A layer the store holds in no form is still refused, and nothing of
    // the image is recorded.
    let unknown = Digest::sha256_of(b"unknown layer");
    let c = image(
        &store,
        b"config c",
        &[
            (diff.clone(), gzip_desc.clone()),
            (
                unknown.clone(),
                Descriptor::new(media::OCI_LAYER_GZIP, unknown.clone(), 3),
            ),
        ],
    );
    match store.add_image(&c) {
        Err(Error::BlobMissing(d)) => assert_eq!(d, unknown),
        other => panic!("{other:?}"),
    }
    assert!(store.image(&c.config_digest).unwrap().is_none());
    assert!(store.layer_size(&unknown).unwrap().is_none());

    // The config and the manifest must be held whatever the layers.
    let mut d = image(&store, b"config d", &[(diff.clone(), plain_desc.clone())]);
    d.manifest.digest = Digest::sha256_of(b"no such manifest");
    assert!(matches!(store.add_image(&d), Err(Error::BlobMissing(_))));
    let mut e = image(&store, b"config e", &[(diff.clone(), plain_desc.clone())]);
    e.config_digest = Digest::sha256_of(b"no such config");
    assert!(matches!(store.add_image(&e), Err(Error::BlobMissing(_))));

    // Deleting a keeps the plain blob: b still uses the diff ID.
    store.delete_image(&a.config_digest).unwrap();
    assert!(store.has_blob(&plain));
    assert_eq!(store.held_layer_blobs(&diff).unwrap().len(), 1);
    assert!(store.dangling_rows().unwrap().is_empty());
    // Another image naming the gzip form is still accepted.
    let f = image(&store, b"config f", &[(diff.clone(), gzip_desc.clone())]);
    store.add_image(&f).unwrap();
    store.delete_image(&f.config_digest).unwrap();
    // Deleting b, the last user, removes the held form (and the never
    // held gzip blob is no trouble).
    let removed = store.delete_image(&b.config_digest).unwrap();
    assert!(!store.has_blob(&plain));
    assert!(!store.has_blob(&b.manifest.digest));
    assert_eq!(removed.blobs_removed, 3, "layer, config, manifest: {removed:?}");
    assert!(store.layer_blobs(&diff).unwrap().is_empty());
    assert!(store.layer_size(&diff).unwrap().is_none());
    assert!(referenced(&store).is_empty());
}

#[test]
fn a_form_whose_blob_file_is_gone_does_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let plain = store.put_blob(b"layer").unwrap();
    let a = image(
        &store,
        b"config a",
        &[(plain.clone(), Descriptor::new(media::OCI_LAYER_TAR, plain.clone(), 5))],
    );
    store.add_image(&a).unwrap();
    std::fs::remove_file(store.blob_path(&plain)).unwrap();
    assert!(store.held_layer_blobs(&plain).unwrap().is_empty());
    let gzip = Digest::sha256_of(b"gzip form");
    let b = image(
        &store,
        b"config b",
        &[(plain.clone(), Descriptor::new(media::OCI_LAYER_GZIP, gzip.clone(), 9))],
    );
    match store.add_image(&b) {
        Err(Error::BlobMissing(d)) => assert_eq!(d, gzip),
        other => panic!("{other:?}"),
    }
    assert!(store.image(&b.config_digest).unwrap().is_none());
}

#[test]
fn a_layer_repeated_in_one_image_may_bring_its_own_held_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let plain = store.put_blob(b"layer").unwrap();
    let gzip = Digest::sha256_of(b"gzip form");
    let img = image(
        &store,
        b"config",
        &[
            (plain.clone(), Descriptor::new(media::OCI_LAYER_TAR, plain.clone(), 5)),
            (plain.clone(), Descriptor::new(media::OCI_LAYER_GZIP, gzip.clone(), 9)),
        ],
    );
    store.add_image(&img).unwrap();
    let forms: Vec<Digest> = store
        .layer_blobs(&plain)
        .unwrap()
        .into_iter()
        .map(|d| d.digest)
        .collect();
    assert_eq!(forms, vec![plain]);
}
