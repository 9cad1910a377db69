//! Filters as Trivy and Scout apply them, and `.trivyignore` with expiry.

mod support;

use strata_scan::{Filter, IgnoreList, Rating, Report, parse_severities};
use support::*;

fn ids(r: &Report) -> Vec<&str> {
    r.findings.iter().map(|f| f.id.as_str()).collect()
}

fn filtered(f: Filter) -> Report {
    let (_tmp, mut r) = sample_report();
    r.apply(&f);
    r
}

#[test]
fn severities_unknown_only_when_asked() {
    let r = filtered(Filter {
        severities: Some(parse_severities("CRITICAL,HIGH").unwrap()),
        ..Default::default()
    });
    assert_eq!(
        ids(&r),
        ["CVE-2024-0001", "CVE-2024-0001", "CVE-2024-1111", "CVE-2024-2222"]
    );
    assert_eq!(r.severities, [Rating::High, Rating::Critical]);
    let r = filtered(Filter {
        severities: Some(parse_severities("unknown,critical").unwrap()),
        ..Default::default()
    });
    assert_eq!(ids(&r), ["CVE-2024-0006", "CVE-2024-1111", "CVE-2024-2222"]);
    // No filter: everything, UNKNOWN included.
    let r = filtered(Filter::default());
    assert_eq!(r.findings.len(), 7);
    assert_eq!(r.severities.len(), 5);
    assert!(parse_severities("CRITICAL,SEVERE").is_err());
}

#[test]
fn unfixed_fixed_base_and_package_types() {
    let r = filtered(Filter {
        ignore_unfixed: true,
        ..Default::default()
    });
    assert!(!ids(&r).contains(&"CVE-2024-0006"));
    assert_eq!(r.findings.len(), 6);
    let r = filtered(Filter {
        only_unfixed: true,
        ..Default::default()
    });
    assert_eq!(ids(&r), ["CVE-2024-0006"]);
    let r = filtered(Filter {
        ignore_base: true,
        ..Default::default()
    });
    assert!(r.findings.iter().all(|f| !f.in_base_image));
    assert_eq!(r.findings.len(), 4);
    let r = filtered(Filter {
        only_package_types: vec!["pypi".into(), "golang".into()],
        ..Default::default()
    });
    assert_eq!(ids(&r), ["CVE-2024-1111", "GO-2024-0001"]);
    let r = filtered(Filter {
        only_package_types: vec!["deb".into()],
        ..Default::default()
    });
    assert_eq!(r.findings.len(), 3);
    let r = filtered(Filter {
        only_package_types: vec!["python".into(), "cargo".into()],
        ..Default::default()
    });
    assert_eq!(ids(&r), ["CVE-2024-1111", "CVE-2024-2222"]);
    // Scout's --only-cve-id matches aliases too.
    let r = filtered(Filter {
        only_ids: vec!["PYSEC-2024-1".into()],
        ..Default::default()
    });
    assert_eq!(ids(&r), ["CVE-2024-1111"]);
}

/// 2025-06-15T12:00:00Z.
const NOW: i64 = 1_749_988_800;

#[test]
fn trivyignore_ids_comments_and_expiry() {
    let text = "\
# Accept the risk until the rebuild
CVE-2024-1111 exp:2099-01-01
   CVE-2024-0001   exp:2020-01-01   # expired: still reported
GHSA-dddd-eeee-ffff
RUSTSEC-2024-0001
CVE-2024-0006 exp:2025-13-01

GO-2024-0001 exp:2025-06-16
";
    let list = IgnoreList::parse(text, NOW);
    let active: Vec<&str> = list.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        active,
        [
            "CVE-2024-1111",
            "GHSA-dddd-eeee-ffff",
            "RUSTSEC-2024-0001",
            "GO-2024-0001"
        ]
    );
    assert_eq!(list.expired.len(), 1);
    assert_eq!(list.expired[0].id, "CVE-2024-0001");
    assert_eq!(list.expired[0].line, 3);
    assert_eq!(list.warnings.len(), 1, "{:?}", list.warnings);
    assert!(list.warnings[0].contains("line 6"));
    let r = filtered(Filter {
        ignore: list,
        ..Default::default()
    });
    // CVE-2024-0001 (expired entry) and CVE-2024-0006 (bad date: entry
    // skipped) stay; RUSTSEC-… hides its CVE through the alias.
    assert_eq!(ids(&r), ["CVE-2024-0001", "CVE-2024-0006", "CVE-2024-0001"]);
    let hidden: Vec<&str> = r.ignored.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(
        hidden,
        ["GHSA-dddd-eeee-ffff", "CVE-2024-1111", "CVE-2024-2222", "GO-2024-0001"]
    );
    assert!(r.notes.iter().any(|n| n.contains("line 6")));
}

#[test]
fn expiry_is_midnight_utc_of_the_date() {
    // exp:2025-06-15 ignores until 2025-06-15T00:00:00Z, as Trivy's
    // time.Parse("2006-01-02") compared with now.
    let midnight = 1_749_945_600;
    let text = "CVE-1 exp:2025-06-15\n";
    assert_eq!(IgnoreList::parse(text, midnight - 1).entries.len(), 1);
    assert_eq!(IgnoreList::parse(text, midnight).entries.len(), 1);
    assert_eq!(IgnoreList::parse(text, midnight + 1).entries.len(), 0);
}

#[test]
fn ignore_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let missing = IgnoreList::load(&dir.path().join(".trivyignore"), NOW).unwrap();
    assert!(missing.is_empty(), "a missing .trivyignore is no error");
    let p = dir.path().join(".trivyignore");
    write(&p, "CVE-2024-0006\n");
    let l = IgnoreList::load(&p, NOW).unwrap();
    assert_eq!(l.entries.len(), 1);
    let err = IgnoreList::load(dir.path(), NOW).unwrap_err();
    assert!(err.to_string().contains("reading ignore file"), "{err}");
}
