//! The build cache: a step's key → the layer it made and the image config
//! after it, in the store's database. Keys chain: each is the sha256 of the
//! parent key and the step's inputs (the instruction as evaluated, the
//! build arguments it sees, a content hash of COPY/ADD sources), so equal
//! keys mean equal results whatever Dockerfile or tag they came from.
//!
//! The inputs of the last step built at each (parent key, position) are
//! kept too, to say why a later build missed.

use std::collections::BTreeMap;

use crate::error::Result;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use strata_oci::{Digest, ImageConfig};
use strata_store::Store;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS build_cache (
    key         TEXT PRIMARY KEY,      -- sha256 of the parent key and the step's inputs
    diff_id     TEXT,                  -- the layer the step made (NULL: metadata only)
    config      TEXT NOT NULL,         -- the image config after the step (JSON)
    created     TEXT NOT NULL,
    last_used   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS build_cache_diff ON build_cache(diff_id);
CREATE TABLE IF NOT EXISTS build_cache_inputs (
    parent      TEXT NOT NULL,
    position    TEXT NOT NULL,
    key         TEXT NOT NULL,
    inputs      TEXT NOT NULL,         -- JSON of StepInputs
    PRIMARY KEY (parent, position)
);
CREATE TABLE IF NOT EXISTS build_from_hashes (
    chain       TEXT NOT NULL,         -- chain ID of the stage or image read from
    spec        TEXT NOT NULL,         -- what is selected in it (JSON)
    hash        TEXT NOT NULL,         -- content digest of the selection
    files       TEXT,                  -- per-file summary (JSON; NULL: too many to keep)
    PRIMARY KEY (chain, spec)
);
"#;

/// Per-file summaries longer than this are not memoized (made again on a miss).
pub const MEMO_FILES_MAX: usize = 2000;

/// What a step's key is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInputs {
    /// The instruction as evaluated (variables expanded, heredocs included).
    pub text: String,
    /// The build arguments the step sees (RUN: all in scope; others: those it uses).
    pub args: BTreeMap<String, String>,
    /// Content digest of COPY/ADD sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Per-file summary of the sources (for explanations).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// SOURCE_DATE_EPOCH, which changes times in the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<i64>,
    /// Where `content` comes from when not the build context ("copied from
    /// stage one"), for explanations; not part of the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl StepInputs {
    pub fn key(&self, parent: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"strata-build-cache-v2\0");
        h.update(parent.as_bytes());
        h.update(b"\0");
        h.update(self.text.as_bytes());
        h.update(b"\0");
        for (k, v) in &self.args {
            h.update(format!("{k}={v}\0").as_bytes());
        }
        h.update(b"\0");
        if let Some(c) = &self.content {
            h.update(c.as_bytes());
        }
        h.update(b"\0");
        if let Some(e) = self.epoch {
            h.update(e.to_string().as_bytes());
        }
        strata_oci::digest::to_hex(&h.finalize())
    }
}

pub fn init(store: &Store) -> Result<()> {
    store.conn().execute_batch(SCHEMA)?;
    Ok(())
}

/// A cached step result.
pub struct Hit {
    pub config: ImageConfig,
}

pub fn lookup(store: &Store, key: &str) -> Result<Option<Hit>> {
    let row: Option<String> = store
        .conn()
        .query_row("SELECT config FROM build_cache WHERE key=?1", [key], |r| r.get(0))
        .optional()?;
    let Some(config) = row else { return Ok(None) };
    let Ok(config) = serde_json::from_str::<ImageConfig>(&config) else {
        return Ok(None);
    };
    // Every layer of the result must still have its blob.
    for d in &config.rootfs.diff_ids {
        if store.held_layer_blobs(d)?.is_empty() {
            return Ok(None);
        }
    }
    let _ = store.conn().execute(
        "UPDATE build_cache SET last_used=?2 WHERE key=?1",
        params![key, strata_image::now_rfc3339()],
    );
    Ok(Some(Hit { config }))
}

/// Whether a result is recorded under `key` (a cheap check before costly explanations).
pub fn has(store: &Store, key: &str) -> Result<bool> {
    Ok(store
        .conn()
        .query_row("SELECT 1 FROM build_cache WHERE key=?1", [key], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn record(store: &Store, key: &str, diff_id: Option<&Digest>, config: &ImageConfig) -> Result<()> {
    let now = strata_image::now_rfc3339();
    store.conn().execute(
        "INSERT OR REPLACE INTO build_cache (key, diff_id, config, created, last_used) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![key, diff_id.map(|d| d.to_string()), serde_json::to_string(config)?, now],
    )?;
    Ok(())
}

pub fn record_inputs(store: &Store, parent: &str, position: &str, key: &str, inputs: &StepInputs) -> Result<()> {
    store.conn().execute(
        "INSERT OR REPLACE INTO build_cache_inputs (parent, position, key, inputs) VALUES (?1, ?2, ?3, ?4)",
        params![parent, position, key, serde_json::to_string(inputs)?],
    )?;
    Ok(())
}

/// A memoized content digest of a selection in another stage's or image's root.
pub struct FromHash {
    pub hash: String,
    /// The per-file summary (None: too long to keep).
    pub files: Option<BTreeMap<String, String>>,
}

/// The memoized content digest (and per-file summary, when kept) of the
/// selection `spec` in the root of chain `chain`.
pub fn from_hash(store: &Store, chain: &str, spec: &str) -> Result<Option<FromHash>> {
    let row: Option<(String, Option<String>)> = store
        .conn()
        .query_row(
            "SELECT hash, files FROM build_from_hashes WHERE chain=?1 AND spec=?2",
            [chain, spec],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(hash, f)| FromHash {
        hash,
        files: f.and_then(|f| serde_json::from_str(&f).ok()),
    }))
}

pub fn record_from_hash(
    store: &Store,
    chain: &str,
    spec: &str,
    hash: &str,
    files: &BTreeMap<String, String>,
) -> Result<()> {
    let files = if files.len() <= MEMO_FILES_MAX {
        Some(serde_json::to_string(files)?)
    } else {
        None
    };
    store.conn().execute(
        "INSERT OR REPLACE INTO build_from_hashes (chain, spec, hash, files) VALUES (?1, ?2, ?3, ?4)",
        params![chain, spec, hash, files],
    )?;
    Ok(())
}

pub fn previous_inputs(store: &Store, parent: &str, position: &str) -> Result<Option<StepInputs>> {
    let row: Option<String> = store
        .conn()
        .query_row(
            "SELECT inputs FROM build_cache_inputs WHERE parent=?1 AND position=?2",
            [parent, position],
            |r| r.get(0),
        )
        .optional()?;
    Ok(row.and_then(|s| serde_json::from_str(&s).ok()))
}

/// Why `now` missed where `before` had been built, in a few words.
pub fn explain(before: &StepInputs, now: &StepInputs) -> String {
    let mut why = Vec::new();
    if before.text != now.text {
        why.push(format!("instruction changed (was: {})", one_line(&before.text, 80)));
    }
    let mut arg_changes = Vec::new();
    for (k, v) in &now.args {
        match before.args.get(k) {
            Some(old) if old != v => arg_changes.push(format!("{k} ({old:?} -> {v:?})")),
            None => arg_changes.push(format!("{k} (new: {v:?})")),
            _ => {}
        }
    }
    for k in before.args.keys() {
        if !now.args.contains_key(k) {
            arg_changes.push(format!("{k} (no longer set)"));
        }
    }
    if !arg_changes.is_empty() {
        why.push(format!("build arg changed: {}", arg_changes.join(", ")));
    }
    if before.content != now.content {
        let mut changed = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (k, v) in &now.files {
            match before.files.get(k) {
                Some(old) if old != v => changed.push(k.clone()),
                None => added.push(k.clone()),
                _ => {}
            }
        }
        for k in before.files.keys() {
            if !now.files.contains_key(k) {
                removed.push(k.clone());
            }
        }
        let list = |v: &[String]| {
            let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 5 {
                s.push_str(&format!(" and {} more", v.len() - 5));
            }
            s
        };
        let mut parts = Vec::new();
        if !changed.is_empty() {
            parts.push(format!("file changed: {}", list(&changed)));
        }
        if !added.is_empty() {
            parts.push(format!("file added: {}", list(&added)));
        }
        if !removed.is_empty() {
            parts.push(format!("file removed: {}", list(&removed)));
        }
        match &now.from {
            None if parts.is_empty() => why.push("source files changed".into()),
            None => why.extend(parts),
            // Before: no per-file summary of this source to compare with.
            Some(from) if parts.is_empty() || before.from.is_none() => why.push(format!("content {from} changed")),
            Some(from) => why.push(format!("{} ({from})", parts.join("; "))),
        }
    }
    if before.epoch != now.epoch {
        why.push("SOURCE_DATE_EPOCH changed".into());
    }
    if why.is_empty() {
        why.push("the cached result is gone (its layer was removed)".into());
    }
    why.join("; ")
}

pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut t: String = flat.chars().take(max).collect();
        t.push_str("...");
        t
    } else {
        flat
    }
}

/// Whether the cache's tables exist yet (made by the first build): readers
/// answer "empty" before that instead of creating them.
fn exists(store: &Store) -> Result<bool> {
    Ok(store.conn().query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='build_cache')",
        [],
        |r| r.get(0),
    )?)
}

/// What the build cache holds: steps recorded, and the bytes of the layers
/// only the cache keeps (what pruning it would free).
#[derive(Debug, Clone, Default)]
pub struct CacheUsage {
    pub entries: u64,
    /// Layers made by cached steps, each once.
    pub size: u64,
    /// Of those, the bytes no image uses.
    pub reclaimable: u64,
}

/// `system df`'s build cache row.
pub fn usage(store: &Store) -> Result<CacheUsage> {
    if !exists(store)? {
        return Ok(CacheUsage::default());
    }
    let entries: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM build_cache", [], |r| r.get(0))?;
    let mut st = store
        .conn()
        .prepare("SELECT DISTINCT diff_id FROM build_cache WHERE diff_id IS NOT NULL")?;
    let diff_ids = st
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let uses = store.layer_use_counts()?;
    let mut usage = CacheUsage {
        entries: entries as u64,
        ..Default::default()
    };
    for d in diff_ids {
        let Ok(d) = Digest::parse(&d) else { continue };
        let size = store.layer_size(&d)?.unwrap_or(0);
        usage.size += size;
        if uses.get(&d).copied().unwrap_or(0) == 0 {
            usage.reclaimable += size;
        }
    }
    Ok(usage)
}

/// The unpacked layers the build cache uses (for the store check): each
/// step's config names the layers below and including the step's.
pub struct CacheLayerUsers<'a>(pub &'a Store);

impl strata_image::LayerUsers for CacheLayerUsers<'_> {
    fn what(&self) -> &str {
        "the build cache"
    }

    fn chains_in_use(
        &self,
    ) -> std::result::Result<std::collections::BTreeSet<Digest>, Box<dyn std::error::Error + Send + Sync>> {
        let mut used = std::collections::BTreeSet::new();
        if !exists(self.0)? {
            return Ok(used);
        }
        let mut st = self.0.conn().prepare("SELECT config FROM build_cache")?;
        for c in st.query_map([], |r| r.get::<_, String>(0))? {
            if let Ok(cfg) = ImageConfig::parse(c?.as_bytes()) {
                used.extend(strata_oci::chain_ids(&cfg.rootfs.diff_ids));
            }
        }
        Ok(used)
    }
}

/// One build cache entry, for `buildx du`.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub key: String,
    /// The layer the step made (none: a metadata-only step).
    pub diff_id: Option<Digest>,
    pub size: u64,
    /// No image uses its layer: pruning frees it.
    pub reclaimable: bool,
    pub last_used: String,
}

/// Every entry of the build cache, most recently used first.
pub fn entries(store: &Store) -> Result<Vec<CacheEntry>> {
    if !exists(store)? {
        return Ok(Vec::new());
    }
    let mut st = store
        .conn()
        .prepare("SELECT key, diff_id, last_used FROM build_cache ORDER BY last_used DESC, key")?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let uses = store.layer_use_counts()?;
    let mut out = Vec::new();
    for (key, diff_id, last_used) in rows {
        let diff_id = diff_id.and_then(|d| Digest::parse(&d).ok());
        let (size, reclaimable) = match &diff_id {
            Some(d) => (
                store.layer_size(d)?.unwrap_or(0),
                uses.get(d).copied().unwrap_or(0) == 0,
            ),
            None => (0, true),
        };
        out.push(CacheEntry {
            key,
            diff_id,
            size,
            reclaimable,
            last_used,
        });
    }
    Ok(out)
}

/// What [`prune`] removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    pub entries: u64,
    pub layers: usize,
    pub bytes_reclaimed: u64,
}

/// Empties the build cache (`buildx prune`, `builder prune`): every entry,
/// the inputs kept to explain misses, the memoized source hashes, and the
/// layers only the cache kept (records, blobs, unpacked directories).
/// Layers an image uses stay.
pub fn prune(store: &mut Store) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    if exists(store)? {
        let n = store.conn().execute("DELETE FROM build_cache", [])?;
        store.conn().execute("DELETE FROM build_cache_inputs", [])?;
        store.conn().execute("DELETE FROM build_from_hashes", [])?;
        report.entries = n as u64;
    }
    let removed = store.remove_unused_layers()?;
    report.layers = removed.layers;
    report.bytes_reclaimed = removed.bytes_reclaimed;
    Ok(report)
}

/// Removes the entries last used before `cutoff` (RFC 3339 in UTC, as
/// `last_used` is written: `builder prune --filter until=…`), the inputs
/// kept to explain misses of the steps they made, and the layers only they
/// kept.
pub fn prune_until(store: &mut Store, cutoff: &str) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    if exists(store)? {
        let n = store
            .conn()
            .execute("DELETE FROM build_cache WHERE last_used < ?1", [cutoff])?;
        store.conn().execute(
            "DELETE FROM build_cache_inputs WHERE key NOT IN (SELECT key FROM build_cache)",
            [],
        )?;
        report.entries = n as u64;
    }
    let removed = store.remove_unused_layers()?;
    report.layers = removed.layers;
    report.bytes_reclaimed = removed.bytes_reclaimed;
    Ok(report)
}
