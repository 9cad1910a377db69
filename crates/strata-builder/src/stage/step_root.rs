//! The root a step writes in: a writable snapshot mounted for the step
//! ([`StepRoot`], removed whatever happens), its changes written as the
//! step's layer ([`with_root`]), and snapshot keys naming the build's
//! process so that a later build removes what an interrupted one left.

use std::path::Path;

use crate::error::{Error, Result};
use strata_layer::WriteOptions;
use strata_oci::{Descriptor, Digest, media};
use strata_snapshot::{Snapshot, Snapshotter};
use strata_store::Store;

use crate::mounts::Cleanup;

/// A writable snapshot mounted for one step, unmounted and removed when dropped.
pub(super) struct StepRoot<'a> {
    snap: &'a Snapshotter,
    snapshot: Snapshot,
    mounted: bool,
}

impl<'a> StepRoot<'a> {
    /// Takes charge of `snapshot` (not mounted yet).
    pub(super) fn new(snap: &'a Snapshotter, snapshot: Snapshot) -> StepRoot<'a> {
        StepRoot {
            snap,
            snapshot,
            mounted: false,
        }
    }

    /// A snapshot over `chain`, mounted: a read-only view, or a writable
    /// one whose changes are thrown away.
    pub(super) fn mounted_over(snap: &'a Snapshotter, chain: &[Digest], readonly: bool) -> Result<StepRoot<'a>> {
        let snapshot = if readonly {
            snap.view(&snapshot_key("view"), chain)?
        } else {
            snap.prepare(&snapshot_key("bind"), chain)?
        };
        let mut root = StepRoot::new(snap, snapshot);
        root.mount(readonly)?;
        Ok(root)
    }

    pub(super) fn mount(&mut self, readonly: bool) -> Result<()> {
        self.snap.mount(&self.snapshot, &self.merged(), readonly)?;
        self.mounted = true;
        Ok(())
    }

    pub(super) fn merged(&self) -> std::path::PathBuf {
        self.snapshot.merged_dir()
    }

    pub(super) fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            self.snap.unmount(&self.snapshot.merged_dir())?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for StepRoot<'_> {
    fn drop(&mut self) {
        let _ = self.unmount();
        let _ = self.snap.remove(&self.snapshot.key);
    }
}

pub(super) struct LayerMade {
    pub(super) diff_id: Digest,
}

/// A snapshot key naming this process, so that a later build can remove
/// what an interrupted one left behind.
fn snapshot_key(kind: &str) -> String {
    format!(
        "build-{}-{kind}-{}",
        std::process::id(),
        &strata_container::random_id()[..20]
    )
}

/// Removes the step snapshots of builds whose process is gone (interrupted).
pub fn remove_stale_snapshots(snap: &Snapshotter) {
    let Ok(list) = snap.list() else { return };
    for s in list {
        let Some(pid) = s
            .key
            .strip_prefix("build-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = snap.remove(&s.key);
        }
    }
}

/// Prepares a writable snapshot over `diff_ids`, mounts it, runs `f` on its
/// root, and writes the step's changes as a layer (none when
/// `skip_if_empty` and nothing changed): the overlay upper directory, or
/// with the copy driver the entries that differ from the root as it was.
/// `f` gets the root and the changes directory (where mount points it
/// reports in its [`Cleanup`] are removed from first). The snapshot is
/// removed whatever happens.
pub(super) fn with_root<T>(
    store: &mut Store,
    snap: &Snapshotter,
    diff_ids: &[Digest],
    opts: &WriteOptions,
    skip_if_empty: bool,
    f: impl FnOnce(&Path, &Path) -> Result<(T, Cleanup)>,
) -> Result<(T, Option<LayerMade>)> {
    let chain = strata_container::ensure_unpacked(store, snap, diff_ids)?;
    let key = snapshot_key("step");
    let mut root = StepRoot::new(snap, snap.prepare(&key, &chain)?);
    let overlay = snap.driver().is_layered();
    let upper = snap.upper_dir(&root.snapshot);
    let baseline = snap.baseline(&root.snapshot)?;
    root.mount(false)?;
    let (out, cleanup) = f(&root.merged(), &upper)?;
    root.unmount()?;
    crate::mounts::remove_mount_points(&upper, &cleanup, overlay);
    let mut w = store.blob_writer()?;
    let commit = strata_snapshot::CommitOptions {
        layer: *opts,
        skip_if_empty,
    };
    let Some(d) = snap
        .commit(&root.snapshot, &baseline, &commit, &mut w)
        .map_err(Error::StepLayer)?
    else {
        return Ok((out, None));
    };
    let (digest, size) = w.commit(Some(&d.digest))?;
    if overlay {
        // The upper dir is this layer in overlay form: name it as the
        // unpacked layer rather than unpack the blob again for the next step
        // and delete the upper now (twice the file creations, and deletions
        // that slow the next creations on ext4). Not fatal when it cannot:
        // the layer is unpacked from its blob when needed.
        let mut ids = diff_ids.to_vec();
        ids.push(d.diff_id.clone());
        if let Some(chain_id) = strata_oci::chain_ids(&ids).pop() {
            let _ = snap.adopt_upper(&root.snapshot, &chain_id);
        }
    }
    drop(root);
    store.add_layer_blob(
        &d.diff_id,
        d.diff_size,
        &Descriptor::new(media::OCI_LAYER_TAR, digest, size),
    )?;
    Ok((out, Some(LayerMade { diff_id: d.diff_id })))
}
