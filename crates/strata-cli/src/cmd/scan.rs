//! `strata scan image|sbom`: Trivy's `image` and `sbom` commands on the
//! offline OSV database (strata-scan does the matching and the rendering).
//!
//! Exit codes, as Trivy's: `--exit-code N` (default 0) is returned when a
//! finding remains after every filter (`--severity`, `--ignore-unfixed`,
//! the ignore file, `--pkg-types`); 0 otherwise; 1 on an error (a missing or
//! empty database, an unreadable image or SBOM, a bad flag).
//!
//! `scan sbom FILE` reads the documents `strata sbom` writes back into an
//! [`Sbom`] ([`parse_sbom`]): CycloneDX JSON and SPDX JSON (strata's
//! `strata:` properties and `sourceInfo` restore each package's layer,
//! history step, locations and source package; documents of other tools
//! give the purl's package) and strata's own JSON.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;
use strata_sbom::{Distro, ImageInfo, LayerInfo, Package, PackageType, Sbom, SourcePackage};
use strata_scan::{Db, Filter, IgnoreList, Report, ScanOptions, parse_severities};

/// Trivy's flags shared by `scan image` and `scan sbom`.
#[derive(Args)]
pub struct TrivyFlags {
    /// Severities of vulnerabilities to be displayed (comma separated: UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL)
    #[arg(short, long, value_name = "string")]
    severity: Option<String>,
    /// Exit code when vulnerabilities were found (after every filter)
    #[arg(long = "exit-code", value_name = "int", default_value_t = 0)]
    exit_code: u8,
    /// Display only fixed vulnerabilities
    #[arg(long = "ignore-unfixed")]
    ignore_unfixed: bool,
    /// Format: table, json, sarif, cyclonedx
    #[arg(short, long, value_name = "string", default_value = "table")]
    format: String,
    /// Vulnerability IDs to ignore, one per line, `exp:YYYY-MM-DD` optional (default: ./.trivyignore when present)
    #[arg(long, value_name = "string")]
    ignorefile: Option<PathBuf>,
    /// Output file name
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Package types to scan (comma separated: os,library)
    #[arg(long = "pkg-types", value_name = "strings", default_value = "os,library")]
    pkg_types: String,
    /// Suppress warnings
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
#[command(override_usage = "strata scan image [OPTIONS] IMAGE")]
pub struct ImageArgs {
    #[command(flatten)]
    flags: TrivyFlags,
    /// Platform of a registry image (os/arch[/variant])
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Image from the store (name or ID) or a registry reference (read remotely, nothing stored)
    image: String,
}

#[derive(Args)]
#[command(override_usage = "strata scan sbom [OPTIONS] FILE")]
pub struct SbomArgs {
    #[command(flatten)]
    flags: TrivyFlags,
    /// An SBOM: CycloneDX JSON, SPDX JSON or strata's JSON (as `strata sbom` writes them)
    file: PathBuf,
}

/// Which package kinds `--pkg-types` keeps.
#[derive(Clone, Copy)]
pub(crate) struct PkgTypes {
    pub os: bool,
    pub library: bool,
}

impl PkgTypes {
    fn parse(list: &str) -> Result<PkgTypes> {
        let mut t = PkgTypes {
            os: false,
            library: false,
        };
        for w in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "os" => t.os = true,
                "library" => t.library = true,
                other => bail!("unknown package type {other:?} in --pkg-types: use os and/or library"),
            }
        }
        if !t.os && !t.library {
            bail!("--pkg-types names no package type: use os and/or library");
        }
        Ok(t)
    }

    fn keep(&self, p: &Package) -> bool {
        if p.kind.is_os() { self.os } else { self.library }
    }
}

impl TrivyFlags {
    fn check_format(&self) -> Result<()> {
        match self.format.as_str() {
            "table" | "json" | "sarif" | "cyclonedx" => Ok(()),
            other => bail!("unknown format {other:?}: use table, json, sarif or cyclonedx"),
        }
    }

    fn filter(&self) -> Result<Filter> {
        let severities = self.severity.as_deref().map(parse_severities).transpose()?;
        let path = self.ignorefile.clone().unwrap_or_else(|| PathBuf::from(".trivyignore"));
        if self.ignorefile.is_some() && !path.exists() && !self.quiet {
            eprintln!("warning: ignore file {} not found", path.display());
        }
        let ignore = IgnoreList::load(&path, now())?;
        Ok(Filter {
            severities,
            ignore_unfixed: self.ignore_unfixed,
            ignore,
            ..Filter::default()
        })
    }

    /// Filters, renders, writes; the exit code.
    fn finish(&self, mut report: Report, filter: &Filter) -> Result<ExitCode> {
        report.apply(filter);
        if !self.quiet {
            print_notes(&report);
        }
        let text = match self.format.as_str() {
            "json" => strata_scan::trivy_json(&report),
            "sarif" => strata_scan::sarif(&report),
            "cyclonedx" => strata_scan::cyclonedx(&report),
            _ => strata_scan::trivy_table(&report),
        };
        emit(self.output.as_deref(), &text)?;
        Ok(if self.exit_code != 0 && report.has_findings_at(&[]) {
            ExitCode::from(self.exit_code)
        } else {
            ExitCode::SUCCESS
        })
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The notes of a scan (what could not be matched), to stderr.
pub(crate) fn print_notes(report: &Report) {
    for n in &report.notes {
        eprintln!("warning: {n}");
    }
}

/// The report to `-o FILE` (written whole, then renamed) or stdout.
pub(crate) fn emit(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(path) => super::write_output(Some(path), |w| Ok(w.write_all(text.as_bytes())?)),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
            Ok(())
        }
    }
}

/// The store's vulnerability database, refusing a missing or empty one and
/// warning when it is stale.
pub(crate) fn open_db(root: &Path, quiet: bool) -> Result<Db> {
    const HOW: &str =
        "import OSV records with `strata scan db import PATH...` or download them with `strata scan db update`";
    let path = strata_vulndb::db_path(root);
    if !path.exists() {
        bail!("no vulnerability database at {}: {HOW}", path.display());
    }
    let db = Db::open(root)?;
    let st = db.status()?;
    if st.sources.is_empty() || st.records == 0 {
        bail!("the vulnerability database at {} is empty: {HOW}", path.display());
    }
    if !quiet && let Some(w) = super::scan_db::stale_warning(&st) {
        eprintln!("{w}");
    }
    Ok(db)
}

/// Scans IMAGE (store or registry): its SBOM, the base image split, the
/// packages `types` keeps.
pub(crate) fn scan_image(
    root: &Path,
    db: &Db,
    image: &str,
    platform: Option<&str>,
    types: Option<PkgTypes>,
) -> Result<Report> {
    // The SBOM a build attached (`build --sbom`), else the image's catalogue.
    let img = match super::attestations::attached_image_sbom(root, image, platform) {
        Some(img) => img,
        None => super::sbom::image_sbom(root, image, platform)?,
    };
    let mut sbom = img.sbom;
    if let Some(t) = types {
        sbom.packages.retain(|p| t.keep(p));
    }
    let opts = ScanOptions {
        base_layers: img.base.as_ref().map(|b| b.layers),
        base_image: img.base.map(|b| b.name),
        blob_digests: local_blob_digests(root, image, &img.id, &sbom).unwrap_or_default(),
    };
    Ok(strata_scan::scan(db, &sbom, &opts)?)
}

/// Each layer's compressed blob digest (Trivy's `Layer.Digest`) when the
/// scanned image is the store's: from the manifest its name resolved to.
/// `None` for a registry image (the SBOM's diff IDs are reported alone).
fn local_blob_digests(root: &Path, image: &str, id: &str, sbom: &Sbom) -> Option<Vec<Option<String>>> {
    let store = super::open_store(root).ok()?;
    let r = strata_image::resolve(&store, image).ok()?;
    if r.image.id.to_string() != id {
        return None;
    }
    let bytes = store
        .read_blob(&r.manifest, strata_oci::media::MAX_DOCUMENT_SIZE)
        .ok()?;
    let strata_oci::Document::Manifest(m) = strata_oci::Document::parse(&bytes, None).ok()? else {
        return None;
    };
    if m.layers.len() != sbom.layers.len() {
        return None;
    }
    Some(m.layers.iter().map(|l| Some(l.digest.to_string())).collect())
}

pub fn image(root: &Path, a: ImageArgs) -> Result<ExitCode> {
    a.flags.check_format()?;
    let types = PkgTypes::parse(&a.flags.pkg_types)?;
    let filter = a.flags.filter()?;
    let db = open_db(root, a.flags.quiet)?;
    let report = scan_image(root, &db, &a.image, a.platform.as_deref(), Some(types))?;
    a.flags.finish(report, &filter)
}

pub fn sbom(root: &Path, a: SbomArgs) -> Result<ExitCode> {
    a.flags.check_format()?;
    let types = PkgTypes::parse(&a.flags.pkg_types)?;
    let filter = a.flags.filter()?;
    let text = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let mut sbom = parse_sbom(&text).with_context(|| format!("reading the SBOM {}", a.file.display()))?;
    sbom.packages.retain(|p| types.keep(p));
    let db = open_db(root, a.flags.quiet)?;
    let report = strata_scan::scan(&db, &sbom, &ScanOptions::default())?;
    a.flags.finish(report, &filter)
}

// ---------------------------------------------------------------------------
// Reading SBOM documents back.

/// A purl's parts, percent-decoded.
#[derive(Debug, PartialEq)]
struct Purl {
    ty: String,
    namespace: Vec<String>,
    name: String,
    version: Option<String>,
    qualifiers: BTreeMap<String, String>,
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `pkg:TYPE/NS…/NAME@VERSION?K=V&…#SUBPATH`.
fn parse_purl(s: &str) -> Option<Purl> {
    let rest = s.strip_prefix("pkg:")?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.trim_start_matches('/');
    let (ty, path) = path.split_once('/')?;
    let (path, version) = match path.rsplit_once('@') {
        Some((p, v)) if !v.contains('/') => (p, Some(pct_decode(v))),
        _ => (path, None),
    };
    let mut segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(pct_decode).collect();
    let name = segs.pop()?;
    let qualifiers = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_ascii_lowercase(), pct_decode(v)))
        .collect();
    Some(Purl {
        ty: ty.to_ascii_lowercase(),
        namespace: segs,
        name,
        version,
        qualifiers,
    })
}

fn kind_of_purl(ty: &str) -> Option<PackageType> {
    Some(match ty {
        "deb" => PackageType::Deb,
        "apk" => PackageType::Apk,
        "rpm" => PackageType::Rpm,
        "pypi" => PackageType::Python,
        "npm" => PackageType::Npm,
        "cargo" => PackageType::Cargo,
        "golang" => PackageType::GoModule,
        "maven" => PackageType::JavaArchive,
        "gem" => PackageType::Gem,
        _ => return None,
    })
}

fn kind_of_name(s: &str) -> Option<PackageType> {
    Some(match s {
        "deb" => PackageType::Deb,
        "apk" => PackageType::Apk,
        "rpm" => PackageType::Rpm,
        "python" => PackageType::Python,
        "npm" => PackageType::Npm,
        "cargo" => PackageType::Cargo,
        "go-module" => PackageType::GoModule,
        "java-archive" => PackageType::JavaArchive,
        "gem" => PackageType::Gem,
        _ => return None,
    })
}

/// `debian-12` → Debian 12; `debian-trixie` → its codename; `alpine-3.19.1`.
fn distro_of_qualifier(q: &str) -> Distro {
    let (id, rel) = q.split_once('-').unwrap_or((q, ""));
    let numeric = rel.starts_with(|c: char| c.is_ascii_digit());
    Distro {
        id: id.to_string(),
        version_id: (numeric && !rel.is_empty()).then(|| rel.to_string()),
        version_codename: (!numeric && !rel.is_empty()).then(|| rel.to_string()),
        ..Distro::default()
    }
}

/// A package from its purl (and the document's name and version when given).
fn package_of_purl(purl: &str, name: Option<&str>, version: Option<&str>) -> Option<Package> {
    let p = parse_purl(purl)?;
    let kind = kind_of_purl(&p.ty)?;
    let mut metadata = BTreeMap::new();
    let purl_name = match kind {
        PackageType::Npm if !p.namespace.is_empty() => format!("{}/{}", p.namespace.join("/"), p.name),
        PackageType::GoModule if !p.namespace.is_empty() => format!("{}/{}", p.namespace.join("/"), p.name),
        PackageType::JavaArchive => {
            if !p.namespace.is_empty() {
                metadata.insert("groupId".to_string(), p.namespace.join("/"));
            }
            p.name.clone()
        }
        _ => p.name.clone(),
    };
    let mut version = version
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or(p.version.clone())
        .unwrap_or_default();
    if kind == PackageType::Rpm
        && let Some(e) = p.qualifiers.get("epoch")
    {
        metadata.insert("epoch".to_string(), e.clone());
        if !version.contains(':') {
            version = format!("{e}:{version}");
        }
    }
    // Distribution packages: the upstream qualifier names the source package.
    let source = match (kind, p.qualifiers.get("upstream")) {
        (PackageType::Deb | PackageType::Apk, Some(u)) => Some(match u.split_once('@') {
            Some((n, v)) => SourcePackage {
                name: n.to_string(),
                version: v.to_string(),
            },
            None => SourcePackage {
                name: u.clone(),
                version: version.clone(),
            },
        }),
        (PackageType::Rpm, Some(u)) => u.strip_suffix(".src.rpm").and_then(|s| {
            // NAME-VERSION-RELEASE
            let (nv, rel) = s.rsplit_once('-')?;
            let (n, v) = nv.rsplit_once('-')?;
            Some(SourcePackage {
                name: n.to_string(),
                version: format!("{v}-{rel}"),
            })
        }),
        (PackageType::Deb | PackageType::Apk, None) => Some(SourcePackage {
            name: purl_name.clone(),
            version: version.clone(),
        }),
        _ => None,
    };
    Some(Package {
        name: name
            .filter(|n| !n.is_empty() && kind != PackageType::Npm)
            .map(str::to_string)
            .unwrap_or(purl_name),
        version,
        kind,
        purl: purl.to_string(),
        licenses: Vec::new(),
        locations: Vec::new(),
        layer: 0,
        layer_digest: None,
        created_by: None,
        arch: p.qualifiers.get("arch").cloned(),
        source,
        metadata,
    })
}

fn parse_time(s: Option<&str>) -> i64 {
    s.and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_second())
        .unwrap_or(0)
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The layers the packages name (bottom first; unknown ones empty).
fn layers_of(packages: &[Package]) -> Vec<LayerInfo> {
    let n = packages.iter().map(|p| p.layer + 1).max().unwrap_or(0);
    let mut layers: Vec<LayerInfo> = (0..n)
        .map(|index| LayerInfo {
            index,
            digest: None,
            created_by: None,
            entries: 0,
            size: 0,
        })
        .collect();
    for p in packages {
        let l = &mut layers[p.layer];
        if l.digest.is_none() {
            l.digest = p.layer_digest.clone();
        }
        if l.created_by.is_none() {
            l.created_by = p.created_by.clone();
        }
    }
    layers
}

/// The distro from the OS packages' purl `distro` qualifiers.
fn distro_of_packages(packages: &[Package]) -> Option<Distro> {
    packages.iter().filter(|p| p.kind.is_os()).find_map(|p| {
        let q = parse_purl(&p.purl)?.qualifiers.get("distro")?.clone();
        let mut d = distro_of_qualifier(&q);
        if d.id.is_empty() {
            d.id = parse_purl(&p.purl)?.namespace.first()?.clone();
        }
        Some(d)
    })
}

fn finish_sbom(image: ImageInfo, distro: Option<Distro>, mut packages: Vec<Package>, created: i64) -> Sbom {
    packages.sort_by(|a, b| (&a.name, &a.version, a.kind, a.layer).cmp(&(&b.name, &b.version, b.kind, b.layer)));
    let distro = distro.or_else(|| distro_of_packages(&packages));
    Sbom {
        image,
        distro,
        layers: layers_of(&packages),
        packages,
        warnings: Vec::new(),
        created,
        reproducible: true,
    }
}

fn parse_cyclonedx(doc: &Value) -> Result<Sbom> {
    let meta = doc.get("metadata").cloned().unwrap_or(Value::Null);
    let root = meta.get("component").cloned().unwrap_or(Value::Null);
    let image = ImageInfo {
        name: str_of(&root, "name").unwrap_or_default().to_string(),
        id: str_of(&root, "version")
            .filter(|v| v.starts_with("sha256:"))
            .map(str::to_string),
        ..ImageInfo::default()
    };
    let mut distro = None;
    let mut packages = Vec::new();
    let empty = Vec::new();
    let components = doc.get("components").and_then(Value::as_array).unwrap_or(&empty);
    for c in components {
        if str_of(c, "type") == Some("operating-system") {
            distro = Some(Distro {
                id: str_of(c, "name").unwrap_or_default().to_ascii_lowercase(),
                version_id: str_of(c, "version").map(str::to_string),
                pretty_name: str_of(c, "description").map(str::to_string),
                ..Distro::default()
            });
            continue;
        }
        let Some(purl) = str_of(c, "purl") else { continue };
        let Some(mut p) = package_of_purl(purl, str_of(c, "name"), str_of(c, "version")) else {
            continue;
        };
        let mut source = (None, None);
        let mut locations: BTreeMap<usize, String> = BTreeMap::new();
        for prop in c.get("properties").and_then(Value::as_array).unwrap_or(&empty) {
            let (Some(n), Some(v)) = (str_of(prop, "name"), str_of(prop, "value")) else {
                continue;
            };
            match n {
                "strata:package:type" => {
                    if let Some(k) = kind_of_name(v) {
                        p.kind = k;
                    }
                }
                "strata:layer:index" => p.layer = v.parse().unwrap_or(0),
                "strata:layer:digest" => p.layer_digest = Some(v.to_string()),
                "strata:layer:createdBy" => p.created_by = Some(v.to_string()),
                "strata:source:name" => source.0 = Some(v.to_string()),
                "strata:source:version" => source.1 = Some(v.to_string()),
                "strata:package:arch" => p.arch = Some(v.to_string()),
                _ => {
                    if let Some(k) = n.strip_prefix("strata:metadata:") {
                        p.metadata.insert(k.to_string(), v.to_string());
                    } else if let Some(i) = n
                        .strip_prefix("strata:location:")
                        .and_then(|r| r.strip_suffix(":path"))
                        .and_then(|i| i.parse().ok())
                    {
                        locations.insert(i, v.to_string());
                    }
                }
            }
        }
        if let (Some(name), Some(version)) = source {
            p.source = Some(SourcePackage { name, version });
        }
        p.locations = locations.into_values().collect();
        if p.kind == PackageType::JavaArchive
            && let Some(g) = str_of(c, "group")
        {
            p.metadata.insert("groupId".into(), g.to_string());
        }
        for l in c.get("licenses").and_then(Value::as_array).unwrap_or(&empty) {
            if let Some(e) = str_of(l, "expression") {
                p.licenses.push(e.to_string());
            } else if let Some(lic) = l.get("license")
                && let Some(s) = str_of(lic, "id").or_else(|| str_of(lic, "name"))
            {
                p.licenses.push(s.to_string());
            }
        }
        packages.push(p);
    }
    Ok(finish_sbom(
        image,
        distro,
        packages,
        parse_time(str_of(&meta, "timestamp")),
    ))
}

/// strata's SPDX `sourceInfo`: `KIND package found at LOC, LOC in layer N
/// (DIGEST), history step: STEP`.
fn apply_source_info(p: &mut Package, info: &str) {
    let Some((kind, rest)) = info.split_once(" package found at ") else {
        return;
    };
    if let Some(k) = kind_of_name(kind) {
        p.kind = k;
    }
    let Some((locs, layer)) = rest.split_once(" in layer ") else {
        return;
    };
    p.locations = locs.split(", ").filter(|l| !l.is_empty()).map(str::to_string).collect();
    let digits: String = layer.chars().take_while(char::is_ascii_digit).collect();
    p.layer = digits.parse().unwrap_or(0);
    let mut rest = &layer[digits.len()..];
    if let Some(r) = rest.strip_prefix(" (")
        && let Some((d, r)) = r.split_once(')')
    {
        p.layer_digest = Some(d.to_string());
        rest = r;
    }
    if let Some(step) = rest.strip_prefix(", history step: ") {
        p.created_by = Some(step.to_string());
    }
}

fn parse_spdx(doc: &Value) -> Result<Sbom> {
    let empty = Vec::new();
    let described: Vec<&str> = doc
        .get("relationships")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
        .iter()
        .filter(|r| str_of(r, "relationshipType") == Some("DESCRIBES"))
        .filter_map(|r| str_of(r, "relatedSpdxElement"))
        .collect();
    let mut image = ImageInfo {
        name: str_of(doc, "name").unwrap_or_default().to_string(),
        ..ImageInfo::default()
    };
    let mut packages = Vec::new();
    for pkg in doc.get("packages").and_then(Value::as_array).unwrap_or(&empty) {
        let id = str_of(pkg, "SPDXID").unwrap_or_default();
        if described.contains(&id) || str_of(pkg, "primaryPackagePurpose") == Some("CONTAINER") {
            if let Some(v) = str_of(pkg, "versionInfo").filter(|v| v.starts_with("sha256:")) {
                image.id = Some(v.to_string());
            }
            if let Some(n) = str_of(pkg, "name") {
                image.name = n.to_string();
            }
            continue;
        }
        let purl = pkg
            .get("externalRefs")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
            .iter()
            .find(|r| str_of(r, "referenceType") == Some("purl"))
            .and_then(|r| str_of(r, "referenceLocator"));
        let Some(purl) = purl else { continue };
        let Some(mut p) = package_of_purl(purl, str_of(pkg, "name"), str_of(pkg, "versionInfo")) else {
            continue;
        };
        if let Some(info) = str_of(pkg, "sourceInfo") {
            apply_source_info(&mut p, info);
        }
        if let Some(c) = str_of(pkg, "comment").and_then(|c| c.strip_prefix("source package: "))
            && let Some((n, v)) = c.split_once(' ')
        {
            p.source = Some(SourcePackage {
                name: n.to_string(),
                version: v.to_string(),
            });
        }
        if let Some(l) = str_of(pkg, "licenseDeclared").filter(|l| *l != "NOASSERTION" && *l != "NONE") {
            p.licenses.push(l.to_string());
        }
        packages.push(p);
    }
    let created = parse_time(doc.pointer("/creationInfo/created").and_then(Value::as_str));
    Ok(finish_sbom(image, None, packages, created))
}

fn parse_strata_json(doc: &Value) -> Result<Sbom> {
    let image: ImageInfo = {
        let i = doc.get("image").cloned().unwrap_or(Value::Null);
        ImageInfo {
            name: str_of(&i, "name").unwrap_or_default().to_string(),
            id: str_of(&i, "id").map(str::to_string),
            manifest_digest: str_of(&i, "manifestDigest").map(str::to_string),
            platform: str_of(&i, "platform").map(str::to_string),
        }
    };
    let distro = doc.get("distro").filter(|d| d.is_object()).map(|d| Distro {
        id: str_of(d, "id").unwrap_or_default().to_string(),
        version_id: str_of(d, "versionId").map(str::to_string),
        version_codename: str_of(d, "versionCodename").map(str::to_string),
        pretty_name: str_of(d, "prettyName").map(str::to_string),
        id_like: d
            .get("idLike")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
    });
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let empty = Vec::new();
    let mut packages = Vec::new();
    for p in doc.get("packages").and_then(Value::as_array).unwrap_or(&empty) {
        let Some(kind) = str_of(p, "type").and_then(kind_of_name) else {
            continue;
        };
        packages.push(Package {
            name: str_of(p, "name").unwrap_or_default().to_string(),
            version: str_of(p, "version").unwrap_or_default().to_string(),
            kind,
            purl: str_of(p, "purl").unwrap_or_default().to_string(),
            licenses: strings(p.get("licenses")),
            locations: strings(p.get("locations")),
            layer: p.get("layer").and_then(Value::as_u64).unwrap_or(0) as usize,
            layer_digest: str_of(p, "layerDigest").map(str::to_string),
            created_by: str_of(p, "createdBy").map(str::to_string),
            arch: str_of(p, "arch").map(str::to_string),
            source: p.get("source").filter(|s| s.is_object()).map(|s| SourcePackage {
                name: str_of(s, "name").unwrap_or_default().to_string(),
                version: str_of(s, "version").unwrap_or_default().to_string(),
            }),
            metadata: p
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let mut sbom = finish_sbom(image, distro, packages, parse_time(str_of(doc, "created")));
    // The document lists its layers: keep them (sizes, steps of empty layers).
    if let Some(ls) = doc.get("layers").and_then(Value::as_array) {
        let layers: Vec<LayerInfo> = ls
            .iter()
            .enumerate()
            .map(|(i, l)| LayerInfo {
                index: l.get("index").and_then(Value::as_u64).map_or(i, |v| v as usize),
                digest: str_of(l, "digest").map(str::to_string),
                created_by: str_of(l, "createdBy").map(str::to_string),
                entries: l.get("entries").and_then(Value::as_u64).unwrap_or(0) as usize,
                size: l.get("size").and_then(Value::as_u64).unwrap_or(0),
            })
            .collect();
        if layers.len() >= sbom.layers.len() {
            sbom.layers = layers;
        }
    }
    Ok(sbom)
}

/// Reads an SBOM document: CycloneDX JSON, SPDX JSON or strata's JSON.
pub(crate) fn parse_sbom(bytes: &[u8]) -> Result<Sbom> {
    let doc: Value = serde_json::from_slice(bytes).context("not a JSON document")?;
    if str_of(&doc, "bomFormat") == Some("CycloneDX") {
        parse_cyclonedx(&doc)
    } else if doc.get("spdxVersion").is_some() {
        parse_spdx(&doc)
    } else if doc.get("packages").is_some_and(Value::is_array) && doc.get("image").is_some_and(Value::is_object) {
        parse_strata_json(&doc)
    } else {
        bail!(
            "not an SBOM this reads: expected CycloneDX JSON, SPDX JSON or strata's JSON (`strata sbom --format json`)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(kind: PackageType, name: &str, version: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            kind,
            purl: String::new(),
            licenses: vec!["MIT".into()],
            locations: vec![format!("/x/{name}")],
            layer: 2,
            layer_digest: Some("sha256:aa".into()),
            created_by: Some("COPY x /x # buildkit".into()),
            arch: None,
            source: None,
            metadata: BTreeMap::new(),
        }
    }

    /// A small SBOM as the cataloguer would give it (purls made by strata-sbom's rules).
    fn sample() -> Sbom {
        let mut libc = pkg(PackageType::Deb, "libc6", "2.36-9+deb12u4");
        libc.purl = "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc".into();
        libc.arch = Some("amd64".into());
        libc.source = Some(SourcePackage {
            name: "glibc".into(),
            version: "2.36-9+deb12u4".into(),
        });
        libc.layer = 1;
        libc.layer_digest = Some("sha256:bb".into());
        let mut jinja = pkg(PackageType::Python, "Jinja2", "2.10");
        jinja.purl = "pkg:pypi/jinja2@2.10".into();
        let mut scoped = pkg(PackageType::Npm, "@xmldom/xmldom", "0.8.3");
        scoped.purl = "pkg:npm/%40xmldom/xmldom@0.8.3".into();
        let mut jar = pkg(PackageType::JavaArchive, "slf4j-api", "2.0.9");
        jar.purl = "pkg:maven/org.slf4j/slf4j-api@2.0.9".into();
        jar.metadata.insert("groupId".into(), "org.slf4j".into());
        let mut go = pkg(PackageType::GoModule, "github.com/BurntSushi/toml", "v1.3.2");
        go.purl = "pkg:golang/github.com/BurntSushi/toml@v1.3.2".into();
        let packages = vec![libc, jinja, scoped, jar, go];
        finish_sbom(
            ImageInfo {
                name: "app:1".into(),
                id: Some("sha256:cc".into()),
                ..ImageInfo::default()
            },
            Some(Distro {
                id: "debian".into(),
                version_id: Some("12".into()),
                ..Distro::default()
            }),
            packages,
            1_700_000_000,
        )
    }

    /// Name, version, kind, layer, step, first location, source.
    type Key = (
        String,
        String,
        PackageType,
        usize,
        Option<String>,
        Option<String>,
        Option<(String, String)>,
    );

    fn key(s: &Sbom) -> Vec<Key> {
        s.packages
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.version.clone(),
                    p.kind,
                    p.layer,
                    p.created_by.clone(),
                    p.locations.first().cloned(),
                    p.source.as_ref().map(|s| (s.name.clone(), s.version.clone())),
                )
            })
            .collect()
    }

    #[test]
    fn purls_parse() {
        let p = parse_purl("pkg:npm/%40scope/name@1.0.0?x=a%2Bb#sub").unwrap();
        assert_eq!(p.ty, "npm");
        assert_eq!(p.namespace, vec!["@scope"]);
        assert_eq!(p.name, "name");
        assert_eq!(p.version.as_deref(), Some("1.0.0"));
        assert_eq!(p.qualifiers["x"], "a+b");
        let d = package_of_purl(
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?distro=debian-12&upstream=glibc",
            None,
            None,
        )
        .unwrap();
        assert_eq!(d.version, "2.36-9+deb12u4");
        assert_eq!(d.source.unwrap().name, "glibc");
        let r = package_of_purl(
            "pkg:rpm/fedora/bash@5.2.15-3.fc38?arch=x86_64&epoch=1&upstream=bash-5.2.15-3.fc38.src.rpm",
            None,
            None,
        )
        .unwrap();
        assert_eq!(r.version, "1:5.2.15-3.fc38");
        assert_eq!(r.source.unwrap().version, "5.2.15-3.fc38");
        assert!(parse_purl("npm/x@1").is_none());
        assert_eq!(distro_of_qualifier("debian-12").version_id.as_deref(), Some("12"));
        assert_eq!(
            distro_of_qualifier("debian-trixie").version_codename.as_deref(),
            Some("trixie")
        );
    }

    #[test]
    fn the_three_documents_read_back() {
        let s = sample();
        for (what, text) in [
            ("cyclonedx", s.to_cyclonedx_json()),
            ("spdx", s.to_spdx_json()),
            ("json", s.to_json()),
        ] {
            let back = parse_sbom(text.as_bytes()).unwrap_or_else(|e| panic!("{what}: {e:#}"));
            assert_eq!(key(&back), key(&s), "{what}");
            assert_eq!(
                back.distro.as_ref().map(|d| d.qualifier()).as_deref(),
                Some("debian-12"),
                "{what}"
            );
            assert_eq!(back.image.name, "app:1", "{what}");
            assert_eq!(back.created, 1_700_000_000, "{what}");
            let jar = back.packages.iter().find(|p| p.name == "slf4j-api").unwrap();
            assert_eq!(
                jar.metadata.get("groupId").map(String::as_str),
                Some("org.slf4j"),
                "{what}"
            );
            assert_eq!(back.layers.len(), 3, "{what}");
            assert_eq!(back.layers[1].digest.as_deref(), Some("sha256:bb"), "{what}");
        }
        assert!(parse_sbom(b"{\"x\":1}").is_err());
    }

    /// Documents of other tools: the purls give the packages, the OS
    /// component or the purls' `distro` qualifier the distro.
    #[test]
    fn other_tools_documents_read_by_purl() {
        let cdx = br#"{"bomFormat":"CycloneDX","specVersion":"1.5",
            "metadata":{"timestamp":"2024-01-01T00:00:00Z","component":{"type":"container","name":"debian:12"}},
            "components":[
              {"type":"library","name":"libc6","version":"2.36-9+deb12u4","purl":"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&upstream=glibc&distro=debian-12",
               "properties":[{"name":"aquasecurity:trivy:LayerDiffID","value":"sha256:x"}]},
              {"type":"library","group":"@babel","name":"core","version":"7.0.0","purl":"pkg:npm/%40babel/core@7.0.0"},
              {"type":"library","name":"no-purl","version":"1"},
              {"type":"operating-system","name":"debian","version":"12"}]}"#;
        let s = parse_sbom(cdx).unwrap();
        assert_eq!(s.image.name, "debian:12");
        assert_eq!(s.created, 1_704_067_200);
        assert_eq!(s.distro.as_ref().unwrap().qualifier(), "debian-12");
        let names: Vec<(&str, PackageType)> = s.packages.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        assert_eq!(
            names,
            vec![("@babel/core", PackageType::Npm), ("libc6", PackageType::Deb)]
        );
        let libc = &s.packages[1];
        assert_eq!(libc.source.as_ref().unwrap().name, "glibc");
        assert_eq!(libc.source.as_ref().unwrap().version, "2.36-9+deb12u4");

        let spdx = br#"{"spdxVersion":"SPDX-2.3","name":"alpine:3.19",
            "creationInfo":{"created":"2024-01-01T00:00:00Z"},
            "packages":[
              {"SPDXID":"SPDXRef-root","name":"alpine:3.19","versionInfo":"sha256:abc"},
              {"SPDXID":"SPDXRef-p1","name":"musl","versionInfo":"1.2.4-r2",
               "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1"}]},
              {"SPDXID":"SPDXRef-p2","name":"requests","versionInfo":"2.19.0",
               "externalRefs":[{"referenceCategory":"PACKAGE-MANAGER","referenceType":"purl","referenceLocator":"pkg:pypi/requests@2.19.0"}]}],
            "relationships":[{"spdxElementId":"SPDXRef-DOCUMENT","relationshipType":"DESCRIBES","relatedSpdxElement":"SPDXRef-root"}]}"#;
        let s = parse_sbom(spdx).unwrap();
        assert_eq!(s.image.name, "alpine:3.19");
        assert_eq!(s.image.id.as_deref(), Some("sha256:abc"));
        let d = s.distro.unwrap();
        assert_eq!((d.id.as_str(), d.version_id.as_deref()), ("alpine", Some("3.19.1")));
        let names: Vec<(&str, PackageType)> = s.packages.iter().map(|p| (p.name.as_str(), p.kind)).collect();
        assert_eq!(
            names,
            vec![("musl", PackageType::Apk), ("requests", PackageType::Python)]
        );
        assert_eq!(s.layers.len(), 1);
        assert!(parse_sbom(b"not json").is_err());
    }
}
