//! SARIF 2.1.0 in the shape Trivy writes (pkg/report/sarif.go): a rule per
//! vulnerability ID, a result per finding pointing at the package's file
//! (or the image's repository for OS packages).

use serde_json::{Map, Value, json};
use strata_vulndb::Rating;

use super::{pkg_path, target_findings};
use crate::{Finding, Report, Target, TargetClass};

pub(crate) const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(r: Rating) -> &'static str {
    match r {
        Rating::Critical | Rating::High => "error",
        Rating::Medium => "warning",
        Rating::Low | Rating::Unknown | Rating::None => "note",
    }
}

/// Trivy's `security-severity` when there is no CVSS v3 score.
fn severity_score(f: &Finding) -> String {
    if let Some(s) = &f.severity
        && let Some(score) = s.score
    {
        return format!("{score:.1}");
    }
    match f.rating {
        Rating::Critical => "9.5",
        Rating::High => "8.0",
        Rating::Medium => "5.5",
        Rating::Low => "2.0",
        _ => "0.0",
    }
    .to_string()
}

/// The artifact URI of a target: the image's repository for OS packages
/// (the name without tag, digest or the `(debian 12)` suffix), the path for
/// language files.
fn artifact_uri(report: &Report, t: &Target, f: &Finding) -> String {
    if let Some(p) = pkg_path(t, f) {
        return p;
    }
    match t.class {
        TargetClass::OsPkgs => {
            let name = report.image.name.as_str();
            let no_digest = name.split('@').next().unwrap_or(name);
            // A tag is a ':' after the last '/'.
            match no_digest.rfind(':') {
                Some(i) if !no_digest[i..].contains('/') => no_digest[..i].to_string(),
                _ => no_digest.to_string(),
            }
        }
        TargetClass::LangPkgs => t.name.clone(),
    }
}

fn rule(f: &Finding, t: &Target) -> Value {
    let fixed = &f.fixed_version;
    let url = f.primary_url.clone().unwrap_or_default();
    let title = f.title.clone().unwrap_or_default();
    let full = f
        .description
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| title.clone());
    let desc = f.description.clone().unwrap_or_default();
    let sev = f.rating.as_str();
    let mut props = Map::new();
    props.insert("tags".into(), json!(["vulnerability", "security", sev]));
    props.insert("precision".into(), json!("very-high"));
    props.insert("security-severity".into(), json!(severity_score(f)));
    if let Some(s) = &f.severity
        && let Some(score) = s.score
    {
        match s.source.as_str() {
            "CVSS_V3" => {
                props.insert("cvssv3_vector".into(), json!(s.vector));
                props.insert("cvssv3_baseScore".into(), json!(score));
            }
            "CVSS_V4" => {
                props.insert("cvssv40_vector".into(), json!(s.vector));
                props.insert("cvssv40_baseScore".into(), json!(score));
            }
            _ => {}
        }
    }
    let mut r = Map::new();
    r.insert("id".into(), json!(f.id));
    r.insert(
        "name".into(),
        json!(match t.class {
            TargetClass::OsPkgs => "OsPackageVulnerability",
            TargetClass::LangPkgs => "LanguageSpecificPackageVulnerability",
        }),
    );
    r.insert("shortDescription".into(), json!({ "text": title }));
    r.insert("fullDescription".into(), json!({ "text": full }));
    r.insert("defaultConfiguration".into(), json!({ "level": level(f.rating) }));
    if !url.is_empty() {
        r.insert("helpUri".into(), json!(url));
    }
    r.insert(
        "help".into(),
        json!({
            "text": format!("Vulnerability {}\nSeverity: {sev}\nPackage: {}\nFixed Version: {fixed}\nLink: [{}]({url})\n{desc}", f.id, f.package.name, f.id),
            "markdown": format!("**Vulnerability {}**\n| Severity | Package | Fixed Version | Link |\n| --- | --- | --- | --- |\n|{sev}|{}|{fixed}|[{}]({url})|\n\n{desc}", f.id, f.package.name, f.id),
        }),
    );
    r.insert("properties".into(), Value::Object(props));
    Value::Object(r)
}

/// SARIF 2.1.0 of the findings, naming `tool` as the driver.
pub(crate) fn sarif_for(report: &Report, tool: &str, full_name: &str, info_uri: &str) -> String {
    let mut rules: Vec<Value> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut results: Vec<Value> = Vec::new();
    for t in &report.targets {
        for f in target_findings(report, t) {
            let i = *index.entry(f.id.clone()).or_insert_with(|| {
                rules.push(rule(f, t));
                rules.len() - 1
            });
            let uri = artifact_uri(report, t, f);
            let url = f.primary_url.clone().unwrap_or_default();
            results.push(json!({
                "ruleId": f.id,
                "ruleIndex": i,
                "level": level(f.rating),
                "message": { "text": format!(
                    "Package: {}\nInstalled Version: {}\nVulnerability {}\nSeverity: {}\nFixed Version: {}\nLink: [{}]({url})",
                    f.package.name, f.package.version, f.id, f.rating.as_str(), f.fixed_version, f.id) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri, "uriBaseId": "ROOTPATH" },
                        "region": { "startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 1 }
                    },
                    "message": { "text": format!("{uri}: {}@{}", f.package.name, f.package.version) }
                }]
            }));
        }
    }
    let mut props = Map::new();
    props.insert("imageName".into(), json!(report.image.name));
    if let Some(id) = &report.image.id {
        props.insert("imageID".into(), json!(id));
    }
    if let Some(d) = &report.image.manifest_digest {
        props.insert("manifestDigest".into(), json!(d));
    }
    let doc = json!({
        "version": "2.1.0",
        "$schema": SCHEMA,
        "runs": [{
            "tool": { "driver": {
                "fullName": full_name,
                "informationUri": info_uri,
                "name": tool,
                "rules": rules,
                "version": env!("CARGO_PKG_VERSION"),
            }},
            "results": results,
            "columnKind": "utf16CodeUnits",
            "originalUriBaseIds": { "ROOTPATH": { "uri": "file:///" } },
            "properties": Value::Object(props),
        }]
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// SARIF 2.1.0 as `trivy image --format sarif` writes it (tool `strata`).
pub fn sarif(report: &Report) -> String {
    sarif_for(
        report,
        "strata",
        "strata vulnerability scanner",
        "https://github.com/strata-containers/strata",
    )
}
