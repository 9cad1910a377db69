//! copy() between OCI layouts: an image, an index (all or some platforms),
//! and sources that lie (wrong digest, truncated blob, missing blob): the
//! sink is left as it was.

use std::path::Path;

use strata_oci::{Descriptor, Digest, media};
use strata_transfer::layout::Layout;
use strata_transfer::{CopyOptions, PlatformChoice, TransferError, copy, no_progress};

fn put(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), bytes).unwrap();
    d
}

/// An image for `arch` with one layer; returns its manifest descriptor.
fn image(dir: &Path, arch: &str, layer: &[u8]) -> Descriptor {
    let l = put(dir, layer);
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{l}"]}},"config":{{}}}}"#
    );
    let c = put(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l}","size":{}}}]}}"#,
        media::OCI_MANIFEST,
        media::OCI_CONFIG,
        config.len(),
        media::OCI_LAYER_TAR,
        layer.len()
    );
    let m = put(dir, manifest.as_bytes());
    Descriptor::new(media::OCI_MANIFEST, m, manifest.len() as u64)
}

fn write_index(dir: &Path, manifests: &[(Descriptor, &str)], name: &str) -> Descriptor {
    let entries: Vec<String> = manifests
        .iter()
        .map(|(d, arch)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                d.media_type, d.digest, d.size
            )
        })
        .collect();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media::OCI_INDEX,
        entries.join(",")
    );
    let d = put(dir, index.as_bytes());
    let desc = Descriptor::new(media::OCI_INDEX, d, index.len() as u64);
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#,
        desc.media_type, desc.digest, desc.size
    );
    std::fs::write(dir.join("index.json"), top).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    desc
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if dir.exists() {
        for e in walk(dir) {
            out.push(e);
        }
    }
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(format!("{} {}", p.display(), std::fs::metadata(&p).unwrap().len()));
        }
    }
    v
}

fn host_arch() -> String {
    strata_oci::Platform::host().architecture
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_copies_whole_or_by_platform() {
    let t = tempfile::tempdir().unwrap();
    let src_dir = t.path().join("src");
    let host = host_arch();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let a = image(&src_dir, &host, b"host layer");
    let b = image(&src_dir, other, b"other layer");
    let index = write_index(&src_dir, &[(a.clone(), &host), (b.clone(), other)], "app:1");
    let src = Layout::open(&src_dir).unwrap();

    // --all: the index byte for byte, every image.
    let all_dir = t.path().join("all");
    let dst = Layout::create(&all_dir).unwrap();
    let opts = CopyOptions {
        platforms: PlatformChoice::All,
        ..Default::default()
    };
    let r = copy(&src, &dst, Some("app:1"), &["app:1".into()], &opts, no_progress())
        .await
        .unwrap();
    assert_eq!(r.root.digest, index.digest);
    assert_eq!(r.images.len(), 2);
    assert_eq!(r.blobs_copied, 4);
    let back = Layout::open(&all_dir).unwrap();
    assert_eq!(
        strata_transfer::Source::resolve(&back, Some("app:1"))
            .await
            .unwrap()
            .digest,
        index.digest
    );
    // Again: everything is there already.
    let dst = Layout::create(&all_dir).unwrap();
    let r = copy(&src, &dst, Some("app:1"), &["app:1".into()], &opts, no_progress())
        .await
        .unwrap();
    assert_eq!((r.blobs_copied, r.blobs_skipped), (0, 4));

    // Default: the host's image alone.
    let host_dir = t.path().join("host");
    let dst = Layout::create(&host_dir).unwrap();
    let r = copy(
        &src,
        &dst,
        Some("app:1"),
        &["h".into()],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, a.digest);
    assert!(!listing(&host_dir).iter().any(|l| l.contains(b.digest.hex())));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_source_leaves_the_sink_as_it_was() {
    let t = tempfile::tempdir().unwrap();
    let src_dir = t.path().join("src");
    let m = image(&src_dir, &host_arch(), b"the real layer bytes");
    write_index(&src_dir, &[(m.clone(), &host_arch())], "x");
    let layer = {
        let bytes = std::fs::read(src_dir.join("blobs/sha256").join(m.digest.hex())).unwrap();
        let man: strata_oci::Manifest = serde_json::from_slice(&bytes).unwrap();
        man.layers[0].clone()
    };
    let layer_path = src_dir.join("blobs/sha256").join(layer.digest.hex());
    let dst_dir = t.path().join("dst");
    let before_dst = |d: &Path| {
        listing(d)
            .into_iter()
            .filter(|l| !l.contains(".strata-staging-"))
            .collect::<Vec<_>>()
    };
    let opts = CopyOptions::default();

    // Same size, other bytes.
    std::fs::write(&layer_path, b"the fake layer bytes").unwrap();
    let dst = Layout::create(&dst_dir).unwrap();
    let before = before_dst(&dst_dir);
    let e = copy(
        &Layout::open(&src_dir).unwrap(),
        &dst,
        Some("x"),
        &["x".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    drop(dst);
    assert_eq!(before_dst(&dst_dir), before);

    // Truncated.
    std::fs::write(&layer_path, b"the real").unwrap();
    let dst = Layout::create(&dst_dir).unwrap();
    let e = copy(
        &Layout::open(&src_dir).unwrap(),
        &dst,
        Some("x"),
        &["x".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::SizeMismatch { .. }), "{e}");
    drop(dst);
    assert_eq!(before_dst(&dst_dir), before);

    // Missing.
    std::fs::remove_file(&layer_path).unwrap();
    let dst = Layout::create(&dst_dir).unwrap();
    let e = copy(
        &Layout::open(&src_dir).unwrap(),
        &dst,
        Some("x"),
        &["x".into()],
        &opts,
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    drop(dst);
    assert_eq!(before_dst(&dst_dir), before);
    assert!(!dst_dir.join("index.json").exists());
}
