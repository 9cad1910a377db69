//! Docker Scout's `quickview` and `cves` listings.

use serde_json::{Value, json};
use strata_vulndb::Rating;

use super::html_escape;
use super::sarif::sarif_for;
use crate::{Counts, Finding, Report, ScoutFormat};

/// Scout's count cell: `    0C     2H     5M     1L` (and `    3?` for
/// unknowns when there are any).
fn count_cell(c: &Counts) -> String {
    let mut parts = vec![
        format!("{:>5}C", c.critical),
        format!("{:>5}H", c.high),
        format!("{:>5}M", c.medium),
        format!("{:>5}L", c.low),
    ];
    if c.unknown > 0 {
        parts.push(format!("{:>5}?", c.unknown));
    }
    parts.join(" ")
}

/// Twelve hex digits of a digest, as Scout shows it.
fn short_digest(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}

fn image_name(report: &Report) -> String {
    if report.image.name.is_empty() {
        report.image.id.clone().unwrap_or_else(|| "image".into())
    } else {
        report.image.name.clone()
    }
}

/// `docker scout quickview`: the image's counts and its base image's.
pub fn scout_quickview(report: &Report) -> String {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    rows.push(("Target".into(), image_name(report), count_cell(&report.counts())));
    if let Some(d) = report.image.manifest_digest.as_ref().or(report.image.id.as_ref()) {
        rows.push(("  digest".into(), short_digest(d), String::new()));
    }
    if let Some(base) = report.base_counts() {
        let name = report.base_image.clone().unwrap_or_else(|| {
            let n = report.base_layers.unwrap_or(0);
            format!("(the bottom {n} layer{})", if n == 1 { "" } else { "s" })
        });
        rows.push(("Base image".into(), name, count_cell(&base)));
    }
    let lw = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value, counts) in rows {
        let line = format!("  {label:<lw$}  │  {value:<vw$}  │ {counts}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One vulnerable package and its findings.
struct PackageGroup<'a> {
    findings: Vec<&'a Finding>,
    counts: Counts,
}

/// Findings grouped per package (purl and location), most severe first as
/// Scout orders them.
fn groups(report: &Report) -> Vec<PackageGroup<'_>> {
    let mut map: std::collections::BTreeMap<(String, Option<String>), Vec<&Finding>> = Default::default();
    for f in &report.findings {
        map.entry((f.package.purl.clone(), f.package.location.clone()))
            .or_default()
            .push(f);
    }
    let mut out: Vec<PackageGroup<'_>> = map
        .into_values()
        .map(|findings| {
            let mut counts = Counts::default();
            for f in &findings {
                counts.add(f.rating);
            }
            PackageGroup { findings, counts }
        })
        .collect();
    out.sort_by(|a, b| {
        let key = |g: &PackageGroup<'_>| {
            (
                g.counts.critical,
                g.counts.high,
                g.counts.medium,
                g.counts.low,
                g.counts.unknown,
            )
        };
        key(b)
            .cmp(&key(a))
            .then_with(|| a.findings[0].package.name.cmp(&b.findings[0].package.name))
    });
    out
}

fn scout_url(id: &str) -> String {
    format!("https://scout.docker.com/v/{id}")
}

/// Scout's affected range: below the fix, else every version.
fn affected_range(f: &Finding) -> String {
    match &f.fix {
        Some(fix) => format!("<{fix}"),
        None => format!(">={}", f.package.version),
    }
}

fn fixed_by(f: &Finding) -> String {
    f.fix.clone().unwrap_or_else(|| "not fixed".into())
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// The `## Overview` block (Scout's packages format).
fn overview(report: &Report) -> String {
    let mut rows: Vec<(&str, String)> = vec![("Target", image_name(report))];
    if let Some(d) = report.image.manifest_digest.as_ref().or(report.image.id.as_ref()) {
        rows.push(("  digest", short_digest(d)));
    }
    if let Some(p) = &report.image.platform {
        rows.push(("  platform", p.clone()));
    }
    rows.push(("  vulnerabilities", count_cell(&report.counts())));
    rows.push(("  packages", report.packages.len().to_string()));
    if let Some(base) = report.base_counts() {
        rows.push((
            "Base image",
            report.base_image.clone().unwrap_or_else(|| "(base layers)".into()),
        ));
        rows.push(("  vulnerabilities", count_cell(&base)));
    }
    let lw = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(16);
    let vw = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).max(14);
    let mut out = String::from("## Overview\n\n");
    out.push_str(&format!("  {:<lw$}  │  {:^vw$}\n", "", "Analyzed Image"));
    out.push_str(&format!("{}┼{}\n", "─".repeat(lw + 4), "─".repeat(vw + 4)));
    for (l, v) in rows {
        out.push_str(format!("  {l:<lw$}  │  {v:<vw$}").trim_end());
        out.push('\n');
    }
    out
}

fn packages_text(report: &Report) -> String {
    let mut out = overview(report);
    out.push_str("\n\n## Packages and Vulnerabilities\n\n");
    let gs = groups(report);
    for g in &gs {
        let p = &g.findings[0].package;
        out.push_str(&format!(
            "{}  {} {}\n{}\n",
            count_cell(&g.counts),
            p.name,
            p.version,
            p.purl
        ));
        if let Some(step) = &g.findings[0].created_by {
            out.push_str(&format!("  (layer {}: {step})\n", g.findings[0].layer));
        }
        out.push('\n');
        for f in &g.findings {
            let title = f.title.as_deref().map(|t| format!(" [{t}]")).unwrap_or_default();
            out.push_str(&format!("    ✗ {} {}{title}\n", f.rating.as_str(), f.id));
            out.push_str(&format!("      {}\n\n", scout_url(&f.id)));
            out.push_str(&format!("      Affected range : {}\n", affected_range(f)));
            out.push_str(&format!("      Fixed version  : {}\n", fixed_by(f)));
            if let Some(s) = &f.severity {
                if let Some(score) = s.score {
                    out.push_str(&format!("      CVSS Score     : {score:.1}\n"));
                }
                if s.vector.starts_with("CVSS:") {
                    out.push_str(&format!("      CVSS Vector    : {}\n", s.vector));
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let c = report.counts();
    out.push_str(&format!(
        "{} found in {}\n",
        plural(report.findings.len(), "vulnerability").replace("vulnerabilitys", "vulnerabilities"),
        plural(gs.len(), "package")
    ));
    for (name, n) in [
        ("CRITICAL", c.critical),
        ("HIGH", c.high),
        ("MEDIUM", c.medium),
        ("LOW", c.low),
    ] {
        out.push_str(&format!("  {name:<9} {n}\n"));
    }
    if c.unknown > 0 {
        out.push_str(&format!("  {:<9} {}\n", "UNSPECIFIED", c.unknown));
    }
    out
}

/// Badge colours Scout uses per severity.
fn badge_colour(r: Rating) -> &'static str {
    match r {
        Rating::Critical => "8b1924",
        Rating::High => "e25d68",
        Rating::Medium => "fbb552",
        Rating::Low => "fce1a9",
        _ => "lightgrey",
    }
}

fn markdown(report: &Report) -> String {
    let mut out = String::from("## Overview\n\n|    | Analyzed Image |\n|----|----|\n");
    out.push_str(&format!("| Target | `{}` |\n", image_name(report)));
    if let Some(d) = report.image.manifest_digest.as_ref().or(report.image.id.as_ref()) {
        out.push_str(&format!("|   digest | `{}` |\n", short_digest(d)));
    }
    if let Some(p) = &report.image.platform {
        out.push_str(&format!("|   platform | {p} |\n"));
    }
    let md_counts = |c: &Counts| {
        let mut s = format!("{}C {}H {}M {}L", c.critical, c.high, c.medium, c.low);
        if c.unknown > 0 {
            s.push_str(&format!(" {}?", c.unknown));
        }
        s
    };
    out.push_str(&format!("|   vulnerabilities | {} |\n", md_counts(&report.counts())));
    out.push_str(&format!("|   packages | {} |\n", report.packages.len()));
    if let Some(base) = report.base_counts() {
        let name = report.base_image.clone().unwrap_or_else(|| "(base layers)".into());
        out.push_str(&format!(
            "| Base image | `{name}` |\n|   vulnerabilities | {} |\n",
            md_counts(&base)
        ));
    }
    out.push_str("\n## Packages and Vulnerabilities\n\n");
    for g in groups(report) {
        let p = &g.findings[0].package;
        out.push_str(&format!(
            "<details><summary>{} <strong>{}</strong> <code>{}</code> ({})</summary>\n\n",
            md_counts(&g.counts),
            html_escape(&p.name),
            html_escape(&p.version),
            super::super::filter::purl_type(p.kind)
        ));
        out.push_str(&format!("<small><code>{}</code></small><br/>\n", html_escape(&p.purl)));
        if let Some(step) = &g.findings[0].created_by {
            out.push_str(&format!(
                "\n```dockerfile\n# layer {}\n{step}\n```\n",
                g.findings[0].layer
            ));
        }
        out.push_str("\n<br/>\n\n");
        for f in &g.findings {
            let score = f
                .severity
                .as_ref()
                .and_then(|s| s.score)
                .map(|s| format!(" {s:.1}"))
                .unwrap_or_default();
            let label = format!("{}{score}", f.rating.as_str().to_ascii_lowercase());
            let badge_id = f.id.replace('-', "--");
            out.push_str(&format!(
                "<a href=\"{}\"><img alt=\"{label}: {badge_id}\" src=\"https://img.shields.io/badge/{badge_id}-lightgrey?label={}&labelColor={}\"/></a> ",
                scout_url(&f.id),
                label.replace(' ', "%20"),
                badge_colour(f.rating)
            ));
            if let Some(t) = &f.title {
                out.push_str(&format!("<i>{}</i>", html_escape(t)));
            }
            out.push_str("\n\n<table>\n");
            out.push_str(&format!(
                "<tr><td>Affected range</td><td><code>{}</code></td></tr>\n",
                html_escape(&affected_range(f))
            ));
            out.push_str(&format!(
                "<tr><td>Fixed version</td><td><code>{}</code></td></tr>\n",
                html_escape(&fixed_by(f))
            ));
            if let Some(s) = &f.severity {
                if let Some(score) = s.score {
                    out.push_str(&format!(
                        "<tr><td>CVSS Score</td><td><code>{score:.1}</code></td></tr>\n"
                    ));
                }
                if s.vector.starts_with("CVSS:") {
                    out.push_str(&format!(
                        "<tr><td>CVSS Vector</td><td><code>{}</code></td></tr>\n",
                        html_escape(&s.vector)
                    ));
                }
            }
            out.push_str("</table>\n\n");
            if let Some(d) = &f.description {
                out.push_str(&format!(
                    "<details><summary>Description</summary><blockquote>\n\n{}\n\n</blockquote>\n</details>\n\n",
                    html_escape(d)
                ));
            }
        }
        out.push_str("</details>\n\n");
    }
    out
}

fn json_listing(report: &Report) -> String {
    let packages: Vec<Value> = groups(report)
        .iter()
        .map(|g| {
            let p = &g.findings[0].package;
            let vulns: Vec<Value> = g
                .findings
                .iter()
                .map(|f| {
                    json!({
                        "id": f.id,
                        "aliases": f.aliases,
                        "severity": f.rating.as_str(),
                        "cvss": f.severity.as_ref().filter(|s| s.score.is_some()).map(|s| json!({ "score": s.score, "vector": s.vector })),
                        "fixedBy": fixed_by(f),
                        "affectedRange": affected_range(f),
                        "url": scout_url(&f.id),
                        "title": f.title,
                        "description": f.description,
                        "layer": f.layer,
                        "createdBy": f.created_by,
                        "inBaseImage": f.in_base_image,
                    })
                })
                .collect();
            json!({
                "purl": p.purl,
                "name": p.name,
                "version": p.version,
                "type": super::super::filter::purl_type(p.kind),
                "location": p.location,
                "counts": g.counts,
                "vulnerabilities": vulns,
            })
        })
        .collect();
    let doc = json!({
        "target": image_name(report),
        "digest": report.image.manifest_digest.as_ref().or(report.image.id.as_ref()),
        "counts": report.counts(),
        "baseImage": report.base_counts().map(|c| json!({ "name": report.base_image, "counts": c })),
        "packages": packages,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// `docker scout cves` in `format`. `Json` is strata's shape of the packages
/// listing: `{target, digest, counts, baseImage, packages: [{purl, name,
/// version, type, location, counts, vulnerabilities: [{id, aliases,
/// severity, cvss, fixedBy, affectedRange, url, title, description, layer,
/// createdBy, inBaseImage}]}]}`.
pub fn scout_cves(report: &Report, format: ScoutFormat) -> String {
    match format {
        ScoutFormat::Packages => packages_text(report),
        ScoutFormat::Markdown => markdown(report),
        ScoutFormat::Sarif => sarif_for(
            report,
            "docker scout",
            "strata (docker scout cves)",
            "https://docs.docker.com/scout/",
        ),
        ScoutFormat::Json => json_listing(report),
    }
}
