//! Matching: each package against the advisories of its ecosystem, then one
//! finding per vulnerability ID, package, installed version and location.
//!
//! IDs follow Trivy (trivy-db's `groupVulnIDs`): a record whose ID or
//! aliases include CVEs is reported under each CVE (its other IDs become
//! aliases); a record without one under its own ID. Two records that end up
//! with one ID for one package instance (PYSEC-x and GHSA-y, both aliases of
//! CVE-z) are one finding. Beyond Trivy, two records without a CVE that
//! name each other in `aliases` are one finding too, reported under the GHSA
//! ID when one is (else the smaller ID).
//!
//! When findings merge, the `FixedVersion` kept is Trivy's pick (the
//! greater string: a fix beats none), the severity the best-founded one
//! (a CVSS v3 score, then v4, then a database's word), and the title the
//! first non-empty summary of the record that gave the severity.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strata_sbom::{Package, Sbom};
use strata_vulndb::{Advisory, Db, EventKind, Rating, Severity};

use crate::ecosystem::{Lookup, Target, TargetClass, ecosystem_for, target_for};
use crate::filter::ALL_SEVERITIES;
use crate::{Finding, FindingPackage, Report, ScanError, ScanOptions, ScannedPackage, Status};

/// Advisories per (ecosystem, name): binary packages of one source package
/// share them.
type Cache = HashMap<(String, String), Vec<Advisory>>;

pub(crate) fn scan(db: &Db, sbom: &Sbom, opts: &ScanOptions) -> Result<Report, ScanError> {
    let distro = sbom.distro.as_ref();
    let mut cache: Cache = HashMap::new();
    let mut notes: BTreeMap<String, usize> = BTreeMap::new();
    let mut packages = Vec::with_capacity(sbom.packages.len());
    let mut targets: BTreeSet<Target> = BTreeSet::new();
    let mut found: Vec<Finding> = Vec::new();
    for pkg in &sbom.packages {
        let target = target_for(pkg, &sbom.image.name, distro);
        targets.insert(target.clone());
        let lookup = match ecosystem_for(pkg, distro) {
            Ok(l) => l,
            Err(reason) => {
                *notes.entry(reason).or_default() += 1;
                packages.push(ScannedPackage {
                    package: pkg.clone(),
                    ecosystem: None,
                    target: target.name,
                });
                continue;
            }
        };
        packages.push(ScannedPackage {
            package: pkg.clone(),
            ecosystem: Some(lookup.display.clone()),
            target: target.name.clone(),
        });
        if !strata_vercmp::is_valid(lookup.scheme, &lookup.version) {
            *notes
                .entry(format!(
                    "{} {} {}: not a {} version, not matched",
                    lookup.display, pkg.name, lookup.version, lookup.scheme
                ))
                .or_default() += 1;
            continue;
        }
        let key = (lookup.ecosystem.clone(), lookup.name.clone());
        if !cache.contains_key(&key) {
            let advisories = db
                .advisories_for(&lookup.ecosystem, &lookup.name)
                .map_err(|source| ScanError::Db {
                    ecosystem: lookup.ecosystem.clone(),
                    package: lookup.name.clone(),
                    source,
                })?;
            cache.insert(key.clone(), advisories);
        }
        for adv in &cache[&key] {
            found.extend(match_one(adv, pkg, &lookup, &target, opts));
        }
    }
    let mut findings = dedupe(found);
    let sorted = sorted_targets(&targets);
    let order: HashMap<&str, usize> = sorted.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    findings.sort_by(|a, b| {
        let ta = order.get(a.target.as_str()).copied().unwrap_or(usize::MAX);
        let tb = order.get(b.target.as_str()).copied().unwrap_or(usize::MAX);
        ta.cmp(&tb)
            .then_with(|| a.package.name.cmp(&b.package.name))
            .then_with(|| a.package.version.cmp(&b.package.version))
            .then_with(|| b.rating.cmp(&a.rating))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.package.location.cmp(&b.package.location))
    });
    Ok(Report {
        image: sbom.image.clone(),
        distro: sbom.distro.clone(),
        layers: sbom.layers.clone(),
        base_layers: opts.base_layers,
        base_image: opts.base_image.clone(),
        blob_digests: opts.blob_digests.clone(),
        targets: sorted,
        packages,
        findings,
        ignored: Vec::new(),
        severities: ALL_SEVERITIES.to_vec(),
        created: sbom.created,
        reproducible: sbom.reproducible,
        notes: notes
            .into_iter()
            .map(|(n, c)| if c > 1 { format!("{n} ({c} packages)") } else { n })
            .collect(),
    })
}

/// OS packages' targets first, then language targets by name.
fn sorted_targets(t: &BTreeSet<Target>) -> Vec<Target> {
    let mut v: Vec<Target> = t.iter().cloned().collect();
    v.sort_by(|a, b| {
        (a.class != TargetClass::OsPkgs)
            .cmp(&(b.class != TargetClass::OsPkgs))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    v
}

/// The CVE a distribution's per-CVE record is named after
/// (`DEBIAN-CVE-2024-1234`, `ALPINE-CVE-…`, `UBUNTU-CVE-…`): such records
/// name their CVE in `upstream`, which the database does not keep.
fn cve_of_id(id: &str) -> Option<String> {
    let (prefix, rest) = id.split_once("-CVE-")?;
    let ok = !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_uppercase())
        && rest.split_once('-').is_some_and(|(y, n)| {
            y.len() == 4
                && y.bytes().all(|b| b.is_ascii_digit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        });
    ok.then(|| format!("CVE-{rest}"))
}

/// Trivy's IDs for a record: its CVEs (own ID, aliases, or the CVE a
/// distribution's per-CVE record is named after), else its own ID.
pub(crate) fn vuln_ids(adv: &Advisory) -> Vec<String> {
    let mut cves: Vec<String> = adv
        .aliases
        .iter()
        .chain(std::iter::once(&adv.id))
        .filter(|a| a.starts_with("CVE-"))
        .cloned()
        .chain(cve_of_id(&adv.id))
        .collect();
    cves.sort();
    cves.dedup();
    if cves.is_empty() { vec![adv.id.clone()] } else { cves }
}

/// The findings one record gives for one package (one per vulnerability ID).
fn match_one(adv: &Advisory, pkg: &Package, lookup: &Lookup, target: &Target, opts: &ScanOptions) -> Vec<Finding> {
    if adv.withdrawn.is_some() {
        return Vec::new();
    }
    let mut adv_for = std::borrow::Cow::Borrowed(adv);
    if let Some(rel) = &lookup.release {
        let mut a = adv.clone();
        a.affected.retain(|e| rel.matches(&e.ecosystem));
        if a.affected.is_empty() {
            return Vec::new();
        }
        adv_for = std::borrow::Cow::Owned(a);
    }
    let scheme = lookup.scheme;
    let cmp = move |a: &str, b: &str| strata_vercmp::compare(scheme, a, b).ok();
    let Some(hit) = adv_for.affects(&lookup.version, &cmp) else {
        return Vec::new();
    };
    // Trivy's FixedVersion: every `fixed` event for the package, in record
    // order, without repeats.
    let mut fixes: Vec<&str> = Vec::new();
    for e in adv_for.affected.iter().flat_map(|a| &a.ranges).flat_map(|r| &r.events) {
        if e.kind == EventKind::Fixed && !fixes.contains(&e.version.as_str()) {
            fixes.push(&e.version);
        }
    }
    let fixed_version = fixes.join(", ");
    let ids = vuln_ids(adv);
    let rating = match adv.severity.as_ref().map(|s| s.rating) {
        None | Some(Rating::None) => Rating::Unknown,
        Some(r) => r,
    };
    let location = pkg.locations.first().cloned();
    let in_base_image = opts.base_layers.is_some_and(|b| pkg.layer < b);
    ids.iter()
        .map(|id| {
            let mut aliases: BTreeSet<String> = adv.aliases.iter().cloned().collect();
            aliases.insert(adv.id.clone());
            aliases.remove(id);
            Finding {
                id: id.clone(),
                advisory_ids: vec![adv.id.clone()],
                aliases: aliases.into_iter().collect(),
                package: FindingPackage {
                    name: pkg.name.clone(),
                    version: pkg.version.clone(),
                    kind: pkg.kind,
                    purl: pkg.purl.clone(),
                    ecosystem: lookup.display.clone(),
                    osv_name: lookup.name.clone(),
                    osv_version: lookup.version.clone(),
                    location: location.clone(),
                },
                status: if fixed_version.is_empty() {
                    Status::Affected
                } else {
                    Status::Fixed
                },
                fixed_version: fixed_version.clone(),
                fix: hit.fixed.clone(),
                rating,
                severity: adv.severity.clone(),
                severity_from: adv.severity.as_ref().map(|_| adv.id.clone()),
                title: adv.summary.clone().filter(|s| !s.trim().is_empty()),
                description: adv.details.clone().filter(|s| !s.trim().is_empty()),
                primary_url: primary_url(id),
                references: Vec::new(),
                published: adv.published.clone(),
                modified: Some(adv.modified.clone()),
                layer: pkg.layer,
                layer_digest: pkg.layer_digest.clone(),
                created_by: pkg.created_by.clone(),
                in_base_image,
                target: target.name.clone(),
            }
        })
        .collect()
}

/// Trivy's `PrimaryURL` for an ID (CVE → AVD, GHSA → GitHub, RUSTSEC →
/// OSV); for the IDs Trivy leaves without one, the database's own page
/// (Go's vulnerability database, else osv.dev).
pub(crate) fn primary_url(id: &str) -> Option<String> {
    Some(if id.starts_with("CVE-") {
        format!("https://avd.aquasec.com/nvd/{}", id.to_ascii_lowercase())
    } else if id.starts_with("GHSA-") {
        format!("https://github.com/advisories/{id}")
    } else if id.starts_with("GO-") {
        format!("https://pkg.go.dev/vuln/{id}")
    } else if id.starts_with("TEMP-") {
        format!("https://security-tracker.debian.org/tracker/{id}")
    } else {
        format!("https://osv.dev/vulnerability/{id}")
    })
}

/// A page for each ID of a finding. The database keeps no `references`
/// of the records, so these are the IDs' canonical pages.
fn reference_urls(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    for id in ids {
        out.insert(if id.starts_with("CVE-") {
            format!("https://nvd.nist.gov/vuln/detail/{id}")
        } else if id.starts_with("GHSA-") {
            format!("https://github.com/advisories/{id}")
        } else {
            format!("https://osv.dev/vulnerability/{id}")
        });
    }
    out.into_iter().collect()
}

/// How well founded a severity is: lower is better.
fn severity_rank(s: Option<&Severity>) -> u8 {
    match s {
        Some(s) if s.score.is_some() && s.source == "CVSS_V3" => 0,
        Some(s) if s.score.is_some() => 1,
        Some(s) if s.rating != Rating::Unknown => 2,
        Some(_) => 3,
        None => 4,
    }
}

/// Merges `b` into `a` (same ID, package instance).
fn merge(a: &mut Finding, b: Finding) {
    // Trivy's pick for the fixed version: the greater string.
    if b.fixed_version > a.fixed_version {
        a.fixed_version = b.fixed_version.clone();
        a.status = b.status;
        a.fix = b.fix.clone();
    } else if a.fix.is_none() {
        a.fix = b.fix.clone();
    }
    let rank = |f: &Finding| {
        (
            severity_rank(f.severity.as_ref()),
            !f.advisory_ids[0].starts_with("GHSA-"),
        )
    };
    if rank(&b) < rank(a) {
        a.severity = b.severity.clone();
        a.severity_from = b.severity_from.clone();
        a.rating = b.rating;
        if b.title.is_some() {
            a.title = b.title.clone();
        }
        if b.description.is_some() {
            a.description = b.description.clone();
        }
    }
    if a.title.is_none() {
        a.title = b.title.clone();
    }
    if a.description.is_none() {
        a.description = b.description.clone();
    }
    a.published = match (a.published.take(), b.published) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    if b.modified > a.modified {
        a.modified = b.modified.clone();
    }
    let mut ids: BTreeSet<String> = a.advisory_ids.drain(..).collect();
    ids.extend(b.advisory_ids);
    a.advisory_ids = ids.into_iter().collect();
    let mut aliases: BTreeSet<String> = a.aliases.drain(..).collect();
    aliases.extend(b.aliases);
    aliases.insert(b.id);
    aliases.remove(&a.id);
    a.aliases = aliases.into_iter().collect();
}

type InstanceKey = (String, String, String, Option<String>);

fn instance(f: &Finding) -> InstanceKey {
    (
        f.package.name.clone(),
        f.package.version.clone(),
        f.package.kind.as_str().to_string(),
        f.package.location.clone(),
    )
}

/// One finding per (ID, package, version, location); then records without a
/// CVE that alias each other folded into one.
fn dedupe(found: Vec<Finding>) -> Vec<Finding> {
    let mut by_key: BTreeMap<(InstanceKey, String), Finding> = BTreeMap::new();
    for f in found {
        let key = (instance(&f), f.id.clone());
        match by_key.get_mut(&key) {
            Some(a) => merge(a, f),
            None => {
                by_key.insert(key, f);
            }
        }
    }
    // Group per package instance, then fold alias-linked non-CVE findings.
    let mut per_instance: BTreeMap<InstanceKey, Vec<Finding>> = BTreeMap::new();
    for ((inst, _), f) in by_key {
        per_instance.entry(inst).or_default().push(f);
    }
    let mut out = Vec::new();
    for (_, mut list) in per_instance {
        let mut i = 0;
        while i < list.len() {
            let mut j = i + 1;
            while j < list.len() {
                let linked = !list[i].id.starts_with("CVE-")
                    && !list[j].id.starts_with("CVE-")
                    && (list[i].aliases.contains(&list[j].id) || list[j].aliases.contains(&list[i].id));
                if linked {
                    let b = list.remove(j);
                    let keep_b = b.id.starts_with("GHSA-") && !list[i].id.starts_with("GHSA-");
                    if keep_b {
                        let a = std::mem::replace(&mut list[i], b);
                        merge(&mut list[i], a);
                    } else {
                        merge(&mut list[i], b);
                    }
                    j = i + 1;
                } else {
                    j += 1;
                }
            }
            i += 1;
        }
        out.extend(list);
    }
    for f in &mut out {
        let ids = std::iter::once(f.id.clone()).chain(f.aliases.iter().cloned());
        f.references = reference_urls(ids);
        f.primary_url = primary_url(&f.id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::cve_of_id;

    #[test]
    fn distribution_cve_records() {
        assert_eq!(cve_of_id("DEBIAN-CVE-2024-1234").as_deref(), Some("CVE-2024-1234"));
        assert_eq!(cve_of_id("ALPINE-CVE-2021-36159").as_deref(), Some("CVE-2021-36159"));
        assert_eq!(cve_of_id("GHSA-xxxx-CVE-2024-1"), None);
        assert_eq!(cve_of_id("DSA-5678-1"), None);
        assert_eq!(cve_of_id("DEBIAN-CVE-2024-12a"), None);
    }
}
