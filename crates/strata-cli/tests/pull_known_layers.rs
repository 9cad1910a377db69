//! A layer the store already holds in another form (same diff ID, another
//! blob: the image pushed elsewhere as zstd, or a layer imported as a plain
//! tar) is not downloaded again ("Already exists"), and the image pulled
//! that way runs, saves, loads, pushes, survives `rmi` of the other image
//! and passes `system check`. Against Debian's docker-registry, with skopeo
//! making the zstd copy; skipped with a message when either is missing.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

fn layer_digest(manifest: &Value) -> String {
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    layers[0]["digest"].as_str().unwrap().to_string()
}

fn blob_file(env: &Env, digest: &str) -> PathBuf {
    env.root()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// What every test starts from: busybox imported into a store and pushed
/// to `REG/a:1` (gzip, strata compresses it), and skopeo's copy of it to
/// `REG/b:1` with the layer as zstd (another blob, the same diff ID).
struct Setup {
    reg: TestRegistry,
    /// The store that pushed `a:1` (and its busybox root filesystem).
    src: Env,
    rootfs: PathBuf,
    a: String,
    b: String,
    a_digest: String,
    b_digest: String,
    gzip_layer: String,
    zstd_layer: String,
}

impl Setup {
    fn new() -> Option<Setup> {
        if !have("skopeo") {
            return None;
        }
        let reg = TestRegistry::distribution(false, "")?;
        let src = Env::new();
        let rootfs = src.busybox_rootfs()?;
        let a = format!("{}/a:1", reg.host);
        let b = format!("{}/b:1", reg.host);
        src.ok(&["import", "--change", r#"CMD ["/bin/sh"]"#, rootfs.to_str().unwrap(), &a]);
        src.ok(&["push", &a]);
        sh_ok(&format!(
            "skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --dest-compress-format zstd docker://{a} docker://{b}"
        ));
        let ((raw_a, ma), (raw_b, mb)) = (raw_manifest_bytes(&a), raw_manifest_bytes(&b));
        let (gzip_layer, zstd_layer) = (layer_digest(&ma), layer_digest(&mb));
        assert_ne!(gzip_layer, zstd_layer, "skopeo did not recompress:\n{ma}\n{mb}");
        assert_eq!(
            mb["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
            "{mb}"
        );
        // The same config: the same diff IDs.
        assert_eq!(ma["config"]["digest"], mb["config"]["digest"], "{ma}\n{mb}");
        let digest = |raw: &str| format!("sha256:{}", sha256_hex(raw.as_bytes()));
        let (a_digest, b_digest) = (digest(&raw_a), digest(&raw_b));
        Some(Setup {
            reg,
            src,
            rootfs,
            a,
            b,
            a_digest,
            b_digest,
            gzip_layer,
            zstd_layer,
        })
    }

    fn name(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.reg.host)
    }
}

/// A pull that found every layer in the store: "Already exists", nothing
/// fetched.
fn assert_nothing_downloaded(out: &str) {
    assert!(out.contains(": Already exists"), "{out}");
    for word in ["Pulling fs layer", "Pull complete", "Downloading"] {
        assert!(!out.contains(word), "{word} in {out}");
    }
}

/// Tags `name` as `copy` (of the registry) and pushes it; checks that
/// skopeo reads what was pushed and that the store is still sound. Returns
/// the pushed manifest.
fn push_copy(env: &Env, name: &str, copy: &str) -> Value {
    env.ok(&["tag", name, copy]);
    let out = env.ok(&["push", copy]);
    assert!(out.contains("1: digest: sha256:"), "{out}");
    sh_ok(&format!("skopeo inspect --tls-verify=false docker://{copy}"));
    env.ok(&["system", "check"]);
    raw_manifest(copy)
}

/// A pushed manifest whose layer was compressed for the push: gzip, and
/// remembered in the store.
fn assert_gzip_layer_held(env: &Env, pushed: &Value) {
    assert_eq!(
        pushed["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{pushed}"
    );
    assert!(blob_file(env, &layer_digest(pushed)).is_file(), "{pushed}");
}

/// Saves `name` from `env` into an archive, reads it with skopeo (as a
/// docker-archive and as an OCI archive), loads it into a fresh store and
/// runs `echo`. Returns the archive's index.json.
fn save_load_run(env: &Env, name: &str) -> Value {
    let archive = env.path("saved.tar");
    let _ = std::fs::remove_file(&archive);
    env.ok(&["save", "-o", archive.to_str().unwrap(), name]);
    let inspected: Value =
        serde_json::from_str(&sh_ok(&format!("skopeo inspect docker-archive:{}", archive.display()))).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1, "{inspected}");
    let inspected: Value =
        serde_json::from_str(&sh_ok(&format!("skopeo inspect oci-archive:{}", archive.display()))).unwrap();
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1, "{inspected}");
    let index: Value = serde_json::from_str(&sh_ok(&format!("tar -xOf {} index.json", archive.display()))).unwrap();
    let other = Env::new();
    let out = other.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {name}")), "{out}");
    assert_eq!(other.ok(&["run", "--rm", name, "echo", "loaded"]), "loaded\n");
    other.ok(&["system", "check"]);
    index
}

/// The layer descriptor of the manifest an archive's index names.
fn archive_layer(env: &Env, index: &Value) -> Value {
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let archive = env.path("saved.tar");
    let manifest: Value = serde_json::from_str(&sh_ok(&format!(
        "tar -xOf {} blobs/sha256/{}",
        archive.display(),
        digest.trim_start_matches("sha256:")
    )))
    .unwrap();
    manifest["layers"][0].clone()
}

#[test]
fn a_layer_pulled_before_in_another_compression_is_not_downloaded() {
    let Some(s) = Setup::new() else { return };
    let env = Env::new();
    let out = env.ok(&["pull", &s.a]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(blob_file(&env, &s.gzip_layer).is_file());

    // b:1 names the zstd blob; the store has the layer as gzip.
    let out = env.ok(&["pull", &s.b]);
    assert_nothing_downloaded(&out);
    assert!(out.contains(&format!("Digest: {}", s.b_digest)), "{out}");
    assert!(
        !blob_file(&env, &s.zstd_layer).exists(),
        "the zstd layer was downloaded"
    );
    // The manifest is kept byte for byte: its digest is the repo digest.
    assert!(blob_file(&env, &s.b_digest).is_file());
    let digests = repo_digests(&env);
    assert!(digests.contains(&format!("{} {}", s.b, s.b_digest)), "{digests}");
    assert!(digests.contains(&format!("{} {}", s.a, s.a_digest)), "{digests}");
    assert_eq!(env.ok(&["run", "--rm", &s.b, "echo", "ok"]), "ok\n");
    env.ok(&["system", "check"]);

    // Again: up to date, still nothing downloaded.
    let out = env.ok(&["pull", &s.b]);
    assert!(out.contains("Image is up to date"), "{out}");

    // save writes the held (gzip) form under a manifest naming it.
    let index = save_load_run(&env, &s.b);
    assert_eq!(archive_layer(&env, &index)["digest"], s.gzip_layer.as_str(), "{index}");

    // push sends a manifest whose blobs the store holds.
    let pushed = push_copy(&env, &s.b, &s.name("c:1"));
    assert_eq!(layer_digest(&pushed), s.gzip_layer, "{pushed}");

    // Without a:1's tag, b:1 still runs and the store is still sound.
    env.ok(&["rmi", &s.a]);
    assert_eq!(env.ok(&["run", "--rm", &s.b, "echo", "still"]), "still\n");
    env.ok(&["system", "check"]);
    let digests = repo_digests(&env);
    assert!(digests.contains(&format!("{} {}", s.b, s.b_digest)), "{digests}");
    assert!(!blob_file(&env, &s.zstd_layer).exists());
}

#[test]
fn a_layer_imported_as_a_plain_tar_serves_a_pull_and_outlives_its_image() {
    let Some(s) = Setup::new() else { return };
    let env = Env::new();
    // The same root filesystem imported here: the same diff ID as a plain tar.
    env.ok(&[
        "import",
        "--change",
        r#"CMD ["/bin/true"]"#,
        s.rootfs.to_str().unwrap(),
        "local:1",
    ]);
    let out = env.ok(&["pull", &s.b]);
    assert_nothing_downloaded(&out);
    assert!(!blob_file(&env, &s.zstd_layer).exists());
    assert!(!blob_file(&env, &s.gzip_layer).exists());

    // Removing the imported image (another image ID) keeps the layer for b.
    let out = env.ok(&["rmi", "local:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(env.ok(&["run", "--rm", &s.b, "echo", "ok"]), "ok\n");
    env.ok(&["system", "check"]);

    // save writes the plain tar the store holds.
    let index = save_load_run(&env, &s.b);
    assert_eq!(
        archive_layer(&env, &index)["mediaType"],
        "application/vnd.oci.image.layer.v1.tar",
        "{index}"
    );

    // push compresses the plain tar (no manifest of the image has all its
    // blobs) and sends a rewritten manifest.
    let d = s.name("d:1");
    assert_gzip_layer_held(&env, &push_copy(&env, &s.b, &d));
    let fresh = Env::new();
    fresh.ok(&["pull", &d]);
    assert_eq!(fresh.ok(&["run", "--rm", &d, "echo", "pushed"]), "pushed\n");
}

#[test]
fn a_layer_held_only_as_zstd_is_saved_as_zstd_and_recompressed_for_push() {
    let Some(s) = Setup::new() else { return };
    // Another image (another config) over the same gzip layer.
    let e = s.name("e:1");
    s.src.ok(&[
        "import",
        "--change",
        r#"CMD ["/bin/echo", "from e"]"#,
        s.rootfs.to_str().unwrap(),
        &e,
    ]);
    s.src.ok(&["push", &e]);
    assert_eq!(layer_digest(&raw_manifest(&e)), s.gzip_layer);

    let env = Env::new();
    let out = env.ok(&["pull", &s.b]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(blob_file(&env, &s.zstd_layer).is_file());
    let out = env.ok(&["pull", &e]);
    assert_nothing_downloaded(&out);
    assert!(!blob_file(&env, &s.gzip_layer).exists());
    assert_eq!(env.ok(&["run", "--rm", &e]), "from e\n");
    env.ok(&["system", "check"]);

    // The only form held is zstd: save writes it.
    let index = save_load_run(&env, &e);
    assert_eq!(archive_layer(&env, &index)["digest"], s.zstd_layer.as_str(), "{index}");

    // push decompresses the zstd form and gzips it.
    let f = s.name("f:1");
    assert_gzip_layer_held(&env, &push_copy(&env, &e, &f));
    let fresh = Env::new();
    fresh.ok(&["pull", &f]);
    assert_eq!(fresh.ok(&["run", "--rm", &f]), "from e\n");

    // rmi of b (the image that brought the zstd form) keeps e whole.
    env.ok(&["rmi", &s.b]);
    assert_eq!(env.ok(&["run", "--rm", &e]), "from e\n");
    env.ok(&["system", "check"]);
}
