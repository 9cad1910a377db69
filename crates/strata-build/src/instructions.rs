//! Typed instructions and build stages on top of the parser, following BuildKit's
//! `frontend/dockerfile/instructions`.
//!
//! [`parse_instruction`] checks one [`Node`]'s arguments and flags and turns it into an
//! [`Instruction`]; [`parse_dockerfile`] does that for a whole file and groups the instructions
//! into [`Stage`]s, one per `FROM`, keeping the `ARG`s written before the first `FROM` as
//! global arguments. Flags are checked the way BuildKit's `BFlags` checks them: each
//! instruction accepts its own set, `--flag=value` for string flags, `--flag`, `--flag=true` or
//! `--flag=false` for boolean ones, and anything else is an error naming the flag.
//!
//! Values are still as written (quotes and `$VARIABLES` included): expanding them needs the
//! build's arguments and environment, which is the job of the builder, using
//! [`crate::shell::Lex`] with the file's escape character.

use std::collections::HashMap;
use std::time::Duration;

use crate::parser::{Ast, Directive, Heredoc, Node, ParseError, chomp_heredoc_content, parse, parse_heredoc};

/// A command in shell form (run with the stage's shell) or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// `RUN echo hi`: the command text, continuations joined.
    Shell(String),
    /// `RUN ["echo", "hi"]`.
    Exec(Vec<String>),
}

/// `FROM [--platform=...] image [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromInstruction {
    /// The base image (or `scratch`, or an earlier stage's name).
    pub image: String,
    /// The stage name given with `AS`, in lower case.
    pub name: Option<String>,
    /// The `--platform` flag.
    pub platform: Option<String>,
}

/// Flags of `RUN`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFlags {
    /// `--mount=...`, each as written.
    pub mounts: Vec<String>,
    /// `--network=...`.
    pub network: Option<String>,
    /// `--security=...`.
    pub security: Option<String>,
    /// `--device=...`, each as written.
    pub devices: Vec<String>,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstruction {
    /// The command.
    pub command: CommandForm,
    /// Its flags.
    pub flags: RunFlags,
    /// Heredocs (`RUN <<EOF`), with their contents as written (see [`Heredoc::processed_content`]).
    pub heredocs: Vec<Heredoc>,
}

/// Flags of `COPY` and `ADD`. `COPY` accepts `--from`, `--chown`, `--chmod`, `--link`,
/// `--parents` and `--exclude`; `ADD` accepts `--chown`, `--chmod`, `--link`, `--exclude`,
/// `--keep-git-dir`, `--checksum` and `--unpack`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyFlags {
    /// `--from=stage|image|context` (COPY).
    pub from: Option<String>,
    /// `--chown=user:group`.
    pub chown: Option<String>,
    /// `--chmod=mode`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude=pattern`, possibly several.
    pub exclude: Vec<String>,
    /// `--parents` (COPY).
    pub parents: bool,
    /// `--checksum=sha256:...` (ADD).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD).
    pub keep_git_dir: bool,
    /// `--unpack=true|false` (ADD); `None` when not given.
    pub unpack: Option<bool>,
}

/// A source given inline as a heredoc (`COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineSource {
    /// The heredoc's name, which is also the file name it is copied as.
    pub name: String,
    /// The content, with leading tabs already removed for `<<-`.
    pub content: String,
    /// Whether variables in the content are to be expanded (the name was not quoted).
    pub expand: bool,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstruction {
    /// Source paths or URLs, as written.
    pub sources: Vec<String>,
    /// Sources given as heredocs.
    pub inline_sources: Vec<InlineSource>,
    /// The destination.
    pub dest: String,
    /// The flags.
    pub flags: CopyFlags,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// As in the image config: `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// One typed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM`.
    From(FromInstruction),
    /// `RUN`.
    Run(RunInstruction),
    /// `COPY`.
    Copy(CopyInstruction),
    /// `ADD`.
    Add(CopyInstruction),
    /// `ENV key=value ...` (or the legacy `ENV key value`).
    Env(Vec<(String, String)>),
    /// `ARG name[=default] ...`.
    Arg(Vec<(String, Option<String>)>),
    /// `LABEL key=value ...`.
    Label(Vec<(String, String)>),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `EXPOSE`, ports sorted as BuildKit sorts them.
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `ENTRYPOINT`.
    Entrypoint(CommandForm),
    /// `CMD`.
    Cmd(CommandForm),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `STOPSIGNAL`.
    Stopsignal(String),
    /// `SHELL` (JSON form only).
    Shell(Vec<String>),
    /// `ONBUILD`: the trigger instruction's text (heredoc bodies appended), stored in the image
    /// and parsed when the image is used as a base.
    Onbuild(String),
    /// `MAINTAINER` (deprecated).
    Maintainer(String),
}

impl Instruction {
    /// The instruction keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::User(_) => "USER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Cmd(_) => "CMD",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Shell(_) => "SHELL",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The instruction.
    pub instruction: Instruction,
    /// Its text as written, continuations joined.
    pub original: String,
    /// The first line.
    pub start_line: usize,
    /// The last line (heredoc bodies included).
    pub end_line: usize,
}

/// A build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The `AS` name, in lower case.
    pub name: Option<String>,
    /// The base image as written (may hold `$ARG`s).
    pub base: String,
    /// The `--platform` flag.
    pub platform: Option<String>,
    /// The instructions after `FROM`.
    pub instructions: Vec<Step>,
    /// The line of the `FROM`.
    pub start_line: usize,
}

/// A Dockerfile parsed into stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives (`# syntax=`, `# escape=`, `# check=`).
    pub directives: Vec<Directive>,
    /// The escape character, for expanding the values with [`crate::shell::Lex`].
    pub escape: char,
    /// `ARG`s before the first `FROM`, usable in `FROM` lines.
    pub global_args: Vec<(String, Option<String>)>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Parser warnings.
    pub warnings: Vec<String>,
}

impl Dockerfile {
    /// The stage with the given name (names are case-insensitive) or index.
    pub fn stage(&self, name_or_index: &str) -> Option<&Stage> {
        let lower = name_or_index.to_lowercase();
        if let Some(stage) = self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
            return Some(stage);
        }
        name_or_index.parse::<usize>().ok().and_then(|i| self.stages.get(i))
    }
}

/// Parses a Dockerfile into stages.
pub fn parse_dockerfile(src: &[u8]) -> Result<Dockerfile, ParseError> {
    let ast = parse(src)?;
    dockerfile_from_ast(&ast)
}

/// Groups an already parsed file into stages.
pub fn dockerfile_from_ast(ast: &Ast) -> Result<Dockerfile, ParseError> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.nodes {
        let instruction = parse_instruction(node)?;
        match (instruction, stages.last_mut()) {
            (Instruction::From(from), _) => stages.push(Stage {
                name: from.name,
                base: from.image,
                platform: from.platform,
                instructions: Vec::new(),
                start_line: node.start_line,
            }),
            (Instruction::Arg(args), None) => global_args.extend(args),
            (other, None) => {
                return Err(ParseError::new(
                    node.start_line,
                    format!(
                        "no build stage in current context: {} must come after a FROM (only ARG may come before the first FROM)",
                        other.keyword()
                    ),
                ));
            }
            (instruction, Some(stage)) => stage.instructions.push(Step {
                instruction,
                original: node.original.clone(),
                start_line: node.start_line,
                end_line: node.end_line,
            }),
        }
    }
    if stages.is_empty() {
        let line = ast.nodes.last().map_or(1, |n| n.end_line);
        return Err(ParseError::new(
            line,
            "dockerfile contains no stages to build (no FROM instruction)",
        ));
    }
    Ok(Dockerfile {
        directives: ast.directives.clone(),
        escape: ast.escape,
        global_args,
        stages,
        warnings: ast.warnings.clone(),
    })
}

/// Converts one parsed node into a typed instruction, checking its arguments and flags.
pub fn parse_instruction(node: &Node) -> Result<Instruction, ParseError> {
    typed(node).map_err(|message| ParseError::new(node.start_line, message))
}

fn typed(node: &Node) -> Result<Instruction, String> {
    let args = node.args();
    let flags = &node.flags;
    Ok(match node.value.as_str() {
        "env" => {
            parse_flags(flags, &[])?;
            Instruction::Env(key_value_pairs(&args, "ENV")?)
        }
        "label" => {
            parse_flags(flags, &[])?;
            Instruction::Label(key_value_pairs(&args, "LABEL")?)
        }
        "maintainer" => {
            let value = exactly_one(&args, "MAINTAINER")?;
            parse_flags(flags, &[])?;
            Instruction::Maintainer(value)
        }
        "add" | "copy" => copy_like(node, &args)?,
        "from" => {
            let name = stage_name(&args)?;
            let f = parse_flags(flags, &[("platform", Kind::Str)])?;
            Instruction::From(FromInstruction {
                image: args[0].clone(),
                name,
                platform: f.string("platform"),
            })
        }
        "onbuild" => onbuild(node, &args)?,
        "workdir" => {
            let value = exactly_one(&args, "WORKDIR")?;
            parse_flags(flags, &[])?;
            Instruction::Workdir(value)
        }
        "run" => {
            let f = parse_flags(
                flags,
                &[
                    ("mount", Kind::Strs),
                    ("network", Kind::Str),
                    ("security", Kind::Str),
                    ("device", Kind::Strs),
                ],
            )?;
            Instruction::Run(RunInstruction {
                command: command_form(&args, node.json),
                flags: RunFlags {
                    mounts: f.strings("mount"),
                    network: f.string("network"),
                    security: f.string("security"),
                    devices: f.strings("device"),
                },
                heredocs: node.heredocs.clone(),
            })
        }
        "cmd" => {
            parse_flags(flags, &[])?;
            Instruction::Cmd(command_form(&args, node.json))
        }
        "entrypoint" => {
            parse_flags(flags, &[])?;
            Instruction::Entrypoint(command_form(&args, node.json))
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node, &args)?),
        "expose" => {
            at_least_one(&args, "EXPOSE")?;
            parse_flags(flags, &[])?;
            let mut ports = args;
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            let value = exactly_one(&args, "USER")?;
            parse_flags(flags, &[])?;
            Instruction::User(value)
        }
        "volume" => {
            at_least_one(&args, "VOLUME")?;
            parse_flags(flags, &[])?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            Instruction::Volume(volumes)
        }
        // BuildKit does not check flags on STOPSIGNAL and ARG.
        "stopsignal" => Instruction::Stopsignal(exactly_one(&args, "STOPSIGNAL")?),
        "arg" => {
            at_least_one(&args, "ARG")?;
            let mut out = Vec::with_capacity(args.len());
            for arg in &args {
                match arg.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
                    None => out.push((arg.clone(), None)),
                }
            }
            Instruction::Arg(out)
        }
        "shell" => {
            parse_flags(flags, &[])?;
            if args.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Instruction::Shell(args)
        }
        other => return Err(format!("unknown instruction: {}", other.to_uppercase())),
    })
}

fn at_least_one(args: &[String], name: &str) -> Result<(), String> {
    if args.is_empty() {
        Err(format!("{name} requires at least one argument"))
    } else {
        Ok(())
    }
}

fn exactly_one(args: &[String], name: &str) -> Result<String, String> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(format!("{name} requires exactly one argument")),
    }
}

/// Key, value, separator triples from the parser.
fn key_value_pairs(args: &[String], name: &str) -> Result<Vec<(String, String)>, String> {
    at_least_one(args, name)?;
    if args.chunks(3).any(|c| c.len() != 3) {
        return Err(format!("Bad input to {name}, too many arguments"));
    }
    let mut out = Vec::with_capacity(args.len() / 3);
    for triple in args.chunks(3) {
        if triple[0].is_empty() {
            return Err(format!("{name} names can not be blank"));
        }
        out.push((triple[0].clone(), triple[1].clone()));
    }
    Ok(out)
}

fn command_form(args: &[String], json: bool) -> CommandForm {
    if json {
        CommandForm::Exec(args.to_vec())
    } else {
        CommandForm::Shell(args.join(" "))
    }
}

fn stage_name(args: &[String]) -> Result<Option<String>, String> {
    match args {
        [_] => Ok(None),
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::quote::go_quote(name)
                ));
            }
            Ok(Some(lower))
        }
        _ => Err("FROM requires either one or three arguments".into()),
    }
}

fn copy_like(node: &Node, args: &[String]) -> Result<Instruction, String> {
    let is_add = node.value == "add";
    let name = if is_add { "ADD" } else { "COPY" };
    if args.len() < 2 {
        return Err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let defs: &[(&str, Kind)] = if is_add {
        &[
            ("exclude", Kind::Strs),
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("keep-git-dir", Kind::Bool),
            ("checksum", Kind::Str),
            ("unpack", Kind::Bool),
        ]
    } else {
        &[
            ("exclude", Kind::Strs),
            ("from", Kind::Str),
            ("chown", Kind::Str),
            ("chmod", Kind::Str),
            ("link", Kind::Bool),
            ("parents", Kind::Bool),
        ]
    };
    let f = parse_flags(&node.flags, defs)?;
    let (sources, dest) = args.split_at(args.len() - 1);
    let dest = dest[0].clone();
    if is_heredoc_word(&dest) {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut paths = Vec::new();
    let mut inline_sources = Vec::new();
    for src in sources {
        match parse_heredoc(src).ok().flatten() {
            Some(marker) => {
                // As in BuildKit, a marker without a body (JSON form) is an empty file.
                let content = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|h| h.name == marker.name)
                    .map(|h| h.content.as_str());
                let content = content.unwrap_or_default();
                let content = if marker.chomp {
                    chomp_heredoc_content(content)
                } else {
                    content.to_string()
                };
                inline_sources.push(InlineSource {
                    name: marker.name,
                    content,
                    expand: marker.expand,
                });
            }
            None => paths.push(src.clone()),
        }
    }
    let flags = CopyFlags {
        from: f.string("from"),
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link"),
        exclude: f.strings("exclude"),
        parents: f.bool("parents"),
        checksum: f.string("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.used("unpack").then(|| f.bool("unpack")),
    };
    let copy = CopyInstruction {
        sources: paths,
        inline_sources,
        dest,
        flags,
    };
    Ok(if is_add {
        Instruction::Add(copy)
    } else {
        Instruction::Copy(copy)
    })
}

fn is_heredoc_word(word: &str) -> bool {
    matches!(parse_heredoc(word), Ok(Some(_)))
}

fn onbuild(node: &Node, args: &[String]) -> Result<Instruction, String> {
    at_least_one(args, "ONBUILD")?;
    parse_flags(&node.flags, &[])?;
    let trigger = args[0].trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => return Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
        _ => {}
    }
    // The text after the ONBUILD keyword (`(?i)^\s*ONBUILD\s*`), then any heredoc bodies.
    let original = node.original.trim_start();
    let mut expression = match original.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => original[7..].trim_start().to_string(),
        _ => original.to_string(),
    };
    for heredoc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    Ok(Instruction::Onbuild(expression))
}

fn healthcheck(node: &Node, args: &[String]) -> Result<Healthcheck, String> {
    at_least_one(args, "HEALTHCHECK")?;
    let typ = args[0].to_uppercase();
    let rest = &args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck {
            test: vec![typ],
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        });
    }
    let f = parse_flags(
        &node.flags,
        &[
            ("interval", Kind::Str),
            ("timeout", Kind::Str),
            ("start-period", Kind::Str),
            ("start-interval", Kind::Str),
            ("retries", Kind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            crate::quote::go_quote(&typ)
        ));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = if node.json {
        std::iter::once("CMD".to_string()).chain(rest.iter().cloned()).collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let interval = |name: &str| -> Result<Option<Duration>, String> {
        let Some(value) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let (negative, d) = parse_go_duration(&value)
            .ok_or_else(|| format!("time: invalid duration {}", crate::quote::go_quote(&value)))?;
        if d.is_zero() {
            return Ok(Some(d));
        }
        if negative || d < Duration::from_millis(1) {
            return Err(format!(
                "Interval {} cannot be less than 1ms",
                crate::quote::go_quote(name)
            ));
        }
        Ok(Some(d))
    };
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n: i32 = v
                .parse()
                .map_err(|_| format!("invalid value for --retries: {}", crate::quote::go_quote(&v)))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            Some(n as u32)
        }
    };
    Ok(Healthcheck {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    })
}

/// Parses a Go duration (`1h30m`, `1.5s`, `300ms`, `0`): whether it was negative, and its size.
fn parse_go_duration(s: &str) -> Option<(bool, Duration)> {
    let (negative, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some((negative, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let l = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(l)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().ok()? };
        let mut nanos = int.checked_mul(scale)?;
        let mut place = scale;
        for d in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * place;
        }
        total = total.checked_add(nanos)?;
        if total > i64::MAX as u128 {
            return None;
        }
        rest = after;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    Some((negative, Duration::new(secs, (total % 1_000_000_000) as u32)))
}

// ---------------------------------------------------------------------------------------------
// Flags, as BuildKit's BFlags parses them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Str,
    Strs,
}

#[derive(Debug, Default)]
struct ParsedFlags {
    strings: HashMap<String, Vec<String>>,
    bools: HashMap<String, bool>,
}

impl ParsedFlags {
    fn string(&self, name: &str) -> Option<String> {
        self.strings.get(name).and_then(|v| v.last().cloned())
    }

    fn strings(&self, name: &str) -> Vec<String> {
        self.strings.get(name).cloned().unwrap_or_default()
    }

    fn bool(&self, name: &str) -> bool {
        self.bools.get(name).copied().unwrap_or(false)
    }

    fn used(&self, name: &str) -> bool {
        self.bools.contains_key(name) || self.strings.contains_key(name)
    }
}

fn parse_flags(raw: &[String], defs: &[(&str, Kind)]) -> Result<ParsedFlags, String> {
    let mut parsed = ParsedFlags::default();
    for arg in raw {
        let Some(body) = arg.strip_prefix("--") else {
            return Err(format!("Arg should start with -- : {arg}"));
        };
        if body.is_empty() {
            break;
        }
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(&(_, kind)) = defs.iter().find(|(n, _)| *n == name) else {
            return Err(format!("Unknown flag: {name}"));
        };
        if kind != Kind::Strs && parsed.used(name) {
            return Err(format!("Duplicate flag specified: {name}"));
        }
        match kind {
            Kind::Bool => {
                let b = match value.map(str::to_ascii_lowercase).as_deref() {
                    None => true,
                    Some("") => return Err(format!("Missing a value on flag: {name}")),
                    Some("true") => true,
                    Some("false") => false,
                    Some(_) => {
                        return Err(format!(
                            "Expecting boolean value for flag {name}, not: {}",
                            value.unwrap_or_default()
                        ));
                    }
                };
                parsed.bools.insert(name.to_string(), b);
            }
            Kind::Str | Kind::Strs => {
                let Some(value) = value else {
                    return Err(format!("Missing a value on flag: {name}"));
                };
                parsed
                    .strings
                    .entry(name.to_string())
                    .or_default()
                    .push(value.to_string());
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests;
