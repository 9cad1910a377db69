//! Several images in one archive, as `strata save` writes and `strata load`
//! reads them: an `ArchiveSink` takes several copies and writes the archive
//! once at `commit` (a file atomically, or a stream); `ImageArchive` tells
//! the kind of what it reads (a file or a stream, compressed or not) and
//! lists every image with its names.

use std::io::Write;
use std::path::Path;

use strata_oci::{Descriptor, Digest, media};
use strata_transfer::archive::{ArchiveFormat, ArchiveInput, ArchiveSink, ArchivedImage, ImageArchive};
use strata_transfer::layout::Layout;
use strata_transfer::{CopyOptions, Source, copy, no_progress};

fn put(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), bytes).unwrap();
    d
}

fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// An image of the host's platform in the layout `dir`: a layer shared by
/// every image and one of its own.
fn image(dir: &Path, tag: &str) -> Descriptor {
    let shared = layer_tar("shared", b"in every image\n");
    let own = layer_tar("own", format!("only in {tag}\n").as_bytes());
    let (l1, l2) = (put(dir, &shared), put(dir, &own));
    let config = format!(
        r#"{{"architecture":"{}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{l1}","{l2}"]}}}}"#,
        strata_oci::Platform::host().architecture
    );
    let c = put(dir, config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l1}","size":{}}},{{"mediaType":"{}","digest":"{l2}","size":{}}}]}}"#,
        media::OCI_MANIFEST,
        media::OCI_CONFIG,
        config.len(),
        media::OCI_LAYER_TAR,
        shared.len(),
        media::OCI_LAYER_TAR,
        own.len()
    );
    let m = put(dir, manifest.as_bytes());
    Descriptor::new(media::OCI_MANIFEST, m, manifest.len() as u64)
}

/// A layout holding images `a` and `b`, named so in its `index.json`.
fn source(dir: &Path) -> (Descriptor, Descriptor) {
    let (a, b) = (image(dir, "a"), image(dir, "b"));
    let entry = |d: &Descriptor, n: &str| {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{n}"}}}}"#,
            d.media_type, d.digest, d.size
        )
    };
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{},{}]}}"#,
            entry(&a, "a"),
            entry(&b, "b")
        ),
    )
    .unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    (a, b)
}

fn members(archive: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut t = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut out = std::collections::BTreeMap::new();
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut b).unwrap();
        out.insert(name, b);
    }
    out
}

/// Copies `a` (as `app:1` and `example.com/x/app:2`) and `b` (without a name) into `sink`, then commits.
async fn save_two(src: &Layout, sink: &ArchiveSink, target: Option<&Path>) {
    let opts = CopyOptions::default();
    let names = ["app:1".to_string(), "example.com/x/app:2".to_string()];
    copy(src, sink, Some("a"), &names, &opts, no_progress()).await.unwrap();
    copy(src, sink, Some("b"), &[], &opts, no_progress()).await.unwrap();
    if let Some(t) = target {
        assert!(!t.exists(), "nothing is written before commit");
    }
    sink.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn several_images_in_one_archive_of_either_kind_and_back() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("src");
    let (a, b) = source(&dir);
    let src = Layout::open(&dir).unwrap();
    for format in [ArchiveFormat::DockerArchive, ArchiveFormat::OciArchive] {
        let file = t.path().join(format!("{format:?}.tar"));
        let sink = ArchiveSink::create(format, Some(&file), || unreachable!(), t.path()).unwrap();
        save_two(&src, &sink, Some(&file)).await;
        drop(sink);
        let files = members(&file);
        // The shared layer once; three layers, two configs, two manifests.
        let blobs = files.keys().filter(|k| k.starts_with("blobs/sha256/") && k.len() > 13);
        assert_eq!(blobs.count(), 7, "{:?}", files.keys());
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let ann = &index["manifests"][0]["annotations"];
        assert_eq!(ann["io.containerd.image.name"], "docker.io/library/app:1");
        assert_eq!(ann["org.opencontainers.image.ref.name"], "1");
        assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
        assert_eq!(
            files.contains_key("manifest.json"),
            format == ArchiveFormat::DockerArchive
        );

        let back = ImageArchive::open(ArchiveInput::File(file.clone()), t.path())
            .await
            .unwrap();
        assert_eq!(
            matches!(back, ImageArchive::Docker(_)),
            format == ArchiveFormat::DockerArchive
        );
        let images = back.images().unwrap();
        assert_eq!(images.len(), 2, "{images:?}");
        assert_eq!(images[0].names, vec!["app:1", "example.com/x/app:2"]);
        assert!(images[1].names.is_empty());
        for (img, want) in images.iter().zip([&a, &b]) {
            assert_eq!(back.resolve(Some(&img.reference)).await.unwrap().digest, want.digest);
        }
    }
    // Only the source and the two archives: no staging left.
    let mut left: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["DockerArchive.tar", "OciArchive.tar", "src"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_out_and_a_compressed_stream_in() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("src");
    let (a, _) = source(&dir);
    let src = Layout::open(&dir).unwrap();
    let streamed = t.path().join("streamed.tar");
    let out = std::fs::File::create(&streamed).unwrap();
    let sink = ArchiveSink::create(ArchiveFormat::DockerArchive, None, || Box::new(out), t.path()).unwrap();
    save_two(&src, &sink, None).await;
    assert!(sink.commit().await.is_err(), "a stream is written once");
    drop(sink);
    assert!(members(&streamed).contains_key("manifest.json"));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&streamed).unwrap()).unwrap();
    let gz = gz.finish().unwrap();
    let back = ImageArchive::open(ArchiveInput::Stream(Box::new(std::io::Cursor::new(gz))), t.path())
        .await
        .unwrap();
    let images = back.images().unwrap();
    assert_eq!(
        images[0],
        ArchivedImage {
            reference: "@0".into(),
            names: vec!["app:1".into(), "example.com/x/app:2".into()]
        }
    );
    assert_eq!(back.resolve(Some("@0")).await.unwrap().digest, a.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archive_of_neither_kind_is_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let e = ImageArchive::open(ArchiveInput::Stream(Box::new(std::io::Cursor::new(bytes))), t.path())
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("neither manifest.json"), "{e}");
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0, "nothing left unpacked");
}
