//! Pull into and push from a local store, against strata-registry-server
//! in-process and a scripted server for what a correct registry never does
//! (wrong bytes, broken connections).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::json;
use strata_oci::{Digest, Platform, Reference, media};
use strata_registry::{Client, Credentials};
use strata_store::Store;
use strata_transfer::progress::{Event, LayerStatus, Progress};
use strata_transfer::pull::PullReport;
use strata_transfer::push::PushOptions;

/// An image: config, manifest, and its layer blobs (gzip).
struct TestImage {
    config: Vec<u8>,
    manifest: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

impl TestImage {
    fn new(platform: &Platform, tars: &[Vec<u8>]) -> TestImage {
        Self::with_diff_ids(platform, tars, None)
    }

    fn with_diff_ids(platform: &Platform, tars: &[Vec<u8>], diff_ids: Option<Vec<Digest>>) -> TestImage {
        let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
        let diff_ids = diff_ids.unwrap_or_else(|| tars.iter().map(|t| Digest::sha256_of(t)).collect());
        let config = serde_json::to_vec(&json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "variant": platform.variant,
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": Digest::sha256_of(&config), "size": config.len()},
            "layers": layers.iter().map(|l| json!({
                "mediaType": media::OCI_LAYER_GZIP, "digest": Digest::sha256_of(l), "size": l.len()
            })).collect::<Vec<_>>(),
        }))
        .unwrap();
        TestImage {
            config,
            manifest,
            layers,
        }
    }

    fn id(&self) -> Digest {
        Digest::sha256_of(&self.config)
    }

    fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    async fn push(&self, c: &Client, repo: &str, tag: &str) -> Digest {
        c.push_blob_bytes(repo, self.config.clone()).await.unwrap();
        for l in &self.layers {
            c.push_blob_bytes(repo, l.clone()).await.unwrap();
        }
        c.put_manifest(repo, tag, media::OCI_MANIFEST, self.manifest.clone())
            .await
            .unwrap()
    }
}

fn two_layers(seed: u64) -> Vec<Vec<u8>> {
    vec![
        tar_of(&[("etc/hostname", b"box\n"), ("bin/tool", &data(200_000, seed))]),
        tar_of(&[("usr/share/doc/readme", &data(50_000, seed + 1))]),
    ]
}

fn push_opts() -> PushOptions {
    PushOptions {
        client: options(Credentials::Anonymous),
        ..Default::default()
    }
}

fn open_store(dir: &Path) -> Store {
    Store::open(&dir.join("store")).unwrap()
}

/// Pulls `name` into `store` with [`pull_options`].
async fn pull(store: &mut Store, name: &str, progress: &Progress) -> anyhow::Result<PullReport> {
    Ok(strata_transfer::pull::pull_async(store, &Reference::parse(name).unwrap(), &pull_options(), progress).await?)
}

/// Pulls `name`, expects a refusal that leaves `store` as it was, and
/// returns the message.
async fn refused(store: &mut Store, name: &str) -> String {
    let before = snapshot(store);
    let e = pull(store, name, &strata_transfer::progress::no_progress())
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert_eq!(snapshot(store), before, "{msg}");
    msg
}

/// Records every event.
fn recorder() -> (Progress, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    (Arc::new(move |ev| e.lock().unwrap().push(ev)), events)
}

fn statuses(events: &Arc<Mutex<Vec<Event>>>) -> Vec<LayerStatus> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Layer { status, .. } => Some(status.clone()),
            _ => None,
        })
        .collect()
}

/// The byte events of one phase: rising, at most one per step, ending at
/// each layer's compressed size.
fn check_byte_events(events: &Arc<Mutex<Vec<Event>>>, layers: &[Vec<u8>], phase: LayerStatus) {
    for l in layers {
        let d = Digest::sha256_of(l);
        let seen: Vec<(u64, u64)> = events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Bytes {
                    digest,
                    status,
                    current,
                    total,
                } if *digest == d && *status == phase => Some((*current, *total)),
                _ => None,
            })
            .collect();
        assert!(!seen.is_empty(), "no {phase:?} bytes for {d}");
        assert!(seen.iter().all(|(_, t)| *t == l.len() as u64), "{seen:?}");
        assert_eq!(seen.last().unwrap().0, l.len() as u64, "{phase:?}: {seen:?}");
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "{seen:?}");
        assert!(
            seen.len() as u64 <= l.len() as u64 / strata_transfer::progress::BYTES_EVENT_STEP + 2,
            "{seen:?}"
        );
    }
}

/// Files under blobs/ and tmp/, and the images with their names.
fn snapshot(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                // Per-layer lock files are not content (and are kept on purpose).
                if e.file_name() != ".locks" {
                    walk(&e.path(), out);
                }
            } else {
                out.push(format!("{} {}", e.path().display(), e.metadata().unwrap().len()));
            }
        }
    }
    walk(&store.root().join("blobs"), &mut out);
    walk(&store.root().join("tmp"), &mut out);
    walk(&store.root().join("layers"), &mut out);
    out.sort();
    for i in store.list_images().unwrap() {
        out.push(format!("{} {:?} {:?} {:?}", i.id, i.tags, i.repo_digests, i.manifests));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_registers_then_is_up_to_date_then_push_elsewhere_mounts_and_keeps_the_digest() {
    let r = open_registry().await;
    let c = r.anonymous();
    let img = TestImage::new(&Platform::host(), &two_layers(1));
    img.push(&c, "team/app", "1").await;

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let reference = Reference::parse(&format!("{}/team/app:1", r.host)).unwrap();
    let (progress, events) = recorder();
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &progress)
        .await
        .unwrap();
    assert_eq!(rep.image_id, img.id());
    assert_eq!(rep.digest, img.digest());
    assert_eq!(rep.manifest, img.digest());
    assert_eq!(rep.downloaded, 2);
    assert!(!rep.up_to_date);
    assert_eq!(
        statuses(&events)
            .iter()
            .filter(|s| **s == LayerStatus::PullComplete)
            .count(),
        2
    );
    check_byte_events(&events, &img.layers, LayerStatus::Downloading);
    check_byte_events(&events, &img.layers, LayerStatus::Extracting);
    // Every layer is announced, in manifest order, before any is done.
    let evs = events.lock().unwrap().clone();
    let announced: Vec<Digest> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Layer {
                digest,
                status: LayerStatus::Downloading,
            } => Some(digest.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        announced,
        img.layers.iter().map(|l| Digest::sha256_of(l)).collect::<Vec<_>>()
    );
    let first_done = evs
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Layer {
                    status: LayerStatus::PullComplete,
                    ..
                }
            )
        })
        .unwrap();
    let last_announced = evs
        .iter()
        .rposition(|e| {
            matches!(
                e,
                Event::Layer {
                    status: LayerStatus::Downloading,
                    ..
                }
            )
        })
        .unwrap();
    assert!(last_announced < first_done, "{evs:?}");
    let rec = store.image(&img.id()).unwrap().unwrap();
    assert_eq!(rec.diff_ids.len(), 2);
    assert_eq!(rec.tags[0].tag, "1");
    assert_eq!(rec.repo_digests, vec![(reference.repository(), img.digest())]);
    // The registry's manifest and compressed layers are kept byte for byte.
    assert_eq!(store.read_blob(&img.digest(), 1 << 20).unwrap(), img.manifest);
    for l in &img.layers {
        assert!(store.has_blob(&Digest::sha256_of(l)));
    }
    // The diff IDs are recorded against the compressed blobs.
    let diff0 = rec.diff_ids[0].clone();
    assert_eq!(
        store.layer_blobs(&diff0).unwrap()[0].digest,
        Digest::sha256_of(&img.layers[0])
    );

    // Again: nothing downloaded.
    let (progress, events) = recorder();
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &progress)
        .await
        .unwrap();
    assert!(rep.up_to_date);
    assert_eq!(rep.downloaded, 0);
    assert!(statuses(&events).is_empty(), "{:?}", events.lock().unwrap());

    // By digest (pinned): up to date as well, and the digest wins over a tag.
    let pinned = Reference::parse(&format!("{}/team/app:nosuchtag@{}", r.host, img.digest())).unwrap();
    let rep = strata_transfer::pull::pull_async(&mut store, &pinned, &pull_options(), &progress)
        .await
        .unwrap();
    assert!(rep.up_to_date);
    assert_eq!(rep.image_id, img.id());

    // Push to another repository of the same registry: every blob is mounted
    // from team/app, and the manifest digest stays the same.
    let (progress, events) = recorder();
    let rep = strata_transfer::push::push_async(&mut store, &format!("{}/team/app:1", r.host), &push_opts(), &progress)
        .await
        .unwrap();
    assert_eq!(rep.digest, img.digest());
    assert_eq!(rep.existed, 3);
    assert_eq!(
        statuses(&events),
        vec![
            LayerStatus::Waiting,
            LayerStatus::Waiting,
            LayerStatus::LayerAlreadyExists,
            LayerStatus::LayerAlreadyExists
        ]
    );
    let mut store2 = store;
    strata_image::resolve(&store2, &format!("{}/team/app:1", r.host)).unwrap();
    let other = Reference::parse(&format!("{}/other/copy:v1", r.host)).unwrap();
    store2.set_tag(&other, &img.digest()).unwrap();
    // A repository the store names but the registry lacks the blobs in is
    // tried first (its upload sessions are refused mounts); team/app mounts.
    let lacking = Reference::parse(&format!("{}/aaa/none:1", r.host)).unwrap();
    store2.set_tag(&lacking, &img.digest()).unwrap();
    let (progress, events) = recorder();
    let rep = strata_transfer::push::push_async(&mut store2, &other.familiar(), &push_opts(), &progress)
        .await
        .unwrap();
    assert_eq!(rep.digest, img.digest());
    assert_eq!((rep.mounted, rep.uploaded, rep.existed), (3, 0, 0));
    assert_eq!(
        statuses(&events),
        vec![
            LayerStatus::Waiting,
            LayerStatus::Waiting,
            LayerStatus::MountedFrom("team/app".into()),
            LayerStatus::MountedFrom("team/app".into())
        ]
    );
    let got = c.get_manifest("other/copy", "v1").await.unwrap();
    assert_eq!(got.digest, img.digest());
    assert_eq!(&got.bytes[..], &img.manifest[..]);
    // The new repository is recorded as a repo digest.
    let rec = store2.image(&img.id()).unwrap().unwrap();
    assert!(rec.repo_digests.contains(&(other.repository(), img.digest())));
    r.stop().await;
}

fn other_platform() -> Platform {
    let host = Platform::host();
    let arch = if host.architecture == "amd64" { "arm64" } else { "amd64" };
    Platform::parse(&format!("linux/{arch}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_host_platform_by_default_platform_option_and_no_match_lists_platforms() {
    let r = open_registry().await;
    let c = r.anonymous();
    let host = TestImage::new(&Platform::host(), &two_layers(10));
    let other = TestImage::new(&other_platform(), &two_layers(20));
    host.push(&c, "multi/app", "host").await;
    other.push(&c, "multi/app", "other").await;
    let entry = |i: &TestImage, p: &Platform| {
        json!({"mediaType": media::OCI_MANIFEST, "digest": i.digest(), "size": i.manifest.len(),
               "platform": {"os": p.os, "architecture": p.architecture, "variant": p.variant}})
    };
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [entry(&other, &other_platform()), entry(&host, &Platform::host())],
    }))
    .unwrap();
    let index_digest = c
        .put_manifest("multi/app", "latest", media::OCI_INDEX, index)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let reference = Reference::parse(&format!("{}/multi/app", r.host)).unwrap();
    let p = strata_transfer::progress::no_progress();
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &p)
        .await
        .unwrap();
    assert_eq!(rep.image_id, host.id());
    assert_eq!(rep.digest, index_digest);
    assert_eq!(rep.manifest, host.digest());
    assert_eq!(rep.reference.tag(), Some("latest"));
    // The index is stored and is the repo digest (as Docker shows it); the
    // tag names the platform's manifest.
    let repo = reference.repository();
    assert!(store.has_blob(&index_digest));
    let rec = store.image(&host.id()).unwrap().unwrap();
    assert_eq!(rec.repo_digests, vec![(repo.clone(), index_digest.clone())]);
    assert_eq!(rec.primary_manifest(), &host.digest());
    assert_eq!(rec.tags[0].manifest, host.digest());
    let by_index = strata_image::resolve(&store, &format!("{}/multi/app@{index_digest}", r.host)).unwrap();
    assert_eq!(by_index.image.id, host.id());
    assert_eq!(by_index.manifest, host.digest());
    // Again, and by the index digest: up to date, nothing fetched.
    let (rec_p, events) = recorder();
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &rec_p)
        .await
        .unwrap();
    assert!(rep.up_to_date);
    assert_eq!(
        (rep.digest.clone(), rep.manifest.clone()),
        (index_digest.clone(), host.digest())
    );
    let pinned = Reference::parse(&format!("{}/multi/app@{index_digest}", r.host)).unwrap();
    let rep = strata_transfer::pull::pull_async(&mut store, &pinned, &pull_options(), &rec_p)
        .await
        .unwrap();
    assert!(rep.up_to_date);
    assert_eq!(rep.image_id, host.id());
    assert!(statuses(&events).is_empty());

    let mut o = pull_options();
    o.platform = Some(other_platform());
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &o, &p)
        .await
        .unwrap();
    assert_eq!(rep.image_id, other.id());
    assert_eq!(rep.digest, index_digest);
    let rec = store.image(&other.id()).unwrap().unwrap();
    assert_eq!(rec.arch, other_platform().architecture);
    // The index still names the host's image; the other platform's image
    // keeps its own manifest as repo digest.
    assert_eq!(rec.repo_digests, vec![(repo.clone(), other.digest())]);
    let by_index = strata_image::resolve(&store, &format!("{}/multi/app@{index_digest}", r.host)).unwrap();
    assert_eq!(by_index.image.id, host.id());

    // Another platform first, then the host's: the index moves to the host's image.
    let first = tempfile::tempdir().unwrap();
    let mut store3 = open_store(first.path());
    strata_transfer::pull::pull_async(&mut store3, &reference, &o, &p)
        .await
        .unwrap();
    let by_index = strata_image::resolve(&store3, &format!("{}/multi/app@{index_digest}", r.host)).unwrap();
    assert_eq!(by_index.image.id, other.id());
    assert_eq!(by_index.manifest, other.digest());
    strata_transfer::pull::pull_async(&mut store3, &reference, &pull_options(), &p)
        .await
        .unwrap();
    let by_index = strata_image::resolve(&store3, &format!("{}/multi/app@{index_digest}", r.host)).unwrap();
    assert_eq!(by_index.image.id, host.id());
    assert_eq!(by_index.manifest, host.digest());
    let rec = store3.image(&host.id()).unwrap().unwrap();
    assert_eq!(rec.repo_digests, vec![(repo.clone(), index_digest.clone())]);

    // A platform the index lacks: the error names what it offers, and the
    // store is left as it was.
    let before = snapshot(&store);
    o.platform = Some(Platform::parse("windows/riscv64").unwrap());
    let e = strata_transfer::pull::pull_async(&mut store, &reference, &o, &p)
        .await
        .unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("windows/riscv64"), "{msg}");
    assert!(msg.contains(&Platform::host().to_string()), "{msg}");
    assert!(msg.contains(&other_platform().to_string()), "{msg}");
    assert_eq!(snapshot(&store), before);

    // A single-platform image asked for with another platform is refused.
    let single = Reference::parse(&format!("{}/multi/app:host", r.host)).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let mut store2 = open_store(fresh.path());
    o.platform = Some(other_platform());
    let e = strata_transfer::pull::pull_async(&mut store2, &single, &o, &p)
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("does not match the specified platform"),
        "{e:#}"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_diff_id_or_a_layer_that_is_no_tar_is_refused_and_nothing_is_stored() {
    let r = open_registry().await;
    let c = r.anonymous();
    let tars = two_layers(30);
    let bad_diff = TestImage::with_diff_ids(
        &Platform::host(),
        &tars,
        Some(vec![Digest::sha256_of(&tars[0]), Digest::sha256_of(b"not this")]),
    );
    bad_diff.push(&c, "bad/diff", "1").await;
    let garbage = data(10_000, 3);
    let not_tar = TestImage::with_diff_ids(
        &Platform::host(),
        std::slice::from_ref(&garbage),
        Some(vec![Digest::sha256_of(&garbage)]),
    );
    not_tar.push(&c, "bad/tar", "1").await;

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let msg = refused(&mut store, &format!("{}/bad/diff:1", r.host)).await;
    assert!(msg.contains("diff ID"), "{msg}");
    let msg = refused(&mut store, &format!("{}/bad/tar:1", r.host)).await;
    assert!(msg.contains("not a valid tar"), "{msg}");
    r.stop().await;
}

/// A scripted registry serving one image; `layer` answers blob requests for
/// the layer (given the request and how many came before).
fn scripted(
    img: &TestImage,
    layer: impl Fn(&Recorded, usize) -> Vec<u8> + Send + Sync + 'static,
) -> impl Fn(&Recorded) -> Vec<u8> + Send + Sync + 'static {
    let manifest = img.manifest.clone();
    let config = img.config.clone();
    let config_path = format!("/v2/x/app/blobs/{}", img.id());
    let layer_path = format!("/v2/x/app/blobs/{}", Digest::sha256_of(&img.layers[0]));
    let count = Arc::new(Mutex::new(0usize));
    move |req: &Recorded| {
        let api = ("Docker-Distribution-API-Version", "registry/2.0");
        if req.path == "/v2/" {
            return reply(200, &[api], b"{}");
        }
        if req.path.starts_with("/v2/x/app/manifests/") {
            let d = Digest::sha256_of(&manifest).to_string();
            let body: &[u8] = if req.method == "HEAD" { b"" } else { &manifest };
            let mut out = reply(
                200,
                &[
                    api,
                    ("Content-Type", media::OCI_MANIFEST),
                    ("Docker-Content-Digest", &d),
                ],
                body,
            );
            if req.method == "HEAD" {
                out = truncated(
                    200,
                    &[
                        api,
                        ("Content-Type", media::OCI_MANIFEST),
                        ("Docker-Content-Digest", &d),
                    ],
                    manifest.len(),
                    b"",
                );
            }
            return out;
        }
        if req.path == config_path {
            return reply(200, &[api], &config);
        }
        if req.path == layer_path {
            let mut n = count.lock().unwrap();
            *n += 1;
            return layer(req, *n);
        }
        reply(
            404,
            &[api],
            b"{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"unknown\"}]}",
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_with_the_wrong_bytes_is_refused_and_nothing_is_stored() {
    let tars = vec![tar_of(&[("f", &data(100_000, 5))])];
    let img = TestImage::new(&Platform::host(), &tars);
    let mut wrong = img.layers[0].clone();
    let mid = wrong.len() / 2;
    wrong[mid] ^= 0xff;
    let fake = Fake::start("127.0.0.1:0", scripted(&img, move |_, _| reply(200, &[], &wrong))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let msg = refused(&mut store, &format!("{}/x/app:1", fake.host())).await;
    assert!(msg.contains(&Digest::sha256_of(&img.layers[0]).to_string()), "{msg}");
    assert!(msg.contains("digest"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_download_resumes_with_range() {
    let tars = vec![tar_of(&[("f", &data(300_000, 7))])];
    let img = TestImage::new(&Platform::host(), &tars);
    let blob = img.layers[0].clone();
    let half = blob.len() / 2;
    let fake = Fake::start(
        "127.0.0.1:0",
        scripted(&img, move |req, n| {
            if n == 1 {
                return truncated(200, &[], blob.len(), &blob[..half]);
            }
            let from = range_start(req);
            let range = format!("bytes {from}-{}/{}", blob.len() - 1, blob.len());
            reply(206, &[("Content-Range", &range)], &blob[from..])
        }),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let (progress, events) = recorder();
    let reference = Reference::parse(&format!("{}/x/app:1", fake.host())).unwrap();
    let rep = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &progress)
        .await
        .unwrap();
    assert_eq!(rep.image_id, img.id());
    let ranges: Vec<String> = fake
        .recorded()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    let asked: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(asked > 0 && asked <= half, "{ranges:?}");
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Retrying { .. }))
    );
    assert_eq!(
        std::fs::read(store.blob_path(&Digest::sha256_of(&img.layers[0]))).unwrap(),
        img.layers[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_layers_are_compressed_once_and_pull_back_to_the_same_image() {
    let r = open_registry().await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    // An image as import/commit make it: a plain tar layer.
    let tar = tar_of(&[("hello.txt", b"hello\n"), ("data.bin", &data(120_000, 9))]);
    let blob = store.put_blob(&tar).unwrap();
    let diff_id = blob.clone();
    let mut cfg = strata_oci::ImageConfig {
        architecture: Platform::host().architecture,
        os: "linux".into(),
        ..Default::default()
    };
    cfg.rootfs.diff_ids = vec![diff_id.clone()];
    let name = format!("{}/local/made:1", r.host);
    let imported = strata_image::register(
        &mut store,
        &cfg,
        vec![strata_store::LayerRecord {
            diff_id: diff_id.clone(),
            diff_size: tar.len() as u64,
            blob: strata_oci::Descriptor::new(media::OCI_LAYER_TAR, blob.clone(), tar.len() as u64),
        }],
        Some(&Reference::parse(&name).unwrap()),
    )
    .unwrap();

    let (progress, events) = recorder();
    let rep = strata_transfer::push::push_async(&mut store, &name, &push_opts(), &progress)
        .await
        .unwrap();
    assert_eq!(
        statuses(&events),
        vec![
            LayerStatus::Compressing,
            LayerStatus::Waiting,
            LayerStatus::Pushing,
            LayerStatus::Pushed
        ]
    );
    // The upload's bytes were counted up to the compressed size.
    let pushed: Vec<(u64, u64)> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Bytes {
                status: LayerStatus::Pushing,
                current,
                total,
                ..
            } => Some((*current, *total)),
            _ => None,
        })
        .collect();
    let (last, total) = *pushed.last().expect("byte events for the upload");
    assert_eq!(last, total);
    assert!(pushed.windows(2).all(|w| w[0].0 < w[1].0), "{pushed:?}");
    assert_ne!(rep.digest, imported.manifest);
    let c = r.anonymous();
    let got = c.get_manifest("local/made", "1").await.unwrap();
    let strata_oci::Document::Manifest(m) = &got.document else {
        panic!("not a manifest")
    };
    assert_eq!(m.layers[0].media_type, media::OCI_LAYER_GZIP);
    // The compressed form is remembered for the layer.
    assert!(
        store
            .layer_blobs(&diff_id)
            .unwrap()
            .iter()
            .any(|b| b.digest == m.layers[0].digest)
    );
    let rec = store.image(&imported.id).unwrap().unwrap();
    assert!(
        rec.repo_digests
            .contains(&(format!("{}/local/made", r.host), rep.digest.clone()))
    );

    // A second push (another tag) compresses nothing and uploads nothing.
    let second = Reference::parse(&format!("{}/local/made:2", r.host)).unwrap();
    store.set_tag(&second, &imported.manifest).unwrap();
    let (progress, events) = recorder();
    let rep2 = strata_transfer::push::push_async(&mut store, &second.familiar(), &push_opts(), &progress)
        .await
        .unwrap();
    assert_eq!(rep2.digest, rep.digest);
    assert_eq!(
        statuses(&events),
        vec![LayerStatus::Waiting, LayerStatus::LayerAlreadyExists]
    );

    // Pulled into another store: the same image ID.
    let dir2 = tempfile::tempdir().unwrap();
    let mut other = open_store(dir2.path());
    let p = strata_transfer::progress::no_progress();
    let pulled = pull(&mut other, &name, &p).await.unwrap();
    assert_eq!(pulled.image_id, imported.id);
    assert_eq!(pulled.manifest, rep.digest);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_the_store_has_are_not_fetched_again() {
    let r = open_registry().await;
    let c = r.anonymous();
    let base = tar_of(&[("bin/base", &data(80_000, 40))]);
    let first = TestImage::new(&Platform::host(), std::slice::from_ref(&base));
    let second = TestImage::new(&Platform::host(), &[base, tar_of(&[("app", b"v2")])]);
    first.push(&c, "share/one", "1").await;
    second.push(&c, "share/two", "1").await;

    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let p = strata_transfer::progress::no_progress();
    pull(&mut store, &format!("{}/share/one:1", r.host), &p).await.unwrap();
    let (progress, events) = recorder();
    let rep = pull(&mut store, &format!("{}/share/two:1", r.host), &progress)
        .await
        .unwrap();
    assert_eq!(rep.downloaded, 1);
    assert_eq!(
        statuses(&events),
        vec![
            LayerStatus::AlreadyExists,
            LayerStatus::Downloading,
            LayerStatus::Extracting,
            LayerStatus::PullComplete
        ]
    );
    let rec = store.image(&second.id()).unwrap().unwrap();
    assert_eq!(rec.diff_ids.len(), 2);
    r.stop().await;
}

/// A layer that writes through a symlink planted by the layer below is
/// refused even though the layers are unpacked side by side, and the store
/// keeps nothing of the pull.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_reaching_through_a_lower_symlink_is_refused() {
    let r = open_registry().await;
    let c = r.anonymous();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    h.set_mtime(0);
    b.append_link(&mut h, "etc", "/tmp/x").unwrap();
    let lower = b.into_inner().unwrap();
    let upper = tar_of(&[("etc/passwd", b"evil")]);
    let img = TestImage::new(&Platform::host(), &[lower, upper]);
    img.push(&c, "evil/link", "1").await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let msg = refused(&mut store, &format!("{}/evil/link:1", r.host)).await;
    assert!(msg.contains("symlink"), "{msg}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_fails_transiently_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open_store(dir.path());
    let tar = tar_of(&[("data.bin", &data(300_000, 5))]);
    let blob = store.put_blob(&tar).unwrap();
    let mut cfg = strata_oci::ImageConfig {
        architecture: Platform::host().architecture,
        os: "linux".into(),
        ..Default::default()
    };
    cfg.rootfs.diff_ids = vec![blob.clone()];
    // A registry whose first PATCH (of whichever blob) answers 503.
    let patches = Arc::new(Mutex::new(0usize));
    let fake = Fake::start("127.0.0.1:0", {
        let patches = patches.clone();
        move |req: &Recorded| {
            let api = ("Docker-Distribution-API-Version", "registry/2.0");
            let path = req.path.split('?').next().unwrap_or_default();
            match req.method.as_str() {
                "GET" if path == "/v2/" => reply(200, &[api], b"{}"),
                "HEAD" => reply(404, &[api], b""),
                "POST" => reply(202, &[api, ("Location", "/v2/x/app/blobs/uploads/u")], b""),
                "PATCH" => {
                    let mut n = patches.lock().unwrap();
                    *n += 1;
                    if *n == 1 {
                        return reply(
                            503,
                            &[api],
                            b"{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"busy\"}]}",
                        );
                    }
                    let range = format!("0-{}", req.body.len().saturating_sub(1));
                    reply(
                        202,
                        &[api, ("Location", "/v2/x/app/blobs/uploads/u"), ("Range", &range)],
                        b"",
                    )
                }
                "PUT" => reply(201, &[api], b""),
                "DELETE" => reply(204, &[api], b""),
                _ => reply(404, &[api], b""),
            }
        }
    })
    .await;
    let name = format!("{}/x/app:1", fake.host());
    strata_image::register(
        &mut store,
        &cfg,
        vec![strata_store::LayerRecord {
            diff_id: blob.clone(),
            diff_size: tar.len() as u64,
            blob: strata_oci::Descriptor::new(media::OCI_LAYER_TAR, blob.clone(), tar.len() as u64),
        }],
        Some(&Reference::parse(&name).unwrap()),
    )
    .unwrap();
    let (progress, events) = recorder();
    let rep = strata_transfer::push::push_async(&mut store, &name, &push_opts(), &progress)
        .await
        .unwrap();
    assert_eq!((rep.uploaded, rep.mounted, rep.existed), (2, 0, 0));
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Retrying { attempt: 2, .. })),
        "{:?}",
        events.lock().unwrap()
    );
    assert_eq!(*patches.lock().unwrap(), 3);
    // Both blobs closed by their PUT, then the manifest by digest and by tag.
    let puts: Vec<String> = fake
        .recorded()
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(puts.len(), 4, "{puts:?}");
    assert!(puts[3].ends_with("/manifests/1"), "{puts:?}");
}
