//! `--cache-to`/`--cache-from` (#17): the build cache through registries,
//! OCI layouts and image configs, in BuildKit's format; read back on empty
//! stores, by docker BuildKit's inline caches too; bad caches ignored with
//! a warning, never trusted across base images.

mod common;

use std::path::Path;

use common::differential::{docker_client, docker_ok, unique};
use common::{Env, TestRegistry};

/// The busybox base, imported and pushed to `reg` as `busybox:latest`; its name there.
fn push_base(env: &Env, reg: &TestRegistry) -> Option<String> {
    env.import_busybox()?;
    let name = format!("{}/busybox:latest", reg.host);
    env.ok(&["tag", "busybox:latest", &name]);
    env.ok(&["push", &name]);
    Some(name)
}

/// A context with a Dockerfile `FROM base` of RUN, ENV, WORKDIR, ARG and COPY steps.
fn context(env: &Env, base: &str, copy: bool) -> std::path::PathBuf {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    let copy = if copy { "COPY f /w/f\n" } else { "" };
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nENV A=1\nRUN echo one > /one\nWORKDIR /w\n{copy}RUN echo two > /two\nARG V=3\nRUN echo $V > /three\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("f"), "hello\n").unwrap();
    dir
}

/// Runs a build on `env`'s store with `args`; returns its output (stderr and stdout).
fn build(env: &Env, args: &[&str], ctx: &Path) -> String {
    let mut a = vec!["build", "--progress", "plain", "--network", "none"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    let o = env.run(&a);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(o.status.success(), "strata {a:?} failed:\n{text}");
    text
}

/// The steps of a plain build log that ran (not CACHED), by title.
fn ran_steps(log: &str) -> Vec<String> {
    let mut ran = Vec::new();
    let mut titles = std::collections::BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else { continue };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') && !text.contains("FROM ") && !text.starts_with("[internal]") {
            titles.insert(n.to_string(), text.to_string());
        }
        if text.starts_with("DONE") && titles.contains_key(n) {
            ran.push(titles[n].clone());
        }
    }
    ran
}

fn rootfs(env: &Env, image: &str) -> String {
    env.ok(&["inspect", "-f", "{{json .RootFS.Layers}}", image])
        .trim()
        .to_string()
}

/// Every blob file in a store.
fn blobs(env: &Env) -> std::collections::BTreeSet<String> {
    let dir = env.root().join("blobs/sha256");
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The store holds one blob per layer of `image`, and the configs and
/// manifests of the image and its base: nothing else was fetched.
fn assert_only_the_image(env: &Env, image: &str) {
    let layers: Vec<String> = serde_json::from_str(&rootfs(env, image)).unwrap();
    let held = blobs(env);
    assert_eq!(held.len(), layers.len() + 4, "{held:?}");
}

#[test]
fn registry_cache_is_read_back_on_an_empty_store_every_step_cached() {
    registry_round_trip(&TestRegistry::strata());
}

/// The same through Debian's docker-registry (CNCF distribution), which
/// checks what a manifest names.
#[test]
fn registry_cache_through_distribution() {
    if let Some(reg) = TestRegistry::distribution(false, "") {
        registry_round_trip(&reg);
    }
}

fn registry_round_trip(reg: &TestRegistry) {
    let env = Env::new();
    let Some(base) = push_base(&env, reg) else { return };
    let ctx = context(&env, &base, true);
    let cache = format!("{}/app:cache", reg.host);
    let first = build(
        &env,
        &[
            "-t",
            "app:1",
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
        ],
        &ctx,
    );
    assert!(first.contains("exporting cache to"), "{first}");
    assert_eq!(ran_steps(&first).len(), 5, "{first}");

    // Another store, empty: the base comes from the registry, every step from the cache.
    let other = Env::new();
    let log = build(&other, &["-t", "app:2", "--cache-from", &cache], &ctx);
    assert!(ran_steps(&log).is_empty(), "every step CACHED:\n{log}");
    assert_eq!(log.matches("CACHED").count(), 5, "{log}");
    assert!(log.contains("matched by key"), "{log}");
    assert_eq!(rootfs(&env, "app:1"), rootfs(&other, "app:2"));
    // It ran: the result is the image built first.
    let out = other.ok(&["run", "--rm", "app:2", "cat", "/one", "/two", "/three", "/w/f"]);
    assert_eq!(out, "one\ntwo\n3\nhello\n");
    // Nothing but the image's layers was fetched: the store holds one blob per
    // layer, the base's config and manifest, the image's config and manifest.
    assert_only_the_image(&other, "app:2");

    // A changed build arg: the steps after it run, and say why.
    let changed = build(&other, &["--cache-from", &cache, "--build-arg", "V=4"], &ctx);
    let ran = ran_steps(&changed);
    assert_eq!(ran.len(), 1, "{changed}");
    assert!(ran[0].contains("RUN echo $V"), "{ran:?}");
    assert!(changed.contains("not in the imported cache"), "{changed}");
}

#[test]
fn local_cache_round_trip() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = context(&env, &base, true);
    let dir = env.path("cache-dir");
    let d = dir.to_str().unwrap();
    build(&env, &["--cache-to", &format!("type=local,dest={d}")], &ctx);
    assert!(dir.join("index.json").is_file() && dir.join("oci-layout").is_file());
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(m)).unwrap()).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.buildkit.cacheconfig.v0"
    );

    let other = Env::new();
    let log = build(&other, &["--cache-from", &format!("type=local,src={d}")], &ctx);
    assert!(ran_steps(&log).is_empty(), "{log}");
}

#[test]
fn inline_cache_travels_with_the_image() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = context(&env, &base, true);
    let image = format!("{}/app:inline", reg.host);
    // BuildKit's build arg asks for it (and is no unused arg).
    let log = build(&env, &["-t", &image, "--build-arg", "BUILDKIT_INLINE_CACHE=1"], &ctx);
    assert!(!log.contains("were not consumed"), "{log}");
    assert!(config_has_inline(&env, &image));
    env.ok(&["push", &image]);

    let other = Env::new();
    let log = build(&other, &["--cache-from", &image], &ctx);
    assert!(ran_steps(&log).is_empty(), "{log}");
    // --cache-to type=inline says the same.
    let img2 = format!("{}/app:inline2", reg.host);
    build(&env, &["-t", &img2, "--cache-to", "type=inline"], &ctx);
    assert!(config_has_inline(&env, &img2));
}

/// Whether the image's config blob has the inline cache key.
fn config_has_inline(env: &Env, image: &str) -> bool {
    let id = env.ok(&["inspect", "-f", "{{.Id}}", image]);
    let hex = id.trim().trim_start_matches("sha256:");
    let bytes = std::fs::read(env.root().join("blobs/sha256").join(hex)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v.get("moby.buildkit.cache.v0").and_then(|v| v.as_str()).is_some()
}

#[test]
fn docker_buildkit_inline_cache_is_read_by_strata() {
    let Some(docker) = docker_client() else { return };
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    // No COPY: a BuildKit history entry does not say what it copied (see the README).
    let ctx = context(&env, &base, false);
    let image = format!("{}/{}:1", reg.host, unique("dcache"));
    let o = std::process::Command::new(&docker)
        .args([
            "build",
            "--network",
            "none",
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
            "-t",
            &image,
        ])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    docker_ok(&docker, &["push", &image]);
    let _ = docker_ok(&docker, &["rmi", &image]);

    let other = Env::new();
    let log = build(&other, &["-t", "fromdocker", "--cache-from", &image], &ctx);
    assert!(ran_steps(&log).is_empty(), "every step CACHED:\n{log}");
    assert!(log.contains("matched by history"), "{log}");
    assert_only_the_image(&other, "fromdocker");
    let out = other.ok(&["run", "--rm", "fromdocker", "cat", "/one", "/two", "/three"]);
    assert_eq!(out, "one\ntwo\n3\n");
    // Another ENV value before the RUNs: docker's cache does not apply.
    std::fs::write(
        ctx.join("Dockerfile"),
        std::fs::read_to_string(ctx.join("Dockerfile"))
            .unwrap()
            .replace("ENV A=1", "ENV A=2"),
    )
    .unwrap();
    let log = build(&Env::new(), &["--cache-from", &image], &ctx);
    assert_eq!(ran_steps(&log).len(), 4, "{log}");
}

#[test]
fn a_cache_is_not_trusted_across_base_images() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = context(&env, &base, true);
    let cache = format!("{}/app:cache", reg.host);
    build(&env, &["--cache-to", &format!("type=registry,ref={cache}")], &ctx);

    // The same root filesystem as another image (same layer, another config digest) under the name.
    let other = Env::new();
    let rootfs = other.busybox_rootfs().unwrap();
    other.ok(&[
        "import",
        "-c",
        "ENV PATH=/bin:/usr/bin",
        rootfs.to_str().unwrap(),
        &base,
    ]);
    let log = build(&other, &["--cache-from", &cache], &ctx);
    assert_eq!(ran_steps(&log).len(), 5, "{log}");
    assert!(log.contains("not in the imported cache"), "{log}");
}

/// The cache manifest and config of a local cache: (manifest path, manifest, config path, config).
fn local_cache(
    dir: &Path,
) -> (
    std::path::PathBuf,
    serde_json::Value,
    std::path::PathBuf,
    serde_json::Value,
) {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let mp = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&mp).unwrap()).unwrap();
    let cp = blob(m["config"]["digest"].as_str().unwrap());
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    (mp, m, cp, c)
}

#[test]
fn bad_caches_are_ignored_with_a_warning_and_the_steps_run() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = context(&env, &base, true);
    let dir = env.path("cache-dir");
    let d = dir.to_str().unwrap();
    build(&env, &["--cache-to", &format!("type=local,dest={d}")], &ctx);
    let (_, m, _, c) = local_cache(&dir);

    // A layer blob whose bytes lie about their digest: the step runs, with a warning.
    let layers = m["layers"].as_array().unwrap();
    let last = layers.last().unwrap()["digest"].as_str().unwrap().to_string();
    let path = dir.join("blobs/sha256").join(last.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let log = build(&Env::new(), &["--cache-from", &format!("type=local,src={d}")], &ctx);
    assert!(log.contains("[Warning] cache ignored for"), "{log}");
    assert_eq!(ran_steps(&log).len(), 1, "the last step runs:\n{log}");

    // A missing blob: the same.
    std::fs::remove_file(&path).unwrap();
    let log = build(&Env::new(), &["--cache-from", &format!("type=local,src={d}")], &ctx);
    assert!(log.contains("[Warning] cache ignored for"), "{log}");
    assert_eq!(ran_steps(&log).len(), 1, "{log}");

    // A config whose diff IDs lie (the blobs are right): every step that would use it runs.
    let dir2 = env.path("cache-dir2");
    let d2 = dir2.to_str().unwrap();
    build(&env, &["--cache-to", &format!("type=local,dest={d2}")], &ctx);
    let (mp, mut m, cp, mut c2) = local_cache(&dir2);
    let n = c2["layers"].as_array().unwrap().len();
    c2["layers"][n - 1]["annotations"]["diffID"] = serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
    let cbytes = serde_json::to_vec(&c2).unwrap();
    let cdigest = common::sha256_hex(&cbytes);
    std::fs::write(dir2.join("blobs/sha256").join(&cdigest), &cbytes).unwrap();
    m["config"]["digest"] = serde_json::json!(format!("sha256:{cdigest}"));
    m["config"]["size"] = serde_json::json!(cbytes.len());
    let mbytes = serde_json::to_vec(&m).unwrap();
    let mdigest = common::sha256_hex(&mbytes);
    std::fs::write(dir2.join("blobs/sha256").join(&mdigest), &mbytes).unwrap();
    let _ = (mp, cp, c);
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir2.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{mdigest}"));
    index["manifests"][0]["size"] = serde_json::json!(mbytes.len());
    std::fs::write(dir2.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let log = build(&Env::new(), &["--cache-from", &format!("type=local,src={d2}")], &ctx);
    assert!(log.contains("[Warning] cache ignored for"), "{log}");
    assert_eq!(ran_steps(&log).len(), 1, "{log}");

    // A cache manifest naming a blob it does not list: a warning, the records on it unused.
    let (_, _, _, mut c3) = local_cache(&dir2);
    c3["layers"][0]["blob"] = serde_json::json!(format!("sha256:{}", "cd".repeat(32)));
    let cbytes = serde_json::to_vec(&c3).unwrap();
    let cdigest = common::sha256_hex(&cbytes);
    std::fs::write(dir2.join("blobs/sha256").join(&cdigest), &cbytes).unwrap();
    m["config"]["digest"] = serde_json::json!(format!("sha256:{cdigest}"));
    m["config"]["size"] = serde_json::json!(cbytes.len());
    let mbytes = serde_json::to_vec(&m).unwrap();
    let mdigest = common::sha256_hex(&mbytes);
    std::fs::write(dir2.join("blobs/sha256").join(&mdigest), &mbytes).unwrap();
    index["manifests"][0]["digest"] = serde_json::json!(format!("sha256:{mdigest}"));
    index["manifests"][0]["size"] = serde_json::json!(mbytes.len());
    std::fs::write(dir2.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    let log = build(&Env::new(), &["--cache-from", &format!("type=local,src={d2}")], &ctx);
    assert!(log.contains("does not list"), "{log}");
    assert_eq!(ran_steps(&log).len(), 5, "{log}");

    // A cache that is not there at all: a warning, the build runs.
    let log = build(
        &Env::new(),
        &["--cache-from", &format!("{}/nothing:here", reg.host)],
        &ctx,
    );
    assert!(log.contains("building without it"), "{log}");
}

#[test]
fn bad_cache_flags_are_refused_before_building() {
    let env = Env::new();
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let d = dir.to_str().unwrap();
    let err = env.fails(&["build", "--cache-to", "type=gha", d]);
    assert!(err.contains("not supported"), "{err}");
    let err = env.fails(&["build", "--cache-to", "type=registry", d]);
    assert!(err.contains("ref="), "{err}");
    let err = env.fails(&["build", "--cache-to", "type=inline,mode=max", d]);
    assert!(err.contains("mode=min"), "{err}");
}

#[test]
fn mode_max_exports_the_intermediate_stages_too() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = env.path("ctx-multi");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base} AS builder\nRUN echo built > /out\nRUN echo more >> /out\n\nFROM {base}\nCOPY --from=builder /out /out\nRUN cat /out > /copy\n"
        ),
    )
    .unwrap();
    let (min, max) = (format!("{}/multi:min", reg.host), format!("{}/multi:max", reg.host));
    build(&env, &["--cache-to", &format!("type=registry,ref={min}")], &ctx);
    build(
        &env,
        &["--cache-to", &format!("type=registry,ref={max},mode=max")],
        &ctx,
    );

    // mode=min: the builder stage's steps are not in the cache (they run),
    // the final stage's are (its COPY --from key holds what was copied).
    let log = build(&Env::new(), &["--cache-from", &min], &ctx);
    let ran = ran_steps(&log);
    assert_eq!(ran.len(), 2, "{log}");
    assert!(ran.iter().all(|s| s.contains("builder")), "{ran:?}");
    // mode=max: every step CACHED.
    let log = build(&Env::new(), &["--cache-from", &max], &ctx);
    assert!(ran_steps(&log).is_empty(), "{log}");
}

#[test]
fn a_cache_export_that_fails_fails_the_build_unless_ignore_error() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let Some(base) = push_base(&env, &reg) else { return };
    let ctx = context(&env, &base, false);
    // Nothing listens there.
    let port = common::free_port();
    let nowhere = format!("type=registry,ref=127.0.0.1:{port}/x:cache");
    let mut a = vec!["build", "--network", "none", "--cache-to", &nowhere];
    a.push(ctx.to_str().unwrap());
    let err = env.fails(&a);
    assert!(err.contains("exporting the build cache"), "{err}");
    let ignored = format!("{nowhere},ignore-error=true");
    let log = build(&env, &["--cache-to", &ignored], &ctx);
    assert!(log.contains("ignore-error=true"), "{log}");
}
