//! Debian versions, `[epoch:]upstream[-revision]`, ordered as dpkg orders
//! them (dpkg's `parseversion` and `verrevcmp`, lib/dpkg/version.c and
//! parsehelp.c; the oracle is `dpkg --compare-versions`).
//!
//! Validity is `dpkg --validate-version`'s: what dpkg only warns about (an
//! upstream part not starting with a digit, a character outside
//! `[A-Za-z0-9.+~:-]`, or outside `[A-Za-z0-9.+~]` in the revision) is
//! invalid here too, though `--compare-versions` would go on to compare it.

use std::cmp::Ordering;

use crate::num::cmp_decimal;
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed Debian version.
#[derive(Debug, Clone)]
pub struct DpkgVersion {
    /// The epoch (0 when absent); dpkg takes it as a C `int`.
    pub epoch: u32,
    /// The upstream version: never empty, starts with a digit.
    pub upstream: String,
    /// The Debian revision, empty when absent (which orders as `0`).
    pub revision: String,
}

impl DpkgVersion {
    pub fn parse(s: &str) -> Result<DpkgVersion, VersionError> {
        parse(s).map_err(|reason| VersionError::new(Scheme::Dpkg, s, reason))
    }
}

/// `c_isblank`: what dpkg trims around a version.
fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn parse(s: &str) -> Result<DpkgVersion, &'static str> {
    let bytes = s.as_bytes();
    let start = bytes
        .iter()
        .position(|&c| !is_blank(c))
        .ok_or("version string is empty")?;
    let len = bytes[start..]
        .iter()
        .position(|&c| is_blank(c))
        .unwrap_or(bytes.len() - start);
    if bytes[start + len..].iter().any(|&c| !is_blank(c)) {
        return Err("version string has embedded spaces");
    }
    let s = &s[start..start + len];
    let (epoch, rest) = match s.find(':') {
        Some(colon) => {
            let epoch = parse_epoch(&s[..colon])?;
            let rest = &s[colon + 1..];
            if rest.is_empty() {
                return Err("nothing after colon in version number");
            }
            (epoch, rest)
        }
        None => (0, s),
    };
    let (upstream, revision) = match rest.rfind('-') {
        Some(hyphen) => {
            if hyphen + 1 == rest.len() {
                return Err("revision number is empty");
            }
            (&rest[..hyphen], &rest[hyphen + 1..])
        }
        None => (rest, ""),
    };
    let first = *upstream.as_bytes().first().ok_or("version number is empty")?;
    if !first.is_ascii_digit() {
        return Err("version number does not start with digit");
    }
    if !upstream
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b".-+~:".contains(&c))
    {
        return Err("invalid character in version number");
    }
    if !revision
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b".+~".contains(&c))
    {
        return Err("invalid character in revision number");
    }
    Ok(DpkgVersion {
        epoch,
        upstream: upstream.to_owned(),
        revision: revision.to_owned(),
    })
}

/// The epoch as dpkg reads it: C `strtol` (leading white space, a sign,
/// digits) that must end exactly at the colon and fit a non-negative `int`.
fn parse_epoch(e: &str) -> Result<u32, &'static str> {
    let b = e.as_bytes();
    let mut i = b
        .iter()
        .take_while(|&&c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
        .count();
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &e[i..];
    let n = crate::num::digits_len(digits.as_bytes());
    if n == 0 {
        return Err("epoch in version is empty");
    }
    if n != digits.len() {
        return Err("epoch in version is not number");
    }
    let zero = digits.bytes().all(|c| c == b'0');
    if negative && !zero {
        // strtol clamps below LONG_MIN, which is negative all the same.
        return Err("epoch in version is negative");
    }
    if cmp_decimal(digits, &i32::MAX.to_string()) == Ordering::Greater {
        return Err("epoch in version is too big");
    }
    Ok(digits.parse::<u32>().unwrap_or(0))
}

/// dpkg's `order`: digits (and the end) 0, letters their code, `~` before
/// everything, any other character after all letters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs.
pub(crate) fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let non_digit = |s: &[u8], k: usize| s.get(k).is_some_and(|c| !c.is_ascii_digit());
    while i < a.len() || j < b.len() {
        while non_digit(a, i) || non_digit(b, j) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        let da = crate::num::digits_len(a.get(i..).unwrap_or_default());
        let db = crate::num::digits_len(b.get(j..).unwrap_or_default());
        // Both runs are ASCII digits, so these slices are valid UTF-8.
        let ra = std::str::from_utf8(&a[i..i + da]).unwrap_or_default();
        let rb = std::str::from_utf8(&b[j..j + db]).unwrap_or_default();
        let c = cmp_decimal(ra, rb);
        if c != Ordering::Equal {
            return c;
        }
        i += da;
        j += db;
    }
    Ordering::Equal
}

impl Ord for DpkgVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}
order_from_ord!(DpkgVersion);
