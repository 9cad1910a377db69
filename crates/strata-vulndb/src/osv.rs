//! OSV records as read from JSON, and what the database keeps of them.
//!
//! Parsing is lenient where the schema is (unknown fields are ignored, every
//! optional field may be absent or `null`) and strict where the database
//! needs it: a record without a string `id` and `modified` is refused. What
//! is kept is a [`Parsed`] record: names normalized for lookup, GIT ranges
//! dropped, one severity chosen and scored, long details cut.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::Value;

use crate::cvss::{self, CvssVersion, Rating};

/// The largest record (its JSON text) that is read; larger ones are skipped.
pub const MAX_RECORD_BYTES: u64 = 4 << 20;
/// `details` longer than this many bytes is cut (at a character boundary).
pub const MAX_DETAILS_BYTES: usize = 8 << 10;

#[derive(Deserialize)]
pub(crate) struct RawRecord {
    id: Option<String>,
    modified: Option<String>,
    published: Option<String>,
    withdrawn: Option<String>,
    aliases: Option<Vec<String>>,
    summary: Option<String>,
    details: Option<String>,
    severity: Option<Vec<RawSeverity>>,
    affected: Option<Vec<RawAffected>>,
    database_specific: Option<Specific>,
    /// An OSV API answer (`{"vulns": [...]}`) instead of a record.
    vulns: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct RawSeverity {
    #[serde(rename = "type")]
    kind: Option<String>,
    score: Option<String>,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    ranges: Option<Vec<RawRange>>,
    versions: Option<Lines>,
    severity: Option<Vec<RawSeverity>>,
    ecosystem_specific: Option<Specific>,
    database_specific: Option<Specific>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: Option<String>,
    name: Option<String>,
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: Option<String>,
    events: Option<Vec<RawEvent>>,
}

#[derive(Deserialize)]
struct RawEvent {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

/// A `versions` list read straight into one string, a version per line
/// (PyPI records list hundreds; one allocation instead of one per version).
/// Empty versions and versions with a line break, which no ecosystem has,
/// are dropped.
#[derive(Default)]
struct Lines(String);

impl<'de> Deserialize<'de> for Lines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lines, D::Error> {
        struct Seq;
        impl<'de> Visitor<'de> for Seq {
            type Value = Lines;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of versions")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Lines, A::Error> {
                let mut out = String::new();
                while seq.next_element_seed(Append(&mut out))?.is_some() {}
                Ok(Lines(out))
            }
        }
        d.deserialize_seq(Seq)
    }
}

struct Append<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a version string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        if !v.is_empty() && !v.contains(['\n', '\r']) {
            if !self.0.is_empty() {
                self.0.push('\n');
            }
            self.0.push_str(v);
        }
        Ok(())
    }
}

/// `database_specific` / `ecosystem_specific`: only `severity` is read, and
/// only when it is a string (some databases put other shapes there).
#[derive(Deserialize)]
struct Specific {
    severity: Option<Value>,
}

impl Specific {
    fn severity(&self) -> Option<&str> {
        self.severity.as_ref()?.as_str()
    }
}

/// A severity as the database keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Severity {
    /// Where it came from: the OSV severity type (`"CVSS_V3"`, `"CVSS_V4"`,
    /// `"CVSS_V2"`, `"Ubuntu"`), or `"database_specific"` /
    /// `"ecosystem_specific"` for a database's own rating.
    pub source: String,
    /// The CVSS vector, or the database's word (`"MODERATE"`).
    pub vector: String,
    /// The computed base score (CVSS v3.x and v4.0 vectors only).
    pub score: Option<f64>,
    /// From the score when there is one, else from the database's word.
    pub rating: Rating,
}

/// What kind of event a range event is; the order is the tie-break when two
/// events name the same version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    Introduced,
    LastAffected,
    Fixed,
    Limit,
}

impl EventKind {
    pub(crate) fn code(self) -> i64 {
        match self {
            EventKind::Introduced => 0,
            EventKind::Fixed => 1,
            EventKind::LastAffected => 2,
            EventKind::Limit => 3,
        }
    }

    pub(crate) fn from_code(c: i64) -> Option<EventKind> {
        Some(match c {
            0 => EventKind::Introduced,
            1 => EventKind::Fixed,
            2 => EventKind::LastAffected,
            3 => EventKind::Limit,
            _ => return None,
        })
    }
}

/// One event of a range: the version at which something changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub version: String,
}

/// A range of a package's versions (`SEMVER` or `ECOSYSTEM`; GIT ranges are
/// not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// `"SEMVER"` or `"ECOSYSTEM"`.
    pub kind: String,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub(crate) struct ParsedAffected {
    pub ecosystem: String,
    pub release: String,
    pub package: String,
    pub name: String,
    pub purl: Option<String>,
    pub ranges: Vec<Range>,
    /// The explicit versions, one per line.
    pub versions: String,
}

/// A record ready for the database.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub id: String,
    pub modified: String,
    pub published: Option<String>,
    pub withdrawn: Option<String>,
    pub summary: Option<String>,
    pub details: Option<String>,
    pub details_truncated: bool,
    pub severity: Option<Severity>,
    pub aliases: Vec<String>,
    pub affected: Vec<ParsedAffected>,
}

/// Parses the JSON text of a file or zip entry: one record, an array of
/// records, or an object with a `vulns` array (an OSV API answer). Each
/// element is its own result, so one bad record in an array skips only it.
pub(crate) fn parse_document(bytes: &[u8]) -> Vec<Result<Parsed, String>> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return match serde_json::from_slice::<Vec<Value>>(bytes) {
            Ok(values) => values.into_iter().map(parse_value).collect(),
            Err(e) => vec![Err(format!("malformed JSON: {e}"))],
        };
    }
    match serde_json::from_slice::<RawRecord>(bytes) {
        Ok(RawRecord {
            id: None,
            vulns: Some(vulns),
            ..
        }) => vulns.into_iter().map(parse_value).collect(),
        Ok(raw) => vec![convert(raw)],
        Err(e) => vec![Err(format!("malformed OSV record: {e}"))],
    }
}

fn parse_value(v: Value) -> Result<Parsed, String> {
    let raw: RawRecord = serde_json::from_value(v).map_err(|e| format!("malformed OSV record: {e}"))?;
    convert(raw)
}

fn convert(raw: RawRecord) -> Result<Parsed, String> {
    let id = raw.id.filter(|s| !s.trim().is_empty()).ok_or("no \"id\"")?;
    if id.len() > 256 {
        return Err(format!("id longer than 256 bytes: {}…", truncate(&id, 40).0));
    }
    let modified = raw.modified.ok_or_else(|| format!("{id}: no \"modified\""))?;
    let (details, details_truncated) = match raw.details {
        Some(d) => {
            let (cut, was_cut) = truncate(&d, MAX_DETAILS_BYTES);
            (Some(cut.to_string()), was_cut)
        }
        None => (None, false),
    };
    let affected_raw = raw.affected.unwrap_or_default();
    let severity = choose_severity(
        raw.severity.as_deref().unwrap_or_default(),
        raw.database_specific.as_ref(),
        &affected_raw,
    );
    let mut affected = Vec::with_capacity(affected_raw.len());
    for a in affected_raw {
        let Some(pkg) = a.package else { continue };
        let (Some(eco), Some(name)) = (pkg.ecosystem, pkg.name) else {
            continue;
        };
        let (ecosystem, release) = split_ecosystem(&eco);
        let package = normalize_package(&ecosystem, &name);
        let ranges = a
            .ranges
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| {
                let kind = r.kind?;
                if kind != "SEMVER" && kind != "ECOSYSTEM" {
                    return None; // GIT (commit hashes) and unknown types
                }
                let events = r
                    .events
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|e| {
                        // One key per event is the rule; keep every key given.
                        [
                            e.introduced.map(|v| (EventKind::Introduced, v)),
                            e.fixed.map(|v| (EventKind::Fixed, v)),
                            e.last_affected.map(|v| (EventKind::LastAffected, v)),
                            e.limit.map(|v| (EventKind::Limit, v)),
                        ]
                    })
                    .flatten()
                    .map(|(kind, version)| Event { kind, version })
                    .collect();
                Some(Range { kind, events })
            })
            .collect();
        affected.push(ParsedAffected {
            ecosystem,
            release,
            package,
            name,
            purl: pkg.purl,
            ranges,
            versions: a.versions.unwrap_or_default().0,
        });
    }
    let mut aliases = raw.aliases.unwrap_or_default();
    aliases.sort();
    aliases.dedup();
    Ok(Parsed {
        id,
        modified,
        published: raw.published,
        withdrawn: raw.withdrawn,
        summary: raw.summary,
        details,
        details_truncated,
        severity,
        aliases,
        affected,
    })
}

/// The longest prefix of `s` of at most `max` bytes ending on a character
/// boundary, and whether anything was cut.
fn truncate(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        return (s, false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// The one severity kept for a record: a CVSS v3.x vector (what most
/// scanners and thresholds use), else a CVSS v4.0 vector, each scored; else
/// the database's own rating (`database_specific.severity`, GHSA's
/// `"HIGH"`…), else an affected entry's `ecosystem_specific.severity` or
/// `database_specific.severity`, else an OSV `Ubuntu` rating, else a CVSS v2
/// vector without a score. Per-affected `severity` arrays count after the
/// record's own.
fn choose_severity(
    record: &[RawSeverity],
    db_specific: Option<&Specific>,
    affected: &[RawAffected],
) -> Option<Severity> {
    let all: Vec<&RawSeverity> = record
        .iter()
        .chain(affected.iter().flat_map(|a| a.severity.iter().flatten()))
        .collect();
    for want in ["CVSS_V3", "CVSS_V4"] {
        for s in &all {
            if s.kind.as_deref() != Some(want) {
                continue;
            }
            let Some(vector) = s.score.as_deref() else { continue };
            if let Ok((version, score)) = cvss::score(vector) {
                let matches = match want {
                    "CVSS_V3" => version != CvssVersion::V4_0,
                    _ => version == CvssVersion::V4_0,
                };
                if matches {
                    return Some(Severity {
                        source: want.to_string(),
                        vector: vector.trim().to_string(),
                        score: Some(score),
                        rating: Rating::from_score(score),
                    });
                }
            }
        }
    }
    let label = |source: &str, word: &str| {
        Rating::from_label(word).map(|rating| Severity {
            source: source.to_string(),
            vector: word.to_string(),
            score: None,
            rating,
        })
    };
    if let Some(s) = db_specific
        .and_then(Specific::severity)
        .and_then(|w| label("database_specific", w))
    {
        return Some(s);
    }
    for a in affected {
        if let Some(s) = a
            .ecosystem_specific
            .as_ref()
            .and_then(Specific::severity)
            .and_then(|w| label("ecosystem_specific", w))
        {
            return Some(s);
        }
        if let Some(s) = a
            .database_specific
            .as_ref()
            .and_then(Specific::severity)
            .and_then(|w| label("database_specific", w))
        {
            return Some(s);
        }
    }
    for s in &all {
        if s.kind.as_deref() == Some("Ubuntu")
            && let Some(found) = s.score.as_deref().and_then(|w| label("Ubuntu", w))
        {
            return Some(found);
        }
    }
    all.iter()
        .find(|s| s.kind.as_deref() == Some("CVSS_V2") && s.score.is_some())
        .map(|s| Severity {
            source: "CVSS_V2".to_string(),
            vector: s.score.clone().unwrap_or_default(),
            score: None,
            rating: Rating::Unknown,
        })
}

/// OSV ecosystem names as the schema spells them; others are kept as given.
const ECOSYSTEMS: &[&str] = &[
    "AlmaLinux",
    "Alpaquita",
    "Alpine",
    "Android",
    "Azure Linux",
    "BellSoft Hardened Containers",
    "Bioconductor",
    "Bitnami",
    "Chainguard",
    "ConanCenter",
    "CRAN",
    "crates.io",
    "Debian",
    "Echo",
    "GHC",
    "GitHub Actions",
    "Go",
    "Hackage",
    "Hex",
    "Julia",
    "Linux",
    "Mageia",
    "Maven",
    "MinimOS",
    "npm",
    "NuGet",
    "openEuler",
    "openSUSE",
    "OSS-Fuzz",
    "Packagist",
    "Photon OS",
    "Pub",
    "PyPI",
    "Red Hat",
    "Rocky Linux",
    "RubyGems",
    "SUSE",
    "SwiftURL",
    "Ubuntu",
    "VSCode",
    "Wolfi",
];

/// Splits an OSV ecosystem into its base, spelled as OSV does
/// (case-insensitively matched: `"pypi"` is `"PyPI"`), and its release
/// (`"Debian:12"` → `("Debian", "12")`, `"Alpine:v3.18"` → `("Alpine",
/// "v3.18")`; `""` when there is none).
pub fn split_ecosystem(ecosystem: &str) -> (String, String) {
    let (base, release) = ecosystem.trim().split_once(':').unwrap_or((ecosystem.trim(), ""));
    let base = ECOSYSTEMS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(base))
        .map_or_else(|| base.to_string(), |e| e.to_string());
    (base, release.to_string())
}

/// A package name as the database looks it up in an ecosystem (give the base
/// from [`split_ecosystem`]): PyPI names PEP 503-normalized (lowercase, runs
/// of `-`, `_`, `.` as one `-`), NuGet ids lowercased (NuGet compares them
/// case-insensitively), every other name as written (Go module paths, npm
/// scopes, Maven `group:artifact`, distribution source packages).
pub fn normalize_package(ecosystem_base: &str, name: &str) -> String {
    match ecosystem_base {
        "PyPI" => {
            let mut out = String::with_capacity(name.len());
            let mut sep = false;
            for c in name.trim().chars() {
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
        "NuGet" => name.trim().to_ascii_lowercase(),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503() {
        assert_eq!(normalize_package("PyPI", "Jinja2"), "jinja2");
        assert_eq!(normalize_package("PyPI", "zope.interface"), "zope-interface");
        assert_eq!(normalize_package("PyPI", "Foo__Bar-.baz"), "foo-bar-baz");
        assert_eq!(normalize_package("npm", "@xmldom/xmldom"), "@xmldom/xmldom");
        assert_eq!(normalize_package("Go", "github.com/Foo/bar"), "github.com/Foo/bar");
    }

    #[test]
    fn ecosystems() {
        assert_eq!(split_ecosystem("Debian:12"), ("Debian".into(), "12".into()));
        assert_eq!(split_ecosystem("pypi"), ("PyPI".into(), "".into()));
        assert_eq!(split_ecosystem("Alpine:v3.18"), ("Alpine".into(), "v3.18".into()));
        assert_eq!(
            split_ecosystem("Ubuntu:Pro:18.04:LTS"),
            ("Ubuntu".into(), "Pro:18.04:LTS".into())
        );
        assert_eq!(split_ecosystem("Newthing"), ("Newthing".into(), "".into()));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        let s = "ééé";
        assert_eq!(truncate(s, 3), ("é", true));
        assert_eq!(truncate(s, 6), ("ééé", false));
    }

    #[test]
    fn documents() {
        let one = br#"{"id":"X-1","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"Foo_Bar"},"ranges":[{"type":"GIT","events":[{"introduced":"0"}]},{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.0"}]}]}]}"#;
        let r = parse_document(one);
        let p = r[0].as_ref().unwrap();
        assert_eq!(p.affected[0].package, "foo-bar");
        assert_eq!(p.affected[0].ranges.len(), 1);
        let arr = br#"[{"id":"A","modified":"m"}, {"id":3}, {"modified":"m"}]"#;
        let r = parse_document(arr);
        assert!(r[0].is_ok() && r[1].is_err() && r[2].is_err());
        let api = br#"{"vulns":[{"id":"A","modified":"m"}]}"#;
        assert_eq!(parse_document(api)[0].as_ref().unwrap().id, "A");
        assert!(parse_document(b"{not json").pop().unwrap().is_err());
    }

    #[test]
    fn versions_lists_and_long_details() {
        let details = "é".repeat(MAX_DETAILS_BYTES);
        let rec = format!(
            r#"{{"id":"V","modified":"m","details":"{details}","affected":[{{"package":{{"ecosystem":"npm","name":"x"}},"versions":["1.0","","1\n2","2.0"]}}]}}"#
        );
        let p = parse_document(rec.as_bytes()).pop().unwrap().unwrap();
        assert_eq!(p.affected[0].versions, "1.0\n2.0");
        assert!(p.details_truncated);
        assert_eq!(p.details.unwrap().len(), MAX_DETAILS_BYTES);
        let rec =
            br#"{"id":"V","modified":"m","affected":[{"package":{"ecosystem":"npm","name":"x"},"versions":[1]}]}"#;
        assert!(parse_document(rec).pop().unwrap().is_err());
    }

    #[test]
    fn severity_choice() {
        let rec = br#"{"id":"G","modified":"m","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"database_specific":{"severity":"MODERATE"}}"#;
        let p = parse_document(rec).pop().unwrap().unwrap();
        let s = p.severity.unwrap();
        assert_eq!(
            (s.source.as_str(), s.score, s.rating),
            ("CVSS_V3", Some(9.8), Rating::Critical)
        );
        let rec = br#"{"id":"G","modified":"m","severity":[],"database_specific":{"severity":"MODERATE"}}"#;
        let s = parse_document(rec).pop().unwrap().unwrap().severity.unwrap();
        assert_eq!(
            (s.source.as_str(), s.score, s.rating),
            ("database_specific", None, Rating::Medium)
        );
        let rec = br#"{"id":"G","modified":"m","affected":[{"ecosystem_specific":{"severity":"low"}}]}"#;
        let s = parse_document(rec).pop().unwrap().unwrap().severity.unwrap();
        assert_eq!(s.rating, Rating::Low);
    }
}
