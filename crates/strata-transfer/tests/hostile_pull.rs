//! Whole pulls (`pull_async` into a temporary store) from a scripted
//! registry that misbehaves: each is refused with a message naming the
//! problem, and the store is exactly as it was. The client-level checks
//! (faults.rs) see single requests; these see that nothing of a refused
//! pull survives: no blob, no unpacked layer, no temporary file, no row.
//! And credentials never reach another host a blob is redirected to.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use strata_oci::{Digest, Platform, Reference, media};
use strata_registry::Credentials;
use strata_store::Store;

const API: (&str, &str) = ("Docker-Distribution-API-Version", "registry/2.0");

/// A two-layer image for the host platform: the manifest as JSON (to be
/// spoiled), and every blob by digest.
struct Image {
    manifest: Value,
    blobs: HashMap<String, Vec<u8>>,
    layers: Vec<Digest>,
}

fn image(seed: u64) -> Image {
    let tars = [
        tar_of(&[("etc/hostname", b"box\n"), ("bin/tool", &data(300_000, seed))]),
        tar_of(&[("usr/share/doc/readme", &data(200_000, seed + 1))]),
    ];
    let layers: Vec<Vec<u8>> = tars.iter().map(|t| gzip(t)).collect();
    let p = Platform::host();
    let config = serde_json::to_vec(&json!({
        "architecture": p.architecture,
        "os": p.os,
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": tars.iter().map(|t| Digest::sha256_of(t)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": Digest::sha256_of(&config), "size": config.len()},
        "layers": layers.iter().map(|l| json!({
            "mediaType": media::OCI_LAYER_GZIP, "digest": Digest::sha256_of(l), "size": l.len()
        })).collect::<Vec<_>>(),
    });
    let mut blobs = HashMap::new();
    blobs.insert(Digest::sha256_of(&config).to_string(), config);
    let digests = layers.iter().map(|l| Digest::sha256_of(l)).collect();
    for l in layers {
        blobs.insert(Digest::sha256_of(&l).to_string(), l);
    }
    Image {
        manifest,
        blobs,
        layers: digests,
    }
}

/// How the scripted registry serves the image.
#[derive(Clone, Default)]
struct Script {
    /// The manifest's Content-Type (default: its mediaType).
    content_type: Option<String>,
    /// The Docker-Content-Digest header (default: the body's digest).
    digest_header: Option<String>,
    /// Blobs served with these bytes instead (e.g. wrong ones).
    replace: HashMap<String, Vec<u8>>,
    /// Blobs whose response announces everything and sends half.
    truncate: Vec<String>,
    /// Answer 401 without `Authorization: Basic <this>`.
    basic: Option<String>,
    /// Redirect every blob to this host (`http://HOST/storage/<digest>`).
    redirect_to: Option<String>,
}

fn registry(manifest: Vec<u8>, blobs: HashMap<String, Vec<u8>>, s: Script) -> impl Fn(&Recorded) -> Vec<u8> {
    let blobs = Arc::new(blobs);
    move |req: &Recorded| {
        if let Some(b) = &s.basic
            && req.header("authorization") != Some(format!("Basic {b}").as_str())
        {
            return reply(401, &[API, ("WWW-Authenticate", r#"Basic realm="fake""#)], b"");
        }
        if req.path == "/v2/" {
            return reply(200, &[API], b"{}");
        }
        if req.path.starts_with("/v2/x/app/manifests/") {
            let declared = serde_json::from_slice::<Value>(&manifest)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
            let ct = s.content_type.clone().unwrap_or(declared);
            let d = s
                .digest_header
                .clone()
                .unwrap_or_else(|| Digest::sha256_of(&manifest).to_string());
            let headers = [
                API,
                ("Content-Type", ct.as_str()),
                ("Docker-Content-Digest", d.as_str()),
            ];
            return if req.method == "HEAD" {
                truncated(200, &headers, manifest.len(), b"")
            } else {
                reply(200, &headers, &manifest)
            };
        }
        if let Some(d) = req.path.strip_prefix("/v2/x/app/blobs/")
            && let Some(b) = blobs.get(d)
        {
            if let Some(host) = &s.redirect_to {
                return reply(307, &[API, ("Location", &format!("http://{host}/storage/{d}"))], b"");
            }
            let body = s.replace.get(d).unwrap_or(b);
            if s.truncate.iter().any(|t| t == d) {
                let start = range_start(req);
                return truncated(
                    200,
                    &[API],
                    body.len() - start,
                    &body[start..start + (body.len() - start) / 2],
                );
            }
            return reply(200, &[API], body);
        }
        reply(
            404,
            &[API],
            b"{\"errors\":[{\"code\":\"BLOB_UNKNOWN\",\"message\":\"unknown\"}]}",
        )
    }
}

/// Every file and directory under `dir` (the store's parent: nothing may
/// appear beside the store either), and the store's images.
fn snapshot(dir: &Path, store: &Store) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                // Per-layer lock files are not content (and are kept on purpose).
                if e.file_name() != ".locks" {
                    out.push(format!("{rel}/"));
                    walk(&e.path(), root, out);
                }
            } else if !rel.starts_with("store/strata.db") && rel != "store/lock" {
                out.push(format!("{rel} {}", m.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    for i in store.list_images().unwrap() {
        out.push(format!("{} {:?} {:?} {:?}", i.id, i.tags, i.repo_digests, i.manifests));
    }
    out
}

/// Pulls `x/app:1` from a registry scripted with `script`, expects a
/// refusal and an unchanged store; returns the message.
async fn refused(manifest: &Value, blobs: &HashMap<String, Vec<u8>>, script: Script) -> (String, Vec<Recorded>) {
    let bytes = serde_json::to_vec(manifest).unwrap();
    let fake = Fake::start("127.0.0.1:0", registry(bytes, blobs.clone(), script)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("store")).unwrap();
    let before = snapshot(dir.path(), &store);
    let reference = Reference::parse(&format!("{}/x/app:1", fake.host())).unwrap();
    let p = strata_transfer::progress::no_progress();
    let e = strata_transfer::pull::pull_async(&mut store, &reference, &pull_options(), &p)
        .await
        .expect_err("the pull was refused");
    let msg = format!("{e:#}");
    assert_eq!(snapshot(dir.path(), &store), before, "the store changed: {msg}");
    // And a store check finds nothing either.
    let report = strata_image::check(&store, &strata_image::CheckOptions::default(), &[]).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.problems);
    (msg, fake.recorded())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_with_both_manifests_and_layers_is_refused() {
    let img = image(1);
    let mut m = img.manifest.clone();
    m["manifests"] = json!([]);
    let (msg, _) = refused(&m, &img.blobs, Script::default()).await;
    assert!(msg.contains("ambiguous") || msg.contains("both"), "{msg}");
    // Labelled an index, the same body is refused too.
    let mut m = img.manifest.clone();
    m["manifests"] = json!([]);
    m["mediaType"] = json!(media::OCI_INDEX);
    let (msg, _) = refused(&m, &img.blobs, Script::default()).await;
    assert!(msg.contains("ambiguous") || msg.contains("both"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_that_disagrees_with_the_media_type_is_refused() {
    let img = image(2);
    for ct in [media::DOCKER_MANIFEST, media::OCI_INDEX] {
        let script = Script {
            content_type: Some(ct.to_string()),
            ..Default::default()
        };
        let (msg, _) = refused(&img.manifest, &img.blobs, script).await;
        assert!(msg.contains("does not agree"), "{ct}: {msg}");
        assert!(msg.contains(ct), "{msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_reaching_out_of_the_store_is_an_invalid_digest_and_touches_nothing() {
    let img = image(3);
    for (field, bad) in [
        ("layer", "sha256:../../x"),
        ("config", "sha256:../../../../x"),
        ("layer", "sha256:/etc/passwd"),
    ] {
        let mut m = img.manifest.clone();
        match field {
            "layer" => m["layers"][1]["digest"] = json!(bad),
            _ => m["config"]["digest"] = json!(bad),
        }
        let (msg, requests) = refused(&m, &img.blobs, Script::default()).await;
        assert!(msg.contains("invalid digest"), "{bad}: {msg}");
        // Not even asked for.
        assert!(
            requests
                .iter()
                .all(|r| !r.path.contains("..") && !r.path.contains("passwd")),
            "{requests:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_layer_body_is_refused() {
    let img = image(4);
    // Every attempt (and every resumption) breaks off halfway.
    let script = Script {
        truncate: vec![img.layers[1].to_string()],
        ..Default::default()
    };
    let (msg, requests) = refused(&img.manifest, &img.blobs, script).await;
    assert!(msg.contains(&img.layers[1].to_string()), "{msg}");
    let tries = requests
        .iter()
        .filter(|r| r.path.ends_with(&img.layers[1].to_string()))
        .count();
    assert!(tries > 1, "no retry: {requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_docker_content_digest_is_refused() {
    let img = image(5);
    let script = Script {
        digest_header: Some(Digest::sha256_of(b"another manifest").to_string()),
        ..Default::default()
    };
    let (msg, _) = refused(&img.manifest, &img.blobs, script).await;
    assert!(msg.contains("digest"), "{msg}");
    assert!(
        msg.contains(&Digest::sha256_of(b"another manifest").to_string()) || msg.contains("match"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_layer_bytes_are_refused_even_after_the_other_layer_was_unpacked() {
    let img = image(6);
    // Same size, one byte changed, in the second layer: the first one is
    // unpacked meanwhile and must go again.
    let d = img.layers[1].to_string();
    let mut wrong = img.blobs[&d].clone();
    let mid = wrong.len() / 2;
    wrong[mid] ^= 0x01;
    let script = Script {
        replace: HashMap::from([(d.clone(), wrong)]),
        ..Default::default()
    };
    let (msg, _) = refused(&img.manifest, &img.blobs, script).await;
    assert!(msg.contains(&d), "{msg}");
    // Wrong bytes that are a valid gzip of another tar: refused by digest too.
    let other = gzip(&tar_of(&[("usr/share/doc/readme", b"something else")]));
    let script = Script {
        replace: HashMap::from([(d.clone(), other)]),
        ..Default::default()
    };
    let (msg, _) = refused(&img.manifest, &img.blobs, script).await;
    assert!(msg.contains(&d), "{msg}");
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_redirected_to_another_host_get_no_credentials() {
    let img = image(7);
    let blobs = img.blobs.clone();
    // The storage host, on another loopback address: serves any blob.
    let storage = Fake::start("127.0.0.2:0", move |req| {
        let d = req.path.strip_prefix("/storage/").unwrap_or("");
        match blobs.get(d) {
            Some(b) => reply(200, &[], b),
            None => reply(404, &[], b""),
        }
    })
    .await;
    let auth = base64(b"user:secret-pw");
    let script = Script {
        basic: Some(auth.clone()),
        redirect_to: Some(storage.host()),
        ..Default::default()
    };
    let fake = Fake::start(
        "127.0.0.1:0",
        registry(serde_json::to_vec(&img.manifest).unwrap(), img.blobs.clone(), script),
    )
    .await;
    // Credentials from a Docker config directory, as `strata login` leaves them.
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        serde_json::to_vec(&json!({"auths": {fake.host(): {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    let mut o = pull_options();
    o.client.credentials = Credentials::DockerConfig;
    o.client.docker_config_dir = Some(config_dir);
    let mut store = Store::open(&dir.path().join("store")).unwrap();
    let reference = Reference::parse(&format!("{}/x/app:1", fake.host())).unwrap();
    let p = strata_transfer::progress::no_progress();
    let r = strata_transfer::pull::pull_async(&mut store, &reference, &o, &p)
        .await
        .unwrap();
    assert_eq!(r.downloaded, 2);
    let report = strata_image::check(&store, &strata_image::CheckOptions::default(), &[]).unwrap();
    assert_eq!(report.remaining(), 0, "{:?}", report.problems);

    let reg = fake.recorded();
    assert!(
        reg.iter()
            .filter(|r| r.path.starts_with("/v2/x/app/"))
            .all(|r| r.header("authorization") == Some(format!("Basic {auth}").as_str())),
        "{reg:?}"
    );
    let st = storage.recorded();
    assert_eq!(st.len(), 3, "config and two layers from the storage host: {st:?}");
    for r in &st {
        assert!(
            r.header("authorization").is_none(),
            "Authorization leaked to the storage host: {r:?}"
        );
    }
}
