//! pull, push, login, logout, manifest inspect, pin: argument parsing and
//! output; the work is in `strata-registry`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{ArgAction, Args, Subcommand};

#[derive(Args)]
#[command(override_usage = "strata pull [OPTIONS] NAME[:TAG|@DIGEST]")]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    pub reference: String,
}

#[derive(Args)]
#[command(override_usage = "strata push [OPTIONS] NAME[:TAG]")]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    pub reference: String,
}

#[derive(Args)]
#[command(override_usage = "strata login [OPTIONS] [SERVER]")]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    pub server: Option<String>,
}

#[derive(Args)]
#[command(override_usage = "strata logout [SERVER]")]
pub struct LogoutArgs {
    pub server: Option<String>,
}

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list, from a registry
    Inspect(ManifestInspectArgs),
}

#[derive(Args)]
#[command(override_usage = "strata manifest inspect [OPTIONS] NAME[:TAG|@DIGEST]")]
pub struct ManifestInspectArgs {
    /// Print the manifest exactly as the registry sent it
    #[arg(long)]
    pub raw: bool,
    /// Allow communication with an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    pub reference: String,
}

#[derive(Args)]
#[command(override_usage = "strata pin [OPTIONS]")]
pub struct PinArgs {
    /// Name of the Dockerfile
    #[arg(short, long, default_value = "Dockerfile")]
    pub file: PathBuf,
    /// Exit with status 1 when a pinned digest is no longer the tag's current one
    #[arg(long)]
    pub check: bool,
    /// Write the pinned references back into the Dockerfile
    #[arg(long)]
    pub write: bool,
    /// Platform whose manifest a pinned index must offer (default: the host's)
    #[arg(long)]
    pub platform: Option<String>,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
}

pub fn pull(_root: &Path, _a: PullArgs) -> Result<ExitCode> {
    bail!("pull: not implemented yet")
}

pub fn push(_root: &Path, _a: PushArgs) -> Result<ExitCode> {
    bail!("push: not implemented yet")
}

pub fn login(_a: LoginArgs) -> Result<ExitCode> {
    bail!("login: not implemented yet")
}

pub fn logout(_a: LogoutArgs) -> Result<ExitCode> {
    bail!("logout: not implemented yet")
}

pub fn manifest(_c: ManifestCommand) -> Result<ExitCode> {
    bail!("manifest: not implemented yet")
}

pub fn pin(_a: PinArgs) -> Result<ExitCode> {
    bail!("pin: not implemented yet")
}
