//! `strata scan db import|status|update`: the offline OSV database of the
//! store (`<root>/vulndb/osv.sqlite`, strata-vulndb).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use strata_vulndb::{Db, ImportReport, Status};

use super::HELP_TEMPLATE;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Import OSV records: bulk-export zips, directories of OSV JSON, JSON files
    #[command(help_template = HELP_TEMPLATE)]
    Import(ImportArgs),
    /// Show the database's sources, records per ecosystem and age
    #[command(help_template = HELP_TEMPLATE)]
    Status(StatusArgs),
    /// Download the OSV bulk exports of the ecosystems in use and import them
    #[command(help_template = HELP_TEMPLATE)]
    Update(UpdateArgs),
}

#[derive(Args)]
#[command(override_usage = "strata scan db import PATH [PATH...]")]
pub struct ImportArgs {
    /// OSV bulk-export .zip files, directories (every *.json below) or .json files
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Args)]
#[command(override_usage = "strata scan db status [OPTIONS]")]
pub struct StatusArgs {
    /// Output format: text (default) or json
    #[arg(long, value_name = "string", default_value = "text")]
    format: String,
}

#[derive(Args)]
#[command(override_usage = "strata scan db update [OPTIONS]")]
pub struct UpdateArgs {
    /// Where the exports are: a base URL laid out as OSV's bucket (BASE/ECOSYSTEM/all.zip) or a zip's URL (repeatable; default: OSV's bucket)
    #[arg(long = "source", value_name = "URL")]
    sources: Vec<String>,
    /// OSV ecosystem to download (PyPI, npm, Debian:12, …; repeatable). Default: those of the store's images' packages, else those already in the database
    #[arg(long = "ecosystem", value_name = "NAME")]
    ecosystems: Vec<String>,
}

fn open_db(root: &Path) -> Result<Db> {
    Ok(Db::open(root)?)
}

pub fn db(root: &Path, c: DbCommand) -> Result<ExitCode> {
    match c {
        DbCommand::Import(a) => import(root, a),
        DbCommand::Status(a) => status(root, a),
        DbCommand::Update(a) => update(root, a),
    }
}

fn import(root: &Path, a: ImportArgs) -> Result<ExitCode> {
    let mut db = open_db(root)?;
    let report = db.import(&a.paths, &mut |_| {})?;
    print_report(&report, "Imported")
}

/// What an import or update did; exit 1 when a source failed.
fn print_report(r: &ImportReport, verb: &str) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    for s in &r.sources {
        if s.unchanged {
            writeln!(out, "{}: unchanged since the last download", s.name)?;
        } else {
            write!(
                out,
                "{}: {} records ({} withdrawn), {} skipped",
                s.name, s.records, s.withdrawn, s.skipped
            )?;
            if s.replaced > 0 {
                write!(out, ", replacing {} from its last import", s.replaced)?;
            }
            writeln!(out)?;
        }
    }
    writeln!(
        out,
        "{verb} {} records ({} withdrawn) from {} source{}, skipped {}",
        r.records,
        r.withdrawn,
        r.sources.len(),
        if r.sources.len() == 1 { "" } else { "s" },
        r.skipped_count
    )?;
    if !r.skipped.is_empty() {
        let shown = r.skipped.len() as u64;
        if shown < r.skipped_count {
            writeln!(out, "Skipped records (the first {shown} of {}):", r.skipped_count)?;
        } else {
            writeln!(out, "Skipped records:")?;
        }
        for (name, reason) in &r.skipped {
            writeln!(out, "  {name}: {reason}")?;
        }
    }
    out.flush()?;
    for (source, error) in &r.failed {
        eprintln!("Error: {source}: {error}");
    }
    Ok(if r.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `3 days`, `5 hours`, `12 minutes`, `40 seconds`.
pub(crate) fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = match s {
        0..60 => (s, "second"),
        60..3600 => (s / 60, "minute"),
        3600..86400 => (s / 3600, "hour"),
        _ => (s / 86400, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    jiff::Timestamp::from_second(secs)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// The warning `db status` (and a scan) prints for a stale database.
pub(crate) fn stale_warning(st: &Status) -> Option<String> {
    st.stale.then(|| {
        format!(
            "WARNING: the vulnerability database was last updated {} ago (more than {} days): run `strata scan db update`",
            st.age.map(human_age).unwrap_or_else(|| "long".into()),
            strata_vulndb::STALE_AFTER.as_secs() / 86400
        )
    })
}

fn status(root: &Path, a: StatusArgs) -> Result<ExitCode> {
    if a.format != "text" && a.format != "json" {
        bail!("unknown format {:?}: use text or json", a.format);
    }
    let db = open_db(root)?;
    let st = db.status()?;
    let mut out = std::io::stdout().lock();
    if a.format == "json" {
        let v = json!({
            "path": st.path.display().to_string(),
            "records": st.records,
            "withdrawn": st.withdrawn,
            "newestModified": st.newest_modified,
            "updatedAt": st.imported_at.map(rfc3339),
            "ageSeconds": st.age.map(|d| d.as_secs()),
            "stale": st.stale,
            "ecosystems": st.ecosystems,
            "sources": st.sources.iter().map(|s| json!({
                "name": s.name,
                "kind": s.kind,
                "records": s.records,
                "withdrawn": s.withdrawn,
                "skipped": s.skipped,
                "importedAt": rfc3339(s.imported_at),
                "newestModified": s.newest_modified,
                "stale": s.stale,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(out, "Database: {}", st.path.display())?;
        if st.sources.is_empty() {
            writeln!(
                out,
                "Empty: import OSV exports with `strata scan db import PATH...`, or download them with `strata scan db update`"
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(out, "Records: {} ({} withdrawn)", st.records, st.withdrawn)?;
        if let Some(m) = &st.newest_modified {
            writeln!(out, "Newest record: modified {m}")?;
        }
        if let (Some(t), Some(age)) = (st.imported_at, st.age) {
            writeln!(
                out,
                "Updated: {} ago ({}, its oldest source)",
                human_age(age),
                rfc3339(t)
            )?;
        }
        writeln!(out, "Ecosystems:")?;
        let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(2);
        writeln!(tw, "  ECOSYSTEM\tRECORDS")?;
        for (e, n) in &st.ecosystems {
            writeln!(tw, "  {e}\t{n}")?;
        }
        tw.flush()?;
        out.write_all(&tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
        writeln!(out, "Sources:")?;
        let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(2);
        writeln!(tw, "  SOURCE\tKIND\tRECORDS\tWITHDRAWN\tSKIPPED\tUPDATED")?;
        let now = SystemTime::now();
        for s in &st.sources {
            let age = now.duration_since(s.imported_at).unwrap_or_default();
            writeln!(
                tw,
                "  {}\t{}\t{}\t{}\t{}\t{} ago{}",
                s.name,
                s.kind,
                s.records,
                s.withdrawn,
                s.skipped,
                human_age(age),
                if s.stale { " (stale)" } else { "" }
            )?;
        }
        tw.flush()?;
        out.write_all(&tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    }
    out.flush()?;
    if let Some(w) = stale_warning(&st) {
        eprintln!("{w}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The OSV ecosystems of the store's images' packages (one SBOM per image).
fn image_ecosystems(root: &Path) -> Result<BTreeSet<String>> {
    let store = super::open_store(root)?;
    let images = store.list_images()?;
    drop(store);
    let mut out = BTreeSet::new();
    for img in images {
        let id = img.id.to_string();
        let sbom = match super::sbom::image_sbom(root, &id, None) {
            Ok(s) => s.sbom,
            Err(e) => {
                eprintln!("warning: image {}: {}", img.id.short(), crate::error_chain(&e));
                continue;
            }
        };
        for p in &sbom.packages {
            if let Ok(l) = strata_scan::ecosystem_for(p, sbom.distro.as_ref()) {
                out.insert(l.ecosystem);
            }
        }
    }
    Ok(out)
}

fn update(root: &Path, a: UpdateArgs) -> Result<ExitCode> {
    let mut db = open_db(root)?;
    let ecosystems: Vec<String> = if a.ecosystems.is_empty() {
        // A record names every ecosystem it affects (a GHSA record in npm's
        // export may name Maven too): the database's ecosystems are the
        // fallback, not added to the images' ones.
        let mut all = image_ecosystems(root)?;
        if all.is_empty() {
            all.extend(db.ecosystems()?);
        }
        if all.is_empty() {
            bail!(
                "nothing to update: no image of the store has packages of an OSV ecosystem and the database is empty (name some with --ecosystem)"
            );
        }
        eprintln!("Updating {}", all.iter().cloned().collect::<Vec<_>>().join(", "));
        all.into_iter().collect()
    } else {
        a.ecosystems.clone()
    };
    let report = db.update(&a.sources, &ecosystems, &mut |_| {})?;
    print_report(&report, "Updated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(human_age(Duration::from_secs(1)), "1 second");
        assert_eq!(human_age(Duration::from_secs(125)), "2 minutes");
        assert_eq!(human_age(Duration::from_secs(3 * 86400 + 5)), "3 days");
    }
}
