//! OSV range evaluation (`Advisory::affects`) on the schema's examples and
//! on the fixture's tricky records.

mod common;

use common::{fixture, no_progress, semver};
use strata_vulndb::{Advisory, AffectedPackage, Db, Event, EventKind, Range};

fn advisory(ranges: &[&[(&str, &str)]], versions: &[&str]) -> Advisory {
    let ranges = ranges
        .iter()
        .map(|events| Range {
            kind: "SEMVER".into(),
            events: events
                .iter()
                .map(|(k, v)| Event {
                    kind: match *k {
                        "introduced" => EventKind::Introduced,
                        "fixed" => EventKind::Fixed,
                        "last_affected" => EventKind::LastAffected,
                        "limit" => EventKind::Limit,
                        _ => panic!("{k}"),
                    },
                    version: v.to_string(),
                })
                .collect(),
        })
        .collect();
    Advisory {
        id: "TEST-1".into(),
        aliases: vec![],
        modified: "2024-01-01T00:00:00Z".into(),
        published: None,
        withdrawn: None,
        summary: None,
        details: None,
        details_truncated: false,
        severity: None,
        source: "test".into(),
        affected: vec![AffectedPackage {
            ecosystem: "npm".into(),
            name: "p".into(),
            purl: None,
            ranges,
            versions: versions.iter().map(|s| s.to_string()).collect(),
        }],
    }
}

fn fixed_of(a: &Advisory, v: &str) -> Option<Option<String>> {
    a.affects(v, &semver).map(|x| x.fixed)
}

#[test]
fn schema_examples() {
    // Every version affected.
    let a = advisory(&[&[("introduced", "0")]], &[]);
    assert_eq!(fixed_of(&a, "0.0.1"), Some(None));
    assert_eq!(fixed_of(&a, "99.0.0"), Some(None));
    // Everything before 1.0.2.
    let a = advisory(&[&[("introduced", "0"), ("fixed", "1.0.2")]], &[]);
    assert_eq!(fixed_of(&a, "1.0.1"), Some(Some("1.0.2".into())));
    assert_eq!(fixed_of(&a, "1.0.2-rc.1"), Some(Some("1.0.2".into())));
    assert_eq!(fixed_of(&a, "1.0.2"), None);
    // [1.0.0, 1.0.2) and [3.0.0, 3.2.5) in one range.
    let a = advisory(
        &[&[
            ("introduced", "1.0.0"),
            ("fixed", "1.0.2"),
            ("introduced", "3.0.0"),
            ("fixed", "3.2.5"),
        ]],
        &[],
    );
    for (v, want) in [
        ("0.9.9", None),
        ("1.0.0", Some(Some("1.0.2".to_string()))),
        ("1.0.2", None),
        ("2.9.0", None),
        ("3.0.0", Some(Some("3.2.5".to_string()))),
        ("3.2.5", None),
    ] {
        assert_eq!(fixed_of(&a, v), want, "{v}");
    }
    // The same as two ranges.
    let a = advisory(
        &[
            &[("introduced", "1.0.0"), ("fixed", "1.0.2")],
            &[("introduced", "3.0.0"), ("fixed", "3.2.5")],
        ],
        &[],
    );
    assert_eq!(fixed_of(&a, "3.1.0"), Some(Some("3.2.5".into())));
    assert_eq!(fixed_of(&a, "2.0.0"), None);
    // last_affected: the version itself is affected, the next one not.
    let a = advisory(&[&[("introduced", "0"), ("last_affected", "2.1.214")]], &[]);
    let hit = a.affects("2.1.214", &semver).unwrap();
    assert_eq!((hit.fixed, hit.last_affected.as_deref()), (None, Some("2.1.214")));
    assert!(a.affects("2.1.215", &semver).is_none());
    // Limits bound the range; "*" is infinity.
    let a = advisory(&[&[("introduced", "1.0.0"), ("limit", "1.5.0")]], &[]);
    assert!(a.affects("1.4.9", &semver).is_some());
    assert!(a.affects("1.5.0", &semver).is_none());
    let a = advisory(&[&[("introduced", "1.0.0"), ("limit", "*")]], &[]);
    assert!(a.affects("100.0.0", &semver).is_some());
}

#[test]
fn versions_lists_and_several_matches() {
    // A listed version matches by exact string, whatever the ranges say.
    let a = advisory(&[&[("introduced", "2.0.0"), ("fixed", "2.1.0")]], &["1.5.0"]);
    let hit = a.affects("1.5.0", &semver).unwrap();
    assert!(hit.by_versions_only);
    assert_eq!(hit.fixed.as_deref(), Some("2.1.0"), "the next fix above it");
    assert!(a.affects("1.5", &semver).is_none(), "versions match as strings");
    // In two ranges: the fix that leaves both.
    let a = advisory(
        &[
            &[("introduced", "0"), ("fixed", "1.2.0")],
            &[("introduced", "1.0.0"), ("fixed", "1.5.0")],
        ],
        &[],
    );
    assert_eq!(fixed_of(&a, "1.1.0"), Some(Some("1.5.0".into())));
    // In a range without a fix: no fix.
    let a = advisory(
        &[&[("introduced", "0"), ("fixed", "1.2.0")], &[("introduced", "1.0.0")]],
        &[],
    );
    assert_eq!(fixed_of(&a, "1.1.0"), Some(None));
    // Equal introduced and fixed: an empty range.
    let a = advisory(&[&[("introduced", "1.0.0"), ("fixed", "1.0.0")]], &[]);
    assert!(a.affects("1.0.0", &semver).is_none());
}

#[test]
fn fixture_records() {
    let Some(dir) = fixture() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut db = Db::open(tmp.path()).unwrap();
    db.import(&[dir.join("npm.zip")], &mut no_progress).unwrap();
    let get = |pkg: &str, id: &str| {
        db.advisories_for("npm", pkg)
            .unwrap()
            .into_iter()
            .find(|a| a.id == id)
            .unwrap_or_else(|| panic!("{id}"))
    };

    // node-fetch: prerelease bounds 3.0.0-beta.1..beta.9, and "introduced": "1.0".
    let beta = get("node-fetch", "GHSA-w7rc-rwvf-8q5r");
    assert!(beta.affects("2.6.0", &semver).is_some());
    assert!(beta.affects("2.6.1", &semver).is_none());
    assert!(beta.affects("3.0.0-beta.5", &semver).is_some());
    assert!(beta.affects("3.0.0-beta.9", &semver).is_none());
    let r683 = get("node-fetch", "GHSA-r683-j2x4-v87g");
    // Two entries, [1.0, 3.1.1) and [0, 2.6.7): 2.6.0 is in both, and only
    // 3.1.1 leaves both (2.6.7 is in the first as written).
    let hit = r683.affects("2.6.0", &semver).unwrap();
    assert_eq!(hit.fixed.as_deref(), Some("3.1.1"));
    assert_eq!(hit.fixes, ["2.6.7", "3.1.1"]);
    let hit = r683.affects("0.9.0", &semver).unwrap();
    assert_eq!(
        (hit.fixed.as_deref(), hit.fixes.len()),
        (Some("2.6.7"), 1),
        "below the non-SemVer bound 1.0"
    );
    assert_eq!(r683.affects("3.0.0", &semver).unwrap().fixes, ["3.1.1"]);

    // xmldom: last_affected on the old name, several entries on the new.
    let old = get("xmldom", "GHSA-crh6-fp67-6883");
    let hit = old.affects("0.6.0", &semver).unwrap();
    assert_eq!((hit.fixed, hit.last_affected.as_deref()), (None, Some("0.6.0")));
    let new = get("@xmldom/xmldom", "GHSA-crh6-fp67-6883");
    assert!(new.affected.iter().all(|a| a.name == "@xmldom/xmldom"));
    assert_eq!(new.affects("0.8.3", &semver).unwrap().fixed.as_deref(), Some("0.8.4"));
    assert!(new.affects("0.8.4", &semver).is_none());
    assert!(new.affects("0.9.0-beta.2", &semver).is_some());
    assert!(new.affects("0.9.0-beta.4", &semver).is_none());

    // The test image's versions.
    for (pkg, version, id) in [
        ("minimist", "1.2.0", "GHSA-vh95-rmgr-6w4m"),
        ("minimist", "1.2.0", "GHSA-xvch-5gv4-984h"),
        ("json5", "2.1.0", "GHSA-9c47-m6qq-7p4h"),
        ("semver", "5.7.1", "GHSA-c2qf-rxjj-qqgw"),
        ("ws", "7.4.0", "GHSA-3h5v-q93c-6h6q"),
        ("ws", "7.4.0", "GHSA-6fc8-4gx4-v693"),
        ("moment", "2.29.1", "GHSA-8hfj-j24r-96c4"),
        ("moment", "2.29.1", "GHSA-wc69-rhjr-hc9g"),
        ("jquery", "3.4.1", "GHSA-jpcq-cgw6-v4j6"),
    ] {
        let hit = get(pkg, id).affects(version, &semver);
        assert!(
            hit.as_ref().is_some_and(|h| h.fixed.is_some()),
            "{pkg} {version} {id}: {hit:?}"
        );
    }
}
