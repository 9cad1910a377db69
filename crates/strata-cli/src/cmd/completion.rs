//! `strata completion bash|zsh|fish`: a completion script for the shell,
//! made from the command line's own definition (clap_complete).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

#[derive(Clone, Copy, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Args)]
#[command(
    override_usage = "strata completion bash|zsh|fish",
    after_help = "\nbash: source <(strata completion bash)\nzsh:  strata completion zsh > \"${fpath[1]}/_strata\"\nfish: strata completion fish | source"
)]
pub struct CompletionArgs {
    /// The shell to complete for
    shell: CompletionShell,
}

pub fn completion<C: CommandFactory>(a: CompletionArgs) -> Result<ExitCode> {
    let shell = match a.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = C::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "strata", &mut script);
    std::io::stdout().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
