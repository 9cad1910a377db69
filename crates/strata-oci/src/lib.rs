//! strata-oci: the pure data of container images — digests, references,
//! platforms, media types, manifests, indexes and configs.
//!
//! Owns parsing and validation of everything that names or describes an
//! image. Must never do I/O: no files, no network, no clock.

pub mod digest;
pub mod image;
pub mod media;
pub mod platform;
pub mod reference;

pub use digest::{Algorithm, Digest, DigestError, Hasher, HashingReader, HashingWriter};
pub use image::{ContainerConfig, Descriptor, Document, DocumentError, History, ImageConfig, Index, Manifest, RootFs};
pub use media::Compression;
pub use platform::Platform;
pub use reference::{Reference, ReferenceError};

/// Chain ID of a layer stack (OCI image-spec): the diff ID of the first
/// layer, then `sha256(parent_chain + " " + diff_id)` for each next one.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}
