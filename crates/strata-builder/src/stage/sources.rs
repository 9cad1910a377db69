//! What a step reads from elsewhere: another stage's or image's root (its
//! layers, and the memoized content digest of a selection in it), images
//! named by `--from`, and where a COPY/ADD's or bind mount's content comes from.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use strata_oci::Digest;
use strata_store::Store;

use crate::cache;
use crate::copy;
use crate::tree::DirTree;

use super::StageRun;
use super::step_root::StepRoot;

impl<'a> StageRun<'a> {
    /// The layers of the stage or image `f` (`COPY --from`, `RUN --mount=from=`).
    pub(super) fn other_root(&self, kw: &str, f: &str) -> Result<Vec<Digest>> {
        if let Some(j) = self.sh.stage_ref(f) {
            if j == self.index {
                return Err(Error::CopyFromItself {
                    kw: kw.to_string(),
                    from: f.to_string(),
                });
            }
            let r = self.wait_for_stage(j)?;
            return Ok(r.config.rootfs.diff_ids.clone());
        }
        Ok(resolve_from_image(&self.store, kw, f)?.image.diff_ids)
    }

    /// "stage one" or "image busybox", for explanations.
    pub(super) fn describe_from(&self, f: &str) -> String {
        if self.sh.stage_ref(f).is_some() {
            format!("stage {f}")
        } else {
            format!("image {f}")
        }
    }

    /// The content digest of a selection in the root of the stage or image
    /// `f` (layers `diff_ids`), and its per-file summary (paths from its
    /// root). Memoized per (chain ID, selection): an unchanged source is
    /// neither mounted nor read. Otherwise the root is mounted read-only and
    /// `select` picks the sources in it. `need_files` says, given the digest,
    /// whether a summary the memo does not hold must be made (a miss to explain).
    pub(super) fn source_content(
        &self,
        diff_ids: &[Digest],
        spec: &FromSpec<'_>,
        f: &str,
        need_files: &dyn Fn(&str) -> Result<bool>,
        select: &dyn Fn(&DirTree) -> Result<Vec<copy::Selected>>,
        exclude: Option<&crate::IgnoreRules>,
    ) -> Result<(String, BTreeMap<String, String>)> {
        let chain = strata_oci::chain_ids(diff_ids)
            .last()
            .map(|d| d.to_string())
            .unwrap_or_else(|| "empty".into());
        let spec_json = format!("v1:{}", serde_json::to_string(spec)?);
        if let Some(memo) = cache::from_hash(&self.store, &chain, &spec_json)? {
            match memo.files {
                Some(files) => return Ok((memo.hash, files)),
                None if !need_files(&memo.hash)? => return Ok((memo.hash, BTreeMap::new())),
                None => {}
            }
        }
        let snap = self.snap.get_or_init(|| self.sh.snapshotter());
        let chain_ids = strata_container::ensure_unpacked(&self.store, snap, diff_ids)?;
        let mut guard = StepRoot::mounted_over(snap, &chain_ids, true)?;
        let tree = DirTree::open(&guard.merged(), format!("--from={f}"))?;
        let hashed = select(&tree).and_then(|selected| {
            copy::content_digest(&tree, &selected, &|p| tree.file_hash(p), exclude, true, spec.owners)
        });
        drop(tree);
        guard.unmount()?;
        let (hash, files) = hashed?;
        let files: BTreeMap<String, String> = files
            .into_iter()
            .map(|(k, v)| (if k == "." { "/".into() } else { format!("/{k}") }, v))
            .collect();
        cache::record_from_hash(&self.store, &chain, &spec_json, &hash, &files)?;
        Ok((hash, files))
    }
}

/// The local image `f` named by `--from` (of `kw`: COPY, ADD, RUN --mount)
/// where no stage has that name.
pub(crate) fn resolve_from_image(store: &Store, kw: &str, f: &str) -> Result<strata_image::Resolved> {
    strata_image::resolve(store, f).map_err(|e| match e {
        strata_image::Error::NoSuchImage(_) => Error::FromImageNotFound {
            kw: kw.to_string(),
            from: f.to_string(),
        },
        source => Error::FromImage {
            kw: kw.to_string(),
            from: f.to_string(),
            source: Box::new(source),
        },
    })
}

/// What a step reads from another stage's or image's root: with the
/// source's chain ID, the key of its memoized content digest.
#[derive(serde::Serialize)]
pub(super) struct FromSpec<'s> {
    /// "copy" (COPY/ADD --from) or "mount" (RUN --mount=type=bind,from=).
    pub(super) kind: &'static str,
    pub(super) sources: &'s [String],
    pub(super) exclude: &'s [String],
    pub(super) parents: bool,
    /// Owners are part of the content (kept by the copy, seen in the mount).
    pub(super) owners: bool,
}

/// Where a COPY/ADD's or a RUN bind mount's content comes from (resolved
/// before the step runs).
pub(super) enum MountSrc {
    None,
    Context(std::sync::Arc<crate::tree::ContextTree>, Vec<copy::Selected>),
    Root(Vec<Digest>),
}
