//! Unpacking an image's layers into `layers/<chain-id>` (overlay form),
//! once per layer for every image that shares it.

use crate::error::{Error, Result};
use strata_layer::{UnpackOptions, WhiteoutMode};
use strata_oci::Digest;
use strata_snapshot::Snapshotter;
use strata_store::Store;

/// Makes sure every layer of `diff_ids` is unpacked; returns the chain IDs.
pub fn ensure_unpacked(store: &Store, snap: &Snapshotter, diff_ids: &[Digest]) -> Result<Vec<Digest>> {
    let chain = strata_oci::chain_ids(diff_ids);
    for (i, (c, diff_id)) in chain.iter().zip(diff_ids).enumerate() {
        if snap.has_layer(c) {
            continue;
        }
        let lowers = snap.lower_dirs(&chain[..i]).into_iter().rev().collect::<Vec<_>>();
        let blob = store
            .held_layer_blobs(diff_id)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoLayerBlob(diff_id.clone()))?;
        snap.ensure_layer(c, |dir| -> Result<()> {
            let f = store.open_blob(&blob.digest)?;
            let opts = UnpackOptions {
                whiteouts: WhiteoutMode::Overlay,
                lowers,
                ..UnpackOptions::default()
            };
            let report =
                strata_layer::unpack(std::io::BufReader::with_capacity(1 << 20, f), dir, &opts).map_err(|source| {
                    Error::Unpack {
                        diff_id: diff_id.clone(),
                        source,
                    }
                })?;
            if report.diff_id != *diff_id {
                return Err(Error::DiffIdMismatch {
                    blob: blob.digest.clone(),
                    got: report.diff_id,
                    diff_id: diff_id.clone(),
                });
            }
            Ok(())
        })?;
    }
    Ok(chain)
}

/// The unpacked layers snapshots (containers, build steps) stand on, for
/// the store check. An unreadable snapshot record is an error, not "uses
/// nothing": a repair must not remove a layer a container needs.
pub struct SnapshotLayerUsers(Snapshotter);

impl SnapshotLayerUsers {
    /// For the store at `store_root` (whatever driver made the snapshots).
    pub fn new(store_root: &std::path::Path) -> SnapshotLayerUsers {
        SnapshotLayerUsers(Snapshotter::new(store_root, strata_snapshot::Driver::Overlay))
    }
}

impl strata_image::LayerUsers for SnapshotLayerUsers {
    fn what(&self) -> &str {
        "snapshots"
    }

    fn chains_in_use(
        &self,
    ) -> std::result::Result<std::collections::BTreeSet<Digest>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.list()?.into_iter().flat_map(|s| s.chain).collect())
    }
}
