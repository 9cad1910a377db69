//! Trivy's JSON report (`SchemaVersion: 2`, pkg/types/report.go) and table
//! (pkg/report/table), so scripts and people used to Trivy read strata's.

use serde_json::{Map, Value, json};
use strata_vulndb::Rating;

use super::table::{Align, Table, wrap};
use super::{layer_ids, os_meta, pkg_path, source_id, source_name, target_findings};
use crate::filter::ALL_SEVERITIES;
use crate::{Finding, Report, Target, TargetClass};

/// Trivy's severity number in `VendorSeverity` (0 UNKNOWN … 4 CRITICAL).
fn severity_number(r: Rating) -> u8 {
    match r {
        Rating::Unknown | Rating::None => 0,
        Rating::Low => 1,
        Rating::Medium => 2,
        Rating::High => 3,
        Rating::Critical => 4,
    }
}

fn vulnerability(report: &Report, target: &Target, f: &Finding) -> Value {
    let mut v = Map::new();
    v.insert("VulnerabilityID".into(), json!(f.id));
    let vendor: Vec<&String> = f.advisory_ids.iter().filter(|a| **a != f.id).collect();
    if !vendor.is_empty() {
        v.insert("VendorIDs".into(), json!(vendor));
    }
    v.insert("PkgID".into(), json!(f.package.pkg_id()));
    v.insert("PkgName".into(), json!(f.package.name));
    if let Some(p) = pkg_path(target, f) {
        v.insert("PkgPath".into(), json!(p));
    }
    if !f.package.purl.is_empty() {
        v.insert("PkgIdentifier".into(), json!({ "PURL": f.package.purl }));
    }
    v.insert("InstalledVersion".into(), json!(f.package.version));
    if !f.fixed_version.is_empty() {
        v.insert("FixedVersion".into(), json!(f.fixed_version));
    }
    v.insert("Status".into(), json!(f.status.as_str()));
    let (digest, diff_id) = layer_ids(report, f.layer, f.layer_digest.as_deref());
    let mut layer = Map::new();
    if let Some(d) = digest {
        layer.insert("Digest".into(), json!(d));
    }
    if let Some(d) = diff_id {
        layer.insert("DiffID".into(), json!(d));
    }
    if !layer.is_empty() {
        v.insert("Layer".into(), Value::Object(layer));
    }
    let sev_src = f.severity_from.as_deref().map(source_id);
    if let Some(s) = sev_src {
        v.insert("SeveritySource".into(), json!(s));
    }
    if let Some(u) = &f.primary_url {
        v.insert("PrimaryURL".into(), json!(u));
    }
    let first = f.advisory_ids.first().map(String::as_str).unwrap_or(&f.id);
    v.insert(
        "DataSource".into(),
        json!({ "ID": source_id(first), "Name": source_name(first), "URL": "https://osv.dev" }),
    );
    if let Some(t) = &f.title {
        v.insert("Title".into(), json!(t));
    }
    if let Some(d) = &f.description {
        v.insert("Description".into(), json!(d));
    }
    v.insert("Severity".into(), json!(f.rating.as_str()));
    if let (Some(s), Some(src)) = (&f.severity, sev_src) {
        v.insert("VendorSeverity".into(), json!({ src: severity_number(f.rating) }));
        let cvss = match (s.source.as_str(), s.score) {
            ("CVSS_V3", Some(score)) => Some(json!({ "V3Vector": s.vector, "V3Score": score })),
            ("CVSS_V4", Some(score)) => Some(json!({ "V40Vector": s.vector, "V40Score": score })),
            _ => None,
        };
        if let Some(c) = cvss {
            v.insert("CVSS".into(), json!({ src: c }));
        }
    }
    if !f.references.is_empty() {
        v.insert("References".into(), json!(f.references));
    }
    if let Some(p) = &f.published {
        v.insert("PublishedDate".into(), json!(p));
    }
    if let Some(m) = &f.modified {
        v.insert("LastModifiedDate".into(), json!(m));
    }
    Value::Object(v)
}

/// The report as `trivy image --format json` writes it.
pub fn trivy_json(report: &Report) -> String {
    let mut doc = Map::new();
    doc.insert("SchemaVersion".into(), json!(2));
    doc.insert("ArtifactName".into(), json!(report.image.name));
    doc.insert("ArtifactType".into(), json!("container_image"));
    let mut meta = Map::new();
    if let Some((family, name)) = os_meta(report) {
        meta.insert("OS".into(), json!({ "Family": family, "Name": name }));
    }
    if let Some(id) = &report.image.id {
        meta.insert("ImageID".into(), json!(id));
    }
    let diff_ids: Vec<&str> = report.layers.iter().filter_map(|l| l.digest.as_deref()).collect();
    if !diff_ids.is_empty() {
        meta.insert("DiffIDs".into(), json!(diff_ids));
    }
    let layers: Vec<Value> = report
        .layers
        .iter()
        .map(|l| {
            let (digest, diff_id) = layer_ids(report, l.index, l.digest.as_deref());
            let mut m = Map::new();
            m.insert("Size".into(), json!(l.size));
            if let Some(d) = digest {
                m.insert("Digest".into(), json!(d));
            }
            if let Some(d) = diff_id {
                m.insert("DiffID".into(), json!(d));
            }
            Value::Object(m)
        })
        .collect();
    if !layers.is_empty() {
        meta.insert("Layers".into(), json!(layers));
    }
    doc.insert("Metadata".into(), Value::Object(meta));
    let results: Vec<Value> = report
        .targets
        .iter()
        .map(|t| {
            let mut r = Map::new();
            r.insert("Target".into(), json!(t.name));
            r.insert("Class".into(), json!(t.class.as_str()));
            r.insert("Type".into(), json!(t.kind));
            let vulns: Vec<Value> = target_findings(report, t)
                .map(|f| vulnerability(report, t, f))
                .collect();
            if !vulns.is_empty() {
                r.insert("Vulnerabilities".into(), json!(vulns));
            }
            Value::Object(r)
        })
        .collect();
    if !results.is_empty() {
        doc.insert("Results".into(), json!(results));
    }
    let mut s = serde_json::to_string_pretty(&Value::Object(doc)).unwrap_or_default();
    s.push('\n');
    s
}

/// The table's `Library` cell: the name, and for aggregated targets the
/// file it came from (the outer archive for Java).
fn library(target: &Target, f: &Finding) -> String {
    match pkg_path(target, f) {
        Some(p) => {
            let root = p
                .split('/')
                .scan(String::new(), |acc, seg| {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(seg);
                    Some(acc.clone())
                })
                .find(|prefix| [".jar", ".war", ".par", ".ear"].iter().any(|e| prefix.ends_with(e)))
                .unwrap_or_else(|| p.clone());
            let file = root
                .rsplit('/')
                .next()
                .unwrap_or(&root)
                .split(':')
                .next()
                .unwrap_or(&root);
            format!("{} ({file})", f.package.name)
        }
        None => f.package.name.clone(),
    }
}

/// Trivy's title cell: the title (else the description) cut to 12 words,
/// wrapped, and the primary URL below it.
fn title_cell(f: &Finding) -> String {
    let title = f.title.as_deref().or(f.description.as_deref()).unwrap_or("");
    let words: Vec<&str> = title.split(' ').collect();
    let mut t = if words.len() >= 12 {
        format!("{}...", words[..12].join(" "))
    } else {
        title.to_string()
    };
    t = wrap(t.trim(), 60);
    if let Some(u) = &f.primary_url {
        t = format!("{t}\n{u}");
    }
    t.trim().to_string()
}

/// `Total: N (UNKNOWN: 0, LOW: 1, …)` over the severities the report lists.
fn total_line(report: &Report, findings: &[&Finding]) -> String {
    let mut parts = Vec::new();
    let mut total = 0;
    for sev in ALL_SEVERITIES.iter().filter(|s| report.severities.contains(s)) {
        let n = findings.iter().filter(|f| f.rating == *sev).count();
        total += n;
        parts.push(format!("{}: {n}", sev.as_str()));
    }
    format!("Total: {total} ({})", parts.join(", "))
}

/// The report as `trivy image` prints it when not on a terminal: the
/// summary table, then a table per target with findings.
pub fn trivy_table(report: &Report) -> String {
    let mut out = String::from("\nReport Summary\n\n");
    let mut summary =
        Table::new(&["Target", "Type", "Vulnerabilities"]).align(&[Align::Left, Align::Center, Align::Center]);
    for t in &report.targets {
        let aggregated = matches!(t.kind.as_str(), "python-pkg" | "node-pkg" | "jar" | "gemspec");
        if !aggregated {
            summary.row(vec![
                t.name.clone(),
                t.kind.clone(),
                target_findings(report, t).count().to_string(),
            ]);
            continue;
        }
        // Aggregated targets are listed per package file, as Trivy does.
        let mut files: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for p in report.packages.iter().filter(|p| p.target == t.name) {
            let path = p
                .package
                .locations
                .first()
                .map(|l| super::root_file(l))
                .unwrap_or_default();
            files.entry(path).or_default();
        }
        for f in target_findings(report, t) {
            let path = f.package.location.as_deref().map(super::root_file).unwrap_or_default();
            *files.entry(path).or_default() += 1;
        }
        for (path, n) in files {
            summary.row(vec![
                if path.is_empty() { t.name.clone() } else { path },
                t.kind.clone(),
                n.to_string(),
            ]);
        }
    }
    if report.targets.is_empty() {
        summary = summary.align(&[Align::Center, Align::Center, Align::Center]);
        summary.row(vec!["-".into(), "-".into(), "-".into()]);
    }
    out.push_str(&summary.render());
    out.push_str("Legend:\n- '-': Not scanned\n- '0': Clean (no security findings detected)\n\n");
    for t in &report.targets {
        let findings: Vec<&Finding> = target_findings(report, t).collect();
        if findings.is_empty() {
            continue;
        }
        let name = match t.class {
            TargetClass::LangPkgs => format!("{} ({})", t.name, t.kind),
            TargetClass::OsPkgs => t.name.clone(),
        };
        out.push_str(&format!("\n{name}\n{}\n", "=".repeat(name.len())));
        out.push_str(&total_line(report, &findings));
        out.push_str("\n\n");
        let mut table = Table::new(&[
            "Library",
            "Vulnerability",
            "Severity",
            "Status",
            "Installed Version",
            "Fixed Version",
            "Title",
        ])
        .auto_merge();
        for f in findings {
            table.row(vec![
                library(t, f),
                f.id.clone(),
                f.rating.as_str().to_string(),
                f.status.as_str().to_string(),
                f.package.version.clone(),
                f.fixed_version.clone(),
                title_cell(f),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}
