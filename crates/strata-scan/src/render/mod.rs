//! Renderers: each turns a [`Report`] into the text a tool prints.

use crate::Report;

/// Docker Scout's `cves --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoutFormat {
    /// Scout's default text listing: each vulnerable package with its CVEs.
    Packages,
    Markdown,
    Sarif,
    /// Scout's JSON.
    Json,
}

/// Trivy's JSON report (`SchemaVersion: 2`).
pub fn trivy_json(report: &Report) -> String {
    let _ = report;
    String::new()
}

/// Trivy's table (non-terminal form: no colours).
pub fn trivy_table(report: &Report) -> String {
    let _ = report;
    String::new()
}

/// SARIF 2.1.0, as Trivy writes it.
pub fn sarif(report: &Report) -> String {
    let _ = report;
    String::new()
}

/// CycloneDX 1.5 with the packages as components and `vulnerabilities[]`.
pub fn cyclonedx(report: &Report) -> String {
    let _ = report;
    String::new()
}

/// Docker Scout's `quickview`.
pub fn scout_quickview(report: &Report) -> String {
    let _ = report;
    String::new()
}

/// Docker Scout's `cves` in one of its formats.
pub fn scout_cves(report: &Report, format: ScoutFormat) -> String {
    let _ = (report, format);
    String::new()
}
