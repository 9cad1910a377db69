//! `strata scan …`: the vulnerability scanner's command tree (`scan db` is
//! in `scan_db.rs`; image and SBOM scans join this enum).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::HELP_TEMPLATE;

#[derive(Subcommand)]
pub enum ScanCommand {
    /// Manage the offline vulnerability database (OSV records)
    #[command(subcommand, help_template = HELP_TEMPLATE)]
    Db(super::scan_db::DbCommand),
    /// Scan an image for vulnerabilities (Trivy's flags, output and exit codes)
    #[command(help_template = HELP_TEMPLATE)]
    Image(super::scan::ImageArgs),
    /// Scan an SBOM (CycloneDX JSON, SPDX JSON, strata's JSON) for vulnerabilities
    #[command(help_template = HELP_TEMPLATE)]
    Sbom(super::scan::SbomArgs),
}

pub fn scan(root: &Path, c: ScanCommand) -> Result<ExitCode> {
    match c {
        ScanCommand::Db(c) => super::scan_db::db(root, c),
        ScanCommand::Image(a) => super::scan::image(root, a),
        ScanCommand::Sbom(a) => super::scan::sbom(root, a),
    }
}
