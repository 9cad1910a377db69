//! Images, manifests, tags and layers in the metadata database.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use strata_oci::{Descriptor, Digest, Reference};

use crate::Store;
use crate::error::{Error, Result};
use crate::lock::StoreLock;

/// One layer of an image: its diff ID and the blob its manifest names for
/// it. That blob is either in the store or, when the store already holds
/// the layer in another form (another compression of the same diff ID),
/// deliberately not (see [`Store::add_image`]).
#[derive(Debug, Clone)]
pub struct LayerRecord {
    pub diff_id: Digest,
    pub diff_size: u64,
    pub blob: Descriptor,
}

/// What registering an image needs: the config and manifest blobs must be in
/// the store, and each layer's blob or another held form of its diff ID.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub config_digest: Digest,
    pub created: Option<String>,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub manifest: Descriptor,
    pub layers: Vec<LayerRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRef {
    pub repo: String,
    pub tag: String,
    pub manifest: Digest,
}

#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub id: Digest,
    pub created: Option<String>,
    pub added_at: i64,
    pub size: u64,
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
    pub tags: Vec<TagRef>,
    pub repo_digests: Vec<(String, Digest)>,
    /// (digest, media type, size), the first is the one strata wrote or pulled first.
    pub manifests: Vec<(Digest, String, u64)>,
    pub diff_ids: Vec<Digest>,
    pub containers: u64,
    /// Named multi-platform indexes that hold this image as a platform
    /// (the index's tags are its representative image's, in `tags`).
    pub named_indexes: Vec<Digest>,
}

impl ImageRecord {
    /// No name leads to it: no tag, and no named index holds it.
    pub fn is_dangling(&self) -> bool {
        self.tags.is_empty() && self.named_indexes.is_empty()
    }

    /// The manifest a tag of this image points to, or the first one known.
    pub fn primary_manifest(&self) -> &Digest {
        &self.manifests[0].0
    }
}

/// What deleting an image removed.
#[derive(Debug, Default, Clone)]
pub struct RemovedImage {
    pub id: Option<Digest>,
    pub untagged: Vec<String>,
    pub blobs_removed: u64,
    pub bytes_reclaimed: u64,
    /// Unpacked layer directories (chain IDs) no image uses any more.
    pub chains_removed: Vec<Digest>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Removes the tag `reference` names; whether there was one.
fn delete_tag(conn: &rusqlite::Connection, reference: &Reference) -> Result<bool> {
    let n = conn.execute(
        "DELETE FROM tags WHERE repo=?1 AND tag=?2",
        params![reference.repository(), reference.tag().unwrap_or("latest")],
    )?;
    Ok(n > 0)
}

fn digest(s: String) -> Result<Digest> {
    Digest::parse(&s).map_err(|e| Error::Invalid(format!("corrupt metadata: {e}")))
}

impl Store {
    /// Records an image whose config and manifest blobs are stored.
    /// Idempotent: registering the same image again changes nothing.
    ///
    /// Each layer's blob (the one the manifest names) must be stored too,
    /// unless the store already holds that layer in another form: a
    /// `layer_blobs` row of the same diff ID whose blob file is there (the
    /// same layer pulled before in another compression, or imported as a
    /// plain tar). Such a layer is recorded for the image without its own
    /// blob, and no `layer_blobs` row names the missing blob: those rows
    /// only ever name blobs the store holds. Otherwise
    /// [`Error::BlobMissing`]. Callers hold the store lock shared, so that
    /// the held form is not removed before the image is recorded.
    pub fn add_image(&mut self, img: &NewImage) -> Result<()> {
        for d in [&img.config_digest, &img.manifest.digest] {
            if !self.has_blob(d) {
                return Err(Error::BlobMissing(d.clone()));
            }
        }
        let held: Vec<bool> = img.layers.iter().map(|l| self.has_blob(&l.blob.digest)).collect();
        let diff_ids: Vec<Digest> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = strata_oci::chain_ids(&diff_ids);
        let size: u64 = img.layers.iter().map(|l| l.diff_size).sum();
        let root = self.root.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Inside the transaction: a deleter that removes the last image
        // using a diff ID removes its rows in a transaction of its own, so
        // the rows seen here stay until this one commits (and then the
        // image recorded here keeps them).
        for (l, _) in img.layers.iter().zip(&held).filter(|(_, h)| !**h) {
            // Another layer of this image may bring the held form.
            if img.layers.iter().zip(&held).any(|(o, h)| *h && o.diff_id == l.diff_id) {
                continue;
            }
            let mut st = tx.prepare_cached("SELECT digest FROM layer_blobs WHERE diff_id=?1")?;
            let forms = st
                .query_map([l.diff_id.to_string()], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let held_form = forms
                .into_iter()
                .any(|d| Digest::parse(&d).is_ok_and(|d| crate::blobs::blob_path(&root, &d).is_file()));
            if !held_form {
                return Err(Error::BlobMissing(l.blob.digest.clone()));
            }
        }
        tx.execute(
            "INSERT OR IGNORE INTO images (id, created, added_at, size, os, arch, variant) VALUES (?1,?2,?3,?4,?5,?6,?7)",
            params![img.config_digest.to_string(), img.created, now(), size as i64, img.os, img.arch, img.variant],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO manifests (digest, image_id, media_type, size) VALUES (?1,?2,?3,?4)",
            params![
                img.manifest.digest.to_string(),
                img.config_digest.to_string(),
                img.manifest.media_type,
                img.manifest.size as i64
            ],
        )?;
        for (i, (l, chain)) in img.layers.iter().zip(&chains).enumerate() {
            tx.execute(
                "INSERT OR IGNORE INTO layers (diff_id, diff_size) VALUES (?1, ?2)",
                params![l.diff_id.to_string(), l.diff_size as i64],
            )?;
            if held[i] {
                tx.execute(
                    "INSERT OR IGNORE INTO layer_blobs (digest, diff_id, media_type, size) VALUES (?1,?2,?3,?4)",
                    params![
                        l.blob.digest.to_string(),
                        l.diff_id.to_string(),
                        l.blob.media_type,
                        l.blob.size as i64
                    ],
                )?;
            }
            tx.execute(
                "INSERT OR IGNORE INTO image_layers (image_id, position, diff_id, chain_id) VALUES (?1,?2,?3,?4)",
                params![
                    img.config_digest.to_string(),
                    i as i64,
                    l.diff_id.to_string(),
                    chain.to_string()
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Points `repo:tag` at a manifest. Returns the image the tag pointed to
    /// before, if it was another one (it may now be dangling).
    pub fn set_tag(&mut self, reference: &Reference, manifest: &Digest) -> Result<Option<Digest>> {
        let tag = reference.tag().unwrap_or("latest");
        let repo = reference.repository();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let new_image: Option<String> = tx
            .query_row(
                "SELECT image_id FROM manifests WHERE digest = ?1",
                [manifest.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(new_image) = new_image else {
            return Err(Error::NoSuchImage(manifest.to_string()));
        };
        let old: Option<String> = tx
            .query_row(
                "SELECT m.image_id FROM tags t JOIN manifests m ON m.digest = t.manifest WHERE t.repo=?1 AND t.tag=?2",
                params![repo, tag],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "INSERT INTO tags (repo, tag, manifest) VALUES (?1,?2,?3) ON CONFLICT(repo, tag) DO UPDATE SET manifest = excluded.manifest",
            params![repo, tag, manifest.to_string()],
        )?;
        tx.commit()?;
        match old {
            Some(o) if o != new_image => Ok(Some(digest(o)?)),
            _ => Ok(None),
        }
    }

    /// Records a stored index (a multi-platform image) as a name of image
    /// `id`, one of its platforms: `repo@<index digest>` and the index as a
    /// repo digest then lead to that image. An index already recorded for
    /// another image moves to this one only when `replace` (the caller's
    /// rule: the host's platform wins). Indexes come after the image's own
    /// manifests in [`ImageRecord::manifests`], so the primary manifest is
    /// never an index.
    pub fn add_index(&mut self, index: &Descriptor, id: &Digest, replace: bool) -> Result<()> {
        if !self.has_blob(&index.digest) {
            return Err(Error::BlobMissing(index.digest.clone()));
        }
        if self.image(id)?.is_none() {
            return Err(Error::NoSuchImage(id.to_string()));
        }
        self.conn.execute(
            "INSERT INTO manifests (digest, image_id, media_type, size) VALUES (?1,?2,?3,?4)
             ON CONFLICT(digest) DO UPDATE SET image_id = excluded.image_id WHERE ?5",
            params![
                index.digest.to_string(),
                id.to_string(),
                index.media_type,
                index.size as i64,
                replace
            ],
        )?;
        Ok(())
    }

    /// Records that `repo` (fully qualified) serves this manifest.
    pub fn add_repo_digest(&mut self, repo: &str, manifest: &Digest) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO repo_digests (repo, manifest) VALUES (?1, ?2)",
            params![repo, manifest.to_string()],
        )?;
        Ok(())
    }

    /// The manifest a tag points to.
    pub fn tag_target(&self, reference: &Reference) -> Result<Option<(Digest, Digest)>> {
        let tag = reference.tag().unwrap_or("latest");
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT t.manifest, m.image_id FROM tags t JOIN manifests m ON m.digest = t.manifest WHERE t.repo=?1 AND t.tag=?2",
                params![reference.repository(), tag],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(m, i)| Ok((digest(m)?, digest(i)?))).transpose()
    }

    /// Image of a manifest digest, when `repo` is known to hold it (by a tag
    /// or a repo digest), or of any repo when `repo` is None.
    pub fn image_of_manifest(&self, manifest: &Digest, repo: Option<&str>) -> Result<Option<Digest>> {
        let id: Option<String> = match repo {
            None => self
                .conn
                .query_row(
                    "SELECT image_id FROM manifests WHERE digest=?1",
                    [manifest.to_string()],
                    |r| r.get(0),
                )
                .optional()?,
            Some(repo) => self
                .conn
                .query_row(
                    "SELECT m.image_id FROM manifests m WHERE m.digest=?1 AND (
                        EXISTS (SELECT 1 FROM tags t WHERE t.manifest=m.digest AND t.repo=?2) OR
                        EXISTS (SELECT 1 FROM repo_digests r WHERE r.manifest=m.digest AND r.repo=?2))",
                    params![manifest.to_string(), repo],
                    |r| r.get(0),
                )
                .optional()?,
        };
        id.map(digest).transpose()
    }

    /// Image IDs starting with `prefix` (hex, without `sha256:`).
    pub fn images_with_id_prefix(&self, prefix: &str) -> Result<Vec<Digest>> {
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(vec![]);
        }
        let mut st = self.conn.prepare("SELECT id FROM images WHERE id LIKE ?1")?;
        let ids = st
            .query_map([format!("sha256:{}%", prefix.to_ascii_lowercase())], |r| {
                r.get::<_, String>(0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        ids.into_iter().map(digest).collect()
    }

    /// Removes one tag. Returns false when it did not exist.
    pub fn remove_tag(&mut self, reference: &Reference) -> Result<bool> {
        delete_tag(&self.conn, reference)
    }

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        Ok(self.load_images(Some(id))?.pop())
    }

    pub fn list_images(&self) -> Result<Vec<ImageRecord>> {
        self.load_images(None)
    }

    fn load_images(&self, only: Option<&Digest>) -> Result<Vec<ImageRecord>> {
        let filter = only.map(|d| d.to_string());
        let mut out: BTreeMap<String, ImageRecord> = BTreeMap::new();
        {
            let mut st = self.conn.prepare(
                "SELECT id, created, added_at, size, os, arch, variant,
                        (SELECT count(*) FROM containers c WHERE c.image_id = images.id)
                 FROM images WHERE ?1 IS NULL OR id = ?1",
            )?;
            let rows = st.query_map([&filter], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            })?;
            for row in rows {
                let (id, created, added_at, size, os, arch, variant, containers) = row?;
                out.insert(
                    id.clone(),
                    ImageRecord {
                        id: digest(id)?,
                        created,
                        added_at,
                        size: size as u64,
                        os,
                        arch,
                        variant,
                        tags: vec![],
                        repo_digests: vec![],
                        manifests: vec![],
                        diff_ids: vec![],
                        containers: containers as u64,
                        named_indexes: vec![],
                    },
                );
            }
        }
        let mut st = self.conn.prepare(
            "SELECT image_id, digest, media_type, size FROM manifests WHERE ?1 IS NULL OR image_id = ?1
             ORDER BY (media_type LIKE '%image.index%' OR media_type LIKE '%manifest.list%'), rowid",
        )?;
        for row in st.query_map([&filter], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })? {
            let (id, d, mt, size) = row?;
            if let Some(img) = out.get_mut(&id) {
                img.manifests.push((digest(d)?, mt, size as u64));
            }
        }
        let mut st = self.conn.prepare(
            "SELECT m.image_id, t.repo, t.tag, t.manifest FROM tags t JOIN manifests m ON m.digest = t.manifest
             WHERE ?1 IS NULL OR m.image_id = ?1 ORDER BY t.repo, t.tag",
        )?;
        for row in st.query_map([&filter], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (id, repo, tag, m) = row?;
            if let Some(img) = out.get_mut(&id) {
                img.tags.push(TagRef {
                    repo,
                    tag,
                    manifest: digest(m)?,
                });
            }
        }
        let mut st = self.conn.prepare(
            "SELECT m.image_id, r.repo, r.manifest FROM repo_digests r JOIN manifests m ON m.digest = r.manifest
             WHERE ?1 IS NULL OR m.image_id = ?1 ORDER BY r.repo",
        )?;
        for row in st.query_map([&filter], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })? {
            let (id, repo, m) = row?;
            if let Some(img) = out.get_mut(&id) {
                img.repo_digests.push((repo, digest(m)?));
            }
        }
        let mut st = self.conn.prepare(
            "SELECT image_id, diff_id FROM image_layers WHERE ?1 IS NULL OR image_id = ?1 ORDER BY image_id, position",
        )?;
        for row in st.query_map([&filter], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (id, d) = row?;
            if let Some(img) = out.get_mut(&id) {
                img.diff_ids.push(digest(d)?);
            }
        }
        let mut st = self.conn.prepare(
            "SELECT DISTINCT m.image_id, i.index_digest FROM index_members i
             JOIN manifests m ON m.digest = i.manifest
             WHERE (?1 IS NULL OR m.image_id = ?1)
               AND EXISTS (SELECT 1 FROM tags t WHERE t.manifest = i.index_digest)
             ORDER BY i.index_digest",
        )?;
        for row in st.query_map([&filter], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (id, ix) = row?;
            if let Some(img) = out.get_mut(&id) {
                img.named_indexes.push(digest(ix)?);
            }
        }
        // An image must have a manifest to be usable; a row without one is
        // the remains of a failed registration and is skipped.
        Ok(out.into_values().filter(|i| !i.manifests.is_empty()).collect())
    }

    /// The blobs recorded as forms of a layer, oldest first.
    pub fn layer_blobs(&self, diff_id: &Digest) -> Result<Vec<Descriptor>> {
        let mut st = self
            .conn
            .prepare("SELECT digest, media_type, size FROM layer_blobs WHERE diff_id=?1 ORDER BY rowid")?;
        let rows = st
            .query_map([diff_id.to_string()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(d, mt, size)| Ok(Descriptor::new(&mt, digest(d)?, size as u64)))
            .collect()
    }

    /// The forms of a layer whose blob the store holds, oldest first (a
    /// manifest may name a form that is not held; see [`Store::add_image`]).
    pub fn held_layer_blobs(&self, diff_id: &Digest) -> Result<Vec<Descriptor>> {
        let mut forms = self.layer_blobs(diff_id)?;
        forms.retain(|b| self.has_blob(&b.digest));
        Ok(forms)
    }

    /// A layer as an image records it: its size and a held form (the first
    /// recorded); `None` when the store holds no form of it.
    pub fn held_layer(&self, diff_id: &Digest) -> Result<Option<LayerRecord>> {
        let Some(blob) = self.held_layer_blobs(diff_id)?.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(LayerRecord {
            diff_id: diff_id.clone(),
            diff_size: self.layer_size(diff_id)?.unwrap_or(0),
            blob,
        }))
    }

    /// Uncompressed size of a layer, when known.
    pub fn layer_size(&self, diff_id: &Digest) -> Result<Option<u64>> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT diff_size FROM layers WHERE diff_id=?1",
                [diff_id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(n.map(|n| n as u64))
    }

    /// Records a layer blob for a known layer (e.g. a recompressed form).
    pub fn add_layer_blob(&mut self, diff_id: &Digest, diff_size: u64, blob: &Descriptor) -> Result<()> {
        if !self.has_blob(&blob.digest) {
            return Err(Error::BlobMissing(blob.digest.clone()));
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO layers (diff_id, diff_size) VALUES (?1, ?2)",
            params![diff_id.to_string(), diff_size as i64],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO layer_blobs (digest, diff_id, media_type, size) VALUES (?1,?2,?3,?4)",
            params![
                blob.digest.to_string(),
                diff_id.to_string(),
                blob.media_type,
                blob.size as i64
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn containers_count(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM containers", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    pub fn containers_using(&self, image: &Digest) -> Result<Vec<ContainerRef>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name FROM containers WHERE image_id=?1 ORDER BY created")?;
        let rows = st
            .query_map([image.to_string()], |r| {
                Ok(ContainerRef {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Deletes an image with its tags, and every blob and unpacked layer that
    /// no other image uses. Takes the store's exclusive lock. Refuses while a
    /// container uses the image or a container is being made from it (a
    /// live lease, see [`crate::Lease`]).
    pub fn delete_image(&mut self, id: &Digest) -> Result<RemovedImage> {
        let lock = StoreLock::exclusive(&self.root)?;
        self.delete_image_locked(id, &lock)
    }

    /// [`Store::delete_image`] under the store's exclusive lock, which the
    /// caller holds (`prune` and `rmi` hold it from their decision on).
    pub fn delete_image_locked(&mut self, id: &Digest, lock: &StoreLock) -> Result<RemovedImage> {
        self.delete_image_in_one(id, lock, None)?
            .ok_or_else(|| Error::NoSuchImage(id.to_string()))
    }

    /// `rmi NAME` of what the caller found to be the image's last name:
    /// in one transaction, untags `reference` and deletes the image when no
    /// name is left. A `tag` may have named the image since the caller
    /// looked (tags are set without the store lock): then only `reference`
    /// goes, and the result is None.
    pub fn untag_and_delete_unnamed(
        &mut self,
        reference: &Reference,
        id: &Digest,
        lock: &StoreLock,
    ) -> Result<Option<RemovedImage>> {
        self.delete_image_in_one(id, lock, Some(reference))
    }

    /// The deletion, in one transaction with the untag of `untag` (then
    /// only if no other name is left) and with reading the names it
    /// removes, so that a name set meanwhile is neither lost nor unreported.
    fn delete_image_in_one(
        &mut self,
        id: &Digest,
        lock: &StoreLock,
        untag: Option<&Reference>,
    ) -> Result<Option<RemovedImage>> {
        if !lock.is_exclusive() {
            return Err(Error::Invalid(
                "deleting an image needs the store lock exclusive (a bug in strata)".into(),
            ));
        }
        if let Some(c) = self.containers_using(id)?.first() {
            return Err(Error::Conflict(format!(
                "unable to delete {} - image is being used by container {}",
                id.short(),
                &c.id[..12.min(c.id.len())]
            )));
        }
        if let Some(pid) = self.leased_images()?.get(id) {
            return Err(Error::Conflict(format!(
                "unable to delete {} - image is being used by a container being created (process {pid})",
                id.short()
            )));
        }
        // Immediate: `set_tag` (which takes no store lock) waits for it.
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        if let Some(r) = untag {
            delete_tag(&tx, r)?;
        }
        let Some(img) = self.image(id)? else {
            return Err(Error::NoSuchImage(id.to_string()));
        };
        if untag.is_some() && !img.tags.is_empty() {
            tx.commit()?;
            return Ok(None);
        }
        let mut removed = RemovedImage {
            id: Some(id.clone()),
            ..Default::default()
        };
        let chains = strata_oci::chain_ids(&img.diff_ids);
        for t in &img.tags {
            removed.untagged.push(format!("{}:{}", t.repo, t.tag));
        }
        let manifest_list: Vec<String> = img.manifests.iter().map(|m| m.0.to_string()).collect();
        for m in &manifest_list {
            tx.execute("DELETE FROM tags WHERE manifest=?1", [m])?;
            tx.execute("DELETE FROM repo_digests WHERE manifest=?1", [m])?;
        }
        tx.execute("DELETE FROM manifests WHERE image_id=?1", [id.to_string()])?;
        tx.execute("DELETE FROM image_layers WHERE image_id=?1", [id.to_string()])?;
        tx.execute("DELETE FROM images WHERE id=?1", [id.to_string()])?;
        // Blobs that only this image used.
        let mut doomed: BTreeSet<Digest> = img.manifests.iter().map(|m| m.0.clone()).collect();
        let config_used: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM images WHERE id=?1)",
            [id.to_string()],
            |r| r.get(0),
        )?;
        if !config_used {
            doomed.insert(id.clone());
        }
        let unique_diffs: BTreeSet<&Digest> = img.diff_ids.iter().collect();
        for d in unique_diffs {
            let used: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE diff_id=?1)",
                [d.to_string()],
                |r| r.get(0),
            )?;
            if used {
                continue;
            }
            let mut st = tx.prepare("SELECT digest FROM layer_blobs WHERE diff_id=?1")?;
            let blobs = st
                .query_map([d.to_string()], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            drop(st);
            for b in blobs {
                doomed.insert(digest(b)?);
            }
            tx.execute("DELETE FROM layer_blobs WHERE diff_id=?1", [d.to_string()])?;
            tx.execute("DELETE FROM layers WHERE diff_id=?1", [d.to_string()])?;
        }
        for c in &chains {
            let used: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE chain_id=?1)",
                [c.to_string()],
                |r| r.get(0),
            )?;
            if !used {
                removed.chains_removed.push(c.clone());
            }
        }
        let doomed_list: Vec<Digest> = doomed.iter().cloned().collect();
        crate::deletions::journal(&tx, &doomed_list, &removed.chains_removed)?;
        tx.commit()?;
        for b in &doomed {
            removed.bytes_reclaimed += self.blob_size(b).unwrap_or(0);
            if self.has_blob(b) {
                removed.blobs_removed += 1;
            }
            self.remove_blob_file(b);
        }
        for c in &removed.chains_removed {
            let dir = self.layers_dir().join(c.hex());
            if dir.exists() {
                removed.bytes_reclaimed += dir_size(&dir);
                // Best effort: a layer still mounted somewhere stays, and the
                // store check reports it as unused.
                let _ = crate::leftovers::remove_layer_dir(&dir, c);
            }
        }
        self.deletions_done(&doomed_list, &removed.chains_removed)?;
        Ok(Some(removed))
    }

    /// Sum of uncompressed sizes of distinct layers (shared layers counted once).
    pub fn total_layer_size(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(diff_size), 0) FROM layers WHERE diff_id IN (SELECT diff_id FROM image_layers)",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Number of images that use each layer, keyed by diff ID.
    pub fn layer_use_counts(&self) -> Result<BTreeMap<Digest, u64>> {
        let mut st = self
            .conn
            .prepare("SELECT diff_id, count(DISTINCT image_id) FROM image_layers GROUP BY diff_id")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(d, n)| Ok((digest(d)?, n as u64))).collect()
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    use rustix::fs::{FileType, Mode, OFlags};
    let Ok(top) = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut total = 0;
    // Iterative and relative to open directories: any depth is counted.
    let _ = crate::leftovers::walk_below(
        top,
        |_, _, st| {
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                return Ok(true);
            }
            total += st.st_size as u64;
            Ok(false)
        },
        |_, _| Ok(()),
    );
    total
}

/// What [`Store::remove_unused_layers`] removed.
#[derive(Debug, Default, Clone)]
pub struct RemovedLayers {
    pub layers: usize,
    pub blobs: usize,
    pub bytes_reclaimed: u64,
}

impl Store {
    /// Removes every layer no image uses (the build cache's, once its
    /// entries are gone): its records, blobs and unpacked directories.
    /// Takes the store's exclusive lock.
    pub fn remove_unused_layers(&mut self) -> Result<RemovedLayers> {
        let _lock = StoreLock::exclusive(&self.root)?;
        let mut removed = RemovedLayers::default();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let unused: Vec<String> = {
            let mut st =
                tx.prepare("SELECT diff_id FROM layers WHERE diff_id NOT IN (SELECT diff_id FROM image_layers)")?;
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?
        };
        let mut doomed: Vec<Digest> = Vec::new();
        for d in unused {
            let blobs: Vec<String> = {
                let mut st = tx.prepare("SELECT digest FROM layer_blobs WHERE diff_id=?1")?;
                st.query_map([&d], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            for b in blobs {
                doomed.push(digest(b)?);
            }
            tx.execute("DELETE FROM layer_blobs WHERE diff_id=?1", [&d])?;
            tx.execute("DELETE FROM layers WHERE diff_id=?1", [&d])?;
            removed.layers += 1;
        }
        tx.commit()?;
        for b in &doomed {
            // A blob an image names as a manifest or config stays.
            let named: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM images WHERE id=?1) OR EXISTS(SELECT 1 FROM manifests WHERE digest=?1)",
                [b.to_string()],
                |r| r.get(0),
            )?;
            if named || !self.has_blob(b) {
                continue;
            }
            removed.bytes_reclaimed += self.blob_size(b).unwrap_or(0);
            removed.blobs += 1;
            self.remove_blob_file(b);
        }
        // Unpacked layers no image stands on (a build cache step's, kept
        // as the next step's lower) go too.
        let used = self.image_chain_ids()?;
        if let Ok(rd) = std::fs::read_dir(self.layers_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(chain) = Digest::parse(&format!("sha256:{name}")) else {
                    continue;
                };
                if used.contains(&chain) {
                    continue;
                }
                removed.bytes_reclaimed += dir_size(&e.path());
                let _ = crate::leftovers::remove_layer_dir(&e.path(), &chain);
            }
        }
        Ok(removed)
    }
}
