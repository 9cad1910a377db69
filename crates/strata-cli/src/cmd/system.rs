//! `system df`, `system check` (and `system prune`, `system info` from their modules).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::format::{human_size, print_table};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show strata disk usage
    Df(DfArgs),
    /// Check the store: blobs match their digests, references resolve,
    /// nothing is orphaned or left over from a killed process
    Check(CheckArgs),
    /// Remove unused data (stopped containers, dangling images, build cache; with --volumes anonymous volumes)
    Prune(super::system_prune::SystemPruneArgs),
    /// Display system-wide information
    Info(super::version::InfoArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Remove orphaned blobs, leftovers and unused unpacked layers
    #[arg(long)]
    repair: bool,
    /// Compare blob sizes with the recorded ones instead of hashing every blob
    #[arg(long)]
    quick: bool,
}

#[derive(Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short, long)]
    verbose: bool,
}

pub fn system(root: &Path, c: SystemCommand) -> Result<ExitCode> {
    match c {
        SystemCommand::Df(a) => df(root, a),
        SystemCommand::Check(a) => check(root, a),
        SystemCommand::Prune(a) => super::system_prune::prune(root, a),
        SystemCommand::Info(a) => super::version::info(root, a),
    }
}

/// One line per problem (prefixed `repaired:` when `--repair` removed it),
/// then a summary; exit status 1 while problems remain.
fn check(root: &Path, a: CheckArgs) -> Result<ExitCode> {
    // As is: leftovers are reported (and removed with --repair), not
    // silently tidied by opening the store.
    let store =
        strata_store::Store::open_as_is(root).with_context(|| format!("opening the store at {}", root.display()))?;
    let report = strata_image::check(
        &store,
        &strata_image::CheckOptions {
            quick: a.quick,
            repair: a.repair,
        },
        &[
            &strata_container::SnapshotLayerUsers::new(root),
            &strata_builder::CacheLayerUsers(&store),
        ],
    )?;
    for p in &report.problems {
        match (&p.repaired, &p.repair_error) {
            (true, _) => println!("repaired: {}", p.message),
            (false, Some(e)) => println!("{} (could not repair: {e})", p.message),
            (false, None) => println!("{}", p.message),
        }
    }
    // Network leftovers of killed processes (namespaces, veths, leases,
    // nft rules): cleaned with --repair (opening the engine tidies the
    // store's leftovers, which a plain check only reports). Any other
    // command cleans them too.
    if a.repair
        && let Ok(c) = strata_container::Containers::open(root)
    {
        match c.sweep_networks() {
            Ok(gone) => gone.iter().for_each(|g| println!("repaired: network leftover {g}")),
            Err(e) => println!("network leftovers could not be cleaned: {e}"),
        }
    }
    let remaining = report.remaining();
    let repaired = report.repaired();
    let plural = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let summary = format!(
        "checked {}, {}, {}{}",
        plural(report.blobs, "blob", "blobs"),
        plural(report.images, "image", "images"),
        plural(report.layer_dirs, "unpacked layer", "unpacked layers"),
        if a.quick { " (sizes only)" } else { "" },
    );
    match (remaining, repaired) {
        (0, 0) => println!("{summary}: no problems"),
        (0, r) => println!("{summary}: {} repaired, none remain", plural(r, "problem", "problems")),
        (n, r) => println!(
            "{summary}: {}{}{}",
            plural(n, "problem remains", "problems remain"),
            if r > 0 {
                format!(", {r} repaired")
            } else {
                String::new()
            },
            if a.repair {
                ""
            } else {
                " (strata system check --repair removes leftovers and orphans)"
            }
        ),
    }
    Ok(if remaining == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn percent(part: u64, whole: u64) -> String {
    match (part * 100).checked_div(whole) {
        Some(p) => format!("{p}%"),
        None => "0%".into(),
    }
}

fn df(root: &Path, a: DfArgs) -> Result<ExitCode> {
    // One store: the container engine's.
    let engine =
        strata_container::Containers::open(root).with_context(|| format!("opening the store at {}", root.display()))?;
    let du = strata_image::disk_usage(&engine.store)?;
    let cu = engine.container_usage()?;
    let vu = engine.volume_usage()?;
    let bc = strata_builder::cache_usage(&engine.store)?;
    let running = cu.iter().filter(|c| c.status.is_running()).count();
    let csize: u64 = cu.iter().map(|c| c.size).sum();
    let cfree: u64 = cu.iter().filter(|c| !c.status.is_running()).map(|c| c.size).sum();
    let vsize: u64 = vu.iter().map(|v| v.size).sum();
    let vfree: u64 = vu.iter().filter(|v| v.links == 0).map(|v| v.size).sum();
    let vactive = vu.iter().filter(|v| v.links > 0).count();
    if a.verbose {
        println!("Images space usage:\n");
        let mut rows = vec![
            [
                "REPOSITORY",
                "TAG",
                "IMAGE ID",
                "CREATED",
                "SIZE",
                "SHARED SIZE",
                "UNIQUE SIZE",
                "CONTAINERS",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for i in &du.per_image {
            let names = if i.names.is_empty() {
                vec!["<none>:<none>".to_string()]
            } else {
                i.names.clone()
            };
            for n in names {
                let (repo, tag) = n.rsplit_once(':').unwrap_or((&n, "<none>"));
                rows.push(vec![
                    repo.to_string(),
                    tag.to_string(),
                    i.id.short().to_string(),
                    strata_image::human_since(i.created.as_deref()),
                    human_size(i.size),
                    human_size(i.shared),
                    human_size(i.unique),
                    i.containers.to_string(),
                ]);
            }
        }
        print_table(&rows)?;
        println!("\nContainers space usage:\n");
        let mut rows = vec![
            [
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "LOCAL VOLUMES",
                "SIZE",
                "CREATED",
                "STATUS",
                "NAMES",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for c in &cu {
            rows.push(vec![
                c.id[..12].to_string(),
                c.image.clone(),
                format!("\"{}\"", crate::format::ellipsis(&c.command, 20)),
                c.volumes.to_string(),
                human_size(c.size),
                strata_image::human_since(Some(&c.created)),
                c.status.word().to_string(),
                c.name.clone(),
            ]);
        }
        print_table(&rows)?;
        println!("\nLocal Volumes space usage:\n");
        let mut rows = vec![["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()];
        for v in &vu {
            rows.push(vec![v.name.clone(), v.links.to_string(), human_size(v.size)]);
        }
        print_table(&rows)?;
        println!("\nBuild cache usage: {}", human_size(bc.size));
        return Ok(ExitCode::SUCCESS);
    }
    let rows = vec![
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
            .map(String::from)
            .to_vec(),
        vec![
            "Images".into(),
            du.images_total.to_string(),
            du.images_active.to_string(),
            human_size(du.images_size),
            format!(
                "{} ({})",
                human_size(du.images_reclaimable),
                percent(du.images_reclaimable, du.images_size)
            ),
        ],
        vec![
            "Containers".into(),
            cu.len().to_string(),
            running.to_string(),
            human_size(csize),
            format!("{} ({})", human_size(cfree), percent(cfree, csize)),
        ],
        vec![
            "Local Volumes".into(),
            vu.len().to_string(),
            vactive.to_string(),
            human_size(vsize),
            format!("{} ({})", human_size(vfree), percent(vfree, vsize)),
        ],
        vec![
            "Build Cache".into(),
            bc.entries.to_string(),
            "0".into(),
            human_size(bc.size),
            human_size(bc.reclaimable),
        ],
    ];
    print_table(&rows)?;
    Ok(ExitCode::SUCCESS)
}
