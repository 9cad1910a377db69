//! `strata manifest create|annotate|push|rm` and the local side of
//! `manifest inspect`: Docker's draft manifest lists.
//!
//! The Docker CLI keeps a draft list in `~/.docker/manifests/`; strata keeps
//! each in one file, `<store root>/manifest-lists/<NAME>.json`, `NAME` being
//! the list's full reference escaped as Docker escapes it (`:` → `-`,
//! `/` → `_`: `127.0.0.1:5000/app:v1` is `127.0.0.1-5000_app-v1.json`).
//! The file (owned by this module, no other code reads it) holds the list's
//! reference and its entries in the order they were added, each with its
//! reference, its descriptor (platform included, as `manifest annotate`
//! leaves it) and the manifest's bytes (so that `push` can put it into the
//! list's repository unchanged). A file is replaced whole (written beside
//! and renamed), never edited in place.
//!
//! As Docker: `create` reads each manifest (and its config, for the
//! platform) from its registry — an index is refused — and refuses to
//! touch an existing list without `--amend`; `push` puts the list as the
//! Docker CLI writes it (byte for byte: a Docker manifest list,
//! `application/vnd.docker.distribution.manifest.list.v2+json`, or an OCI
//! index when its first entry is an OCI manifest, as docker 28 does) under
//! the list's tag after putting into the list's repository every manifest
//! that lives in another repository of the same registry (its blobs
//! mounted), and refuses manifests of another registry with Docker's error
//! (`strata buildx imagetools create` copies across registries).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, Args};
use serde_json::{Value, json};
use strata_oci::{Descriptor, Digest, Platform, Reference};
use strata_registry::block_on;
use strata_transfer::index::{copy_manifest, describe_manifest, docker_manifest_list, put_named};
use strata_transfer::registry::RegistryLocation;

use super::distribution::client_options;

#[derive(Args)]
#[command(override_usage = "strata manifest create MANIFEST_LIST MANIFEST [MANIFEST...]")]
pub struct CreateArgs {
    /// Amend an existing manifest list
    #[arg(short = 'a', long)]
    pub amend: bool,
    /// Allow communication with an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    #[arg(value_name = "MANIFEST_LIST")]
    pub list: String,
    #[arg(value_name = "MANIFEST", required = true)]
    pub manifests: Vec<String>,
}

#[derive(Args)]
#[command(override_usage = "strata manifest annotate [OPTIONS] MANIFEST_LIST MANIFEST")]
pub struct AnnotateArgs {
    /// Set architecture
    #[arg(long)]
    pub arch: Option<String>,
    /// Set operating system
    #[arg(long)]
    pub os: Option<String>,
    /// Set operating system feature
    #[arg(long, value_delimiter = ',')]
    pub os_features: Vec<String>,
    /// Set operating system version
    #[arg(long)]
    pub os_version: Option<String>,
    /// Set architecture variant
    #[arg(long)]
    pub variant: Option<String>,
    #[arg(value_name = "MANIFEST_LIST")]
    pub list: String,
    #[arg(value_name = "MANIFEST")]
    pub manifest: String,
}

#[derive(Args)]
#[command(override_usage = "strata manifest push [OPTIONS] MANIFEST_LIST")]
pub struct PushArgs {
    /// Remove the local manifest list after push
    #[arg(short = 'p', long)]
    pub purge: bool,
    /// Allow push to an insecure registry
    #[arg(long)]
    pub insecure: bool,
    /// Require HTTPS and verify certificates (false: accept any certificate, fall back to HTTP)
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    #[arg(value_name = "MANIFEST_LIST")]
    pub list: String,
}

#[derive(Args)]
#[command(override_usage = "strata manifest rm MANIFEST_LIST [MANIFEST_LIST...]")]
pub struct RmArgs {
    #[arg(value_name = "MANIFEST_LIST", required = true)]
    pub lists: Vec<String>,
}

/// Docker's `normalizeReference`: a reference without a digest gets `latest`.
fn normalize(s: &str) -> Result<Reference> {
    Ok(Reference::parse(s)?.with_default_tag())
}

/// Docker's `makeFilesafeName`.
fn file_safe(name: &str) -> String {
    name.replace(':', "-").replace('/', "_")
}

fn lists_dir(root: &Path) -> PathBuf {
    root.join("manifest-lists")
}

fn list_file(root: &Path, list: &Reference) -> PathBuf {
    lists_dir(root).join(format!("{}.json", file_safe(&list.to_string())))
}

/// An entry of a draft list.
#[derive(Debug, Clone)]
struct Entry {
    reference: Reference,
    descriptor: Descriptor,
    raw: Vec<u8>,
}

/// The draft list `list`, or None when there is none. A file of another
/// list whose name escapes the same way is not this list's.
fn load(root: &Path, list: &Reference) -> Result<Option<Vec<Entry>>> {
    let path = list_file(root, list);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let bad = |why: String| anyhow!("invalid manifest list file {}: {why}", path.display());
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if v["ref"].as_str() != Some(&list.to_string()) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for m in v["manifests"]
        .as_array()
        .ok_or_else(|| bad("no \"manifests\"".into()))?
    {
        let reference = m["ref"]
            .as_str()
            .and_then(|r| Reference::parse(r).ok())
            .ok_or_else(|| bad(format!("bad \"ref\" {}", m["ref"])))?;
        let descriptor: Descriptor =
            serde_json::from_value(m["descriptor"].clone()).map_err(|e| bad(format!("{reference}: {e}")))?;
        let raw = m["raw"]
            .as_str()
            .ok_or_else(|| bad(format!("{reference}: no \"raw\"")))?
            .as_bytes()
            .to_vec();
        if Digest::of(descriptor.digest.algorithm(), &raw) != descriptor.digest {
            return Err(bad(format!(
                "{reference}: the manifest kept does not match its digest {}",
                descriptor.digest
            )));
        }
        out.push(Entry {
            reference,
            descriptor,
            raw,
        });
    }
    Ok(Some(out))
}

fn save(root: &Path, list: &Reference, entries: &[Entry]) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = lists_dir(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let manifests = entries
        .iter()
        .map(|e| {
            Ok(json!({
                "ref": e.reference.to_string(),
                "descriptor": e.descriptor,
                "raw": std::str::from_utf8(&e.raw)
                    .map_err(|_| anyhow!("the manifest of {} is not UTF-8 JSON", e.reference))?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let path = list_file(root, list);
    // Two names may escape alike (`a/b:c-d`, `a/b-c:d`): never replace another list's draft.
    if let Ok(bytes) = std::fs::read(&path)
        && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        && let Some(other) = v["ref"].as_str().filter(|r| *r != list.to_string())
    {
        bail!(
            "the draft of manifest list {other} is kept in {} under the same escaped name; remove it first (strata manifest rm {other})",
            path.display()
        );
    }
    let doc = json!({"ref": list.to_string(), "manifests": manifests});
    let mut tmp =
        tempfile::NamedTempFile::new_in(&dir).with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(&serde_json::to_vec_pretty(&doc)?)?;
    tmp.persist(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn create(root: &Path, a: CreateArgs) -> Result<ExitCode> {
    let list = normalize(&a.list).with_context(|| format!("error parsing name for manifest list {}", a.list))?;
    let existing = load(root, &list)?;
    if existing.is_some() && !a.amend {
        bail!("refusing to amend an existing manifest list with no --amend flag");
    }
    let mut entries = existing.unwrap_or_default();
    let opts = client_options(a.tls_verify && !a.insecure)?;
    for m in &a.manifests {
        let r = normalize(m)?;
        // A manifest the list has already is kept as it is (annotations too).
        if entries.iter().any(|e| e.reference == r) {
            continue;
        }
        let loc = RegistryLocation::new(&repository_of(&r)?, opts.clone())?;
        let (descriptor, raw) = block_on(describe_manifest(&loc, &r))?.with_context(|| r.to_string())?;
        entries.push(Entry {
            reference: r,
            descriptor,
            raw,
        });
    }
    save(root, &list, &entries)?;
    println!("Created manifest list {list}");
    Ok(ExitCode::SUCCESS)
}

/// Docker's `validOSArches` (Go's list, plus linux/s390x).
const VALID_OS_ARCH: &[(&str, &str)] = &[
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm"),
    ("darwin", "arm64"),
    ("dragonfly", "amd64"),
    ("freebsd", "386"),
    ("freebsd", "amd64"),
    ("freebsd", "arm"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("linux", "mips64"),
    ("linux", "mips64le"),
    ("linux", "riscv64"),
    ("linux", "s390x"),
    ("netbsd", "386"),
    ("netbsd", "amd64"),
    ("netbsd", "arm"),
    ("openbsd", "386"),
    ("openbsd", "amd64"),
    ("openbsd", "arm"),
    ("plan9", "386"),
    ("plan9", "amd64"),
    ("solaris", "amd64"),
    ("windows", "386"),
    ("windows", "amd64"),
];

pub fn annotate(root: &Path, a: AnnotateArgs) -> Result<ExitCode> {
    let list =
        normalize(&a.list).with_context(|| format!("annotate: error parsing name for manifest list {}", a.list))?;
    let image =
        normalize(&a.manifest).with_context(|| format!("annotate: error parsing name for manifest {}", a.manifest))?;
    let mut entries = load(root, &list)?.unwrap_or_default();
    let Some(e) = entries.iter_mut().find(|e| e.reference == image) else {
        bail!("manifest for image {} does not exist in {}", a.manifest, a.list);
    };
    let p = e.descriptor.platform.get_or_insert_with(Platform::default);
    if let Some(os) = a.os.as_ref().filter(|s| !s.is_empty()) {
        p.os = os.clone();
    }
    if let Some(arch) = a.arch.as_ref().filter(|s| !s.is_empty()) {
        p.architecture = arch.clone();
    }
    for f in a.os_features.iter().filter(|f| !f.is_empty()) {
        let features = p.os_features.get_or_insert_with(Vec::new);
        if !features.contains(f) {
            features.push(f.clone());
        }
    }
    if let Some(v) = a.variant.as_ref().filter(|s| !s.is_empty()) {
        p.variant = Some(v.clone());
    }
    if let Some(v) = a.os_version.as_ref().filter(|s| !s.is_empty()) {
        p.os_version = Some(v.clone());
    }
    if !VALID_OS_ARCH.contains(&(p.os.as_str(), p.architecture.as_str())) {
        bail!(
            "manifest entry for image has unsupported os/arch combination: {}/{}",
            p.os,
            p.architecture
        );
    }
    save(root, &list, &entries)?;
    Ok(ExitCode::SUCCESS)
}

/// `manifest inspect` of a draft list: `LIST MANIFEST` shows the manifest
/// as kept (tab-indented, as Docker); `LIST` alone, when there is such a
/// draft, the manifest list `push` would put. `raw`: the bytes alone,
/// without a newline. None: not a draft (the registry is asked).
pub fn inspect_local(root: &Path, first: &str, second: Option<&str>, raw: bool) -> Result<Option<ExitCode>> {
    let mut out = std::io::stdout().lock();
    if let Some(m) = second {
        let list = normalize(first)?;
        let image = normalize(m)?;
        let entries = load(root, &list)?.unwrap_or_default();
        let Some(e) = entries.iter().find(|e| e.reference == image) else {
            bail!("No such manifest: {image}");
        };
        if raw {
            out.write_all(&e.raw)?;
        } else {
            let v: Value = serde_json::from_slice(&e.raw)?;
            writeln!(out, "{}", tab_indented(&v)?)?;
        }
        return Ok(Some(ExitCode::SUCCESS));
    }
    let list = normalize(first)?;
    let Some(entries) = load(root, &list)? else {
        return Ok(None);
    };
    let descs = list_descriptors(&list, &entries).context("failed to assemble ManifestDescriptor")?;
    let (_, bytes) = docker_manifest_list(&descs)?;
    out.write_all(&bytes)?;
    if !raw {
        writeln!(out)?;
    }
    Ok(Some(ExitCode::SUCCESS))
}

/// JSON indented with tabs (Go's `json.Indent(…, "", "\t")`), keys in
/// their order: serde_json's two-space indents turned into tabs (a JSON
/// string never holds a raw newline, so each line's leading spaces are
/// indentation only).
fn tab_indented(v: &Value) -> Result<String> {
    let text = serde_json::to_string_pretty(v)?;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let body = l.trim_start_matches(' ');
            format!("{}{body}", "\t".repeat((l.len() - body.len()) / 2))
        })
        .collect();
    Ok(lines.join("\n"))
}

/// The list's entries as Docker builds them: same registry, OS and
/// architecture required.
fn list_descriptors(list: &Reference, entries: &[Entry]) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for e in entries {
        if e.reference.domain() != list.domain() {
            bail!(
                "cannot use source images from a different registry than the target image: {} != {}",
                e.reference.domain(),
                list.domain()
            );
        }
        out.push(e.descriptor.clone());
    }
    Ok(out)
}

fn repository_of(r: &Reference) -> Result<Reference> {
    Ok(Reference::from_parts(&r.repository(), None, None)?)
}

pub fn push(root: &Path, a: PushArgs) -> Result<ExitCode> {
    let list = normalize(&a.list)?;
    let Some(entries) = load(root, &list)? else {
        bail!("No such manifest: {list}");
    };
    if entries.is_empty() {
        bail!("{list} not found");
    }
    for e in &entries {
        let p = e.descriptor.platform.as_ref();
        if p.is_none_or(|p| p.os.is_empty() || p.architecture.is_empty()) {
            bail!(
                "manifest {} must have an OS and Architecture to be pushed to a registry",
                e.reference
            );
        }
    }
    let descs = list_descriptors(&list, &entries)?;
    let opts = client_options(a.tls_verify && !a.insecure)?;
    let target = RegistryLocation::new(&repository_of(&list)?, opts.clone())?;
    let (media_type, bytes) = docker_manifest_list(&descs)?;
    let desc = Descriptor::new(&media_type, Digest::sha256_of(&bytes), bytes.len() as u64);
    block_on(async {
        // Manifests of other repositories first (their blobs mounted).
        for e in entries.iter().filter(|e| e.reference.path() != list.path()) {
            let src = RegistryLocation::new(&repository_of(&e.reference)?, opts.clone())?;
            copy_manifest(
                &src,
                &target,
                &e.descriptor,
                strata_registry::DEFAULT_CONCURRENT_TRANSFERS,
            )
            .await
            .with_context(|| format!("copying {} into {}", e.reference, list.repository()))?;
            println!(
                "Pushed ref {}@{} with digest: {}",
                list.repository(),
                e.descriptor.digest,
                e.descriptor.digest
            );
        }
        put_named(&target, &desc, &bytes, &[list.to_string()])
            .await
            .with_context(|| format!("pushing {list}"))?;
        Ok::<_, anyhow::Error>(())
    })??;
    println!("{}", desc.digest);
    if a.purge {
        remove(root, &list)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(root: &Path, list: &Reference) -> Result<()> {
    let path = list_file(root, list);
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
}

pub fn rm(root: &Path, a: RmArgs) -> Result<ExitCode> {
    let mut errors = Vec::new();
    for l in &a.lists {
        let r = match normalize(l) {
            Ok(r) => r,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        match load(root, &r) {
            Ok(Some(_)) => {
                if let Err(e) = remove(root, &r) {
                    errors.push(format!("{e:#}"));
                }
            }
            Ok(None) => errors.push(format!("No such manifest: {r}")),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(anyhow!(errors.join("\n")))
    }
}

#[cfg(test)]
mod tests {
    use strata_oci::media;

    use super::*;

    #[test]
    fn names_escape_as_docker_escapes_them() {
        let r = normalize("127.0.0.1:5000/app:v1").unwrap();
        assert_eq!(file_safe(&r.to_string()), "127.0.0.1-5000_app-v1");
        let r = normalize("busybox").unwrap();
        assert_eq!(file_safe(&r.to_string()), "docker.io_library_busybox-latest");
    }

    #[test]
    fn lists_round_trip_and_collisions_are_not_confused() {
        let dir = tempfile::tempdir().unwrap();
        let list = normalize("reg.example/app:v1-latest").unwrap();
        let other = normalize("reg.example/app-v1").unwrap(); // escapes the same
        assert_eq!(list_file(dir.path(), &list), list_file(dir.path(), &other));
        let raw = br#"{"schemaVersion":2}"#.to_vec();
        let mut descriptor = Descriptor::new(media::OCI_MANIFEST, Digest::sha256_of(&raw), raw.len() as u64);
        descriptor.platform = Some(Platform::parse("linux/amd64").unwrap());
        let e = Entry {
            reference: normalize("reg.example/app:amd64").unwrap(),
            descriptor,
            raw,
        };
        save(dir.path(), &list, std::slice::from_ref(&e)).unwrap();
        let back = load(dir.path(), &list).unwrap().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].reference, e.reference);
        assert_eq!(back[0].descriptor, e.descriptor);
        assert_eq!(back[0].raw, e.raw);
        assert!(load(dir.path(), &other).unwrap().is_none());
        let e = save(dir.path(), &other, &[]).unwrap_err().to_string();
        assert!(e.contains("under the same escaped name"), "{e}");
        assert_eq!(load(dir.path(), &list).unwrap().unwrap().len(), 1);
    }
}
