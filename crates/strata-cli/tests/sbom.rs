//! `strata sbom`: images built offline on the imported busybox rootfs with
//! a dpkg status file, a Python dist-info, npm packages (one deleted by a
//! later step); the packages listed with their layer and Dockerfile step,
//! the SPDX and CycloneDX documents checked by the official validators, and
//! the same SBOM read from a registry into an empty store (which stays empty).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

const STATUS: &str = "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n\n\
Package: removed-pkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n";

const OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n";

const SITE: &str = "/usr/lib/python3/dist-packages";

/// Builds `sbom:1` on busybox: 0 busybox, 1 dpkg status, 2 os-release, 3 a
/// Python package, 4 two npm packages, 5 one of them deleted.
fn build(env: &Env) -> Option<()> {
    env.import_busybox()?;
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("node_modules/left-pad")).unwrap();
    std::fs::create_dir_all(ctx.join("node_modules/lodash")).unwrap();
    std::fs::write(ctx.join("status"), STATUS).unwrap();
    std::fs::write(ctx.join("os-release"), OS_RELEASE).unwrap();
    std::fs::write(
        ctx.join("node_modules/left-pad/package.json"),
        r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("node_modules/lodash/package.json"),
        r#"{"name":"lodash","version":"4.17.21","license":"MIT"}"#,
    )
    .unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM busybox\n\
             COPY status /var/lib/dpkg/status\n\
             COPY os-release /etc/os-release\n\
             ENV SITE={SITE}\n\
             RUN mkdir -p $SITE/six-1.16.0.dist-info && printf 'Metadata-Version: 2.1\\nName: six\\nVersion: 1.16.0\\nLicense: MIT\\n' > $SITE/six-1.16.0.dist-info/METADATA\n\
             COPY node_modules /app/node_modules\n\
             RUN rm -rf /app/node_modules/left-pad\n"
        ),
    )
    .unwrap();
    env.ok(&["build", "-q", "-t", "sbom:1", ctx.to_str().unwrap()]);
    Some(())
}

/// (name, version, type, layer, createdBy) of each package, sorted.
fn packages(doc: &Value) -> Vec<(String, String, String, u64, String)> {
    let mut v: Vec<_> = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["version"].as_str().unwrap().to_string(),
                p["type"].as_str().unwrap().to_string(),
                p["layer"].as_u64().unwrap(),
                p["createdBy"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn check_packages(doc: &Value) {
    let pkgs = packages(doc);
    let names: Vec<(&str, &str, &str, u64)> = pkgs
        .iter()
        .map(|(n, v, t, l, _)| (n.as_str(), v.as_str(), t.as_str(), *l))
        .collect();
    assert_eq!(
        names,
        vec![
            ("base-files", "12.4+deb12u5", "deb", 1),
            ("libc6", "2.36-9+deb12u4", "deb", 1),
            ("lodash", "4.17.21", "npm", 4),
            ("six", "1.16.0", "python", 3),
        ],
        "{doc:#}"
    );
    let step = |name: &str| pkgs.iter().find(|p| p.0 == name).unwrap().4.clone();
    assert!(
        step("libc6").contains("COPY") && step("libc6").contains("/var/lib/dpkg/status"),
        "{}",
        step("libc6")
    );
    assert!(step("six").contains("six-1.16.0.dist-info"), "{}", step("six"));
    assert!(
        step("lodash").contains("COPY") && step("lodash").contains("node_modules"),
        "{}",
        step("lodash")
    );
    assert_eq!(doc["distro"]["id"], "debian");
    assert_eq!(doc["layers"].as_array().unwrap().len(), 6);
    let libc = doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "libc6")
        .unwrap();
    assert_eq!(
        libc["purl"],
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc"
    );
    assert_eq!(libc["source"]["name"], "glibc");
}

#[test]
fn sbom_lists_each_package_with_its_layer_and_step() {
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    let doc: Value = serde_json::from_str(&env.ok(&["sbom", "--format", "json", "sbom:1"])).unwrap();
    check_packages(&doc);
    assert_eq!(doc["image"]["name"], "sbom:1");
    let id = env.ok(&["inspect", "--format", "{{.Id}}", "sbom:1"]);
    assert_eq!(doc["image"]["id"], id.trim());
    // syft-json is the same document; by ID too.
    let short = &id.trim()["sha256:".len()..][..12];
    let by_id: Value = serde_json::from_str(&env.ok(&["sbom", "--format", "syft-json", short])).unwrap();
    assert_eq!(packages(&by_id), packages(&doc));

    // The table: one row per package, the deleted npm package absent.
    let table = env.ok(&["sbom", "sbom:1"]);
    assert!(table.starts_with("NAME"), "{table}");
    for p in ["base-files", "libc6", "lodash", "six"] {
        assert!(table.contains(p), "{p} in\n{table}");
    }
    assert!(!table.contains("left-pad"), "{table}");
    assert!(!table.contains("removed-pkg"), "{table}");

    // -o writes the file, nothing on stdout.
    let out = env.path("sbom.spdx.json");
    let printed = env.ok(&["sbom", "--format", "spdx-json", "-o", out.to_str().unwrap(), "sbom:1"]);
    assert!(printed.is_empty(), "{printed}");
    let spdx: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(spdx["spdxVersion"], "SPDX-2.3");

    let err = env.fails(&["sbom", "--format", "xml", "sbom:1"]);
    assert!(err.contains("unknown format \"xml\""), "{err}");
    let err = env.fails(&[
        "sbom",
        "--format",
        "json",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ]);
    assert!(err.contains("No such image") || err.contains("no such image"), "{err}");
}

const VENV: &str = "/opt/strata-deps/sbom-validators";

fn validator(name: &str) -> Option<PathBuf> {
    let p = Path::new(VENV).join("bin").join(name);
    if !p.is_file() {
        eprintln!(
            "skipped: {} not found (scripts/deps.d/sbom-tools.sh installs the SBOM validators)",
            p.display()
        );
        return None;
    }
    Some(p)
}

#[test]
fn spdx_and_cyclonedx_of_a_built_image_pass_the_validators() {
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    let spdx = env.path("image.spdx.json");
    let cdx = env.path("image.cdx.json");
    env.ok(&["sbom", "--format", "spdx-json", "-o", spdx.to_str().unwrap(), "sbom:1"]);
    env.ok(&[
        "sbom",
        "--format",
        "cyclonedx-json",
        "-o",
        cdx.to_str().unwrap(),
        "sbom:1",
    ]);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&cdx).unwrap()).unwrap();
    let mut names: Vec<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["base-files", "libc6", "lodash", "six"], "{doc:#}");
    if let Some(tool) = validator("pyspdxtools") {
        let out = Command::new(tool).arg("-i").arg(&spdx).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && !text.contains("ERROR"), "pyspdxtools:\n{text}");
    }
    if let Some(python) = validator("python") {
        let script = "import sys\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
print(repr(err) if err else 'valid')\n\
sys.exit(1 if err else 0)\n";
        let out = Command::new(python).arg("-c").arg(script).arg(&cdx).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "CycloneDX validator:\n{text}");
    }
}

#[test]
fn a_registry_image_is_read_remotely_and_nothing_is_stored() {
    let env = Env::new();
    let Some(()) = build(&env) else { return };
    let local: Value = serde_json::from_str(&env.ok(&["sbom", "--format", "json", "sbom:1"])).unwrap();
    let registry = TestRegistry::strata();
    let remote_ref = format!("{}/sbom/app:1", registry.host);
    env.ok(&["tag", "sbom:1", &remote_ref]);
    env.ok(&["push", "-q", &remote_ref]);

    let fresh = Env::new();
    let doc: Value = serde_json::from_str(&fresh.ok(&["sbom", "--format", "json", &remote_ref])).unwrap();
    check_packages(&doc);
    assert_eq!(packages(&doc), packages(&local));
    assert_eq!(doc["image"]["id"], local["image"]["id"]);
    assert_eq!(doc["layers"], local["layers"]);
    assert!(doc["image"]["manifestDigest"].as_str().unwrap().starts_with("sha256:"));
    // Nothing was stored: no image, no blob.
    assert_eq!(fresh.ok(&["images", "-q"]).trim(), "");
    let blobs = fresh.root().join("blobs/sha256");
    let held = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(held, 0, "blobs left in {}", blobs.display());

    // A reference that is neither stored nor in the registry.
    let err = fresh.fails(&["sbom", &format!("{}/sbom/absent:1", registry.host)]);
    assert!(err.contains("not in the store"), "{err}");
}
