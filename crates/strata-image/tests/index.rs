//! An image pulled through a multi-platform index: the index's digest
//! names the image, and what it resolves to is the image's own manifest.

mod common;

use strata_oci::{Descriptor, media};

#[test]
fn an_index_digest_resolves_to_the_image_and_its_manifest() {
    let (_dir, mut store, imported) = common::store_with_image("reg.example/app:1");
    let index = store.put_blob(b"{\"schemaVersion\":2,\"manifests\":[]}").unwrap();
    store
        .add_index(
            &Descriptor::new(media::OCI_INDEX, index.clone(), 34),
            &imported.id,
            true,
        )
        .unwrap();
    store.add_repo_digest("reg.example/app", &index).unwrap();

    let r = strata_image::resolve(&store, &format!("reg.example/app@{index}")).unwrap();
    assert_eq!(r.image.id, imported.id);
    assert_eq!(r.manifest, imported.manifest);
    let r = strata_image::resolve(&store, &index.to_string()).unwrap();
    assert_eq!(r.image.id, imported.id);
    assert_eq!(r.manifest, imported.manifest);
    // Another repository does not have it.
    assert!(strata_image::resolve(&store, &format!("reg.example/other@{index}")).is_err());
    // Inspect shows the index as the repo digest, the manifest as Manifest.
    let v = strata_image::inspect(&store, &r.image).unwrap();
    assert_eq!(v["RepoDigests"][0], format!("reg.example/app@{index}"));
    assert_eq!(v["Manifest"]["Digest"], imported.manifest.to_string());
}
