//! Each renderer's shape: the JSON documents parsed back and checked for
//! the keys their schemas (Trivy's report, SARIF 2.1.0, CycloneDX 1.5) have,
//! validated by the official validators when scripts/deps.d/scan-tools.sh
//! installed them; the text reports checked line by line.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use strata_scan::{Rating, ScoutFormat, Status};
use support::*;

/// Every key Trivy's `DetectedVulnerability` (with its embedded
/// `Vulnerability`) may write.
const TRIVY_VULN_KEYS: &[&str] = &[
    "VulnerabilityID",
    "VendorIDs",
    "PkgID",
    "PkgName",
    "PkgPath",
    "PkgIdentifier",
    "InstalledVersion",
    "FixedVersion",
    "Status",
    "Layer",
    "SeveritySource",
    "PrimaryURL",
    "DataSource",
    "Fingerprint",
    "Custom",
    "Title",
    "Description",
    "Severity",
    "CweIDs",
    "VendorSeverity",
    "CVSS",
    "References",
    "PublishedDate",
    "LastModifiedDate",
];

#[test]
fn counts_and_exit_code() {
    let (_tmp, r) = sample_report();
    let c = r.counts();
    assert_eq!((c.critical, c.high, c.medium, c.low, c.unknown), (2, 2, 1, 1, 1));
    let b = r.base_counts().unwrap();
    assert_eq!((b.critical, b.high, b.medium, b.low, b.unknown), (0, 2, 0, 0, 1));
    assert!(r.has_findings_at(&[Rating::Critical]));
    assert!(r.has_findings_at(&[]));
    let mut only_low = r.clone();
    only_low.findings.retain(|f| f.rating == Rating::Low);
    assert!(!only_low.has_findings_at(&[Rating::Critical, Rating::High]));
    assert!(only_low.has_findings_at(&[Rating::Low]));
    only_low.findings.clear();
    assert!(!only_low.has_findings_at(&[]));
}

#[test]
fn trivy_json_has_trivys_shape() {
    let (_tmp, r) = sample_report();
    let doc: Value = serde_json::from_str(&strata_scan::trivy_json(&r)).unwrap();
    assert_eq!(doc["SchemaVersion"], 2);
    assert_eq!(doc["ArtifactName"], "img:1");
    assert_eq!(doc["ArtifactType"], "container_image");
    assert_eq!(doc["Metadata"]["OS"]["Family"], "debian");
    assert_eq!(doc["Metadata"]["OS"]["Name"], "12");
    assert_eq!(doc["Metadata"]["DiffIDs"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["Metadata"]["Layers"][0]["Digest"],
        format!("sha256:{}", "b0".repeat(32))
    );
    let results = doc["Results"].as_array().unwrap();
    let targets: Vec<(&str, &str, &str)> = results
        .iter()
        .map(|r| {
            (
                r["Target"].as_str().unwrap(),
                r["Class"].as_str().unwrap(),
                r["Type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("img:1 (debian 12)", "os-pkgs", "debian"),
            ("Node.js", "lang-pkgs", "node-pkg"),
            ("Python", "lang-pkgs", "python-pkg"),
            ("app/Cargo.lock", "lang-pkgs", "cargo"),
            ("usr/local/bin/app", "lang-pkgs", "gobinary"),
        ]
    );
    let mut n = 0;
    for res in results {
        for v in res["Vulnerabilities"].as_array().into_iter().flatten() {
            n += 1;
            for k in v.as_object().unwrap().keys() {
                assert!(TRIVY_VULN_KEYS.contains(&k.as_str()), "unexpected key {k}");
            }
            for k in [
                "VulnerabilityID",
                "PkgID",
                "PkgName",
                "InstalledVersion",
                "Status",
                "Severity",
                "Layer",
            ] {
                assert!(v.get(k).is_some(), "{k} missing in {v}");
            }
            assert!(v["Layer"]["DiffID"].as_str().unwrap().starts_with("sha256:"));
            assert!(["fixed", "affected"].contains(&v["Status"].as_str().unwrap()));
            assert_eq!(v["Status"] == "fixed", v.get("FixedVersion").is_some());
            let sev = v["Severity"].as_str().unwrap();
            assert!(["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&sev));
            assert_eq!(
                v["PkgID"].as_str().unwrap(),
                format!(
                    "{}@{}",
                    v["PkgName"].as_str().unwrap(),
                    v["InstalledVersion"].as_str().unwrap()
                )
            );
            // Only aggregated targets carry PkgPath.
            let aggregated = matches!(
                res["Type"].as_str(),
                Some("python-pkg" | "node-pkg" | "jar" | "gemspec")
            );
            assert_eq!(v.get("PkgPath").is_some(), aggregated);
        }
    }
    assert_eq!(n, r.findings.len());
    let os = &results[0]["Vulnerabilities"];
    assert_eq!(os[0]["VulnerabilityID"], "CVE-2024-0001");
    assert_eq!(os[0]["PkgName"], "libssl3");
    assert_eq!(os[0]["Layer"]["Digest"], format!("sha256:{}", "b0".repeat(32)));
    assert_eq!(os[0]["VendorIDs"][0], "DEBIAN-CVE-2024-0001");
    let unfixed = os
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["PkgName"] == "libsystemd0")
        .unwrap();
    assert_eq!(unfixed["Status"], "affected");
    assert_eq!(unfixed["Severity"], "UNKNOWN");
    let py = &results[2]["Vulnerabilities"][0];
    assert_eq!(py["VulnerabilityID"], "CVE-2024-1111");
    assert_eq!(
        py["PkgPath"],
        "usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA"
    );
    assert_eq!(py["CVSS"]["ghsa"]["V3Score"], 9.8);
    assert_eq!(py["VendorSeverity"]["ghsa"], 4);
    assert_eq!(py["SeveritySource"], "ghsa");
    assert_eq!(py["PrimaryURL"], "https://avd.aquasec.com/nvd/cve-2024-1111");
    let cargo = &results[3]["Vulnerabilities"][0];
    assert!(
        cargo["CVSS"]["osv"]["V40Vector"]
            .as_str()
            .unwrap()
            .starts_with("CVSS:4.0/")
    );
}

/// The box-drawn tables: every line of a table is as wide as its border.
fn check_tables(text: &str) {
    let mut width = None;
    for line in text.lines() {
        let w = line.chars().count();
        if line.starts_with('┌') {
            width = Some(w);
        }
        if let Some(tw) = width
            && line.starts_with(['│', '├', '└', '┌'])
        {
            assert_eq!(w, tw, "ragged table line: {line}");
        }
        if line.starts_with('└') {
            width = None;
        }
    }
}

#[test]
fn trivy_table_layout() {
    let (_tmp, r) = sample_report();
    let t = strata_scan::trivy_table(&r);
    check_tables(&t);
    assert!(t.starts_with("\nReport Summary\n\n┌"));
    assert!(
        t.lines()
            .any(|l| l.starts_with("│ img:1 (debian 12) ") && l.ends_with("│   debian   │        3        │")),
        "{t}"
    );
    // Aggregated targets are listed per package file in the summary.
    assert!(t.contains("usr/lib/python3/dist-packages/Jinja2-2.10.dist-info/METADATA"));
    assert!(t.contains("Legend:\n- '-': Not scanned\n- '0': Clean (no security findings detected)\n"));
    assert!(t.contains(
        "\nimg:1 (debian 12)\n=================\nTotal: 3 (UNKNOWN: 1, LOW: 0, MEDIUM: 0, HIGH: 2, CRITICAL: 0)\n\n"
    ));
    assert!(t.contains(
        "\nPython (python-pkg)\n===================\nTotal: 1 (UNKNOWN: 0, LOW: 0, MEDIUM: 0, HIGH: 0, CRITICAL: 1)\n"
    ));
    assert!(
        t.contains("│   Library   │ Vulnerability │ Severity │  Status  │ Installed Version │  Fixed Version   │"),
        "{t}"
    );
    for h in [
        "Library",
        "Vulnerability",
        "Severity",
        "Status",
        "Installed Version",
        "Fixed Version",
        "Title",
    ] {
        assert!(t.contains(h));
    }
    assert!(
        t.contains("Jinja2 (METADATA)"),
        "Trivy names the file of aggregated packages"
    );
    assert!(t.contains("https://avd.aquasec.com/nvd/cve-2024-0001"));
    // Title cut after twelve words.
    assert!(
        t.contains("with a title long\n") || t.contains("title long enough..."),
        "{t}"
    );
    assert!(!t.contains("to be cut"), "{t}");
    // libssl3 and openssl share ID, severity, status, versions and title:
    // those cells merge (blank, no line between them).
    let mut one = r.clone();
    one.apply(&strata_scan::Filter {
        only_ids: vec!["CVE-2024-0001".into()],
        ..Default::default()
    });
    let t1 = strata_scan::trivy_table(&one);
    check_tables(&t1);
    let rows: Vec<&str> = t1
        .split("Total: 2")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with(['│', '├']))
        .collect();
    assert!(
        rows.iter().any(|l| l.starts_with("├─────────┤               │")),
        "{t1}"
    );
    let i = rows.iter().position(|l| l.starts_with("│ openssl ")).unwrap();
    assert_eq!(rows.len() - i, 3, "a merged row keeps its height: {t1}");
    assert!(
        rows.iter()
            .any(|l| l.starts_with("│ openssl ") && l.contains("│               │")),
        "{t1}"
    );
    // A filter's severities become the Total line's.
    let mut f = r.clone();
    f.apply(&strata_scan::Filter {
        severities: Some(vec![Rating::High, Rating::Critical]),
        ..Default::default()
    });
    let t = strata_scan::trivy_table(&f);
    assert!(t.contains("Total: 2 (HIGH: 2, CRITICAL: 0)"), "{t}");
}

fn validator() -> Option<std::path::PathBuf> {
    let py = Path::new("/opt/strata-deps/sarif/bin/python");
    if py.is_file() {
        Some(py.to_path_buf())
    } else {
        println!("skipped: /opt/strata-deps/sarif absent (scripts/deps.d/scan-tools.sh installs it)");
        None
    }
}

fn run_python(py: &Path, script: &str, doc: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.json");
    std::fs::write(&path, doc).unwrap();
    let out = Command::new(py).arg("-c").arg(script).arg(&path).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn sarif_shape_and_schema() {
    let (_tmp, r) = sample_report();
    for text in [strata_scan::sarif(&r), strata_scan::scout_cves(&r, ScoutFormat::Sarif)] {
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["version"], "2.1.0");
        let run = &doc["runs"][0];
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        let ids: BTreeSet<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), rules.len(), "one rule per vulnerability");
        let want: BTreeSet<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, want);
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), r.findings.len());
        for res in results {
            let i = res["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], res["ruleId"]);
            assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
            let uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap();
            assert!(!uri.starts_with('/'));
        }
        let os = results.iter().find(|x| x["ruleId"] == "CVE-2024-0001").unwrap();
        assert_eq!(os["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "img");
        let crit = rules.iter().find(|x| x["id"] == "CVE-2024-1111").unwrap();
        assert_eq!(crit["properties"]["security-severity"], "9.8");
        assert_eq!(crit["name"], "LanguageSpecificPackageVulnerability");
        let Some(py) = validator() else { continue };
        let schema = "/opt/strata-deps/sarif/sarif-schema-2.1.0.json";
        if !Path::new(schema).is_file() {
            println!("skipped: {schema} absent");
            continue;
        }
        let script = format!(
            "import json, sys, jsonschema\nschema = json.load(open({schema:?}))\ndoc = json.load(open(sys.argv[1]))\n\
             jsonschema.validators.validator_for(schema)(schema).validate(doc)\nprint('valid')"
        );
        let (ok, out) = run_python(&py, &script, &text);
        assert!(ok, "SARIF schema validation failed: {out}");
    }
}

#[test]
fn cyclonedx_with_vulnerabilities() {
    let (_tmp, r) = sample_report();
    let text = strata_scan::cyclonedx(&r);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["bomFormat"], "CycloneDX");
    assert_eq!(doc["specVersion"], "1.5");
    let refs: BTreeSet<&str> = doc["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    let vulns = doc["vulnerabilities"].as_array().unwrap();
    let ids: BTreeSet<&str> = vulns.iter().map(|v| v["id"].as_str().unwrap()).collect();
    let want: BTreeSet<&str> = r.findings.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids, want);
    for v in vulns {
        for a in v["affects"].as_array().unwrap() {
            assert!(refs.contains(a["ref"].as_str().unwrap()), "affects names a component");
        }
    }
    // One vulnerability, two affected binaries of openssl.
    let ssl = vulns.iter().find(|v| v["id"] == "CVE-2024-0001").unwrap();
    assert_eq!(ssl["affects"].as_array().unwrap().len(), 2);
    assert_eq!(ssl["ratings"][0]["severity"], "high");
    let crit = vulns.iter().find(|v| v["id"] == "CVE-2024-1111").unwrap();
    assert_eq!(crit["ratings"][0]["method"], "CVSSv31");
    assert_eq!(crit["ratings"][0]["score"], 9.8);
    let Some(py) = validator() else { return };
    let script = "import sys\nfrom cyclonedx.validation.json import JsonStrictValidator\nfrom cyclonedx.schema import SchemaVersion\n\
                  e = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
                  print(e)\nsys.exit(1 if e else 0)";
    let (ok, out) = run_python(&py, script, &text);
    assert!(ok, "CycloneDX 1.5 validation failed: {out}");
}

#[test]
fn scout_quickview_shape() {
    let (_tmp, r) = sample_report();
    let q = strata_scan::scout_quickview(&r);
    let lines: Vec<&str> = q.lines().collect();
    assert_eq!(lines.len(), 3, "{q}");
    assert!(lines[0].starts_with("  Target "));
    assert!(lines[0].contains("│  img:1 "));
    assert!(lines[0].ends_with("│     2C     2H     1M     1L     1?"), "{q}");
    assert!(lines[1].starts_with("    digest "));
    assert!(lines[1].contains("abababababab"));
    assert!(lines[2].starts_with("  Base image "));
    assert!(lines[2].contains("│  debian:12 "));
    assert!(lines[2].ends_with("│     0C     2H     0M     0L     1?"), "{q}");
    // The │ columns line up.
    let col: Vec<usize> = lines
        .iter()
        .map(|l| l.chars().position(|c| c == '│').unwrap())
        .collect();
    assert!(col.windows(2).all(|w| w[0] == w[1]), "{q}");
}

#[test]
fn scout_cves_formats() {
    let (_tmp, r) = sample_report();
    let p = strata_scan::scout_cves(&r, ScoutFormat::Packages);
    assert!(p.starts_with("## Overview\n"));
    assert!(p.contains("## Packages and Vulnerabilities"));
    assert!(
        p.contains("    vulnerabilities  │      2C     2H     1M     1L     1?\n"),
        "{p}"
    );
    assert!(p.contains("pkg:pypi/jinja2@2.10"));
    assert!(p.contains("    ✗ CRITICAL CVE-2024-1111 ["));
    assert!(p.contains("      https://scout.docker.com/v/CVE-2024-1111"));
    assert!(p.contains("      Fixed version  : 2.11"));
    assert!(p.contains("      Fixed version  : not fixed"));
    assert!(p.contains("      CVSS Score     : 9.8"));
    assert!(p.contains("7 vulnerabilities found in 7 packages\n"), "{p}");
    // Most severe packages first.
    let jinja = p.find("Jinja2 2.10").unwrap();
    let go = p.find("stdlib 1.21.0").unwrap();
    assert!(jinja < go);
    let md = strata_scan::scout_cves(&r, ScoutFormat::Markdown);
    assert!(md.starts_with("## Overview\n\n|"));
    assert_eq!(
        md.matches("<details><summary>").count() - md.matches("<summary>Description").count(),
        7
    );
    assert!(md.contains("https://scout.docker.com/v/CVE-2024-1111"));
    let j: Value = serde_json::from_str(&strata_scan::scout_cves(&r, ScoutFormat::Json)).unwrap();
    assert_eq!(j["target"], "img:1");
    assert_eq!(j["counts"]["critical"], 2);
    assert_eq!(j["baseImage"]["counts"]["high"], 2);
    assert_eq!(j["packages"].as_array().unwrap().len(), 7);
    let first = &j["packages"][0];
    assert_eq!(first["vulnerabilities"][0]["severity"], "CRITICAL");
}

#[test]
fn findings_in_order_and_statuses() {
    let (_tmp, r) = sample_report();
    let order: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.target.as_str(), f.package.name.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("img:1 (debian 12)", "libssl3"),
            ("img:1 (debian 12)", "libsystemd0"),
            ("img:1 (debian 12)", "openssl"),
            ("Node.js", "lodash"),
            ("Python", "Jinja2"),
            ("app/Cargo.lock", "smallvec"),
            ("usr/local/bin/app", "stdlib"),
        ]
    );
    assert_eq!(r.findings.iter().filter(|f| f.status == Status::Affected).count(), 1);
    // The report itself serializes (for `--format json` of strata's own).
    let v: Value = serde_json::to_value(&r).unwrap();
    assert_eq!(v["findings"][0]["rating"], "HIGH");
}
