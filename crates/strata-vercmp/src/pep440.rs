//! Python versions, PEP 440, as `packaging.version.Version` (packaging 26)
//! parses and orders them.
//!
//! Accepted spellings are packaging's: any case, a leading `v`, white space
//! around, `alpha`/`beta`/`c`/`pre`/`preview` for `a`/`b`/`rc`, `rev`/`r`
//! for `post`, `1.0-1` for `1.0.post1`, optional `.`/`-`/`_` separators and
//! implicit `0` numbers. Ordering is packaging's key: epoch, release without
//! trailing zeros, then a dev-only release before any pre-release,
//! pre-releases `a < b < rc` before the final, post-releases after it, a dev
//! release before what it develops, and a local version after the same
//! public version (local segments: numbers after strings). Numbers have any
//! length (Python caps `int()` at 4,300 digits by default; there is no cap
//! here). Non-ASCII letters are refused.

use std::cmp::Ordering;

use crate::num::cmp_decimal;
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed PEP 440 version. Numbers are kept as their digits.
#[derive(Debug, Clone)]
pub struct Pep440Version {
    pub epoch: String,
    pub release: Vec<String>,
    pub pre: Option<(PreLabel, String)>,
    pub post: Option<String>,
    pub dev: Option<String>,
    pub local: Option<Vec<LocalSegment>>,
}

/// A pre-release label, normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PreLabel {
    A,
    B,
    Rc,
}

/// One segment of a local version (`+ubuntu.1`): lowercased text or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalSegment {
    Text(String),
    Number(String),
}

/// Python's `str.isspace()` (what the pattern's `\s` matches).
fn is_py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

impl Pep440Version {
    pub fn parse(s: &str) -> Result<Pep440Version, VersionError> {
        let trimmed = s.trim_matches(is_py_space);
        if !trimmed.is_ascii() {
            return Err(VersionError::new(Scheme::Pep440, s, "not ASCII"));
        }
        let lower = trimmed.to_ascii_lowercase();
        Parser {
            b: lower.as_bytes(),
            p: 0,
        }
        .version()
        .ok_or_else(|| VersionError::new(Scheme::Pep440, s, "not a PEP 440 version"))
    }
}

struct Parser<'a> {
    b: &'a [u8],
    p: usize,
}

const PRE_LABELS: [(&str, PreLabel); 8] = [
    ("alpha", PreLabel::A),
    ("a", PreLabel::A),
    ("beta", PreLabel::B),
    ("b", PreLabel::B),
    ("preview", PreLabel::Rc),
    ("pre", PreLabel::Rc),
    ("c", PreLabel::Rc),
    ("rc", PreLabel::Rc),
];

impl Parser<'_> {
    fn digits_at(&self, at: usize) -> usize {
        crate::num::digits_len(self.b.get(at..).unwrap_or_default())
    }

    fn text(&self, from: usize, len: usize) -> String {
        String::from_utf8_lossy(&self.b[from..from + len]).into_owned()
    }

    /// An optional `.`, `-` or `_` at `at`: its length.
    fn sep_at(&self, at: usize) -> usize {
        usize::from(matches!(self.b.get(at), Some(b'.' | b'-' | b'_')))
    }

    fn starts_with_at(&self, at: usize, word: &str) -> bool {
        self.b.get(at..).is_some_and(|rest| rest.starts_with(word.as_bytes()))
    }

    /// `[sep] label [sep] [digits]` with the first label that matches; the
    /// separators and the number are taken greedily, which is where the
    /// pattern's backtracking would end up too.
    fn lettered<T: Copy>(&mut self, labels: &[(&str, T)]) -> Option<(T, String)> {
        let mut q = self.p + self.sep_at(self.p);
        let &(word, label) = labels.iter().find(|(word, _)| self.starts_with_at(q, word))?;
        q += word.len();
        q += self.sep_at(q);
        let n = self.digits_at(q);
        let number = if n == 0 { "0".to_owned() } else { self.text(q, n) };
        self.p = q + n;
        Some((label, number))
    }

    fn version(&mut self) -> Option<Pep440Version> {
        if self.b.first() == Some(&b'v') {
            self.p = 1;
        }
        let mut epoch = "0".to_owned();
        let n = self.digits_at(self.p);
        if n > 0 && self.b.get(self.p + n) == Some(&b'!') {
            epoch = self.text(self.p, n);
            self.p += n + 1;
        }
        let n = self.digits_at(self.p);
        if n == 0 {
            return None;
        }
        let mut release = vec![self.text(self.p, n)];
        self.p += n;
        while self.b.get(self.p) == Some(&b'.') {
            let n = self.digits_at(self.p + 1);
            if n == 0 {
                break;
            }
            release.push(self.text(self.p + 1, n));
            self.p += 1 + n;
        }
        let pre = self.lettered(&PRE_LABELS);
        let post = {
            let n = self.digits_at(self.p + 1);
            if self.b.get(self.p) == Some(&b'-') && n > 0 {
                let number = self.text(self.p + 1, n);
                self.p += 1 + n;
                Some(number)
            } else {
                self.lettered(&[("post", ()), ("rev", ()), ("r", ())]).map(|(_, n)| n)
            }
        };
        let dev = self.lettered(&[("dev", ())]).map(|(_, n)| n);
        let local = if self.b.get(self.p) == Some(&b'+') {
            let text = std::str::from_utf8(&self.b[self.p + 1..]).ok()?;
            self.p = self.b.len();
            let mut segments = Vec::new();
            for part in text.split(['.', '-', '_']) {
                if part.is_empty() || !part.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) {
                    return None;
                }
                segments.push(if part.bytes().all(|c| c.is_ascii_digit()) {
                    LocalSegment::Number(part.to_owned())
                } else {
                    LocalSegment::Text(part.to_owned())
                });
            }
            Some(segments)
        } else {
            None
        };
        if self.p != self.b.len() {
            return None;
        }
        Some(Pep440Version {
            epoch,
            release,
            pre,
            post,
            dev,
            local,
        })
    }
}

impl Pep440Version {
    /// The release without trailing zeros (`1.0.0` orders as `1`).
    fn trimmed_release(&self) -> &[String] {
        let keep = self
            .release
            .iter()
            .rposition(|n| !crate::num::is_zero(n))
            .map_or(0, |i| i + 1);
        &self.release[..keep]
    }

    /// Rank of what comes after the release: -1 for a dev-only release,
    /// 0/1/2 for a/b/rc, 3 for none.
    fn pre_rank(&self) -> (i8, &str) {
        match &self.pre {
            Some((label, n)) => (*label as i8, n),
            None if self.post.is_none() && self.dev.is_some() => (-1, "0"),
            None => (3, "0"),
        }
    }
}

fn cmp_seq<T>(a: &[T], b: &[T], f: impl Fn(&T, &T) -> Ordering) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let c = f(x, y);
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

fn cmp_local(a: &LocalSegment, b: &LocalSegment) -> Ordering {
    match (a, b) {
        (LocalSegment::Number(x), LocalSegment::Number(y)) => cmp_decimal(x, y),
        (LocalSegment::Text(x), LocalSegment::Text(y)) => x.cmp(y),
        (LocalSegment::Number(_), LocalSegment::Text(_)) => Ordering::Greater,
        (LocalSegment::Text(_), LocalSegment::Number(_)) => Ordering::Less,
    }
}

/// An optional number: absent orders as `absent` relative to present ones.
fn cmp_opt(a: &Option<String>, b: &Option<String>, absent: Ordering) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => cmp_decimal(x, y),
        (None, None) => Ordering::Equal,
        (None, Some(_)) => absent,
        (Some(_), None) => absent.reverse(),
    }
}

impl Ord for Pep440Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let (pa, pna) = self.pre_rank();
        let (pb, pnb) = other.pre_rank();
        cmp_decimal(&self.epoch, &other.epoch)
            .then_with(|| {
                cmp_seq(self.trimmed_release(), other.trimmed_release(), |x, y| {
                    cmp_decimal(x, y)
                })
            })
            .then_with(|| pa.cmp(&pb))
            .then_with(|| cmp_decimal(pna, pnb))
            .then_with(|| cmp_opt(&self.post, &other.post, Ordering::Less))
            .then_with(|| cmp_opt(&self.dev, &other.dev, Ordering::Greater))
            .then_with(|| match (&self.local, &other.local) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(x), Some(y)) => cmp_seq(x, y, cmp_local),
            })
    }
}
order_from_ord!(Pep440Version);
