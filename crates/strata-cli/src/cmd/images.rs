//! Image commands: import, images, tag, rmi, inspect, history, save, load, prune.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, Args, Subcommand};
use serde_json::{Value, json};
use strata_image::{ImportOptions, ImportSource, RemoveEvent};
use strata_oci::{Platform, Reference};
use strata_transfer::archive::{ArchiveFormat, ArchiveInput, ArchiveSink, ImageArchive};
use strata_transfer::store::StoreLocation;
use strata_transfer::{CopyOptions, PlatformChoice, no_progress};

use super::open_store;
use crate::format::{ellipsis, human_size, print_formatted};

use super::HELP_TEMPLATE;

#[derive(Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list", help_template = HELP_TEMPLATE)]
    Ls(ImagesArgs),
    /// Import the contents from a tarball or directory to create a filesystem image
    #[command(help_template = HELP_TEMPLATE)]
    Import(ImportArgs),
    /// Display detailed information on one or more images
    #[command(help_template = HELP_TEMPLATE)]
    Inspect(InspectArgs),
    /// Show the history of an image
    #[command(help_template = HELP_TEMPLATE)]
    History(HistoryArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove", help_template = HELP_TEMPLATE)]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    #[command(help_template = HELP_TEMPLATE)]
    Tag(TagArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    #[command(help_template = HELP_TEMPLATE)]
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    #[command(help_template = HELP_TEMPLATE)]
    Load(LoadArgs),
    /// Remove unused images
    #[command(help_template = HELP_TEMPLATE)]
    Prune(PruneArgs),
    /// Layer sizes, wasted space and dive's efficiency score (--ci checks dive's rules)
    #[command(help_template = HELP_TEMPLATE)]
    Analyze(super::analyze::AnalyzeArgs),
}

pub fn image(root: &Path, c: ImageCommand) -> Result<ExitCode> {
    match c {
        ImageCommand::Ls(a) => images(root, a),
        ImageCommand::Import(a) => import(root, a),
        // Images only (`inspect` also finds containers).
        ImageCommand::Inspect(a) => inspect(
            root,
            InspectArgs {
                kind: Some(a.kind.unwrap_or_else(|| "image".into())),
                ..a
            },
        ),
        ImageCommand::History(a) => history(root, a),
        ImageCommand::Rm(a) => rmi(root, a),
        ImageCommand::Tag(a) => tag(root, a),
        ImageCommand::Save(a) => save(root, a),
        ImageCommand::Load(a) => load(root, a),
        ImageCommand::Prune(a) => prune(root, a),
        ImageCommand::Analyze(a) => super::analyze::analyze(root, a),
    }
}

#[derive(Args)]
#[command(override_usage = "strata import [OPTIONS] file|dir|- [REPOSITORY[:TAG]]")]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long, value_name = "string")]
    message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// A tarball (plain, gzip or zstd), a directory, or - for STDIN
    source: String,
    /// Name for the new image
    reference: Option<String>,
}

pub fn import(root: &Path, a: ImportArgs) -> Result<ExitCode> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let source_date_epoch = source_date_epoch()?;
    let opts = ImportOptions {
        changes: a.change,
        message: a.message,
        reference,
        platform,
        source_date_epoch,
    };
    let mut store = open_store(root)?;
    let source = if a.source == "-" {
        ImportSource::Stream(Box::new(std::io::stdin().lock()), "-".into())
    } else {
        let p = PathBuf::from(&a.source);
        let meta = std::fs::metadata(&p).with_context(|| format!("reading {}", p.display()))?;
        if meta.is_dir() {
            ImportSource::Dir(p)
        } else {
            let f = std::fs::File::open(&p).with_context(|| format!("opening {}", p.display()))?;
            ImportSource::Stream(
                Box::new(std::io::BufReader::with_capacity(256 * 1024, f)),
                a.source.clone(),
            )
        }
    };
    let imported = strata_image::import(&mut store, source, &opts)?;
    println!("{}", imported.id);
    Ok(ExitCode::SUCCESS)
}

fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => {
            Ok(Some(s.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds")
            })?))
        }
        _ => Ok(None),
    }
}

#[derive(Args)]
#[command(override_usage = "strata images [OPTIONS] [REPOSITORY[:TAG]]")]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    all: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Filter output based on conditions provided (dangling=true|false, reference=PATTERN)
    #[arg(short, long, value_name = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// List multi-platform images as a tree of their platforms (Docker 27's layout)
    #[arg(long, conflicts_with_all = ["quiet", "format", "digests"])]
    tree: bool,
    /// Repository (and optionally tag) to list
    reference: Option<String>,
}

pub fn images(root: &Path, a: ImagesArgs) -> Result<ExitCode> {
    let store = open_store(root)?;
    let mut dangling: Option<bool> = None;
    let mut patterns: Vec<String> = a.reference.into_iter().collect();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("bad format of filter (expected name=value): {f}"))?;
        match k {
            "dangling" => {
                dangling = Some(match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid filter 'dangling={v}': expected true or false"),
                })
            }
            "reference" => patterns.push(v.to_string()),
            other => bail!("invalid filter '{other}' (supported: dangling, reference)"),
        }
    }
    for p in &patterns {
        strata_builder::glob_match(p, "").map_err(|e| anyhow::anyhow!("invalid reference filter {p:?}: {e}"))?;
    }
    let mut list = store.list_images()?;
    list.sort_by(|x, y| y.created.cmp(&x.created).then(y.added_at.cmp(&x.added_at)));
    if a.tree {
        return images_tree(&store, &list, &patterns, dangling, a.no_trunc);
    }
    let mut rows: Vec<Value> = Vec::new();
    for img in &list {
        if let Some(d) = dangling
            && d != img.is_dangling()
        {
            continue;
        }
        // A platform of a multi-platform image is listed under its name
        // (`images --tree`), not as an image of its own.
        if img.tags.is_empty() && !img.named_indexes.is_empty() {
            continue;
        }
        let id = if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        let size = human_size(img.size);
        let since = strata_image::human_since(img.created.as_deref());
        let digest_for = |repo: &str| {
            img.repo_digests
                .iter()
                .find(|(r, _)| r == repo)
                .map(|(_, d)| d.to_string())
                .unwrap_or("<none>".into())
        };
        let mut entries: Vec<(String, String, String)> = img
            .tags
            .iter()
            .map(|t| {
                (
                    strata_oci::reference::familiar_repository(&t.repo),
                    t.tag.clone(),
                    digest_for(&t.repo),
                )
            })
            .collect();
        if entries.is_empty() {
            entries.push(("<none>".into(), "<none>".into(), "<none>".into()));
        }
        for (repo, tag, digest) in entries {
            if !patterns.is_empty() {
                let named = format!("{repo}:{tag}");
                // Go's path.Match, as Docker's reference filter (patterns
                // were checked above).
                let hit = patterns.iter().any(|p| {
                    let against = if p.contains(':') { &named } else { &repo };
                    strata_builder::glob_match(p, against).unwrap_or(false)
                });
                if !hit || repo == "<none>" {
                    continue;
                }
            }
            rows.push(json!({
                "Containers": if img.containers > 0 { img.containers.to_string() } else { "N/A".into() },
                "CreatedAt": img.created.clone().unwrap_or_default(),
                "CreatedSince": since,
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": size,
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": size,
            }));
        }
    }
    if a.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in &rows {
            let id = r["ID"].as_str().unwrap_or_default().to_string();
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let fmt = match a.format.as_deref() {
        None | Some("table") => default.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let headers: BTreeMap<&str, &str> = [
        ("Containers", "CONTAINERS"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedSince", "CREATED"),
        ("Digest", "DIGEST"),
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("SharedSize", "SHARED SIZE"),
        ("Size", "SIZE"),
        ("Tag", "TAG"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
    ]
    .into_iter()
    .collect();
    print_formatted(&fmt, &headers, &rows)?;
    Ok(ExitCode::SUCCESS)
}

/// `images --tree`: each name, and beneath a multi-platform image its
/// platforms (absent ones, not pulled or built here, marked so).
fn images_tree(
    store: &strata_store::Store,
    list: &[strata_store::ImageRecord],
    patterns: &[String],
    dangling: Option<bool>,
    no_trunc: bool,
) -> Result<ExitCode> {
    let id = |d: &strata_oci::Digest| if no_trunc { d.to_string() } else { d.short().to_string() };
    // Bytes of the blobs a manifest names (config and layers), when held.
    let content = |m: &strata_oci::Digest| -> Option<u64> {
        let bytes = store.read_blob(m, strata_oci::media::MAX_DOCUMENT_SIZE).ok()?;
        match strata_oci::Document::parse(&bytes, None).ok()? {
            strata_oci::Document::Manifest(m) => Some(m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>()),
            _ => None,
        }
    };
    let mut lines: Vec<[String; 4]> = vec![["IMAGE".into(), "ID".into(), "DISK USAGE".into(), "CONTENT SIZE".into()]];
    let mut extra: Vec<String> = vec!["EXTRA".into()];
    for img in list {
        if dangling.is_some_and(|d| d != img.is_dangling()) || (img.tags.is_empty() && !img.named_indexes.is_empty()) {
            continue;
        }
        let names: Vec<(String, strata_oci::Digest)> = if img.tags.is_empty() {
            vec![("<none>:<none>".into(), img.primary_manifest().clone())]
        } else {
            img.tags
                .iter()
                .map(|t| {
                    (
                        format!("{}:{}", strata_oci::reference::familiar_repository(&t.repo), t.tag),
                        t.manifest.clone(),
                    )
                })
                .collect()
        };
        for (name, target) in names {
            if !patterns.is_empty() {
                let repo = name.rsplit_once(':').map(|(r, _)| r).unwrap_or(&name);
                let hit = patterns.iter().any(|p| {
                    let against = if p.contains(':') { name.as_str() } else { repo };
                    strata_builder::glob_match(p, against).unwrap_or(false)
                });
                if !hit {
                    continue;
                }
            }
            let mut members = store.index_members(&target)?;
            // Attestation manifests (unknown/unknown) are not platforms: Docker leaves them out.
            members.retain(|m| !(m.platform.os == "unknown" && m.platform.architecture == "unknown"));
            if members.is_empty() {
                lines.push([
                    name,
                    id(&img.id),
                    human_size(img.size),
                    content(img.primary_manifest()).map(human_size).unwrap_or_default(),
                ]);
                extra.push(if img.containers > 0 { "U".into() } else { String::new() });
                continue;
            }
            let held: Vec<strata_store::ImageRecord> = members
                .iter()
                .filter_map(|m| m.image.as_ref())
                .filter_map(|i| store.image(i).ok().flatten())
                .collect();
            let disk: u64 = held.iter().map(|i| i.size).sum();
            let total: u64 = members.iter().filter_map(|m| content(&m.manifest.digest)).sum();
            lines.push([name, id(&target), human_size(disk), human_size(total)]);
            extra.push(String::new());
            for (i, m) in members.iter().enumerate() {
                let branch = if i + 1 == members.len() { "└─" } else { "├─" };
                match &m.image {
                    Some(image) => {
                        let rec = held.iter().find(|r| r.id == *image);
                        lines.push([
                            format!("{branch} {}", m.platform),
                            id(image),
                            rec.map(|r| human_size(r.size)).unwrap_or_default(),
                            content(&m.manifest.digest).map(human_size).unwrap_or_default(),
                        ]);
                        extra.push(if rec.is_some_and(|r| r.containers > 0) {
                            "U".into()
                        } else {
                            String::new()
                        });
                    }
                    None => {
                        lines.push([
                            format!("{branch} {}", m.platform),
                            id(&m.manifest.digest),
                            "0B".into(),
                            "-".into(),
                        ]);
                        extra.push("absent (not pulled)".into());
                    }
                }
            }
        }
    }
    let width = |c: usize| lines.iter().map(|l| l[c].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    let mut out = std::io::stdout().lock();
    for (l, e) in lines.iter().zip(&extra) {
        let row = format!("{:<w0$}   {:<w1$}   {:>w2$}   {:>w3$}   {e}", l[0], l[1], l[2], l[3]);
        writeln!(out, "{}", row.trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]")]
pub struct TagArgs {
    source: String,
    target: String,
}

pub fn tag(root: &Path, a: TagArgs) -> Result<ExitCode> {
    let mut store = open_store(root)?;
    let target = Reference::parse(&a.target)?;
    if target.digest().is_some() {
        bail!("refusing to create a tag with a digest reference");
    }
    let src = strata_image::resolve(&store, &a.source)?;
    // A multi-platform image: the new name is the index's too.
    let manifest = src.index.as_ref().unwrap_or(&src.manifest);
    store.set_tag(&target.with_default_tag(), manifest)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata rmi [OPTIONS] IMAGE [IMAGE...]")]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    force: bool,
    /// Do not delete untagged parents (accepted for compatibility; strata images have no parents)
    #[arg(long)]
    no_prune: bool,
    #[arg(required = true)]
    images: Vec<String>,
}

fn print_events(events: &[RemoveEvent], lower: bool) {
    for e in events {
        match e {
            RemoveEvent::Untagged(t) => println!("{}: {t}", if lower { "untagged" } else { "Untagged" }),
            RemoveEvent::Deleted(d) => println!("{}: {d}", if lower { "deleted" } else { "Deleted" }),
        }
    }
}

pub fn rmi(root: &Path, a: RmiArgs) -> Result<ExitCode> {
    let mut store = open_store(root)?;
    let mut failed = false;
    for name in &a.images {
        match strata_image::remove_image(&mut store, name, a.force) {
            Ok(events) => print_events(&events, false),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[derive(Args)]
#[command(override_usage = "strata inspect [OPTIONS] IMAGE [IMAGE...]")]
pub struct InspectArgs {
    /// Format output using a custom template: 'json' or a Go template
    #[arg(short, long, value_name = "string")]
    format: Option<String>,
    /// Return JSON for the specified type: image or container (default: an image, else a container)
    #[arg(long = "type", value_name = "string")]
    kind: Option<String>,
    /// Inspect this platform of a multi-platform image (os/arch[/variant])
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

pub fn inspect(root: &Path, a: InspectArgs) -> Result<ExitCode> {
    if let Some(k) = &a.kind
        && k != "image"
        && k != "container"
    {
        bail!("unsupported --type {k:?}: strata inspects images and containers");
    }
    let (images, containers) = match a.kind.as_deref() {
        Some("image") => (true, false),
        Some(_) => (false, true),
        None => (true, true),
    };
    let store = open_store(root)?;
    let mut engine = None;
    let mut out = Vec::new();
    let mut failed = false;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    for n in &a.names {
        let one = || -> strata_image::Result<Value> {
            // Shared while it reads: an rmi or prune cannot delete the
            // config under it (found by the concurrency campaign, #16).
            let _lock = strata_store::StoreLock::shared(root)?;
            let named = strata_image::resolve(&store, n)?;
            let Some(p) = &platform else {
                let mut v = strata_image::inspect(&store, &named.image)?;
                // A multi-platform image: the host's platform (or the first
                // held), and the index it is one of (Docker 28's field).
                if let Some(ix) = &named.index
                    && let Some((d, mt, size)) = named.image.manifests.iter().find(|(d, _, _)| d == ix)
                {
                    v["Descriptor"] = json!({"mediaType": mt, "digest": d.to_string(), "size": size});
                }
                return Ok(v);
            };
            let r = strata_image::resolve_platform(&store, n, p)?;
            let mut v = strata_image::inspect(&store, &r.image)?;
            if r.image.id != named.image.id {
                // A platform of a multi-platform image: its names are the index's.
                let names = strata_image::inspect(&store, &named.image)?;
                v["RepoTags"] = names["RepoTags"].clone();
                v["RepoDigests"] = names["RepoDigests"].clone();
            }
            Ok(v)
        };
        // As docker's `inspect`: an image of that name, else a container.
        let result = if images {
            one().map_err(anyhow::Error::from)
        } else {
            Err(anyhow!("No such container: {n}"))
        };
        let result = match result {
            Err(e) if containers => {
                if engine.is_none() {
                    engine = Some(strata_container::Containers::open(root)?);
                }
                let c = engine.as_ref().expect("opened");
                match c.find(n) {
                    Ok(rec) => Ok((super::containers::container_json(c, &rec), true)),
                    // Neither: docker's words when it looked for both.
                    Err(_) if images && e.to_string().starts_with("No such image") => {
                        Err(anyhow!("No such object: {n}"))
                    }
                    Err(_) if images => Err(e),
                    Err(e) => Err(e.into()),
                }
            }
            r => r.map(|v| (v, false)),
        };
        match result {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    match a.format.as_deref() {
        None | Some("json") => {
            let all: Vec<Value> = out.into_iter().map(|(v, _)| v).collect();
            println!("{}", crate::format::inspect_json(&Value::Array(all))?)
        }
        // Docker's typed view of the image or container (`<nil>`, `map[]`, `omitempty` fields).
        Some(f) => {
            for (v, container) in &out {
                let typed = if *container {
                    crate::typed::container
                } else {
                    crate::typed::image
                };
                for line in crate::typed::render_each(f, std::slice::from_ref(v), typed)? {
                    println!("{line}");
                }
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[derive(Args)]
#[command(override_usage = "strata history [OPTIONS] IMAGE")]
pub struct HistoryArgs {
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value = "true", action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "bool")]
    human: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    image: String,
}

pub fn history(root: &Path, a: HistoryArgs) -> Result<ExitCode> {
    let store = open_store(root)?;
    // Shared while it reads (see inspect).
    let _lock = strata_store::StoreLock::shared(root)?;
    let r = strata_image::resolve(&store, &a.image)?;
    let rows = strata_image::history(&store, &r.image)?;
    let mut items = Vec::new();
    for h in &rows {
        let id = match &h.id {
            Some(d) if a.no_trunc => d.to_string(),
            Some(d) => d.short().to_string(),
            None => "<missing>".into(),
        };
        let created = if a.human {
            strata_image::human_since(h.created.as_deref())
        } else {
            h.created.clone().unwrap_or_default()
        };
        let by = h.created_by.replace('\t', " ");
        let by = if a.no_trunc { by } else { ellipsis(&by, 45) };
        let size = if a.human {
            human_size(h.size)
        } else {
            h.size.to_string()
        };
        items.push(
            json!({"ID": id, "CreatedSince": created, "CreatedAt": h.created.clone().unwrap_or_default(),
            "CreatedBy": by, "Size": size, "Comment": h.comment}),
        );
    }
    if a.quiet {
        for i in &items {
            println!("{}", i["ID"].as_str().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let fmt = a
        .format
        .unwrap_or_else(|| "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".to_string());
    let headers: BTreeMap<&str, &str> = [
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ]
    .into_iter()
    .collect();
    print_formatted(&fmt, &headers, &items)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata save [OPTIONS] IMAGE [IMAGE...]")]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Archive format: docker-archive (default) or oci-archive
    #[arg(long, value_name = "string", default_value = "docker-archive")]
    format: String,
    #[arg(required = true)]
    images: Vec<String>,
}

pub fn save(root: &Path, a: SaveArgs) -> Result<ExitCode> {
    let format = match a.format.as_str() {
        "docker-archive" | "docker" => ArchiveFormat::DockerArchive,
        "oci-archive" | "oci" => ArchiveFormat::OciArchive,
        other => bail!("unknown --format {other:?}: use docker-archive or oci-archive"),
    };
    let store = open_store(root)?;
    // Shared from naming the images to the archive's end: no rmi or prune
    // removes one in between (found by the concurrency campaign, #16).
    let _lock = strata_store::StoreLock::shared(root)?;
    // One archive image per image asked for, with every name it was asked by
    // (an image asked for by ID has none).
    let mut wanted: Vec<(strata_image::Resolved, &str, Vec<String>)> = Vec::new();
    for n in &a.images {
        let r = strata_image::resolve(&store, n)?;
        let refs: Vec<String> = r
            .reference
            .clone()
            .filter(|r| r.digest().is_none())
            .map(|r| r.to_string())
            .into_iter()
            .collect();
        match wanted
            .iter_mut()
            .find(|(w, _, _)| w.image.id == r.image.id && w.manifest == r.manifest)
        {
            Some((_, _, existing)) => {
                for x in refs {
                    if !existing.contains(&x) {
                        existing.push(x);
                    }
                }
            }
            None => wanted.push((r, n, refs)),
        }
    }
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let tmp = store.tmp_dir();
    let source = StoreLocation::new(store);
    let sink = ArchiveSink::create(format, a.output.as_deref(), || Box::new(std::io::stdout()), &tmp)?;
    strata_registry::block_on(async {
        for (_, name, refs) in &wanted {
            // A multi-platform image: every platform the store holds.
            let all = CopyOptions {
                platforms: PlatformChoice::All,
                ..CopyOptions::default()
            };
            strata_transfer::copy(&source, &sink, Some(name), refs, &all, no_progress()).await?;
        }
        sink.commit().await
    })??;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata load [OPTIONS]")]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "string")]
    input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

pub fn load(root: &Path, a: LoadArgs) -> Result<ExitCode> {
    let store = open_store(root)?;
    let input = match &a.input {
        Some(p) => ArchiveInput::File(p.clone()),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("requested load from stdin, but stdin is empty");
            }
            ArchiveInput::Stream(Box::new(std::io::stdin()))
        }
    };
    let tmp = store.tmp_dir();
    strata_registry::block_on(async {
        let archive = ImageArchive::open(input, &tmp).await?;
        for image in archive.images()? {
            let refs = image
                .names
                .iter()
                .map(|n| Ok(Reference::parse(n)?.with_default_tag()))
                .collect::<Result<Vec<_>>>()?;
            // What each name names now, to say when it moves.
            let before = refs
                .iter()
                .map(|r| Ok(store.tag_target(r)?.map(|(_, id)| id)))
                .collect::<Result<Vec<_>>>()?;
            // The archive names its images by tag only; layers are
            // unpacked on first use (as a build or run needs them).
            let mut sink = StoreLocation::new(open_store(root)?);
            sink.set_repo_digests(false);
            sink.set_unpack(false);
            let report = strata_transfer::copy(
                &archive,
                &sink,
                Some(&image.reference),
                &image.names,
                // An index keeps all its platforms (as Docker's containerd store loads it).
                &CopyOptions {
                    platforms: PlatformChoice::All,
                    ..CopyOptions::default()
                },
                no_progress(),
            )
            .await?;
            drop(sink);
            let id = match report.images.first() {
                Some((_, id)) => id.clone(),
                None => bail!("{}: the archive holds no image there", image.reference),
            };
            if a.quiet {
                continue;
            }
            if refs.is_empty() {
                println!("Loaded image ID: {id}");
            }
            for (r, old) in refs.iter().zip(before) {
                if let Some(old) = old
                    && old != id
                {
                    println!(
                        "The image {} already exists, renaming the old one with ID {old} to empty string",
                        r.familiar()
                    );
                }
                println!("Loaded image: {}", r.familiar());
            }
        }
        Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
#[command(override_usage = "strata image prune [OPTIONS]")]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

pub fn prune(root: &Path, a: PruneArgs) -> Result<ExitCode> {
    if !a.force {
        let what = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        print!("{what}\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut store = open_store(root)?;
    let report = strata_image::prune(&mut store, a.all)?;
    if !report.events.is_empty() {
        println!("Deleted Images:");
        print_events(&report.events, true);
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(ExitCode::SUCCESS)
}
