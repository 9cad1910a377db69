//! Indexes made of images that are already in registries, without pulling
//! them: `buildx imagetools create` (and the pieces `docker manifest`
//! needs: a manifest's descriptor with its platform, a manifest moved into
//! another repository, a Docker manifest list).
//!
//! [`plan`] resolves every source (an image, an index, `REPO@sha256:…`, a
//! bare digest or a descriptor JSON, as buildx takes them), reads each
//! image's platform from its config (the config is the only blob read),
//! and combines them as buildx does: the entries of every source, deduped
//! by digest, in a Docker manifest list when every entry is a Docker schema
//! 2 manifest and no annotation is asked for, an OCI index otherwise;
//! `--platform` keeps the entries of those platforms (with their
//! attestations); a single index given alone is copied as it is. [`push`]
//! then makes every entry present in each target repository — nothing
//! when it is there already, a cross-repository mount of each blob on the
//! same registry, a registry-to-registry stream (the one [`crate::copy`])
//! across registries — puts the index by digest and only then names it
//! with the tags. No layer passes through strata on one registry; across
//! registries the bytes stream through memory and are verified, never
//! written to disk.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;
use strata_oci::{Descriptor, Digest, Document, Index, Platform, Reference, media};
use strata_registry::{ClientOptions, manifest_reference};

use crate::registry::RegistryLocation;
use crate::verify::read_document_verified;
use crate::{CopyOptions, CopyReport, PlatformChoice, Result, Sink, Source, TransferError, copy, no_progress};

/// The annotation BuildKit puts on an attestation manifest of an index,
/// naming its kind and the image it is about.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";

/// A source as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceArg {
    /// `REPO[:TAG][@DIGEST]`: an image or an index (`REPO@sha256:…` picks
    /// one manifest of an index by its digest).
    Reference(Reference),
    /// `sha256:…`: a manifest of the one repository the command names.
    Digest(Digest),
    /// An OCI descriptor as JSON: its digest in the one repository named,
    /// its other fields (media type, annotations, platform) overriding
    /// what the registry says.
    Descriptor(DescriptorArg),
}

/// A descriptor given as JSON; only the digest is required.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptorArg {
    pub media_type: Option<String>,
    pub digest: Digest,
    pub size: Option<u64>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields left empty are read from the image's config.
    pub platform: Option<Platform>,
}

/// Parses a source as buildx does: a digest, else a reference, else a
/// descriptor JSON.
pub fn parse_source(s: &str) -> Result<SourceArg> {
    let bad = |why: String| {
        TransferError::Invalid(format!(
            "failed to parse source {s:?}, valid sources are digests, references and descriptors: {why}"
        ))
    };
    match Digest::parse(s) {
        Ok(d) => return Ok(SourceArg::Digest(d)),
        Err(e) if s.starts_with("sha256") => return Err(bad(e.to_string())),
        Err(_) => {}
    }
    match Reference::parse(s) {
        Ok(r) => return Ok(SourceArg::Reference(r.with_default_tag())),
        Err(e) if !s.trim_start().starts_with('{') => return Err(bad(e.to_string())),
        Err(_) => {}
    }
    let v: Value = serde_json::from_str(s).map_err(|e| bad(e.to_string()))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    if let Some(n) = obj.get("schemaVersion") {
        return Err(bad(format!(
            "expected an OCI content descriptor, got a manifest or index (schemaVersion {n})"
        )));
    }
    let string = |k: &str| -> Result<Option<String>> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(format!("{k:?} is not a string: {other}"))),
        }
    };
    let digest = string("digest")?.ok_or_else(|| bad("invalid descriptor: digest is required".into()))?;
    let digest = Digest::parse(&digest).map_err(|e| bad(format!("invalid descriptor digest: {e}")))?;
    let size = match obj.get("size") {
        None | Some(Value::Null) => None,
        Some(n) => Some(n.as_u64().ok_or_else(|| bad(format!("\"size\" is not a size: {n}")))?),
    };
    let annotations = match obj.get("annotations") {
        None | Some(Value::Null) => None,
        Some(a) => Some(
            serde_json::from_value::<BTreeMap<String, String>>(a.clone())
                .map_err(|e| bad(format!("\"annotations\": {e}")))?,
        ),
    };
    let platform = match obj.get("platform") {
        None | Some(Value::Null) => None,
        Some(p) => Some(platform_of_json(p).ok_or_else(|| bad(format!("\"platform\" is not a platform: {p}")))?),
    };
    Ok(SourceArg::Descriptor(DescriptorArg {
        media_type: string("mediaType")?.filter(|m| !m.is_empty()),
        digest,
        size: size.filter(|n| *n != 0),
        annotations,
        platform,
    }))
}

/// The platform fields of a JSON object (a descriptor's `platform`, or an
/// image config: `architecture`, `os`, `variant`, `os.version`,
/// `os.features`); missing ones are empty. None when it is not an object.
pub fn platform_of_json(v: &Value) -> Option<Platform> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Platform {
        architecture: s("architecture").unwrap_or_default(),
        os: s("os").unwrap_or_default(),
        variant: s("variant").filter(|v| !v.is_empty()),
        os_version: s("os.version").filter(|v| !v.is_empty()),
        os_features: o
            .get("os.features")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .filter(|f| !f.is_empty()),
    })
}

/// A platform as containerd normalizes it (`aarch64` is `arm64`, whose
/// `v8` is left out; `arm` is `arm/v7` unless it says otherwise; `x86_64`
/// is `amd64`), so that two spellings compare equal.
pub fn normalize_platform(p: &Platform) -> Platform {
    let os = match p.os.to_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    };
    let arch = p.architecture.to_lowercase();
    let variant = p.variant.clone().map(|v| v.to_lowercase());
    let (architecture, variant) = match arch.as_str() {
        "i386" => ("386".to_string(), None),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1" && !v.is_empty())),
        "aarch64" | "arm64" => (
            "arm64".to_string(),
            variant.filter(|v| !matches!(v.as_str(), "8" | "v8" | "v8.0" | "")),
        ),
        "armhf" => ("arm".to_string(), Some("v7".to_string())),
        "armel" => ("arm".to_string(), Some("v6".to_string())),
        "arm" => (
            "arm".to_string(),
            Some(match variant.as_deref() {
                None | Some("") | Some("7") => "v7".to_string(),
                Some(v @ ("5" | "6" | "8")) => format!("v{v}"),
                Some(v) => v.to_string(),
            }),
        ),
        _ => (arch.clone(), variant.filter(|v| !v.is_empty())),
    };
    Platform {
        architecture,
        os,
        variant,
        os_version: p.os_version.clone(),
        os_features: p.os_features.clone(),
    }
}

/// Whether `candidate` is one of the platforms `--platform` asked for:
/// the same OS, architecture and variant once normalized (containerd's
/// matcher: `linux/arm64` is `linux/arm64/v8`, `linux/arm` is `linux/arm/v7`).
pub fn platform_matches(wanted: &Platform, candidate: &Platform) -> bool {
    let (w, c) = (normalize_platform(wanted), normalize_platform(candidate));
    w.os == c.os && w.architecture == c.architecture && w.variant == c.variant
}

/// What an `--annotation` applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationTarget {
    /// The index itself (`index:`, and a key without a type).
    Index,
    /// The index's entries (`manifest-descriptor:`), those of one platform
    /// with `manifest-descriptor[os/arch]:`.
    ManifestDescriptor(Option<Platform>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub target: AnnotationTarget,
    pub key: String,
    pub value: String,
}

/// Parses `--annotation`s: `[TYPE[PLATFORM],…:]KEY=VALUE` with the types
/// `index` and `manifest-descriptor` (buildx's; `manifest` and
/// `index-descriptor` are refused as buildx refuses them when creating an
/// index). A key without a type annotates the index (buildx refuses it).
pub fn parse_annotations(inputs: &[String]) -> Result<Vec<Annotation>> {
    let mut out = Vec::new();
    for input in inputs.iter().filter(|i| !i.is_empty()) {
        let (k, v) = input
            .split_once('=')
            .ok_or_else(|| TransferError::Invalid(format!("invalid annotation {input:?}, expected key=value")))?;
        let Some((types, key)) = k.split_once(':') else {
            out.push(Annotation {
                target: AnnotationTarget::Index,
                key: k.to_string(),
                value: v.to_string(),
            });
            continue;
        };
        if key.is_empty() {
            return Err(TransferError::Invalid(format!(
                "invalid annotation {input:?}: the key is empty"
            )));
        }
        for tp in types.split(',') {
            let (name, platform) = match tp.split_once('[') {
                Some((name, rest)) => match rest.strip_suffix(']') {
                    Some(p)
                        if !p.is_empty()
                            && p.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/' || b == b'-') =>
                    {
                        (name, Some(p))
                    }
                    _ => (tp, Some("")),
                },
                None => (tp, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') || platform == Some("") {
                return Err(TransferError::Invalid(format!(
                    "invalid annotation type {tp:?}, expected type and optional platform in square brackets"
                )));
            }
            let platform = platform
                .map(|p| {
                    Platform::parse(p).map_err(|e| TransferError::Invalid(format!("invalid annotation {input:?}: {e}")))
                })
                .transpose()?;
            let target = match name {
                "index" => AnnotationTarget::Index,
                "manifest-descriptor" => AnnotationTarget::ManifestDescriptor(platform),
                "manifest" => {
                    return Err(TransferError::Invalid(format!(
                        "invalid annotation {input:?}: \"manifest\" annotations are not supported yet (the images are not rewritten; use manifest-descriptor)"
                    )));
                }
                "index-descriptor" => {
                    return Err(TransferError::Invalid(format!(
                        "invalid annotation {input:?}: \"index-descriptor\" annotations are invalid while creating an image"
                    )));
                }
                other => return Err(TransferError::Invalid(format!("unknown annotation type {other:?}"))),
            };
            out.push(Annotation {
                target,
                key: key.to_string(),
                value: v.to_string(),
            });
        }
    }
    Ok(out)
}

/// What `imagetools create` is asked.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Where the index goes (each with a tag; `latest` when none was given).
    pub tags: Vec<Reference>,
    pub sources: Vec<SourceArg>,
    /// Start from the index `tags[0]` names (its entries first).
    pub append: bool,
    pub annotations: Vec<Annotation>,
    /// Keep only these platforms (none: all).
    pub platforms: Vec<Platform>,
    /// A single image given alone becomes an index of one (buildx's
    /// default); false copies it as it is.
    pub prefer_index: bool,
    pub client: ClientOptions,
    /// Blobs moved at once per image.
    pub concurrency: usize,
}

/// A manifest, index or config read from a registry.
#[derive(Debug, Clone)]
struct Resolved {
    /// Its descriptor as the index will carry it (platform filled in).
    desc: Descriptor,
    bytes: Vec<u8>,
    /// Which location, and the reference it was named by (for messages).
    location: usize,
    name: String,
}

/// An entry of the index to be made, and where it is read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub desc: Descriptor,
    /// The source it came from (`REPO:TAG` or `REPO@DIGEST`).
    pub source: String,
    location: usize,
}

/// What [`push`] will write: the index (or, without one, the image), its
/// bytes, and every manifest that must be in the target repositories.
pub struct Plan {
    pub desc: Descriptor,
    pub bytes: Vec<u8>,
    pub entries: Vec<Entry>,
    locations: Vec<RegistryLocation>,
    tags: Vec<Reference>,
    concurrency: usize,
    client: ClientOptions,
}

/// A repository as its own reference (no tag, no digest).
fn repository_of(r: &Reference) -> Result<Reference> {
    Reference::from_parts(&r.repository(), None, None).map_err(|e| TransferError::Invalid(e.to_string()))
}

/// Resolves the sources and combines them into the index to push (or to
/// show, with `--dry-run`): nothing is written anywhere.
pub async fn plan(opts: &CreateOptions) -> Result<Plan> {
    if opts.sources.is_empty() {
        return Err(TransferError::Invalid("no sources specified".into()));
    }
    let mut sources = opts.sources.clone();
    if opts.append
        && let Some(t) = opts.tags.first()
    {
        sources.insert(0, SourceArg::Reference(t.clone()));
    }
    // The repositories named: a digest or descriptor alone is read from
    // the only one (buildx's rule).
    let mut repos: Vec<String> = opts.tags.iter().map(Reference::repository).collect();
    for s in &sources {
        if let SourceArg::Reference(r) = s {
            repos.push(r.repository());
        }
    }
    repos.sort();
    repos.dedup();
    if repos.is_empty() {
        return Err(TransferError::Invalid(
            "no repositories specified, please set a reference in tag or source".into(),
        ));
    }
    let default_repo = if repos.len() == 1 {
        sources
            .iter()
            .find_map(|s| match s {
                SourceArg::Reference(r) => Some(r.clone()),
                _ => None,
            })
            .or_else(|| opts.tags.first().cloned())
    } else {
        None
    };
    // Each source's reference, and the descriptor fields it overrides.
    let mut named: Vec<(Reference, Option<&DescriptorArg>)> = Vec::new();
    for s in &sources {
        let (digest, arg) = match s {
            SourceArg::Reference(r) => {
                named.push((r.clone(), None));
                continue;
            }
            SourceArg::Digest(d) => (d, None),
            SourceArg::Descriptor(a) => (&a.digest, Some(a)),
        };
        let Some(repo) = &default_repo else {
            return Err(TransferError::Invalid(format!(
                "multiple repositories specified, cannot infer repository for {digest}"
            )));
        };
        named.push((repository_of(repo)?.with_digest(digest.clone()), arg));
    }

    // One location per repository, so that a repository is asked once
    // for a document (the config read for the platform is not read again
    // by the copy).
    let mut locations: Vec<RegistryLocation> = Vec::new();
    let mut by_repo: HashMap<String, usize> = HashMap::new();
    let mut located = Vec::new();
    for (r, _) in &named {
        let i = match by_repo.get(&r.repository()) {
            Some(i) => *i,
            None => {
                locations.push(RegistryLocation::new(&repository_of(r)?, opts.client.clone())?);
                by_repo.insert(r.repository(), locations.len() - 1);
                locations.len() - 1
            }
        };
        located.push(i);
    }
    let resolved: Vec<Resolved> =
        futures_util::future::try_join_all(named.iter().zip(&located).map(|((r, arg), &i)| {
            let loc = &locations[i];
            async move {
                let name = r.to_string();
                let what = manifest_reference(r);
                let mut desc = loc
                    .resolve(Some(&what))
                    .await
                    .map_err(|e| e.context(format!("source {name}")))?;
                if let Some(a) = arg {
                    if let Some(n) = a.size
                        && n != desc.size
                    {
                        return Err(TransferError::Invalid(format!(
                            "invalid size mismatch for {}, {n} != {}",
                            desc.digest, desc.size
                        )));
                    }
                    if let Some(m) = &a.media_type {
                        desc.media_type = m.clone();
                    }
                    if let Some(ann) = &a.annotations {
                        desc.annotations = Some(ann.clone());
                    }
                    desc.platform = a.platform.clone();
                }
                let bytes = read_document_verified(&desc, loc.read_document(&desc).await?)
                    .map_err(|e| e.context(format!("source {name}")))?;
                let doc = Document::parse(&bytes, Some(&desc.media_type))
                    .map_err(|e| TransferError::Invalid(format!("source {name}: {e}")))?;
                if let Document::Manifest(m) = &doc {
                    let p = desc.platform.get_or_insert_with(Platform::default);
                    if p.os.is_empty() || p.architecture.is_empty() {
                        let from_config = config_platform(loc, &m.config)
                            .await
                            .map_err(|e| e.context(format!("source {name}")))?;
                        fill_platform(p, &normalize_platform(&from_config));
                    }
                }
                Ok(Resolved {
                    desc,
                    bytes,
                    location: i,
                    name,
                })
            }
        }))
        .await?;

    let combined = combine(&resolved, &opts.annotations, opts.prefer_index)?;
    let combined = filter_platforms(combined, &opts.platforms)?;
    Ok(Plan {
        desc: combined.desc,
        bytes: combined.bytes,
        entries: combined.entries,
        locations,
        tags: opts.tags.clone(),
        concurrency: opts.concurrency,
        client: opts.client.clone(),
    })
}

/// Fills what `p` lacks from the image config's platform (buildx's rule:
/// the architecture with its variant, the OS; and, as `docker manifest`
/// does, the OS version and features).
fn fill_platform(p: &mut Platform, from_config: &Platform) {
    if p.architecture.is_empty() {
        p.architecture = from_config.architecture.clone();
        if p.variant.is_none() {
            p.variant = from_config.variant.clone();
        }
    }
    if p.os.is_empty() {
        p.os = from_config.os.clone();
    }
    if p.os_version.is_none() {
        p.os_version = from_config.os_version.clone();
    }
    if p.os_features.is_none() {
        p.os_features = from_config.os_features.clone();
    }
}

/// The platform an image's config states (as written there).
async fn config_platform(loc: &RegistryLocation, config: &Descriptor) -> Result<Platform> {
    let bytes = read_document_verified(config, loc.read_document(config).await?)?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| TransferError::Invalid(format!("config {}: {e}", config.digest)))?;
    platform_of_json(&v).ok_or_else(|| TransferError::Invalid(format!("config {} is not a JSON object", config.digest)))
}

struct Combined {
    desc: Descriptor,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Whether `bytes` is an index (false: a source image copied as it is).
    is_index: bool,
}

fn is_docker_type(mt: &str) -> bool {
    mt.starts_with("application/vnd.docker.")
}

/// buildx's `combine`: one index of every source's entries.
fn combine(sources: &[Resolved], annotations: &[Annotation], prefer_index: bool) -> Result<Combined> {
    if let [only] = sources
        && annotations.is_empty()
    {
        let entries_of_index = |ix: &Index| {
            ix.manifests
                .iter()
                .map(|d| Entry {
                    desc: d.clone(),
                    source: only.name.clone(),
                    location: only.location,
                })
                .collect::<Vec<_>>()
        };
        match Document::parse(&only.bytes, Some(&only.desc.media_type)) {
            // An index alone is copied as it is.
            Ok(Document::Index(ix)) => {
                return Ok(Combined {
                    desc: Descriptor::new(&only.desc.media_type, only.desc.digest.clone(), only.desc.size),
                    bytes: only.bytes.clone(),
                    entries: entries_of_index(&ix),
                    is_index: true,
                });
            }
            Ok(Document::Manifest(_)) if !prefer_index => {
                return Ok(Combined {
                    desc: only.desc.clone(),
                    bytes: only.bytes.clone(),
                    entries: vec![Entry {
                        desc: only.desc.clone(),
                        source: only.name.clone(),
                        location: only.location,
                    }],
                    is_index: false,
                });
            }
            _ => {}
        }
    }
    let mut entries: Vec<Entry> = Vec::new();
    let mut add = |d: Descriptor, src: &Resolved| match entries.iter_mut().find(|e| e.desc.digest == d.digest) {
        // The same manifest twice: one entry, the later platform and
        // annotations winning.
        Some(e) => {
            if d.platform.is_some() {
                e.desc.platform = d.platform;
            }
            if let Some(a) = d.annotations {
                e.desc.annotations.get_or_insert_with(BTreeMap::new).extend(a);
            }
            e.source = src.name.clone();
            e.location = src.location;
        }
        None => entries.push(Entry {
            desc: d,
            source: src.name.clone(),
            location: src.location,
        }),
    };
    for s in sources {
        match Document::parse(&s.bytes, Some(&s.desc.media_type))
            .map_err(|e| TransferError::Invalid(format!("source {}: {e}", s.name)))?
        {
            Document::Index(ix) => {
                for d in ix.manifests {
                    add(d, s);
                }
            }
            Document::Manifest(_) => add(s.desc.clone(), s),
        }
    }
    // A Docker manifest list cannot carry annotations: asked for any, the
    // index is an OCI one (buildx would drop them silently).
    let media_type = if entries.iter().all(|e| is_docker_type(&e.desc.media_type)) && annotations.is_empty() {
        media::DOCKER_MANIFEST_LIST
    } else {
        media::OCI_INDEX
    };
    let mut index_annotations = BTreeMap::new();
    for a in annotations {
        match &a.target {
            AnnotationTarget::Index => {
                index_annotations.insert(a.key.clone(), a.value.clone());
            }
            AnnotationTarget::ManifestDescriptor(platform) => {
                for e in &mut entries {
                    let applies = match (platform, &e.desc.platform) {
                        (None, _) => true,
                        (Some(want), Some(p)) => {
                            let (w, p) = (normalize_platform(want), normalize_platform(p));
                            w.to_string() == p.to_string()
                        }
                        (Some(_), None) => false,
                    };
                    if applies {
                        e.desc
                            .annotations
                            .get_or_insert_with(BTreeMap::new)
                            .insert(a.key.clone(), a.value.clone());
                    }
                }
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media_type.to_string()),
        artifact_type: None,
        manifests: entries.iter().map(|e| e.desc.clone()).collect(),
        subject: None,
        annotations: (!index_annotations.is_empty()).then_some(index_annotations),
    };
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| TransferError::Invalid(e.to_string()))?;
    Ok(Combined {
        desc: Descriptor::new(media_type, Digest::sha256_of(&bytes), bytes.len() as u64),
        bytes,
        entries,
        is_index: true,
    })
}

/// buildx's `filterPlatforms`: the entries of the wanted platforms, with
/// the attestation manifests about them and the entries without a platform.
fn filter_platforms(c: Combined, wanted: &[Platform]) -> Result<Combined> {
    if wanted.is_empty() {
        return Ok(c);
    }
    let list = |ps: &[Platform]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ");
    let matches = |p: &Platform| wanted.iter().any(|w| platform_matches(w, p));
    if !c.is_index {
        let Some(p) = &c.desc.platform else {
            return Err(TransferError::Invalid(
                "cannot filter platforms from a manifest without platform information".into(),
            ));
        };
        if !matches(p) {
            return Err(TransferError::Invalid(format!(
                "input platform {p} does not match any of the provided platforms ({})",
                list(wanted)
            )));
        }
        return Ok(c);
    }
    let mut index: Index = serde_json::from_slice(&c.bytes).map_err(|e| TransferError::Invalid(e.to_string()))?;
    let by_digest: HashMap<&Digest, &Descriptor> = index.manifests.iter().map(|d| (&d.digest, d)).collect();
    let kept = |d: &Descriptor| -> bool {
        if d.platform.as_ref().is_none_or(&matches) {
            return true;
        }
        // An attestation is kept with the image it is about.
        let ann = d.annotations.as_ref();
        if ann.and_then(|a| a.get(REFERENCE_TYPE)).map(String::as_str) == Some(ATTESTATION_MANIFEST)
            && let Some(subject) = ann
                .and_then(|a| a.get(REFERENCE_DIGEST))
                .and_then(|s| Digest::parse(s).ok())
                .and_then(|s| by_digest.get(&s))
        {
            return subject.platform.as_ref().is_none_or(&matches);
        }
        false
    };
    let keep: Vec<bool> = index.manifests.iter().map(kept).collect();
    if !keep.iter().any(|k| *k) {
        let offered: Vec<Platform> = index
            .manifests
            .iter()
            .filter(|d| {
                d.annotations
                    .as_ref()
                    .and_then(|a| a.get(REFERENCE_TYPE))
                    .is_none_or(|t| t != ATTESTATION_MANIFEST)
            })
            .filter_map(|d| d.platform.clone())
            .collect();
        return Err(TransferError::Invalid(format!(
            "none of the manifests match the provided platforms ({}); the sources offer {}",
            list(wanted),
            list(&offered)
        )));
    }
    if keep.iter().all(|k| *k) {
        return Ok(c);
    }
    let mut it = keep.iter();
    index.manifests.retain(|_| *it.next().unwrap_or(&false));
    let entries: Vec<Entry> = c
        .entries
        .into_iter()
        .filter(|e| index.manifests.iter().any(|d| d.digest == e.desc.digest))
        .collect();
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| TransferError::Invalid(e.to_string()))?;
    let mut desc = Descriptor::new(&c.desc.media_type, Digest::sha256_of(&bytes), bytes.len() as u64);
    desc.annotations = c.desc.annotations;
    Ok(Combined {
        desc,
        bytes,
        entries,
        is_index: true,
    })
}

/// What [`push`] is doing, for the caller to show.
#[derive(Debug, Clone)]
pub enum CreateEvent {
    /// An entry's manifest is being made present in a repository.
    Copying { digest: Digest, from: String, to: String },
    /// The repository had the manifest already.
    Present { digest: Digest, to: String },
    /// The manifest is there now: its blobs mounted, copied or found.
    Copied {
        digest: Digest,
        to: String,
        report: Box<CopyReport>,
    },
    /// The index is being put under a tag.
    Pushing { digest: Digest, to: String },
}

/// Makes every entry of `plan` present in each target repository, then
/// puts the index and names it with the tags (the commit point: a failure
/// before it leaves every tag as it was).
pub async fn push(plan: &Plan, progress: &(dyn Fn(CreateEvent) + Sync)) -> Result<()> {
    if plan.tags.is_empty() {
        return Err(TransferError::Invalid(
            "can't push with no tags specified, please set --tag or --dry-run".into(),
        ));
    }
    // Tags grouped by repository, in the order given.
    let mut groups: Vec<(String, Vec<&Reference>)> = Vec::new();
    for t in &plan.tags {
        match groups.iter_mut().find(|(r, _)| *r == t.repository()) {
            Some((_, ts)) => ts.push(t),
            None => groups.push((t.repository(), vec![t])),
        }
    }
    for (repo, tags) in groups {
        // A client of its own: the sources' clients hold their own transfer slots.
        let sink = RegistryLocation::new(&repository_of(tags[0])?, plan.client.clone())?;
        for e in &plan.entries {
            let src = &plan.locations[e.location];
            progress(CreateEvent::Copying {
                digest: e.desc.digest.clone(),
                from: e.source.clone(),
                to: repo.clone(),
            });
            match copy_manifest(src, &sink, &e.desc, plan.concurrency)
                .await
                .map_err(|err| err.context(format!("copy {} from {} to {repo}", e.desc.digest, e.source)))?
            {
                None => progress(CreateEvent::Present {
                    digest: e.desc.digest.clone(),
                    to: repo.clone(),
                }),
                Some(report) => progress(CreateEvent::Copied {
                    digest: e.desc.digest.clone(),
                    to: repo.clone(),
                    report: Box::new(report),
                }),
            }
        }
        for t in &tags {
            progress(CreateEvent::Pushing {
                digest: plan.desc.digest.clone(),
                to: t.to_string(),
            });
        }
        let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        put_named(&sink, &plan.desc, &plan.bytes, &names)
            .await
            .map_err(|err| err.context(format!("publish {} to {repo}", plan.desc.digest)))?;
    }
    Ok(())
}

/// Puts a manifest or index by digest into `sink`'s repository, then names
/// it with `names` (tags or references of that repository).
pub async fn put_named(sink: &RegistryLocation, desc: &Descriptor, bytes: &[u8], names: &[String]) -> Result<()> {
    sink.put_document(desc, bytes).await?;
    sink.finish(desc, names).await
}

/// Makes the manifest (or index) `desc` of `src`'s repository present in
/// `dst`'s, with everything it refers to: nothing to do when `dst` is the
/// same repository or has it already (None), else [`crate::copy`] by
/// digest: blobs mounted across repositories of one registry, streamed
/// between registries, nothing named.
pub async fn copy_manifest(
    src: &RegistryLocation,
    dst: &RegistryLocation,
    desc: &Descriptor,
    concurrency: usize,
) -> Result<Option<CopyReport>> {
    let same_repository = strata_registry::api_host(src.client().registry())
        .eq_ignore_ascii_case(&strata_registry::api_host(dst.client().registry()))
        && src.repository() == dst.repository();
    if same_repository {
        return Ok(None);
    }
    let digest = desc.digest.to_string();
    match dst.client().head_manifest(dst.repository(), &digest).await {
        Ok(Some(_)) => return Ok(None),
        Ok(None) => {}
        Err(e) if e.is_unauthorized() => return Err(TransferError::location(e)),
        // A registry that does not answer HEAD well: the copy finds out.
        Err(_) => {}
    }
    let options = CopyOptions {
        platforms: PlatformChoice::All,
        concurrency: concurrency.max(1),
    };
    copy(src, dst, Some(&digest), &[], &options, no_progress())
        .await
        .map(Some)
}

/// A manifest of a registry described for a list: its descriptor with the
/// platform its config states (`docker manifest create`'s reading, not
/// normalized), and its bytes. An index is refused (`REF is a manifest list`).
pub async fn describe_manifest(loc: &RegistryLocation, reference: &Reference) -> Result<(Descriptor, Vec<u8>)> {
    let name = reference.to_string();
    let desc = loc.resolve(Some(&manifest_reference(reference))).await?;
    let bytes = read_document_verified(&desc, loc.read_document(&desc).await?)?;
    match Document::parse(&bytes, Some(&desc.media_type)).map_err(|e| TransferError::Invalid(format!("{name}: {e}")))? {
        Document::Index(_) => Err(TransferError::Invalid(format!("{name} is a manifest list"))),
        Document::Manifest(m) => {
            let mut desc = desc;
            desc.platform = Some(config_platform(loc, &m.config).await?);
            Ok((desc, bytes))
        }
    }
}

/// The manifest list of `entries` as the Docker CLI writes one
/// (distribution's `manifestlist.FromDescriptors`: three-space indents,
/// each entry's `mediaType`, `size`, `digest` and `platform`), so that
/// `docker manifest push` and strata push the same bytes for the same
/// entries. Its media type is Docker's rule too: an OCI index when the
/// first entry is an OCI manifest, else a Docker manifest list
/// (`application/vnd.docker.distribution.manifest.list.v2+json`).
pub fn docker_manifest_list(entries: &[Descriptor]) -> Result<(String, Vec<u8>)> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a> {
        schema_version: u32,
        media_type: &'static str,
        manifests: Vec<ListEntry<'a>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ListEntry<'a> {
        #[serde(skip_serializing_if = "str::is_empty")]
        media_type: &'a str,
        size: u64,
        digest: &'a Digest,
        platform: ListPlatform<'a>,
    }
    #[derive(Serialize)]
    struct ListPlatform<'a> {
        architecture: &'a str,
        os: &'a str,
        #[serde(rename = "os.version", skip_serializing_if = "Option::is_none")]
        os_version: Option<&'a String>,
        #[serde(rename = "os.features", skip_serializing_if = "Option::is_none")]
        os_features: Option<&'a Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        variant: Option<&'a String>,
    }
    let empty = Platform::default();
    let media_type = match entries.first() {
        Some(d) if d.media_type == media::OCI_MANIFEST => media::OCI_INDEX,
        _ => media::DOCKER_MANIFEST_LIST,
    };
    let list = List {
        schema_version: 2,
        media_type,
        manifests: entries
            .iter()
            .map(|d| {
                let p = d.platform.as_ref().unwrap_or(&empty);
                ListEntry {
                    media_type: &d.media_type,
                    size: d.size,
                    digest: &d.digest,
                    platform: ListPlatform {
                        architecture: &p.architecture,
                        os: &p.os,
                        os_version: p.os_version.as_ref().filter(|v| !v.is_empty()),
                        os_features: p.os_features.as_ref().filter(|f| !f.is_empty()),
                        variant: p.variant.as_ref().filter(|v| !v.is_empty()),
                    },
                }
            })
            .collect(),
    };
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"   "));
    list.serialize(&mut ser)
        .map_err(|e| TransferError::Invalid(e.to_string()))?;
    Ok((media_type.to_string(), out))
}

#[cfg(test)]
mod tests;
