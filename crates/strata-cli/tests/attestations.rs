//! Build attestations as BuildKit attaches them: `build --sbom=true
//! --provenance=mode=max` makes an index with an in-toto attestation
//! manifest (platform unknown/unknown, `vnd.docker.reference.*`
//! annotations) whose statements are an SPDX SBOM and a SLSA v0.2
//! provenance about the image manifest; push carries them unchanged,
//! `imagetools inspect --format '{{json .SBOM}}'` reads them, `rmi` takes
//! their blobs away.

mod common;

use common::*;
use serde_json::Value;

const SITE: &str = "/usr/lib/python3/dist-packages";

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.path("ctx");
    let info = ctx.join("six-1.16.0.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM busybox\nARG FLAVOUR=plain\nCOPY six-1.16.0.dist-info {SITE}/six-1.16.0.dist-info\n"),
    )
    .unwrap();
    ctx
}

#[test]
fn sbom_and_provenance_are_attached_pushed_inspected_and_removed() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        eprintln!("skipped: busybox-static is not installed");
        return;
    }
    let base_id = env.ok(&["inspect", "-f", "{{.Id}}", "busybox"]);
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();
    let reg = TestRegistry::strata();
    let name = format!("{}/att/app:1", reg.host);
    env.ok(&[
        "build",
        "-q",
        "--sbom=true",
        "--provenance=mode=max",
        "--build-arg",
        "FLAVOUR=mint",
        "--push",
        "-t",
        &name,
        ctx,
    ]);

    // The registry's index: the image, then its attestation manifest.
    let raw = env.ok(&["buildx", "imagetools", "inspect", "--raw", &name]);
    let index = json(&raw);
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json", "{raw}");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{raw}");
    let image = &entries[0];
    let att = &entries[1];
    assert_eq!(image["platform"]["os"], "linux", "{raw}");
    assert_eq!(att["platform"]["os"], "unknown", "{raw}");
    assert_eq!(att["platform"]["architecture"], "unknown", "{raw}");
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"], "attestation-manifest",
        "{raw}"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"], image["digest"],
        "{raw}"
    );
    let image_digest = image["digest"].as_str().unwrap().to_string();

    // The attestation manifest: a minimal config, one in-toto layer per statement.
    let att_ref = format!("{}/att/app@{}", reg.host, att["digest"].as_str().unwrap());
    let am = json(&env.ok(&["buildx", "imagetools", "inspect", "--raw", &att_ref]));
    assert_eq!(
        am["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{am}"
    );
    let types: Vec<&str> = am["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], "application/vnd.in-toto+json", "{am}");
            l["annotations"]["in-toto.io/predicate-type"].as_str().unwrap()
        })
        .collect();
    assert_eq!(types, ["https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"]);

    // The SBOM as buildx prints it: {"SPDX": document}, listing the package.
    let sbom = json(&env.ok(&["buildx", "imagetools", "inspect", "--format", "{{json .SBOM}}", &name]));
    let spdx = &sbom["SPDX"];
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3", "{sbom}");
    let six = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "six")
        .unwrap_or_else(|| panic!("no six in {sbom}"));
    assert_eq!(six["versionInfo"], "1.16.0");

    // The provenance: materials name the base by digest, max mode has the build args and the Dockerfile.
    let prov = json(&env.ok(&[
        "buildx",
        "imagetools",
        "inspect",
        "--format",
        "{{json .Provenance}}",
        &name,
    ]));
    let slsa = &prov["SLSA"];
    assert_eq!(slsa["buildType"], "https://mobyproject.org/buildkit@v1", "{prov}");
    let materials = slsa["materials"].as_array().unwrap();
    assert_eq!(materials.len(), 1, "{prov}");
    assert!(
        materials[0]["uri"]
            .as_str()
            .unwrap()
            .starts_with("pkg:docker/busybox@latest?platform=linux%2F"),
        "{prov}"
    );
    // The base's manifest, by its digest.
    let base = materials[0]["digest"]["sha256"].as_str().unwrap();
    let base_manifest = json(&std::fs::read_to_string(env.root().join("blobs/sha256").join(base)).unwrap());
    assert_eq!(
        base_manifest["config"]["digest"].as_str(),
        Some(base_id.trim()),
        "{prov}"
    );
    assert_eq!(
        slsa["invocation"]["parameters"]["args"]["build-arg:FLAVOUR"], "mint",
        "{prov}"
    );
    assert_eq!(slsa["invocation"]["configSource"]["entryPoint"], "Dockerfile", "{prov}");
    let source = &slsa["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["source"]["infos"][0];
    assert_eq!(source["filename"], "Dockerfile", "{prov}");
    let steps = slsa["buildConfig"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["created_by"]
            .as_str()
            .unwrap()
            .starts_with("COPY six-1.16.0.dist-info")),
        "{prov}"
    );
    let layers = slsa["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["layers"]
        .as_object()
        .unwrap();
    assert!(!layers.is_empty(), "{prov}");

    // Each statement is about the image manifest.
    let st = json(&env.ok(&[
        "buildx",
        "imagetools",
        "inspect",
        "--format",
        "{{json .Manifest}}",
        &name,
    ]));
    assert_eq!(st, index);
    let subject_of = |kind: &str| -> Vec<String> {
        // The statement as stored in the registry, through the SBOM/provenance
        // predicates' subjects: read the layer with skopeo-free means.
        let layer = am["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["annotations"]["in-toto.io/predicate-type"] == kind)
            .unwrap();
        let path = reg
            .storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&layer["digest"].as_str().unwrap()[7..9])
            .join(&layer["digest"].as_str().unwrap()[7..])
            .join("data");
        let st = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice::<Value>(&b).unwrap(),
            // Another storage layout: the local store holds the same blob.
            Err(_) => json(&sh_ok(&format!(
                "cat {}/blobs/sha256/{}",
                shell_quote(env.root().to_str().unwrap()),
                &layer["digest"].as_str().unwrap()[7..]
            ))),
        };
        assert_eq!(st["_type"], "https://in-toto.io/Statement/v0.1");
        st["subject"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{} {}",
                    s["name"].as_str().unwrap(),
                    s["digest"]["sha256"].as_str().unwrap()
                )
            })
            .collect()
    };
    for kind in ["https://spdx.dev/Document", "https://slsa.dev/provenance/v0.2"] {
        let subjects = subject_of(kind);
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert!(
            subjects[0].starts_with(&format!(
                "pkg:docker/{}/att/app@1?platform=linux%2F",
                reg.host.replace(':', "%3A")
            )),
            "{subjects:?}"
        );
        assert!(subjects[0].ends_with(&image_digest[7..]), "{subjects:?}");
    }

    // A push again serves the same index; skopeo reads it as it is.
    let pushed = env.ok(&["push", &name]);
    let index_digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    assert!(pushed.contains(&index_digest), "{pushed}");
    assert_eq!(env.ok(&["buildx", "imagetools", "inspect", "--raw", &name]), raw);
    if have("skopeo") {
        let (skopeo_raw, v) = raw_manifest_bytes(&name);
        assert_eq!(skopeo_raw.trim(), raw.trim());
        assert_eq!(
            v["manifests"][1]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
    }

    // The store keeps the attestation blobs with the image; rmi takes them away.
    env.ok(&["system", "check"]);
    let att_blob = env
        .root()
        .join("blobs/sha256")
        .join(&att["digest"].as_str().unwrap()[7..]);
    assert!(att_blob.is_file());
    env.ok(&["rmi", &name]);
    assert!(!att_blob.exists(), "the attestation manifest outlived its image");
    env.ok(&["system", "check"]);
}

#[test]
fn attestations_stay_off_unless_asked_and_bad_values_are_refused() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        eprintln!("skipped: busybox-static is not installed");
        return;
    }
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();
    env.ok(&["build", "-q", "-t", "plain:1", ctx]);
    let inspect = json(&env.ok(&["inspect", "plain:1"]));
    assert!(inspect[0]["Id"].as_str().unwrap().starts_with("sha256:"));
    let err = env.fails(&["build", "-q", "--provenance=mode=huge", ctx]);
    assert!(err.contains("--provenance"), "{err}");
    let err = env.fails(&["build", "-q", "--attest", "type=vex", ctx]);
    assert!(err.contains("--attest"), "{err}");

    // One platform with --attest: an index whose name resolves to the image; save carries the attestation.
    env.ok(&["build", "-q", "--attest", "type=sbom", "-t", "att:1", ctx]);
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            "att:1",
            "cat",
            &format!("{SITE}/six-1.16.0.dist-info/METADATA")
        ])
        .lines()
        .nth(1),
        Some("Name: six")
    );
    let tree = env.ok(&["images", "--tree", "att"]);
    assert!(tree.contains("└─ linux/") && !tree.contains("unknown"), "{tree}");
    let oci = env.path("att.tar");
    env.ok(&["save", "--format", "oci-archive", "-o", oci.to_str().unwrap(), "att:1"]);
    let listing = sh_ok(&format!("tar -xOf {} index.json", shell_quote(oci.to_str().unwrap())));
    let top = json(&listing);
    let index_digest = top["manifests"][0]["digest"].as_str().unwrap();
    let index = json(&sh_ok(&format!(
        "tar -xOf {} blobs/sha256/{}",
        shell_quote(oci.to_str().unwrap()),
        &index_digest[7..]
    )));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    assert_eq!(
        entries[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    env.ok(&["system", "check"]);
    // image prune -a takes every image, and the attestations with them.
    env.ok(&["image", "prune", "-a", "-f"]);
    let left: Vec<_> = std::fs::read_dir(env.root().join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.ok(&["system", "check"]);
}

#[test]
fn scan_reads_the_attached_sbom() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        eprintln!("skipped: busybox-static is not installed");
        return;
    }
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();
    env.ok(&["build", "-q", "--sbom=true", "-t", "att:1", ctx]);
    // six before 1.17.0 is affected.
    let osv = env.path("osv");
    std::fs::create_dir_all(&osv).unwrap();
    std::fs::write(
        osv.join("PYSEC-2099-1.json"),
        r#"{"id":"PYSEC-2099-1","modified":"2024-05-01T00:00:00Z","published":"2024-04-01T00:00:00Z","summary":"test","affected":[{"package":{"ecosystem":"PyPI","name":"six"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.17.0"}]}]}]}"#,
    )
    .unwrap();
    env.ok(&["scan", "db", "import", osv.to_str().unwrap()]);
    let ids = |image: &str| -> Vec<String> {
        let doc = json(&env.ok(&["scan", "image", "-q", "--format", "json", image]));
        doc["Results"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["Vulnerabilities"].as_array().cloned().unwrap_or_default())
            .map(|v| {
                format!(
                    "{} {}",
                    v["VulnerabilityID"].as_str().unwrap(),
                    v["InstalledVersion"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(ids("att:1"), ["PYSEC-2099-1 1.16.0"]);

    // The attached SBOM is what scan reads: with every layer blob gone (as
    // only a test may do), the image cannot be catalogued, yet scans the same.
    let blobs = env.root().join("blobs/sha256");
    let inspect = json(&env.ok(&["inspect", "att:1"]));
    let mut gone = 0;
    for d in inspect[0]["RootFS"]["Layers"].as_array().unwrap() {
        gone += std::fs::remove_file(blobs.join(&d.as_str().unwrap()[7..])).is_ok() as usize;
    }
    for e in std::fs::read_dir(&blobs).unwrap() {
        let path = e.unwrap().path();
        let head = std::fs::read(&path).unwrap_or_default();
        // gzip forms (made for the index's manifest).
        if head.starts_with(&[0x1f, 0x8b]) {
            std::fs::remove_file(&path).unwrap();
            gone += 1;
        }
    }
    assert!(gone >= 2, "{gone}");
    env.fails(&["sbom", "att:1"]);
    assert_eq!(ids("att:1"), ["PYSEC-2099-1 1.16.0"]);
}

#[test]
fn a_multi_platform_build_attests_each_platform() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: written for an x86_64 host (linux/386 beside linux/amd64)");
        return;
    }
    let env = Env::new();
    let ctx = env.path("scratch-ctx");
    let info = ctx.join("six-1.16.0.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(
        info.join("METADATA"),
        "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\n",
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM scratch\nARG FLAVOUR=plain\nCOPY six-1.16.0.dist-info {SITE}/six-1.16.0.dist-info\n"),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let reg = TestRegistry::strata();
    let name = format!("{}/att/multi:1", reg.host);
    let o = env.run(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/386",
        "--attest",
        "type=sbom",
        "--provenance=true",
        "--build-arg",
        "FLAVOUR=mint",
        "--push",
        "-t",
        &name,
        ctx,
    ]);
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("linux/386"), "{err}");
        eprintln!("skipped: this kernel does not run linux/386 programs");
        return;
    }
    let index = json(&env.ok(&["buildx", "imagetools", "inspect", "--raw", &name]));
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{index}");
    for i in 0..2 {
        let att = &entries[2 + i];
        assert_eq!(
            att["annotations"]["vnd.docker.reference.digest"], entries[i]["digest"],
            "{index}"
        );
        assert_eq!(att["platform"]["os"], "unknown", "{index}");
    }
    // By platform, as buildx prints a multi-platform image's.
    let sbom = json(&env.ok(&["buildx", "imagetools", "inspect", "--format", "{{json .SBOM}}", &name]));
    let keys: Vec<&String> = sbom.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["linux/386", "linux/amd64"], "{sbom}");
    for k in keys {
        let pkgs = sbom[k]["SPDX"]["packages"].as_array().unwrap();
        assert!(pkgs.iter().any(|p| p["name"] == "six"), "{sbom}");
    }
    // mode=min: no build args, materials complete for nothing (FROM scratch has none).
    let prov = json(&env.ok(&[
        "buildx",
        "imagetools",
        "inspect",
        "--format",
        "{{json .Provenance}}",
        &name,
    ]));
    let slsa = &prov["linux/386"]["SLSA"];
    assert_eq!(slsa["materials"], serde_json::json!([]), "{prov}");
    assert!(
        slsa["invocation"]["parameters"]["args"]
            .get("build-arg:FLAVOUR")
            .is_none(),
        "{prov}"
    );
    assert_eq!(slsa["metadata"]["completeness"]["parameters"], false, "{prov}");
    assert!(slsa.get("buildConfig").is_none(), "{prov}");
    env.ok(&["system", "check"]);
}

#[test]
fn a_rebuild_leaves_no_attestation_behind() {
    let env = Env::new();
    if env.import_busybox().is_none() {
        eprintln!("skipped: busybox-static is not installed");
        return;
    }
    let ctx = context(&env);
    let ctx = ctx.to_str().unwrap();
    let blobs = || std::fs::read_dir(env.root().join("blobs/sha256")).unwrap().count();
    env.ok(&[
        "build",
        "-q",
        "--sbom=true",
        "--provenance=mode=max",
        "-t",
        "again:1",
        ctx,
    ]);
    let first = blobs();
    // The provenance's times differ: a new index and attestation, the old ones forgotten.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&[
        "build",
        "-q",
        "--sbom=true",
        "--provenance=mode=max",
        "-t",
        "again:1",
        ctx,
    ]);
    assert_eq!(blobs(), first);
    env.ok(&["system", "check"]);
    // A plain build under the name leaves the attested index too.
    env.ok(&["build", "-q", "-t", "again:1", ctx]);
    env.ok(&["system", "check"]);
    env.ok(&["rmi", "again:1"]);
    env.ok(&["system", "check"]);
}
