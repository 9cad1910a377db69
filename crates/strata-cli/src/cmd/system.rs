//! `system df`, `system check`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::open_store;
use crate::format::{human_size, print_table};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show strata disk usage
    Df(DfArgs),
    /// Check the store: blobs match their digests, references resolve,
    /// nothing is orphaned or left over from a killed process
    Check(CheckArgs),
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
    )?;
    for p in &report.problems {
        match (&p.repaired, &p.repair_error) {
            (true, _) => println!("repaired: {}", p.message),
            (false, Some(e)) => println!("{} (could not repair: {e})", p.message),
            (false, None) => println!("{}", p.message),
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
    let store = open_store(root)?;
    let du = strata_image::disk_usage(&store)?;
    let containers = store.containers_count()?;
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
        print_table(&[[
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
        .to_vec()])?;
        println!("\nLocal Volumes space usage:\n");
        print_table(&[["VOLUME NAME", "LINKS", "SIZE"].map(String::from).to_vec()])?;
        println!("\nBuild cache usage: 0B");
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
            containers.to_string(),
            "0".into(),
            "0B".into(),
            "0B".into(),
        ],
        vec!["Local Volumes".into(), "0".into(), "0".into(), "0B".into(), "0B".into()],
        vec!["Build Cache".into(), "0".into(), "0".into(), "0B".into(), "0B".into()],
    ];
    print_table(&rows)?;
    Ok(ExitCode::SUCCESS)
}
