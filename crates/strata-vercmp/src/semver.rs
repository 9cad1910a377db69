//! SemVer 2.0.0 precedence (npm, crates.io, NuGet, Hex), with the syntax of
//! npm's `semver` package in strict mode: `MAJOR.MINOR.PATCH[-pre][+build]`,
//! an optional leading `v`, ASCII white space around ignored.
//!
//! Numbers may not have leading zeros (build identifiers may); pre-release
//! identifiers compare numerically when all digits, as ASCII otherwise, and
//! numeric ones before alphanumeric ones; a version with a pre-release is
//! below the same one without; more identifiers win when all before are
//! equal; build metadata is ignored. Unlike npm (which refuses versions over
//! 256 characters or with a major/minor/patch above 2^53 - 1, and compares
//! numeric pre-release identifiers above 2^53 as floating point), numbers
//! here have any size and compare exactly, as the SemVer specification says.

use std::cmp::Ordering;

use crate::num::cmp_decimal;
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed SemVer version (also the core of a Go module version).
#[derive(Debug, Clone)]
pub struct SemVersion {
    pub major: String,
    pub minor: String,
    pub patch: String,
    /// Pre-release identifiers (empty: a release).
    pub pre: Vec<String>,
    /// Build identifiers (ignored by the ordering).
    pub build: Vec<String>,
}

impl SemVersion {
    pub fn parse(s: &str) -> Result<SemVersion, VersionError> {
        let t = s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        let t = t.strip_prefix('v').unwrap_or(t);
        parse_core(t, false).map_err(|reason| VersionError::new(Scheme::SemVer, s, reason))
    }
}

/// `0` or digits without a leading zero.
pub(crate) fn is_numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

fn is_ident_chars(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
}

/// `MAJOR.MINOR.PATCH[-pre][+build]`; with `short`, Go's `MAJOR` and
/// `MAJOR.MINOR` (no suffixes) are accepted too.
pub(crate) fn parse_core(t: &str, short: bool) -> Result<SemVersion, &'static str> {
    let (rest, build) = match t.split_once('+') {
        Some((rest, build)) => {
            let build: Vec<String> = build.split('.').map(str::to_owned).collect();
            if !build.iter().all(|b| is_ident_chars(b)) {
                return Err("bad build metadata");
            }
            (rest, build)
        }
        None => (t, Vec::new()),
    };
    let (main, pre) = match rest.split_once('-') {
        Some((main, pre)) => {
            let pre: Vec<String> = pre.split('.').map(str::to_owned).collect();
            for id in &pre {
                if !is_ident_chars(id) {
                    return Err("bad pre-release identifier");
                }
                if id.bytes().all(|c| c.is_ascii_digit()) && !is_numeric_identifier(id) {
                    return Err("numeric pre-release identifier with a leading zero");
                }
            }
            (main, pre)
        }
        None => (rest, Vec::new()),
    };
    let mut parts = main.split('.');
    let mut next = || parts.next().map(str::to_owned);
    let major = next().ok_or("missing major version")?;
    let (minor, patch) = match (next(), next()) {
        (Some(minor), Some(patch)) => (minor, patch),
        (None, None) if short && pre.is_empty() && build.is_empty() && main.len() == t.len() => {
            ("0".to_owned(), "0".to_owned())
        }
        (Some(minor), None) if short && pre.is_empty() && build.is_empty() && main.len() == t.len() => {
            (minor, "0".to_owned())
        }
        _ => return Err("not MAJOR.MINOR.PATCH"),
    };
    if next().is_some() {
        return Err("more than three version numbers");
    }
    if ![&major, &minor, &patch].iter().all(|n| is_numeric_identifier(n)) {
        return Err("version numbers must be digits without leading zeros");
    }
    Ok(SemVersion {
        major,
        minor,
        patch,
        pre,
        build,
    })
}

fn cmp_identifier(a: &str, b: &str) -> Ordering {
    let an = a.bytes().all(|c| c.is_ascii_digit());
    let bn = b.bytes().all(|c| c.is_ascii_digit());
    match (an, bn) {
        (true, true) => cmp_decimal(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// SemVer precedence of the parts before the build metadata.
pub(crate) fn precedence(a: &SemVersion, b: &SemVersion) -> Ordering {
    cmp_decimal(&a.major, &b.major)
        .then_with(|| cmp_decimal(&a.minor, &b.minor))
        .then_with(|| cmp_decimal(&a.patch, &b.patch))
        .then_with(|| match (a.pre.is_empty(), b.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (x, y) in a.pre.iter().zip(&b.pre) {
                    let c = cmp_identifier(x, y);
                    if c != Ordering::Equal {
                        return c;
                    }
                }
                a.pre.len().cmp(&b.pre.len())
            }
        })
}

impl Ord for SemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        precedence(self, other)
    }
}
order_from_ord!(SemVersion);
