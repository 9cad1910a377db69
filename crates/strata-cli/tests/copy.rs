//! `strata copy` end to end: the round trip of the issue (registry → OCI
//! layout → oci-archive → docker-archive → store → registry), read by
//! skopeo and umoci at each step; registry to registry with a big layer
//! moved without touching the disk; a lying source leaves the destination
//! as it was.

mod common;

use common::*;

fn skopeo_digest(location: &str) -> String {
    let out = sh_ok(&format!(
        "skopeo inspect --tls-verify=false {} | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"Digest\"])'",
        shell_quote(location)
    ));
    out.trim().to_string()
}

fn manifest_digest(env: &Env, location: &str) -> String {
    let out = env.ok(&[
        "copy",
        "-q",
        location,
        &format!("oci:{}:x", env.path("probe").display()),
    ]);
    assert!(out.is_empty(), "{out}");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.path("probe").join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "x")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_dir_all(env.path("probe")).unwrap();
    d
}

#[test]
fn round_trip_through_every_location_keeps_the_image() {
    let env = Env::new();
    let Some(id) = env.import_busybox() else { return };
    let reg = TestRegistry::strata();
    let src = format!("{}/rt/busybox:1", reg.host);
    env.ok(&["tag", "busybox", &src]);
    env.ok(&["push", "-q", &src]);
    let pushed = manifest_digest(&env, &format!("docker://{src}"));
    let skopeo = have("skopeo");
    if skopeo {
        assert_eq!(skopeo_digest(&format!("docker://{src}")), pushed);
    }

    let oci = env.path("oci");
    let out = env.ok(&["copy", &format!("docker://{src}"), &format!("oci:{}:bb", oci.display())]);
    assert!(out.contains("Writing manifest"), "{out}");
    if skopeo {
        assert_eq!(skopeo_digest(&format!("oci:{}:bb", oci.display())), pushed);
    }
    if have("umoci") {
        sh_ok(&format!(
            "umoci unpack --image {}:bb {} >/dev/null",
            oci.display(),
            env.path("bundle").display()
        ));
        assert!(env.path("bundle/rootfs/bin/busybox").is_file());
    }
    let oa = env.path("image.oci.tar");
    env.ok(&[
        "copy",
        "-q",
        &format!("oci:{}:bb", oci.display()),
        &format!("oci-archive:{}:bb", oa.display()),
    ]);
    if skopeo {
        assert_eq!(skopeo_digest(&format!("oci-archive:{}:bb", oa.display())), pushed);
    }
    let da = env.path("image.docker.tar");
    env.ok(&[
        "copy",
        "-q",
        &format!("oci-archive:{}:bb", oa.display()),
        &format!("docker-archive:{}:bb:2", da.display()),
    ]);
    if skopeo {
        // skopeo reads the archive (it reports the config-derived digest of a docker-archive).
        sh_ok(&format!("skopeo inspect docker-archive:{} >/dev/null", da.display()));
    }
    env.ok(&[
        "copy",
        "-q",
        &format!("docker-archive:{}:bb:2", da.display()),
        "strata:roundtrip:3",
    ]);
    assert_eq!(env.ok(&["images", "--no-trunc", "-q", "roundtrip:3"]).trim(), id);
    assert_eq!(env.ok(&["run", "--rm", "roundtrip:3", "echo", "ran"]), "ran\n");
    let back = format!("{}/rt/back:4", reg.host);
    env.ok(&["copy", "-q", "strata:roundtrip:3", &format!("docker://{back}")]);
    assert_eq!(
        manifest_digest(&env, &format!("docker://{back}")),
        pushed,
        "the manifest digest survived the trip"
    );
    // And pull of what came back gives the same image.
    env.ok(&["rmi", "roundtrip:3"]);
    env.ok(&["pull", "-q", &back]);
    assert_eq!(env.ok(&["images", "--no-trunc", "-q", &back]).trim(), id);
}

#[test]
fn registry_to_registry_streams_without_touching_the_disk() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    // A 100 MB layer of incompressible bytes on top of busybox.
    let ctx = env.path("ctx");
    std::fs::create_dir(&ctx).unwrap();
    sh_ok(&format!("head -c 100000000 /dev/urandom > {}/big", ctx.display()));
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY big /big\n").unwrap();
    env.ok(&["build", "-q", "-t", "big:1", ctx.to_str().unwrap()]);
    let a = TestRegistry::strata();
    let b = TestRegistry::strata();
    let src = format!("{}/big/app:1", a.host);
    env.ok(&["tag", "big:1", &src]);
    env.ok(&["push", "-q", &src]);
    let dst = format!("{}/copied/app:1", b.host);
    // A store that does not exist and an empty TMPDIR: the copy may write to neither.
    let fresh = Env::new();
    let tmp = fresh.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = fresh
        .cmd()
        .env("TMPDIR", &tmp)
        .args(["copy", &format!("docker://{src}"), &format!("docker://{dst}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!fresh.root().exists(), "the store was touched");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "something was written to TMPDIR"
    );
    assert_eq!(
        manifest_digest(&env, &format!("docker://{dst}")),
        manifest_digest(&env, &format!("docker://{src}"))
    );
    // Within one registry the blobs are mounted, not copied.
    let same = format!("{}/other/app:1", a.host);
    let out = env.ok(&["copy", &format!("docker://{src}"), &format!("docker://{same}")]);
    assert!(out.contains("mounted from"), "{out}");
    assert!(!out.contains(" done"), "{out}");
}

#[test]
fn a_lying_source_leaves_the_destination_as_it_was() {
    let env = Env::new();
    let Some(_) = env.import_busybox() else { return };
    let oci = env.path("oci");
    env.ok(&["copy", "-q", "strata:busybox", &format!("oci:{}:bb", oci.display())]);
    // Corrupt the biggest blob (the layer), same size.
    let blobs = oci.join("blobs/sha256");
    let layer = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&layer).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&layer, bytes).unwrap();
    let digest = format!("sha256:{}", layer.file_name().unwrap().to_string_lossy());
    // The store is a second one: busybox's store holds the layer already and rightly skips it.
    let other = Env::new();
    other.ok(&["images"]);
    let before = other.snapshot();
    let err = other.fails(&["copy", "-q", &format!("oci:{}:bb", oci.display()), "strata:lied:1"]);
    assert!(err.contains(&digest), "{err}");
    assert_eq!(other.snapshot(), before, "the store changed");
    let reg = TestRegistry::strata();
    for dst in [
        format!("oci-archive:{}", env.path("lied.tar").display()),
        format!("docker-archive:{}:lied:1", env.path("lied-docker.tar").display()),
        format!("oci:{}:lied", env.path("lied-oci").display()),
        format!("docker://{}/lied/x:1", reg.host),
    ] {
        let err = env.fails(&["copy", "-q", &format!("oci:{}:bb", oci.display()), &dst]);
        assert!(err.contains(&digest), "{dst}: {err}");
    }
    assert!(!env.path("lied.tar").exists() && !env.path("lied-docker.tar").exists());
    assert!(!env.path("lied-oci/index.json").exists());
    let o = env.run(&[
        "copy",
        "-q",
        &format!("docker://{}/lied/x:1", reg.host),
        &format!("oci:{}", env.path("probe2").display()),
    ]);
    assert!(!o.status.success(), "the registry got a tag");
}
