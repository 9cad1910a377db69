//! Registering a new local image (import, commit, build): config and OCI
//! manifest blobs, the image's rows, and optionally a tag.

use strata_oci::{Descriptor, ImageConfig, Manifest, Reference, media};
use strata_store::{LayerRecord, NewImage, Store};

use crate::error::Result;
use crate::import::Imported;

/// Writes `config` and a manifest over `layers` (whose blobs must be in the
/// store) and records the image; tags it when `reference` is given.
pub fn register(
    store: &mut Store,
    config: &ImageConfig,
    layers: Vec<LayerRecord>,
    reference: Option<&Reference>,
) -> Result<Imported> {
    let config_bytes = config.to_bytes();
    let config_digest = store.put_blob(&config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
        layers: layers.iter().map(|l| l.blob.clone()).collect(),
        subject: None,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    store.add_image(&NewImage {
        config_digest: config_digest.clone(),
        created: config.created.clone(),
        os: config.os.clone(),
        arch: config.architecture.clone(),
        variant: config.variant.clone(),
        manifest: Descriptor::new(
            media::OCI_MANIFEST,
            manifest_digest.clone(),
            manifest_bytes.len() as u64,
        ),
        layers,
    })?;
    let untagged = match reference {
        Some(r) => store.set_tag(&r.clone().with_default_tag(), &manifest_digest)?,
        None => None,
    };
    Ok(Imported {
        id: config_digest,
        manifest: manifest_digest,
        untagged,
    })
}
