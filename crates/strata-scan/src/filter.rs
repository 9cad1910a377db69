//! Filters over a report: Trivy's `--severity`, `--ignore-unfixed` and
//! `.trivyignore`; Docker Scout's `--only-severity`, `--only-fixed`,
//! `--only-unfixed`, `--only-package-type`, `--only-cve-id`, `--ignore-base`.

use std::path::Path;

use strata_sbom::PackageType;
use strata_vulndb::Rating;

use crate::{Finding, Report, ScanError, Status};

/// The five severities Trivy knows, lowest first.
pub(crate) const ALL_SEVERITIES: [Rating; 5] = [
    Rating::Unknown,
    Rating::Low,
    Rating::Medium,
    Rating::High,
    Rating::Critical,
];

/// Parses a comma-separated severity list (`CRITICAL,HIGH`, Scout's
/// `critical,high`; `moderate` is MEDIUM), in Trivy's order (lowest first),
/// without repeats.
pub fn parse_severities(list: &str) -> Result<Vec<Rating>, ScanError> {
    let mut out = Vec::new();
    for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let r = match word.to_ascii_uppercase().as_str() {
            "UNKNOWN" | "UNSPECIFIED" => Rating::Unknown,
            "LOW" => Rating::Low,
            "MEDIUM" | "MODERATE" => Rating::Medium,
            "HIGH" => Rating::High,
            "CRITICAL" => Rating::Critical,
            _ => return Err(ScanError::Severity(word.to_string())),
        };
        if !out.contains(&r) {
            out.push(r);
        }
    }
    out.sort();
    Ok(out)
}

/// What to keep of a report. The default keeps everything.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Trivy's `--severity` / Scout's `--only-severity`: keep these ratings
    /// only (UNKNOWN only when listed). `None`: all.
    pub severities: Option<Vec<Rating>>,
    /// Trivy's `--ignore-unfixed`, Scout's `--only-fixed`: drop findings
    /// without a fixed version.
    pub ignore_unfixed: bool,
    /// Scout's `--only-unfixed`: drop findings with a fixed version.
    pub only_unfixed: bool,
    /// Scout's `--only-package-type`: purl types (`deb`, `apk`, `rpm`,
    /// `pypi`, `npm`, `golang`, `maven`, `gem`, `cargo`) or strata's kinds
    /// (`python`, `go-module`, `java-archive`). Empty: all.
    pub only_package_types: Vec<String>,
    /// Scout's `--only-cve-id`: keep these IDs (matched against the ID and
    /// the aliases). Empty: all.
    pub only_ids: Vec<String>,
    /// Scout's `--ignore-base`: drop findings from the base image's layers.
    pub ignore_base: bool,
    /// `.trivyignore` entries (expired ones already dropped).
    pub ignore: IgnoreList,
}

/// One line of a `.trivyignore`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoreEntry {
    pub id: String,
    /// `exp:YYYY-MM-DD` as given: the entry applies until that day's
    /// 00:00:00 UTC (Trivy's `time.Parse` of the date, compared with now).
    pub expires: Option<String>,
    pub line: usize,
}

/// A parsed `.trivyignore`: IDs one per line, `#` comments, blank lines,
/// and an optional `exp:YYYY-MM-DD` field after the ID. As Trivy does,
/// entries already expired are dropped at parse time, and a line whose
/// expiry date does not parse is skipped (with a warning).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreList {
    pub entries: Vec<IgnoreEntry>,
    /// Entries dropped because they expired, for reporting.
    pub expired: Vec<IgnoreEntry>,
    /// Lines skipped and why.
    pub warnings: Vec<String>,
}

impl IgnoreList {
    /// Parses the text of a `.trivyignore`, keeping entries that have not
    /// expired at `now` (Unix seconds).
    pub fn parse(text: &str, now: i64) -> IgnoreList {
        let mut list = IgnoreList::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let mut expires = None;
            let mut bad = None;
            // Trivy reads the first `exp:` field among all fields.
            if let Some(date) = fields.iter().find_map(|f| f.strip_prefix("exp:")) {
                match parse_date(date) {
                    Some(t) => expires = Some((date.to_string(), t)),
                    None => bad = Some(date.to_string()),
                }
            }
            if let Some(date) = bad {
                list.warnings.push(format!(
                    "line {}: expiration date {date:?} is not YYYY-MM-DD; entry {} skipped",
                    i + 1,
                    fields[0]
                ));
                continue;
            }
            let entry = IgnoreEntry {
                id: fields[0].to_string(),
                expires: expires.as_ref().map(|(d, _)| d.clone()),
                line: i + 1,
            };
            match expires {
                Some((_, t)) if t < now => list.expired.push(entry),
                _ => list.entries.push(entry),
            }
        }
        list
    }

    /// Reads and parses an ignore file; a missing file is an empty list
    /// (as Trivy treats a missing `.trivyignore`).
    pub fn load(path: &Path, now: i64) -> Result<IgnoreList, ScanError> {
        match std::fs::read(path) {
            Ok(b) => Ok(IgnoreList::parse(&String::from_utf8_lossy(&b), now)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(IgnoreList::default()),
            Err(source) => Err(ScanError::IgnoreFile {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The entry that ignores a finding: by its ID (what Trivy matches), or
    /// — an addition — by one of its aliases or record IDs, so that a
    /// GHSA-… line also hides the finding reported as its CVE.
    pub fn matching(&self, f: &Finding) -> Option<&IgnoreEntry> {
        self.entries
            .iter()
            .find(|e| e.id == f.id || f.aliases.contains(&e.id) || f.advisory_ids.contains(&e.id))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `YYYY-MM-DD` → Unix seconds at 00:00:00 UTC that day.
fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = &s[r];
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The purl type of a package kind (Scout's package type names).
pub(crate) fn purl_type(k: PackageType) -> &'static str {
    match k {
        PackageType::Deb => "deb",
        PackageType::Apk => "apk",
        PackageType::Rpm => "rpm",
        PackageType::Python => "pypi",
        PackageType::Npm => "npm",
        PackageType::Cargo => "cargo",
        PackageType::GoModule => "golang",
        PackageType::JavaArchive => "maven",
        PackageType::Gem => "gem",
    }
}

impl Filter {
    /// Whether the filter keeps `f` (the ignore list aside).
    fn keeps(&self, f: &Finding) -> bool {
        if let Some(s) = &self.severities
            && !s.contains(&f.rating)
        {
            return false;
        }
        if self.ignore_unfixed && f.status != Status::Fixed {
            return false;
        }
        if self.only_unfixed && f.status == Status::Fixed {
            return false;
        }
        if self.ignore_base && f.in_base_image {
            return false;
        }
        if !self.only_package_types.is_empty() {
            let kind = f.package.kind;
            let ok = self
                .only_package_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(purl_type(kind)) || t.eq_ignore_ascii_case(kind.as_str()));
            if !ok {
                return false;
            }
        }
        if !self.only_ids.is_empty() && !self.only_ids.iter().any(|id| *id == f.id || f.aliases.contains(id)) {
            return false;
        }
        true
    }
}

pub(crate) fn apply(report: &mut Report, filter: &Filter) {
    if let Some(s) = &filter.severities {
        report.severities = ALL_SEVERITIES.iter().copied().filter(|r| s.contains(r)).collect();
    }
    for w in &filter.ignore.warnings {
        let note = format!("ignore file: {w}");
        if !report.notes.contains(&note) {
            report.notes.push(note);
        }
    }
    let findings = std::mem::take(&mut report.findings);
    for f in findings {
        if !filter.keeps(&f) {
            continue;
        }
        if filter.ignore.matching(&f).is_some() {
            report.ignored.push(f);
        } else {
            report.findings.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(1_709_164_800));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-1-01"), None);
        assert_eq!(parse_date("2024-13-01"), None);
    }

    #[test]
    fn severities() {
        assert_eq!(
            parse_severities("HIGH,critical, high").unwrap(),
            vec![Rating::High, Rating::Critical]
        );
        assert!(parse_severities("SEVERE").is_err());
    }
}
