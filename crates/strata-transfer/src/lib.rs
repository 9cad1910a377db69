//! strata-transfer: one image transfer for every location. A location is an
//! image [`Source`] (resolve a reference, read a document, stream a blob)
//! and/or a [`Sink`] (has a blob, put a blob, put a document, finish with
//! the root and its names); [`copy`] walks an image or an index from one to
//! the other, skipping what the sink has, moving blobs in parallel with a
//! bound and verifying every byte against its digest on the way.
//! go-containerregistry's `remote`/`layout`/`tarball` and containerd's
//! transfer service have this shape.
//!
//! Owns the walk and the verification, nothing of any location's format:
//! locations live in their own modules (an OCI image-layout directory here;
//! registries, archives and the local store in the crates that know them).
//! Must never hand a sink a byte that was not checked against the digest
//! it was asked for before the sink sees the end of the stream (a sink
//! commits only on a clean end), never read a document larger than
//! [`MAX_DOCUMENT_SIZE`], and never name anything in a sink before all it
//! refers to is there.

pub mod any;
pub mod archive;
mod copy;
pub(crate) mod distributable;
pub mod docker_archive;
mod error;
pub mod index;
pub mod ingest;
pub mod layout;
pub mod location;
pub mod oci_archive;
pub mod pin;
pub mod progress;
pub mod pull;
pub mod push;
mod read_ahead;
pub mod registry;
pub mod store;
mod tar_out;
mod verify;
mod write_behind;

use std::future::Future;
use std::pin::Pin;

pub use copy::{BYTES_EVENT_STEP, CopyOptions, CopyReport, Event, Phase, PlatformChoice, Progress, copy, no_progress};
pub use distributable::{LayerCompression, distributable_manifest};
pub use error::TransferError;
pub use strata_oci::Descriptor;
pub use strata_oci::media::MAX_DOCUMENT_SIZE;
pub use verify::{VerifyingReader, from_io, read_document_verified};

pub type Result<T, E = TransferError> = std::result::Result<T, E>;

/// A blob's bytes, as the source streams them.
pub type BlobStream = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// What a blob is to the image being copied (a sink that unpacks layers,
/// as the local store does, needs the layer's diff ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobRole {
    /// An image config.
    Config,
    /// Layer `index` of its manifest, whose uncompressed tar has `diff_id`
    /// (from the config's `rootfs.diff_ids`; `None` when the config has none).
    Layer {
        index: usize,
        diff_id: Option<strata_oci::Digest>,
    },
    /// Anything else a manifest refers to (a subject, an artifact blob).
    Other,
}

/// Where a source's blob could be mounted from without moving its bytes
/// (a registry sink on the same registry mounts it from `repository`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFrom {
    /// The registry host as the source's client names it.
    pub registry: String,
    pub repository: String,
}

/// Where images come from.
pub trait Source: Sync {
    /// The root descriptor (manifest or index) of `reference`: a tag, a
    /// digest, or `None` for the location's only image.
    fn resolve(&self, reference: Option<&str>) -> impl Future<Output = Result<Descriptor>> + Send;

    /// A manifest, index or config; the caller checks its digest (see
    /// [`read_document_verified`]). Implementations read at most
    /// [`MAX_DOCUMENT_SIZE`] + 1 bytes.
    fn read_document(&self, desc: &Descriptor) -> impl Future<Output = Result<Vec<u8>>> + Send;

    /// A blob's bytes (layers: as stored, compressed or not); the caller verifies them.
    fn open_blob(&self, desc: &Descriptor) -> impl Future<Output = Result<BlobStream>> + Send;

    /// Where a registry sink could mount this source's blobs from, in the
    /// order to try them (the root [`Source::resolve`] gave last: the store
    /// names every repository it knows holds that image).
    fn mount_from(&self) -> Vec<MountFrom> {
        Vec::new()
    }

    /// The file [`Source::open_blob`] streams the blob from, when it is a
    /// private file of the source's that nothing else writes (an archive
    /// unpacked into a temporary directory): a sink on the same filesystem
    /// may take the file itself (link it) once the verified stream over it
    /// ended cleanly, instead of writing the bytes again (see
    /// [`Sink::put_blob_file`]).
    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        let _ = desc;
        None
    }

    /// Whether the source vouches for its blobs' digests, so that the copy
    /// checks their sizes only instead of hashing every byte again: its
    /// blobs were verified when written and are never written again (the
    /// local store, whose `system check` re-verifies them, as `docker save`
    /// reads its own store), or the streams [`Source::open_blob`] returns
    /// check the digest themselves and end in an error unless it matched
    /// (the registry client, which hashes to resume a broken download).
    /// Every other source is hashed on the way.
    fn vouches_for_digests(&self) -> bool {
        false
    }
}

/// Where images go. Nothing a sink is given is named before [`Sink::finish`]:
/// a copy that fails leaves the sink's names (tags, `index.json`, the
/// archive file) as they were.
pub trait Sink: Sync {
    /// Whether the sink holds the blob already (then it is not copied).
    fn has_blob(&self, desc: &Descriptor, role: &BlobRole) -> impl Future<Output = Result<bool>> + Send;

    /// Stores a blob from `data`. `data` ends with an error when the bytes
    /// do not match `desc` (digest or size): the sink must then keep nothing.
    fn put_blob(&self, desc: &Descriptor, role: &BlobRole, data: BlobStream)
    -> impl Future<Output = Result<()>> + Send;

    /// [`Sink::put_blob`] for a blob whose bytes are also the source's file
    /// `file` (see [`Source::blob_file`]): `data` streams them all the same,
    /// verified, and the sink may keep `file` (linked, never written to)
    /// instead of writing what it reads, only once `data` ended cleanly.
    fn put_blob_file(
        &self,
        desc: &Descriptor,
        role: &BlobRole,
        data: BlobStream,
        file: &std::path::Path,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = file;
        self.put_blob(desc, role, data)
    }

    /// Tries to get the blob without its bytes (a registry's cross-repository
    /// mount); `Ok(false)` when it cannot.
    fn mount_blob(&self, desc: &Descriptor, from: &MountFrom) -> impl Future<Output = Result<bool>> + Send {
        let _ = (desc, from);
        async { Ok(false) }
    }

    /// Whether the sink keeps an index of which it holds only some images
    /// (the store, which records the platforms it holds): a copy of chosen
    /// platforms then writes the source's index unchanged rather than an
    /// index of just those (a new digest), and leaves out what is attached
    /// to images (attestation manifests).
    fn keeps_partial_indexes(&self) -> bool {
        false
    }

    /// Stores a manifest or index (verified already), after every blob it refers to.
    fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Names the root (tags, `index.json`, the archive's `manifest.json`):
    /// the commit point of the copy.
    fn finish(&self, root: &Descriptor, names: &[String]) -> impl Future<Output = Result<()>> + Send;
}
