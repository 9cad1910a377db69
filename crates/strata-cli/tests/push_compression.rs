//! `push --compression gzip|zstd --compression-level N --force-compression`
//! and buildx's `-o type=registry,compression=zstd,…` (#17 item 3): zstd
//! layers pushed are pulled back by strata and skopeo.

mod common;

use common::{Env, TestRegistry, have, raw_manifest, sh};

fn layer_types(name: &str) -> Vec<String> {
    let m = raw_manifest(name);
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

/// A built image of two layers (the base and one RUN), named `name`.
fn built(env: &Env, name: &str) -> bool {
    if env.import_busybox().is_none() {
        return false;
    }
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    env.ok(&["build", "-q", "--network", "none", "-t", name, ctx.to_str().unwrap()]);
    true
}

#[test]
fn zstd_push_is_pulled_back_and_forced_recompression_only_when_asked() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    let gz = format!("{}/c:gzip", reg.host);
    if !built(&env, &gz) {
        return;
    }
    env.ok(&["push", &gz]);
    assert!(
        layer_types(&gz).iter().all(|t| t.ends_with("tar+gzip")),
        "{:?}",
        layer_types(&gz)
    );

    // Held gzip now: --compression zstd alone keeps them (as buildx without force-compression).
    let kept = format!("{}/c:kept", reg.host);
    env.ok(&["tag", &gz, &kept]);
    env.ok(&["push", "--compression", "zstd", &kept]);
    assert!(layer_types(&kept).iter().all(|t| t.ends_with("tar+gzip")));

    let z = format!("{}/c:zstd", reg.host);
    env.ok(&["tag", &gz, &z]);
    env.ok(&[
        "push",
        "--compression",
        "zstd",
        "--compression-level",
        "9",
        "--force-compression",
        &z,
    ]);
    assert!(
        layer_types(&z).iter().all(|t| t.ends_with("tar+zstd")),
        "{:?}",
        layer_types(&z)
    );

    let other = Env::new();
    other.ok(&["pull", &z]);
    assert_eq!(other.ok(&["run", "--rm", &z, "cat", "/hi"]), "hi\n");
    assert_eq!(
        other.ok(&["inspect", "-f", "{{.Id}}", &z]),
        env.ok(&["inspect", "-f", "{{.Id}}", &gz])
    );
    if have("skopeo") {
        let dir = env.path("oci");
        let o = sh(&format!(
            "skopeo copy --src-tls-verify=false docker://{z} oci:{} 2>&1",
            dir.display()
        ));
        assert!(o.status.success(), "skopeo: {}", String::from_utf8_lossy(&o.stdout));
    }
}

#[test]
fn build_output_compression_as_buildx() {
    let env = Env::new();
    let reg = TestRegistry::strata();
    if env.import_busybox().is_none() {
        return;
    }
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    let name = format!("{}/b:zstd", reg.host);
    env.ok(&[
        "buildx",
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        &name,
        "-o",
        "type=registry,compression=zstd,compression-level=3,force-compression=true",
        ctx.to_str().unwrap(),
    ]);
    assert!(
        layer_types(&name).iter().all(|t| t.ends_with("tar+zstd")),
        "{:?}",
        layer_types(&name)
    );
    let err = env.fails(&["push", "--compression", "lz4", &name]);
    assert!(err.contains("gzip or zstd"), "{err}");
    let err = env.fails(&[
        "build",
        "-t",
        &name,
        "-o",
        "type=registry,compression=brotli",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("unknown compression"), "{err}");
}
