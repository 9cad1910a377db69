//! Dockerfile front end for strata: parsing, typed instructions and shell-word expansion, with
//! the semantics of BuildKit (the builder inside `docker build`).
//!
//! - [`parser`]: [`parse`] turns a Dockerfile into an [`Ast`] of [`Node`]s (directives, line
//!   continuations, JSON and shell forms, flags, heredocs, line numbers); [`Ast::dump`] prints
//!   it in BuildKit's test format.
//! - [`instructions`]: [`parse_dockerfile`] checks every instruction and groups them into
//!   [`Stage`]s of typed [`Instruction`]s, with the `ARG`s before the first `FROM` kept apart.
//! - [`shell`]: [`Lex`] expands `$VARIABLES` and removes quotes the way BuildKit does when it
//!   evaluates instruction arguments.
//!
//! ```
//! let df = strata_build::parse_dockerfile(b"FROM alpine AS base\nRUN echo hi\n").unwrap();
//! assert_eq!(df.stages[0].name.as_deref(), Some("base"));
//! let lex = strata_build::Lex::new(df.escape);
//! let env = |name: &str| (name == "WHO").then(|| "world".to_string());
//! assert_eq!(lex.process_word("hello \"$WHO\"", &env).unwrap(), "hello world");
//! ```

pub mod instructions;
mod json;
pub mod parser;
mod ports;
mod quote;
pub mod shell;

pub use instructions::{
    CommandForm, CopyFlags, CopyInstruction, Dockerfile, FromInstruction, Healthcheck, InlineSource, Instruction,
    RunFlags, RunInstruction, Stage, Step, dockerfile_from_ast, parse_dockerfile, parse_instruction,
};
pub use parser::{Ast, Directive, Heredoc, Node, ParseError, parse};
pub use ports::expose_ports;
pub use quote::{go_quote, go_quote_list};
pub use shell::{Expansion, Lex, ShellError, env_from_list};
