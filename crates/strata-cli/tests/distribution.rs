//! pull, push, login/logout, manifest inspect and pin against real
//! registries over HTTP: `strata registry serve`, Debian's `docker-registry`
//! (CNCF distribution) when installed, and skopeo for interop.

mod common;

use common::*;

fn image_id(env: &Env, name: &str) -> String {
    env.ok(&["images", "--no-trunc", "-q", name]).trim().to_string()
}

/// Imports busybox and pushes it to `host/repo:tag`; returns the image ID
/// and the pushed manifest digest.
fn push_busybox(env: &Env, host: &str, repo_tag: &str) -> Option<(String, String)> {
    let id = env.import_busybox()?;
    let target = format!("{host}/{repo_tag}");
    env.ok(&["tag", "busybox:latest", &target]);
    let out = env.ok(&["push", &target]);
    assert!(out.contains("Pushed"), "{out}");
    assert_plain(&out);
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}]\n",
            target.rsplit_once(':').unwrap().0
        )),
        "{out}"
    );
    let tag = repo_tag.rsplit(':').next().unwrap();
    Some((id, pushed_digest(&out, tag)))
}

/// The digest a push printed for `tag` (`TAG: digest: sha256:... size: N`).
fn pushed_digest(out: &str, tag: &str) -> String {
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{tag}: digest: ")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest for {tag}: {out}"));
    assert!(digest.starts_with("sha256:"), "{out}");
    digest.to_string()
}

/// Output for a pipe: whole lines only, no terminal control, none of the
/// states only bars show.
fn assert_plain(out: &str) {
    assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
    for l in out.lines() {
        for word in ["Downloading", "Extracting", "Waiting", ": Pushing", "[="] {
            assert!(!l.contains(word), "{l:?} in {out}");
        }
    }
}

#[test]
fn push_rmi_pull_run_up_to_date_by_digest_and_digests_column() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let Some((id, digest)) = push_busybox(&env, &reg.host, "lib/busybox:1") else {
        return;
    };
    let name = format!("{}/lib/busybox:1", reg.host);
    // images --digests shows the repo digest recorded by the push.
    let out = repo_digests(&env);
    assert!(out.contains(&format!("{name} {digest}")), "{out}");
    // A second push uploads nothing.
    let out = env.ok(&["push", &name]);
    assert!(out.contains("Layer already exists"), "{out}");
    assert!(!out.contains("Pushed"), "{out}");

    env.ok(&["rmi", "busybox:latest", &name]);
    assert!(env.ok(&["images", "-q"]).trim().is_empty());

    let out = env.ok(&["pull", &name]);
    assert!(out.starts_with("1: Pulling from lib/busybox\n"), "{out}");
    assert!(out.contains(": Pull complete"), "{out}");
    // Not a terminal: Docker's plain lines, no bars, no byte counts.
    assert_plain(&out);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].ends_with(": Pulling fs layer"), "{out}");
    assert!(lines[2].ends_with(": Pull complete"), "{out}");
    assert!(lines[3].starts_with("Digest: sha256:"), "{out}");
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&name), "{out}");
    assert_eq!(image_id(&env, &name), id);
    let out = repo_digests(&env);
    assert!(out.contains(&format!("{name} {digest}")), "{out}");

    // Again: up to date, nothing downloaded, the store unchanged.
    let before = env.snapshot();
    let out = env.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {name}")),
        "{out}"
    );
    assert!(!out.contains("Pull complete"), "{out}");
    assert_eq!(env.snapshot(), before);

    // -q prints the reference only.
    assert_eq!(env.ok(&["pull", "-q", &name]).trim(), name);

    // By digest (and tag@digest: the digest wins).
    let by_digest = format!("{}/lib/busybox@{digest}", reg.host);
    let out = env.ok(&["pull", &by_digest]);
    assert!(out.contains("Image is up to date"), "{out}");
    let fresh = Env::new();
    let out = fresh.ok(&["pull", &format!("{}/lib/busybox:nosuchtag@{digest}", reg.host)]);
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.trim_end().ends_with(&by_digest), "{out}");

    // manifest inspect reads it without pulling.
    let out = env.ok(&["manifest", "inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let raw = env.ok(&["manifest", "inspect", "--raw", &name]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);

    // And it runs.
    assert_eq!(env.ok(&["run", "--rm", &name, "echo", "hi"]).trim(), "hi");
}

#[test]
fn pull_of_a_pulled_image_pushed_elsewhere_mounts_and_keeps_the_digest() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let Some((id, digest)) = push_busybox(&env, &reg.host, "a/busybox:1") else {
        return;
    };
    let other = Env::new();
    let name = format!("{}/a/busybox:1", reg.host);
    other.ok(&["pull", "-q", "--max-concurrent-downloads", "1", &name]);
    let copy = format!("{}/b/copy:2", reg.host);
    other.ok(&["tag", &name, &copy]);
    let out = other.ok(&["push", "--max-concurrent-uploads", "2", &copy]);
    assert!(out.contains("Mounted from a/busybox"), "{out}");
    assert!(!out.contains("Pushed"), "{out}");
    assert!(out.contains(&format!("2: digest: {digest} size:")), "{out}");
    let third = Env::new();
    third.ok(&["pull", &copy]);
    assert_eq!(image_id(&third, &copy), id);
}

#[test]
fn pull_errors_name_the_problem() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let err = env.fails(&["pull", &format!("{}/no/such:1", reg.host)]);
    assert!(err.contains("no/such"), "{err}");
    assert!(
        err.to_lowercase().contains("unknown") || err.contains("not found"),
        "{err}"
    );
    let err = env.fails(&["pull", "--platform", "nonsense", &format!("{}/no/such:1", reg.host)]);
    assert!(err.contains("invalid platform"), "{err}");
    for n in ["0", "65", "x"] {
        let err = env.fails(&[
            "pull",
            "--max-concurrent-downloads",
            n,
            &format!("{}/no/such:1", reg.host),
        ]);
        assert!(err.contains("--max-concurrent-downloads"), "{err}");
        let err = env.fails(&[
            "push",
            "--max-concurrent-uploads",
            n,
            &format!("{}/no/such:1", reg.host),
        ]);
        assert!(err.contains("--max-concurrent-uploads"), "{err}");
    }
}

/// Docker's daemon.json `insecure-registries` is read (its effect on TLS is
/// tested in strata-registry's faults.rs); a broken file is named.
#[test]
fn daemon_json_insecure_registries_are_read() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let daemon_json = env.path("daemon.json");
    let pull = |env: &Env| {
        let mut c = env.cmd();
        c.env("DOCKER_CONFIG", env.path("docker-config"))
            .env("STRATA_DOCKER_DAEMON_JSON", &daemon_json)
            .args(["pull", &format!("{}/no/such:1", reg.host)]);
        let o = c.output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    std::fs::write(&daemon_json, "{not json").unwrap();
    let err = pull(&env);
    assert!(err.contains("daemon.json") && err.contains("not valid JSON"), "{err}");
    std::fs::write(&daemon_json, r#"{"insecure-registries":["127.0.0.0/8", 5]}"#).unwrap();
    let err = pull(&env);
    assert!(err.contains("insecure-registries must be a list of strings"), "{err}");
    std::fs::write(&daemon_json, r#"{"insecure-registries":["127.0.0.0/8"]}"#).unwrap();
    let err = pull(&env);
    assert!(err.contains("no/such"), "the pull reached the registry: {err}");
}

#[test]
fn corrupt_blob_in_distribution_storage_is_refused_and_the_store_is_unchanged() {
    let Some(reg) = TestRegistry::distribution(true, "") else {
        return;
    };
    let env = Env::new();
    let Some((id, _)) = push_busybox(&env, &reg.host, "lib/busybox:1") else {
        return;
    };
    let name = format!("{}/lib/busybox:1", reg.host);
    // Pull from distribution works.
    let other = Env::new();
    other.ok(&["pull", &name]);
    assert_eq!(image_id(&other, &name), id);

    // Flip a byte in the middle of the layer blob on the registry's disk.
    let manifest = env.ok(&["manifest", "inspect", &name]);
    let v: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer = v["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let data = reg
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer[..2])
        .join(&layer)
        .join("data");
    let mut bytes = std::fs::read(&data).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();

    let fresh = Env::new();
    fresh.ok(&["images"]);
    let before = fresh.snapshot();
    let err = fresh.fails(&["pull", &name]);
    assert!(err.contains(&layer), "{err}");
    assert!(err.contains("digest"), "{err}");
    assert_eq!(fresh.snapshot(), before);
}

fn auth_error(err: &str) -> bool {
    let e = err.to_lowercase();
    e.contains("unauthorized") || e.contains("authentication required") || e.contains("401")
}

#[test]
fn login_logout_against_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("alice:{}\n", bcrypt::hash("s3cret", 4).unwrap())).unwrap();
    let extra = format!(
        "auth: {{ htpasswd: {{ realm: test, path: \"{}\" }} }}\n",
        htpasswd.display()
    );
    let mut regs = vec![TestRegistry::strata_config(&extra)];
    regs.extend(TestRegistry::distribution(true, &extra));
    for reg in &regs {
        let env = Env::new();
        if env.import_busybox().is_none() {
            return;
        }
        let name = format!("{}/alice/busybox:1", reg.host);
        env.ok(&["tag", "busybox:latest", &name]);
        let err = env.fails_with(&["push", &name], None);
        assert!(auth_error(&err), "{err}");

        let err = env.fails_with(
            &["login", "-u", "alice", "--password-stdin", &reg.host],
            Some("wrong\n"),
        );
        assert!(auth_error(&err), "{err}");
        let out = env.ok_with(
            &["login", "-u", "alice", "--password-stdin", &reg.host],
            Some("s3cret\n"),
        );
        assert!(out.contains("Login Succeeded"), "{out}");
        let cfg = std::fs::read_to_string(env.path("docker-config/config.json")).unwrap();
        assert!(cfg.contains(&reg.host), "{cfg}");

        let out = env.ok_with(&["push", &name], None);
        assert!(out.contains("Pushed"), "{out}");
        let fresh_pull = env.ok_with(&["pull", &name], None);
        assert!(fresh_pull.contains("up to date"), "{fresh_pull}");

        let out = env.ok_with(&["logout", &reg.host], None);
        assert!(
            out.contains(&format!("Removing login credentials for {}", reg.host)),
            "{out}"
        );
        let out = env.ok_with(&["logout", &reg.host], None);
        assert!(out.contains("Not logged in"), "{out}");
        let other = Env::new();
        let err = other.fails_with(&["pull", &name], None);
        assert!(auth_error(&err), "{err}");
    }
}

#[test]
fn skopeo_interop() {
    if !have("skopeo") {
        return;
    }
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let Some(id) = env.import_busybox() else {
        return;
    };
    // skopeo copies an archive strata saved into the registry; strata pulls it.
    let archive = env.path("busybox.tar");
    env.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:latest"]);
    let dest = format!("docker://{}/sk/busybox:1", reg.host);
    sh_ok(&format!(
        "skopeo copy --dest-tls-verify=false docker-archive:{} {dest}",
        archive.display()
    ));
    let other = Env::new();
    let name = format!("{}/sk/busybox:1", reg.host);
    let out = other.ok(&["pull", &name]);
    assert!(out.contains("Pull complete"), "{out}");
    assert_eq!(image_id(&other, &name), id);

    // strata pushes; skopeo reads it.
    let pushed = format!("{}/st/busybox:2", reg.host);
    env.ok(&["tag", "busybox:latest", &pushed]);
    let out = env.ok(&["push", &pushed]);
    let digest = pushed_digest(&out, "2");
    let inspect = sh_ok(&format!("skopeo inspect --tls-verify=false docker://{pushed}"));
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let cfg = sh_ok(&format!("skopeo inspect --config --tls-verify=false docker://{pushed}"));
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(v["config"]["Cmd"][0], "/bin/sh");
    // And skopeo copies it out whole (it verifies every blob).
    let out_dir = env.path("oci-out");
    sh_ok(&format!(
        "skopeo copy --src-tls-verify=false docker://{pushed} oci:{}:x",
        out_dir.display()
    ));
}

#[test]
fn pin_writes_and_checks_digests() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let Some((_, digest)) = push_busybox(&env, &reg.host, "base/busybox:1") else {
        return;
    };
    let df = env.path("Dockerfile");
    let text = format!(
        "ARG V=1\nFROM {h}/base/busybox:1 AS build\nRUN echo hi\nFROM build\nFROM scratch\nFROM {h}/base/busybox:$V\nFROM  --platform=linux/amd64   {h}/base/busybox:1\n",
        h = reg.host
    );
    std::fs::write(&df, &text).unwrap();
    let f = df.to_str().unwrap();
    // Not pinned: --check fails.
    let o = env.run(&["pin", "-f", f, "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("not pinned"));
    // Default: print lock lines, leave the file.
    let out = env.ok(&["pin", "-f", f]);
    let pinned = format!("{}/base/busybox:1@{digest}", reg.host);
    assert_eq!(out.lines().filter(|l| *l == pinned).count(), 2, "{out}");
    assert_eq!(std::fs::read_to_string(&df).unwrap(), text);
    // --write pins both registry FROMs and leaves the rest alone.
    let o = env.run(&["pin", "-f", f, "--write"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("scratch") && err.contains("build argument") && err.contains("earlier build stage"),
        "{err}"
    );
    let written = std::fs::read_to_string(&df).unwrap();
    assert_eq!(
        written,
        text.replace(&format!("{}/base/busybox:1 ", reg.host), &format!("{pinned} "))
            .replace(&format!("{}/base/busybox:1\n", reg.host), &format!("{pinned}\n"))
    );
    let o = env.run(&["pin", "-f", f, "--check"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // The tag moves: --check reports the pin as stale.
    let rootfs = env.busybox_rootfs().unwrap();
    env.ok(&[
        "import",
        "--change",
        "CMD [\"/bin/true\"]",
        rootfs.to_str().unwrap(),
        &format!("{}/base/busybox:1", reg.host),
    ]);
    env.ok(&["push", &format!("{}/base/busybox:1", reg.host)]);
    let o = env.run(&["pin", "-f", f, "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("stale"), "{out}");
}

/// `os/arch` of this machine as image platforms name it.
fn host_platform() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("no test platform for {other}"),
    }
}

#[test]
fn multi_platform_index_is_stored_is_the_repo_digest_and_names_the_host_image() {
    let reg = TestRegistry::strata_config("");
    let env = Env::new();
    let Some((host_id, host_digest)) = push_busybox(&env, &reg.host, "multi/app:host") else {
        return;
    };
    let size_of = |out: &str| -> u64 { out.rsplit("size: ").next().unwrap().trim().parse().unwrap() };
    let host_size = size_of(&env.ok(&["push", &format!("{}/multi/app:host", reg.host)]));
    // The same files as an image of another platform.
    let other = if host_platform() == "linux/amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let rootfs = env.busybox_rootfs().unwrap();
    let other_name = format!("{}/multi/app:other", reg.host);
    env.ok(&["import", "--platform", other, rootfs.to_str().unwrap(), &other_name]);
    let out = env.ok(&["push", &other_name]);
    let other_digest = pushed_digest(&out, "other");
    let other_size = size_of(&out);
    let (os, arch) = other.split_once('/').unwrap();
    let (hos, harch) = host_platform().split_once('/').unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other_digest, "size": other_size,
             "platform": {"os": os, "architecture": arch}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": host_digest, "size": host_size,
             "platform": {"os": hos, "architecture": harch}},
        ],
    });
    let file = env.path("index.json");
    std::fs::write(&file, serde_json::to_vec(&index).unwrap()).unwrap();
    let index_digest = format!("sha256:{}", sha256_hex(&std::fs::read(&file).unwrap()));
    sh_ok(&format!(
        "curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary @{} http://{}/v2/multi/app/manifests/latest",
        file.display(),
        reg.host
    ));

    // Pulled into a fresh store: the host's image, the index as its digest.
    let fresh = Env::new();
    let name = format!("{}/multi/app", reg.host);
    let out = fresh.ok_with(&["pull", &name], None);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    assert_eq!(image_id(&fresh, &format!("{name}:latest")), host_id);
    let out = repo_digests(&fresh);
    assert_eq!(out.trim(), format!("{name}:latest {index_digest}"));
    let out = fresh.ok(&["inspect", "--format", "{{json .RepoDigests}}", &name]);
    assert_eq!(out.trim(), format!("[\"{name}@{index_digest}\"]"));
    // The index blob is in the store.
    assert!(
        fresh
            .root()
            .join("blobs/sha256")
            .join(index_digest.strip_prefix("sha256:").unwrap())
            .exists()
    );
    // name@<index digest> names the host's image: run, inspect, tag.
    let by_index = format!("{name}@{index_digest}");
    assert_eq!(fresh.ok(&["run", "--rm", &by_index, "echo", "hi"]).trim(), "hi");
    let out = fresh.ok(&["inspect", "--format", "{{.Id}} {{.Architecture}}", &by_index]);
    assert_eq!(out.trim(), format!("{host_id} {harch}"));
    fresh.ok(&["tag", &by_index, "local/app:1"]);
    assert_eq!(image_id(&fresh, "local/app:1"), host_id);
    // Pulled again by the index digest: up to date.
    let out = fresh.ok(&["pull", &by_index]);
    assert!(out.contains("Image is up to date"), "{out}");

    // imagetools inspect: the index with its platforms; --raw: its bytes.
    let out = fresh.ok(&["imagetools", "inspect", &name]);
    assert!(out.starts_with(&format!("Name:      {name}:latest\n")), "{out}");
    assert!(
        out.contains("MediaType: application/vnd.oci.image.index.v1+json\n"),
        "{out}"
    );
    assert!(out.contains(&format!("Digest:    {index_digest}\n")), "{out}");
    assert!(out.contains("\nManifests:\n"), "{out}");
    assert!(
        out.contains(&format!("  Name:      {name}:latest@{host_digest}\n")),
        "{out}"
    );
    assert!(out.contains(&format!("  Platform:  {}\n", host_platform())), "{out}");
    assert!(out.contains(&format!("  Platform:  {other}\n")), "{out}");
    let raw = fresh.ok(&["imagetools", "inspect", "--raw", &name]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), index_digest);
    // A single manifest: name, media type, digest, no list (the global
    // --root before the command word is skipped when telling the spelling).
    let out = fresh.ok(&["imagetools", "inspect", &other_name]);
    assert!(out.contains(&format!("Digest:    {other_digest}\n")), "{out}");
    assert!(!out.contains("Manifests:"), "{out}");
    // manifest inspect stays JSON.
    let v: serde_json::Value = serde_json::from_str(&fresh.ok(&["manifest", "inspect", &name])).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
}
