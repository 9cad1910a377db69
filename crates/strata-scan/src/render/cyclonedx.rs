//! CycloneDX 1.5: strata-sbom's BOM of the scanned packages with a
//! `vulnerabilities[]` entry per vulnerability ID, its `affects` naming the
//! components (by `bom-ref`) and versions it was found in.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use strata_sbom::Sbom;
use strata_vulndb::Rating;

use crate::{Finding, Report};

fn cdx_severity(r: Rating) -> &'static str {
    match r {
        Rating::Critical => "critical",
        Rating::High => "high",
        Rating::Medium => "medium",
        Rating::Low => "low",
        Rating::None => "none",
        Rating::Unknown => "unknown",
    }
}

/// CycloneDX's rating `method` for a vector.
fn method(vector: &str, source: &str) -> &'static str {
    if vector.starts_with("CVSS:3.1") {
        "CVSSv31"
    } else if vector.starts_with("CVSS:3.0") {
        "CVSSv3"
    } else if vector.starts_with("CVSS:4.0") {
        "CVSSv4"
    } else if source == "CVSS_V2" {
        "CVSSv2"
    } else {
        "other"
    }
}

fn id_source(id: &str) -> Value {
    if id.starts_with("CVE-") {
        json!({ "name": "NVD", "url": format!("https://nvd.nist.gov/vuln/detail/{id}") })
    } else if id.starts_with("GHSA-") {
        json!({ "name": "GitHub Advisory Database", "url": format!("https://github.com/advisories/{id}") })
    } else {
        json!({ "name": "OSV", "url": format!("https://osv.dev/vulnerability/{id}") })
    }
}

fn vulnerability(f: &Finding, refs: Vec<(String, String)>) -> Value {
    let mut v = serde_json::Map::new();
    v.insert("bom-ref".into(), json!(format!("vuln-{}", f.id)));
    v.insert("id".into(), json!(f.id));
    v.insert("source".into(), id_source(&f.id));
    if !f.aliases.is_empty() {
        v.insert(
            "references".into(),
            json!(
                f.aliases
                    .iter()
                    .map(|a| json!({ "id": a, "source": id_source(a) }))
                    .collect::<Vec<_>>()
            ),
        );
    }
    let mut rating = serde_json::Map::new();
    if let Some(from) = &f.severity_from {
        rating.insert("source".into(), id_source(from));
    }
    if let Some(s) = &f.severity {
        if let Some(score) = s.score {
            rating.insert("score".into(), json!(score));
        }
        rating.insert("severity".into(), json!(cdx_severity(f.rating)));
        rating.insert("method".into(), json!(method(&s.vector, &s.source)));
        if s.vector.starts_with("CVSS:") || s.source == "CVSS_V2" {
            rating.insert("vector".into(), json!(s.vector));
        }
    } else {
        rating.insert("severity".into(), json!("unknown"));
    }
    v.insert("ratings".into(), json!([Value::Object(rating)]));
    if let Some(d) = f.description.as_ref().or(f.title.as_ref()) {
        v.insert("description".into(), json!(d));
    }
    if !f.fixed_version.is_empty() {
        v.insert(
            "recommendation".into(),
            json!(format!("Upgrade to {}", f.fixed_version)),
        );
    }
    let advisories: Vec<Value> = f.references.iter().map(|u| json!({ "url": u })).collect();
    if !advisories.is_empty() {
        v.insert("advisories".into(), json!(advisories));
    }
    if let Some(p) = &f.published {
        v.insert("published".into(), json!(p));
    }
    if let Some(m) = &f.modified {
        v.insert("updated".into(), json!(m));
    }
    let affects: Vec<Value> = refs
        .into_iter()
        .map(|(r, version)| json!({ "ref": r, "versions": [{ "version": version, "status": "affected" }] }))
        .collect();
    v.insert("affects".into(), json!(affects));
    Value::Object(v)
}

/// The report as a CycloneDX 1.5 JSON BOM with `vulnerabilities[]`.
pub fn cyclonedx(report: &Report) -> String {
    let sbom = Sbom {
        image: report.image.clone(),
        distro: report.distro.clone(),
        layers: report.layers.clone(),
        packages: report.packages.iter().map(|p| p.package.clone()).collect(),
        warnings: Vec::new(),
        created: report.created,
        reproducible: report.reproducible,
    };
    let mut doc: Value = serde_json::from_str(&sbom.to_cyclonedx_json()).unwrap_or_else(|_| json!({}));
    // Components are the OS (when known) and then the packages, in order.
    let skip = usize::from(report.distro.is_some());
    let refs: Vec<String> = doc["components"]
        .as_array()
        .map(|c| {
            c.iter()
                .skip(skip)
                .map(|c| c["bom-ref"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    // A package instance → its component's bom-ref.
    let mut by_instance: BTreeMap<(String, String, Option<String>), String> = BTreeMap::new();
    for (p, r) in report.packages.iter().zip(&refs) {
        by_instance
            .entry((
                p.package.name.clone(),
                p.package.version.clone(),
                p.package.locations.first().cloned(),
            ))
            .or_insert_with(|| r.clone());
    }
    // Per vulnerability ID: its first finding and the (bom-ref, version)
    // pairs it affects.
    type Affects = Vec<(String, String)>;
    let mut grouped: BTreeMap<&str, (&Finding, Affects)> = BTreeMap::new();
    for f in &report.findings {
        let key = (
            f.package.name.clone(),
            f.package.version.clone(),
            f.package.location.clone(),
        );
        let r = by_instance.get(&key).cloned().unwrap_or_else(|| f.package.purl.clone());
        let e = grouped.entry(f.id.as_str()).or_insert((f, Vec::new()));
        if !e.1.iter().any(|(x, _)| *x == r) {
            e.1.push((r, f.package.version.clone()));
        }
    }
    let vulns: Vec<Value> = grouped.into_values().map(|(f, refs)| vulnerability(f, refs)).collect();
    if let Some(o) = doc.as_object_mut() {
        o.insert("vulnerabilities".into(), json!(vulns));
    }
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
