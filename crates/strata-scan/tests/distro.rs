//! Distribution packages: OSV records written here (the fixture has no
//! Debian data) for Debian:12 source packages, dpkg versions with epochs
//! and tildes, Alpine origins and Ubuntu releases.

mod support;

use serde_json::{Value, json};
use strata_sbom::PackageType;
use strata_scan::{ScanOptions, Status, TargetClass, scan};
use support::*;

fn record(id: &str, ecosystem: &str, package: &str, events: Value) -> Value {
    json!({
        "id": id,
        "modified": "2024-06-01T00:00:00Z",
        "published": "2024-05-01T00:00:00Z",
        "summary": format!("{package}: a test vulnerability"),
        "details": "Written in the test.",
        "affected": [{
            "package": { "ecosystem": ecosystem, "name": package },
            "ranges": [{ "type": "ECOSYSTEM", "events": events }]
        }]
    })
}

fn fixed(v: &str) -> Value {
    json!([{ "introduced": "0" }, { "fixed": v }])
}

fn debian_records() -> Vec<Value> {
    let mut withdrawn = record("DEBIAN-CVE-2024-0007", "Debian:12", "openssl", fixed("9.9-1"));
    withdrawn["withdrawn"] = json!("2024-06-02T00:00:00Z");
    let mut with_severity = record("DSA-5600-1", "Debian:12", "openssl", fixed("3.0.13-1~deb12u1"));
    with_severity["aliases"] = json!(["CVE-2024-0001"]);
    with_severity["database_specific"] = json!({ "severity": "high" });
    vec![
        // Matched through the source package, reported as its CVE.
        record(
            "DEBIAN-CVE-2024-0001",
            "Debian:12",
            "openssl",
            fixed("3.0.13-1~deb12u1"),
        ),
        // Same CVE from another record: one finding.
        with_severity,
        // Another release only.
        record("DEBIAN-CVE-2024-0002", "Debian:11", "openssl", fixed("9.9-1")),
        // Epochs: 2.5-1 (epoch 0) is below 1:2.0-2.
        record("DEBIAN-CVE-2024-0003", "Debian:12", "foo", fixed("1:2.0-2")),
        // Tildes: 1.0~rc1-1 is below 1.0-1.
        record("DEBIAN-CVE-2024-0004", "Debian:12", "bar", fixed("1.0-1")),
        // Source version 1.205, binary version 4:12.2.0-3 (gcc-defaults).
        record("DEBIAN-CVE-2024-0005", "Debian:12", "gcc-defaults", fixed("1.206")),
        // No fix.
        record(
            "DEBIAN-CVE-2024-0006",
            "Debian:12",
            "systemd",
            json!([{ "introduced": "0" }]),
        ),
        withdrawn,
        // A binary package name that is not a source package: not matched.
        record("DEBIAN-CVE-2024-0008", "Debian:12", "libssl3", fixed("9.9-1")),
    ]
}

#[test]
fn debian_by_source_package_and_dpkg_order() {
    let (_tmp, db) = records_db(&debian_records());
    let packages = vec![
        deb("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", 0),
        deb("openssl", "3.0.13-1~deb12u1", "openssl", "3.0.13-1~deb12u1", 0),
        deb("libfoo1", "2.5-1", "foo", "2.5-1", 1),
        deb("foo-utils", "1:2.1-1", "foo", "1:2.1-1", 1),
        deb("libbar0", "1.0~rc1-1", "bar", "1.0~rc1-1", 1),
        deb("cpp", "4:12.2.0-3", "gcc-defaults", "1.205", 0),
        deb("libsystemd0", "252.22-1~deb12u1", "systemd", "252.22-1~deb12u1", 0),
    ];
    let s = sbom("debian:12", Some(distro("debian", Some("12"))), 2, packages);
    let r = scan(
        &db,
        &s,
        &ScanOptions {
            base_layers: Some(1),
            base_image: Some("debian:12".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let got: Vec<(&str, &str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.name.as_str(), f.fixed_version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("CVE-2024-0005", "cpp", "1.206"),
            ("CVE-2024-0004", "libbar0", "1.0-1"),
            ("CVE-2024-0003", "libfoo1", "1:2.0-2"),
            ("CVE-2024-0001", "libssl3", "3.0.13-1~deb12u1"),
            ("CVE-2024-0006", "libsystemd0", ""),
        ]
    );
    let ssl = &r.findings[3];
    assert_eq!(ssl.advisory_ids, ["DEBIAN-CVE-2024-0001", "DSA-5600-1"]);
    assert_eq!(ssl.rating, strata_scan::Rating::High, "the DSA's rating is kept");
    assert_eq!(ssl.package.ecosystem, "Debian:12");
    assert_eq!(ssl.package.osv_name, "openssl");
    assert_eq!(
        ssl.package.version, "3.0.11-1~deb12u2",
        "installed version is the binary's"
    );
    assert!(ssl.in_base_image);
    assert_eq!(ssl.target, "debian:12 (debian 12)");
    let cpp = &r.findings[0];
    assert_eq!(cpp.package.osv_version, "1.205", "the source version is compared");
    assert_eq!(cpp.package.version, "4:12.2.0-3");
    let unfixed = &r.findings[4];
    assert_eq!(unfixed.status, Status::Affected);
    assert_eq!(unfixed.fix, None);
    assert!(
        r.findings
            .iter()
            .filter(|f| f.package.name == "libfoo1")
            .all(|f| !f.in_base_image)
    );
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.targets[0].class, TargetClass::OsPkgs);
    assert_eq!(r.targets[0].kind, "debian");
    let base = r.base_counts().unwrap();
    assert_eq!(base.total(), 3);
    assert_eq!(r.counts().total(), 5);
}

#[test]
fn debian_without_a_release_is_a_note_not_a_guess() {
    let (_tmp, db) = records_db(&debian_records());
    let pk = vec![deb("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2", 0)];
    let r = scan(&db, &sbom("x", None, 1, pk.clone()), &ScanOptions::default()).unwrap();
    assert!(r.findings.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("os-release")), "{:?}", r.notes);
    let mut testing = distro("debian", None);
    testing.version_codename = Some("bookworm".into());
    let r = scan(&db, &sbom("x", Some(testing), 1, pk.clone()), &ScanOptions::default()).unwrap();
    assert_eq!(r.findings.len(), 1, "bookworm is Debian 12");
    let r = scan(
        &db,
        &sbom("x", Some(distro("raspbian", Some("12"))), 1, pk),
        &ScanOptions::default(),
    )
    .unwrap();
    assert!(r.findings.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("raspbian")));
}

#[test]
fn alpine_by_origin_and_release() {
    let (_tmp, db) = records_db(&[
        record("ALPINE-CVE-2024-1000", "Alpine:v3.19", "openssl", fixed("3.1.4-r1")),
        record("ALPINE-CVE-2024-1001", "Alpine:v3.18", "openssl", fixed("9.9.9-r0")),
        record("ALPINE-CVE-2024-1002", "Alpine:v3.19", "busybox", fixed("1.36.1-r15")),
    ]);
    let mut crypto = pkg(PackageType::Apk, "libcrypto3", "3.1.4-r0", "/lib/apk/db/installed", 0);
    crypto.source = Some(strata_sbom::SourcePackage {
        name: "openssl".into(),
        version: "3.1.4-r0".into(),
    });
    let mut bb = pkg(PackageType::Apk, "busybox", "1.36.1-r15", "/lib/apk/db/installed", 0);
    bb.source = Some(strata_sbom::SourcePackage {
        name: "busybox".into(),
        version: "1.36.1-r15".into(),
    });
    let s = sbom(
        "alpine:3.19",
        Some(distro("alpine", Some("3.19.1"))),
        1,
        vec![crypto, bb],
    );
    let r = scan(&db, &s, &ScanOptions::default()).unwrap();
    let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["CVE-2024-1000"]);
    assert_eq!(r.findings[0].package.ecosystem, "Alpine:v3.19");
    assert_eq!(r.targets[0].name, "alpine:3.19 (alpine 3.19.1)");
}

#[test]
fn ubuntu_release_with_lts_suffix_but_not_pro() {
    let (_tmp, db) = records_db(&[
        record(
            "UBUNTU-CVE-2024-2000",
            "Ubuntu:22.04:LTS",
            "openssl",
            fixed("3.0.2-0ubuntu1.15"),
        ),
        record(
            "UBUNTU-CVE-2024-2001",
            "Ubuntu:Pro:22.04:LTS",
            "openssl",
            fixed("3.0.2-0ubuntu1.99"),
        ),
        record(
            "UBUNTU-CVE-2024-2002",
            "Ubuntu:24.04:LTS",
            "openssl",
            fixed("3.0.2-0ubuntu1.99"),
        ),
    ]);
    let p = deb("libssl3", "3.0.2-0ubuntu1.14", "openssl", "3.0.2-0ubuntu1.14", 0);
    let s = sbom("ubuntu:22.04", Some(distro("ubuntu", Some("22.04"))), 1, vec![p]);
    let r = scan(&db, &s, &ScanOptions::default()).unwrap();
    let ids: Vec<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, ["CVE-2024-2000"]);
    assert_eq!(r.findings[0].package.ecosystem, "Ubuntu:22.04");
}

#[test]
fn rpm_distros_maven_and_versions_a_scheme_cannot_read() {
    let mut maven = record("GHSA-test-mvn1-0001", "Maven", "org.example:lib", fixed("2.0.0"));
    maven["aliases"] = json!(["CVE-2024-3000"]);
    let (_tmp, db) = records_db(&[
        record("RLSA-2024:0001", "Rocky Linux:9", "bash", fixed("5.1.8-9.el9")),
        maven,
        record("PYSEC-test-1", "PyPI", "weird", fixed("2.0")),
    ]);
    let bash = pkg(
        PackageType::Rpm,
        "bash",
        "5.1.8-6.el9_1",
        "/var/lib/rpm/rpmdb.sqlite",
        0,
    );
    let mut jar = pkg(PackageType::JavaArchive, "lib", "1.5.0", "/app/lib.jar", 0);
    jar.metadata.insert("groupId".into(), "org.example".into());
    let nogroup = pkg(PackageType::JavaArchive, "mystery", "1.0", "/app/mystery.jar", 0);
    let weird = pkg(
        PackageType::Python,
        "weird",
        "not a version!",
        "/site/weird/METADATA",
        0,
    );
    let s = sbom(
        "rocky:9",
        Some(distro("rocky", Some("9.3"))),
        1,
        vec![bash, jar, nogroup, weird],
    );
    let r = scan(&db, &s, &ScanOptions::default()).unwrap();
    let ids: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.package.ecosystem.as_str()))
        .collect();
    assert_eq!(ids, [("RLSA-2024:0001", "Rocky Linux:9"), ("CVE-2024-3000", "Maven")]);
    assert!(r.notes.iter().any(|n| n.contains("groupId")), "{:?}", r.notes);
    assert!(
        r.notes.iter().any(|n| n.contains("not a PEP 440 version")),
        "{:?}",
        r.notes
    );
    assert_eq!(r.findings[1].target, "Java");
}
