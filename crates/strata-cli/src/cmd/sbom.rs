//! `strata sbom IMAGE` (docker sbom's shape) and [`image_sbom`], the SBOM of
//! an image of the store or, when the store lacks it, of a registry image
//! streamed layer by layer (nothing stored). `strata scan` and `strata scout`
//! start from [`image_sbom`] too.
//!
//! The base image ([`ImageSbom::base`], Scout's "base image" split) is found
//! by this rule:
//! 1. the longest proper prefix of the image's diff IDs that equals the
//!    whole diff ID list of another image of the store: that image is the
//!    base (named by its first tag, else its short ID), with that many layers;
//! 2. else, when the config's label (or the manifest's annotation)
//!    `org.opencontainers.image.base.name` names an image of the store whose
//!    diff IDs are a proper prefix of the image's, that image with its layer
//!    count;
//! 3. else `None`: a base named only by the label, whose layers are not
//!    known here, cannot split the layers and is not reported.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use strata_oci::media::{self, Compression};
use strata_oci::{Descriptor, Digest, Document, ImageConfig, Manifest, Platform, Reference};
use strata_sbom::{ImageInfo, LayerInput, Options, Sbom};
use strata_store::{ImageRecord, Store, StoreLock};
use strata_transfer::registry::RegistryLocation;
use strata_transfer::{BlobStream, Source, VerifyingReader, read_document_verified};

use super::open_store;

/// The label (config) or annotation (manifest) naming the base image.
pub(crate) const BASE_NAME_LABEL: &str = "org.opencontainers.image.base.name";

/// An image's SBOM and what it is.
#[allow(dead_code)] // `strata scan` and `strata scout` read all of it
pub(crate) struct ImageSbom {
    pub sbom: Sbom,
    /// As the user named it.
    pub name: String,
    /// The image ID (config digest).
    pub id: String,
    pub base: Option<BaseImage>,
}

/// The image an image was built on: its name and how many of the image's
/// bottom layers are its.
#[allow(dead_code)]
pub(crate) struct BaseImage {
    pub name: String,
    pub layers: usize,
}

/// IMAGE from the local store (by name or ID) or, when not there and it is
/// a registry reference, streamed from the registry (config + each layer
/// blob decompressed and catalogued on the fly, nothing stored: "scanning a
/// remote reference reads only what it needs").
///
/// With `platform`, a local image of another platform is passed over for
/// the registry's image of that platform.
pub(crate) fn image_sbom(root: &Path, image: &str, platform: Option<&str>) -> Result<ImageSbom> {
    with_image_layers(root, image, platform, |store, meta, layers| {
        let opts = Options {
            image: ImageInfo {
                name: image.to_string(),
                id: Some(meta.id.to_string()),
                manifest_digest: meta.manifest.as_ref().map(|d| d.to_string()),
                platform: Some(platform_string(&meta.config)),
            },
            ..Options::default()
        };
        let sbom = strata_sbom::catalog(layers, &opts)?;
        let base = find_base(
            store,
            &meta.id,
            &meta.config.rootfs.diff_ids,
            meta.base_label().as_deref(),
        )?;
        Ok(ImageSbom {
            sbom,
            name: image.to_string(),
            id: meta.id.to_string(),
            base,
        })
    })
}

/// What is known of an image before its layers are read.
pub(crate) struct ImageMeta {
    /// The image ID (config digest).
    pub id: Digest,
    /// The manifest the name resolved to, when known.
    pub manifest: Option<Digest>,
    pub manifest_doc: Option<Manifest>,
    pub config: ImageConfig,
    /// Each layer's blob, bottom first.
    pub blobs: Vec<Descriptor>,
}

impl ImageMeta {
    /// `org.opencontainers.image.base.name` from the config's labels or the manifest's annotations.
    pub(crate) fn base_label(&self) -> Option<String> {
        base_label(&self.config, self.manifest_doc.as_ref())
    }
}

/// A layer's plain tar stream, from the store or a registry.
pub(crate) enum LayerReader<'a> {
    Local(LocalLayer),
    Remote(Box<RemoteLayer<'a>>),
}

impl Read for LayerReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LayerReader::Local(l) => l.read(buf),
            LayerReader::Remote(r) => r.read(buf),
        }
    }
}

/// Runs `f` on IMAGE's layers (bottom first, each labelled with its diff ID
/// and history step, opened lazily): from the store, or streamed from the
/// registry when the store lacks it (see [`image_sbom`]). A registry blob
/// whose bytes are not its digest's fails the whole call, after `f`.
pub(crate) fn with_image_layers<T>(
    root: &Path,
    image: &str,
    platform: Option<&str>,
    f: impl FnOnce(&Store, &ImageMeta, Vec<LayerInput<LayerReader<'_>>>) -> Result<T>,
) -> Result<T> {
    let wanted = platform
        .map(|p| Platform::parse(p).map_err(|e| anyhow!("invalid --platform {p:?}: {e}")))
        .transpose()?;
    let store = open_store(root)?;
    let local = match strata_image::resolve(&store, image) {
        Ok(r) => Some(r),
        Err(strata_image::Error::NoSuchImage(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = local {
        let rec_platform = record_platform(&r.image);
        if wanted.as_ref().is_none_or(|w| w.matches(&rec_platform)) {
            return with_local_layers(&store, &r.image, Some(r.manifest.clone()), f);
        }
        if image.starts_with("sha256:") || Reference::parse(image).is_err() {
            bail!(
                "image {image} is {rec_platform}, not {}",
                wanted.as_ref().map(|w| w.to_string()).unwrap_or_default()
            );
        }
    }
    if image.starts_with("sha256:") {
        bail!("No such image: {image}");
    }
    let reference = Reference::parse(image)
        .map_err(|e| anyhow!("No such image: {image} (not in the store, and not a registry reference: {e})"))?;
    with_remote_layers(&store, &reference.with_default_tag(), wanted, f)
        .with_context(|| format!("{image} is not in the store; reading it from its registry"))
}

fn record_platform(r: &ImageRecord) -> Platform {
    let mut s = format!("{}/{}", r.os, r.arch);
    if let Some(v) = &r.variant {
        s.push('/');
        s.push_str(v);
    }
    Platform::parse(&s).unwrap_or_else(|_| Platform::host())
}

fn platform_string(c: &ImageConfig) -> String {
    match &c.variant {
        Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
        None => format!("{}/{}", c.os, c.architecture),
    }
}

/// The history step of each layer, bottom first (`empty_layer` steps make no
/// layer); `None` past the history's end.
fn layer_steps(config: &ImageConfig) -> Vec<Option<String>> {
    let mut steps: Vec<Option<String>> = config
        .history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created_by.clone())
        .collect();
    steps.resize(config.rootfs.diff_ids.len(), None);
    steps.truncate(config.rootfs.diff_ids.len());
    steps
}

/// The store's images other than `id`: (name, diff IDs).
fn other_images(store: &Store, id: &Digest) -> Result<Vec<(String, Vec<Digest>)>> {
    Ok(store
        .list_images()?
        .into_iter()
        .filter(|i| &i.id != id)
        .map(|i| {
            let name = i
                .tags
                .first()
                .map(|t| format!("{}:{}", strata_oci::reference::familiar_repository(&t.repo), t.tag))
                .unwrap_or_else(|| i.id.short().to_string());
            (name, i.diff_ids)
        })
        .collect())
}

/// Rule 1 of the module's documentation: the image of `others` (name,
/// diff IDs) whose whole diff ID list is the longest proper prefix of
/// `diff_ids`.
fn longest_base(diff_ids: &[Digest], others: Vec<(String, Vec<Digest>)>) -> Option<BaseImage> {
    let mut best: Option<BaseImage> = None;
    for (name, ids) in others {
        if is_proper_prefix(&ids, diff_ids) && best.as_ref().is_none_or(|b| ids.len() > b.layers) {
            best = Some(BaseImage {
                name,
                layers: ids.len(),
            });
        }
    }
    best
}

fn is_proper_prefix(ids: &[Digest], of: &[Digest]) -> bool {
    !ids.is_empty() && ids.len() < of.len() && of.starts_with(ids)
}

/// The base image by the rule in the module's documentation.
pub(crate) fn find_base(
    store: &Store,
    id: &Digest,
    diff_ids: &[Digest],
    label: Option<&str>,
) -> Result<Option<BaseImage>> {
    if let Some(b) = longest_base(diff_ids, other_images(store, id)?) {
        return Ok(Some(b));
    }
    if let Some(label) = label
        && let Ok(r) = strata_image::resolve(store, label)
        && r.image.id != *id
        && is_proper_prefix(&r.image.diff_ids, diff_ids)
    {
        return Ok(Some(BaseImage {
            name: label.to_string(),
            layers: r.image.diff_ids.len(),
        }));
    }
    Ok(None)
}

fn base_label(config: &ImageConfig, manifest: Option<&Manifest>) -> Option<String> {
    config
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(BASE_NAME_LABEL).cloned())
        .or_else(|| {
            manifest
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(BASE_NAME_LABEL).cloned())
        })
        .filter(|s| !s.is_empty())
}

/// The plain tar stream of a layer blob, whatever its compression (gzip,
/// zstd or none, told by its first bytes). A concrete type, so that it can
/// move to the thread that catalogues it.
pub(crate) enum Plain<R: BufRead> {
    Raw(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::Decoder<'static, R>),
}

impl<R: BufRead> Plain<R> {
    pub(crate) fn new(mut reader: R) -> io::Result<Plain<R>> {
        let head = reader.fill_buf()?;
        Ok(match Compression::sniff(head) {
            Compression::None => Plain::Raw(reader),
            Compression::Gzip => Plain::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(reader))),
            Compression::Zstd => Plain::Zstd(zstd::Decoder::with_buffer(reader)?),
        })
    }

    /// The compressed stream underneath.
    fn raw(&mut self) -> &mut R {
        match self {
            Plain::Raw(r) => r,
            Plain::Gzip(d) => d.get_mut(),
            Plain::Zstd(d) => d.get_mut(),
        }
    }
}

impl<R: BufRead> Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Plain::Raw(r) => r.read(buf),
            Plain::Gzip(d) => d.read(buf),
            Plain::Zstd(d) => d.read(buf),
        }
    }
}

/// A layer blob of the store, opened before the catalogue starts (the files
/// stay readable if an `rmi` removes them meanwhile) and decompressed on
/// first read, on the thread that catalogues it.
pub(crate) enum LocalLayer {
    Closed(File),
    Open(Box<Plain<BufReader<File>>>),
    Taken,
}

impl LocalLayer {
    pub(crate) fn new(f: File) -> LocalLayer {
        LocalLayer::Closed(f)
    }
}

impl Read for LocalLayer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let LocalLayer::Closed(_) = self {
            let LocalLayer::Closed(f) = std::mem::replace(self, LocalLayer::Taken) else {
                unreachable!()
            };
            *self = LocalLayer::Open(Box::new(Plain::new(BufReader::with_capacity(1 << 20, f))?));
        }
        match self {
            LocalLayer::Open(p) => p.read(buf),
            _ => Err(io::Error::other("layer stream already failed")),
        }
    }
}

/// The blob files of an image's layers, bottom first, opened under the
/// store lock, and their descriptors.
fn open_local_layers(store: &Store, diff_ids: &[Digest]) -> Result<(Vec<File>, Vec<Descriptor>)> {
    let _lock = StoreLock::shared(store.root())?;
    let mut files = Vec::new();
    let mut blobs = Vec::new();
    for (i, d) in diff_ids.iter().enumerate() {
        let blob = store
            .held_layer_blobs(d)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("layer {i} ({d}) is not in the store"))?;
        files.push(
            store
                .open_blob(&blob.digest)
                .with_context(|| format!("opening layer {i} ({d})"))?,
        );
        blobs.push(blob);
    }
    Ok((files, blobs))
}

pub(crate) fn load_config(store: &Store, id: &Digest) -> Result<ImageConfig> {
    let bytes = store.read_blob(id, media::MAX_DOCUMENT_SIZE)?;
    ImageConfig::parse(&bytes).with_context(|| format!("image config {id}"))
}

fn with_local_layers<T>(
    store: &Store,
    image: &ImageRecord,
    manifest: Option<Digest>,
    f: impl FnOnce(&Store, &ImageMeta, Vec<LayerInput<LayerReader<'_>>>) -> Result<T>,
) -> Result<T> {
    let config = load_config(store, &image.id)?;
    let diff_ids = config.rootfs.diff_ids.clone();
    let (files, blobs) = open_local_layers(store, &diff_ids)?;
    let steps = layer_steps(&config);
    let manifest_doc = manifest.as_ref().and_then(|m| {
        let bytes = store.read_blob(m, media::MAX_DOCUMENT_SIZE).ok()?;
        match Document::parse(&bytes, None) {
            Ok(Document::Manifest(m)) => Some(m),
            _ => None,
        }
    });
    let meta = ImageMeta {
        id: image.id.clone(),
        manifest,
        manifest_doc,
        config,
        blobs,
    };
    let layers = files
        .into_iter()
        .zip(diff_ids.iter())
        .zip(steps)
        .map(|((f, d), step)| LayerInput {
            reader: LayerReader::Local(LocalLayer::new(f)),
            digest: Some(d.to_string()),
            created_by: step,
        })
        .collect();
    f(store, &meta, layers)
}

/// A registry blob as a blocking reader: each read waits on the runtime
/// for the next bytes of the verified stream.
struct Bridge {
    handle: tokio::runtime::Handle,
    stream: Pin<Box<VerifyingReader<BlobStream>>>,
}

impl Read for Bridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let stream = &mut self.stream;
        self.handle.block_on(stream.read(buf))
    }
}

/// A registry layer: opened on first read (on the thread that catalogues
/// it), decompressed, and read to the end of the blob when dropped so that
/// its digest is checked even when the tar ends before the compressed
/// stream does; a mismatch lands in `failures`.
pub(crate) struct RemoteLayer<'a> {
    location: &'a RegistryLocation,
    handle: tokio::runtime::Handle,
    desc: Descriptor,
    index: usize,
    plain: Option<Plain<BufReader<Bridge>>>,
    failed: bool,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Read for RemoteLayer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("layer stream already failed"));
        }
        let r = self.read_inner(buf);
        if r.is_err() {
            self.failed = true;
        }
        r
    }
}

impl RemoteLayer<'_> {
    fn read_inner(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.plain.is_none() {
            let stream = self
                .handle
                .block_on(self.location.open_blob(&self.desc))
                .map_err(io::Error::other)?;
            let bridge = Bridge {
                handle: self.handle.clone(),
                stream: Box::pin(VerifyingReader::new(stream, &self.desc)),
            };
            self.plain = Some(Plain::new(BufReader::with_capacity(1 << 20, bridge))?);
        }
        self.plain.as_mut().expect("opened").read(buf)
    }
}

impl Drop for RemoteLayer<'_> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        let Some(plain) = self.plain.as_mut() else { return };
        let drained = io::copy(plain, &mut io::sink()).and_then(|_| io::copy(plain.raw(), &mut io::sink()));
        if let Err(e) = drained {
            self.failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("layer {} ({}): {e}", self.index, self.desc.digest));
        }
    }
}

fn with_remote_layers<T>(
    store: &Store,
    reference: &Reference,
    wanted: Option<Platform>,
    f: impl FnOnce(&Store, &ImageMeta, Vec<LayerInput<LayerReader<'_>>>) -> Result<T>,
) -> Result<T> {
    let options = super::distribution::client_options(true)?;
    let location = RegistryLocation::new(reference, options)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;
    let wanted = wanted.unwrap_or_else(Platform::host);
    let (manifest_desc, manifest, config_desc, config) = rt.block_on(async {
        let top = location.resolve(None).await?;
        let bytes = read_document_verified(&top, location.read_document(&top).await?)?;
        let (desc, manifest) =
            match Document::parse(&bytes, Some(&top.media_type)).map_err(|e| anyhow!("{}: {e}", top.digest))? {
                Document::Manifest(m) => (top, m),
                Document::Index(ix) => {
                    let d = ix
                        .manifests
                        .iter()
                        .filter(|d| media::is_manifest(&d.media_type))
                        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
                        .cloned()
                        .ok_or_else(|| {
                            anyhow!(
                                "{reference}: no image for platform {wanted} (the index has {})",
                                ix.manifests
                                    .iter()
                                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                    let bytes = read_document_verified(&d, location.read_document(&d).await?)?;
                    match Document::parse(&bytes, Some(&d.media_type)).map_err(|e| anyhow!("{}: {e}", d.digest))? {
                        Document::Manifest(m) => (d, m),
                        Document::Index(_) => bail!("{}: nested indexes are not supported", d.digest),
                    }
                }
            };
        let config_desc = manifest.config.clone();
        let bytes = read_document_verified(&config_desc, location.read_document(&config_desc).await?)?;
        let config = ImageConfig::parse(&bytes).with_context(|| format!("image config {}", config_desc.digest))?;
        anyhow::Ok((desc, manifest, config_desc, config))
    })?;
    if !manifest.layers.is_empty() && config.rootfs.diff_ids.len() != manifest.layers.len() {
        bail!(
            "{reference}: the manifest has {} layers but the config {} diff IDs",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        );
    }
    let diff_ids = config.rootfs.diff_ids.clone();
    let steps = layer_steps(&config);
    let meta = ImageMeta {
        id: config_desc.digest.clone(),
        manifest: Some(manifest_desc.digest.clone()),
        blobs: manifest.layers.clone(),
        manifest_doc: Some(manifest),
        config,
    };
    let failures = Arc::new(Mutex::new(Vec::new()));
    let handle = rt.handle().clone();
    let layers = meta
        .blobs
        .iter()
        .enumerate()
        .zip(steps)
        .map(|((index, desc), step)| LayerInput {
            reader: LayerReader::Remote(Box::new(RemoteLayer {
                location: &location,
                handle: handle.clone(),
                desc: desc.clone(),
                index,
                plain: None,
                failed: false,
                failures: failures.clone(),
            })),
            digest: Some(diff_ids[index].to_string()),
            created_by: step,
        })
        .collect();
    let out = f(store, &meta, layers);
    let failures = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(failure) = failures.first() {
        bail!("{reference}: {failure}");
    }
    out
}

#[derive(Args)]
#[command(override_usage = "strata sbom [OPTIONS] IMAGE")]
pub struct SbomArgs {
    /// Report format: table, spdx-json, cyclonedx-json, json (strata's; syft-json is an alias)
    #[arg(long, value_name = "string", default_value = "table")]
    format: String,
    /// Write the report to a file
    #[arg(short, long, value_name = "string")]
    output: Option<PathBuf>,
    /// Platform of a registry image (os/arch[/variant]; default: the host's)
    #[arg(long, value_name = "string")]
    platform: Option<String>,
    /// Image from the store (name or ID) or a registry reference (read remotely, nothing stored)
    image: String,
}

/// The document in `format`.
pub(crate) fn render(sbom: &Sbom, format: &str) -> Result<String> {
    Ok(match format {
        "table" => sbom.to_table(),
        "spdx-json" | "spdx" => sbom.to_spdx_json(),
        "cyclonedx-json" | "cyclonedx" => sbom.to_cyclonedx_json(),
        "json" | "syft-json" => sbom.to_json(),
        other => bail!("unknown format {other:?}: use table, spdx-json, cyclonedx-json or json"),
    })
}

pub fn sbom(root: &Path, a: SbomArgs) -> Result<ExitCode> {
    // The format is checked before any layer is read.
    render_check(&a.format)?;
    let img = image_sbom(root, &a.image, a.platform.as_deref())?;
    let out = render(&img.sbom, &a.format)?;
    for w in &img.sbom.warnings {
        eprintln!("warning: {w}");
    }
    match &a.output {
        Some(path) => super::write_output(Some(path), |w| Ok(w.write_all(out.as_bytes())?))?,
        None => {
            use std::io::Write;
            let mut stdout = io::stdout().lock();
            stdout.write_all(out.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render_check(format: &str) -> Result<()> {
    match format {
        "table" | "spdx-json" | "spdx" | "cyclonedx-json" | "cyclonedx" | "json" | "syft-json" => Ok(()),
        other => bail!("unknown format {other:?}: use table, spdx-json, cyclonedx-json or json"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    #[test]
    fn the_base_is_the_longest_image_whose_layers_start_this_one() {
        let image = vec![d(1), d(2), d(3), d(4)];
        let others = vec![
            ("debian:12".to_string(), vec![d(1)]),
            ("python:3".to_string(), vec![d(1), d(2), d(3)]),
            ("other:1".to_string(), vec![d(1), d(9)]),
            // The same layers is the image itself (another tag), not a base.
            ("same:1".to_string(), image.clone()),
            ("longer:1".to_string(), vec![d(1), d(2), d(3), d(4), d(5)]),
        ];
        let b = longest_base(&image, others).unwrap();
        assert_eq!((b.name.as_str(), b.layers), ("python:3", 3));
        assert!(longest_base(&image, vec![("x:1".into(), vec![d(2)])]).is_none());
        assert!(longest_base(&image, vec![("empty:1".into(), vec![])]).is_none());
    }

    #[test]
    fn each_layer_gets_its_step_and_empty_steps_are_skipped() {
        let config: ImageConfig = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [d(1).to_string(), d(2).to_string(), d(3).to_string()]},
            "history": [
                {"created_by": "ADD rootfs /"},
                {"created_by": "ENV A=1", "empty_layer": true},
                {"created_by": "RUN make"},
            ]
        }))
        .unwrap();
        assert_eq!(
            layer_steps(&config),
            vec![Some("ADD rootfs /".to_string()), Some("RUN make".to_string()), None]
        );
    }
}
