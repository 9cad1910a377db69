//! The SPDX and CycloneDX documents pass the official validators:
//! spdx-tools' `pyspdxtools -i FILE` and cyclonedx-python-lib's strict JSON
//! validator for CycloneDX 1.5 (installed in a venv by
//! scripts/deps.d/sbom-tools.sh; skipped with a reason when absent).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

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

/// Many ecosystems, licenses in every shape (all the machine's Debian
/// copyright files when there are any), awkward names.
fn rich_sbom() -> strata_sbom::Sbom {
    let mut l0 = Layer::new("/bin/sh -c #(nop) ADD file:abc in /").file("etc/os-release", DEBIAN_OS_RELEASE);
    match std::fs::read("/var/lib/dpkg/status") {
        Ok(status) => {
            l0 = l0.file("var/lib/dpkg/status", status);
            if let Ok(dirs) = std::fs::read_dir("/usr/share/doc") {
                for d in dirs.flatten() {
                    let c = d.path().join("copyright");
                    if let (Ok(data), Some(name)) = (std::fs::read(&c), d.file_name().to_str()) {
                        l0 = l0.file(&format!("usr/share/doc/{name}/copyright"), data);
                    }
                }
            }
        }
        Err(_) => {
            l0 = l0.file(
                "var/lib/dpkg/status",
                "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n\
Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u4\n",
            )
        }
    }
    l0 = l0.file(
        "usr/share/doc/bash/copyright",
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-3+\n\n\
Files: x\nLicense: GPL-2+ or Artistic\n\nFiles: y\nLicense: public-domain\n\nFiles: z\nLicense: BSD-3-clause and \
(MIT or Expat)\n",
    );
    let sp = "usr/local/lib/python3.11/site-packages";
    let l1 = Layer::new("RUN pip install requests Flask_SQLAlchemy weird && npm ci")
        .file(&format!("{sp}/requests-2.31.0.dist-info/METADATA"), "Name: requests\nVersion: 2.31.0\nLicense: Apache 2.0\n")
        .file(
            &format!("{sp}/Flask_SQLAlchemy-3.0.5.dist-info/METADATA"),
            "Name: Flask-SQLAlchemy\nVersion: 3.0.5\nClassifier: License :: OSI Approved :: BSD License\n",
        )
        .file(
            &format!("{sp}/weird-1.0.dist-info/METADATA"),
            "Name: weird\nVersion: 1.0+local.7\nLicense-Expression: (MIT OR Apache-2.0) AND BSD-2-Clause\n",
        )
        .file("app/node_modules/@scope/pkg/package.json", r#"{"name":"@scope/pkg","version":"1.0.0-beta.1","license":"(MIT OR Apache-2.0)"}"#)
        .file("app/node_modules/odd/package.json", r#"{"name":"odd","version":"0.0.1","license":"SEE LICENSE IN LICENSE.txt"}"#)
        .file("app/node_modules/multi/package.json", r#"{"name":"multi","version":"2.0.0","licenses":[{"type":"MIT"},{"type":"GPL-2.0"}]}"#)
        .file("app/Cargo.lock", "[[package]]\nname = \"serde\"\nversion = \"1.0.190\"\n")
        .file("usr/lib/ruby/gems/3.2.0/specifications/rake-13.0.6.gemspec", "s.name = \"rake\"\ns.version = \"13.0.6\"\ns.licenses = [\"MIT\"]\n")
        .file(
            "lib/apk/db/installed",
            "P:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\nP:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only WITH Linux-syscall-note\n\n",
        );
    let image = strata_sbom::ImageInfo {
        name: "example.com/team/app:1.0".into(),
        id: Some(format!("sha256:{}", "ab".repeat(32))),
        manifest_digest: Some(format!("sha256:{}", "cd".repeat(32))),
        platform: Some("linux/amd64".into()),
    };
    let sbom = run_with(vec![l0, l1], &strata_sbom::Options { image, ..opts() });
    assert!(sbom.packages.len() > 12, "{}", sbom.packages.len());
    sbom
}

#[test]
fn spdx_document_passes_pyspdxtools() {
    let Some(tool) = validator("pyspdxtools") else { return };
    let dir = tempfile::tempdir().unwrap();
    let sbom = rich_sbom();
    let file = dir.path().join("image.spdx.json");
    std::fs::write(&file, sbom.to_spdx_json()).unwrap();
    let out = Command::new(tool).arg("-i").arg(&file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && !text.contains("ERROR"), "pyspdxtools:\n{text}");
    eprintln!("pyspdxtools on {} packages: {}", sbom.packages.len(), text.trim());
    let doc: serde_json::Value = serde_json::from_str(&sbom.to_spdx_json()).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["packages"].as_array().unwrap().len(), sbom.packages.len() + 1);
}

#[test]
fn cyclonedx_document_passes_the_strict_schema_validator() {
    let Some(python) = validator("python") else { return };
    let dir = tempfile::tempdir().unwrap();
    let sbom = rich_sbom();
    let file = dir.path().join("image.cdx.json");
    std::fs::write(&file, sbom.to_cyclonedx_json()).unwrap();
    let script = "import sys\n\
from cyclonedx.validation.json import JsonStrictValidator\n\
from cyclonedx.schema import SchemaVersion\n\
err = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
print(repr(err) if err else 'valid')\n\
sys.exit(1 if err else 0)\n";
    let out = Command::new(python).arg("-c").arg(script).arg(&file).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "CycloneDX validator:\n{text}");
    eprintln!(
        "CycloneDX 1.5 strict validator on {} packages: {}",
        sbom.packages.len(),
        text.trim()
    );
    let doc: serde_json::Value = serde_json::from_str(&sbom.to_cyclonedx_json()).unwrap();
    let bash = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "bash")
        .unwrap();
    let props = bash["properties"].as_array().unwrap();
    assert!(
        props
            .iter()
            .any(|p| p["name"] == "strata:layer:digest" && p["value"] == digest(0).as_str())
    );
    assert!(props.iter().any(|p| p["name"] == "strata:layer:createdBy"));
}

#[test]
fn strata_json_has_every_field() {
    let sbom = rich_sbom();
    let v: serde_json::Value = serde_json::from_str(&sbom.to_json()).unwrap();
    assert_eq!(v["created"], "2023-11-14T22:13:20Z");
    assert_eq!(v["distro"]["id"], "debian");
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    let bash = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bash")
        .unwrap();
    for k in [
        "name",
        "version",
        "type",
        "purl",
        "licenses",
        "locations",
        "layer",
        "layerDigest",
        "createdBy",
        "source",
    ] {
        assert!(!bash[k].is_null(), "{k} in {bash}");
    }
}
