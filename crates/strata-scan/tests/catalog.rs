//! End to end from layer tars: strata-sbom catalogues layers built here
//! (Debian's os-release and dpkg status with `Source:` fields, a Python
//! dist-info, npm packages), and the scan matches what it found — the
//! cataloguers' spellings, locations and source packages as they are.

mod support;

use std::io::Cursor;

use serde_json::json;
use strata_sbom::{LayerInput, Options, catalog};
use strata_scan::{ScanOptions, scan};
use support::*;

fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, path, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap()
}

const STATUS: &str = "Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n\
Source: openssl\nVersion: 3.0.11-1~deb12u2\n\n\
Package: cpp\nStatus: install ok installed\nArchitecture: amd64\n\
Source: gcc-defaults (1.205)\nVersion: 4:12.2.0-3\n\n\
Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n";

#[test]
fn catalogued_layers_are_matched() {
    let rec = |id: &str, eco: &str, name: &str, fixed: &str| {
        json!({
            "id": id, "modified": "2024-01-01T00:00:00Z",
            "affected": [{ "package": { "ecosystem": eco, "name": name },
                           "ranges": [{ "type": "ECOSYSTEM", "events": [{ "introduced": "0" }, { "fixed": fixed }] }] }]
        })
    };
    let (_tmp, db) = records_db(&[
        rec("DEBIAN-CVE-2024-0001", "Debian:12", "openssl", "3.0.13-1~deb12u1"),
        rec("DEBIAN-CVE-2024-0005", "Debian:12", "gcc-defaults", "1.206"),
        rec("DEBIAN-CVE-2024-0009", "Debian:12", "bash", "5.2.15-2"),
        rec("PYSEC-2018-28", "PyPI", "requests", "2.20.0"),
        rec("GHSA-35jh-r3h4-6jhm", "npm", "lodash", "4.17.21"),
    ]);
    let base = layer(&[
        (
            "etc/os-release",
            "ID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n",
        ),
        ("var/lib/dpkg/status", STATUS),
    ]);
    let app = layer(&[
        (
            "usr/local/lib/python3.11/site-packages/requests-2.19.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\n",
        ),
        (
            "app/node_modules/lodash/package.json",
            r#"{"name":"lodash","version":"4.17.11"}"#,
        ),
    ]);
    let inputs: Vec<LayerInput<Cursor<Vec<u8>>>> = [(base, "ADD rootfs /"), (app, "RUN pip install && npm ci")]
        .into_iter()
        .enumerate()
        .map(|(i, (bytes, step))| LayerInput {
            reader: Cursor::new(bytes),
            digest: Some(format!("sha256:{:064x}", i + 1)),
            created_by: Some(step.into()),
        })
        .collect();
    let mut opts = Options {
        created: Some(0),
        ..Options::default()
    };
    opts.image.name = "app:1".into();
    let sbom = catalog(inputs, &opts).unwrap();
    let r = scan(
        &db,
        &sbom,
        &ScanOptions {
            base_layers: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<(&str, &str, &str, bool, Option<&str>)> = r
        .findings
        .iter()
        .map(|f| {
            (
                f.id.as_str(),
                f.package.name.as_str(),
                f.target.as_str(),
                f.in_base_image,
                f.created_by.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2024-0005", "cpp", "app:1 (debian 12)", true, Some("ADD rootfs /")),
            (
                "CVE-2024-0001",
                "libssl3",
                "app:1 (debian 12)",
                true,
                Some("ADD rootfs /")
            ),
            (
                "GHSA-35jh-r3h4-6jhm",
                "lodash",
                "Node.js",
                false,
                Some("RUN pip install && npm ci")
            ),
            (
                "PYSEC-2018-28",
                "requests",
                "Python",
                false,
                Some("RUN pip install && npm ci")
            ),
        ],
        "bash 5.2.15-2+b2 is above its fix 5.2.15-2: not reported"
    );
    assert_eq!(r.findings[0].package.osv_version, "1.205");
    assert_eq!(
        r.findings[0].layer_digest.as_deref(),
        Some(format!("sha256:{:064x}", 1).as_str())
    );
    assert_eq!(
        r.findings[3].package.location.as_deref(),
        Some("/usr/local/lib/python3.11/site-packages/requests-2.19.0.dist-info/METADATA")
    );
    assert!(r.notes.is_empty(), "{:?}", r.notes);
}
