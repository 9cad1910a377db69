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
    /// Provide filter values (until=DURATION: entries not used for that long, e.g. 24h, 30m)
    #[arg(long, value_name = "filter")]
    filter: Vec<String>,
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

/// `until=` of `--filter` as the cut-off time (RFC 3339, UTC): a Go
/// duration (`24h`, `90m`, `1h30m`, `10s`) before now, or a timestamp.
fn until_cutoff(filters: &[String]) -> Result<Option<String>> {
    let mut cutoff = None;
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        if k != "until" {
            bail!("invalid filter '{k}': strata's build cache takes until=DURATION");
        }
        let t = match strata_image::parse_rfc3339(v) {
            Some(t) => t,
            None => {
                let secs = go_duration_secs(v).ok_or_else(|| {
                    anyhow::anyhow!("invalid until filter {v:?}: a duration (24h, 30m) or a timestamp")
                })?;
                jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs)
            }
        };
        cutoff = Some(strata_image::format_rfc3339(t));
    }
    Ok(cutoff)
}

/// Seconds of a Go duration of whole units (`1h30m`, `45s`, `2h`).
fn go_duration_secs(s: &str) -> Option<i64> {
    let (mut total, mut num) = (0i64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let unit = match (c, chars.peek()) {
            ('m', Some('s')) => {
                chars.next();
                0
            }
            ('h', _) => 3600,
            ('m', _) => 60,
            ('s', _) => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    num.is_empty().then_some(total)
}

/// Removes the build cache (after a confirmation unless `-f`): every entry,
/// or with `--filter until=D` those not used for D.
pub fn prune(root: &Path, a: PruneArgs) -> Result<ExitCode> {
    let _ = a.all;
    let cutoff = until_cutoff(&a.filter)?;
    if !a.force {
        eprint!("WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("build cache prune cancelled");
        }
    }
    let mut store = super::open_store(root)?;
    store.check_writable("prune its build cache")?;
    let report = match &cutoff {
        Some(c) => strata_builder::cache_prune_until(&mut store, c)?,
        None => strata_builder::cache_prune(&mut store)?,
    };
    println!("Deleted build cache objects: {}", report.entries);
    println!("Total:\t{}", human_size(report.bytes_reclaimed));
    Ok(ExitCode::SUCCESS)
}
