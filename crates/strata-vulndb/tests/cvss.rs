//! CVSS scores against reference implementations and known examples.

use std::path::PathBuf;

use strata_vulndb::Rating;
use strata_vulndb::cvss::{self, CvssError, CvssVersion};

fn reference(name: &str) -> Vec<(String, f64)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (v, s) = l.rsplit_once(' ').unwrap();
            (v.to_string(), s.parse().unwrap())
        })
        .collect()
}

#[test]
fn v3_matches_the_reference_scores() {
    let refs = reference("cvss_v3_reference.txt");
    assert!(refs.len() > 400);
    for (vector, want) in refs {
        let (_, got) = cvss::score(&vector).unwrap();
        assert_eq!(got, want, "{vector}");
    }
}

#[test]
fn v4_matches_the_reference_calculator() {
    let refs = reference("cvss_v4_reference.txt");
    assert!(refs.len() > 600);
    for (vector, want) in refs {
        let (version, got) = cvss::score(&vector).unwrap();
        assert_eq!(version, CvssVersion::V4_0);
        assert_eq!(got, want, "{vector}");
    }
}

#[test]
fn known_examples() {
    // NVD / FIRST examples.
    for (v, s) in [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
        ("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N", 5.3),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
        // Temporal metrics do not change the base score.
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O/RC:U", 9.8),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10.0),
        ("CVSS:4.0/AV:L/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 8.5),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0.0),
        // A threat metric lowers a v4 score (CVSS-BT).
        (
            "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U",
            8.1,
        ),
    ] {
        assert_eq!(cvss::score(v).unwrap().1, s, "{v}");
    }
}

#[test]
fn bad_vectors_are_refused() {
    assert!(matches!(cvss::score("AV:N/AC:L"), Err(CvssError::Prefix(_))));
    assert!(matches!(cvss::score("CVSS:2.0/AV:N"), Err(CvssError::Prefix(_))));
    assert!(matches!(
        cvss::score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"),
        Err(CvssError::Missing("A"))
    ));
    assert!(matches!(
        cvss::score("CVSS:3.1/AV:N/AV:L/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        Err(CvssError::Duplicate(_))
    ));
    assert!(matches!(
        cvss::score("CVSS:3.1/AV:Q/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),
        Err(CvssError::Unknown(_))
    ));
    assert!(matches!(
        cvss::score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N"),
        Err(CvssError::Missing("SA"))
    ));
    assert!(cvss::score("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/").is_err());
}

#[test]
fn ratings() {
    assert_eq!(Rating::from_score(0.0), Rating::None);
    assert_eq!(Rating::from_score(0.1), Rating::Low);
    assert_eq!(Rating::from_score(3.9), Rating::Low);
    assert_eq!(Rating::from_score(4.0), Rating::Medium);
    assert_eq!(Rating::from_score(6.9), Rating::Medium);
    assert_eq!(Rating::from_score(7.0), Rating::High);
    assert_eq!(Rating::from_score(8.9), Rating::High);
    assert_eq!(Rating::from_score(9.0), Rating::Critical);
    assert_eq!(Rating::from_label("MODERATE"), Some(Rating::Medium));
    assert_eq!(Rating::from_label("unimportant"), Some(Rating::Low));
    assert_eq!(Rating::from_label("odd"), Some(Rating::Unknown));
    assert_eq!(Rating::from_label(""), None);
}
