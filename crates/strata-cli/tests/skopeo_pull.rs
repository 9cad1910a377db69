//! What `skopeo copy` pushes, strata pulls and runs: gzip and zstd layers,
//! OCI and Docker media types, and an index with two platforms (the
//! host's is picked). Skipped with a message when skopeo is missing.

mod common;

use common::*;
use serde_json::{Value, json};

/// Pulls `name` into a fresh store, runs it, checks the store; returns the
/// store (for more questions).
fn pull_and_run(name: &str) -> Env {
    let env = Env::new();
    let out = env.ok(&["pull", name]);
    assert!(out.contains("Status:"), "{out}");
    assert_eq!(env.ok(&["run", "--rm", name, "echo", "ok"]), "ok\n", "{name}");
    env.ok(&["system", "check"]);
    env
}

#[test]
fn skopeo_pushed_gzip_zstd_oci_docker_and_a_two_platform_index_pull_and_run() {
    if !have("skopeo") {
        return;
    }
    let src = Env::new();
    if src.import_busybox().is_none() {
        return;
    }
    let archive = src.path("busybox.tar");
    src.ok(&["save", "-o", archive.to_str().unwrap(), "busybox:latest"]);
    // A registry per copy: skopeo would otherwise reuse a layer it pushed
    // before in another compression (its blob info cache knows them).
    let mut registries = Vec::new();
    let mut copy = |args: &str, dest: &str| {
        let reg = TestRegistry::strata();
        sh_ok(&format!(
            "skopeo copy -q --dest-tls-verify=false {args} docker-archive:{} docker://{}/{dest}",
            archive.display(),
            reg.host
        ));
        let name = format!("{}/{dest}", reg.host);
        registries.push(reg);
        name
    };

    // OCI media types, zstd layers.
    let name = copy("--format oci --dest-compress-format zstd", "sk/zstd:1");
    let m = raw_manifest(&name);
    assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json", "{m}");
    assert_eq!(
        m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd",
        "{m}"
    );
    pull_and_run(&name);

    // OCI, gzip.
    let name = copy("--format oci --dest-compress-format gzip", "sk/oci-gzip:1");
    let m = raw_manifest(&name);
    assert_eq!(
        m["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip",
        "{m}"
    );
    pull_and_run(&name);

    // Docker schema 2 media types, gzip.
    let name = copy("--format v2s2", "sk/docker:1");
    let m = raw_manifest(&name);
    assert_eq!(
        m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json",
        "{m}"
    );
    assert_eq!(
        m["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "{m}"
    );
    pull_and_run(&name);

    // A two-platform index: the host's manifest and one for another
    // architecture with the same layer, in an OCI layout skopeo copies whole.
    let layout = src.path("layout");
    sh_ok(&format!(
        "skopeo copy -q --format oci docker-archive:{} oci:{}:single",
        archive.display(),
        layout.display()
    ));
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = sha256_hex(bytes);
        std::fs::write(layout.join("blobs/sha256").join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let host_desc = index["manifests"][0].clone();
    let host_manifest: Value =
        serde_json::from_slice(&std::fs::read(blob(host_desc["digest"].as_str().unwrap())).unwrap()).unwrap();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(blob(host_manifest["config"]["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let host_arch = config["architecture"].as_str().unwrap().to_string();
    let other_arch = if host_arch == "arm64" { "amd64" } else { "arm64" };
    config["architecture"] = json!(other_arch);
    let (cfg_digest, cfg_size) = put(&serde_json::to_vec(&config).unwrap());
    let mut other_manifest = host_manifest.clone();
    other_manifest["config"]["digest"] = json!(cfg_digest);
    other_manifest["config"]["size"] = json!(cfg_size);
    let (other_digest, other_size) = put(&serde_json::to_vec(&other_manifest).unwrap());
    let platform_desc = |d: &Value, arch: &str| {
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": d["digest"], "size": d["size"],
            "platform": {"os": "linux", "architecture": arch},
        })
    };
    // The other platform first: the host's must be picked, not the first.
    let inner = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            platform_desc(&json!({"digest": other_digest, "size": other_size}), other_arch),
            platform_desc(&host_desc, &host_arch),
        ],
    });
    let (inner_digest, inner_size) = put(&serde_json::to_vec(&inner).unwrap());
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": inner_digest, "size": inner_size,
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let reg = TestRegistry::strata();
    let name = format!("{}/sk/multi:1", reg.host);
    sh_ok(&format!(
        "skopeo copy -q --all --dest-tls-verify=false oci:{}:multi docker://{name}",
        layout.display()
    ));
    let m = raw_manifest(&name);
    assert_eq!(m["manifests"].as_array().map(Vec::len), Some(2), "{m}");
    let env = pull_and_run(&name);
    let arch = env.ok(&["image", "inspect", "--format", "{{.Architecture}}", &name]);
    assert_eq!(arch.trim(), host_arch);
    let digests = env.ok(&["images", "--digests", "--no-trunc", "--format", "{{.Digest}}", &name]);
    assert!(
        digests.contains(host_desc["digest"].as_str().unwrap()) || digests.contains(&inner_digest),
        "{digests}"
    );
    // Asked for the other platform, strata pulls that one (it cannot run here).
    let other = Env::new();
    other.ok(&["pull", "--platform", &format!("linux/{other_arch}"), &name]);
    let arch = other.ok(&["image", "inspect", "--format", "{{.Architecture}}", &name]);
    assert_eq!(arch.trim(), other_arch);
}
