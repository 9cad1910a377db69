//! pull, push, login, logout, manifest inspect, pin: argument parsing and
//! output; the work is in `strata-registry`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use strata_oci::{Platform, Reference};
use strata_registry::{
    ClientOptions, Event, LayerStatus, PinAction, PinOptions, Progress, PullOptions, PushOptions, block_on, no_progress,
};

use super::open_store;

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

fn client_options(tls_verify: bool) -> ClientOptions {
    ClientOptions {
        insecure: !tls_verify,
        ..Default::default()
    }
}

/// Docker's plain (non-terminal) progress lines.
fn printer() -> Progress {
    Arc::new(|e: Event| {
        let line = match e {
            Event::PullingFrom { what, repository } => format!("{what}: Pulling from {repository}"),
            Event::PushingTo { repository } => format!("The push refers to repository [{repository}]"),
            Event::Layer { digest, status } => {
                let s = match status {
                    LayerStatus::AlreadyExists => "Already exists".to_string(),
                    LayerStatus::Downloading => "Pulling fs layer".to_string(),
                    LayerStatus::PullComplete => "Pull complete".to_string(),
                    LayerStatus::Compressing => "Preparing".to_string(),
                    LayerStatus::LayerAlreadyExists => "Layer already exists".to_string(),
                    LayerStatus::MountedFrom(r) => format!("Mounted from {r}"),
                    LayerStatus::Pushed => "Pushed".to_string(),
                };
                format!("{}: {s}", digest.short())
            }
            Event::Retrying { digest, attempt, error } => {
                format!("{}: Retrying (attempt {attempt}): {error}", digest.short())
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    })
}

pub fn pull(root: &Path, a: PullArgs) -> Result<ExitCode> {
    let reference = Reference::parse(&a.reference)?;
    let opts = PullOptions {
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
        client: client_options(a.tls_verify),
        // Ready to run when pull ends: layers are unpacked as they stream in.
        unpack: true,
    };
    let mut store = open_store(root)?;
    let progress = if a.quiet { no_progress() } else { printer() };
    let targets = if a.all_tags {
        if reference.tag().is_some() || reference.digest().is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let client = strata_registry::Client::for_reference(&reference, opts.client.clone())?;
        let tags = block_on(client.list_tags(reference.path(), None))??;
        tags.iter()
            .map(|t| Ok(reference.clone().with_tag(t)))
            .collect::<Result<Vec<_>>>()?
    } else {
        vec![reference]
    };
    for r in targets {
        let report = strata_registry::pull(&mut store, &r, &opts, &progress)?;
        if a.quiet {
            println!("{}", report.reference);
            continue;
        }
        println!("Digest: {}", report.digest);
        let shown = report.reference.familiar();
        if report.up_to_date {
            println!("Status: Image is up to date for {shown}");
        } else {
            println!("Status: Downloaded newer image for {shown}");
        }
        println!("{}", report.reference);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn push(root: &Path, a: PushArgs) -> Result<ExitCode> {
    let mut store = open_store(root)?;
    let opts = PushOptions {
        client: client_options(a.tls_verify),
        compression_level: None,
    };
    let progress = if a.quiet { no_progress() } else { printer() };
    let names: Vec<String> = if a.all_tags {
        let r = Reference::parse(&a.reference)?;
        if r.tag().is_some() || r.digest().is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let tags = strata_registry::push::local_tags(&store, &r.repository())?;
        if tags.is_empty() {
            bail!(
                "An image does not exist locally with the tag: {}",
                r.familiar_repository()
            );
        }
        tags.iter().map(|t| t.familiar()).collect()
    } else {
        vec![a.reference.clone()]
    };
    for name in names {
        let report = strata_registry::push(&mut store, &name, &opts, &progress)?;
        let tag = report.reference.tag().unwrap_or("latest");
        if a.quiet {
            println!("{}", report.reference);
        } else {
            println!("{tag}: digest: {} size: {}", report.digest, report.size);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_line(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut s = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut s)
        .context("reading from stdin")?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a password from the terminal without echoing it.
fn read_password(prompt: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let echo_off = unsafe { libc::tcgetattr(fd, &mut t) } == 0;
    if echo_off {
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a termios obtained from tcgetattr with ECHO cleared.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let r = read_line(prompt);
    if echo_off {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        eprintln!();
    }
    r
}

pub fn login(a: LoginArgs) -> Result<ExitCode> {
    let server = a.server.clone().unwrap_or_default();
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            if a.password_stdin {
                bail!("Must provide --username with --password-stdin");
            }
            read_line("Username: ")?
        }
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .context("reading the password from stdin")?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if std::io::stdin().is_terminal() {
        read_password("Password: ")?
    } else {
        read_line("Password: ")?
    };
    if password.is_empty() {
        bail!("password is required");
    }
    let opts = client_options(a.tls_verify);
    block_on(strata_registry::login(&server, &username, &password, &opts))??;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

pub fn logout(a: LogoutArgs) -> Result<ExitCode> {
    let server = a.server.clone().unwrap_or_default();
    let shown = if server.is_empty() {
        strata_registry::DOCKER_HUB_KEY.to_string()
    } else {
        server.clone()
    };
    if strata_registry::logout(&server, &ClientOptions::default())? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn manifest(c: ManifestCommand) -> Result<ExitCode> {
    match c {
        ManifestCommand::Inspect(a) => {
            let r = Reference::parse(&a.reference)?.with_default_tag();
            let opts = client_options(a.tls_verify && !a.insecure);
            let client = strata_registry::Client::for_reference(&r, opts)?;
            let what = match (r.digest(), r.tag()) {
                (Some(d), _) => d.to_string(),
                (None, t) => t.unwrap_or("latest").to_string(),
            };
            let m = block_on(client.get_manifest(r.path(), &what))?
                .with_context(|| format!("inspecting {}", r.familiar()))?;
            let mut out = std::io::stdout().lock();
            if a.raw {
                out.write_all(&m.bytes)?;
            } else {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn pin(a: PinArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let opts = PinOptions {
        client: client_options(a.tls_verify),
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
    };
    let lines = strata_registry::pin::plan(text.as_bytes(), &opts)?;
    let file = a.file.display();
    let mut failed = false;
    for l in &lines {
        match &l.action {
            PinAction::Skip(reason) => eprintln!("{file}:{}: FROM {}: skipped ({reason})", l.line, l.image),
            PinAction::Resolved {
                current,
                pinned,
                replacement,
                ..
            } => {
                if a.check {
                    match pinned {
                        Some(p) if p == current => println!("{file}:{}: {} is up to date", l.line, l.image),
                        Some(p) => {
                            failed = true;
                            println!(
                                "{file}:{}: {} is stale: the tag now points to {current} (pinned {p})",
                                l.line, l.image
                            );
                        }
                        None => {
                            failed = true;
                            println!(
                                "{file}:{}: {} is not pinned (current digest {current})",
                                l.line, l.image
                            );
                        }
                    }
                } else {
                    println!("{replacement}");
                }
            }
        }
    }
    if a.write && !a.check {
        let new = strata_registry::pin::rewrite(&text, &lines);
        if new != text {
            let tmp = a.file.with_extension("strata-pin.tmp");
            std::fs::write(&tmp, &new).with_context(|| format!("writing {}", tmp.display()))?;
            if let Ok(meta) = std::fs::metadata(&a.file) {
                let _ = std::fs::set_permissions(&tmp, meta.permissions());
            }
            std::fs::rename(&tmp, &a.file).with_context(|| format!("replacing {}", a.file.display()))?;
            eprintln!("pinned {file}");
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
