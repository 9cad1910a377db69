//! Manifest lists without a build: `strata buildx imagetools create` and
//! `strata manifest create|annotate|inspect|push|rm`, on two single-platform
//! images imported offline (the busybox root filesystem as linux/amd64 and
//! as linux/arm64) and pushed to strata's registry, whose access log counts
//! the blob GETs: combining them into an index reads their configs and
//! never a layer. skopeo, the docker CLI and the private dockerd read what
//! was made (each part is skipped, said, when its tool is missing).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// `strata registry serve` with its access log (JSON lines on stderr) kept
/// in a file, killed when dropped.
struct LoggedRegistry {
    child: Child,
    host: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for LoggedRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request of the access log.
#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    status: u64,
}

impl LoggedRegistry {
    fn start() -> LoggedRegistry {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("access.log");
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
                .args(["registry", "serve", "--addr", &format!("127.0.0.1:{port}"), "--root"])
                .arg(dir.path().join("storage"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let host = format!("127.0.0.1:{port}");
            let mut up = false;
            for _ in 0..400 {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken: another one
                }
                if get_v2(&host).is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up && child.try_wait().unwrap().is_none() {
                return LoggedRegistry {
                    child,
                    host,
                    log,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no registry could be started");
    }

    /// Every request logged so far.
    fn requests(&self) -> Vec<Request> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| Request {
                method: v["method"].as_str().unwrap_or("").to_string(),
                path: v["path"].as_str().unwrap_or("").to_string(),
                status: v["status"].as_u64().unwrap_or(0),
            })
            .collect()
    }

    /// The digests of the blobs fetched (GET) by the requests after the first `since`.
    fn blob_gets(&self, since: usize) -> Vec<String> {
        self.requests()[since..]
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/blobs/sha256:"))
            .map(|r| r.path.rsplit('/').next().unwrap().to_string())
            .collect()
    }
}

/// The manifest `name` has in its registry, raw (strata's own inspect: a
/// GET of the manifest, no blob; imagetools never shows a draft list).
fn raw(env: &Env, name: &str) -> (String, serde_json::Value) {
    let text = env.ok(&["imagetools", "inspect", "--raw", name]);
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// `os/arch[/variant]` of each entry of an index.
fn platforms(index: &serde_json::Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let p = &m["platform"];
            let mut s = format!("{}/{}", p["os"].as_str().unwrap(), p["architecture"].as_str().unwrap());
            if let Some(v) = p["variant"].as_str() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// Two single-platform images, `REG/app:amd64` and `REG/app:arm64`, and
/// their layers' and configs' digests.
struct Images {
    layers: Vec<String>,
    configs: Vec<String>,
}

fn push_images(env: &Env, reg: &str, repo: &str, platforms: &[&str]) -> Option<Images> {
    let rootfs = env.busybox_rootfs()?;
    let mut images = Images {
        layers: Vec::new(),
        configs: Vec::new(),
    };
    for p in platforms {
        let arch = p.rsplit('/').next().unwrap();
        let name = format!("{reg}/{repo}:{arch}");
        env.ok(&["import", "--platform", p, rootfs.to_str().unwrap(), &name]);
        env.ok(&["push", "-q", &name]);
        let (_, m) = raw(env, &name);
        images.configs.push(m["config"]["digest"].as_str().unwrap().to_string());
        for l in m["layers"].as_array().unwrap() {
            images.layers.push(l["digest"].as_str().unwrap().to_string());
        }
    }
    Some(images)
}

/// The digest a command printed last (imagetools create and manifest push end with it).
fn last_digest(out: &str) -> String {
    let d = out.lines().last().unwrap_or("").trim().to_string();
    assert!(
        d.starts_with("sha256:") && d.len() == 71,
        "no digest at the end of {out:?}"
    );
    d
}

fn docker_cli(config: &std::path::Path, args: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!("docker {args}"))
        .env("DOCKER_CONFIG", config)
        .output()
        .unwrap()
}

#[test]
fn create_combines_two_images_without_reading_a_layer() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let r = &reg.host;
    let Some(images) = push_images(&env, r, "app", &["linux/amd64", "linux/arm64"]) else {
        return;
    };
    let multi = format!("{r}/app:multi");

    // --dry-run shows the index and pushes nothing.
    let dry = env.ok(&[
        "buildx",
        "imagetools",
        "create",
        "--dry-run",
        "-t",
        &format!("{r}/app:dry"),
        &format!("{r}/app:amd64"),
        &format!("{r}/app:arm64"),
    ]);
    let shown: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(platforms(&shown), ["linux/amd64", "linux/arm64"]);
    env.fails(&["manifest", "inspect", &format!("{r}/app:dry")]);

    let before = reg.requests().len();
    let out = env.ok(&[
        "buildx",
        "imagetools",
        "create",
        "-t",
        &multi,
        &format!("{r}/app:amd64"),
        &format!("{r}/app:arm64"),
    ]);
    let gets = reg.blob_gets(before);
    // Only the configs are read (for the platforms), each once; no layer.
    let layer_gets: Vec<&String> = gets.iter().filter(|d| images.layers.contains(d)).collect();
    assert!(layer_gets.is_empty(), "layers were downloaded: {layer_gets:?}");
    eprintln!(
        "imagetools create: {} blob GETs ({} layer), {} requests in all",
        gets.len(),
        layer_gets.len(),
        reg.requests().len() - before
    );
    for g in &gets {
        assert!(images.configs.contains(g), "an unexpected blob was read: {g}");
    }
    assert!(gets.len() <= 2, "{gets:?}");

    let (text, index) = raw(&env, &multi);
    assert_eq!(last_digest(&out), format!("sha256:{}", sha256_hex(text.as_bytes())));
    assert_eq!(text, shown_without_newline(&dry), "the dry run showed what was pushed");
    // strata's imported images are OCI: an OCI index.
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms(&index), ["linux/amd64", "linux/arm64"]);
    let text = env.ok(&["buildx", "imagetools", "inspect", &multi]);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("Platform:") && l.ends_with(" linux/arm64")),
        "{text}"
    );

    if have("skopeo") {
        let sk = raw_manifest(&multi);
        assert_eq!(platforms(&sk), ["linux/amd64", "linux/arm64"]);
        let arm = sh_ok(&format!(
            "skopeo inspect --tls-verify=false --override-os linux --override-arch arm64 docker://{multi}"
        ));
        let arm: serde_json::Value = serde_json::from_str(&arm).unwrap();
        assert_eq!(arm["Architecture"], "arm64");
    }
    if have("docker") {
        let cfg = env.path("docker-config");
        std::fs::create_dir_all(&cfg).unwrap();
        let o = docker_cli(&cfg, &format!("manifest inspect --insecure {multi}"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64"]);
    }
    if docker_daemon() {
        // 127.0.0.0/8 registries are insecure (plain HTTP) for dockerd by default.
        let out = sh_ok(&format!("docker pull --platform linux/arm64 {multi}"));
        assert!(out.contains("Digest: sha256:"), "{out}");
        let arch = sh_ok(&format!(
            "docker image inspect --format '{{{{.Architecture}}}}' {multi}"
        ));
        assert_eq!(arch.trim(), "arm64");
        sh(&format!("docker rmi {multi}"));
    }
}

/// `--dry-run` prints the index and a newline.
fn shown_without_newline(s: &str) -> String {
    s.strip_suffix('\n').unwrap_or(s).to_string()
}

#[test]
fn append_annotations_platform_filter_and_descriptors() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let r = &reg.host;
    let Some(images) = push_images(&env, r, "app", &["linux/amd64", "linux/arm64", "linux/riscv64"]) else {
        return;
    };
    let (amd, arm, riscv) = (
        format!("{r}/app:amd64"),
        format!("{r}/app:arm64"),
        format!("{r}/app:riscv64"),
    );
    let t = format!("{r}/app:grow");
    // One image alone: an index of one (buildx's --prefer-index).
    env.ok(&["buildx", "imagetools", "create", "-t", &t, &amd]);
    assert_eq!(platforms(&raw(&env, &t).1), ["linux/amd64"]);
    // --append starts from the tag's index.
    let before = reg.requests().len();
    env.ok(&["buildx", "imagetools", "create", "--append", "-t", &t, &arm]);
    assert_eq!(platforms(&raw(&env, &t).1), ["linux/amd64", "linux/arm64"]);
    assert!(reg.blob_gets(before).iter().all(|d| !images.layers.contains(d)));
    // Appending what is there already keeps one entry.
    env.ok(&["imagetools", "create", "--append", "-t", &t, &arm]);
    assert_eq!(platforms(&raw(&env, &t).1), ["linux/amd64", "linux/arm64"]);
    // --append of a tag that does not exist names it.
    let e = env.fails(&["imagetools", "create", "--append", "-t", &format!("{r}/app:none"), &arm]);
    assert!(e.contains("app:none") && e.contains("not found"), "{e}");

    // Annotations: the index, the entries of one platform, a bare key (the index).
    let a = format!("{r}/app:annotated");
    env.ok(&[
        "buildx",
        "imagetools",
        "create",
        "-t",
        &a,
        "--annotation",
        "index:org.opencontainers.image.authors=strata",
        "--annotation",
        "manifest-descriptor[linux/arm64]:com.example.arch=arm",
        "--annotation",
        "org.opencontainers.image.title=app",
        &amd,
        &arm,
    ]);
    let (_, ix) = raw(&env, &a);
    assert_eq!(ix["annotations"]["org.opencontainers.image.authors"], "strata");
    assert_eq!(ix["annotations"]["org.opencontainers.image.title"], "app");
    assert!(ix["manifests"][0]["annotations"].is_null(), "{ix}");
    assert_eq!(ix["manifests"][1]["annotations"]["com.example.arch"], "arm");
    if have("skopeo") {
        assert_eq!(raw_manifest(&a)["annotations"]["org.opencontainers.image.title"], "app");
    }

    // --platform picks from a source index.
    let three = format!("{r}/app:three");
    env.ok(&["imagetools", "create", "-t", &three, &amd, &arm, &riscv]);
    let picked = format!("{r}/app:picked");
    env.ok(&[
        "imagetools",
        "create",
        "-t",
        &picked,
        "--platform",
        "linux/riscv64,linux/arm64/v8",
        &three,
    ]);
    assert_eq!(platforms(&raw(&env, &picked).1), ["linux/arm64", "linux/riscv64"]);

    // REPO@DIGEST picks one manifest of an index; a descriptor JSON (in a
    // file, as -f reads it) overrides its platform.
    let (_, three_ix) = raw(&env, &three);
    let riscv_digest = three_ix["manifests"][2]["digest"].as_str().unwrap().to_string();
    let desc = env.path("desc.json");
    let mut d = three_ix["manifests"][0].clone();
    d["platform"]["os.version"] = "10.1".into();
    std::fs::write(&desc, serde_json::to_string(&d).unwrap()).unwrap();
    let dry = env.ok(&[
        "imagetools",
        "create",
        "--dry-run",
        "-f",
        desc.to_str().unwrap(),
        &format!("{r}/app@{riscv_digest}"),
    ]);
    let v: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(platforms(&v), ["linux/amd64", "linux/riscv64"]);
    assert_eq!(v["manifests"][0]["platform"]["os.version"], "10.1");
    // A bare digest is read from the one repository named.
    let dry = env.ok(&["imagetools", "create", "--dry-run", "-t", &t, &riscv_digest]);
    assert!(dry.contains(&riscv_digest), "{dry}");
    // A single index alone is copied as it is (same digest), its tags moved.
    let copy = format!("{r}/app:copy");
    let out = env.ok(&["imagetools", "create", "-t", &copy, &three]);
    assert_eq!(raw(&env, &copy).0, raw(&env, &three).0);
    assert_eq!(
        last_digest(&out),
        format!("sha256:{}", sha256_hex(raw(&env, &three).0.as_bytes()))
    );
}

#[test]
fn other_repositories_are_mounted_and_other_registries_copied() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let far = LoggedRegistry::start();
    let r = &reg.host;
    let Some(images) = push_images(&env, r, "app", &["linux/amd64", "linux/arm64"]) else {
        return;
    };
    let (amd, arm) = (format!("{r}/app:amd64"), format!("{r}/app:arm64"));

    // Another repository of the same registry: every blob mounted.
    let before = reg.requests().len();
    let out = env.run(&[
        "buildx",
        "imagetools",
        "create",
        "-t",
        &format!("{r}/other:multi"),
        &amd,
        &arm,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("copying ") && progress.contains("blobs mounted"),
        "{progress}"
    );
    let reqs = &reg.requests()[before..];
    let uploads: Vec<&Request> = reqs
        .iter()
        .filter(|q| (q.method == "PATCH" || q.method == "PUT") && q.path.contains("/blobs/uploads/"))
        .collect();
    assert!(uploads.is_empty(), "bytes were uploaded, not mounted: {uploads:?}");
    let mounts = reqs
        .iter()
        .filter(|q| q.method == "POST" && q.path == "/v2/other/blobs/uploads/" && q.status == 201)
        .count();
    assert_eq!(mounts, 3, "one config each and the shared layer: {reqs:?}");
    let gets = reg.blob_gets(before);
    assert!(gets.iter().all(|d| !images.layers.contains(d)), "{gets:?}");
    eprintln!(
        "cross-repository create: {} blob GETs (0 layer), {mounts} mounts",
        gets.len()
    );

    // Another registry: streamed registry to registry, each layer read once.
    let multi = format!("{r}/app:multi");
    env.ok(&["imagetools", "create", "-t", &multi, &amd, &arm]);
    let before = reg.requests().len();
    let there = format!("{}/far:multi", far.host);
    let out = env.ok(&[
        "imagetools",
        "create",
        "-t",
        &there,
        "-t",
        &format!("{}/far:v2", far.host),
        &multi,
    ]);
    let gets = reg.blob_gets(before);
    let mut distinct = images.layers.clone();
    distinct.sort();
    distinct.dedup();
    for l in &distinct {
        assert_eq!(gets.iter().filter(|g| *g == l).count(), 1, "layer {l}: {gets:?}");
    }
    eprintln!(
        "cross-registry create: {} blob GETs at the source ({} layer), streamed into {}",
        gets.len(),
        distinct.len(),
        far.host
    );
    // The index was copied as it is (one source): the same digest there.
    assert_eq!(raw(&env, &there).0, raw(&env, &multi).0);
    assert_eq!(
        last_digest(&out),
        format!("sha256:{}", sha256_hex(raw(&env, &multi).0.as_bytes()))
    );
    assert_eq!(raw(&env, &format!("{}/far:v2", far.host)).0, raw(&env, &multi).0);
    // Nothing of it is in strata's store, and every blob is there: a fresh
    // store pulls the arm64 image from the far registry.
    let other = Env::new();
    let pulled = other.ok(&["pull", "--platform", "linux/arm64", &there]);
    assert!(pulled.contains("Digest: sha256:"), "{pulled}");
    let arch = other.ok(&["inspect", "-f", "{{.Architecture}}", &there]);
    assert_eq!(arch.trim(), "arm64");
}

#[test]
fn manifest_create_annotate_push_rm_round_trip() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let r = &reg.host;
    let Some(images) = push_images(&env, r, "app", &["linux/amd64", "linux/arm64"]) else {
        return;
    };
    let (amd, arm) = (format!("{r}/app:amd64"), format!("{r}/app:arm64"));
    let list = format!("{r}/list:v1");
    let out = env.ok(&["manifest", "create", &list, &amd, &arm]);
    assert_eq!(out.trim(), format!("Created manifest list {list}"));
    // The draft is a file of the store's, named as docker names it.
    let file = env
        .root()
        .join("manifest-lists")
        .join(format!("{}_list-v1.json", r.replace(':', "-")));
    assert!(file.exists(), "{}", file.display());
    let e = env.fails(&["manifest", "create", &list, &amd]);
    assert!(
        e.contains("refusing to amend an existing manifest list with no --amend flag"),
        "{e}"
    );
    env.ok(&["manifest", "create", "--amend", &list, &amd]);
    // Bad input names what is wrong.
    let e = env.fails(&["manifest", "create", &format!("{r}/list:v2"), &format!("{r}/app:nope")]);
    assert!(e.contains("app:nope") && e.contains("not found"), "{e}");
    let e = env.fails(&["manifest", "annotate", "--arch", "nonsense", &list, &arm]);
    assert!(
        e.contains("manifest entry for image has unsupported os/arch combination: linux/nonsense"),
        "{e}"
    );
    let e = env.fails(&[
        "manifest",
        "annotate",
        "--variant",
        "v8",
        &list,
        &format!("{r}/app:other"),
    ]);
    assert!(e.contains("does not exist in"), "{e}");

    // The draft as docker shows it, unannotated, and then annotated.
    let shown = env.ok(&["manifest", "inspect", &list]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64"]);
    let unannotated = shown.clone();
    env.ok(&[
        "manifest",
        "annotate",
        "--variant",
        "v8",
        "--os-features",
        "a,b",
        &list,
        &arm,
    ]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["manifest", "inspect", &list])).unwrap();
    assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(
        v["manifests"][1]["platform"]["os.features"],
        serde_json::json!(["a", "b"])
    );
    let one = env.ok(&["manifest", "inspect", &list, &arm]);
    assert!(one.contains("\t\"layers\""), "docker's tab indents: {one}");

    // push: the manifests of app/ go into list/ (blobs mounted), then the list.
    let before = reg.requests().len();
    let out = env.ok(&["manifest", "push", &list]);
    assert_eq!(out.matches("Pushed ref ").count(), 2, "{out}");
    assert!(reg.blob_gets(before).iter().all(|d| !images.layers.contains(d)));
    let (text, pushed) = raw(&env, &list);
    assert_eq!(last_digest(&out), format!("sha256:{}", sha256_hex(text.as_bytes())));
    assert_eq!(platforms(&pushed), ["linux/amd64", "linux/arm64/v8"]);
    // An OCI manifest first: docker's FromDescriptors makes it an OCI index.
    assert_eq!(pushed["mediaType"], "application/vnd.oci.image.index.v1+json");
    if have("skopeo") {
        assert_eq!(platforms(&raw_manifest(&list)), ["linux/amd64", "linux/arm64/v8"]);
        let arm = sh_ok(&format!(
            "skopeo inspect --tls-verify=false --override-arch arm64 --override-variant v8 docker://{list}"
        ));
        assert!(arm.contains("\"Architecture\": \"arm64\""), "{arm}");
    }
    // Still a draft until rm (or push --purge).
    env.ok(&["manifest", "push", "--purge", &list]);
    assert!(!file.exists());
    let e = env.fails(&["manifest", "rm", &list]);
    assert!(e.contains(&format!("No such manifest: {list}")), "{e}");
    env.ok(&["manifest", "create", &list, &amd]);
    env.ok(&["manifest", "rm", &list]);
    assert!(!file.exists());
    // Without a draft, inspect asks the registry.
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["manifest", "inspect", &list])).unwrap();
    assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64/v8"]);

    // The docker CLI makes the same list, byte for byte.
    if have("docker") {
        let cfg = env.path("docker-config");
        std::fs::create_dir_all(&cfg).unwrap();
        let dlist = format!("{r}/dlist:v1");
        let o = docker_cli(&cfg, &format!("manifest create --insecure {dlist} {amd} {arm}"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = docker_cli(&cfg, &format!("manifest push --insecure {dlist}"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let docker_digest = last_digest(&String::from_utf8_lossy(&o.stdout));
        let slist = format!("{r}/dlist:strata");
        env.ok(&["manifest", "create", &slist, &amd, &arm]);
        let ours = env.ok(&["manifest", "inspect", &slist]);
        assert_eq!(ours, unannotated, "the same entries read the same");
        let out = env.ok(&["manifest", "push", &slist]);
        assert_eq!(last_digest(&out), docker_digest, "docker and strata push the same list");
    }

    // A manifest of another registry is refused at push, with docker's words.
    let far = TestRegistry::strata();
    let flist = format!("{}/list:v1", far.host);
    env.ok(&["manifest", "create", &flist, &amd]);
    let e = env.fails(&["manifest", "push", &flist]);
    assert!(
        e.contains(&format!(
            "cannot use source images from a different registry than the target image: {r} != {}",
            far.host
        )),
        "{e}"
    );
    // An index is not a manifest for a list.
    let multi = format!("{r}/app:multi");
    env.ok(&["imagetools", "create", "-t", &multi, &amd, &arm]);
    let e = env.fails(&["manifest", "create", &format!("{r}/list:v3"), &multi]);
    assert!(e.contains(&format!("{multi} is a manifest list")), "{e}");
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let r = &reg.host;
    if push_images(&env, r, "app", &["linux/amd64", "linux/arm64"]).is_none() {
        return;
    }
    let (amd, arm) = (format!("{r}/app:amd64"), format!("{r}/app:arm64"));
    let t = format!("{r}/app:bad");
    let create = |extra: &[&str]| {
        let mut args = vec!["buildx", "imagetools", "create"];
        args.extend_from_slice(extra);
        env.fails(&args)
    };
    let e = create(&["-t", &t, "--platform", "linux/s390x", &amd, &arm]);
    assert!(
        e.contains("none of the manifests match the provided platforms (linux/s390x)")
            && e.contains("linux/amd64, linux/arm64"),
        "{e}"
    );
    let e = create(&["-t", &t, "--platform", "linux", &amd]);
    assert!(e.contains("invalid platform \"linux\""), "{e}");
    let e = create(&["-t", &t, &amd, &format!("{r}/app:nope")]);
    assert!(
        e.contains(&format!("source {r}/app:nope")) && e.contains("not found"),
        "{e}"
    );
    let e = create(&["-t", &t, &format!("{r}/missing:v1")]);
    assert!(e.contains("missing") && e.contains("not found"), "{e}");
    let e = create(&[&amd, &arm]);
    assert!(e.contains("can't push with no tags specified"), "{e}");
    let e = create(&["-t", &t]);
    assert!(e.contains("no sources specified"), "{e}");
    let e = create(&["-t", &t, "--annotation", "manifest:k=v", &amd]);
    assert!(e.contains("not supported yet"), "{e}");
    let e = create(&["-t", &t, "--annotation", "novalue", &amd]);
    assert!(e.contains("expected key=value"), "{e}");
    let e = create(&["-t", &t, "sha256:1234"]);
    assert!(
        e.contains("valid sources are digests, references and descriptors"),
        "{e}"
    );
    let digest = format!("sha256:{}", "a".repeat(64));
    let e = create(&["-t", &t, "-t", &format!("{r}/elsewhere:v1"), &digest]);
    assert!(e.contains("cannot infer repository"), "{e}");
    // Nothing was tagged by any of it.
    env.fails(&["manifest", "inspect", &t]);
}

#[test]
fn docker_lists_stay_docker_until_an_oci_image_joins() {
    let env = Env::new();
    let reg = LoggedRegistry::start();
    let r = &reg.host;
    if !have("skopeo") {
        return;
    }
    if push_images(&env, r, "app", &["linux/amd64", "linux/arm64", "linux/riscv64"]).is_none() {
        return;
    }
    // Docker schema 2 copies of two of them (skopeo converts).
    for a in ["amd64", "arm64"] {
        sh_ok(&format!(
            "skopeo copy -q --format v2s2 --src-tls-verify=false --dest-tls-verify=false docker://{r}/app:{a} docker://{r}/app:{a}-docker"
        ));
    }
    let list = format!("{r}/app:dlist");
    env.ok(&[
        "imagetools",
        "create",
        "-t",
        &list,
        &format!("{r}/app:amd64-docker"),
        &format!("{r}/app:arm64-docker"),
    ]);
    let v = raw_manifest(&list);
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64"]);
    // Annotations need an OCI index (a Docker list has no place for them).
    let dry = env.ok(&[
        "imagetools",
        "create",
        "--dry-run",
        "--annotation",
        "index:a=b",
        &format!("{r}/app:amd64-docker"),
        &format!("{r}/app:arm64-docker"),
    ]);
    assert!(dry.contains("application/vnd.oci.image.index.v1+json"), "{dry}");
    // --append of an OCI image to the Docker list: an OCI index of both kinds (as buildx).
    env.ok(&[
        "imagetools",
        "create",
        "--append",
        "-t",
        &list,
        &format!("{r}/app:riscv64"),
    ]);
    let v = raw_manifest(&list);
    assert_eq!(v["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(platforms(&v), ["linux/amd64", "linux/arm64", "linux/riscv64"]);
    assert_eq!(
        v["manifests"][0]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        v["manifests"][2]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    if docker_daemon() {
        let out = sh_ok(&format!("docker pull --platform linux/amd64 {list}"));
        assert!(out.contains("Digest: sha256:"), "{out}");
        sh(&format!("docker rmi {list}"));
    }
}
