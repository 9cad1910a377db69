//! `strata buildx imagetools create` (also `strata imagetools create`):
//! an index made of images already in registries, as buildx makes it,
//! without pulling a layer. The work is `strata_transfer::index`.
//!
//! Output: buildx's progress lines on stderr without the `#N` prefixes
//! (`copying DIGEST from SOURCE to REPO`, what was mounted or copied,
//! `pushing DIGEST to TAG`; none with `--progress quiet|none`), then the
//! index's digest on stdout (buildx prints nothing there; a digest is what
//! a script wants). `--dry-run` prints the index JSON exactly as it would be
//! pushed, and pushes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args};
use strata_oci::{Platform, Reference};
use strata_registry::block_on;
use strata_transfer::index::{self, CreateEvent, CreateOptions};

use super::distribution::{client_options, human_size};

#[derive(Args)]
#[command(override_usage = "strata buildx imagetools create [OPTIONS] [SOURCE...]")]
pub struct CreateArgs {
    /// Read source descriptor from file
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Set reference for new image
    #[arg(short = 't', long = "tag", value_name = "IMAGE")]
    pub tags: Vec<String>,
    /// Show final image instead of pushing
    #[arg(long)]
    pub dry_run: bool,
    /// Append to existing manifest
    #[arg(long)]
    pub append: bool,
    /// Add annotation to the image (index:KEY=VALUE, manifest-descriptor[PLATFORM]:KEY=VALUE; KEY=VALUE: the index)
    #[arg(long, value_name = "ANNOTATION")]
    pub annotation: Vec<String>,
    /// Filter specified platforms of target image
    #[arg(short = 'p', long, value_name = "PLATFORM")]
    pub platform: Vec<String>,
    /// When only a single source is specified, prefer outputting an image index or manifest list instead of performing a carbon copy
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub prefer_index: bool,
    /// Set type of progress output (auto, none, plain, quiet, tty)
    #[arg(long, default_value = "auto", value_parser = ["auto", "none", "plain", "quiet", "tty", "rawjson"])]
    pub progress: String,
    /// Write create result metadata to a file
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Override the configured builder instance (accepted; strata has no builders)
    #[arg(long, hide = true)]
    pub builder: Option<String>,
    /// Allow communication with an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// Images, indexes (REPO[:TAG], REPO@DIGEST), digests of the one repository named, or descriptor JSON
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
}

pub fn create(a: CreateArgs) -> Result<ExitCode> {
    if a.sources.is_empty() && a.files.is_empty() {
        bail!("no sources specified");
    }
    if !a.dry_run && a.tags.is_empty() {
        bail!("can't push with no tags specified, please set --tag or --dry-run");
    }
    let mut texts = Vec::new();
    for f in &a.files {
        let t = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        texts.push(t.trim().to_string());
    }
    texts.extend(a.sources.iter().cloned());
    let sources = texts
        .iter()
        .map(|s| index::parse_source(s))
        .collect::<Result<Vec<_>, _>>()?;
    let tags = a
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t)
                .map(Reference::with_default_tag)
                .with_context(|| format!("invalid tag {t:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut platforms = Vec::new();
    for p in a.platform.iter().flat_map(|p| p.split(',')) {
        platforms.push(Platform::parse(p.trim())?);
    }
    let annotations = index::parse_annotations(&a.annotation).context("failed to parse annotations")?;
    let opts = CreateOptions {
        tags,
        sources,
        append: a.append,
        annotations,
        platforms,
        prefer_index: a.prefer_index,
        client: client_options(a.tls_verify && !a.insecure)?,
        concurrency: strata_registry::DEFAULT_CONCURRENT_TRANSFERS,
    };
    let quiet = matches!(a.progress.as_str(), "quiet" | "none");
    let desc = block_on(async {
        let plan = index::plan(&opts).await?;
        if a.dry_run {
            println!("{}", String::from_utf8_lossy(&plan.bytes));
            return Ok::<_, anyhow::Error>(None);
        }
        let show = |e: CreateEvent| {
            if !quiet {
                eprintln!("{}", event_line(&e));
            }
        };
        index::push(&plan, &show).await?;
        Ok(Some(plan.desc.clone()))
    })??;
    let Some(desc) = desc else {
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(path) = &a.metadata_file {
        let mut names: Vec<String> = opts.tags.iter().map(Reference::repository).collect();
        names.sort();
        names.dedup();
        let meta = serde_json::json!({
            "containerimage.descriptor": desc,
            "image.name": names.join(","),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{}", desc.digest);
    Ok(ExitCode::SUCCESS)
}

/// One progress line, buildx's text.
fn event_line(e: &CreateEvent) -> String {
    match e {
        CreateEvent::Copying { digest, from, to } => format!("copying {digest} from {from} to {to}"),
        CreateEvent::Present { digest, to } => format!("{digest}: already in {to}"),
        CreateEvent::Copied { digest, to, report } => format!(
            "{digest}: in {to}: {} blobs mounted, {} copied ({}), {} already there",
            report.blobs_mounted,
            report.blobs_copied,
            human_size(report.bytes_copied),
            report.blobs_skipped
        ),
        CreateEvent::Pushing { digest, to } => format!("pushing {digest} to {to}"),
    }
}
