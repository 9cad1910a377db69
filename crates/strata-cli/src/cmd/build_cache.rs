//! `strata buildx du` and `buildx prune` (also `builder prune`): the build
//! cache's disk usage and its removal, in buildx's words.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use crate::format::human_size;

#[derive(Args)]
#[command(override_usage = "strata buildx du [OPTIONS]")]
pub struct DuArgs {
    /// Provide a more verbose output
    #[arg(long)]
    verbose: bool,
}

#[derive(Args)]
#[command(override_usage = "strata buildx prune [OPTIONS]")]
pub struct PruneArgs {
    /// Include internal/frontend images (strata: the same as without)
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

/// Entries with their size and whether pruning frees them, then the totals.
pub fn du(root: &Path, a: DuArgs) -> Result<ExitCode> {
    let store = super::open_store(root)?;
    let entries = strata_builder::cache_entries(&store)?;
    let mut out = std::io::stdout().lock();
    if a.verbose {
        for e in &entries {
            writeln!(out, "ID:\t\t{}", &e.key[..e.key.len().min(25)])?;
            writeln!(out, "Reclaimable:\t{}", e.reclaimable)?;
            writeln!(out, "Size:\t\t{}", human_size(e.size))?;
            writeln!(out, "Last used:\t{}", e.last_used)?;
            writeln!(out)?;
        }
    } else {
        let rows: Vec<[String; 4]> = entries
            .iter()
            .map(|e| {
                [
                    e.key[..e.key.len().min(25)].to_string(),
                    if e.reclaimable { "true".into() } else { "".into() },
                    human_size(e.size),
                    strata_image::human_since(Some(&e.last_used)),
                ]
            })
            .collect();
        writeln!(out, "{:<27}{:<13}{:<12}LAST ACCESSED", "ID", "RECLAIMABLE", "SIZE")?;
        for r in rows {
            writeln!(out, "{:<27}{:<13}{:<12}{}", r[0], r[1], r[2], r[3])?;
        }
    }
    let usage = strata_builder::cache_usage(&store)?;
    writeln!(out, "Reclaimable:\t{}", human_size(usage.reclaimable))?;
    writeln!(out, "Total:\t\t{}", human_size(usage.size))?;
    Ok(ExitCode::SUCCESS)
}

/// Removes the build cache (after a confirmation unless `-f`).
pub fn prune(root: &Path, a: PruneArgs) -> Result<ExitCode> {
    let _ = a.all;
    if !a.force {
        eprint!("WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("build cache prune cancelled");
        }
    }
    let mut store = super::open_store(root)?;
    let report = strata_builder::cache_prune(&mut store)?;
    println!("Deleted build cache objects: {}", report.entries);
    println!("Total:\t{}", human_size(report.bytes_reclaimed));
    Ok(ExitCode::SUCCESS)
}
