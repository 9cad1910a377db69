//! Shell-style word processing for Dockerfile instructions, following BuildKit's `shell.Lex`.
//!
//! [`Lex::process_word`] expands variables and removes quotes and escapes, keeping the text as a
//! single string; [`Lex::process_words`] does the same and then splits the result into words on
//! unquoted whitespace (whitespace produced by a variable expansion splits too, whitespace inside
//! quotes or after an escape does not).
//!
//! Supported: `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`, `${VAR%%pat}`,
//! `${VAR/pat/repl}` and `${VAR//pat/repl}` (patterns use `*` and `?`, `\` escapes them), single
//! and double quotes, and the configurable escape character (`\` or `` ` ``). Positional (`$1`) and
//! special (`$@`, `$#`, ...) parameters are recognised as names and expand to nothing unless the
//! environment defines them. Unset and set-but-empty variables are told apart.
//!
//! Character classes follow Go's `unicode` package closely; Rust's `is_alphabetic` and
//! `is_numeric` stand in for Go's `IsLetter` and `IsDigit` outside ASCII.

use std::collections::BTreeSet;

/// A failed expansion: the input word and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {input:?}: {message}")]
pub struct ShellError {
    /// The word that was being processed.
    pub input: String,
    /// What went wrong, e.g. `syntax error: bad substitution`.
    pub message: String,
}

/// The full result of processing one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The word after expansion and quote removal (what [`Lex::process_word`] returns).
    pub result: String,
    /// The expanded word split into words (what [`Lex::process_words`] returns).
    pub words: Vec<String>,
    /// Variable names that were looked up and found.
    pub matched: BTreeSet<String>,
    /// Variable names that were looked up and not found.
    pub unmatched: BTreeSet<String>,
}

/// Shell word lexer and expander (BuildKit's `shell.Lex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lex {
    /// The escape character: `\` (default) or `` ` `` (from `# escape=`).
    pub escape: char,
    /// Keep quote characters in the output instead of removing them.
    pub raw_quotes: bool,
    /// Keep escape characters in the output instead of removing them.
    pub raw_escapes: bool,
    /// Treat quote characters as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written (`$X`, `${X:-y}`) instead of expanding them.
    pub skip_unset_env: bool,
}

impl Default for Lex {
    fn default() -> Self {
        Lex::new('\\')
    }
}

impl Lex {
    /// A lexer with the given escape character and default options.
    pub fn new(escape: char) -> Lex {
        Lex {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands variables in `word` and removes quotes and escapes; the result is one string.
    pub fn process_word<F>(&self, word: &str, env: &F) -> Result<String, ShellError>
    where
        F: Fn(&str) -> Option<String>,
    {
        self.process(word, env).map(|e| e.result)
    }

    /// Like [`Lex::process_word`], then splits the result into words (see the module docs).
    pub fn process_words<F>(&self, word: &str, env: &F) -> Result<Vec<String>, ShellError>
    where
        F: Fn(&str) -> Option<String>,
    {
        self.process(word, env).map(|e| e.words)
    }

    /// Processes `word` and returns everything that was learnt: the single-string result, the
    /// split words and the variable names that were and were not found.
    pub fn process<F>(&self, word: &str, env: &F) -> Result<Expansion, ShellError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let mut sw = ShellWord {
            lex: self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match sw.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: sw.matched,
                unmatched: sw.unmatched,
            }),
            Err(message) => Err(ShellError {
                input: word.to_string(),
                message,
            }),
        }
    }
}

/// An environment lookup over `KEY=VALUE` strings, like BuildKit's `BuildEnvs`: an entry without
/// `=` defines the key with an empty value, and later entries override earlier ones.
pub fn env_from_list<S: AsRef<str>>(list: &[S]) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| {
        let mut found = None;
        for entry in list {
            let entry = entry.as_ref();
            let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
            if k == name {
                found = Some(v.to_string());
            }
        }
        found
    }
}

/// Go's `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

struct ShellWord<'a> {
    lex: &'a Lex,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    raw_escapes: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

/// Accumulates the split words while a word is processed.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

const MISSING_BRACE: &str = "syntax error: missing '}'";

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match (self.env)(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Processes characters until `stop` (consumed) or the end of input, with escapes kept or
    /// removed as `raw_escapes` says.
    fn process_stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        let quotes = !self.lex.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
            } else if ch == '<' {
                let tmp = self.process_possible_heredoc();
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if quotes && ch == '\'' {
                let tmp = self.process_single_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else if quotes && ch == '"' {
                let tmp = self.process_double_quote()?;
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else {
                self.pos += 1;
                if ch == self.lex.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // The escape character escapes the next one, except at the end of input.
                    let Some(escaped) = self.next() else { break };
                    words.add_raw_char(escaped);
                    result.push(escaped);
                } else {
                    words.add_char(ch);
                    result.push(ch);
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!("unexpected end of statement while looking for matching {stop}"));
        }
        Ok((result, words.finish()))
    }

    /// `<<` keeps the blanks after it in its word, so that `<< EOF` stays one heredoc word.
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, ' ' | '\t' | '\r')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }

    fn process_single_quote(&mut self) -> Result<String, String> {
        // Everything up to the next single quote is literal; nothing can be escaped.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, String> {
        // Everything up to the next unescaped double quote is literal except `$`; the escape
        // character only escapes `"`, `$` and itself and is kept before anything else.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape at the very end is dropped (and the quote is unterminated).
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                ch = c;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                // Positional parameter: all the digits.
                while let Some(c) = self.peek().filter(|c| is_digit(*c)) {
                    self.pos += 1;
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && is_special_param(ch) {
                self.pos += 1;
                return ch.to_string();
            }
            if !is_letter(ch) && !is_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        match self.peek() {
            None => return Err(MISSING_BRACE.into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let ch = self.next();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':') => {
                let modifier = self.next();
                self.process_modifier(&name, modifier, true)
            }
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => self.process_modifier(&name, Some(c), false),
            Some('/') => self.process_replace(&name),
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
            None => Err(MISSING_BRACE.into()),
        }
    }

    /// `${name<modifier>word}` and `${name:<modifier>word}`.
    fn process_modifier(&mut self, name: &str, modifier: Option<char>, null_is_unset: bool) -> Result<String, String> {
        let raw_escapes = matches!(modifier, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            let m = modifier.map(String::from).unwrap_or_default();
            return Err(format!("unsupported modifier (:{m}) in substitution"));
        }
        let (mut word, _) = self.process_stop_on(Some('}'), raw_escapes).map_err(|e| {
            if self.peek().is_none() {
                MISSING_BRACE.to_string()
            } else {
                e
            }
        })?;
        let value = self.get_env(name);
        let colon = if null_is_unset { ":" } else { "" };
        let modifier_text: String = modifier.map(String::from).unwrap_or_default();
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{colon}{modifier_text}{word}}}"));
        }
        let unset_or_null = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match modifier {
            Some('-') => Ok(if unset_or_null { word } else { value.unwrap_or_default() }),
            Some('+') => Ok(if unset_or_null { String::new() } else { word }),
            Some('?') => match value {
                None => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be unset"
                    } else {
                        &word
                    }
                )),
                Some(v) if null_is_unset && v.is_empty() => Err(format!(
                    "{name}: {}",
                    if word.is_empty() {
                        "is not allowed to be empty"
                    } else {
                        &word
                    }
                )),
                Some(v) => Ok(v),
            },
            Some(m @ ('#' | '%')) => {
                // `#`/`%` remove the shortest match, `##`/`%%` the longest.
                let greedy = word.starts_with(m);
                if greedy {
                    word.remove(0);
                }
                let value = value.unwrap_or_default();
                if m == '%' {
                    trim_suffix(&word, &value, greedy)
                } else {
                    trim_prefix(&word, &value, greedy)
                }
            }
            _ => Err(format!("unsupported modifier ({colon}{modifier_text}) in substitution")),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn process_replace(&mut self, name: &str) -> Result<String, String> {
        let replace_all = self.peek() == Some('/');
        if replace_all {
            self.pos += 1;
        }
        let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
            if self.peek().is_none() {
                "syntax error: missing '/' in ${}".to_string()
            } else {
                e
            }
        })?;
        let (replacement, _) = self.process_stop_on(Some('}'), true).map_err(|e| {
            if self.peek().is_none() {
                MISSING_BRACE.to_string()
            } else {
                e
            }
        })?;
        let value = self.get_env(name);
        if value.is_none() && self.lex.skip_unset_env {
            let slashes = if replace_all { "//" } else { "/" };
            return Ok(format!("${{{name}{slashes}{pattern}/{replacement}}}"));
        }
        // An unset variable is matched as an empty value, so `${X//*/y}` is `y`.
        replace(&pattern, &replacement, &value.unwrap_or_default(), replace_all)
    }
}

// ---------------------------------------------------------------------------------------------
// Glob patterns (`*`, `?`, `\` escapes), matched with the preferences of Go's regexp package
// (leftmost match, then `.*` longest first or `.*?` shortest first). Wildcards do not match a
// newline, as `.` does not in Go regular expressions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => {
                // `\}` and `\/` are escapes of the `${}` syntax, not of the pattern.
                if matches!(it.peek(), Some('}' | '/')) {
                    continue;
                }
                match it.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push(Tok::Lit(e)),
                    Some(e) => return Err(format!("invalid escape '\\{e}'")),
                    None => return Err("invalid escape '\\' at end of pattern".into()),
                }
            }
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// A compiled pattern matched against one text. `ok[i][j]` ("tokens `i..` can match starting at
/// `j`") is computed for every token; rows that follow a `*` are kept, with their nearest true
/// positions, so that the preferred match (each `*` taking its longest or shortest possible
/// length, in order) is found by a straight walk.
struct Matcher {
    toks: Vec<Tok>,
    greedy: bool,
    /// For each position, the next newline (or the end): how far a `*` starting there can reach.
    reach: Vec<usize>,
    /// Positions where the whole pattern can start, as "next such position at or after".
    start_next: Vec<usize>,
    /// For a `*` at token `i`: nearest positions where tokens `i+1..` can match (previous, next).
    after_star: Vec<Option<(Vec<usize>, Vec<usize>)>>,
}

const NONE: usize = usize::MAX;

/// Refuses pattern and value combinations whose tables would be unreasonably large.
const MAX_MATCH_CELLS: usize = 16 << 20;

fn nearest(row: &[bool]) -> (Vec<usize>, Vec<usize>) {
    let mut prev = vec![NONE; row.len()];
    let mut next = vec![NONE; row.len()];
    let mut last = NONE;
    for (k, &t) in row.iter().enumerate() {
        if t {
            last = k;
        }
        prev[k] = last;
    }
    last = NONE;
    for k in (0..row.len()).rev() {
        if row[k] {
            last = k;
        }
        next[k] = last;
    }
    (prev, next)
}

impl Matcher {
    fn new(pattern: &str, text: &[char], greedy: bool) -> Result<Matcher, String> {
        let mut toks =
            compile_pattern(pattern).map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
        // `**` prefers exactly what `*` prefers.
        toks.dedup_by(|a, b| *a == Tok::Star && *b == Tok::Star);
        let n = text.len();
        let stars = toks.iter().filter(|t| **t == Tok::Star).count();
        if (stars + 1).saturating_mul(n + 1) > MAX_MATCH_CELLS {
            return Err(format!(
                "pattern ({pattern}) is too complex for a value of {n} characters"
            ));
        }
        let mut reach = vec![n; n + 1];
        for j in (0..n).rev() {
            reach[j] = if text[j] == '\n' { j } else { reach[j + 1] };
        }
        let mut after_star = vec![None; toks.len()];
        let mut row = vec![true; n + 1];
        for i in (0..toks.len()).rev() {
            let mut cur = vec![false; n + 1];
            match toks[i] {
                Tok::Lit(c) => (0..n).for_each(|j| cur[j] = text[j] == c && row[j + 1]),
                Tok::Any => (0..n).for_each(|j| cur[j] = text[j] != '\n' && row[j + 1]),
                Tok::Star => {
                    for j in (0..=n).rev() {
                        cur[j] = row[j] || (j < n && text[j] != '\n' && cur[j + 1]);
                    }
                    after_star[i] = Some(nearest(&row));
                }
            }
            row = cur;
        }
        let start_next = nearest(&row).1;
        Ok(Matcher {
            toks,
            greedy,
            reach,
            start_next,
            after_star,
        })
    }

    /// The preferred match starting at `start`, which must be a position where one exists.
    fn walk(&self, start: usize) -> usize {
        let mut j = start;
        for (i, tok) in self.toks.iter().enumerate() {
            match tok {
                Tok::Lit(_) | Tok::Any => j += 1,
                Tok::Star => {
                    let (prev, next) = self.after_star[i].as_ref().expect("rows are kept after every star");
                    j = if self.greedy { prev[self.reach[j]] } else { next[j] };
                }
            }
        }
        j
    }

    /// The preferred match anchored at the start of the text.
    fn match_start(&self) -> Option<usize> {
        (self.start_next[0] == 0).then(|| self.walk(0))
    }

    /// Leftmost match at or after `from`.
    fn find(&self, from: usize) -> Option<(usize, usize)> {
        let s = *self.start_next.get(from)?;
        (s != NONE).then(|| (s, self.walk(s)))
    }
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let text: Vec<char> = value.chars().collect();
    let m = Matcher::new(pattern, &text, greedy)?;
    Ok(match m.match_start() {
        Some(end) => text[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// Reverses a pattern without reversing its escapes (`a\*c` becomes `c\*a`).
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    if p.is_empty() {
        return String::new();
    }
    let last = p.len() - 1;
    let mut out = vec!['\0'; p.len()];
    let mut i = 0;
    while i <= last {
        let out_idx = last - i;
        if p[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    // Finding the shortest rightmost match is a leftmost search on the reversed strings.
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn replace(pattern: &str, replacement: &str, value: &str, all: bool) -> Result<String, String> {
    let text: Vec<char> = value.chars().collect();
    let m = Matcher::new(pattern, &text, true)?;
    if !all {
        return Ok(match m.find(0) {
            Some((s, e)) => {
                let mut out: String = text[..s].iter().collect();
                out.push_str(replacement);
                out.extend(&text[e..]);
                out
            }
            None => value.to_string(),
        });
    }
    // Go's Regexp.ReplaceAllString: `$0`/`${0}` in the replacement is the matched text, other
    // `$name` references expand to nothing and `$$` is a dollar sign.
    let n = text.len();
    let mut out = String::new();
    let (mut last_end, mut search) = (0usize, 0usize);
    while search <= n {
        let Some((s, e)) = m.find(search) else { break };
        out.extend(&text[last_end..s]);
        if e > last_end || s == 0 {
            expand_template(&mut out, replacement, &text[s..e]);
        }
        last_end = e;
        search = if search + 1 > e { search + 1 } else { e };
    }
    out.extend(&text[last_end..]);
    Ok(out)
}

fn expand_template(out: &mut String, template: &str, matched: &[char]) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (brace, body) = match rest.strip_prefix('{') {
            Some(b) => (true, b),
            None => (false, rest),
        };
        let name_len: usize = body
            .chars()
            .take_while(|c| is_letter(*c) || is_digit(*c) || *c == '_')
            .map(char::len_utf8)
            .sum();
        if name_len == 0 || (brace && !body[name_len..].starts_with('}')) {
            out.push('$');
            continue;
        }
        let name = &body[..name_len];
        rest = &body[name_len + usize::from(brace)..];
        if name == "0" {
            out.extend(matched);
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "EMPTY" => Some(String::new()),
            "P" => Some("foo/bar/baz.tar.gz".into()),
            "A" => Some("aXbXc".into()),
            _ => None,
        }
    }

    fn word(s: &str) -> Result<String, ShellError> {
        Lex::new('\\').process_word(s, &env)
    }

    #[test]
    fn patterns() {
        assert_eq!(word("${P#*/}").unwrap(), "bar/baz.tar.gz");
        assert_eq!(word("${P##*/}").unwrap(), "baz.tar.gz");
        assert_eq!(word("${P%.*}").unwrap(), "foo/bar/baz.tar");
        assert_eq!(word("${P%%.*}").unwrap(), "foo/bar/baz");
        assert_eq!(word("${P%/*}").unwrap(), "foo/bar");
        assert_eq!(word("${P#nomatch}").unwrap(), "foo/bar/baz.tar.gz");
        assert_eq!(word("${P#f?o}").unwrap(), "/bar/baz.tar.gz");
        assert_eq!(word("${A/X/-}").unwrap(), "a-bXc");
        assert_eq!(word("${A//X/-}").unwrap(), "a-b-c");
        // As in BuildKit, the replacement goes through Go's regexp template expansion.
        assert_eq!(word("${A//X/[\\$0]}").unwrap(), "a[\\X]b[\\X]c");
        assert_eq!(word("${A/X/[\\$0]}").unwrap(), "a[\\$0]bXc");
        assert_eq!(word("${A//*/z}").unwrap(), "z");
        assert_eq!(word("${A/X*/z}").unwrap(), "az");
        assert_eq!(word("${P//\\//_}").unwrap(), "foo_bar_baz.tar.gz");
        assert_eq!(word("${NOPE//a/b}").unwrap(), "");
        assert_eq!(word("${NOPE//*/b}").unwrap(), "b");
        assert_eq!(word("${A/#/z}").unwrap(), "aXbXc");
        assert_eq!(word("${A//?/.}").unwrap(), ".....");
        assert_eq!(word("${A//X*b/_}").unwrap(), "a_Xc");
        assert_eq!(word("${A##*X}").unwrap(), "c");
        assert_eq!(word("${A#*X}").unwrap(), "bXc");
        assert_eq!(word("${A%X*}").unwrap(), "aXb");
        assert_eq!(word("${A%%X*}").unwrap(), "a");
        assert_eq!(word("${A/\\*/z}").unwrap(), "aXbXc");
        assert!(word("${A/\\q/z}").is_err());
        assert!(word("${A/X").is_err());
    }

    #[test]
    fn unset_vs_empty() {
        assert_eq!(word("${EMPTY-x}").unwrap(), "");
        assert_eq!(word("${EMPTY:-x}").unwrap(), "x");
        assert_eq!(word("${EMPTY+x}").unwrap(), "x");
        assert_eq!(word("${EMPTY:+x}").unwrap(), "");
        assert_eq!(word("${NOPE+x}").unwrap(), "");
        assert_eq!(word("${EMPTY?}").unwrap(), "");
        let e = word("${NOPE?custom message}").unwrap_err();
        assert_eq!(e.message, "NOPE: custom message");
        let e = word("${EMPTY:?}").unwrap_err();
        assert_eq!(e.message, "EMPTY: is not allowed to be empty");
    }

    #[test]
    fn words_and_matches() {
        let lex = Lex::new('\\');
        let e = lex.process("a $PWD \"b c\" $NOPE", &env).unwrap();
        assert_eq!(e.words, vec!["a", "/home", "b c"]);
        assert!(e.matched.contains("PWD"));
        assert!(e.unmatched.contains("NOPE"));
    }

    #[test]
    fn heredoc_markers_keep_their_blanks() {
        let lex = Lex::new('\\');
        assert_eq!(
            lex.process_words("cat <<  EOF > x", &env).unwrap(),
            vec!["cat", "<<  EOF", ">", "x"]
        );
        assert_eq!(lex.process_words("a < b <<", &env).unwrap(), vec!["a", "<", "b", "<<"]);
        assert_eq!(lex.process_word("x<<  y", &env).unwrap(), "x<<  y");
    }

    #[test]
    fn backtick_escape() {
        let lex = Lex::new('`');
        assert_eq!(lex.process_word("a`$PWD\\x", &env).unwrap(), "a$PWD\\x");
        assert_eq!(lex.process_word("\"a`\"b\"", &env).unwrap(), "a\"b");
    }

    #[test]
    fn skip_unset_and_raw() {
        let lex = Lex {
            raw_quotes: true,
            skip_unset_env: true,
            ..Lex::new('\\')
        };
        assert_eq!(
            lex.process_word("'$X' $Y ${Z:-d} ${W//a/b} $PWD", &env).unwrap(),
            "'$X' $Y ${Z:-d} ${W//a/b} /home"
        );
    }

    #[test]
    fn hostile_patterns_are_fast() {
        let value = "a".repeat(20_000);
        let envf = |n: &str| (n == "V").then(|| value.clone());
        let lex = Lex::new('\\');
        let r = lex.process_word("${V//*a*a*a*a*b/x}", &envf).unwrap();
        assert_eq!(r, value);
        let r = lex.process_word("${V%%*a*a*b}", &envf).unwrap();
        assert_eq!(r, value);
    }

    #[test]
    fn reverse() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern(""), "");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
    }
}
