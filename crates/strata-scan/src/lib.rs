//! strata-scan: an image's SBOM matched against the offline OSV database,
//! and the reports `strata scan`, `strata scout` and `strata image analyze`
//! print.
//!
//! Owns the map from a catalogued package to its OSV ecosystem, name and
//! version (dpkg packages by *source* package, Go's `stdlib`, Maven
//! `group:artifact`, …) and the comparator for it, the findings (one per
//! vulnerability ID, package, installed version and location, with Trivy's
//! CVE-first ID choice), their attribution to layers, history steps and the
//! base image, the filters (severity, unfixed, `.trivyignore`, Scout's
//! `--only-*`), and the renderers (Trivy JSON and table, SARIF 2.1.0,
//! CycloneDX 1.5, Docker Scout's quickview and `cves` listings).
//!
//! It never reads images, layers or the store (it is given an [`Sbom`]),
//! never touches the network, never writes the database (only
//! [`Db::advisories_for`]), never compares versions itself (strata-vercmp
//! does, with the ecosystem's scheme) and never guesses: a package whose
//! ecosystem has no OSV source, or whose version its scheme cannot read, is
//! listed in [`Report::notes`], not matched loosely. Withdrawn records are
//! never reported. Renderers return `String`s and print nothing.

mod ecosystem;
mod filter;
mod matcher;
mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use strata_sbom::{Distro, ImageInfo, LayerInfo, Package, PackageType, Sbom};
pub use strata_vulndb::{Db, Rating, Severity};

pub use ecosystem::{Lookup, Target, TargetClass, ecosystem_for, target_for};
pub use filter::{Filter, IgnoreEntry, IgnoreList, parse_severities};
pub use render::{ScoutFormat, cyclonedx, sarif, scout_cves, scout_quickview, trivy_json, trivy_table};

/// What [`scan`] needs besides the database and the SBOM.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// Layers with an index below this belong to the base image (Scout's
    /// "Base image" line, [`Finding::in_base_image`]). `None`: unknown.
    pub base_layers: Option<usize>,
    /// The base image's name as Scout prints it (`debian:12`), if known.
    pub base_image: Option<String>,
    /// Each layer's compressed blob digest, bottom first, when known (Trivy's
    /// `Layer.Digest`; the SBOM's layer digest is reported as the `DiffID`).
    pub blob_digests: Vec<Option<String>>,
}

/// Typed failures of scanning and filtering.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The database could not be read while looking up a package.
    #[error("looking up {ecosystem} package {package} in the vulnerability database: {source}")]
    Db {
        ecosystem: String,
        package: String,
        #[source]
        source: strata_vulndb::Error,
    },
    /// An ignore file that exists but cannot be read.
    #[error("reading ignore file {}: {source}", path.display())]
    IgnoreFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A severity name that is none of UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL.
    #[error("unknown severity {0:?} (expected UNKNOWN, LOW, MEDIUM, HIGH or CRITICAL)")]
    Severity(String),
}

/// Whether a fix is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A fixed version is known ([`Finding::fixed_version`] is not empty).
    Fixed,
    /// No fixed version is known.
    Affected,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Fixed => "fixed",
            Status::Affected => "affected",
        }
    }
}

/// The package a finding is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingPackage {
    /// As installed (the binary package for dpkg).
    pub name: String,
    /// As installed.
    pub version: String,
    #[serde(rename = "type")]
    pub kind: PackageType,
    pub purl: String,
    /// The OSV ecosystem it was looked up in (`Debian:12`, `PyPI`, `Go`).
    pub ecosystem: String,
    /// The name looked up (the source package for dpkg and apk,
    /// `group:artifact` for Maven).
    pub osv_name: String,
    /// The version compared (the source version for dpkg when known).
    pub osv_version: String,
    /// The file it was read from (absolute path in the image; `A:B` is entry
    /// `B` inside archive `A`).
    pub location: Option<String>,
}

impl FindingPackage {
    /// Trivy's `PkgID`: `name@version`.
    pub fn pkg_id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// One vulnerability in one installed package.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// The vulnerability ID as reported: a CVE when the record or an alias
    /// is one (Trivy's choice), else the record's own ID.
    pub id: String,
    /// The OSV records that matched (several when records alias each other).
    pub advisory_ids: Vec<String>,
    /// Every other ID of the vulnerability (record IDs and their aliases but
    /// `id`), sorted.
    pub aliases: Vec<String>,
    pub package: FindingPackage,
    /// Trivy's `FixedVersion`: every `fixed` event of the record for the
    /// package, in record order, without repeats, joined with `", "`; empty
    /// when there is none.
    pub fixed_version: String,
    /// The lowest version that fixes the installed one (on its release
    /// line), when the range it is in has a fix: what to upgrade to.
    pub fix: Option<String>,
    pub status: Status,
    /// The rating (UNKNOWN when the records give none).
    #[serde(serialize_with = "ser_rating")]
    pub rating: Rating,
    /// Where the rating came from: the CVSS vector and score, or the
    /// database's word.
    #[serde(serialize_with = "ser_severity")]
    pub severity: Option<Severity>,
    /// The OSV record the severity came from.
    pub severity_from: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub primary_url: Option<String>,
    pub references: Vec<String>,
    pub published: Option<String>,
    pub modified: Option<String>,
    /// The layer that added the package (bottom = 0), its digest and the
    /// history step that made it.
    pub layer: usize,
    pub layer_digest: Option<String>,
    pub created_by: Option<String>,
    /// The package came with the base image (`layer < base_layers`).
    pub in_base_image: bool,
    /// The Trivy target (result) the package belongs to.
    pub target: String,
}

/// A package as the scan saw it: the SBOM's package, where it was looked up
/// and which target it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScannedPackage {
    pub package: Package,
    /// `None` when no OSV ecosystem covers it (see [`Report::notes`]).
    pub ecosystem: Option<String>,
    pub target: String,
}

/// Counts of findings by rating.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    /// UNKNOWN and NONE.
    pub unknown: usize,
}

impl Counts {
    pub fn add(&mut self, r: Rating) {
        match r {
            Rating::Critical => self.critical += 1,
            Rating::High => self.high += 1,
            Rating::Medium => self.medium += 1,
            Rating::Low => self.low += 1,
            Rating::Unknown | Rating::None => self.unknown += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.critical + self.high + self.medium + self.low + self.unknown
    }

    /// Scout's `0C 2H 5M 1L` (with `3?` when there are unknowns).
    pub fn scout(&self) -> String {
        let mut s = format!("{}C {}H {}M {}L", self.critical, self.high, self.medium, self.low);
        if self.unknown > 0 {
            s.push_str(&format!(" {}?", self.unknown));
        }
        s
    }
}

/// The result of [`scan`]: findings sorted by target, package name, version,
/// rating (highest first) and ID.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub image: ImageInfo,
    pub distro: Option<Distro>,
    pub layers: Vec<LayerInfo>,
    pub base_layers: Option<usize>,
    pub base_image: Option<String>,
    /// As [`ScanOptions::blob_digests`].
    pub blob_digests: Vec<Option<String>>,
    /// Every target that holds packages, OS packages first, then by name.
    pub targets: Vec<Target>,
    pub packages: Vec<ScannedPackage>,
    pub findings: Vec<Finding>,
    /// Findings a filter's ignore list removed (Trivy's suppressed ones).
    pub ignored: Vec<Finding>,
    /// The severities a report lists (the Trivy table's `Total:` line);
    /// all five unless a filter chose some.
    #[serde(serialize_with = "ser_ratings")]
    pub severities: Vec<Rating>,
    /// The SBOM's creation time (Unix seconds) and whether it was given
    /// (documents derived from the report reuse them).
    pub created: i64,
    #[serde(skip)]
    pub reproducible: bool,
    /// What could not be matched and why (unsupported distro, versions a
    /// scheme cannot read, ignore-file lines skipped).
    pub notes: Vec<String>,
}

impl Report {
    /// Whether any finding has one of these ratings (`--exit-code` with
    /// `--severity`); an empty list means any finding at all.
    pub fn has_findings_at(&self, severities: &[Rating]) -> bool {
        self.findings
            .iter()
            .any(|f| severities.is_empty() || severities.contains(&f.rating))
    }

    /// Counts over every finding.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for f in &self.findings {
            c.add(f.rating);
        }
        c
    }

    /// Counts over the findings in the base image's layers (`None` when the
    /// base is unknown).
    pub fn base_counts(&self) -> Option<Counts> {
        self.base_layers?;
        let mut c = Counts::default();
        for f in self.findings.iter().filter(|f| f.in_base_image) {
            c.add(f.rating);
        }
        Some(c)
    }

    /// Counts per target name.
    pub fn counts_by_target(&self) -> BTreeMap<String, Counts> {
        let mut m: BTreeMap<String, Counts> = BTreeMap::new();
        for f in &self.findings {
            m.entry(f.target.clone()).or_default().add(f.rating);
        }
        m
    }

    /// Applies a filter: drops the findings it rejects (ignored ones move to
    /// [`Report::ignored`]) and records its severities for the renderers.
    pub fn apply(&mut self, filter: &Filter) {
        filter::apply(self, filter)
    }
}

fn ser_rating<S: serde::Serializer>(r: &Rating, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

fn ser_ratings<S: serde::Serializer>(r: &[Rating], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.iter().map(|r| r.as_str()))
}

fn ser_severity<S: serde::Serializer>(v: &Option<Severity>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(v) => serde_json::json!({
            "source": v.source,
            "vector": v.vector,
            "score": v.score,
            "rating": v.rating.as_str(),
        })
        .serialize(s),
    }
}

/// Matches every package of `sbom` against the database.
///
/// Each package goes to its OSV ecosystem ([`ecosystem_for`]); advisories
/// naming it there are evaluated with the ecosystem's comparator; withdrawn
/// records are skipped; records that share a vulnerability ID (a CVE alias)
/// for one package, version and location become one finding.
pub fn scan(db: &Db, sbom: &Sbom, opts: &ScanOptions) -> Result<Report, ScanError> {
    matcher::scan(db, sbom, opts)
}
