//! The regular expressions of Go's `regexp` (RE2 syntax, Perl flags) that
//! `Match` needs: whether a pattern is found in a string. A Pike VM over
//! the compiled program (linear in the text; no backtracking).

use std::iter::Peekable;
use std::str::Chars;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    BeginText,
    EndText,
    BeginLine,
    EndLine,
    WordBoundary,
    NotWordBoundary,
}

#[derive(Debug, Clone)]
struct Class {
    ranges: Vec<(char, char)>,
    negated: bool,
    fold: bool,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let has = |c: char| self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        let mut hit = has(c);
        if !hit && self.fold {
            hit = fold_variants(c).any(has);
        }
        hit != self.negated
    }
}

fn fold_variants(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().chain(c.to_uppercase())
}

#[derive(Debug, Clone)]
enum Node {
    Empty,
    Lit(char, bool),
    Class(Class),
    Any(bool),
    Look(Look),
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

#[derive(Debug, Clone)]
enum Inst {
    Lit(char, bool),
    Class(Class),
    Any(bool),
    Look(Look),
    Split(usize, usize),
    Jmp(usize),
    Match,
}

#[derive(Debug)]
pub struct Regex {
    prog: Vec<Inst>,
}

#[derive(Clone, Copy)]
struct Flags {
    fold: bool,
    dot_nl: bool,
    multi_line: bool,
}

const MAX_REPEAT: u32 = 1000;
const MAX_PROG: usize = 100_000;

struct Parser<'a> {
    it: Peekable<Chars<'a>>,
    flags: Flags,
}

type Res<T> = Result<T, String>;

impl Regex {
    pub fn new(pattern: &str) -> Res<Regex> {
        let mut p = Parser {
            it: pattern.chars().peekable(),
            flags: Flags {
                fold: false,
                dot_nl: false,
                multi_line: false,
            },
        };
        let node = p.alternation()?;
        if p.it.next().is_some() {
            return Err("unexpected )".into());
        }
        let mut prog = Vec::new();
        compile(&node, &mut prog)?;
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let n = self.prog.len();
        let mut clist = Threads::new(n);
        let mut nlist = Threads::new(n);
        for pos in 0..=chars.len() {
            self.add(&mut clist, 0, &chars, pos);
            for i in 0..clist.dense.len() {
                let pc = clist.dense[i];
                let step = match &self.prog[pc] {
                    Inst::Match => return true,
                    Inst::Lit(l, fold) => chars.get(pos).is_some_and(|&c| c == *l || (*fold && fold_eq(c, *l))),
                    Inst::Class(cls) => chars.get(pos).is_some_and(|&c| cls.matches(c)),
                    Inst::Any(nl) => chars.get(pos).is_some_and(|&c| *nl || c != '\n'),
                    _ => false,
                };
                if step {
                    self.add(&mut nlist, pc + 1, &chars, pos + 1);
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            nlist.clear();
        }
        false
    }

    /// Adds `pc` and what it reaches without reading a character.
    fn add(&self, list: &mut Threads, pc: usize, chars: &[char], pos: usize) {
        let mut stack = vec![pc];
        while let Some(pc) = stack.pop() {
            if !list.insert(pc) {
                continue;
            }
            match &self.prog[pc] {
                Inst::Jmp(x) => stack.push(*x),
                Inst::Split(x, y) => {
                    stack.push(*y);
                    stack.push(*x);
                }
                Inst::Look(l) if holds(*l, chars, pos) => stack.push(pc + 1),
                _ => {}
            }
        }
    }
}

fn fold_eq(a: char, b: char) -> bool {
    fold_variants(a).any(|x| x == b) || fold_variants(b).any(|x| x == a)
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn holds(l: Look, chars: &[char], pos: usize) -> bool {
    let before = pos.checked_sub(1).map(|i| chars[i]);
    let after = chars.get(pos).copied();
    match l {
        Look::BeginText => pos == 0,
        Look::EndText => pos == chars.len(),
        Look::BeginLine => before.is_none_or(|c| c == '\n'),
        Look::EndLine => after.is_none_or(|c| c == '\n'),
        Look::WordBoundary => before.is_some_and(is_word) != after.is_some_and(is_word),
        Look::NotWordBoundary => before.is_some_and(is_word) == after.is_some_and(is_word),
    }
}

/// A sparse set of program counters (each thread once per step).
struct Threads {
    dense: Vec<usize>,
    sparse: Vec<usize>,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads {
            dense: Vec::with_capacity(n),
            sparse: vec![0; n],
        }
    }
    fn insert(&mut self, pc: usize) -> bool {
        let i = self.sparse[pc];
        if i < self.dense.len() && self.dense[i] == pc {
            return false;
        }
        self.sparse[pc] = self.dense.len();
        self.dense.push(pc);
        true
    }
    fn clear(&mut self) {
        self.dense.clear();
    }
}

fn compile(node: &Node, prog: &mut Vec<Inst>) -> Res<()> {
    if prog.len() > MAX_PROG {
        return Err("expression too large".into());
    }
    match node {
        Node::Empty => {}
        Node::Lit(c, f) => prog.push(Inst::Lit(*c, *f)),
        Node::Class(c) => prog.push(Inst::Class(c.clone())),
        Node::Any(nl) => prog.push(Inst::Any(*nl)),
        Node::Look(l) => prog.push(Inst::Look(*l)),
        Node::Cat(v) => {
            for n in v {
                compile(n, prog)?;
            }
        }
        Node::Alt(v) => {
            // split L1, next; L1: a; jmp end; next: split …
            let mut jumps = Vec::new();
            for (i, n) in v.iter().enumerate() {
                if i + 1 < v.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(n, prog)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    compile(n, prog)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Repeat(n, min, max) => {
            for _ in 0..*min {
                compile(n, prog)?;
            }
            match max {
                None => {
                    // L: split body, end; body; jmp L
                    let l = prog.len();
                    prog.push(Inst::Split(l + 1, 0));
                    compile(n, prog)?;
                    prog.push(Inst::Jmp(l));
                    let end = prog.len();
                    prog[l] = Inst::Split(l + 1, end);
                }
                Some(max) => {
                    let mut splits = Vec::new();
                    for _ in *min..*max {
                        splits.push(prog.len());
                        prog.push(Inst::Split(0, 0));
                        compile(n, prog)?;
                        if prog.len() > MAX_PROG {
                            return Err("expression too large".into());
                        }
                    }
                    let end = prog.len();
                    for s in splits {
                        prog[s] = Inst::Split(s + 1, end);
                    }
                }
            }
        }
    }
    Ok(())
}

impl Parser<'_> {
    fn alternation(&mut self) -> Res<Node> {
        let saved = self.flags;
        let mut alts = vec![self.concat()?];
        while self.it.peek() == Some(&'|') {
            self.it.next();
            alts.push(self.concat()?);
        }
        // Flags set inside a group end with it.
        self.flags = saved;
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Empty)
        } else {
            Node::Alt(alts)
        })
    }

    /// Atoms and their repetitions. A repetition applies to the item
    /// before it (a flag group between them is none); two in a row
    /// are refused, as Go's Perl syntax does.
    fn concat(&mut self) -> Res<Node> {
        let mut items = Vec::new();
        let mut last_repeat = false;
        while let Some(&c) = self.it.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let rep = match c {
                '*' => Some((0, None, 1)),
                '+' => Some((1, None, 1)),
                '?' => Some((0, Some(1), 1)),
                '{' => brace(&self.it.clone().collect::<String>())?,
                _ => None,
            };
            let Some((min, max, len)) = rep else {
                last_repeat = false;
                if let Some(atom) = self.atom()? {
                    items.push(atom);
                }
                continue;
            };
            for _ in 0..len {
                self.it.next();
            }
            // A lazy repetition matches the same texts.
            if self.it.peek() == Some(&'?') {
                self.it.next();
            }
            if last_repeat {
                return Err("invalid nested repetition operator".into());
            }
            let Some(sub) = items.pop() else {
                return Err("missing argument to repetition operator".into());
            };
            items.push(Node::Repeat(Box::new(sub), min, max));
            last_repeat = true;
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty),
            _ => Node::Cat(items),
        })
    }

    /// One atom; None for a flag group (`(?i)`), which only sets flags.
    fn atom(&mut self) -> Res<Option<Node>> {
        let Some(c) = self.it.next() else {
            return Ok(Some(Node::Empty));
        };
        let f = self.flags;
        Ok(Some(match c {
            '(' => return self.group(),
            '[' => Node::Class(self.class()?),
            '.' => Node::Any(f.dot_nl),
            '^' => Node::Look(if f.multi_line { Look::BeginLine } else { Look::BeginText }),
            '$' => Node::Look(if f.multi_line { Look::EndLine } else { Look::EndText }),
            '\\' => self.escape()?,
            c => Node::Lit(c, f.fold),
        }))
    }

    fn group(&mut self) -> Res<Option<Node>> {
        if self.it.peek() == Some(&'?') {
            self.it.next();
            match self.it.peek() {
                // Go 1.19 (Docker 20.10's) has no `(?<name>…)`.
                Some('P') => {
                    self.it.next();
                    if self.it.next() != Some('<') {
                        return Err("invalid named capture".into());
                    }
                    let mut name = String::new();
                    loop {
                        match self.it.next() {
                            Some('>') => break,
                            Some(c) if c.is_alphanumeric() || c == '_' => name.push(c),
                            _ => return Err("invalid named capture".into()),
                        }
                    }
                    if name.is_empty() {
                        return Err("invalid named capture".into());
                    }
                }
                _ => {
                    // Flags: (?flags) or (?flags:re).
                    let mut neg = false;
                    let mut seen = false;
                    let mut flags = self.flags;
                    loop {
                        let Some(c) = self.it.next() else {
                            return Err("missing closing )".into());
                        };
                        match c {
                            'i' => flags.fold = !neg,
                            's' => flags.dot_nl = !neg,
                            'm' => flags.multi_line = !neg,
                            'U' => {}
                            '-' if !neg => {
                                neg = true;
                                seen = false;
                                continue;
                            }
                            ')' | ':' if seen || !neg => {
                                if c == ')' {
                                    self.flags = flags;
                                    return Ok(None);
                                }
                                let saved = self.flags;
                                self.flags = flags;
                                let inner = self.alternation()?;
                                self.flags = saved;
                                if self.it.next() != Some(')') {
                                    return Err("missing closing )".into());
                                }
                                return Ok(Some(inner));
                            }
                            _ => return Err("invalid or unsupported Perl syntax".into()),
                        }
                        seen = true;
                    }
                }
            }
        }
        let inner = self.alternation()?;
        if self.it.next() != Some(')') {
            return Err("missing closing )".into());
        }
        Ok(Some(inner))
    }

    /// A class's ranges for `\d`, `\s`, `\w` (and negated forms), or None.
    fn perl_class(c: char) -> Option<(Vec<(char, char)>, bool)> {
        let (ranges, neg) = match c {
            'd' => (vec![('0', '9')], false),
            'D' => (vec![('0', '9')], true),
            's' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], false),
            'S' => (vec![('\t', '\n'), ('\x0c', '\r'), (' ', ' ')], true),
            'w' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], false),
            'W' => (vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')], true),
            _ => return None,
        };
        Some((ranges, neg))
    }

    /// A character escape (`\n`, `\x41`, `\101`, `\.`): the character.
    fn escaped_char(&mut self, c: char) -> Res<char> {
        Ok(match c {
            'a' => '\x07',
            'f' => '\x0c',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'v' => '\x0b',
            '0'..='7' => {
                // Octal: `\0`, or two or three digits (`\1` alone is a backreference).
                let mut v = c.to_digit(8).unwrap_or(0);
                let mut n = 1;
                if c != '0' && !self.it.peek().is_some_and(|d| ('0'..='7').contains(d)) {
                    return Err("invalid escape sequence".into());
                }
                while n < 3 {
                    match self.it.peek().and_then(|d| d.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            self.it.next();
                            n += 1;
                        }
                        None => break,
                    }
                }
                char::from_u32(v).ok_or("invalid escape sequence")?
            }
            'x' => {
                let hex: String = if self.it.peek() == Some(&'{') {
                    self.it.next();
                    let mut h = String::new();
                    loop {
                        match self.it.next() {
                            Some('}') => break,
                            Some(d) if d.is_ascii_hexdigit() => h.push(d),
                            _ => return Err("invalid escape sequence".into()),
                        }
                    }
                    h
                } else {
                    let a = self.it.next().filter(char::is_ascii_hexdigit);
                    let b = self.it.next().filter(char::is_ascii_hexdigit);
                    match (a, b) {
                        (Some(a), Some(b)) => [a, b].iter().collect(),
                        _ => return Err("invalid escape sequence".into()),
                    }
                };
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| !hex.is_empty())
                    .and_then(char::from_u32)
                    .ok_or("invalid escape sequence")?
            }
            c if c.is_ascii() && !c.is_ascii_alphanumeric() && c != '_' => c,
            _ => return Err("invalid escape sequence".into()),
        })
    }

    fn escape(&mut self) -> Res<Node> {
        let f = self.flags;
        let Some(c) = self.it.next() else {
            return Err("trailing backslash at end of expression".into());
        };
        if let Some((ranges, negated)) = Self::perl_class(c) {
            return Ok(Node::Class(Class {
                ranges,
                negated,
                fold: false,
            }));
        }
        Ok(match c {
            'b' => Node::Look(Look::WordBoundary),
            'B' => Node::Look(Look::NotWordBoundary),
            'A' => Node::Look(Look::BeginText),
            'z' => Node::Look(Look::EndText),
            'Q' => {
                let mut lits = Vec::new();
                while let Some(c) = self.it.next() {
                    if c == '\\' && self.it.peek() == Some(&'E') {
                        self.it.next();
                        break;
                    }
                    lits.push(Node::Lit(c, f.fold));
                }
                Node::Cat(lits)
            }
            c => Node::Lit(self.escaped_char(c)?, f.fold),
        })
    }

    fn class(&mut self) -> Res<Class> {
        let mut cls = Class {
            ranges: Vec::new(),
            negated: false,
            fold: self.flags.fold,
        };
        if self.it.peek() == Some(&'^') {
            self.it.next();
            cls.negated = true;
        }
        let mut first = true;
        loop {
            let Some(c) = self.it.next() else {
                return Err("missing closing ]".into());
            };
            if c == ']' && !first {
                break;
            }
            first = false;
            if c == '[' && self.it.peek() == Some(&':') {
                let rest: String = self.it.clone().collect();
                if let Some(end) = rest.find(":]") {
                    let name = &rest[1..end];
                    let (neg, name) = match name.strip_prefix('^') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    let ranges = posix_class(name).ok_or("invalid character class range")?;
                    for _ in 0..end + 2 {
                        self.it.next();
                    }
                    if neg {
                        cls.ranges.extend(negate(&ranges));
                    } else {
                        cls.ranges.extend(ranges);
                    }
                    continue;
                }
            }
            let lo = if c == '\\' {
                let Some(e) = self.it.next() else {
                    return Err("missing closing ]".into());
                };
                if let Some((ranges, neg)) = Self::perl_class(e) {
                    if neg {
                        cls.ranges.extend(negate(&ranges));
                    } else {
                        cls.ranges.extend(ranges);
                    }
                    continue;
                }
                self.escaped_char(e)?
            } else {
                c
            };
            // A range `lo-hi` (a `-` before `]` is itself).
            let mut ahead = self.it.clone();
            if ahead.next() == Some('-') && ahead.peek().is_some_and(|&n| n != ']') {
                self.it.next();
                let h = self.it.next().ok_or("missing closing ]")?;
                let hi = if h == '\\' {
                    let e = self.it.next().ok_or("missing closing ]")?;
                    self.escaped_char(e)?
                } else {
                    h
                };
                if hi < lo {
                    return Err("invalid character class range".into());
                }
                cls.ranges.push((lo, hi));
            } else {
                cls.ranges.push((lo, lo));
            }
        }
        Ok(cls)
    }
}

/// A repetition `{n}`, `{n,}` or `{n,m}` at the start of `s` (which
/// starts with `{`): (min, max, characters it takes); None when `s`
/// does not start with one (the `{` is then a literal).
fn brace(s: &str) -> Res<Option<(u32, Option<u32>, usize)>> {
    let Some(end) = s.find('}') else { return Ok(None) };
    let body = &s[1..end];
    let num = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(s.parse::<u32>().unwrap_or(u32::MAX))
    };
    let parsed = match body.split_once(',') {
        None => num(body).map(|n| (n, Some(n))),
        Some((a, "")) => num(a).map(|n| (n, None)),
        Some((a, b)) => match (num(a), num(b)) {
            (Some(a), Some(b)) => Some((a, Some(b))),
            _ => None,
        },
    };
    let Some((min, max)) = parsed else { return Ok(None) };
    if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
        return Err("invalid repeat count".into());
    }
    Ok(Some((min, max, s[..=end].chars().count())))
}

fn posix_class(name: &str) -> Option<Vec<(char, char)>> {
    Some(match name {
        "alnum" => vec![('0', '9'), ('A', 'Z'), ('a', 'z')],
        "alpha" => vec![('A', 'Z'), ('a', 'z')],
        "ascii" => vec![('\0', '\x7f')],
        "blank" => vec![('\t', '\t'), (' ', ' ')],
        "cntrl" => vec![('\0', '\x1f'), ('\x7f', '\x7f')],
        "digit" => vec![('0', '9')],
        "graph" => vec![('!', '~')],
        "lower" => vec![('a', 'z')],
        "print" => vec![(' ', '~')],
        "punct" => vec![('!', '/'), (':', '@'), ('[', '`'), ('{', '~')],
        "space" => vec![('\t', '\r'), (' ', ' ')],
        "upper" => vec![('A', 'Z')],
        "word" => vec![('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')],
        "xdigit" => vec![('0', '9'), ('A', 'F'), ('a', 'f')],
        _ => return None,
    })
}

/// The complement of sorted, disjoint ranges.
fn negate(ranges: &[(char, char)]) -> Vec<(char, char)> {
    let mut sorted = ranges.to_vec();
    sorted.sort();
    let mut out = Vec::new();
    let mut next = 0u32;
    for (lo, hi) in sorted {
        if (lo as u32) > next
            && let (Some(a), Some(b)) = (char::from_u32(next), char::from_u32(lo as u32 - 1))
        {
            out.push((a, b));
        }
        next = next.max(hi as u32 + 1);
    }
    if let Some(a) = char::from_u32(next) {
        out.push((a, char::MAX));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Regex;

    fn m(p: &str, s: &str) -> bool {
        Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")).is_match(s)
    }

    #[test]
    fn go_regexp_search() {
        assert!(m("web", "/web1"));
        assert!(m("^web", "web1") && !m("^web", "/web1"));
        assert!(m("^/web", "/web1"));
        assert!(m("1$", "web1") && !m("^web$", "web1"));
        assert!(m("", "anything"));
        assert!(m("w.b[0-9]+", "xweb12"));
        assert!(m("^(db|job)$", "job") && !m("^(db|job)$", "jobs"));
        assert!(m("(?i)WEB", "web") && !m("WEB", "web"));
        assert!(m("^a{2,3}$", "aaa") && !m("^a{2,3}$", "aaaa"));
        assert!(m("a{,2}", "a{,2}"), "not a repetition: literal");
        assert!(m(r"\d\.\w", "x1.y") && !m(r"\d\.\w", "1x.y"));
        assert!(m("[^a-c]", "abcd") && !m("^[^a-c]+$", "abc"));
        assert!(m("[[:digit:]]x", "5x"));
        assert!(m(r"\bweb\b", "a web b") && !m(r"\bweb\b", "aweb"));
        assert!(m("ab*?c", "ac") && m("(?:ab)+$", "abab"));
        assert!(m(r"\x41\101", "AA"));
        assert!(m("[a-]", "-"));
        assert!(m(r"\Q.*\E", "a.*b") && !m(r"\Q.*\E", "ab"));
        // A flag group is no argument: the repetition is the atom's before it.
        assert!(m("^b(?i){2}$", "bb") && m("^(?)a", "a"));
    }

    #[test]
    fn go_regexp_errors() {
        for bad in [
            "[", "(", ")", "*a", "a**", "a+*", "\\", r"\1", r"\y", "[b-a]", "(?<x>a)", "(?-)", "(?i-)", "a|*", "(?i)*",
            "x{1001}",
        ] {
            assert!(Regex::new(bad).is_err(), "{bad} should not compile");
        }
    }
}
