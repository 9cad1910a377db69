//! pull, push, login, logout, manifest inspect, pin: argument parsing and
//! output; the work is in `strata-transfer` (pull, push) and `strata-registry`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args, Subcommand};
use strata_oci::{Platform, Reference};
use strata_registry::{ClientOptions, block_on};
use strata_transfer::PlatformChoice;
use strata_transfer::pin::{FromLine, PinAction, PinOptions};
use strata_transfer::progress::{Event, LayerStatus, Progress, no_progress};
use strata_transfer::pull::PullOptions;
use strata_transfer::push::PushOptions;

use super::open_store;

#[derive(Args)]
#[command(override_usage = "strata pull [OPTIONS] NAME[:TAG|@DIGEST]")]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Set platform if server is multi-platform capable (os/arch[/variant]; several, comma-separated, keep a multi-platform image)
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull every platform of a multi-platform image
    #[arg(long, conflicts_with = "platform")]
    pub all_platforms: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers downloaded at once (dockerd's --max-concurrent-downloads)
    #[arg(long, value_name = "N", default_value_t = strata_registry::DEFAULT_CONCURRENT_TRANSFERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_concurrent_downloads: u16,
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
    /// Layers uploaded at once (dockerd's --max-concurrent-uploads)
    #[arg(long, value_name = "N", default_value_t = strata_registry::DEFAULT_CONCURRENT_TRANSFERS as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_concurrent_uploads: u16,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// How layers compressed for the push are compressed: gzip or zstd (strata; buildx's -o compression=)
    #[arg(long, value_name = "gzip|zstd", default_value = "gzip")]
    pub compression: String,
    /// Compression level (gzip 0-9, zstd 1-22; default: gzip 1, zstd 3)
    #[arg(long = "compression-level", value_name = "N")]
    pub compression_level: Option<i32>,
    /// Compress again layers held compressed otherwise (buildx's force-compression)
    #[arg(long = "force-compression")]
    pub force_compression: bool,
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

/// `strata manifest inspect`, also reachable as `strata imagetools inspect`
/// (BuildKit's spelling: without `--raw` it prints `Name`/`MediaType`/
/// `Digest` and, for an index, its `Manifests` with their platforms).
/// `create`, `annotate`, `push` and `rm` (draft lists) are `manifest_lists.rs`.
#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list, from a registry
    Inspect(ManifestInspectArgs),
    /// Create a local manifest list for annotating and pushing to a registry
    Create(super::manifest_lists::CreateArgs),
    /// Add additional information to a local image manifest
    Annotate(super::manifest_lists::AnnotateArgs),
    /// Push a manifest list to a repository
    Push(super::manifest_lists::PushArgs),
    /// Delete one or more manifest lists from local storage
    Rm(super::manifest_lists::RmArgs),
}

#[derive(Args)]
#[command(override_usage = "strata manifest inspect [OPTIONS] [MANIFEST_LIST] NAME[:TAG|@DIGEST]")]
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
    /// imagetools: Go template of the result (`{{json .SBOM}}`, `{{json .Provenance}}`, `{{json .Manifest}}`)
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    pub reference: String,
    /// With MANIFEST_LIST first: that draft list's manifest (`manifest create`)
    #[arg(hide = true)]
    pub manifest: Option<String>,
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

/// Client options for a command: `--tls-verify=false`, plus the registries
/// this machine lists as insecure (`STRATA_INSECURE_REGISTRIES`, Docker's
/// daemon.json `insecure-registries`).
pub(crate) fn client_options(tls_verify: bool) -> Result<ClientOptions> {
    Ok(ClientOptions {
        insecure: !tls_verify,
        insecure_registries: strata_registry::system_insecure_registries()?,
        ..Default::default()
    })
}

/// Progress as Docker shows it: per-layer bars when stdout is a terminal,
/// plain lines when not, nothing with `-q`.
fn progress_for(quiet: bool) -> Progress {
    if quiet {
        no_progress()
    } else if std::io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb") {
        Bars::start()
    } else {
        printer()
    }
}

/// What a layer's line says for a status (without bytes).
fn status_text(status: &LayerStatus) -> String {
    match status {
        LayerStatus::AlreadyExists => "Already exists".into(),
        LayerStatus::Downloading => "Pulling fs layer".into(),
        LayerStatus::Extracting => "Extracting".into(),
        LayerStatus::PullComplete => "Pull complete".into(),
        LayerStatus::Compressing => "Preparing".into(),
        LayerStatus::Waiting => "Waiting".into(),
        LayerStatus::Pushing => "Pushing".into(),
        LayerStatus::LayerAlreadyExists => "Layer already exists".into(),
        LayerStatus::MountedFrom(r) => format!("Mounted from {r}"),
        LayerStatus::Pushed => "Pushed".into(),
    }
}

/// A layer's line is final in this status.
fn is_final(status: &LayerStatus) -> bool {
    matches!(
        status,
        LayerStatus::AlreadyExists
            | LayerStatus::PullComplete
            | LayerStatus::LayerAlreadyExists
            | LayerStatus::MountedFrom(_)
            | LayerStatus::Pushed
    )
}

/// Docker's `units.HumanSize`: decimal units, at most 4 significant digits
/// (`%.4g`): `512B`, `1.5kB`, `12.35MB`, `59MB`.
pub(crate) fn human_size(n: u64) -> String {
    crate::format::human_size_with_precision(n, 4)
}

/// Docker's progress text (`jsonmessage.JSONProgress.String`): a 50-wide
/// bar when the terminal is wider than 110 columns, then `current/total`.
pub(crate) fn progress_text(current: u64, total: u64, bar: bool) -> String {
    if current == 0 && total == 0 {
        return String::new();
    }
    let numbers = if total == 0 || current > total {
        format!("{:>8}", human_size(current))
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    if total == 0 || !bar {
        return numbers;
    }
    let filled = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    format!("[{}>{}] {numbers}", "=".repeat(filled), " ".repeat(50 - filled))
}

/// One layer's line: `a2abf6c4d29d: Downloading [=====>   ]  12.3MB/59MB`.
pub(crate) fn layer_line(digest: &strata_oci::Digest, status: &str, progress: &str) -> String {
    if progress.is_empty() {
        format!("{}: {status}", digest.short())
    } else {
        format!("{}: {status} {progress}", digest.short())
    }
}

/// The terminal's width in columns (stdout), when it has one.
fn terminal_width() -> Option<u16> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_col > 0).then_some(ws.ws_col)
}

/// Per-layer bars on a terminal (indicatif), one line per layer in the
/// order the layers were first announced.
struct Bars {
    multi: indicatif::MultiProgress,
    layers: std::sync::Mutex<Vec<BarLayer>>,
    /// Docker draws the `[===>  ]` box only on terminals wider than 110.
    wide: bool,
}

struct BarLayer {
    digest: strata_oci::Digest,
    bar: indicatif::ProgressBar,
    status: LayerStatus,
}

impl Bars {
    fn start() -> Progress {
        let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stdout_with_hz(10));
        let bars = Bars {
            multi,
            layers: std::sync::Mutex::new(Vec::new()),
            wide: terminal_width().is_some_and(|w| w > 110),
        };
        Arc::new(move |e| bars.event(e))
    }

    fn event(&self, e: Event) {
        match e {
            Event::PullingFrom { what, repository } => {
                let _ = self.multi.println(format!("{what}: Pulling from {repository}"));
            }
            Event::PushingTo { repository } => {
                let _ = self
                    .multi
                    .println(format!("The push refers to repository [{repository}]"));
            }
            Event::Retrying { digest, attempt, error } => {
                let _ = self
                    .multi
                    .println(format!("{}: Retrying (attempt {attempt}): {error}", digest.short()));
            }
            Event::Layer { digest, status } => {
                let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
                if status == LayerStatus::Waiting {
                    // Compression for the push is over: its lines (named by
                    // the plain tar's digest) make way for the pushed blobs.
                    layers.retain(|l| {
                        let keep = l.status != LayerStatus::Compressing;
                        if !keep {
                            l.bar.finish_and_clear();
                            self.multi.remove(&l.bar);
                        }
                        keep
                    });
                }
                let i = match layers.iter().position(|l| l.digest == digest) {
                    Some(i) => i,
                    None => {
                        let bar = self.multi.add(indicatif::ProgressBar::new(0));
                        bar.set_style(
                            indicatif::ProgressStyle::with_template("{msg}").expect("a valid progress template"),
                        );
                        layers.push(BarLayer {
                            digest: digest.clone(),
                            bar,
                            status: status.clone(),
                        });
                        layers.len() - 1
                    }
                };
                let l = &mut layers[i];
                if l.bar.is_finished() {
                    return;
                }
                l.status = status.clone();
                l.bar.set_message(layer_line(&digest, &status_text(&status), ""));
                if is_final(&status) {
                    l.bar.finish();
                }
            }
            Event::Bytes {
                digest,
                status,
                current,
                total,
            } => {
                let layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
                let Some(l) = layers.iter().find(|l| l.digest == digest) else {
                    return;
                };
                // Only the phase the line shows (the unpacker runs alongside
                // the download; its bytes count once the download is over).
                if l.status != status || l.bar.is_finished() {
                    return;
                }
                let label = match status {
                    LayerStatus::Downloading => "Downloading",
                    LayerStatus::Extracting => "Extracting",
                    _ => "Pushing",
                };
                l.bar
                    .set_message(layer_line(&digest, label, &progress_text(current, total, self.wide)));
            }
        }
    }
}

/// Docker's plain (non-terminal) progress lines.
fn printer() -> Progress {
    Arc::new(|e: Event| {
        let line = match e {
            Event::PullingFrom { what, repository } => format!("{what}: Pulling from {repository}"),
            Event::PushingTo { repository } => format!("The push refers to repository [{repository}]"),
            // Lines for the states Docker prints without a terminal; the
            // rest (waiting, extracting, byte counts) only move bars.
            Event::Layer {
                status: LayerStatus::Extracting | LayerStatus::Waiting | LayerStatus::Pushing,
                ..
            } => return,
            Event::Bytes { .. } => return,
            Event::Layer { digest, status } => format!("{}: {}", digest.short(), status_text(&status)),
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
    // Several platforms (or all): one multi-platform image under the name.
    let platforms: Vec<Platform> = a
        .platform
        .as_deref()
        .map(|p| {
            p.split(',')
                .map(|p| Platform::parse(p.trim()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let multi = if a.all_platforms {
        Some(PlatformChoice::All)
    } else if platforms.len() > 1 {
        Some(PlatformChoice::Platforms(platforms.clone()))
    } else {
        None
    };
    let opts = PullOptions {
        platform: platforms.first().cloned(),
        client: ClientOptions {
            max_concurrent_transfers: usize::from(a.max_concurrent_downloads),
            ..client_options(a.tls_verify)?
        },
        // Ready to run when pull ends: layers are unpacked as they stream in.
        unpack: true,
    };
    let mut store = open_store(root)?;
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
        let progress = progress_for(a.quiet);
        let report = match &multi {
            Some(choice) => strata_transfer::pull::pull_platforms(&mut store, &r, choice, &opts, &progress)?,
            None => strata_transfer::pull::pull(&mut store, &r, &opts, &progress)?,
        };
        drop(progress);
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
        client: ClientOptions {
            max_concurrent_transfers: usize::from(a.max_concurrent_uploads),
            ..client_options(a.tls_verify)?
        },
        compression: Some(match a.compression.as_str() {
            "gzip" => strata_oci::media::Compression::Gzip,
            "zstd" => strata_oci::media::Compression::Zstd,
            other => bail!("invalid --compression {other:?}: use gzip or zstd"),
        }),
        compression_level: a.compression_level,
        force_compression: a.force_compression,
    };
    let names: Vec<String> = if a.all_tags {
        let r = Reference::parse(&a.reference)?;
        if r.tag().is_some() || r.digest().is_some() {
            bail!("tag can't be used with --all-tags/-a");
        }
        let tags = strata_transfer::push::local_tags(&store, &r.repository())?;
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
        let progress = progress_for(a.quiet);
        let report = strata_transfer::push::push(&mut store, &name, &opts, &progress)?;
        drop(progress);
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
    let opts = client_options(a.tls_verify)?;
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

pub fn manifest(root: &Path, c: ManifestCommand) -> Result<ExitCode> {
    match c {
        ManifestCommand::Create(a) => super::manifest_lists::create(root, a),
        ManifestCommand::Annotate(a) => super::manifest_lists::annotate(root, a),
        ManifestCommand::Push(a) => super::manifest_lists::push(root, a),
        ManifestCommand::Rm(a) => super::manifest_lists::rm(root, a),
        ManifestCommand::Inspect(a) => {
            // A draft list of that name first, as docker does (not for imagetools).
            if (a.manifest.is_some() || !invoked_as_imagetools())
                && let Some(code) =
                    super::manifest_lists::inspect_local(root, &a.reference, a.manifest.as_deref(), a.raw)?
            {
                return Ok(code);
            }
            let r = Reference::parse(&a.reference)?.with_default_tag();
            let opts = client_options(a.tls_verify && !a.insecure)?;
            let client = strata_registry::Client::for_reference(&r, opts)?;
            let what = strata_registry::manifest_reference(&r);
            let m = block_on(client.get_manifest(r.path(), &what))?
                .with_context(|| format!("inspecting {}", r.familiar()))?;
            let mut out = std::io::stdout().lock();
            if a.raw {
                out.write_all(&m.bytes)?;
            } else if let Some(f) = &a.format {
                out.write_all(super::attestations::imagetools_format(&client, &r, &m, f)?.as_bytes())?;
            } else if invoked_as_imagetools() {
                out.write_all(imagetools_text(&r, &m)?.as_bytes())?;
            } else {
                let v: serde_json::Value = serde_json::from_slice(&m.bytes)?;
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Whether the command was spelt `imagetools` (the first word that is not
/// a global option).
fn invoked_as_imagetools() -> bool {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--root" || a == "--storage-driver" {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            // `strata imagetools …` or `strata buildx imagetools …`.
            return a == "imagetools" || (a == "buildx" && args.get(i + 1).is_some_and(|b| b == "imagetools"));
        }
    }
    false
}

/// `docker buildx imagetools inspect`'s text: the reference, media type and
/// digest; for an index, every manifest with its platform (and annotations,
/// as attestation manifests carry), columns aligned like Go's tabwriter.
pub(crate) fn imagetools_text(r: &Reference, m: &strata_registry::ManifestResponse) -> Result<String> {
    use tabwriter::TabWriter;
    let mut tw = TabWriter::new(Vec::new()).padding(1);
    writeln!(tw, "Name:\t{r}")?;
    writeln!(tw, "MediaType:\t{}", m.media_type)?;
    writeln!(tw, "Digest:\t{}", m.digest)?;
    tw.flush()?;
    let mut out = String::from_utf8(tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    if let strata_oci::Document::Index(index) = &m.document {
        out.push_str("\nManifests:\n");
        let base = match r.tag() {
            Some(t) => format!("{}:{t}", r.repository()),
            None => r.repository(),
        };
        let mut tw = TabWriter::new(Vec::new()).padding(1);
        for (i, d) in index.manifests.iter().enumerate() {
            if i > 0 {
                writeln!(tw, "\t")?;
            }
            writeln!(tw, "  Name:\t{base}@{}", d.digest)?;
            writeln!(tw, "  MediaType:\t{}", d.media_type)?;
            if let Some(p) = &d.platform {
                writeln!(tw, "  Platform:\t{p}")?;
                if let Some(v) = &p.os_version {
                    writeln!(tw, "  OSVersion:\t{v}")?;
                }
                if let Some(f) = p.os_features.as_ref().filter(|f| !f.is_empty()) {
                    writeln!(tw, "  OSFeatures:\t{}", f.join(", "))?;
                }
            }
            if let Some(ann) = d.annotations.as_ref().filter(|a| !a.is_empty()) {
                writeln!(tw, "  Annotations:\t")?;
                let width = ann.keys().map(|k| k.len() + 1).max().unwrap_or(0);
                for (k, v) in ann {
                    // Nested, as buildx prints them (aligned among themselves).
                    writeln!(tw, "    {:<width$} {v}", format!("{k}:"))?;
                }
            }
        }
        tw.flush()?;
        let block = String::from_utf8(tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        for line in block.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    Ok(out)
}

pub fn pin(a: PinArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let opts = PinOptions {
        client: client_options(a.tls_verify)?,
        platform: a.platform.as_deref().map(Platform::parse).transpose()?,
    };
    let df =
        strata_build::parse_dockerfile(text.as_bytes()).map_err(|e| anyhow::anyhow!("parsing the Dockerfile: {e}"))?;
    let froms: Vec<FromLine> = df
        .stages
        .iter()
        .map(|s| FromLine {
            line: s.start_line,
            image: s.base.clone(),
            stage_name: s.name.clone(),
        })
        .collect();
    let lines = strata_transfer::pin::plan(&froms, &opts)?;
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
        let new = strata_transfer::pin::rewrite(&text, &lines);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagetools_lists_an_index_like_buildx() {
        let amd = strata_oci::Digest::sha256_of(b"amd64");
        let arm = strata_oci::Digest::sha256_of(b"arm");
        let att = strata_oci::Digest::sha256_of(b"attestation");
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd, "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm, "size": 1,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": att, "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"},
                 "annotations": {"vnd.docker.reference.digest": amd, "vnd.docker.reference.type": "attestation-manifest"}},
            ],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        let doc = strata_oci::Document::parse(&bytes, None).unwrap();
        let m = strata_registry::ManifestResponse {
            digest: strata_oci::Digest::sha256_of(&bytes),
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            bytes: bytes.clone().into(),
            document: doc,
        };
        let r = Reference::parse("alpine").unwrap().with_default_tag();
        let text = imagetools_text(&r, &m).unwrap();
        let want = format!(
            "Name:      docker.io/library/alpine:latest
MediaType: application/vnd.oci.image.index.v1+json
Digest:    {}

Manifests:
  Name:        docker.io/library/alpine:latest@{amd}
  MediaType:   application/vnd.oci.image.manifest.v1+json
  Platform:    linux/amd64

  Name:        docker.io/library/alpine:latest@{arm}
  MediaType:   application/vnd.oci.image.manifest.v1+json
  Platform:    linux/arm/v7

  Name:        docker.io/library/alpine:latest@{att}
  MediaType:   application/vnd.oci.image.manifest.v1+json
  Platform:    unknown/unknown
  Annotations:
    vnd.docker.reference.digest: {amd}
    vnd.docker.reference.type:   attestation-manifest
",
            m.digest
        );
        assert_eq!(text, want);
    }

    #[test]
    fn sizes_read_like_docker() {
        // Docker's units.HumanSize (%.4g, decimal units).
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1536), "1.536kB");
        assert_eq!(human_size(12_345_678), "12.35MB");
        assert_eq!(human_size(59_000_000), "59MB");
        assert_eq!(human_size(3_146_000), "3.146MB");
        assert_eq!(human_size(999_950), "1000kB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
    }

    #[test]
    fn bars_read_like_docker() {
        let bar = progress_text(12_345_678, 59_000_000, true);
        assert_eq!(bar, format!("[{}>{}]  12.35MB/59MB", "=".repeat(10), " ".repeat(40)));
        // 50 wide inside the brackets plus the head, whatever the fill.
        for (c, t) in [(0, 10), (1, 1000), (999, 1000), (1000, 1000)] {
            let b = progress_text(c, t, true);
            assert_eq!(b.find(']').unwrap(), 52, "{b}");
        }
        assert!(progress_text(59_000_000, 59_000_000, true).starts_with(&format!("[{}>]", "=".repeat(50))));
        // Narrow terminal: the numbers only; unknown total: the count only.
        assert_eq!(progress_text(512, 2048, false), "    512B/2.048kB");
        assert_eq!(progress_text(2048, 0, true), " 2.048kB");
        assert_eq!(progress_text(0, 0, true), "");
        let d = strata_oci::Digest::sha256_of(b"layer");
        assert_eq!(
            layer_line(&d, "Downloading", &progress_text(512, 2048, false)),
            format!("{}: Downloading     512B/2.048kB", d.short())
        );
        assert_eq!(
            layer_line(&d, &status_text(&LayerStatus::PullComplete), ""),
            format!("{}: Pull complete", d.short())
        );
        assert_eq!(
            status_text(&LayerStatus::MountedFrom("lib/a".into())),
            "Mounted from lib/a"
        );
    }
}
