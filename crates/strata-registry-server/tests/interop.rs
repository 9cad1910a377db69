//! Interop: real clients (skopeo, podman, docker) push to and pull from the
//! registry, on filesystem and S3 (SeaweedFS) storage. The image is made here
//! from Debian's busybox-static; each run makes a unique layer and config so
//! that no client can take a shortcut through what it already holds.
//!
//! A test whose tool is missing prints `skipped: <reason>` and passes;
//! `scripts/install-deps.sh` installs them all.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use strata_oci::{Digest, media};
use tempfile::TempDir;

// ---- running tools ----

/// Is `tool` on PATH (does it start at all)?
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Runs a command that must succeed; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a command; returns (success, stdout + stderr).
fn try_run(cmd: &mut Command) -> (bool, String) {
    match cmd.stdin(Stdio::null()).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, e.to_string()),
    }
}

fn skopeo(args: &[&str]) -> String {
    run(Command::new("skopeo").args(args))
}

fn sha256_file(p: &Path) -> Digest {
    Digest::sha256_of(&std::fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
}

fn nonce() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}-{}-{}", t.as_secs(), t.subsec_nanos(), std::process::id())
}

// ---- the test image ----

/// A one-layer busybox image as an OCI layout (`oci:DIR:latest`) and as a
/// docker-archive (`ARCHIVE`, named `interop/busybox:NONCE`).
struct Image {
    dir: TempDir,
    manifest: Vec<u8>,
    manifest_digest: Digest,
    config_digest: Digest,
    layer_digest: Digest,
    layer: Vec<u8>,
    name: String,
}

impl Image {
    fn layout(&self) -> PathBuf {
        self.dir.path().join("oci")
    }

    fn oci_ref(&self) -> String {
        format!("oci:{}:latest", self.layout().display())
    }

    fn archive(&self) -> PathBuf {
        self.dir.path().join("image.tar")
    }
}

/// Builds the image, or says why it cannot (busybox-static missing).
fn build_image() -> Result<Image, String> {
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() {
        return Err("busybox-static not installed (/bin/busybox)".into());
    }
    let dir = TempDir::new().unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let n = nonce();
    std::fs::write(rootfs.join("etc/strata-interop"), format!("{n}\n")).unwrap();
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();

    // A reproducible tar, gzipped without a name or time.
    let tar = dir.path().join("layer.tar");
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let diff_id = sha256_file(&tar);
    let gz = run(Command::new("sh").arg("-c").arg(format!(
        "gzip -n -c '{}' > '{}.gz' && echo ok",
        tar.display(),
        tar.display()
    )));
    assert_eq!(gz.trim(), "ok");
    let layer = std::fs::read(dir.path().join("layer.tar.gz")).unwrap();
    let layer_digest = Digest::sha256_of(&layer);

    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "Labels": { "strata.interop": n } },
        "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] },
        "history": [{ "created_by": "strata interop test" }],
    }))
    .unwrap();
    let config_digest = Digest::sha256_of(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": { "mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
        "layers": [{ "mediaType": media::OCI_LAYER_GZIP, "digest": layer_digest.to_string(), "size": layer.len() }],
    }))
    .unwrap();
    let manifest_digest = Digest::sha256_of(&manifest);

    let layout = dir.path().join("oci");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for (d, b) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        std::fs::write(blobs.join(d.hex()), b).unwrap();
    }
    std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media::OCI_MANIFEST,
            "digest": manifest_digest.to_string(),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": "latest" },
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    let name = format!("interop/busybox:{}", n.replace('-', "_"));
    let img = Image {
        dir,
        manifest,
        manifest_digest,
        config_digest,
        layer_digest,
        layer,
        name,
    };
    if have("skopeo") {
        skopeo(&[
            "copy",
            "-q",
            &img.oci_ref(),
            &format!("docker-archive:{}:{}", img.archive().display(), img.name),
        ]);
    }
    Ok(img)
}

// ---- the registry under test ----

/// The `strata-registry` binary serving a temporary directory, killed on drop.
struct Binary {
    child: Child,
    host: String,
    log: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Binary {
    /// Starts `strata-registry serve --root TMP --addr 127.0.0.1:0` and reads
    /// the address it picked from its first line.
    fn start() -> Binary {
        let dir = TempDir::new().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata-registry"))
            .args(["serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(dir.path().join("storage"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting strata-registry");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut host = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some((_, url)) = line.split_once(" on http://") {
                host = Some(url.trim().to_string());
                break;
            }
        }
        let Some(host) = host else {
            let _ = child.wait();
            panic!("strata-registry exited before serving:\n{}", log.lock().unwrap());
        };
        // Keep draining the access log so the server never blocks on stderr.
        let l = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut g = l.lock().unwrap();
                if g.len() < 1 << 20 {
                    g.push_str(&line);
                    g.push('\n');
                }
            }
        });
        Binary {
            child,
            host,
            log,
            _dir: dir,
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap();
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            eprintln!("strata-registry log (last lines):\n{tail}");
        }
    }
}

/// The registry's own answer for a manifest: (digest header, content type, bytes).
fn registry_manifest(host: &str, repo: &str, reference: &str) -> (Digest, String, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = client()
            .request(Method::GET, format!("http://{host}/v2/{repo}/manifests/{reference}"))
            .header(
                "accept",
                [media::OCI_MANIFEST, media::DOCKER_MANIFEST, media::OCI_INDEX].join(", "),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET manifest {repo}:{reference}");
        let d = Digest::parse(r.headers()["docker-content-digest"].to_str().unwrap()).unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let b = r.bytes().await.unwrap().to_vec();
        assert_eq!(Digest::sha256_of(&b), d, "the digest header matches the bytes");
        (d, ct, b)
    })
}

// ---- skopeo ----

fn inspect_digest(reference: &str) -> Digest {
    let v: Value = serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", reference])).unwrap();
    Digest::parse(v["Digest"].as_str().expect("Digest in skopeo inspect")).unwrap()
}

/// skopeo copies the image into the registry and back out, as OCI and as
/// Docker schema 2, registry to registry, and from a docker-archive.
fn skopeo_round_trip(host: &str, img: &Image) {
    let reg = |repo_tag: &str| format!("docker://{host}/{repo_tag}");
    let out = TempDir::new().unwrap();

    // 1. OCI layout -> registry, manifest kept byte for byte.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &img.oci_ref(),
        &reg("interop/skopeo:oci"),
    ]);
    assert_eq!(inspect_digest(&reg("interop/skopeo:oci")), img.manifest_digest);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reg("interop/skopeo:oci")]);
    assert_eq!(
        raw.as_bytes(),
        img.manifest.as_slice(),
        "skopeo reads back the exact manifest"
    );
    let (d, ct, _) = registry_manifest(host, "interop/skopeo", "oci");
    assert_eq!(d, img.manifest_digest);
    assert_eq!(ct, media::OCI_MANIFEST);

    // 2. registry -> OCI layout: the same manifest, config and layer.
    let back = out.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &reg("interop/skopeo:oci"),
        &format!("oci:{}:latest", back.display()),
    ]);
    let index: Value = serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.manifest_digest.to_string());
    let blob = |d: &Digest| std::fs::read(back.join("blobs/sha256").join(d.hex())).unwrap();
    assert_eq!(blob(&img.layer_digest), img.layer, "the layer came back intact");
    assert_eq!(Digest::sha256_of(&blob(&img.config_digest)), img.config_digest);

    // 3. OCI layout -> registry as Docker schema 2.
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        "--dest-tls-verify=false",
        &img.oci_ref(),
        &reg("interop/skopeo:v2s2"),
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reg("interop/skopeo:v2s2")]);
    let m: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(m["mediaType"], media::DOCKER_MANIFEST);
    assert_eq!(m["layers"][0]["digest"], img.layer_digest.to_string());
    assert_eq!(m["config"]["digest"], img.config_digest.to_string());
    let v2s2 = inspect_digest(&reg("interop/skopeo:v2s2"));
    assert_eq!(v2s2, Digest::sha256_of(raw.as_bytes()));
    let (d, ct, _) = registry_manifest(host, "interop/skopeo", "v2s2");
    assert_eq!((d, ct.as_str()), (v2s2.clone(), media::DOCKER_MANIFEST));

    // 4. registry (v2s2) -> dir: the manifest skopeo writes is the one it read.
    let dir_out = out.path().join("dir");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &reg("interop/skopeo:v2s2"),
        &format!("dir:{}", dir_out.display()),
    ]);
    assert_eq!(sha256_file(&dir_out.join("manifest.json")), v2s2);
    assert_eq!(std::fs::read(dir_out.join(img.layer_digest.hex())).unwrap(), img.layer);

    // 5. registry -> registry, another repository (blobs mounted or re-sent).
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &reg("interop/skopeo:oci"),
        &reg("interop/skopeo-copy:again"),
    ]);
    assert_eq!(inspect_digest(&reg("interop/skopeo-copy:again")), img.manifest_digest);

    // 6. docker-archive (Docker format) -> registry, converted to OCI.
    skopeo(&[
        "copy",
        "--format",
        "oci",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", img.archive().display()),
        &reg("interop/skopeo:from-archive"),
    ]);
    let (d, ct, b) = registry_manifest(host, "interop/skopeo", "from-archive");
    assert_eq!(ct, media::OCI_MANIFEST);
    assert_eq!(inspect_digest(&reg("interop/skopeo:from-archive")), d);
    let m: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(m["config"]["digest"], img.config_digest.to_string());

    // Tags as skopeo lists them.
    let tags: Value =
        serde_json::from_str(&skopeo(&["list-tags", "--tls-verify=false", &reg("interop/skopeo")])).unwrap();
    let mut tags: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["from-archive", "oci", "v2s2"]);
}

fn image_or_skip() -> Option<Image> {
    if !have("skopeo") {
        println!("skipped: skopeo not installed");
        return None;
    }
    match build_image() {
        Ok(i) => Some(i),
        Err(e) => {
            println!("skipped: {e}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_in_and_out_filesystem() {
    let Some(img) = image_or_skip() else { return };
    let e = fs_env().await;
    let host = e.url.trim_start_matches("http://").to_string();
    // On a thread of its own: the checks start their own small runtimes.
    std::thread::spawn(move || skopeo_round_trip(&host, &img))
        .join()
        .unwrap();
    e.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_in_and_out_s3() {
    let Some(img) = image_or_skip() else { return };
    let Some(weed) = Weed::start().await else {
        println!("skipped: weed (SeaweedFS) not installed");
        return;
    };
    let e = weed.env(&format!("interop-{}", nonce())).await;
    let host = e.url.trim_start_matches("http://").to_string();
    // On a thread of its own: the checks start their own small runtimes.
    std::thread::spawn(move || skopeo_round_trip(&host, &img))
        .join()
        .unwrap();
    e.stop().await;
    drop(weed);
}

#[test]
fn skopeo_copies_through_the_binary() {
    let Some(img) = image_or_skip() else { return };
    let server = Binary::start();
    skopeo_round_trip(&server.host, &img);
}

// ---- podman ----

#[test]
fn podman_pushes_and_pulls() {
    if !have("podman") {
        println!("skipped: podman not installed");
        return;
    }
    let Some(img) = image_or_skip() else { return };
    let server = Binary::start();
    let host = server.host.clone();
    // A private store: never the host's images.
    let store = TempDir::new().unwrap();
    let podman = || {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(store.path().join("root"))
            .arg("--runroot")
            .arg(store.path().join("run"))
            .args(["--storage-driver", "vfs", "--events-backend", "file"]);
        c
    };
    let id = img.config_digest.hex().to_string();
    run(podman().arg("load").arg("-i").arg(img.archive()));
    let fmt = "{{.Id}}|{{.RepoDigests}}";

    for (tag, format) in [("v2s2", "v2s2"), ("oci", "oci")] {
        let target = format!("{host}/interop/podman:{tag}");
        run(podman().args(["tag", &id, &target]));
        let digestfile = store.path().join(format!("digest-{tag}"));
        run(podman()
            .args(["push", "--tls-verify=false", "--format", format, "--digestfile"])
            .arg(&digestfile)
            .arg(&target));
        let pushed = Digest::parse(std::fs::read_to_string(&digestfile).unwrap().trim()).unwrap();
        let (d, ct, _) = registry_manifest(&host, "interop/podman", tag);
        assert_eq!(d, pushed, "the registry holds what podman pushed");
        let want_ct = if format == "oci" {
            media::OCI_MANIFEST
        } else {
            media::DOCKER_MANIFEST
        };
        assert_eq!(ct, want_ct);
    }

    // Remove everything locally, pull both back.
    run(podman().args(["rmi", "-a", "-f"]));
    assert_eq!(run(podman().args(["images", "-q"])).trim(), "", "the store is empty");
    for tag in ["v2s2", "oci"] {
        let target = format!("{host}/interop/podman:{tag}");
        run(podman().args(["pull", "--tls-verify=false", &target]));
        let out = run(podman().args(["image", "inspect", "--format", fmt, &target]));
        let (got_id, repo_digests) = out.trim().split_once('|').unwrap();
        assert_eq!(got_id, id, "{tag}: the pulled image is the loaded one");
        // Both tags name one image (one config): each pull adds its manifest digest.
        let (d, _, _) = registry_manifest(&host, "interop/podman", tag);
        let want = format!("{host}/interop/podman@{d}");
        assert!(
            repo_digests
                .split_whitespace()
                .any(|r| r.trim_matches(['[', ']']) == want),
            "{tag}: {want} in RepoDigests {repo_digests}"
        );
        // And by digest.
        run(podman().args(["pull", "--tls-verify=false", &format!("{host}/interop/podman@{d}")]));
    }
    run(podman().args(["rmi", "-a", "-f"]));
}

// ---- docker ----

/// A docker daemon to talk to: one already running, or one started by
/// `scripts/dockerd-up.sh` (stopped again on drop). Err says why there is none.
struct Dockerd {
    started: Option<PathBuf>,
    _state: Option<TempDir>,
}

impl Dockerd {
    fn get() -> Result<Dockerd, String> {
        if !have("docker") {
            return Err("docker not installed".into());
        }
        if try_run(Command::new("docker").arg("info")).0 {
            return Ok(Dockerd {
                started: None,
                _state: None,
            });
        }
        if !have("dockerd") && !Path::new("/usr/sbin/dockerd").exists() {
            return Err("dockerd not installed".into());
        }
        let state = TempDir::new().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dockerd-up.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(state.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        let pidfile = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let started = (!pidfile.is_empty()).then(|| PathBuf::from(pidfile));
        let d = Dockerd {
            started,
            _state: Some(state),
        };
        let (ok, info) = try_run(Command::new("docker").arg("info"));
        if !ok {
            return Err(format!(
                "dockerd could not start: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                info.lines().last().unwrap_or("")
            ));
        }
        Ok(d)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let Some(pidfile) = &self.started else { return };
        let Ok(pid) = std::fs::read_to_string(pidfile) else {
            return;
        };
        let pid = pid.trim();
        if pid.parse::<u32>().is_ok() {
            let _ = Command::new("kill").arg(pid).status();
            // Wait (up to 30 s, then leave it be) for it to go, so that a
            // later test can start another.
            for _ in 0..300 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

fn repo_digests(reference: &str) -> Vec<String> {
    let out = docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", reference]);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn docker_pushes_and_pulls() {
    let Some(img) = image_or_skip() else { return };
    let _daemon = match Dockerd::get() {
        Ok(d) => d,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let server = Binary::start();
    let host = server.host.clone();
    let id = img.config_digest.to_string();
    let repo = format!("{host}/interop/docker");
    let target = format!("{repo}:v1");

    let loaded = docker(&["load", "-i", &img.archive().to_string_lossy()]);
    assert!(loaded.contains(&img.name), "docker load: {loaded}");
    docker(&["tag", &img.name, &target]);
    let pushed = docker(&["push", &target]);
    // "v1: digest: sha256:... size: N"
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in docker push output: {pushed}"));
    let digest = Digest::parse(digest).unwrap();
    let (d, ct, b) = registry_manifest(&host, "interop/docker", "v1");
    assert_eq!(d, digest, "the registry holds what docker pushed");
    assert_eq!(ct, media::DOCKER_MANIFEST);
    let m: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(m["config"]["digest"], id);
    assert!(repo_digests(&target).contains(&format!("{repo}@{digest}")));

    // Gone locally (both names), then pulled back.
    docker(&["rmi", &img.name, &target]);
    assert!(
        !try_run(Command::new("docker").args(["image", "inspect", &id])).0,
        "the image is gone before the pull"
    );
    docker(&["pull", &target]);
    let got = docker(&["image", "inspect", "--format", "{{.Id}}", &target]);
    assert_eq!(got.trim(), id, "the pulled image is the loaded one");
    assert!(
        repo_digests(&target).contains(&format!("{repo}@{digest}")),
        "RepoDigests: {:?}",
        repo_digests(&target)
    );
    docker(&["rmi", &target]);

    // An OCI manifest pushed by skopeo, pulled by docker.
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &img.oci_ref(),
        &format!("docker://{host}/interop/docker-oci:v1"),
    ]);
    let oci = format!("{host}/interop/docker-oci:v1");
    docker(&["pull", &oci]);
    let got = docker(&["image", "inspect", "--format", "{{.Id}}", &oci]);
    assert_eq!(got.trim(), id);
    assert!(repo_digests(&oci).contains(&format!("{host}/interop/docker-oci@{}", img.manifest_digest)));
    docker(&["rmi", &oci]);
}
