//! Layers held in another form: an image whose manifest names a layer blob
//! the store does not hold (the layer was already there, compressed
//! otherwise, when the image came in) is read with a held form of the same
//! diff ID instead, under a manifest rewritten for it (same config, so the
//! same image ID). strata-transfer's store source serves images so.

use strata_oci::{Digest, Manifest, media};
use strata_store::Store;

use crate::error::{Error, Result};

/// The manifest to serve when it names layer blobs the store does not
/// hold: each such layer replaced by a held form of its diff ID (gzip or
/// plain tar before zstd, which older loaders do not read), as an OCI
/// manifest. None when every layer blob is held.
pub fn held_forms(store: &Store, diff_ids: &[Digest], manifest: &Manifest) -> Result<Option<Manifest>> {
    if manifest.layers.iter().all(|l| store.has_blob(&l.digest)) {
        return Ok(None);
    }
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::Invalid(format!(
            "the image has {} layers, but its manifest {}",
            diff_ids.len(),
            manifest.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if store.has_blob(&l.digest) {
            layers.push(l.with_oci_media_type());
            continue;
        }
        let mut forms = store.held_layer_blobs(diff_id)?;
        forms.sort_by_key(|b| media::Compression::of_layer_media_type(&b.media_type) == Some(media::Compression::Zstd));
        let form = forms.into_iter().next().ok_or_else(|| {
            Error::Invalid(format!(
                "layer {diff_id} (blob {}) is not in the store in any form; pull the image again",
                l.digest
            ))
        })?;
        layers.push(form.with_oci_media_type());
    }
    Ok(Some(Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: manifest.artifact_type.clone(),
        config: manifest.config.with_oci_media_type(),
        layers,
        subject: manifest.subject.clone(),
        annotations: manifest.annotations.clone(),
    }))
}
