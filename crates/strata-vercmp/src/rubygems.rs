//! RubyGems versions, ordered as `Gem::Version#<=>` (RubyGems 3.3).
//!
//! Valid strings match `Gem::Version::ANCHORED_VERSION_PATTERN`: digits,
//! then `.`-separated alphanumeric segments, then optionally `-` and
//! `.`-separated alphanumeric-or-`-` segments, white space around (an empty
//! or blank string is `0`). `-` reads as `.pre.`. The version is cut into
//! runs of digits (numbers, any size) and of letters (strings); trailing
//! zeros of the leading numeric part and of the rest are dropped; then
//! segments compare in order, a missing one as `0`, a string below a number
//! (so `1.0.a` < `1.0`), strings bytewise.

use std::cmp::Ordering;

use crate::num::{cmp_decimal, is_zero};
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed gem version: its canonical segments.
#[derive(Debug, Clone)]
pub struct GemVersion {
    segments: Vec<Segment>,
    /// Whether any segment is a string (a pre-release).
    prerelease: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Digits without leading zeros (`""` for zero).
    Number(String),
    Text(String),
}

/// Ruby's `\s`.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn alnum_segment(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// `[0-9]+(\.[0-9a-zA-Z]+)*(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?`
fn matches_pattern(v: &str) -> bool {
    let (main, pre) = match v.split_once('-') {
        Some((main, pre)) => (main, Some(pre)),
        None => (v, None),
    };
    let mut parts = main.split('.');
    let first_ok = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    if !first_ok || !parts.all(alnum_segment) {
        return false;
    }
    match pre {
        None => true,
        Some(pre) => pre
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')),
    }
}

impl GemVersion {
    pub fn parse(s: &str) -> Result<GemVersion, VersionError> {
        let v = s.trim_matches(is_space);
        if !v.is_empty() && !matches_pattern(v) {
            return Err(VersionError::new(
                Scheme::RubyGems,
                s,
                "malformed version number string",
            ));
        }
        let mut segments = Vec::new();
        let b = v.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let run = |f: fn(&u8) -> bool| b[i..].iter().take_while(|c| f(c)).count();
            let n = run(u8::is_ascii_digit);
            if n > 0 {
                segments.push(Segment::Number(v[i..i + n].trim_start_matches('0').to_owned()));
                i += n;
                continue;
            }
            let n = run(u8::is_ascii_alphabetic);
            if n > 0 {
                segments.push(Segment::Text(v[i..i + n].to_owned()));
                i += n;
                continue;
            }
            if b[i] == b'-' {
                // `Gem::Version` reads `-` as `.pre.`.
                segments.push(Segment::Text("pre".to_owned()));
            }
            i += 1;
        }
        let prerelease = segments.iter().any(|s| matches!(s, Segment::Text(_)));
        // Canonical segments: the numeric part before the first string and
        // the rest, each without trailing zeros.
        let split = segments
            .iter()
            .position(|s| matches!(s, Segment::Text(_)))
            .unwrap_or(segments.len());
        let mut rest = segments.split_off(split);
        let trim = |v: &mut Vec<Segment>| {
            while v.last().is_some_and(|s| matches!(s, Segment::Number(n) if is_zero(n))) {
                v.pop();
            }
        };
        trim(&mut segments);
        trim(&mut rest);
        segments.append(&mut rest);
        Ok(GemVersion { segments, prerelease })
    }

    /// Whether the version has letters (`1.0.a`, `1.0-rc1`).
    pub fn is_prerelease(&self) -> bool {
        self.prerelease
    }
}

impl Ord for GemVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let zero = Segment::Number(String::new());
        for i in 0..self.segments.len().max(other.segments.len()) {
            let a = self.segments.get(i).unwrap_or(&zero);
            let b = other.segments.get(i).unwrap_or(&zero);
            let c = match (a, b) {
                (Segment::Number(x), Segment::Number(y)) => cmp_decimal(x, y),
                (Segment::Text(x), Segment::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
                (Segment::Text(_), Segment::Number(_)) => Ordering::Less,
                (Segment::Number(_), Segment::Text(_)) => Ordering::Greater,
            };
            if c != Ordering::Equal {
                return c;
            }
        }
        Ordering::Equal
    }
}
order_from_ord!(GemVersion);
