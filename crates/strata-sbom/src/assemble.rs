//! From scanned layers to an SBOM: the merged view decides which files
//! survive, packages are attributed to layers, purls and licenses filled in.

use std::collections::{BTreeMap, HashSet};

use crate::index::{MergedIndex, ResolveError};
use crate::model::{Distro, LayerInfo, Package, PackageType, Sbom, Warning};
use crate::scan::{Extract, LayerScan};
use crate::{Options, purl};

pub(crate) fn assemble(scans: Vec<LayerScan>, opts: &Options) -> Sbom {
    let merged = MergedIndex::build(scans.iter().map(|s| &s.index));
    let mut warnings: Vec<Warning> = scans.iter().flat_map(|s| s.warnings.iter().cloned()).collect();
    let extract = |layer: usize, path: &str| scans.get(layer).and_then(|s| s.extracts.get(path));
    let visible = |path: &str| merged.get(path).and_then(|m| extract(m.layer, path));

    // The distro, through symlinks inside the image (/etc/os-release is
    // usually one to ../usr/lib/os-release).
    let mut distro: Option<Distro> = None;
    for candidate in ["etc/os-release", "usr/lib/os-release"] {
        match merged.resolve(candidate) {
            Ok(path) => {
                if let Some(Extract::OsRelease(d)) = visible(&path) {
                    distro = Some(d.clone());
                    break;
                }
            }
            Err(ResolveError::TooManyLinks) => warnings.push(Warning {
                layer: None,
                path: Some(format!("/{candidate}")),
                message: "a symlink loop (or a chain of more than 40 links); not followed".into(),
            }),
            Err(ResolveError::NotFound) => {}
        }
    }

    let mut packages: Vec<Package> = Vec::new();
    for (path, m) in merged.iter() {
        match extract(m.layer, path) {
            Some(Extract::Packages(pkgs)) => {
                packages.extend(pkgs.iter().cloned().map(|mut p| {
                    p.layer = m.layer;
                    p
                }));
            }
            Some(Extract::Database(pkgs)) => {
                // Each record goes to the first layer from which it stays in
                // every later version of the database.
                let earlier: Vec<(usize, HashSet<Key>)> = m.history[..m.history.len() - 1]
                    .iter()
                    .map(|&l| {
                        let keys = match extract(l, path) {
                            Some(Extract::Database(old)) => old.iter().map(key).collect(),
                            _ => HashSet::new(),
                        };
                        (l, keys)
                    })
                    .collect();
                for p in pkgs {
                    let k = key(p);
                    let mut layer = m.layer;
                    for (l, keys) in earlier.iter().rev() {
                        if !keys.contains(&k) {
                            break;
                        }
                        layer = *l;
                    }
                    let mut p = p.clone();
                    p.layer = layer;
                    packages.push(p);
                }
            }
            _ => {}
        }
    }

    for p in &mut packages {
        if p.kind == PackageType::Deb && p.licenses.is_empty() {
            p.licenses = deb_licenses(&merged, &scans, &p.name);
        }
        p.purl = purl::for_package(p, distro.as_ref());
        if let Some(s) = scans.get(p.layer) {
            p.layer_digest = s.digest.clone();
            p.created_by = s.created_by.clone();
        }
    }
    let packages = dedupe(packages);

    let layers = scans
        .iter()
        .enumerate()
        .map(|(index, s)| LayerInfo {
            index,
            digest: s.digest.clone(),
            created_by: s.created_by.clone(),
            entries: s.index.entries.len(),
            size: s.index.content_size(),
        })
        .collect();
    let (created, reproducible) = match opts.created {
        Some(t) => (t, true),
        None => match std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            Some(t) => (t, true),
            None => (jiff::Timestamp::now().as_second(), false),
        },
    };
    Sbom {
        image: opts.image.clone(),
        distro,
        layers,
        packages,
        warnings,
        created,
        reproducible,
    }
}

type Key = (PackageType, String, String, Option<String>);

fn key(p: &Package) -> Key {
    (p.kind, p.name.clone(), p.version.clone(), p.arch.clone())
}

/// Licenses from `/usr/share/doc/NAME/copyright` (the doc directory is often
/// a symlink to another package's).
fn deb_licenses(merged: &MergedIndex, scans: &[LayerScan], name: &str) -> Vec<String> {
    let name = name.split(':').next().unwrap_or(name);
    let Ok(path) = merged.resolve(&format!("usr/share/doc/{name}/copyright")) else {
        return Vec::new();
    };
    match merged
        .get(&path)
        .and_then(|m| scans.get(m.layer))
        .and_then(|s| s.extracts.get(&path))
    {
        Some(Extract::Licenses(l)) => l.clone(),
        _ => Vec::new(),
    }
}

/// One entry per purl and layer (a lockfile and the installed manifest of
/// the same package, say), locations merged; sorted.
fn dedupe(packages: Vec<Package>) -> Vec<Package> {
    let mut by: BTreeMap<(String, usize), Package> = BTreeMap::new();
    for p in packages {
        match by.get_mut(&(p.purl.clone(), p.layer)) {
            Some(q) => {
                for l in p.locations {
                    if !q.locations.contains(&l) {
                        q.locations.push(l);
                    }
                }
                for l in p.licenses {
                    if !q.licenses.contains(&l) {
                        q.licenses.push(l);
                    }
                }
                for (k, v) in p.metadata {
                    q.metadata.entry(k).or_insert(v);
                }
            }
            None => {
                by.insert((p.purl.clone(), p.layer), p);
            }
        }
    }
    let mut out: Vec<Package> = by.into_values().collect();
    for p in &mut out {
        p.locations.sort();
    }
    out.sort_by(|a, b| {
        (&a.name, &a.version, a.kind, a.layer, &a.locations).cmp(&(&b.name, &b.version, b.kind, b.layer, &b.locations))
    });
    out
}
