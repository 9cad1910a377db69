//! RPM versions, `[epoch:]version[-release]`, ordered as rpm 4.18 orders
//! them: the string is split as `rpmverParse` splits it and each part is
//! compared with `rpmvercmp` (the oracle is python3-rpm's `rpm.ver`).
//!
//! `rpmvercmp` walks runs of ASCII letters or digits, skipping everything
//! else as separators; digits beat letters, numbers compare by value, `~`
//! sorts before anything (even the end) and `^` after the end but before any
//! further segment. A missing epoch is `0`; a missing release sorts before
//! any release, as in rpm's EVR comparison. Only the empty string (and one
//! with a NUL, which a C string cannot hold) is invalid.

use std::cmp::Ordering;

use crate::num::cmp_decimal;
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed `[epoch:]version[-release]`.
#[derive(Debug, Clone)]
pub struct RpmVersion {
    /// The epoch as written (digits, possibly empty), `None` when absent.
    pub epoch: Option<String>,
    pub version: String,
    pub release: Option<String>,
}

impl RpmVersion {
    /// Splits as rpm's `parseEVR`: leading digits followed by `:` are the
    /// epoch; after the last `-` (past those digits) is the release.
    pub fn parse(s: &str) -> Result<RpmVersion, VersionError> {
        if s.is_empty() {
            return Err(VersionError::new(Scheme::Rpm, s, "empty version"));
        }
        if s.contains('\0') {
            // rpm's strings are C strings: a NUL would end them.
            return Err(VersionError::new(Scheme::Rpm, s, "NUL character"));
        }
        let digits = crate::num::digits_len(s.as_bytes());
        let (epoch, after_epoch) = match s.as_bytes().get(digits) {
            Some(b':') => (Some(s[..digits].to_owned()), &s[digits + 1..]),
            _ => (None, s),
        };
        let (version, release) = match after_epoch.rfind('-') {
            Some(i) => (&after_epoch[..i], Some(after_epoch[i + 1..].to_owned())),
            None => (after_epoch, None),
        };
        Ok(RpmVersion {
            epoch,
            version: version.to_owned(),
            release,
        })
    }
}

/// rpm's `rpmvercmp` on two version or release strings.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while i < a.len() && sep(a[i]) {
            i += 1;
        }
        while j < b.len() && sep(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(ca), Some(_)) = (ca, cb) else { break };
        // The segment's kind is set by a's character; b's segment is the
        // run of that same kind (possibly empty).
        let numeric = ca.is_ascii_digit();
        let run = |s: &[u8], k: usize| {
            s[k..]
                .iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (run(a, i), run(b, j));
        if nb == 0 {
            // A number beats letters; letters lose to a number.
            return if numeric { Ordering::Greater } else { Ordering::Less };
        }
        let (sa, sb) = (&a[i..i + na], &b[j..j + nb]);
        let c = if numeric {
            // ASCII digits: valid UTF-8.
            cmp_decimal(
                std::str::from_utf8(sa).unwrap_or_default(),
                std::str::from_utf8(sb).unwrap_or_default(),
            )
        } else {
            sa.cmp(sb)
        };
        if c != Ordering::Equal {
            return c;
        }
        i += na;
        j += nb;
    }
    match (i < a.len(), j < b.len()) {
        (false, false) => Ordering::Equal,
        (true, _) => Ordering::Greater,
        (false, true) => Ordering::Less,
    }
}

fn cmp_part(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (Some(a), Some(b)) => rpmvercmp(a, b),
    }
}

impl Ord for RpmVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let epoch = |v: &RpmVersion| v.epoch.as_deref().filter(|e| !e.is_empty()).unwrap_or("0").to_owned();
        rpmvercmp(&epoch(self), &epoch(other))
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| cmp_part(self.release.as_deref(), other.release.as_deref()))
    }
}
order_from_ord!(RpmVersion);
