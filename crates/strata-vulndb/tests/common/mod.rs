//! Shared by the integration tests: the fixture, a SemVer comparator.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::path::PathBuf;

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

pub fn fixture_zips() -> Option<Vec<PathBuf>> {
    let dir = fixture()?;
    let mut zips: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "zip"))
        .collect();
    zips.sort();
    Some(zips)
}

fn parse(v: &str) -> Option<(Vec<u64>, Vec<String>)> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split('+').next()?;
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, p.split('.').map(str::to_string).collect()),
        None => (v, Vec::new()),
    };
    let mut nums: Vec<u64> = core.split('.').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if nums.is_empty() || nums.len() > 4 {
        return None;
    }
    nums.resize(3.max(nums.len()), 0);
    Some((nums, pre))
}

/// SemVer 2.0 order, lenient about missing minor/patch ("1.0" is 1.0.0) and
/// a leading "v"; None for anything else.
pub fn semver(a: &str, b: &str) -> Option<Ordering> {
    let (an, ap) = parse(a)?;
    let (bn, bp) = parse(b)?;
    let o = an.cmp(&bn);
    if o != Ordering::Equal {
        return Some(o);
    }
    Some(match (ap.is_empty(), bp.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            for (x, y) in ap.iter().zip(&bp) {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return Some(o);
                }
            }
            ap.len().cmp(&bp.len())
        }
    })
}

pub fn no_progress(_: &strata_vulndb::Progress<'_>) {}
