//! Matching against the real OSV records of ../shared/vulndb: every finding
//! checked against an independent evaluation of the zip's JSON — nothing
//! missed, nothing extra — plus the records that must not match.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use strata_sbom::PackageType;
use strata_scan::{Rating, ScanOptions, Status, scan};
use strata_vercmp::Scheme;
use support::*;

/// (kind, name, version, ecosystem, scheme, zip, location)
type Case = (
    PackageType,
    &'static str,
    &'static str,
    &'static str,
    Scheme,
    &'static str,
    &'static str,
);

const CASES: &[Case] = &[
    (
        PackageType::Python,
        "Jinja2",
        "2.10",
        "PyPI",
        Scheme::Pep440,
        "PyPI.zip",
        "/usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA",
    ),
    (
        PackageType::Python,
        "requests",
        "2.19.0",
        "PyPI",
        Scheme::Pep440,
        "PyPI.zip",
        "/usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA",
    ),
    (
        PackageType::Python,
        "urllib3",
        "1.24.1",
        "PyPI",
        Scheme::Pep440,
        "PyPI.zip",
        "/usr/lib/python3/dist-packages/urllib3-1.24.1.dist-info/METADATA",
    ),
    (
        PackageType::Python,
        "ansible",
        "2.9.0",
        "PyPI",
        Scheme::Pep440,
        "PyPI.zip",
        "/usr/lib/python3/dist-packages/ansible-2.9.0.dist-info/METADATA",
    ),
    (
        PackageType::Python,
        "arrayfire",
        "3.5.0",
        "PyPI",
        Scheme::Pep440,
        "PyPI.zip",
        "/usr/lib/python3/dist-packages/arrayfire-3.5.0.dist-info/METADATA",
    ),
    (
        PackageType::Npm,
        "lodash",
        "4.17.11",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/lodash/package.json",
    ),
    (
        PackageType::Npm,
        "moment",
        "2.29.1",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/moment/package.json",
    ),
    (
        PackageType::Npm,
        "json5",
        "2.1.0",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/json5/package.json",
    ),
    (
        PackageType::Npm,
        "jquery",
        "3.4.1",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/jquery/package.json",
    ),
    (
        PackageType::Npm,
        "minimist",
        "1.2.0",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/minimist/package.json",
    ),
    (
        PackageType::Npm,
        "semver",
        "5.7.1",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/semver/package.json",
    ),
    (
        PackageType::Npm,
        "ws",
        "7.4.0",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/ws/package.json",
    ),
    (
        PackageType::Npm,
        "node-fetch",
        "2.6.0",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/node-fetch/package.json",
    ),
    (
        PackageType::Npm,
        "@xmldom/xmldom",
        "0.8.3",
        "npm",
        Scheme::SemVer,
        "npm.zip",
        "/app/node_modules/@xmldom/xmldom/package.json",
    ),
    (
        PackageType::GoModule,
        "stdlib",
        "1.20.4",
        "Go",
        Scheme::Go,
        "Go.zip",
        "/usr/local/bin/app",
    ),
    (
        PackageType::GoModule,
        "golang.org/x/net",
        "v0.7.0",
        "Go",
        Scheme::Go,
        "Go.zip",
        "/usr/local/bin/app",
    ),
    (
        PackageType::Cargo,
        "smallvec",
        "1.6.0",
        "crates.io",
        Scheme::SemVer,
        "crates.io.zip",
        "/app/Cargo.lock",
    ),
    (
        PackageType::Cargo,
        "time",
        "0.1.43",
        "crates.io",
        Scheme::SemVer,
        "crates.io.zip",
        "/app/Cargo.lock",
    ),
    (
        PackageType::Cargo,
        "dirs",
        "2.0.0",
        "crates.io",
        Scheme::SemVer,
        "crates.io.zip",
        "/app/Cargo.lock",
    ),
];

#[test]
fn every_finding_matches_the_records_and_none_is_missing() {
    let Some((_tmp, db)) = fixture_db(&["PyPI.zip", "npm.zip", "Go.zip", "crates.io.zip"]) else {
        return;
    };
    let packages = CASES
        .iter()
        .enumerate()
        .map(|(i, (kind, name, version, _, _, _, loc))| pkg(*kind, name, version, loc, i % 3))
        .collect();
    let sbom = sbom("app:1", None, 3, packages);
    let opts = ScanOptions {
        base_layers: Some(1),
        ..Default::default()
    };
    let report = scan(&db, &sbom, &opts).unwrap();
    let mut zips: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    let mut total = 0;
    for (i, (_, name, version, eco, scheme, zip, _)) in CASES.iter().enumerate() {
        let records = zips.entry(zip).or_insert_with(|| zip_records(zip));
        let want = expected(records, eco, name, version, *scheme);
        // Trivy's IDs, one finding each.
        let want_ids: BTreeSet<&str> = want.iter().flat_map(|e| e.ids.iter().map(String::as_str)).collect();
        let got: Vec<_> = report
            .findings
            .iter()
            .filter(|f| f.package.name == *name && f.package.version == *version)
            .collect();
        let got_ids: BTreeSet<&str> = got.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(got.len(), got_ids.len(), "{name} {version}: one finding per ID");
        // Records without a CVE that alias each other fold into one finding;
        // every other expected ID is there, and nothing else.
        for id in &want_ids {
            let folded = got.iter().any(|f| f.aliases.iter().any(|a| a == id));
            assert!(got_ids.contains(id) || folded, "{name} {version}: {id} missed");
        }
        for id in &got_ids {
            assert!(want_ids.contains(id), "{name} {version}: {id} is extra");
        }
        // Every matching record is behind some finding, and no other.
        let want_records: BTreeSet<&str> = want.iter().map(|e| e.record.as_str()).collect();
        let got_records: BTreeSet<&str> = got
            .iter()
            .flat_map(|f| f.advisory_ids.iter().map(String::as_str))
            .collect();
        assert_eq!(got_records, want_records, "{name} {version}: records");
        // FixedVersion as Trivy writes it; merged findings keep the greater.
        for f in &got {
            let fixes: Vec<&str> = want
                .iter()
                .filter(|e| f.advisory_ids.contains(&e.record))
                .map(|e| e.fixed_version.as_str())
                .collect();
            let best = fixes.iter().max().copied().unwrap_or("");
            assert_eq!(f.fixed_version, best, "{name} {version} {}: FixedVersion", f.id);
            assert_eq!(f.status == Status::Fixed, !best.is_empty());
            assert_eq!(f.layer, i % 3);
            assert_eq!(f.in_base_image, i % 3 == 0);
            assert_eq!(f.created_by.as_deref(), Some(format!("RUN step {}", i % 3).as_str()));
        }
        println!(
            "{name} {version}: {} findings from {} records",
            got.len(),
            want_records.len()
        );
        total += got.len();
    }
    assert_eq!(report.findings.len(), total, "no finding for a package not listed");
    assert!(total > 100, "the fixture yields many findings ({total})");
}

#[test]
fn records_that_must_not_match() {
    let Some((_tmp, db)) = fixture_db(&["PyPI.zip", "npm.zip"]) else {
        return;
    };
    let sbom = sbom(
        "app:1",
        None,
        1,
        vec![
            pkg(
                PackageType::Npm,
                "lodash",
                "4.17.11",
                "/app/node_modules/lodash/package.json",
                0,
            ),
            pkg(
                PackageType::Python,
                "arrayfire",
                "3.5.0",
                "/site/arrayfire-3.5.0.dist-info/METADATA",
                0,
            ),
            pkg(
                PackageType::Python,
                "Jinja2",
                "2.10.1",
                "/site/Jinja2-2.10.1.dist-info/METADATA",
                0,
            ),
        ],
    );
    let report = scan(&db, &sbom, &ScanOptions::default()).unwrap();
    let ids: BTreeSet<&str> = report
        .findings
        .iter()
        .flat_map(|f| f.advisory_ids.iter().map(String::as_str))
        .collect();
    // Fixed exactly in the installed version.
    assert!(
        !ids.contains("GHSA-4xc9-xhrj-v574"),
        "lodash 4.17.11 is the fix of GHSA-4xc9-xhrj-v574"
    );
    assert!(!report.findings.iter().any(|f| f.id == "CVE-2019-1010266"));
    // Withdrawn.
    assert!(!ids.contains("PYSEC-2019-144"), "withdrawn record reported");
    // 2.10.1 is the fix of CVE-2019-10906.
    assert!(
        !report
            .findings
            .iter()
            .any(|f| f.id == "CVE-2019-10906" && f.package.version == "2.10.1")
    );
    // The same package at 2.10 does match it.
    let older = sbom_of("Jinja2", "2.10");
    let r = scan(&db, &older, &ScanOptions::default()).unwrap();
    assert!(r.findings.iter().any(|f| f.id == "CVE-2019-10906"));
}

fn sbom_of(name: &str, version: &str) -> strata_sbom::Sbom {
    sbom(
        "x",
        None,
        1,
        vec![pkg(PackageType::Python, name, version, "/site/METADATA", 0)],
    )
}

#[test]
fn aliases_fold_into_one_finding_with_the_best_severity() {
    let Some((_tmp, db)) = fixture_db(&["PyPI.zip"]) else {
        return;
    };
    let r = scan(&db, &sbom_of("jinja2", "2.10"), &ScanOptions::default()).unwrap();
    let f = r.findings.iter().find(|f| f.id == "CVE-2019-10906").unwrap();
    assert_eq!(f.advisory_ids, ["GHSA-462w-v97r-4m45", "PYSEC-2019-217"]);
    assert!(f.aliases.contains(&"GHSA-462w-v97r-4m45".to_string()));
    assert!(f.aliases.contains(&"PYSEC-2019-217".to_string()));
    // PYSEC-2019-217 has no severity; GHSA's CVSS 3.0 vector gives 8.6.
    let s = f.severity.as_ref().unwrap();
    assert_eq!((s.source.as_str(), s.score), ("CVSS_V3", Some(8.6)));
    assert_eq!(f.rating, Rating::High);
    assert_eq!(f.severity_from.as_deref(), Some("GHSA-462w-v97r-4m45"));
    assert_eq!(f.fixed_version, "2.10.1");
    assert_eq!(f.fix.as_deref(), Some("2.10.1"));
    assert_eq!(
        f.primary_url.as_deref(),
        Some("https://avd.aquasec.com/nvd/cve-2019-10906")
    );
    assert!(
        f.references
            .iter()
            .any(|u| u == "https://github.com/advisories/GHSA-462w-v97r-4m45")
    );
    assert!(f.title.is_some());
    // A record with no severity at all is UNKNOWN.
    let unknown = r.findings.iter().find(|f| f.id == "CVE-2020-28493").unwrap();
    assert_eq!(unknown.rating, Rating::Unknown);
    assert!(unknown.severity.is_none());
}

#[test]
fn fixed_version_lists_every_fix_as_trivy_does() {
    let Some((_tmp, db)) = fixture_db(&["PyPI.zip"]) else {
        return;
    };
    let r = scan(&db, &sbom_of("urllib3", "1.24.1"), &ScanOptions::default()).unwrap();
    // Two affected entries ([0, 1.26.19) and [2.0.0, 2.2.2)).
    let f = r.findings.iter().find(|f| f.id == "CVE-2024-37891").unwrap();
    assert_eq!(f.fixed_version, "1.26.19, 2.2.2");
    assert_eq!(f.fix.as_deref(), Some("1.26.19"));
    // One range of two stretches, written higher first.
    let f = r.findings.iter().find(|f| f.id == "CVE-2023-43804").unwrap();
    assert_eq!(f.fixed_version, "2.0.6, 1.26.17");
    assert_eq!(f.fix.as_deref(), Some("1.26.17"));
}

#[test]
fn go_stdlib_and_modules() {
    let Some((_tmp, db)) = fixture_db(&["Go.zip"]) else {
        return;
    };
    let mut devel = pkg(
        PackageType::GoModule,
        "example.com/app",
        "(devel)",
        "/usr/local/bin/app",
        1,
    );
    devel.metadata.insert("mainModule".into(), "true".into());
    let s = sbom(
        "app",
        None,
        2,
        vec![
            pkg(PackageType::GoModule, "stdlib", "1.20.4", "/usr/local/bin/app", 1),
            pkg(
                PackageType::GoModule,
                "golang.org/x/net",
                "v0.7.0",
                "/usr/local/bin/app",
                1,
            ),
            devel,
        ],
    );
    let r = scan(&db, &s, &ScanOptions::default()).unwrap();
    assert!(
        r.findings
            .iter()
            .any(|f| f.package.name == "stdlib" && f.package.ecosystem == "Go")
    );
    assert!(r.findings.iter().any(|f| f.package.name == "golang.org/x/net"));
    assert!(r.findings.iter().all(|f| f.target == "usr/local/bin/app"));
    assert!(r.notes.iter().any(|n| n.contains("(devel)")), "{:?}", r.notes);
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.targets[0].kind, "gobinary");
}
