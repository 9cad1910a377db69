//! Shared by the integration tests: the OSV fixture, databases built from it
//! or from records written in the test, SBOMs built by hand, and an
//! evaluator of OSV records written independently of strata-vulndb's.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strata_sbom::{Distro, ImageInfo, LayerInfo, Package, PackageType, Sbom, SourcePackage};
use strata_vercmp::Scheme;
use strata_vulndb::Db;

/// `../shared/vulndb` beside the project root, or None (the test then prints
/// `skipped: …` and passes).
pub fn fixture() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vulndb");
    if dir.join("PyPI.zip").is_file() {
        Some(dir.canonicalize().unwrap())
    } else {
        println!("skipped: ../shared/vulndb absent");
        None
    }
}

/// A database in a temporary directory holding the given fixture zips.
pub fn fixture_db(zips: &[&str]) -> Option<(tempfile::TempDir, Db)> {
    let dir = fixture()?;
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    let paths: Vec<PathBuf> = zips.iter().map(|z| dir.join(z)).collect();
    db.import(&paths, &mut |_| {}).unwrap();
    Some((tmp, db))
}

/// A database of OSV records written as JSON files into a temporary
/// directory and imported from there.
pub fn records_db(records: &[Value]) -> (tempfile::TempDir, Db) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("records");
    std::fs::create_dir_all(&src).unwrap();
    for r in records {
        let id = r["id"].as_str().unwrap();
        std::fs::write(src.join(format!("{id}.json")), serde_json::to_vec_pretty(r).unwrap()).unwrap();
    }
    let mut db = Db::open(&tmp.path().join("store")).unwrap();
    let report = db.import(&[src], &mut |_| {}).unwrap();
    assert_eq!(report.records as usize, records.len(), "every test record imports");
    (tmp, db)
}

/// Every record of a fixture zip, parsed.
pub fn zip_records(name: &str) -> Vec<Value> {
    let path = fixture().unwrap().join(name);
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        out.push(serde_json::from_str(&s).unwrap());
    }
    out
}

/// A package as a cataloguer would report it.
pub fn pkg(kind: PackageType, name: &str, version: &str, location: &str, layer: usize) -> Package {
    let ty = match kind {
        PackageType::Python => "pypi",
        PackageType::Npm => "npm",
        PackageType::Cargo => "cargo",
        PackageType::GoModule => "golang",
        PackageType::JavaArchive => "maven",
        PackageType::Gem => "gem",
        PackageType::Deb => "deb/debian",
        PackageType::Apk => "apk/alpine",
        PackageType::Rpm => "rpm/redhat",
    };
    Package {
        name: name.into(),
        version: version.into(),
        kind,
        purl: format!("pkg:{ty}/{}@{version}", name.to_lowercase()),
        licenses: Vec::new(),
        locations: vec![location.into()],
        layer,
        layer_digest: Some(format!("sha256:{:064x}", layer + 1)),
        created_by: Some(format!("RUN step {layer}")),
        arch: None,
        source: None,
        metadata: BTreeMap::new(),
    }
}

/// A dpkg package built from `source` at `source_version`.
pub fn deb(name: &str, version: &str, source: &str, source_version: &str, layer: usize) -> Package {
    let mut p = pkg(PackageType::Deb, name, version, "/var/lib/dpkg/status", layer);
    p.source = Some(SourcePackage {
        name: source.into(),
        version: source_version.into(),
    });
    p
}

pub fn distro(id: &str, version: Option<&str>) -> Distro {
    Distro {
        id: id.into(),
        version_id: version.map(str::to_string),
        version_codename: None,
        pretty_name: None,
        id_like: Vec::new(),
    }
}

/// An SBOM of `packages` in an image of `layers` layers.
pub fn sbom(name: &str, distro: Option<Distro>, layers: usize, mut packages: Vec<Package>) -> Sbom {
    packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    Sbom {
        image: ImageInfo {
            name: name.into(),
            id: Some(format!("sha256:{}", "ab".repeat(32))),
            manifest_digest: None,
            platform: Some("linux/amd64".into()),
        },
        distro,
        layers: (0..layers)
            .map(|i| LayerInfo {
                index: i,
                digest: Some(format!("sha256:{:064x}", i + 1)),
                created_by: Some(format!("RUN step {i}")),
                entries: 1,
                size: 100,
            })
            .collect(),
        packages,
        warnings: Vec::new(),
        created: 0,
        reproducible: true,
    }
}

/// PEP 503 normalization, written here again.
pub fn pep503(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// What the independent evaluator expects of one record for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub record: String,
    /// Trivy's vulnerability IDs of the record (its CVEs, else its ID).
    pub ids: Vec<String>,
    /// Trivy's FixedVersion: every fixed event, record order, no repeats.
    pub fixed_version: String,
}

fn cmp(scheme: Scheme, a: &str, b: &str) -> Option<std::cmp::Ordering> {
    strata_vercmp::compare(scheme, a, b).ok()
}

/// Whether `version` is in one range, read as the records are written: each
/// `introduced` opens an interval that the next `fixed` (exclusive) or
/// `last_affected` (inclusive) closes, in record order.
fn in_range(events: &[Value], version: &str, scheme: Scheme) -> bool {
    use std::cmp::Ordering::*;
    let mut start: Option<&str> = None;
    // (start, end and whether the end is included)
    type Interval<'a> = (Option<&'a str>, Option<(&'a str, bool)>);
    let mut intervals: Vec<Interval<'_>> = Vec::new();
    let mut open = false;
    for e in events {
        if let Some(i) = e["introduced"].as_str() {
            if open {
                intervals.push((start, None));
            }
            start = Some(i);
            open = true;
        } else if let Some(f) = e["fixed"].as_str() {
            intervals.push((start, Some((f, false))));
            open = false;
        } else if let Some(l) = e["last_affected"].as_str() {
            intervals.push((start, Some((l, true))));
            open = false;
        }
    }
    if open {
        intervals.push((start, None));
    }
    intervals.iter().any(|(lo, hi)| {
        let above = match lo {
            None | Some("0") => true,
            Some(lo) => matches!(cmp(scheme, version, lo), Some(Greater | Equal)),
        };
        let below = match hi {
            None => true,
            Some((h, false)) => cmp(scheme, version, h) == Some(Less),
            Some((h, true)) => matches!(cmp(scheme, version, h), Some(Less | Equal)),
        };
        above && below
    })
}

/// The records of `records` that affect `name` at `version` in `ecosystem`
/// (exact ecosystem, or `Debian` matching `Debian:12`), withdrawn ones left
/// out.
pub fn expected(records: &[Value], ecosystem: &str, name: &str, version: &str, scheme: Scheme) -> Vec<Expected> {
    let norm = |n: &str| if ecosystem == "PyPI" { pep503(n) } else { n.to_string() };
    let mut out = Vec::new();
    for r in records {
        if r.get("withdrawn").is_some_and(|w| !w.is_null()) {
            continue;
        }
        let entries: Vec<&Value> = r["affected"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| {
                        e["package"]["ecosystem"].as_str() == Some(ecosystem)
                            && e["package"]["name"].as_str().map(norm) == Some(norm(name))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if entries.is_empty() {
            continue;
        }
        let mut hit = false;
        let mut fixes: Vec<String> = Vec::new();
        for e in &entries {
            if e["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(version)))
            {
                hit = true;
            }
            for range in e["ranges"].as_array().into_iter().flatten() {
                if !matches!(range["type"].as_str(), Some("SEMVER" | "ECOSYSTEM")) {
                    continue;
                }
                let events = range["events"].as_array().cloned().unwrap_or_default();
                for ev in &events {
                    if let Some(f) = ev["fixed"].as_str()
                        && !fixes.iter().any(|x| x == f)
                    {
                        fixes.push(f.to_string());
                    }
                }
                if in_range(&events, version, scheme) {
                    hit = true;
                }
            }
        }
        if !hit {
            continue;
        }
        let id = r["id"].as_str().unwrap().to_string();
        let mut cves: BTreeSet<String> = r["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .chain(std::iter::once(id.as_str()))
            .filter(|a| a.starts_with("CVE-"))
            .map(str::to_string)
            .collect();
        if cves.is_empty() {
            cves.insert(id.clone());
        }
        out.push(Expected {
            record: id,
            ids: cves.into_iter().collect(),
            fixed_version: fixes.join(", "),
        });
    }
    out
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// An image with findings of every kind of target and rating, from records
/// written here: Debian (HIGH fixed, UNKNOWN unfixed) in the base layer,
/// Python (CRITICAL, two records of one CVE), npm (MEDIUM, GHSA only), a Go
/// binary (LOW) and a Cargo.lock (CVSS v4) above it.
pub fn sample_report() -> (tempfile::TempDir, strata_scan::Report) {
    use serde_json::json;
    let rec = |id: &str, eco: &str, name: &str, fixed: Option<&str>, extra: Value| {
        let mut events = vec![json!({ "introduced": "0" })];
        if let Some(f) = fixed {
            events.push(json!({ "fixed": f }));
        }
        let mut r = json!({
            "id": id,
            "modified": "2024-06-01T00:00:00Z",
            "published": "2024-05-01T00:00:00Z",
            "summary": format!("{name}: a flaw found in the test with a title long enough to be cut after twelve words by trivy"),
            "details": format!("Details of {id}."),
            "affected": [{ "package": { "ecosystem": eco, "name": name },
                           "ranges": [{ "type": "ECOSYSTEM", "events": events }] }]
        });
        if let (Some(o), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        r
    };
    let records = vec![
        rec(
            "DEBIAN-CVE-2024-0001",
            "Debian:12",
            "openssl",
            Some("3.0.13-1~deb12u1"),
            json!({ "database_specific": { "severity": "high" } }),
        ),
        rec("DEBIAN-CVE-2024-0006", "Debian:12", "systemd", None, json!({})),
        rec(
            "GHSA-aaaa-bbbb-cccc",
            "PyPI",
            "Jinja2",
            Some("2.11"),
            json!({
            "aliases": ["CVE-2024-1111"],
            "severity": [{ "type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }] }),
        ),
        rec(
            "PYSEC-2024-1",
            "PyPI",
            "jinja2",
            Some("2.11"),
            json!({ "aliases": ["CVE-2024-1111", "GHSA-aaaa-bbbb-cccc"] }),
        ),
        rec(
            "GHSA-dddd-eeee-ffff",
            "npm",
            "lodash",
            Some("4.17.21"),
            json!({
            "severity": [{ "type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L" }] }),
        ),
        rec(
            "GO-2024-0001",
            "Go",
            "stdlib",
            Some("1.21.9"),
            json!({ "database_specific": { "severity": "LOW" } }),
        ),
        rec(
            "RUSTSEC-2024-0001",
            "crates.io",
            "smallvec",
            Some("1.6.1"),
            json!({
            "aliases": ["CVE-2024-2222"],
            "severity": [{ "type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N" }] }),
        ),
    ];
    let (tmp, db) = records_db(&records);
    let mut lock = pkg(PackageType::Cargo, "smallvec", "1.6.0", "/app/Cargo.lock", 1);
    lock.purl = "pkg:cargo/smallvec@1.6.0".into();
    let packages = vec![
        deb("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", 0),
        deb("openssl", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", 0),
        deb("libsystemd0", "252.22-1~deb12u1", "systemd", "252.22-1~deb12u1", 0),
        deb("bash", "5.2.15-2+b2", "bash", "5.2.15-2", 0),
        pkg(
            PackageType::Python,
            "Jinja2",
            "2.10",
            "/usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA",
            1,
        ),
        pkg(
            PackageType::Python,
            "requests",
            "2.32.3",
            "/usr/lib/python3/dist-packages/requests-2.32.3.dist-info/METADATA",
            1,
        ),
        pkg(
            PackageType::Npm,
            "lodash",
            "4.17.11",
            "/app/node_modules/lodash/package.json",
            2,
        ),
        pkg(PackageType::GoModule, "stdlib", "1.21.0", "/usr/local/bin/app", 2),
        lock,
    ];
    let s = sbom("img:1", Some(distro("debian", Some("12"))), 3, packages);
    let opts = strata_scan::ScanOptions {
        base_layers: Some(1),
        base_image: Some("debian:12".into()),
        blob_digests: vec![Some(format!("sha256:{}", "b0".repeat(32))), None, None],
    };
    let report = strata_scan::scan(&db, &s, &opts).unwrap();
    (tmp, report)
}
