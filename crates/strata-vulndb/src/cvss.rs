//! CVSS vectors: parsing and base scores for v3.0, v3.1 and v4.0, and the
//! qualitative rating of a score.
//!
//! v3.x follows the formulas of the CVSS v3.1 specification (section 7),
//! including its `Roundup`, which is also used for v3.0 vectors: it is the
//! v3.0 "round up to one decimal" without the floating-point slips that the
//! v3.1 specification fixed. Only the base metrics count for v3; temporal and
//! environmental metrics are checked but do not change the score.
//!
//! v4.0 follows the MacroVector interpolation of the CVSS v4.0 specification
//! (section 8) as the reference calculator (FIRST / Red Hat `cvss40.js`,
//! with its half-up rounding) computes it, threat and
//! environmental metrics included when the vector carries them (for a vector
//! of base metrics only, this is the CVSS-B score).

use std::fmt;

use crate::cvss4_table::MACROVECTOR_SCORES;

/// Why a CVSS vector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CvssError {
    #[error("not a CVSS vector (no CVSS:3.0, CVSS:3.1 or CVSS:4.0 prefix): {0:?}")]
    Prefix(String),
    #[error("malformed metric {0:?}")]
    Malformed(String),
    #[error("unknown metric or value {0:?}")]
    Unknown(String),
    #[error("metric {0} given twice")]
    Duplicate(String),
    #[error("base metric {0} missing")]
    Missing(&'static str),
}

/// The CVSS version of a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CvssVersion {
    V3_0,
    V3_1,
    V4_0,
}

impl CvssVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            CvssVersion::V3_0 => "3.0",
            CvssVersion::V3_1 => "3.1",
            CvssVersion::V4_0 => "4.0",
        }
    }
}

/// The qualitative severity of a score (CVSS v3.1 table 14, the same bands in
/// v4.0), or a database's own rating mapped onto those names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rating {
    /// A rating the record gives in words this crate does not know.
    Unknown,
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Rating {
    /// The band of a score: 0 None, 0.1–3.9 Low, 4.0–6.9 Medium,
    /// 7.0–8.9 High, 9.0–10.0 Critical.
    pub fn from_score(score: f64) -> Rating {
        if score <= 0.0 {
            Rating::None
        } else if score < 4.0 {
            Rating::Low
        } else if score < 7.0 {
            Rating::Medium
        } else if score < 9.0 {
            Rating::High
        } else {
            Rating::Critical
        }
    }

    /// A database's word for a severity (`"HIGH"`, `"moderate"`, `"Critical"`,
    /// Debian's `"unimportant"`…), case-insensitively; `None` for words that
    /// carry no rating.
    pub fn from_label(label: &str) -> Option<Rating> {
        let l = label.trim().to_ascii_lowercase();
        Some(match l.as_str() {
            "critical" => Rating::Critical,
            "high" | "important" => Rating::High,
            "medium" | "moderate" => Rating::Medium,
            "low" | "negligible" | "unimportant" | "minor" => Rating::Low,
            "none" | "informational" | "info" => Rating::None,
            "" | "unknown" | "not yet assigned" | "untriaged" => return None,
            _ => Rating::Unknown,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Unknown => "UNKNOWN",
            Rating::None => "NONE",
            Rating::Low => "LOW",
            Rating::Medium => "MEDIUM",
            Rating::High => "HIGH",
            Rating::Critical => "CRITICAL",
        }
    }

    /// The inverse of [`Rating::as_str`].
    pub fn parse(s: &str) -> Option<Rating> {
        Some(match s {
            "UNKNOWN" => Rating::Unknown,
            "NONE" => Rating::None,
            "LOW" => Rating::Low,
            "MEDIUM" => Rating::Medium,
            "HIGH" => Rating::High,
            "CRITICAL" => Rating::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Rating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The version and score of a CVSS v3.x or v4.0 vector.
pub fn score(vector: &str) -> Result<(CvssVersion, f64), CvssError> {
    let v = vector.trim();
    if let Some(rest) = v.strip_prefix("CVSS:3.1/") {
        Ok((CvssVersion::V3_1, score_v3_metrics(rest)?))
    } else if let Some(rest) = v.strip_prefix("CVSS:3.0/") {
        Ok((CvssVersion::V3_0, score_v3_metrics(rest)?))
    } else if let Some(rest) = v.strip_prefix("CVSS:4.0/") {
        Ok((CvssVersion::V4_0, score_v4_metrics(rest)?))
    } else {
        Err(CvssError::Prefix(v.chars().take(40).collect()))
    }
}

/// Splits `K:V/K:V…` checking each metric against `allowed` (metric, values)
/// and calling `set(index, value)`; duplicates are refused.
fn parse_metrics<'a>(
    rest: &'a str,
    allowed: &[(&'static str, &[&'static str])],
    mut set: impl FnMut(usize, &'a str),
) -> Result<(), CvssError> {
    let mut seen = vec![false; allowed.len()];
    for part in rest.split('/') {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| CvssError::Malformed(part.to_string()))?;
        let i = allowed
            .iter()
            .position(|(name, values)| *name == k && values.contains(&v))
            .ok_or_else(|| CvssError::Unknown(part.to_string()))?;
        if std::mem::replace(&mut seen[i], true) {
            return Err(CvssError::Duplicate(k.to_string()));
        }
        set(i, v);
    }
    Ok(())
}

const V3_METRICS: &[(&str, &[&str])] = &[
    ("AV", &["N", "A", "L", "P"]),
    ("AC", &["L", "H"]),
    ("PR", &["N", "L", "H"]),
    ("UI", &["N", "R"]),
    ("S", &["U", "C"]),
    ("C", &["H", "L", "N"]),
    ("I", &["H", "L", "N"]),
    ("A", &["H", "L", "N"]),
    // Temporal and environmental: checked, not scored.
    ("E", &["X", "H", "F", "P", "U"]),
    ("RL", &["X", "U", "W", "T", "O"]),
    ("RC", &["X", "C", "R", "U"]),
    ("CR", &["X", "H", "M", "L"]),
    ("IR", &["X", "H", "M", "L"]),
    ("AR", &["X", "H", "M", "L"]),
    ("MAV", &["X", "N", "A", "L", "P"]),
    ("MAC", &["X", "L", "H"]),
    ("MPR", &["X", "N", "L", "H"]),
    ("MUI", &["X", "N", "R"]),
    ("MS", &["X", "U", "C"]),
    ("MC", &["X", "H", "L", "N"]),
    ("MI", &["X", "H", "L", "N"]),
    ("MA", &["X", "H", "L", "N"]),
];

/// CVSS v3.1 `Roundup` (specification appendix A): the smallest number with
/// one decimal that is at least `x`, computed on integers so that 4.000000001
/// from floating-point noise stays 4.0.
fn roundup(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

fn score_v3_metrics(rest: &str) -> Result<f64, CvssError> {
    let mut vals: [&str; 8] = [""; 8];
    parse_metrics(rest, V3_METRICS, |i, v| {
        if i < 8 {
            vals[i] = v;
        }
    })?;
    for (i, v) in vals.iter().enumerate() {
        if v.is_empty() {
            return Err(CvssError::Missing(V3_METRICS[i].0));
        }
    }
    let [av, ac, pr, ui, s, c, i, a] = vals;
    let changed = s == "C";
    let cia = |v: &str| match v {
        "H" => 0.56,
        "L" => 0.22,
        _ => 0.0,
    };
    let av = match av {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        _ => 0.2,
    };
    let ac = if ac == "L" { 0.77 } else { 0.44 };
    let pr = match (pr, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = if ui == "N" { 0.85 } else { 0.62 };
    let iss = 1.0 - ((1.0 - cia(c)) * (1.0 - cia(i)) * (1.0 - cia(a)));
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    Ok(if impact <= 0.0 {
        0.0
    } else if changed {
        roundup(f64::min(1.08 * (impact + exploitability), 10.0))
    } else {
        roundup(f64::min(impact + exploitability, 10.0))
    })
}

// ---- CVSS v4.0 ----

/// Metric order of the specification; the first 11 are the mandatory base.
const V4_METRICS: &[(&str, &[&str])] = &[
    ("AV", &["N", "A", "L", "P"]),
    ("AC", &["L", "H"]),
    ("AT", &["N", "P"]),
    ("PR", &["N", "L", "H"]),
    ("UI", &["N", "P", "A"]),
    ("VC", &["H", "L", "N"]),
    ("VI", &["H", "L", "N"]),
    ("VA", &["H", "L", "N"]),
    ("SC", &["H", "L", "N"]),
    ("SI", &["H", "L", "N"]),
    ("SA", &["H", "L", "N"]),
    ("E", &["X", "A", "P", "U"]),
    ("CR", &["X", "H", "M", "L"]),
    ("IR", &["X", "H", "M", "L"]),
    ("AR", &["X", "H", "M", "L"]),
    ("MAV", &["X", "N", "A", "L", "P"]),
    ("MAC", &["X", "L", "H"]),
    ("MAT", &["X", "N", "P"]),
    ("MPR", &["X", "N", "L", "H"]),
    ("MUI", &["X", "N", "P", "A"]),
    ("MVC", &["X", "H", "L", "N"]),
    ("MVI", &["X", "H", "L", "N"]),
    ("MVA", &["X", "H", "L", "N"]),
    ("MSC", &["X", "H", "L", "N"]),
    ("MSI", &["X", "S", "H", "L", "N"]),
    ("MSA", &["X", "S", "H", "L", "N"]),
    ("S", &["X", "N", "P"]),
    ("AU", &["X", "N", "Y"]),
    ("R", &["X", "A", "U", "I"]),
    ("V", &["X", "D", "C"]),
    ("RE", &["X", "L", "M", "H"]),
    ("U", &["X", "Clear", "Green", "Amber", "Red"]),
];

/// A parsed v4.0 vector: the value of every metric, `"X"` where not given.
struct V4<'a> {
    vals: Vec<&'a str>,
}

impl<'a> V4<'a> {
    fn raw(&self, metric: &str) -> &'a str {
        V4_METRICS
            .iter()
            .position(|(n, _)| *n == metric)
            .map_or("X", |i| self.vals[i])
    }

    /// The effective value of a metric: threat and requirement metrics not
    /// given count as their worst case (E:A, CR/IR/AR:H); a modified metric
    /// given overrides its base metric.
    fn m(&self, metric: &str) -> &'a str {
        let selected = self.raw(metric);
        match (metric, selected) {
            ("E", "X") => return "A",
            ("CR" | "IR" | "AR", "X") => return "H",
            _ => {}
        }
        let modified = self.raw(&format!("M{metric}"));
        if modified != "X" { modified } else { selected }
    }

    fn is(&self, metric: &str, value: &str) -> bool {
        self.m(metric) == value
    }

    fn macrovector(&self) -> [u8; 6] {
        let (av_n, pr_n, ui_n) = (self.is("AV", "N"), self.is("PR", "N"), self.is("UI", "N"));
        let eq1 = if av_n && pr_n && ui_n {
            0
        } else if (av_n || pr_n || ui_n) && !self.is("AV", "P") {
            1
        } else {
            2
        };
        let eq2 = if self.is("AC", "L") && self.is("AT", "N") { 0 } else { 1 };
        let (vc_h, vi_h, va_h) = (self.is("VC", "H"), self.is("VI", "H"), self.is("VA", "H"));
        let eq3 = if vc_h && vi_h {
            0
        } else if vc_h || vi_h || va_h {
            1
        } else {
            2
        };
        let eq4 = if self.is("MSI", "S") || self.is("MSA", "S") {
            0
        } else if self.is("SC", "H") || self.is("SI", "H") || self.is("SA", "H") {
            1
        } else {
            2
        };
        let eq5 = match self.m("E") {
            "A" => 0,
            "P" => 1,
            _ => 2,
        };
        let eq6 = if (self.is("CR", "H") && vc_h) || (self.is("IR", "H") && vi_h) || (self.is("AR", "H") && va_h) {
            0
        } else {
            1
        };
        [eq1, eq2, eq3, eq4, eq5, eq6]
    }
}

fn macro_score(eq: [u8; 6]) -> f64 {
    let key: String = eq.iter().map(|d| char::from(b'0' + d)).collect();
    MACROVECTOR_SCORES
        .binary_search_by(|(k, _)| k.cmp(&key.as_str()))
        .map_or(f64::NAN, |i| MACROVECTOR_SCORES[i].1)
}

/// Severity levels of metric values used for the distance to a MacroVector's
/// highest-severity vectors (0 is the most severe).
fn level(metric: &str, value: &str) -> f64 {
    match (metric, value) {
        ("AV", "N") | ("PR", "N") | ("UI", "N") | ("AC", "L") | ("AT", "N") => 0.0,
        ("AV", "A") | ("PR", "L") | ("UI", "P") | ("AC", "H") | ("AT", "P") => 0.1,
        ("AV", "L") | ("PR", "H") | ("UI", "A") => 0.2,
        ("AV", "P") => 0.3,
        ("VC" | "VI" | "VA", "H") => 0.0,
        ("VC" | "VI" | "VA", "L") => 0.1,
        ("VC" | "VI" | "VA", "N") => 0.2,
        ("SC" | "SI" | "SA", "S") => 0.0,
        ("SC" | "SI" | "SA", "H") => 0.1,
        ("SC" | "SI" | "SA", "L") => 0.2,
        ("SC" | "SI" | "SA", "N") => 0.3,
        ("CR" | "IR" | "AR", "H") => 0.0,
        ("CR" | "IR" | "AR", "M") => 0.1,
        ("CR" | "IR" | "AR", "L") => 0.2,
        _ => f64::NAN,
    }
}

/// The highest-severity vectors of each EQ level (specification table 24);
/// EQ3 and EQ6 are joint, indexed `[eq3][eq6]`.
fn eq_maxes(eq: usize, level: u8, eq6: u8) -> &'static [&'static str] {
    match (eq, level, eq6) {
        (1, 0, _) => &["AV:N/PR:N/UI:N"],
        (1, 1, _) => &["AV:A/PR:N/UI:N", "AV:N/PR:L/UI:N", "AV:N/PR:N/UI:P"],
        (1, 2, _) => &["AV:P/PR:N/UI:N", "AV:A/PR:L/UI:P"],
        (2, 0, _) => &["AC:L/AT:N"],
        (2, 1, _) => &["AC:H/AT:N", "AC:L/AT:P"],
        (3, 0, 0) => &["VC:H/VI:H/VA:H/CR:H/IR:H/AR:H"],
        (3, 0, 1) => &["VC:H/VI:H/VA:L/CR:M/IR:M/AR:H", "VC:H/VI:H/VA:H/CR:M/IR:M/AR:M"],
        (3, 1, 0) => &["VC:L/VI:H/VA:H/CR:H/IR:H/AR:H", "VC:H/VI:L/VA:H/CR:H/IR:H/AR:H"],
        (3, 1, 1) => &[
            "VC:L/VI:H/VA:L/CR:H/IR:M/AR:H",
            "VC:L/VI:H/VA:H/CR:H/IR:M/AR:M",
            "VC:H/VI:L/VA:H/CR:M/IR:H/AR:M",
            "VC:H/VI:L/VA:L/CR:M/IR:H/AR:H",
            "VC:L/VI:L/VA:H/CR:H/IR:H/AR:M",
        ],
        (3, 2, _) => &["VC:L/VI:L/VA:L/CR:H/IR:H/AR:H"],
        (4, 0, _) => &["SC:H/SI:S/SA:S"],
        (4, 1, _) => &["SC:H/SI:H/SA:H"],
        (4, 2, _) => &["SC:L/SI:L/SA:L"],
        _ => &[],
    }
}

/// The depth (maximal severity distance + 1) of each EQ level, table 25.
fn max_severity(eq: usize, level: u8, eq6: u8) -> f64 {
    let depth = match (eq, level, eq6) {
        (1, 0, _) => 1,
        (1, 1, _) => 4,
        (1, 2, _) => 5,
        (2, 0, _) => 1,
        (2, 1, _) => 2,
        (3, 0, 0) => 7,
        (3, 0, 1) => 6,
        (3, 1, _) => 8,
        (3, 2, _) => 10,
        (4, 0, _) => 6,
        (4, 1, _) => 5,
        (4, 2, _) => 4,
        _ => 1,
    };
    f64::from(depth)
}

const DISTANCE_METRICS: [&str; 14] = [
    "AV", "PR", "UI", "AC", "AT", "VC", "VI", "VA", "SC", "SI", "SA", "CR", "IR", "AR",
];

fn score_v4_metrics(rest: &str) -> Result<f64, CvssError> {
    let mut vals = vec!["X"; V4_METRICS.len()];
    let mut given = vec![false; V4_METRICS.len()];
    parse_metrics(rest, V4_METRICS, |i, v| {
        vals[i] = v;
        given[i] = true;
    })?;
    if let Some(i) = given.iter().take(11).position(|g| !g) {
        return Err(CvssError::Missing(V4_METRICS[i].0));
    }
    let v = V4 { vals };

    // No impact on any system: 0 whatever else.
    if ["VC", "VI", "VA", "SC", "SI", "SA"].iter().all(|m| v.is(m, "N")) {
        return Ok(0.0);
    }
    let mv = v.macrovector();
    let [eq1, eq2, eq3, eq4, _eq5, eq6] = mv;
    let mut value = macro_score(mv);

    // The score of the next lower MacroVector along each EQ (NaN if none).
    let lower = |d: [u8; 6]| {
        let mut m = mv;
        for (x, dx) in m.iter_mut().zip(d) {
            *x += dx;
        }
        macro_score(m)
    };
    let score_eq1 = lower([1, 0, 0, 0, 0, 0]);
    let score_eq2 = lower([0, 1, 0, 0, 0, 0]);
    let score_eq3eq6 = match (eq3, eq6) {
        (1, 1) | (0, 1) => lower([0, 0, 1, 0, 0, 0]),
        (1, 0) => lower([0, 0, 0, 0, 0, 1]),
        (0, 0) => {
            let left = lower([0, 0, 0, 0, 0, 1]);
            let right = lower([0, 0, 1, 0, 0, 0]);
            if left > right { left } else { right }
        }
        _ => lower([0, 0, 1, 0, 0, 1]),
    };
    let score_eq4 = lower([0, 0, 0, 1, 0, 0]);
    let score_eq5 = lower([0, 0, 0, 0, 1, 0]);

    // The highest-severity vectors of this MacroVector; take the first that
    // the scored vector does not exceed in any metric (the last if none).
    let mut dist = [0.0f64; 14];
    'outer: for a in eq_maxes(1, eq1, 0) {
        for b in eq_maxes(2, eq2, 0) {
            for c in eq_maxes(3, eq3, eq6) {
                for d in eq_maxes(4, eq4, 0) {
                    let max: Vec<(&str, &str)> = [*a, *b, *c, *d]
                        .iter()
                        .flat_map(|s| s.split('/'))
                        .filter_map(|p| p.split_once(':'))
                        .collect();
                    for (k, metric) in DISTANCE_METRICS.iter().enumerate() {
                        let maxv = max.iter().find(|(n, _)| n == metric).map_or("X", |p| p.1);
                        dist[k] = level(metric, v.m(metric)) - level(metric, maxv);
                    }
                    if !dist.iter().any(|d| *d < 0.0) {
                        break 'outer;
                    }
                }
            }
        }
    }
    let [av, pr, ui, ac, at, vc, vi, va, sc, si, sa, cr, ir, ar] = dist;
    let current_eq1 = av + pr + ui;
    let current_eq2 = ac + at;
    let current_eq3eq6 = vc + vi + va + cr + ir + ar;
    let current_eq4 = sc + si + sa;

    let step = 0.1;
    let mut n_lower = 0;
    let mut sum = 0.0;
    let mut add = |available: f64, current: f64, depth: f64| {
        if !available.is_nan() {
            n_lower += 1;
            sum += available * (current / depth);
        }
    };
    add(value - score_eq1, current_eq1, max_severity(1, eq1, 0) * step);
    add(value - score_eq2, current_eq2, max_severity(2, eq2, 0) * step);
    add(value - score_eq3eq6, current_eq3eq6, max_severity(3, eq3, eq6) * step);
    add(value - score_eq4, current_eq4, max_severity(4, eq4, 0) * step);
    // EQ5 counts as an existing lower MacroVector but moves nothing.
    add(value - score_eq5, 0.0, 1.0);
    let mean = if n_lower == 0 { 0.0 } else { sum / f64::from(n_lower) };
    value -= mean;
    value = value.clamp(0.0, 10.0);
    // Round half up, with the reference calculator's epsilon so that
    // 1.4499999999999993 (8.6 - 7.15 in floating point) becomes 1.5.
    Ok(((value + 1e-6) * 10.0 + 0.5).floor() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundup_is_exact_on_noise() {
        assert_eq!(roundup(4.000_000_000_1), 4.0);
        assert_eq!(roundup(4.02), 4.1);
        assert_eq!(roundup(4.0), 4.0);
    }

    #[test]
    fn every_macrovector_digit_is_in_range() {
        for (k, s) in MACROVECTOR_SCORES {
            assert_eq!(k.len(), 6);
            assert!((0.0..=10.0).contains(&s), "{k}");
        }
        assert!(MACROVECTOR_SCORES.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
