//! `strata copy SOURCE DESTINATION` (skopeo copy, crane copy): any image
//! location to any other through the one transfer.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{ArgAction, Args};
use strata_oci::Platform;
use strata_transfer::any::{LocationContext, create_sink, open_source};
use strata_transfer::location::LocationSpec;
use strata_transfer::{CopyOptions, Event, PlatformChoice};

#[derive(Args)]
#[command(override_usage = "strata copy [OPTIONS] SOURCE DESTINATION")]
pub struct CopyArgs {
    /// Copy a whole index: every image in it, the index byte for byte
    #[arg(short = 'a', long)]
    all: bool,
    /// Copy these platforms of an index (os/arch[/variant], comma-separated; default: the host's)
    #[arg(long, value_delimiter = ',')]
    platform: Vec<String>,
    /// Suppress output
    #[arg(short, long)]
    quiet: bool,
    /// Blobs copied at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Require HTTPS and verify certificates of the source registry
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    src_tls_verify: bool,
    /// Require HTTPS and verify certificates of the destination registry
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    dest_tls_verify: bool,
    /// SOURCE: docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF], strata:REF
    source: String,
    /// DESTINATION, spelled as SOURCE
    destination: String,
}

pub fn copy(root: &Path, a: CopyArgs) -> Result<ExitCode> {
    let src = LocationSpec::parse(&a.source)?;
    let dst = LocationSpec::parse(&a.destination)?;
    if a.all && !a.platform.is_empty() {
        bail!("--all and --platform cannot be used together");
    }
    let platforms = if a.all {
        PlatformChoice::All
    } else if a.platform.is_empty() {
        PlatformChoice::Host
    } else {
        PlatformChoice::Platforms(
            a.platform
                .iter()
                .map(|p| Platform::parse(p).map_err(|e| anyhow::anyhow!("invalid --platform {p:?}: {e}")))
                .collect::<Result<_>>()?,
        )
    };
    let options = CopyOptions {
        platforms,
        concurrency: a.jobs as usize,
    };
    // The destination's own name, else the source's (as `pull` names what it fetches).
    let names: Vec<String> = match (&dst, dst.name()) {
        (_, Some(n)) => vec![n],
        (LocationSpec::Store { .. } | LocationSpec::Layout { .. } | LocationSpec::OciArchive { .. }, None) => {
            src.name().into_iter().collect()
        }
        _ => Vec::new(),
    };
    let ctx = LocationContext {
        store_root: root.to_path_buf(),
        source_client: super::distribution::client_options(a.src_tls_verify)?,
        destination_client: super::distribution::client_options(a.dest_tls_verify)?,
    };
    let quiet = a.quiet;
    let progress: strata_transfer::Progress = Arc::new(move |e: Event| {
        if quiet {
            return;
        }
        match e {
            Event::Skipped { digest } => println!("Copying blob {} skipped: already exists", digest.short()),
            Event::Mounted { digest, from } => println!("Copying blob {} mounted from {from}", digest.short()),
            Event::Copied { digest, .. } => println!("Copying blob {} done", digest.short()),
            Event::Document { digest, .. } => println!("Writing manifest {} to image destination", digest.short()),
            _ => {}
        }
    });
    let reference = match &src {
        LocationSpec::Registry(_) => None,
        other => other.name(),
    };
    let report = strata_registry::block_on(async {
        let source = open_source(&src, &ctx).await?;
        let sink = create_sink(&dst, &ctx).await?;
        strata_transfer::copy(&source, &sink, reference.as_deref(), &names, &options, progress).await
    })?
    .with_context(|| format!("copying {} to {}", a.source, a.destination))?;
    if !a.quiet {
        println!("Copied {} ({})", report.root.digest, report.root.media_type);
    }
    Ok(ExitCode::SUCCESS)
}
