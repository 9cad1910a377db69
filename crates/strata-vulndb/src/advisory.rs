//! Advisories as the matcher sees them, and OSV's range evaluation.

use std::cmp::Ordering;

use crate::osv::{Event, EventKind, Range, Severity};

/// One OSV record, with the `affected` entries of the package it was looked
/// up for (or all of them, from [`crate::Db::advisory`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    pub id: String,
    pub aliases: Vec<String>,
    pub modified: String,
    pub published: Option<String>,
    /// When the record was withdrawn; a withdrawn record should not be
    /// reported.
    pub withdrawn: Option<String>,
    pub summary: Option<String>,
    /// At most [`crate::MAX_DETAILS_BYTES`]; `details_truncated` says when
    /// more was cut.
    pub details: Option<String>,
    pub details_truncated: bool,
    pub severity: Option<Severity>,
    /// The source (file path or URL) the record was imported from.
    pub source: String,
    pub affected: Vec<AffectedPackage>,
}

/// One `affected[]` entry of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedPackage {
    /// The full OSV ecosystem as written, normalized base (`"Debian:12"`).
    pub ecosystem: String,
    /// The package name as the record writes it.
    pub name: String,
    pub purl: Option<String>,
    /// SEMVER and ECOSYSTEM ranges (GIT ranges are not kept).
    pub ranges: Vec<Range>,
    /// Versions the record lists explicitly as affected.
    pub versions: Vec<String>,
}

/// How a version is affected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affected {
    /// The version to upgrade to: the `fixed` event ending the range the
    /// version is in (the highest, when it is in several ranges); `None`
    /// when a range it is in has no fix after it (open, or `last_affected`).
    pub fixed: Option<String>,
    /// Every `fixed` event ending a range the version is in, lowest first
    /// (records that list one range per release line give several: GHSA's
    /// `[1.0, 3.1.1)` and `[0, 2.6.7)` for 2.6.0 give 2.6.7 and 3.1.1).
    pub fixes: Vec<String>,
    /// The `last_affected` event ending the range the version is in, if any.
    pub last_affected: Option<String>,
    /// True when only an entry's explicit `versions` list matched.
    pub by_versions_only: bool,
}

/// A comparator of two versions of one ecosystem; `None` when either cannot
/// be ordered.
pub type VersionCmp<'a> = dyn Fn(&str, &str) -> Option<Ordering> + 'a;

impl Advisory {
    /// Whether `version` of the package is affected, evaluated as the OSV
    /// schema's `IsVulnerable` says: in an entry's `versions` list (exact
    /// string match), or in one of its ranges — events sorted by version
    /// (`introduced: "0"` first; for equal versions `introduced` before
    /// `last_affected`, `fixed`, `limit`), `introduced` at or below the
    /// version turns it affected, `fixed` at or below it and `last_affected`
    /// below it turn it unaffected, and the version must be below one of the
    /// range's `limit` events if it has any (`"*"` is infinity).
    ///
    /// `cmp` orders two versions of the ecosystem. An event whose version it
    /// cannot order against `version` changes nothing (an incomparable
    /// `introduced` does not start a range, an incomparable `fixed` does not
    /// end one); events it cannot order among themselves keep their order in
    /// the record.
    pub fn affects(&self, version: &str, cmp: &VersionCmp<'_>) -> Option<Affected> {
        let mut in_list = false;
        let mut hits: Vec<(Option<String>, Option<String>)> = Vec::new();
        for a in &self.affected {
            if a.versions.iter().any(|v| v == version) {
                in_list = true;
            }
            for r in &a.ranges {
                if let Some(hit) = range_hit(r, version, cmp) {
                    hits.push(hit);
                }
            }
        }
        if hits.is_empty() {
            return in_list.then(|| {
                let fixed = self.next_fix(version, cmp);
                Affected {
                    fixes: fixed.iter().cloned().collect(),
                    fixed,
                    last_affected: None,
                    by_versions_only: true,
                }
            });
        }
        let mut fixed: Option<String> = None;
        let mut fixes: Vec<String> = Vec::new();
        let mut unfixed = false;
        let mut last_affected = None;
        for (f, l) in hits {
            if l.is_some() {
                last_affected = l;
            }
            match f {
                None => unfixed = true,
                Some(f) => {
                    let at = fixes
                        .iter()
                        .position(|x| cmp(x, &f) != Some(Ordering::Less))
                        .unwrap_or(fixes.len());
                    if fixes.get(at) != Some(&f) {
                        fixes.insert(at, f.clone());
                    }
                    let higher = match &fixed {
                        None => true,
                        Some(cur) => cmp(&f, cur) == Some(Ordering::Greater),
                    };
                    if higher {
                        fixed = Some(f);
                    }
                }
            }
        }
        Some(Affected {
            fixed: if unfixed { None } else { fixed },
            fixes,
            last_affected,
            by_versions_only: false,
        })
    }

    /// The lowest `fixed` above `version` in any range (for a version only a
    /// `versions` list names).
    fn next_fix(&self, version: &str, cmp: &VersionCmp<'_>) -> Option<String> {
        let mut best: Option<&str> = None;
        for e in self.affected.iter().flat_map(|a| &a.ranges).flat_map(|r| &r.events) {
            if e.kind == EventKind::Fixed
                && cmp(&e.version, version) == Some(Ordering::Greater)
                && best.is_none_or(|b| cmp(&e.version, b) == Some(Ordering::Less))
            {
                best = Some(&e.version);
            }
        }
        best.map(str::to_string)
    }
}

/// `v >= other`, `"0"` below everything.
fn at_or_above(v: &str, other: &str, cmp: &VersionCmp<'_>) -> bool {
    other == "0" || matches!(cmp(v, other), Some(Ordering::Greater | Ordering::Equal))
}

/// Orders two events: version first (`introduced: "0"` lowest, `limit: "*"`
/// highest), then kind; `None` when the versions cannot be ordered.
fn event_order(a: &Event, b: &Event, cmp: &VersionCmp<'_>) -> Option<Ordering> {
    let rank = |e: &Event| match (e.kind, e.version.as_str()) {
        (EventKind::Introduced, "0") => 0,
        (EventKind::Limit, v) if v.contains('*') => 2,
        _ => 1,
    };
    let by_version = match (rank(a), rank(b)) {
        (1, 1) => cmp(&a.version, &b.version)?,
        (x, y) => x.cmp(&y),
    };
    Some(by_version.then(a.kind.cmp(&b.kind)))
}

/// Sorts events without ever panicking on a comparator that is not a total
/// order: an insertion sort that moves an event left only past events it is
/// known to sort before.
fn sorted_events<'e>(events: &'e [Event], cmp: &VersionCmp<'_>) -> Vec<&'e Event> {
    let mut out: Vec<&Event> = Vec::with_capacity(events.len());
    for e in events {
        let mut i = out.len();
        while i > 0 && event_order(e, out[i - 1], cmp) == Some(Ordering::Less) {
            i -= 1;
        }
        out.insert(i, e);
    }
    out
}

/// If `version` is in the range: the `fixed` and `last_affected` events that
/// end the stretch it is in.
fn range_hit(r: &Range, version: &str, cmp: &VersionCmp<'_>) -> Option<(Option<String>, Option<String>)> {
    let limits: Vec<&Event> = r.events.iter().filter(|e| e.kind == EventKind::Limit).collect();
    if !limits.is_empty()
        && !limits
            .iter()
            .any(|l| l.version.contains('*') || cmp(version, &l.version) == Some(Ordering::Less))
    {
        return None;
    }
    let sorted = sorted_events(&r.events, cmp);
    let mut vulnerable = false;
    let mut opened_at = None;
    for (i, e) in sorted.iter().enumerate() {
        match e.kind {
            EventKind::Introduced => {
                if at_or_above(version, &e.version, cmp) {
                    vulnerable = true;
                    opened_at = Some(i);
                }
            }
            EventKind::Fixed => {
                if matches!(cmp(version, &e.version), Some(Ordering::Greater | Ordering::Equal)) {
                    vulnerable = false;
                }
            }
            EventKind::LastAffected => {
                if cmp(version, &e.version) == Some(Ordering::Greater) {
                    vulnerable = false;
                }
            }
            EventKind::Limit => {}
        }
    }
    if !vulnerable {
        return None;
    }
    // The first fixed / last_affected event after the introduced one that
    // made the version affected.
    let start = opened_at.unwrap_or(0);
    let mut fixed = None;
    let mut last = None;
    for e in &sorted[start..] {
        if fixed.is_some() || last.is_some() {
            break;
        }
        let order = cmp(&e.version, version);
        match e.kind {
            EventKind::Fixed if order == Some(Ordering::Greater) => fixed = Some(e.version.clone()),
            EventKind::LastAffected if matches!(order, Some(Ordering::Greater | Ordering::Equal)) => {
                last = Some(e.version.clone())
            }
            _ => {}
        }
    }
    Some((fixed, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(a: &str, b: &str) -> Option<Ordering> {
        let p = |s: &str| s.split('.').map(|x| x.parse::<u64>().ok()).collect::<Option<Vec<_>>>();
        Some(p(a)?.cmp(&p(b)?))
    }

    fn adv(events: &[(EventKind, &str)], versions: &[&str]) -> Advisory {
        Advisory {
            id: "T".into(),
            aliases: vec![],
            modified: String::new(),
            published: None,
            withdrawn: None,
            summary: None,
            details: None,
            details_truncated: false,
            severity: None,
            source: String::new(),
            affected: vec![AffectedPackage {
                ecosystem: "PyPI".into(),
                name: "x".into(),
                purl: None,
                ranges: vec![Range {
                    kind: "ECOSYSTEM".into(),
                    events: events
                        .iter()
                        .map(|(k, v)| Event {
                            kind: *k,
                            version: v.to_string(),
                        })
                        .collect(),
                }],
                versions: versions.iter().map(|s| s.to_string()).collect(),
            }],
        }
    }

    use EventKind::*;

    #[test]
    fn unsorted_events_and_two_stretches() {
        let a = adv(
            &[
                (Fixed, "3.2.5"),
                (Introduced, "3.0.0"),
                (Fixed, "1.0.2"),
                (Introduced, "1.0.0"),
            ],
            &[],
        );
        let f = |v| a.affects(v, &num).map(|x| x.fixed);
        assert_eq!(f("0.9"), None);
        assert_eq!(f("1.0.0"), Some(Some("1.0.2".into())));
        assert_eq!(f("1.0.2"), None);
        assert_eq!(f("2.0"), None);
        assert_eq!(f("3.1"), Some(Some("3.2.5".into())));
        assert_eq!(f("3.2.5"), None);
    }

    #[test]
    fn incomparable_versions_do_not_panic() {
        let a = adv(
            &[
                (Introduced, "x"),
                (Fixed, "y"),
                (Introduced, "1"),
                (Fixed, "z"),
                (Fixed, "2"),
            ],
            &[],
        );
        assert_eq!(a.affects("1.5", &num).unwrap().fixed.as_deref(), Some("2"));
        assert!(a.affects("junk", &num).is_none());
    }

    #[test]
    fn limits() {
        let a = adv(&[(Introduced, "0"), (Limit, "2.0")], &[]);
        assert!(a.affects("1.9", &num).is_some());
        assert!(a.affects("2.0", &num).is_none());
        let a = adv(&[(Introduced, "0"), (Limit, "*")], &[]);
        assert!(a.affects("99", &num).is_some());
    }
}
