//! `commit`: a container's changes become a new image layer on top of its
//! image, with the container's config (env, workdir, ports, volumes,
//! entrypoint, cmd) and `--change` instructions.

use crate::error::{Error, Result};
use strata_layer::{Compression, WriteOptions};
use strata_oci::{Descriptor, Digest, History, Reference, media};
use strata_store::{LayerRecord, StoreLock};

use crate::engine::Containers;
use crate::record::ContainerRecord;

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub author: Option<String>,
    pub message: Option<String>,
    pub changes: Vec<String>,
    pub reference: Option<Reference>,
}

impl Containers {
    pub fn commit(&mut self, rec: &ContainerRecord, opts: &CommitOptions) -> Result<strata_image::Imported> {
        let image_id = Digest::parse(&rec.image_id)?;
        let mut config = self.image_config(&image_id)?;
        let mut cc = rec.config.clone();
        for c in &opts.changes {
            strata_image::apply_change(&mut cc, c)?;
        }
        let _lock = StoreLock::shared(self.store.root())?;
        let mut w = self.store.blob_writer()?;
        let opts_w = WriteOptions {
            compression: Compression::None,
            level: None,
            source_date_epoch: None,
        };
        let snapshot = self.snap.get(&rec.id)?;
        let commit = strata_snapshot::CommitOptions {
            layer: opts_w,
            skip_if_empty: false,
        };
        let d = self
            .snap
            .commit(&snapshot, &strata_snapshot::Baseline::layers(), &commit, &mut w)
            .map_err(|source| Error::Commit {
                name: rec.name.clone(),
                source,
            })?
            .expect("a commit that may be empty writes a layer");
        let (digest, size) = w.commit(Some(&d.digest))?;
        let now = strata_image::now_rfc3339();
        config.created = Some(now.clone());
        config.author = opts.author.clone();
        config.config = Some(cc);
        config.rootfs.diff_ids.push(d.diff_id.clone());
        config.history.push(History {
            created: Some(now),
            created_by: Some(rec.args.join(" ")),
            author: opts.author.clone(),
            comment: opts.message.clone(),
            ..Default::default()
        });
        let mut layers: Vec<LayerRecord> = Vec::new();
        let image = self.store.image(&image_id)?.ok_or_else(|| Error::ImageGone {
            image_id: image_id.clone(),
        })?;
        for diff_id in &image.diff_ids {
            let layer = self.store.held_layer(diff_id)?;
            layers.push(layer.ok_or_else(|| Error::CommitLayerMissing(diff_id.clone()))?);
        }
        layers.push(LayerRecord {
            diff_id: d.diff_id,
            diff_size: d.diff_size,
            blob: Descriptor::new(media::OCI_LAYER_TAR, digest, size),
        });
        Ok(strata_image::register(
            &mut self.store,
            &config,
            layers,
            opts.reference.as_ref(),
        )?)
    }
}
