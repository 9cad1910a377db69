//! Dockerfile parser, following BuildKit's `frontend/dockerfile/parser`.
//!
//! [`parse`] turns the source into an [`Ast`]: the parser directives (`# syntax=`,
//! `# escape=`, `# check=`) and one [`Node`] per instruction, with line continuations joined
//! (comment and empty lines inside a continuation are dropped, as BuildKit does), flags
//! (`--from=x`) split off, arguments split the way BuildKit splits each instruction's
//! arguments (JSON or shell form, `key=value` pairs, whitespace-separated lists, `ONBUILD`'s
//! nested instruction), and heredoc bodies (`RUN <<EOF`) attached. Values are kept as written:
//! quotes and variables are handled later by [`crate::shell::Lex`].
//!
//! [`Ast::dump`] prints the tree in the format of BuildKit's parser tests, one
//! `(instruction "arg" ...)` line per instruction.
//!
//! Input that is not valid UTF-8 is decoded lossily (invalid bytes become U+FFFD), which is
//! what Docker's image config ends up holding for such text anyway. Lines longer than 65,535
//! bytes are rejected, as BuildKit's line scanner rejects them.

use crate::json::{JsonArray, parse_array_prefix};
use crate::quote::{go_quote, go_quote_list};
use crate::shell::{Lex, is_space};

/// The longest line BuildKit reads (`bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE_LEN: usize = 65_535;

/// A parse error, located at a line of the Dockerfile (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The line the error is reported at (the first line of the instruction).
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

/// A parser directive from the top of the file, such as `# syntax=docker/dockerfile:1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive's name, in lower case: `syntax`, `escape` or `check`.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// The line it was on.
    pub line: usize,
}

/// A here-document attached to an instruction (`RUN <<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, with quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 if none.
    pub file_descriptor: u32,
    /// Whether variables in the content are expanded: false when the word was quoted.
    pub expand: bool,
    /// Whether leading tabs are stripped (`<<-EOF`).
    pub chomp: bool,
    /// The body exactly as written, line endings included, leading tabs not yet stripped.
    pub content: String,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp` is set (`<<-`).
    pub fn processed_content(&self) -> String {
        if self.chomp {
            chomp_heredoc_content(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes the leading tabs of every line.
pub fn chomp_heredoc_content(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction keyword in lower case (`run`, `copy`, ...).
    pub value: String,
    /// The instruction's text with continuations joined (heredoc bodies not included).
    pub original: String,
    /// The `--flags` given before the arguments, as written (`--from=builder`), quotes removed.
    pub flags: Vec<String>,
    /// The arguments. For JSON form, one per array element; for shell form, one holding the
    /// whole command; for `ENV`/`LABEL`, triples of key, value and separator (`=` or empty
    /// for the legacy `ENV key value` form); for `ONBUILD`, empty (see `child`).
    pub next: Vec<String>,
    /// The nested instruction of `ONBUILD`.
    pub child: Option<Box<Node>>,
    /// Whether the arguments were given in JSON (exec) form.
    pub json: bool,
    /// Heredocs read after the instruction, in order.
    pub heredocs: Vec<Heredoc>,
    /// The line the instruction starts on.
    pub start_line: usize,
    /// The line it ends on (including continuation lines and heredoc bodies).
    pub end_line: usize,
}

impl Node {
    /// The arguments as BuildKit's instruction layer sees them: for `ONBUILD`, the nested
    /// instruction's keyword followed by its arguments.
    pub fn args(&self) -> Vec<String> {
        let mut out = self.next.clone();
        if let Some(child) = &self.child {
            out.push(child.value.clone());
            out.extend(child.args());
        }
        out
    }

    /// The node in BuildKit's dump format, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.value.to_lowercase();
        if !self.flags.is_empty() {
            s.push(' ');
            s.push_str(&go_quote_list(&self.flags));
        }
        for arg in &self.next {
            s.push(' ');
            s.push_str(&go_quote(arg));
        }
        if let Some(child) = &self.child {
            s.push_str(" (");
            s.push_str(&child.dump());
            s.push(')');
        }
        s.trim().to_string()
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.child, self.value.as_str()) {
            (Some(child), "onbuild") => child,
            _ => self,
        };
        matches!(node.value.as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    /// Parser directives, in the order written.
    pub directives: Vec<Directive>,
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// The escape character in effect (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// Warnings, such as empty lines inside a continuation (which BuildKit plans to reject).
    pub warnings: Vec<String>,
}

impl Ast {
    /// The whole tree in BuildKit's test format: one `(...)` line per instruction, each ending
    /// with a newline.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }

    /// The value of a parser directive, if given.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

/// The instructions this parser knows, in lower case.
pub const INSTRUCTIONS: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

struct Directives {
    escape: char,
    done: bool,
    found: Vec<Directive>,
}

impl Directives {
    /// Looks for a directive on a line (left-trimmed, line ending removed); the first line that
    /// is not a directive ends the search for good.
    fn check_line(&mut self, line: &str, line_no: usize) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = match_directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.found.iter().any(|d| d.name == name) {
            return Err(ParseError::new(
                line_no,
                format!("only one {name} parser directive can be used"),
            ));
        }
        if name == "escape" {
            self.escape = match value {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(ParseError::new(
                        line_no,
                        format!("invalid escape token '{other}' does not match ` or \\"),
                    ));
                }
            };
        }
        self.found.push(Directive {
            name,
            value: value.to_string(),
            line: line_no,
        });
        Ok(())
    }
}

/// Go's `\s`: ASCII whitespace without the vertical tab.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0c' | '\r')
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let rest = rest[name_len..].trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if value.is_empty() {
        // `(.+?)` still takes one character when only whitespace follows the `=`.
        let last = rest.chars().next_back()?;
        return Some((name, &rest[rest.len() - last.len_utf8()..]));
    }
    Some((name, value))
}

/// Whitespace as BuildKit's `[\t\v\f\r ]+` splitting sees it.
fn is_token_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// Splits off the first whitespace-separated token (the split of `reWhitespace.Split(s, 2)`).
fn split_first_token(s: &str) -> (&str, Option<&str>) {
    match s.find(is_token_space) {
        Some(at) => (&s[..at], Some(s[at..].trim_start_matches(is_token_space))),
        None => (s, None),
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Removes a line continuation (the escape character, optionally followed by spaces or tabs,
/// at the end of the line and not itself escaped). Returns the text and whether the
/// instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before.to_string(), false),
        _ => (line.to_string(), true),
    }
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Splits the input into lines, keeping the line endings.
struct Lines<'a> {
    src: &'a [u8],
    pos: usize,
    line_no: usize,
}

impl Lines<'_> {
    fn next_line(&mut self) -> Result<Option<String>, ParseError> {
        if self.pos >= self.src.len() {
            return Ok(None);
        }
        let rest = &self.src[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let raw = &rest[..len];
        self.pos += len;
        self.line_no += 1;
        let content_len = raw.strip_suffix(b"\n").unwrap_or(raw).len();
        if content_len > MAX_LINE_LEN {
            return Err(ParseError::new(
                self.line_no,
                format!("dockerfile line greater than max allowed size of {MAX_LINE_LEN}"),
            ));
        }
        let mut text = String::from_utf8_lossy(raw).into_owned();
        if self.line_no == 1 && text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        Ok(Some(text))
    }
}

/// Parses a Dockerfile.
pub fn parse(src: &[u8]) -> Result<Ast, ParseError> {
    let mut lines = Lines {
        src,
        pos: 0,
        line_no: 0,
    };
    let mut d = Directives {
        escape: '\\',
        done: false,
        found: Vec::new(),
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();

    while let Some(raw) = lines.next_line()? {
        let start_line = lines.line_no;
        let token = trim_newline(&raw).trim_start();
        d.check_line(token, start_line)?;
        let token = if token.starts_with('#') { "" } else { token };
        let (mut line, mut end) = trim_continuation(token, d.escape);
        if end && line.is_empty() {
            continue;
        }

        let mut empty_continuation = false;
        while !end {
            let Some(raw) = lines.next_line()? else { break };
            if is_comment(&raw) {
                continue;
            }
            let token = trim_newline(&raw);
            if token.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (more, e) = trim_continuation(token, d.escape);
            line.push_str(&more);
            end = e;
        }
        if empty_continuation {
            warnings.push(format!(
                "line {}: empty continuation line found in: {line}",
                lines.line_no
            ));
        }

        let mut node = node_from_line(&line, d.escape).map_err(|m| ParseError::new(start_line, m))?;

        if node.can_contain_heredoc() && line.contains("<<") {
            for mut heredoc in heredocs_from_line(&line).map_err(|m| ParseError::new(start_line, m))? {
                let mut terminated = false;
                while let Some(raw) = lines.next_line()? {
                    let mut candidate = trim_newline(&raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(&raw);
                }
                if !terminated {
                    return Err(ParseError::new(
                        start_line,
                        format!(
                            "unterminated heredoc {:?} (no line {:?} before the end of the file)",
                            heredoc.name, heredoc.name
                        ),
                    ));
                }
                node.heredocs.push(heredoc);
            }
        }

        node.start_line = start_line;
        node.end_line = lines.line_no;
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError::new(lines.line_no.max(1), "file with no instructions"));
    }
    Ok(Ast {
        directives: d.found,
        nodes,
        escape: d.escape,
        warnings,
    })
}

/// Splits a (joined) line into its instruction, flags and arguments.
fn node_from_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, rest) = split_first_token(line.trim());
    let (args, flags) = match rest {
        Some(rest) => extract_builder_flags(rest),
        None => (String::new(), Vec::new()),
    };
    let args = args.trim();
    let value = cmd.to_lowercase();
    let mut node = Node {
        value,
        original: line.to_string(),
        flags,
        next: Vec::new(),
        child: None,
        json: false,
        heredocs: Vec::new(),
        start_line: 0,
        end_line: 0,
    };
    match node.value.as_str() {
        "add" | "copy" | "volume" => (node.next, node.json) = parse_maybe_json_to_list(args)?,
        "arg" => node.next = parse_words(args, escape),
        "cmd" | "entrypoint" | "run" | "shell" => (node.next, node.json) = parse_maybe_json(args)?,
        "env" => node.next = parse_name_val(args, "ENV", escape)?,
        "label" => node.next = parse_name_val(args, "LABEL", escape)?,
        "expose" | "from" => node.next = split_whitespace(args),
        "healthcheck" => (node.next, node.json) = parse_health_config(args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !args.is_empty() {
                node.next = vec![args.to_string()];
            }
        }
        "onbuild" => {
            if !args.is_empty() {
                node.child = Some(Box::new(node_from_line(args, escape)?));
            }
        }
        _ => return Err(unknown_instruction(cmd)),
    }
    Ok(node)
}

fn unknown_instruction(cmd: &str) -> String {
    let lower = cmd.to_lowercase();
    let best = INSTRUCTIONS
        .iter()
        .map(|known| (edit_distance(&lower, known), known))
        .min_by_key(|(dist, _)| *dist);
    match best {
        Some((dist, known)) if dist <= 2 && dist < lower.chars().count() => {
            format!("unknown instruction: {cmd} (did you mean {known}?)")
        }
        _ => format!("unknown instruction: {cmd}"),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Splits leading `--flag` words off `line`. Quotes in flags are removed and `\` escapes the
/// next character; a lone `--` ends the flags. Returns the rest of the line and the flags.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| chars.get(i).map_or(line.len(), |&(b, _)| b);
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut i = 0;
    loop {
        if phase == Phase::Spaces {
            if i == n {
                break;
            }
            let ch = chars[i].1;
            if is_space(ch) {
                i += 1;
                continue;
            }
            if ch != '-' || i + 1 == n || chars[i + 1].1 != '-' {
                return (line[byte_at(i)..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if i == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        let mut ch = chars[i].1;
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (line[byte_at(i)..].to_string(), words);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    i += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    i += 1;
                    continue;
                }
                if ch == '\\' {
                    if i + 1 == n {
                        i += 1;
                        continue;
                    }
                    i += 1;
                    ch = chars[i].1;
                }
                word.push(ch);
                i += 1;
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    i += 1;
                    continue;
                }
                if ch == '\\' {
                    if i + 1 == n {
                        phase = Phase::Word;
                        i += 1;
                        continue;
                    }
                    i += 1;
                    ch = chars[i].1;
                }
                word.push(ch);
                i += 1;
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    (String::new(), words)
}

/// Splits into words on whitespace outside quotes, keeping quotes and escapes in the words
/// (they are removed later, by expansion).
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    while pos <= n {
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space(chars[pos]) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        let mut ch = chars[pos];
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    word.clear();
                    blank_ok = false;
                    pos += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    if pos + 1 == n {
                        pos += 1;
                        continue; // an escape at the very end is dropped
                    }
                    word.push(ch);
                    pos += 1;
                    ch = chars[pos];
                }
                word.push(ch);
                pos += 1;
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                }
                if ch == escape && q != '\'' {
                    if pos + 1 == n {
                        phase = Phase::Word;
                        pos += 1;
                        continue;
                    }
                    word.push(ch);
                    pos += 1;
                    ch = chars[pos];
                }
                word.push(ch);
                pos += 1;
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    words
}

/// `ENV`/`LABEL`: `key=value ...` pairs, or the legacy `key value` form when the first word has
/// no `=`. Produces key, value, separator triples.
fn parse_name_val(rest: &str, instruction: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let (key, value) = split_first_token(rest);
        return match value {
            Some(value) => Ok(vec![key.to_string(), value.to_string(), String::new()]),
            None => Err(format!("{instruction} must have two arguments")),
        };
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(&word)
            ));
        };
        out.extend([key.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn split_whitespace(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    rest.split(is_token_space)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

const NOT_STRING_ARRAY: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// JSON form if the arguments are a JSON array of strings, otherwise one shell-form argument.
fn parse_maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_array_prefix(rest) {
        Some(JsonArray::Strings(v)) => Ok((v, true)),
        Some(JsonArray::NotStrings) => Err(NOT_STRING_ARRAY.into()),
        None => Ok((vec![rest.to_string()], false)),
    }
}

/// JSON form if the arguments are a JSON array of strings, otherwise whitespace-separated words.
fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_array_prefix(rest) {
        Some(JsonArray::Strings(v)) => Ok((v, true)),
        Some(JsonArray::NotStrings) => Err(NOT_STRING_ARRAY.into()),
        None => Ok((split_whitespace(rest), false)),
    }
}

/// `HEALTHCHECK TYPE command...`: the type word, then the command as for `CMD`.
fn parse_health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(is_space).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let (typ, cmd) = rest.split_at(sep);
    let (args, json) = parse_maybe_json(cmd.trim_start_matches(is_space))?;
    let mut out = vec![typ.to_string()];
    out.extend(args);
    Ok((out, json))
}

/// Finds the heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) among the words of a line.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lex = Lex {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lex::new('\\')
    };
    let words = lex.process_words(line, &|_: &str| None).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(heredoc) = parse_heredoc(&word)? {
            docs.push(heredoc);
        }
    }
    Ok(docs)
}

/// Parses one word as a heredoc marker (`^(\d*)<<(-?)\s*([^<]*)$`); `None` if it is not one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(is_re_space);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let file_descriptor = word[..digits].parse().unwrap_or(0);
    let no_env = |_: &str| None;
    let lex = Lex {
        skip_unset_env: true,
        ..Lex::new('\\')
    };
    let words = lex.process_words(rest, &no_env).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_lex = Lex {
        raw_quotes: true,
        ..lex
    };
    let raw_words = raw_lex.process_words(rest, &no_env).map_err(|e| e.to_string())?;
    if raw_words.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    // Quoting any part of the word turns expansion off.
    let expand = quotes(&words[0]) == quotes(&raw_words[0]);
    Ok(Some(Heredoc {
        name: words.into_iter().next().unwrap_or_default(),
        file_descriptor,
        expand,
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests;
