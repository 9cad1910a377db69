//! Image archives of either kind, several images each, as `strata save`
//! writes them and `strata load` reads them (`docker save`/`docker load`,
//! podman and skopeo alike).
//!
//! To read, [`ImageArchive::open`] unpacks a file or a stream (STDIN: read
//! once, through the same checks as a file) and tells a docker-archive
//! (`manifest.json`, legacy or Docker 25+) from an OCI archive
//! (`index.json`); [`ImageArchive::images`] lists every image with its
//! names, each one copied by its `reference`.
//!
//! To write, [`ArchiveSink::create`] takes several copies (each `finish`
//! adds its image) and [`ArchiveSink::commit`] writes the archive once: a
//! file atomically (a temporary file beside it, renamed onto it), or a
//! stream (STDOUT).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::docker_archive::DockerArchive;
use crate::oci_archive::{OciArchive, Out, Unpacked, blocking};
use crate::{BlobRole, BlobStream, Descriptor, Result, Sink, Source, TransferError};

/// Where an archive is read from.
pub enum ArchiveInput {
    File(PathBuf),
    /// A stream (STDIN), plain or compressed, read once.
    Stream(Box<dyn Read + Send>),
}

impl ArchiveInput {
    /// How messages name it.
    pub(crate) fn shown(&self) -> PathBuf {
        match self {
            ArchiveInput::File(p) => p.clone(),
            ArchiveInput::Stream(_) => PathBuf::from("STDIN"),
        }
    }
}

/// Where an archive sink writes.
pub(crate) enum Target {
    File(PathBuf),
    Stream(Mutex<Option<Box<dyn Write + Send>>>),
}

impl Target {
    pub(crate) fn shown(&self) -> PathBuf {
        match self {
            Target::File(p) => p.clone(),
            Target::Stream(_) => PathBuf::from("STDOUT"),
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An archive sink's target and the images finished into it so far.
pub(crate) struct Output<T> {
    target: Target,
    finished: Mutex<Vec<T>>,
    /// `finish` only records the image; `commit` writes.
    pub deferred: bool,
}

impl<T: Clone> Output<T> {
    pub(crate) fn new(target: Target) -> Output<T> {
        Output {
            target,
            finished: Mutex::new(Vec::new()),
            deferred: false,
        }
    }

    pub(crate) fn record(&self, image: T) {
        guard(&self.finished).push(image);
    }

    pub(crate) fn finished(&self) -> Vec<T> {
        guard(&self.finished).clone()
    }

    /// The target to write to (a stream only once).
    pub(crate) fn take(&self, shown: &Path) -> Result<Out> {
        match &self.target {
            Target::File(p) => Ok(Out::File(p.clone())),
            Target::Stream(w) => guard(w)
                .take()
                .map(Out::Stream)
                .ok_or_else(|| TransferError::Invalid(format!("{} was written already", shown.display()))),
        }
    }
}

/// One image of an archive: what to pass to `copy` as the reference, and
/// the names the archive gives it (Docker's familiar form, `busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    pub reference: String,
    pub names: Vec<String>,
}

/// The archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

/// An archive of either kind, opened to read.
pub enum ImageArchive {
    Docker(DockerArchive),
    Oci(OciArchive),
}

impl ImageArchive {
    /// Unpacks `input` under `tmp` (a private directory, removed on drop)
    /// and tells its kind.
    pub async fn open(input: ArchiveInput, tmp: &Path) -> Result<ImageArchive> {
        let tmp = tmp.to_path_buf();
        blocking(move || {
            let unpacked = Unpacked::read(input, &tmp)?;
            if unpacked.has("manifest.json") {
                return Ok(ImageArchive::Docker(DockerArchive::from_unpacked(unpacked)?));
            }
            if unpacked.has("index.json") {
                return Ok(ImageArchive::Oci(OciArchive::from_unpacked(unpacked)?));
            }
            Err(TransferError::Invalid(format!(
                "{}: not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)",
                unpacked.archive.display()
            )))
        })
        .await
    }

    /// Every image of the archive, in its order.
    pub fn images(&self) -> Result<Vec<ArchivedImage>> {
        match self {
            ImageArchive::Docker(a) => a.images(),
            ImageArchive::Oci(a) => a.images(),
        }
    }
}

impl Source for ImageArchive {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        match self {
            ImageArchive::Docker(a) => a.resolve(reference).await,
            ImageArchive::Oci(a) => a.resolve(reference).await,
        }
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        match self {
            ImageArchive::Docker(a) => a.read_document(desc).await,
            ImageArchive::Oci(a) => a.read_document(desc).await,
        }
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        match self {
            ImageArchive::Docker(a) => a.open_blob(desc).await,
            ImageArchive::Oci(a) => a.open_blob(desc).await,
        }
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        match self {
            ImageArchive::Docker(a) => a.blob_file(desc),
            ImageArchive::Oci(a) => a.blob_file(desc),
        }
    }
}

/// An archive of either kind to write several images into, as `docker
/// save` writes them (an OCI archive names them as Docker does too:
/// containerd's full name and the tag as `ref.name`).
pub enum ArchiveSink {
    Docker(DockerArchive),
    Oci(OciArchive),
}

impl ArchiveSink {
    /// A sink writing `format` to `file` (`None`: to `stream`), staging
    /// blobs under `tmp`.
    pub fn create(
        format: ArchiveFormat,
        file: Option<&Path>,
        stream: impl FnOnce() -> Box<dyn Write + Send>,
        tmp: &Path,
    ) -> Result<ArchiveSink> {
        Ok(match (format, file) {
            (ArchiveFormat::DockerArchive, Some(f)) => ArchiveSink::Docker(DockerArchive::create_in(f, tmp)?.several()),
            (ArchiveFormat::DockerArchive, None) => {
                ArchiveSink::Docker(DockerArchive::create_stream(stream(), tmp)?.several())
            }
            (ArchiveFormat::OciArchive, Some(f)) => {
                ArchiveSink::Oci(OciArchive::create_in(f, tmp)?.several().docker_names())
            }
            (ArchiveFormat::OciArchive, None) => {
                ArchiveSink::Oci(OciArchive::create_stream(stream(), tmp)?.several().docker_names())
            }
        })
    }

    /// Writes the archive with every image finished into it.
    pub async fn commit(&self) -> Result<()> {
        match self {
            ArchiveSink::Docker(a) => a.commit().await,
            ArchiveSink::Oci(a) => a.commit().await,
        }
    }
}

impl Sink for ArchiveSink {
    async fn has_blob(&self, desc: &Descriptor, role: &BlobRole) -> Result<bool> {
        match self {
            ArchiveSink::Docker(a) => a.has_blob(desc, role).await,
            ArchiveSink::Oci(a) => a.has_blob(desc, role).await,
        }
    }

    async fn put_blob(&self, desc: &Descriptor, role: &BlobRole, data: BlobStream) -> Result<()> {
        match self {
            ArchiveSink::Docker(a) => a.put_blob(desc, role, data).await,
            ArchiveSink::Oci(a) => a.put_blob(desc, role, data).await,
        }
    }

    async fn put_blob_file(&self, desc: &Descriptor, role: &BlobRole, data: BlobStream, file: &Path) -> Result<()> {
        match self {
            ArchiveSink::Docker(a) => a.put_blob_file(desc, role, data, file).await,
            ArchiveSink::Oci(a) => a.put_blob_file(desc, role, data, file).await,
        }
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        match self {
            ArchiveSink::Docker(a) => a.put_document(desc, bytes).await,
            ArchiveSink::Oci(a) => a.put_document(desc, bytes).await,
        }
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        match self {
            ArchiveSink::Docker(a) => a.finish(root, names).await,
            ArchiveSink::Oci(a) => a.finish(root, names).await,
        }
    }
}
