//! `system df`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::open_store;
use crate::format::{human_size, print_table};

#[derive(Subcommand)]
pub enum SystemCommand {
    /// Show strata disk usage
    Df(DfArgs),
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
    }
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
