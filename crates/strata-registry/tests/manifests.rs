//! Manifests, indexes and platform selection, tag and catalog pagination,
//! cross-repository mounts — against strata-registry-server.

mod common;

use common::*;
use serde_json::json;
use strata_oci::{Digest, Document, Platform, Reference, media};
use strata_registry::{Client, Mount, RegistryError};

/// Pushes a config and a layer, then an OCI manifest; returns (digest, bytes).
async fn push_image(c: &Client, repo: &str, reference: &str, arch: &str) -> (Digest, Vec<u8>) {
    let config = format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
    let layer = data(5000, arch.len() as u64);
    let cd = c.push_blob_bytes(repo, config.clone().into_bytes()).await.unwrap();
    let ld = c.push_blob_bytes(repo, layer.clone()).await.unwrap();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": cd.to_string(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_GZIP, "digest": ld.to_string(), "size": layer.len()}],
    }))
    .unwrap();
    let d = c
        .put_manifest(repo, reference, media::OCI_MANIFEST, m.clone())
        .await
        .unwrap();
    assert_eq!(d, Digest::sha256_of(&m));
    (d, m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_put_and_get_by_tag_and_digest() {
    let r = open_registry().await;
    let c = r.anonymous();
    let (d, m) = push_image(&c, "lib/app", "v1", "amd64").await;

    let by_tag = c.get_manifest("lib/app", "v1").await.unwrap();
    assert_eq!(by_tag.digest, d);
    assert_eq!(by_tag.bytes.as_ref(), m.as_slice());
    assert_eq!(by_tag.media_type, media::OCI_MANIFEST);
    assert!(matches!(by_tag.document, Document::Manifest(_)));
    assert_eq!(by_tag.descriptor().size, m.len() as u64);

    let by_digest = c.get_manifest("lib/app", &d.to_string()).await.unwrap();
    assert_eq!(by_digest.digest, d);
    assert_eq!(by_digest.bytes.as_ref(), m.as_slice());

    let head = c.head_manifest("lib/app", "v1").await.unwrap().unwrap();
    assert_eq!(head.digest, Some(d.clone()));
    assert_eq!(head.media_type.as_deref(), Some(media::OCI_MANIFEST));
    assert_eq!(head.size, Some(m.len() as u64));
    assert_eq!(c.head_manifest("lib/app", "nope").await.unwrap(), None);

    // Pushed by digest, and the same bytes under a second tag.
    assert_eq!(
        c.put_manifest("lib/app", &d.to_string(), media::OCI_MANIFEST, m.clone())
            .await
            .unwrap(),
        d
    );
    c.put_manifest("lib/app", "v2", media::OCI_MANIFEST, m.clone())
        .await
        .unwrap();
    assert_eq!(c.get_manifest("lib/app", "v2").await.unwrap().digest, d);
    // A digest that is not the content's is refused before sending.
    let other = Digest::sha256_of(b"x");
    assert!(
        c.put_manifest("lib/app", &other.to_string(), media::OCI_MANIFEST, m.clone())
            .await
            .is_err()
    );

    // Unknown tag: the code, the registry and the repository.
    let err = c.get_manifest("lib/app", "missing").await.unwrap_err();
    let msg = err.to_string();
    assert!(err.is_not_found());
    assert!(
        msg.contains("MANIFEST_UNKNOWN") && msg.contains("lib/app") && msg.contains(&r.host),
        "{msg}"
    );
    // A manifest whose blobs are missing: the registry's MANIFEST_BLOB_UNKNOWN.
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": other.to_string(), "size": 1}, "layers": []
    }))
    .unwrap();
    let err = c
        .put_manifest("lib/app", "bad", media::OCI_MANIFEST, bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    // Bad arguments never reach the network.
    assert!(matches!(
        c.get_manifest("Lib/App", "v1").await,
        Err(RegistryError::Invalid(_))
    ));
    assert!(matches!(
        c.get_manifest("lib/app", "sha256:../../x").await,
        Err(RegistryError::Invalid(_))
    ));

    c.delete_manifest("lib/app", &d.to_string()).await.unwrap();
    assert_eq!(c.head_manifest("lib/app", &d.to_string()).await.unwrap(), None);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_and_platform_selection() {
    let r = open_registry().await;
    let c = r.anonymous();
    let (amd, amd_bytes) = push_image(&c, "multi/app", "amd64-only", "amd64").await;
    let (arm, arm_bytes) = push_image(&c, "multi/app", "arm64-only", "arm64").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": amd.to_string(), "size": amd_bytes.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": media::OCI_MANIFEST, "digest": arm.to_string(), "size": arm_bytes.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let id = c
        .put_manifest("multi/app", "latest", media::OCI_INDEX, index.clone())
        .await
        .unwrap();
    let got = c.get_manifest("multi/app", "latest").await.unwrap();
    assert_eq!(got.digest, id);
    assert_eq!(got.media_type, media::OCI_INDEX);
    let Document::Index(ix) = &got.document else {
        panic!("not an index")
    };
    assert_eq!(
        strata_registry::select_manifest(ix, &Platform::parse("linux/arm64").unwrap())
            .unwrap()
            .digest,
        arm
    );
    assert_eq!(strata_registry::index_platforms(ix), ["linux/amd64", "linux/arm64/v8"]);

    let reference = Reference::parse(&format!("{}/multi/app", r.host)).unwrap();
    let resolved = c
        .resolve(&reference, &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(resolved.manifest.digest, amd);
    assert_eq!(resolved.top_digest(), &id);
    let resolved = c
        .resolve(&reference, &Platform::parse("linux/arm64/v8").unwrap())
        .await
        .unwrap();
    assert_eq!(resolved.manifest.digest, arm);
    // A plain manifest resolves to itself, whatever the platform.
    let single = Reference::parse(&format!("{}/multi/app:arm64-only", r.host)).unwrap();
    let resolved = c.resolve(&single, &Platform::host()).await.unwrap();
    assert!(resolved.index.is_none());
    assert_eq!(resolved.manifest.digest, arm);

    let err = c
        .resolve(&reference, &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::NoMatchingPlatform { .. }));
    assert!(
        msg.contains("no matching manifest for linux/s390x")
            && msg.contains("linux/amd64, linux/arm64/v8")
            && msg.contains("multi/app"),
        "{msg}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_list_and_catalog_pagination() {
    let r = open_registry().await;
    let c = r.anonymous();
    let (_, m) = push_image(&c, "paged/app", "t00", "amd64").await;
    let mut want: Vec<String> = (0..23).map(|i| format!("t{i:02}")).collect();
    for t in &want[1..] {
        c.put_manifest("paged/app", t, media::OCI_MANIFEST, m.clone())
            .await
            .unwrap();
    }
    want.sort();
    for n in [None, Some(1), Some(5), Some(23), Some(100)] {
        let tags = c.list_tags("paged/app", n).await.unwrap();
        assert_eq!(tags, want, "page size {n:?}");
    }
    for repo in ["paged/b", "paged/c", "paged/d"] {
        c.push_blob_bytes(repo, b"cfg".to_vec()).await.unwrap();
        push_image(&c, repo, "x", "amd64").await;
    }
    let all = c.catalog(None).await.unwrap();
    assert_eq!(all, ["paged/app", "paged/b", "paged/c", "paged/d"]);
    assert_eq!(c.catalog(Some(3)).await.unwrap(), all);
    assert_eq!(c.catalog(Some(1)).await.unwrap(), all);
    let err = c.list_tags("paged/none", None).await.unwrap_err();
    assert!(err.to_string().contains("NAME_UNKNOWN"), "{err}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_across_repositories() {
    let r = open_registry().await;
    let c = r.anonymous();
    let blob = data(40_000, 9);
    let d = c.push_blob_bytes("src/app", blob.clone()).await.unwrap();
    assert!(matches!(
        c.mount_blob("dst/app", &d, "src/app").await.unwrap(),
        Mount::Mounted
    ));
    let mut out = Vec::new();
    c.get_blob("dst/app", &d, Some(blob.len() as u64), &mut out)
        .await
        .unwrap();
    assert_eq!(out, blob);

    // Not in the source: the registry opens an upload session instead, and it works.
    let other = data(1000, 10);
    let od = Digest::sha256_of(&other);
    match c.mount_blob("dst/app", &od, "src/app").await.unwrap() {
        Mount::Mounted => panic!("mounted a blob that is not there"),
        Mount::Upload(u) => {
            assert_eq!(u.repository(), "dst/app");
            c.upload_blob(u, &od, other.len() as u64, &other[..]).await.unwrap();
        }
    }
    assert_eq!(c.head_blob("dst/app", &od).await.unwrap(), Some(1000));
    r.stop().await;
}
