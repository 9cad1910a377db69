//! Renderers: each turns a [`Report`] into the text a tool prints. None
//! reads a clock or prints anything; equal reports give equal text.

mod cyclonedx;
mod sarif;
mod scout;
mod table;
mod trivy;

pub use cyclonedx::cyclonedx;
pub use sarif::sarif;
pub use scout::{scout_cves, scout_quickview};
pub use trivy::{trivy_json, trivy_table};

use crate::ecosystem::{os_family, rel_path};
use crate::{Finding, Report, Target};

/// Docker Scout's `cves --format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScoutFormat {
    /// Scout's default text listing: each vulnerable package with its CVEs.
    Packages,
    /// Scout's Markdown (as its GitHub Action posts in pull requests).
    Markdown,
    /// SARIF 2.1.0 with Scout as the tool.
    Sarif,
    /// The packages listing as JSON (strata's shape: see [`scout_cves`]).
    Json,
}

/// The findings of one target, in report order.
pub(crate) fn target_findings<'a>(report: &'a Report, t: &'a Target) -> impl Iterator<Item = &'a Finding> + 'a {
    report.findings.iter().filter(move |f| f.target == t.name)
}

/// Trivy's `PkgPath`: the package's file for targets that aggregate many
/// files (Python, Node.js, Java, Ruby), no leading `/`.
pub(crate) fn pkg_path(t: &Target, f: &Finding) -> Option<String> {
    if !matches!(t.kind.as_str(), "python-pkg" | "node-pkg" | "jar" | "gemspec") {
        return None;
    }
    f.package.location.as_deref().map(|l| rel_path(l).to_string())
}

/// The file a package lives in (the outer archive for `a.jar:b.jar`), no
/// leading `/`.
pub(crate) fn root_file(location: &str) -> String {
    let l = rel_path(location);
    l.split(':').next().unwrap_or(l).to_string()
}

/// Trivy's `Metadata.OS`: family and release.
pub(crate) fn os_meta(report: &Report) -> Option<(String, String)> {
    let d = report.distro.as_ref()?;
    let name = d
        .version_id
        .clone()
        .or_else(|| d.version_codename.clone())
        .unwrap_or_default();
    Some((os_family(&d.id).to_string(), name))
}

/// A layer's (blob digest, diff ID): the SBOM's digest is the diff ID.
pub(crate) fn layer_ids(report: &Report, index: usize, digest: Option<&str>) -> (Option<String>, Option<String>) {
    let blob = report.blob_digests.get(index).cloned().flatten();
    let diff = digest
        .map(str::to_string)
        .or_else(|| report.layers.get(index).and_then(|l| l.digest.clone()));
    (blob, diff)
}

/// Trivy's data-source ID for an OSV record, by its ID's prefix.
pub(crate) fn source_id(advisory: &str) -> &'static str {
    let prefix = advisory.split('-').next().unwrap_or("");
    match prefix {
        "GHSA" => "ghsa",
        "GO" => "govulndb",
        "DSA" | "DLA" | "DTSA" | "DEBIAN" => "debian",
        "USN" | "UBUNTU" => "ubuntu",
        "ALPINE" => "alpine",
        "RHSA" | "RHBA" | "RHEA" => "redhat",
        "RLSA" | "RXSA" => "rocky",
        "ALSA" | "ALBA" | "ALEA" => "alma",
        _ => "osv",
    }
}

/// A readable name for [`source_id`].
pub(crate) fn source_name(advisory: &str) -> &'static str {
    match source_id(advisory) {
        "ghsa" => "GitHub Security Advisory",
        "govulndb" => "The Go Vulnerability Database",
        "debian" => "Debian Security Tracker",
        "ubuntu" => "Ubuntu CVE Tracker",
        "alpine" => "Alpine Secdb",
        "redhat" => "Red Hat",
        "rocky" => "Rocky Linux updateinfo",
        "alma" => "AlmaLinux Product Errata",
        _ => "Open Source Vulnerabilities (OSV)",
    }
}

/// Escapes text for HTML/Markdown cells.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
