//! Path patterns: Go's `filepath.Match` (COPY/ADD wildcards) and Docker's
//! `.dockerignore` rules (moby's `patternmatcher`: `**`, `!` exceptions, the
//! last matching pattern wins, a pattern matching a directory matches
//! everything below it).

use crate::error::{Error, Result};

/// Whether `name` matches the shell pattern `pattern` (Go's `filepath.Match`):
/// `*` is any run of non-`/` characters, `?` one non-`/` character, `[...]` a
/// class (`[^...]` negated, ranges with `-`), `\` escapes. Errors on a
/// malformed pattern.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    check_pattern(&p)?;
    Ok(match_from(&p, &n))
}

/// Whether a source path holds a wildcard (`*`, `?`, `[`).
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn check_pattern(p: &[char]) -> Result<()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(Error::BadPattern);
                }
                i += 2;
            }
            '[' => match class_end(p, i) {
                Some(e) => i = e + 1,
                None => return Err(Error::BadPattern),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class opened at `start`.
fn class_end(p: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if i < p.len() && p[i] == '^' {
        i += 1;
    }
    let first = i;
    while i < p.len() {
        match p[i] {
            ']' if i > first => return Some(i),
            '\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn class_matches(p: &[char], start: usize, end: usize, c: char) -> bool {
    let mut i = start + 1;
    let negated = i < end && p[i] == '^';
    if negated {
        i += 1;
    }
    let mut matched = false;
    while i < end {
        let mut lo = p[i];
        if lo == '\\' && i + 1 < end {
            i += 1;
            lo = p[i];
        }
        i += 1;
        let mut hi = lo;
        if i + 1 < end && p[i] == '-' {
            hi = p[i + 1];
            if hi == '\\' && i + 2 < end {
                hi = p[i + 2];
                i += 1;
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    matched != negated
}

fn match_from(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() && n[ni] != '/' => {
                    if let Some(end) = class_end(p, pi)
                        && class_matches(p, pi, end, n[ni])
                    {
                        pi = end + 1;
                        ni += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && ni < n.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if !matches!(c, '?' | '[' | '\\') && ni < n.len() && c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return true;
        }
        // Mismatch: let the last `*` eat one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
}

/// Lexically cleans a relative path: no `.`, no empty parts, `..` stops at
/// the top (so it never leaves the root). Returns `""` for the root itself.
pub fn clean_rel(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// One `.dockerignore` line.
#[derive(Debug, Clone)]
struct IgnorePattern {
    segments: Vec<Segment>,
    exclusion: bool,
}

/// One `/`-separated part of a `.dockerignore` pattern, made ready for
/// matching once (the patterns are matched against every context entry).
#[derive(Debug, Clone)]
enum Segment {
    /// `**`: any number of directories.
    AnyDirs,
    /// A glob (`**` inside it behaves as `*`).
    Glob(Vec<char>),
    /// A glob that cannot match anything (malformed once `**` reads as `*`).
    Never,
}

impl Segment {
    fn new(seg: &str) -> Segment {
        if seg == "**" {
            return Segment::AnyDirs;
        }
        let p: Vec<char> = seg.replace("**", "*").chars().collect();
        match check_pattern(&p) {
            Ok(()) => Segment::Glob(p),
            Err(_) => Segment::Never,
        }
    }

    /// Whether this (non-`**`) segment matches the path component `name`.
    fn matches(&self, name: &[char]) -> bool {
        match self {
            Segment::Glob(p) => match_from(p, name),
            Segment::AnyDirs | Segment::Never => false,
        }
    }
}

/// A path's components, as the segments match them.
fn components(path: &str) -> Vec<Vec<char>> {
    path.split('/').map(|c| c.chars().collect()).collect()
}

/// The patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    patterns: Vec<IgnorePattern>,
}

impl IgnoreRules {
    /// Parses `.dockerignore` text: one pattern a line, `#` comments, `!`
    /// for exceptions, a leading `/` ignored, paths cleaned.
    pub fn parse(text: &str) -> Result<IgnoreRules> {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pat) = match line.strip_prefix('!') {
                // moby's patternmatcher refuses an exception of nothing.
                Some(rest) if rest.trim().is_empty() => return Err(Error::IllegalExclusion),
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean_rel(pat);
            if cleaned.is_empty() {
                // `.` or `/`: everything.
                patterns.push(IgnorePattern {
                    segments: vec![Segment::AnyDirs],
                    exclusion,
                });
                continue;
            }
            for seg in cleaned.split('/') {
                if seg != "**" {
                    check_pattern(&seg.chars().collect::<Vec<_>>())
                        .map_err(|_| Error::BadIgnorePattern(line.to_string()))?;
                }
            }
            patterns.push(IgnorePattern {
                segments: cleaned.split('/').map(Segment::new).collect(),
                exclusion,
            });
        }
        Ok(IgnoreRules { patterns })
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative, cleaned) is excluded: the last pattern that
    /// matches it or one of its parent directories decides.
    pub fn excluded(&self, path: &str) -> bool {
        let parts = components(path);
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or any parent directory.
            let hit = (1..=parts.len()).any(|k| segments_match(&p.segments, &parts[..k]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }

    /// Whether something below the excluded directory `dir` might be
    /// re-included by a `!` pattern (so the walk must go into it).
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let parts = components(dir);
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| prefix_may_match(&p.segments, &parts))
    }
}

fn segments_match(pat: &[Segment], path: &[Vec<char>]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(Segment::AnyDirs) => (0..=path.len()).any(|k| segments_match(&pat[1..], &path[k..])),
        Some(s) => !path.is_empty() && s.matches(&path[0]) && segments_match(&pat[1..], &path[1..]),
    }
}

/// Whether a path below `dir` could match `pat`.
fn prefix_may_match(pat: &[Segment], dir: &[Vec<char>]) -> bool {
    if dir.is_empty() {
        return !pat.is_empty();
    }
    match pat.first() {
        None => false,
        Some(Segment::AnyDirs) => true,
        Some(s) => s.matches(&dir[0]) && prefix_may_match(&pat[1..], &dir[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match() {
        let t = |p: &str, n: &str| glob_match(p, n).unwrap();
        assert!(t("*.txt", "a.txt"));
        assert!(!t("*.txt", "d/a.txt"));
        assert!(t("*/a.txt", "d/a.txt"));
        assert!(t("a?c", "abc"));
        assert!(!t("a?c", "a/c"));
        assert!(t("[a-c]x", "bx"));
        assert!(!t("[^a-c]x", "bx"));
        assert!(t("\\*", "*"));
        assert!(t("a*b*c", "axxbyyc"));
        assert!(!t("a*b*c", "axxbyy"));
        assert!(t("*", ""));
        assert!(glob_match("[", "a").is_err());
        assert!(glob_match("a\\", "a").is_err());
    }

    #[test]
    fn dockerignore_rules() {
        let r = IgnoreRules::parse("# comment\n*.log\n!keep.log\n/build\n**/tmp\nsecret/**\n!secret/ok\n").unwrap();
        assert!(r.excluded("a.log"));
        assert!(!r.excluded("keep.log"));
        assert!(!r.excluded("d/a.log"));
        assert!(r.excluded("build"));
        assert!(r.excluded("build/x/y"));
        assert!(r.excluded("tmp"));
        assert!(r.excluded("a/b/tmp/c"));
        assert!(r.excluded("secret/key"));
        assert!(!r.excluded("secret/ok"));
        assert!(!r.excluded("src/main.rs"));
        assert!(r.may_reinclude_under("secret"));
        assert!(!r.may_reinclude_under("build"));
        assert_eq!(clean_rel("../../a/./b/../c"), "a/c");
        assert_eq!(clean_rel("/"), "");
    }

    #[test]
    fn a_lone_exclamation_mark_is_refused() {
        for text in ["!\n", "a\n  !  \n", "!\t\n"] {
            let e = IgnoreRules::parse(text).unwrap_err();
            assert_eq!(e.to_string(), "illegal exclusion pattern: \"!\"", "{text:?}");
        }
        assert!(IgnoreRules::parse("!a\n# !\n").is_ok());
    }
}
