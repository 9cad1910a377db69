//! `strata scout quickview|cves`: Docker Scout's commands on the offline
//! OSV database (the scan itself is `scan image`'s).
//!
//! Exit codes, as Scout's: `cves -e/--exit-code` returns 2 when a
//! vulnerability remains after the `--only-*` / `--ignore-base` filters,
//! 0 otherwise; without it, 0. Errors (a missing or empty database, an
//! unknown image) return 1. Progress lines go to stderr, the report to
//! stdout or `-o FILE`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use strata_scan::{Filter, Report, ScoutFormat, parse_severities};

use super::HELP_TEMPLATE;
use super::scan::{emit, open_db, print_notes, scan_image};

#[derive(Subcommand)]
pub enum ScoutCommand {
    /// Quick overview of an image: vulnerabilities by severity, and its base image's
    #[command(visible_alias = "qv", help_template = HELP_TEMPLATE)]
    Quickview(QuickviewArgs),
    /// Display CVEs identified in an image, grouped by package
    #[command(help_template = HELP_TEMPLATE)]
    Cves(CvesArgs),
}

#[derive(Args)]
#[command(override_usage = "strata scout quickview [OPTIONS] IMAGE")]
pub struct QuickviewArgs {
    /// Write the report to a file
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Platform of image to analyze
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Image from the store (name or ID) or a registry reference
    image: String,
}

#[derive(Args)]
#[command(override_usage = "strata scout cves [OPTIONS] IMAGE")]
pub struct CvesArgs {
    /// Output format: packages (default), sarif, markdown, json
    #[arg(long, value_name = "string", default_value = "packages")]
    format: String,
    /// Return exit code '2' if vulnerabilities are detected
    #[arg(short = 'e', long = "exit-code")]
    exit_code: bool,
    /// Comma separated list of severities (critical, high, medium, low, unspecified) to filter CVEs by
    #[arg(long = "only-severity", value_name = "stringSlice", value_delimiter = ',')]
    only_severity: Vec<String>,
    /// Filter to fixable CVEs
    #[arg(long = "only-fixed", conflicts_with = "only_unfixed")]
    only_fixed: bool,
    /// Filter to unfixed CVEs
    #[arg(long = "only-unfixed")]
    only_unfixed: bool,
    /// Comma separated list of package types (like apk, deb, rpm, npm, pypi, golang, etc)
    #[arg(long = "only-package-type", value_name = "stringSlice", value_delimiter = ',')]
    only_package_type: Vec<String>,
    /// Comma separated list of CVE ids (like CVE-2021-45105) to search for
    #[arg(long = "only-cve-id", value_name = "stringSlice", value_delimiter = ',')]
    only_cve_id: Vec<String>,
    /// Filter out CVEs introduced from base image
    #[arg(long = "ignore-base")]
    ignore_base: bool,
    /// Write the report to a file
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Platform of image to analyze
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Image from the store (name or ID) or a registry reference
    image: String,
}

pub fn scout(root: &Path, c: ScoutCommand) -> Result<ExitCode> {
    match c {
        ScoutCommand::Quickview(a) => quickview(root, a),
        ScoutCommand::Cves(a) => cves(root, a),
    }
}

/// The scan, with Scout's progress lines.
fn analyze(root: &Path, image: &str, platform: Option<&str>) -> Result<Report> {
    let db = open_db(root, false)?;
    eprintln!("Analyzing image {image}");
    let report = scan_image(root, &db, image, platform, None)?;
    eprintln!(
        "    ✓ SBOM of image obtained, {} packages indexed",
        report.packages.len()
    );
    print_notes(&report);
    Ok(report)
}

fn written(output: Option<&Path>) {
    if let Some(p) = output {
        eprintln!("    ✓ Report written to {}", p.display());
    }
}

fn quickview(root: &Path, a: QuickviewArgs) -> Result<ExitCode> {
    let report = analyze(root, &a.image, a.platform.as_deref())?;
    let mut text = String::from("\n");
    text.push_str(&strata_scan::scout_quickview(&report));
    text.push_str(&format!(
        "\n  │ Know more about vulnerabilities:\n  │    strata scout cves {}\n",
        a.image
    ));
    emit(a.output.as_deref(), &text)?;
    written(a.output.as_deref());
    Ok(ExitCode::SUCCESS)
}

fn cves(root: &Path, a: CvesArgs) -> Result<ExitCode> {
    let format = match a.format.as_str() {
        "packages" => ScoutFormat::Packages,
        "sarif" => ScoutFormat::Sarif,
        "markdown" => ScoutFormat::Markdown,
        "json" => ScoutFormat::Json,
        other => anyhow::bail!("unknown format {other:?}: use packages, sarif, markdown or json"),
    };
    let severities = if a.only_severity.is_empty() {
        None
    } else {
        Some(parse_severities(&a.only_severity.join(","))?)
    };
    let filter = Filter {
        severities,
        ignore_unfixed: a.only_fixed,
        only_unfixed: a.only_unfixed,
        only_package_types: a.only_package_type.iter().map(|s| s.trim().to_string()).collect(),
        only_ids: a.only_cve_id.iter().map(|s| s.trim().to_string()).collect(),
        ignore_base: a.ignore_base,
        ..Filter::default()
    };
    let mut report = analyze(root, &a.image, a.platform.as_deref())?;
    report.apply(&filter);
    let vulnerable: std::collections::BTreeSet<_> = report
        .findings
        .iter()
        .map(|f| (&f.package.purl, &f.package.location))
        .collect();
    if report.findings.is_empty() {
        eprintln!("    ✓ No vulnerable package detected");
    } else {
        eprintln!(
            "    ✗ Detected {} vulnerable package{} with a total of {} vulnerabilit{}",
            vulnerable.len(),
            if vulnerable.len() == 1 { "" } else { "s" },
            report.findings.len(),
            if report.findings.len() == 1 { "y" } else { "ies" }
        );
    }
    emit(a.output.as_deref(), &strata_scan::scout_cves(&report, format))?;
    written(a.output.as_deref());
    Ok(if a.exit_code && !report.findings.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
