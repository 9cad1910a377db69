//! `import`: a root filesystem (directory or tarball, plain, gzip or zstd)
//! becomes a one-layer image.

use std::io::Read;
use std::path::PathBuf;

use strata_layer::{Compression, WriteOptions};
use strata_oci::{ContainerConfig, Descriptor, Digest, History, ImageConfig, Platform, Reference, RootFs, media};
use strata_store::{LayerRecord, Store, StoreLock};

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
    let layer = Descriptor::new(media::OCI_LAYER_TAR, layer_digest, layer_size);
    let layers = vec![LayerRecord {
        diff_id: digests.diff_id,
        diff_size: digests.diff_size,
        blob: layer,
    }];
    crate::register::register(store, &config, layers, opts.reference.as_ref())
}
