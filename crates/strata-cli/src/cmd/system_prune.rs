//! `system prune [-a] [--volumes] [-f]`: `container prune`, `network
//! prune`, `volume prune` (with `--volumes`), `image prune [-a]` and the
//! build cache's prune, in that order, as Docker does, with Docker's prompt
//! and report.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::format::human_size;

#[derive(Args)]
#[command(override_usage = "strata system prune [OPTIONS]")]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    volumes: bool,
}

pub fn prune(root: &Path, a: SystemPruneArgs) -> Result<ExitCode> {
    if !a.force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if a.volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        what.push(if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        what.push(if a.all {
            "all build cache"
        } else {
            "all dangling build cache"
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "WARNING! This will remove:")?;
        for w in what {
            writeln!(out, "  - {w}")?;
        }
        write!(out, "\nAre you sure you want to continue? [y/N] ")?;
        out.flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut out = std::io::stdout().lock();
    let section = |out: &mut dyn Write, title: &str, items: &[String]| -> Result<()> {
        if !items.is_empty() {
            writeln!(out, "{title}:")?;
            for i in items {
                writeln!(out, "{i}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    };
    let engine =
        strata_container::Containers::open(root).with_context(|| format!("opening the store at {}", root.display()))?;
    section(&mut out, "Deleted Containers", &engine.prune()?)?;
    section(&mut out, "Deleted Networks", &engine.networks().prune()?)?;
    if a.volumes {
        section(&mut out, "Deleted Volumes", &engine.prune_volumes(false)?)?;
    }
    drop(engine);
    let mut store = super::open_store(root)?;
    let images = strata_image::prune(&mut store, a.all)?;
    let events: Vec<String> = images
        .events
        .iter()
        .map(|e| match e {
            strata_image::RemoveEvent::Untagged(t) => format!("untagged: {t}"),
            strata_image::RemoveEvent::Deleted(d) => format!("deleted: {d}"),
        })
        .collect();
    section(&mut out, "Deleted Images", &events)?;
    let cache_keys: Vec<String> = strata_builder::cache_entries(&store)?
        .into_iter()
        .map(|e| e.key[..e.key.len().min(25)].to_string())
        .collect();
    let cache = strata_builder::cache_prune(&mut store)?;
    section(&mut out, "Deleted build cache objects", &cache_keys)?;
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(images.reclaimed + cache.bytes_reclaimed)
    )?;
    Ok(ExitCode::SUCCESS)
}
