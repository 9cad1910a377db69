//! Multi-platform images: a stored index and its platforms. The index is a
//! manifests row of one of its images (the host's when present: what a
//! name resolves to by default); `index_members` lists every platform the
//! index names, whether or not the store holds it, so that an image pulled
//! or built for some platforms shows the others as absent.
//!
//! Attestations (BuildKit's in-toto attestation manifests) are members with
//! platform `unknown/unknown` and no image: their manifest, config and
//! statement blobs are plain blobs, held while an index names them
//! ([`Store::attestation_blobs`]) and removed with it
//! ([`Store::remove_attestation_blobs`]).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params;
use strata_oci::{Descriptor, Digest, Manifest, Platform};

use crate::Store;
use crate::error::{Error, Result};

/// One platform of a stored index.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexMember {
    /// The platform's manifest, as the index names it.
    pub manifest: Descriptor,
    pub platform: Platform,
    /// The image, when the store holds this platform.
    pub image: Option<Digest>,
}

impl Store {
    /// Records `index` (its blob stored) as a multi-platform image: the
    /// index names image `representative` (one of its platforms held
    /// here), and `members` are its platforms in index order. Replaces what
    /// was recorded for the same index.
    pub fn add_index_image(
        &mut self,
        index: &Descriptor,
        representative: &Digest,
        members: &[(Descriptor, Platform)],
    ) -> Result<()> {
        self.add_index(index, representative, true)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM index_members WHERE index_digest=?1",
            [index.digest.to_string()],
        )?;
        for (i, (m, p)) in members.iter().enumerate() {
            tx.execute(
                "INSERT INTO index_members (index_digest, position, manifest, media_type, size, platform) VALUES (?1,?2,?3,?4,?5,?6)",
                params![index.digest.to_string(), i as i64, m.digest.to_string(), m.media_type, m.size as i64, p.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The platforms of a stored index, in index order (empty when
    /// `index` is not recorded as a multi-platform image).
    pub fn index_members(&self, index: &Digest) -> Result<Vec<IndexMember>> {
        let mut st = self.conn.prepare(
            "SELECT i.manifest, i.media_type, i.size, i.platform, m.image_id
             FROM index_members i LEFT JOIN manifests m ON m.digest = i.manifest
             WHERE i.index_digest=?1 ORDER BY i.position",
        )?;
        let rows = st.query_map([index.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (manifest, media_type, size, platform, image) = row?;
            let bad = |e: String| Error::Invalid(format!("corrupt metadata: {e}"));
            out.push(IndexMember {
                manifest: Descriptor::new(
                    &media_type,
                    Digest::parse(&manifest).map_err(|e| bad(e.to_string()))?,
                    size as u64,
                ),
                platform: Platform::parse(&platform).map_err(|e| bad(e.to_string()))?,
                image: image
                    .map(|i| Digest::parse(&i).map_err(|e| bad(e.to_string())))
                    .transpose()?,
            });
        }
        Ok(out)
    }

    /// The stored multi-platform indexes that hold image `id` as one of
    /// their platforms and have a name (a tag), so the image is not dangling.
    pub fn named_indexes_of(&self, id: &Digest) -> Result<Vec<Digest>> {
        let mut st = self.conn.prepare(
            "SELECT DISTINCT i.index_digest FROM index_members i
             JOIN manifests m ON m.digest = i.manifest
             WHERE m.image_id=?1 AND EXISTS (SELECT 1 FROM tags t WHERE t.manifest = i.index_digest)
             ORDER BY i.index_digest",
        )?;
        let rows = st.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
        rows.map(|r| Digest::parse(&r?).map_err(|e| Error::Invalid(format!("corrupt metadata: {e}"))))
            .collect()
    }

    /// The blobs of every attestation manifest a stored index names and
    /// the store holds (the manifest, its config and its statements), each
    /// with the index naming it.
    pub fn attestation_blobs(&self) -> Result<BTreeMap<Digest, Digest>> {
        let mut st = self.conn.prepare(
            "SELECT index_digest, manifest FROM index_members WHERE platform='unknown/unknown' ORDER BY index_digest, position",
        )?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = BTreeMap::new();
        for (index, manifest) in rows {
            let bad = |e: String| Error::Invalid(format!("corrupt metadata: {e}"));
            let index = Digest::parse(&index).map_err(|e| bad(e.to_string()))?;
            let manifest = Digest::parse(&manifest).map_err(|e| bad(e.to_string()))?;
            if !self.has_blob(&manifest) {
                continue;
            }
            let bytes = self.read_blob(&manifest, strata_oci::media::MAX_DOCUMENT_SIZE)?;
            if let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) {
                for d in std::iter::once(&m.config).chain(&m.layers) {
                    out.entry(d.digest.clone()).or_insert_with(|| index.clone());
                }
            }
            out.entry(manifest).or_insert(index);
        }
        Ok(out)
    }

    /// Removes the blobs of `before` (attestation blobs, as
    /// [`Store::attestation_blobs`] gave them before images were deleted)
    /// that no stored index's attestation and no image uses any more.
    /// Returns how many blob files went and their bytes.
    pub fn remove_attestation_blobs(&self, before: &BTreeSet<Digest>) -> Result<(usize, u64)> {
        if before.is_empty() {
            return Ok((0, 0));
        }
        let now = self.attestation_blobs()?;
        let (mut n, mut bytes) = (0, 0);
        for d in before.iter().filter(|d| !now.contains_key(*d)) {
            let size = self.blob_size(d).unwrap_or(0);
            if self.remove_unreferenced_blob(d).is_ok() {
                n += 1;
                bytes += size;
            }
        }
        Ok((n, bytes))
    }

    /// Forgets an attested index (one with attestation members) that no tag
    /// names any more, as a build leaves the previous one when it moves its
    /// tags to a new index: its record (with its members and the repo
    /// digests naming it), its blob, and the attestation blobs only it
    /// named. Its images stay (they are the images' own). Returns whether
    /// it was forgotten (not when a tag still names it, or it has no
    /// attestations).
    pub fn forget_untagged_attested_index(&mut self, index: &Digest) -> Result<bool> {
        let before: BTreeSet<Digest> = self.attestation_blobs()?.into_keys().collect();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let d = index.to_string();
        let keep: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM tags WHERE manifest=?1)
                 OR NOT EXISTS(SELECT 1 FROM index_members WHERE index_digest=?1 AND platform='unknown/unknown')",
            [&d],
            |r| r.get(0),
        )?;
        if keep {
            return Ok(false);
        }
        tx.execute("DELETE FROM index_members WHERE index_digest=?1", [&d])?;
        tx.execute("DELETE FROM repo_digests WHERE manifest=?1", [&d])?;
        tx.execute("DELETE FROM manifests WHERE digest=?1", [&d])?;
        tx.commit()?;
        let _ = self.remove_unreferenced_blob(index);
        self.remove_attestation_blobs(&before)?;
        Ok(true)
    }
}
