//! `import`: a root filesystem (directory or tarball, plain, gzip or zstd)
//! becomes a one-layer image.

use std::io::Read;
use std::path::PathBuf;

use strata_layer::{Compression, WriteOptions};
use strata_oci::{
    ContainerConfig, Descriptor, Digest, History, ImageConfig, Manifest, Platform, Reference, RootFs, media,
};
use strata_store::{LayerRecord, NewImage, Store, StoreLock};

use crate::error::{Error, Result};

pub enum ImportSource<'a> {
    Dir(PathBuf),
    /// A tar stream and the name Docker records for it (`-` or the file).
    Stream(Box<dyn Read + 'a>, String),
}

#[derive(Default)]
pub struct ImportOptions {
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub reference: Option<Reference>,
    pub platform: Option<Platform>,
    /// Fixed timestamps (created, file mtimes) for reproducible output.
    pub source_date_epoch: Option<i64>,
}

pub struct Imported {
    pub id: Digest,
    pub manifest: Digest,
    /// An image that lost its tag to this one.
    pub untagged: Option<Digest>,
}

pub fn import(store: &mut Store, source: ImportSource<'_>, opts: &ImportOptions) -> Result<Imported> {
    let mut container = ContainerConfig::default();
    for c in &opts.changes {
        crate::changes::apply_change(&mut container, c).map_err(|e| Error::Invalid(e.to_string()))?;
    }
    let write_opts = WriteOptions {
        compression: Compression::None,
        level: None,
        source_date_epoch: opts.source_date_epoch,
    };
    let _lock = StoreLock::shared(store.root())?;
    let mut writer = store.blob_writer()?;
    let (digests, source_name) = match source {
        ImportSource::Dir(dir) => {
            let d = strata_layer::write_dir_layer(&dir, &write_opts, &mut writer)?;
            (d, dir.display().to_string())
        }
        ImportSource::Stream(r, name) => (strata_layer::recompress(r, &write_opts, &mut writer)?, name),
    };
    let (layer_digest, layer_size) = writer.commit(Some(&digests.digest))?;
    let created = match opts.source_date_epoch {
        Some(s) => jiff::Timestamp::from_second(s)
            .map_err(|e| Error::Invalid(format!("SOURCE_DATE_EPOCH: {e}")))?
            .to_string(),
        None => crate::time::now_rfc3339(),
    };
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let config = ImageConfig {
        created: Some(created.clone()),
        author: None,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(container),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![digests.diff_id.clone()],
        },
        history: vec![History {
            created: Some(created.clone()),
            created_by: Some(format!("strata import {source_name}")),
            comment: Some(
                opts.message
                    .clone()
                    .unwrap_or_else(|| format!("Imported from {source_name}")),
            ),
            ..Default::default()
        }],
        extra: Default::default(),
    };
    let config_bytes = config.to_bytes();
    let config_digest = store.put_blob(&config_bytes)?;
    let layer = Descriptor::new(media::OCI_LAYER_TAR, layer_digest, layer_size);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media::OCI_CONFIG, config_digest.clone(), config_bytes.len() as u64),
        layers: vec![layer.clone()],
        subject: None,
        annotations: None,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
    let manifest_digest = store.put_blob(&manifest_bytes)?;
    store.add_image(&NewImage {
        config_digest: config_digest.clone(),
        created: Some(created),
        os: platform.os,
        arch: platform.architecture,
        variant: platform.variant,
        manifest: Descriptor::new(
            media::OCI_MANIFEST,
            manifest_digest.clone(),
            manifest_bytes.len() as u64,
        ),
        layers: vec![LayerRecord {
            diff_id: digests.diff_id,
            diff_size: digests.diff_size,
            blob: layer,
        }],
    })?;
    let untagged = match &opts.reference {
        Some(r) => store.set_tag(&r.clone().with_default_tag(), &manifest_digest)?,
        None => None,
    };
    Ok(Imported {
        id: config_digest,
        manifest: manifest_digest,
        untagged,
    })
}
