//! What the metadata says about blobs and unpacked layers, for the store
//! check: which blobs are referenced (and by what), which rows point at
//! rows that are not there, which chain IDs images use.
//!
//! Every table that names a blob must be listed in [`Store::blob_references`];
//! a blob it does not list is an orphan to the check.

use std::collections::{BTreeMap, BTreeSet};

use strata_oci::Digest;

use crate::Store;
use crate::error::{Error, Result};

/// A blob named by the metadata.
#[derive(Debug, Clone)]
pub struct BlobReference {
    pub digest: Digest,
    /// What names it, for messages ("config of image sha256:…").
    pub what: String,
    /// Its size, when the metadata records one.
    pub size: Option<u64>,
}

impl Store {
    /// Every blob the metadata references. Digests that do not parse are
    /// returned as problems in the second list.
    pub fn blob_references(&self) -> Result<(Vec<BlobReference>, Vec<String>)> {
        let mut refs = Vec::new();
        let mut bad = Vec::new();
        let mut push = |d: String, what: String, size: Option<i64>| match Digest::parse(&d) {
            Ok(digest) => refs.push(BlobReference {
                digest,
                what,
                size: size.map(|s| s as u64),
            }),
            Err(e) => bad.push(format!("{what}: {e}")),
        };
        let mut st = self.conn.prepare("SELECT id FROM images ORDER BY id")?;
        for id in st.query_map([], |r| r.get::<_, String>(0))? {
            let id = id?;
            push(id.clone(), format!("config of image {id}"), None);
        }
        let mut st = self
            .conn
            .prepare("SELECT digest, image_id, size FROM manifests ORDER BY digest")?;
        for row in st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })? {
            let (d, id, size) = row?;
            push(d, format!("manifest of image {id}"), Some(size));
        }
        let mut st = self
            .conn
            .prepare("SELECT digest, diff_id, size FROM layer_blobs ORDER BY digest")?;
        for row in st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
        })? {
            let (d, diff, size) = row?;
            push(d, format!("blob of layer {diff}"), Some(size));
        }
        for (d, index) in self.attestation_blobs()? {
            refs.push(BlobReference {
                digest: d,
                what: format!("attestation of index {index}"),
                size: None,
            });
        }
        Ok((refs, bad))
    }

    /// Rows that point at rows that are not there, and images whose layer
    /// list is not consistent; one message each.
    pub fn dangling_rows(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        // Each query gives one message per bad row.
        let queries = [
            "SELECT 'manifest ' || digest || ' names image ' || image_id || ', which is not recorded'
               FROM manifests WHERE image_id NOT IN (SELECT id FROM images)",
            "SELECT 'image ' || id || ' has no manifest recorded' FROM images WHERE id NOT IN (SELECT image_id FROM manifests)",
            "SELECT 'tag ' || repo || ':' || tag || ' points at manifest ' || manifest || ', which is not recorded'
               FROM tags WHERE manifest NOT IN (SELECT digest FROM manifests)",
            "SELECT 'repo digest ' || repo || '@' || manifest || ' names a manifest that is not recorded'
               FROM repo_digests WHERE manifest NOT IN (SELECT digest FROM manifests)",
            "SELECT 'layer blob ' || digest || ' names layer ' || diff_id || ', which is not recorded'
               FROM layer_blobs WHERE diff_id NOT IN (SELECT diff_id FROM layers)",
            "SELECT DISTINCT 'layers are recorded for image ' || image_id || ', which is not recorded'
               FROM image_layers WHERE image_id NOT IN (SELECT id FROM images)",
            "SELECT 'image ' || image_id || ' uses layer ' || diff_id || ', which is not recorded'
               FROM image_layers WHERE diff_id NOT IN (SELECT diff_id FROM layers)",
            "SELECT DISTINCT 'image ' || image_id || ' uses layer ' || diff_id || ', for which no blob is recorded'
               FROM image_layers WHERE diff_id NOT IN (SELECT diff_id FROM layer_blobs)",
        ];
        for sql in queries {
            let mut st = self.conn.prepare(sql)?;
            for row in st.query_map([], |r| r.get::<_, String>(0))? {
                out.push(row?);
            }
        }
        // Each image's layers: positions 0..n, chain IDs as the diff IDs give them.
        for (id, layers) in self.image_layer_rows()? {
            let positions: Vec<i64> = layers.iter().map(|l| l.0).collect();
            if positions.iter().enumerate().any(|(i, p)| *p != i as i64) {
                out.push(format!(
                    "image {id}: layer positions {positions:?} are not 0..{}",
                    positions.len()
                ));
                continue;
            }
            let diffs: Result<Vec<Digest>> = layers.iter().map(|l| parse(&l.1)).collect();
            let Ok(diffs) = diffs else {
                out.push(format!("image {id}: a layer's diff ID is not a digest"));
                continue;
            };
            let chains = strata_oci::chain_ids(&diffs);
            for (i, (c, l)) in chains.iter().zip(&layers).enumerate() {
                if c.to_string() != l.2 {
                    out.push(format!(
                        "image {id}: layer {i} has chain ID {}, but its diff IDs give {c}",
                        l.2
                    ));
                }
            }
        }
        Ok(out)
    }

    /// The chain IDs of every image's layers.
    pub fn image_chain_ids(&self) -> Result<BTreeSet<Digest>> {
        let mut st = self.conn.prepare("SELECT DISTINCT chain_id FROM image_layers")?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows.iter().filter_map(|c| Digest::parse(c).ok()).collect())
    }

    /// Removes a blob nothing references. The caller holds the exclusive
    /// store lock and has checked [`Store::blob_references`].
    pub fn remove_unreferenced_blob(&self, d: &Digest) -> Result<()> {
        let referenced: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM images WHERE id=?1)
                 OR EXISTS(SELECT 1 FROM manifests WHERE digest=?1)
                 OR EXISTS(SELECT 1 FROM layer_blobs WHERE digest=?1)",
            [d.to_string()],
            |r| r.get(0),
        )?;
        if referenced || self.attestation_blobs()?.contains_key(d) {
            return Err(Error::Conflict(format!("blob {d} is referenced; not removing it")));
        }
        std::fs::remove_file(self.blob_path(d)).map_err(|e| Error::io(format!("removing blob {d}"), e))
    }

    #[allow(clippy::type_complexity)]
    fn image_layer_rows(&self) -> Result<BTreeMap<String, Vec<(i64, String, String)>>> {
        let mut st = self
            .conn
            .prepare("SELECT image_id, position, diff_id, chain_id FROM image_layers ORDER BY image_id, position")?;
        let mut out: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
        for row in st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })? {
            let (id, pos, diff, chain) = row?;
            out.entry(id).or_default().push((pos, diff, chain));
        }
        Ok(out)
    }
}

fn parse(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| Error::Invalid(format!("corrupt metadata: {e}")))
}
