//! copy() to, from and between registries (strata-registry-server started
//! in-process on 127.0.0.1): layout → registry (an image, an index with
//! every platform), registry → registry on two servers (streamed, manifest
//! digests unchanged) and on one server (mounted), registry → layout, a
//! lying source (the registry keeps no blob, manifest or tag of it), and
//! skopeo reading what was pushed.

use std::path::{Path, PathBuf};

use strata_oci::{Descriptor, Digest, Reference, media};
use strata_registry::{Client, ClientOptions, Credentials};
use strata_registry_server::{Config, RunningServer};
use strata_transfer::layout::Layout;
use strata_transfer::registry::RegistryLocation;
use strata_transfer::{CopyOptions, PlatformChoice, TransferError, copy, no_progress};

struct Registry {
    server: Option<RunningServer>,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`
    host: String,
}

impl Registry {
    async fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::filesystem(dir.path().join("storage"), "127.0.0.1:0");
        c.log.accesslog.disabled = true;
        let server = strata_registry_server::start(c).await.expect("server starts");
        let host = server.addr().to_string();
        Registry {
            server: Some(server),
            dir,
            host,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }

    fn client(&self) -> Client {
        Client::new(&self.host, options()).unwrap()
    }

    /// A location `HOST/name` (name may carry `:tag`).
    fn location(&self, name: &str) -> RegistryLocation {
        location_with(&format!("{}/{name}", self.host), options())
    }
}

/// Options that read nothing from the machine (no certs.d, no ~/.docker).
fn options() -> ClientOptions {
    ClientOptions {
        certs_dir: PathBuf::from("/nonexistent/strata-test-certs.d"),
        credentials: Credentials::Anonymous,
        docker_config_dir: Some(PathBuf::from("/nonexistent/strata-test-docker-config")),
        ..Default::default()
    }
}

fn location_with(reference: &str, options: ClientOptions) -> RegistryLocation {
    RegistryLocation::new(&Reference::parse(reference).unwrap(), options).unwrap()
}

fn put(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256_of(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), bytes).unwrap();
    d
}

/// An image for `arch` with one layer; returns its manifest descriptor and its layer's.
fn image(dir: &Path, arch: &str, layer: &[u8]) -> (Descriptor, Descriptor) {
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
    (
        Descriptor::new(media::OCI_MANIFEST, m, manifest.len() as u64),
        Descriptor::new(media::OCI_LAYER_TAR, l, layer.len() as u64),
    )
}

/// Names `root` `name` in the layout's `index.json`.
fn name_root(dir: &Path, root: &Descriptor, name: &str) {
    let top = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{name}"}}}}]}}"#,
        root.media_type, root.digest, root.size
    );
    std::fs::write(dir.join("index.json"), top).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// An index of two images (the host's and another platform) named `name`;
/// returns the index and its manifests.
fn index_layout(dir: &Path, name: &str) -> (Descriptor, Vec<Descriptor>) {
    let host = strata_oci::Platform::host().architecture;
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let (a, _) = image(dir, &host, &data(300_000, 1));
    let (b, _) = image(dir, other, &data(200_000, 2));
    let entries: Vec<String> = [(&a, host.as_str()), (&b, other)]
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
    name_root(dir, &desc, name);
    (desc, vec![a, b])
}

/// Deterministic pseudo-random bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn all() -> CopyOptions {
    CopyOptions {
        platforms: PlatformChoice::All,
        ..Default::default()
    }
}

/// The bytes of a manifest in `repo`, fetched by digest.
async fn manifest_bytes(client: &Client, repo: &str, digest: &Digest) -> Vec<u8> {
    client
        .get_manifest(repo, &digest.to_string())
        .await
        .unwrap()
        .bytes
        .to_vec()
}

/// Every blob of a manifest (config and layers) that `repo` holds: all of them.
async fn assert_blobs(client: &Client, repo: &str, manifest: &[u8]) {
    let m: strata_oci::Manifest = serde_json::from_slice(manifest).unwrap();
    for d in std::iter::once(&m.config).chain(&m.layers) {
        assert_eq!(
            client.head_blob(repo, &d.digest).await.unwrap(),
            Some(d.size),
            "blob {} in {repo}",
            d.digest
        );
    }
}

/// The server's count of HTTP requests to `route` with `method` and `status` (from `/metrics`).
async fn requests(host: &str, route: &str, method: &str, status: u16) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(host).await.unwrap();
    c.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    let key = format!("registry_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// `skopeo inspect` of `reference` (`HOST/REPO:TAG`): its digest line, or
/// None (printing `skipped: …`) when skopeo is not installed.
async fn skopeo_digest(reference: &str, raw: bool) -> Option<String> {
    let r = reference.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut c = std::process::Command::new("skopeo");
        c.args(["inspect", "--tls-verify=false"]);
        if raw {
            c.arg("--raw");
        }
        c.arg(format!("docker://{r}")).output()
    })
    .await
    .unwrap();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: skopeo is not installed");
            return None;
        }
        Err(e) => panic!("running skopeo: {e}"),
    };
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    if raw {
        return Some(Digest::sha256_of(text.as_bytes()).to_string());
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    Some(v["Digest"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn layout_to_registry_an_image_and_an_index() {
    let reg = Registry::start().await;
    let client = reg.client();
    let t = tempfile::tempdir().unwrap();

    // One image, with a layer of several chunks (PATCHes of 1 MiB).
    let img_dir = t.path().join("img");
    let (m, layer) = image(&img_dir, "amd64", &data(3 * 1024 * 1024 + 17, 7));
    name_root(&img_dir, &m, "img");
    let chunked = ClientOptions {
        chunk_size: Some(1024 * 1024),
        ..options()
    };
    let dst = location_with(&format!("{}/app/one:v1", reg.host), chunked);
    let r = copy(
        &Layout::open(&img_dir).unwrap(),
        &dst,
        Some("img"),
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, m.digest);
    assert_eq!((r.blobs_copied, r.blobs_skipped), (2, 0));
    let head = client.head_manifest("app/one", "v1").await.unwrap().unwrap();
    assert_eq!(
        head.digest.as_ref(),
        Some(&m.digest),
        "the location's tag names the image"
    );
    let bytes = manifest_bytes(&client, "app/one", &m.digest).await;
    assert_eq!(
        bytes,
        std::fs::read(img_dir.join("blobs/sha256").join(m.digest.hex())).unwrap()
    );
    assert_blobs(&client, "app/one", &bytes).await;
    assert_eq!(
        client.head_blob("app/one", &layer.digest).await.unwrap(),
        Some(layer.size)
    );

    // Again, under more names: every blob is there already.
    let r = copy(
        &Layout::open(&img_dir).unwrap(),
        &reg.location("app/one"),
        Some("img"),
        &["v2".into(), format!("{}/app/one:v3", reg.host)],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!((r.blobs_copied, r.blobs_skipped), (0, 2));
    for tag in ["v2", "v3"] {
        let h = client.head_manifest("app/one", tag).await.unwrap().unwrap();
        assert_eq!(h.digest.as_ref(), Some(&m.digest), "{tag}");
    }
    // A name of another repository is refused before any tag moves.
    let e = copy(
        &Layout::open(&img_dir).unwrap(),
        &reg.location("app/one"),
        Some("img"),
        &["v4".into(), format!("{}/app/other:v1", reg.host)],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::Invalid(_)), "{e}");
    assert!(client.head_manifest("app/one", "v4").await.unwrap().is_none());

    // An index with every platform: byte for byte.
    let ix_dir = t.path().join("index");
    let (index, manifests) = index_layout(&ix_dir, "multi");
    let r = copy(
        &Layout::open(&ix_dir).unwrap(),
        &reg.location("app/multi"),
        Some("multi"),
        &["latest".into()],
        &all(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, index.digest);
    assert_eq!((r.images.len(), r.blobs_copied), (2, 4));
    let h = client.head_manifest("app/multi", "latest").await.unwrap().unwrap();
    assert_eq!(h.digest.as_ref(), Some(&index.digest));
    assert_eq!(h.media_type.as_deref(), Some(media::OCI_INDEX));
    for d in &manifests {
        let bytes = manifest_bytes(&client, "app/multi", &d.digest).await;
        assert_blobs(&client, "app/multi", &bytes).await;
    }

    // skopeo reads both.
    if let Some(d) = skopeo_digest(&format!("{}/app/one:v1", reg.host), false).await {
        assert_eq!(d, m.digest.to_string());
        let raw = skopeo_digest(&format!("{}/app/multi:latest", reg.host), true).await;
        assert_eq!(raw, Some(index.digest.to_string()));
    }
    reg.stop().await;
}

/// Pushes the index layout to `HOST/src/multi:1`; returns the index.
async fn seed(reg: &Registry, dir: &Path) -> (Descriptor, Vec<Descriptor>) {
    let (index, manifests) = index_layout(dir, "multi");
    copy(
        &Layout::open(dir).unwrap(),
        &reg.location("src/multi:1"),
        Some("multi"),
        &[],
        &all(),
        no_progress(),
    )
    .await
    .unwrap();
    (index, manifests)
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_to_registry_streams_or_mounts_and_keeps_digests() {
    let a = Registry::start().await;
    let b = Registry::start().await;
    let t = tempfile::tempdir().unwrap();
    let (index, manifests) = seed(&a, &t.path().join("seed")).await;
    let (ca, cb) = (a.client(), b.client());

    // Two servers: every blob's bytes move, every document stays byte for byte.
    let src = a.location("src/multi:1");
    let r = copy(&src, &b.location("copy/multi:2"), None, &[], &all(), no_progress())
        .await
        .unwrap();
    assert_eq!(r.root.digest, index.digest);
    assert_eq!((r.blobs_copied, r.blobs_mounted, r.blobs_skipped), (4, 0, 0));
    for d in std::iter::once(&index).chain(&manifests) {
        let theirs = manifest_bytes(&ca, "src/multi", &d.digest).await;
        let ours = manifest_bytes(&cb, "copy/multi", &d.digest).await;
        assert_eq!(theirs, ours, "{}", d.digest);
    }
    for d in &manifests {
        assert_blobs(&cb, "copy/multi", &manifest_bytes(&cb, "copy/multi", &d.digest).await).await;
    }
    let h = cb.head_manifest("copy/multi", "2").await.unwrap().unwrap();
    assert_eq!(h.digest.as_ref(), Some(&index.digest));

    // By digest, the host's image alone.
    let by_digest = a.location(&format!("src/multi@{}", index.digest));
    let r = copy(
        &by_digest,
        &b.location("copy/host:1"),
        None,
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(r.root.digest, manifests[0].digest);
    let h = cb.head_manifest("copy/host", "1").await.unwrap().unwrap();
    assert_eq!(h.digest.as_ref(), Some(&manifests[0].digest));

    // One server, another repository: blobs are mounted, not moved.
    let r = copy(&src, &a.location("other/multi:1"), None, &[], &all(), no_progress())
        .await
        .unwrap();
    assert!(r.blobs_mounted > 0, "{r:?}");
    assert_eq!((r.blobs_copied, r.blobs_mounted), (0, 4));
    for d in &manifests {
        assert_blobs(&ca, "other/multi", &manifest_bytes(&ca, "other/multi", &d.digest).await).await;
    }
    assert_eq!(
        ca.head_manifest("other/multi", "1").await.unwrap().unwrap().digest,
        Some(index.digest.clone())
    );

    // Registry → layout.
    let out = t.path().join("out");
    let dst = Layout::create(&out).unwrap();
    let r = copy(&src, &dst, None, &["m:1".into()], &all(), no_progress())
        .await
        .unwrap();
    assert_eq!((r.root.digest.clone(), r.blobs_copied), (index.digest.clone(), 4));
    let back = Layout::open(&out).unwrap();
    assert_eq!(
        strata_transfer::Source::resolve(&back, Some("m:1"))
            .await
            .unwrap()
            .digest,
        index.digest
    );
    for d in std::iter::once(&index).chain(&manifests) {
        let file = std::fs::read(out.join("blobs/sha256").join(d.digest.hex())).unwrap();
        assert_eq!(file, manifest_bytes(&ca, "src/multi", &d.digest).await);
    }

    // A missing tag is NotFound, naming the repository.
    let e = copy(
        &a.location("src/multi:nope"),
        &Layout::create(&t.path().join("none")).unwrap(),
        None,
        &[],
        &all(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("src/multi"), "{e}");

    if let Some(d) = skopeo_digest(&format!("{}/copy/multi:2", b.host), true).await {
        assert_eq!(d, index.digest.to_string());
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lying_source_leaves_no_blob_manifest_or_tag() {
    let reg = Registry::start().await;
    let client = reg.client();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("src");
    // Several PATCHes of the layer go up before its end shows the lie.
    let real = data(2 * 1024 * 1024 + 5, 9);
    let (m, layer) = image(&dir, &strata_oci::Platform::host().architecture, &real);
    name_root(&dir, &m, "x");
    let layer_path = dir.join("blobs/sha256").join(layer.digest.hex());
    let chunked = || ClientOptions {
        chunk_size: Some(512 * 1024),
        ..options()
    };

    let assert_nothing = |what: &'static str| {
        let client = client.clone();
        let (m, layer) = (m.clone(), layer.clone());
        async move {
            assert!(client.head_manifest("lie", "1").await.unwrap().is_none(), "{what}: tag");
            assert!(
                client
                    .head_manifest("lie", &m.digest.to_string())
                    .await
                    .unwrap()
                    .is_none(),
                "{what}: manifest"
            );
            assert_eq!(
                client.head_blob("lie", &layer.digest).await.unwrap(),
                None,
                "{what}: blob"
            );
        }
    };

    // Same size, other bytes (the last one).
    let mut fake = real.clone();
    *fake.last_mut().unwrap() ^= 1;
    std::fs::write(&layer_path, &fake).unwrap();
    let dst = location_with(&format!("{}/lie:1", reg.host), chunked());
    let e = copy(
        &Layout::open(&dir).unwrap(),
        &dst,
        Some("x"),
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    assert_nothing("wrong bytes").await;
    // The layer's bytes went up in PATCHes, but no upload was closed with a
    // PUT but the config's: the registry was never offered a wrong blob.
    let h = &reg.host;
    assert!(requests(h, "uploads", "PATCH", 202).await >= 4);
    // (The config's upload may have been dropped unfinished when the layer failed.)
    assert!(requests(h, "uploads", "PUT", 201).await <= 1);
    assert_eq!(requests(h, "uploads", "PUT", 400).await, 0);
    assert_eq!(
        requests(h, "uploads", "DELETE", 204).await,
        1,
        "the session is cancelled"
    );

    // Truncated, one upload in one PATCH.
    std::fs::write(&layer_path, &real[..real.len() / 2]).unwrap();
    let e = copy(
        &Layout::open(&dir).unwrap(),
        &reg.location("lie:1"),
        Some("x"),
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::SizeMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    assert_nothing("truncated").await;

    // Longer than it says.
    let mut longer = real.clone();
    longer.extend_from_slice(b"more");
    std::fs::write(&layer_path, &longer).unwrap();
    let e = copy(
        &Layout::open(&dir).unwrap(),
        &reg.location("lie:1"),
        Some("x"),
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    assert_nothing("longer").await;

    // The truth, at last: the same sink takes it.
    std::fs::write(&layer_path, &real).unwrap();
    copy(
        &Layout::open(&dir).unwrap(),
        &reg.location("lie:1"),
        Some("x"),
        &[],
        &CopyOptions::default(),
        no_progress(),
    )
    .await
    .unwrap();
    assert_eq!(client.head_blob("lie", &layer.digest).await.unwrap(), Some(layer.size));
    reg.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_serving_wrong_bytes_leaves_the_sink_unchanged() {
    let a = Registry::start().await;
    let b = Registry::start().await;
    let t = tempfile::tempdir().unwrap();
    let (index, manifests) = seed(&a, &t.path().join("seed")).await;
    let m: strata_oci::Manifest =
        serde_json::from_slice(&manifest_bytes(&a.client(), "src/multi", &manifests[0].digest).await).unwrap();
    let layer = &m.layers[0];
    // Flip a byte of the layer in the source registry's storage.
    let hex = layer.digest.hex();
    let file = a.dir.path().join("storage/blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let e = copy(
        &a.location("src/multi:1"),
        &b.location("dst/multi:1"),
        None,
        &[],
        &all(),
        no_progress(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, TransferError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer.digest.to_string()), "{e}");
    let cb = b.client();
    assert!(cb.head_manifest("dst/multi", "1").await.unwrap().is_none());
    assert!(
        cb.head_manifest("dst/multi", &index.digest.to_string())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(cb.head_blob("dst/multi", &layer.digest).await.unwrap(), None);
    assert_eq!(requests(&b.host, "uploads", "PUT", 400).await, 0);
    a.stop().await;
    b.stop().await;
}
