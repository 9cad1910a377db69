//! Alpine versions, ordered as apk-tools 3 orders them (src/version.c).
//!
//! A version is `digits{.digits}[letter]{_suffix[digits]}[~hash][-rN]`:
//! suffixes `_alpha _beta _pre _rc` order before the bare version and
//! `_cvs _svn _git _hg _p` after it; `~hash` is lowercase hex; `-rN` is the
//! package revision. Tokens compare pairwise while they are of the same
//! kind; a number after a `.` that starts with `0` compares as a string (as
//! Gentoo does); numbers are apk's unsigned 64-bit values, which wrap as
//! apk's do past 2^64. Strings apk-tools' `apk_version_validate` refuses are
//! invalid here (apk itself would still order them by a partial parse).

use std::cmp::Ordering;

use crate::{Scheme, VersionError, order_from_ord};

/// A parsed Alpine version (kept as the string; tokens are read on compare).
#[derive(Debug, Clone)]
pub struct ApkVersion {
    text: String,
}

impl ApkVersion {
    pub fn parse(s: &str) -> Result<ApkVersion, VersionError> {
        let mut lexer = Lexer::new(s);
        loop {
            match lexer.next().kind {
                Kind::End => return Ok(ApkVersion { text: s.to_owned() }),
                Kind::Invalid => return Err(VersionError::new(Scheme::Apk, s, lexer.why)),
                _ => {}
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Token kinds, in the order the grammar allows them (the order matters:
/// when two versions run out of equal tokens, the one whose next token is
/// later in this list is the smaller one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffixes in order; `None` (no suffix) sits between the pre-release ones
/// and the post-release ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Suffix {
    Alpha,
    Beta,
    Pre,
    Rc,
    None,
    Cvs,
    Svn,
    Git,
    Hg,
    P,
}

fn suffix(name: &str) -> Option<Suffix> {
    Some(match name {
        "alpha" => Suffix::Alpha,
        "beta" => Suffix::Beta,
        "pre" => Suffix::Pre,
        "rc" => Suffix::Rc,
        "cvs" => Suffix::Cvs,
        "svn" => Suffix::Svn,
        "git" => Suffix::Git,
        "hg" => Suffix::Hg,
        "p" => Suffix::P,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token's characters (digits without their `.`, the letter, the
    /// suffix name, the hash).
    text: &'a str,
    number: u64,
    suffix: Suffix,
}

struct Lexer<'a> {
    rest: &'a str,
    prev: Kind,
    started: bool,
    why: &'static str,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Lexer<'a> {
        Lexer {
            rest: s,
            prev: Kind::InitialDigit,
            started: false,
            why: "",
        }
    }

    fn token(&self, kind: Kind, text: &'a str) -> Token<'a> {
        Token {
            kind,
            text,
            number: 0,
            suffix: Suffix::None,
        }
    }

    fn invalid(&mut self, why: &'static str) -> Token<'a> {
        self.prev = Kind::Invalid;
        self.why = why;
        self.token(Kind::Invalid, "")
    }

    fn digits(&mut self, kind: Kind) -> Token<'a> {
        let n = crate::num::digits_len(self.rest.as_bytes());
        if n == 0 {
            return self.invalid("a number is missing");
        }
        let (text, rest) = self.rest.split_at(n);
        self.rest = rest;
        self.prev = kind;
        // apk's unsigned 64-bit accumulation, wrapping as C's does.
        let number = text
            .bytes()
            .fold(0u64, |v, c| v.wrapping_mul(10).wrapping_add(u64::from(c - b'0')));
        Token {
            number,
            ..self.token(kind, text)
        }
    }

    fn next(&mut self) -> Token<'a> {
        if !self.started {
            self.started = true;
            return self.digits(Kind::InitialDigit);
        }
        if self.prev == Kind::Invalid {
            return self.token(Kind::Invalid, "");
        }
        let Some(&c) = self.rest.as_bytes().first() else {
            self.prev = Kind::End;
            return self.token(Kind::End, "");
        };
        match c {
            b'a'..=b'z' => {
                if self.prev > Kind::Digit {
                    return self.invalid("a letter is only allowed right after a number");
                }
                let (text, rest) = self.rest.split_at(1);
                self.rest = rest;
                self.prev = Kind::Letter;
                self.token(Kind::Letter, text)
            }
            b'.' | b'0'..=b'9' => {
                if c == b'.' {
                    if self.prev > Kind::Digit {
                        return self.invalid("a '.' number is only allowed among the leading numbers");
                    }
                    self.rest = &self.rest[1..];
                }
                match self.prev {
                    Kind::InitialDigit | Kind::Digit => self.digits(Kind::Digit),
                    Kind::Suffix => self.digits(Kind::SuffixNo),
                    _ => self.invalid("a number is not allowed here"),
                }
            }
            b'_' => {
                if self.prev > Kind::SuffixNo {
                    return self.invalid("a suffix is not allowed here");
                }
                let name_len = self.rest.as_bytes()[1..]
                    .iter()
                    .take_while(|c| c.is_ascii_lowercase())
                    .count();
                let text = &self.rest[1..1 + name_len];
                let Some(suffix) = suffix(text) else {
                    return self.invalid("unknown suffix");
                };
                self.rest = &self.rest[1 + name_len..];
                self.prev = Kind::Suffix;
                Token {
                    suffix,
                    ..self.token(Kind::Suffix, text)
                }
            }
            b'~' => {
                if self.prev >= Kind::CommitHash {
                    return self.invalid("a commit hash is not allowed here");
                }
                let n = self.rest.as_bytes()[1..]
                    .iter()
                    .take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                    .count();
                if n == 0 {
                    return self.invalid("empty commit hash");
                }
                let text = &self.rest[1..1 + n];
                self.rest = &self.rest[1 + n..];
                self.prev = Kind::CommitHash;
                self.token(Kind::CommitHash, text)
            }
            b'-' => {
                if self.prev >= Kind::RevisionNo {
                    return self.invalid("a second revision");
                }
                let Some(rest) = self.rest.strip_prefix("-r") else {
                    return self.invalid("'-' must start a revision '-rN'");
                };
                self.rest = rest;
                self.digits(Kind::RevisionNo)
            }
            _ => self.invalid("character not allowed in a version"),
        }
    }
}

/// apk's `apk_blob_sort`: bytes, then length.
fn string_order(a: &str, b: &str) -> Ordering {
    a.as_bytes().cmp(b.as_bytes())
}

fn token_cmp(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Digit if a.text.starts_with('0') || b.text.starts_with('0') => string_order(a.text, b.text),
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => a.number.cmp(&b.number),
        Kind::Letter => a.text.as_bytes()[0].cmp(&b.text.as_bytes()[0]),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => string_order(a.text, b.text),
    }
}

impl Ord for ApkVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let (mut la, mut lb) = (Lexer::new(&self.text), Lexer::new(&other.text));
        let (mut ta, mut tb) = (la.next(), lb.next());
        while ta.kind == tb.kind && ta.kind < Kind::End {
            let c = token_cmp(&ta, &tb);
            if c != Ordering::Equal {
                return c;
            }
            ta = la.next();
            tb = lb.next();
        }
        if ta.kind == tb.kind {
            return Ordering::Equal;
        }
        // Equal so far: the longer one is newer, unless what it has more
        // of is a pre-release suffix.
        if ta.kind == Kind::Suffix && ta.suffix < Suffix::None {
            return Ordering::Less;
        }
        if tb.kind == Kind::Suffix && tb.suffix < Suffix::None {
            return Ordering::Greater;
        }
        tb.kind.cmp(&ta.kind)
    }
}
order_from_ord!(ApkVersion);
