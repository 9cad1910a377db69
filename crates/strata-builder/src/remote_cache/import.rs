//! Reading a cache: a cache manifest (an OCI image manifest whose config is
//! a cache config, or BuildKit's index form listing the config among its
//! blobs) or an image (or index of images) carrying an inline cache.

use std::collections::HashMap;

use base64::Engine as _;
use strata_oci::{Descriptor, Digest, Document, History, ImageConfig, media};
use strata_store::Store;
use strata_transfer::TransferError;

use super::CachedLayer;
use super::format::{CACHE_CONFIG_V0, CacheConfig, INLINE_KEY};
use super::location::Loc;
use super::spec::CacheImport;

/// At most this many images of an index are read for inline caches.
const MAX_IMAGES: usize = 16;

/// An image with an inline cache (or none: its history still matches).
pub(crate) struct InlineImage {
    pub layers: Vec<CachedLayer>,
    pub history: Vec<History>,
}

/// A cache read.
pub(crate) struct Imported {
    pub name: String,
    pub loc: Loc,
    /// Record digest (without `sha256:`) → the chains of layers of its results.
    pub keyed: HashMap<String, Vec<Vec<CachedLayer>>>,
    pub images: Vec<InlineImage>,
}

type R<T> = std::result::Result<T, TransferError>;

fn invalid(e: impl std::fmt::Display) -> TransferError {
    TransferError::Invalid(e.to_string())
}

/// Reads the cache `f`; the warnings say what in it was left out.
pub(crate) async fn read(f: &CacheImport, client: &strata_registry::ClientOptions) -> R<(Imported, Vec<String>)> {
    let (loc, name) = Loc::for_reading(&f.spec, client)?;
    let root = loc.resolve(&name).await?;
    let bytes = loc.read_document(&root).await?;
    let mut warnings = Vec::new();
    let mut imported = Imported {
        name: f.name(),
        loc,
        keyed: HashMap::new(),
        images: Vec::new(),
    };
    match Document::parse(&bytes, Some(&root.media_type)).map_err(invalid)? {
        Document::Manifest(m) if m.config.media_type == CACHE_CONFIG_V0 => {
            let blobs: HashMap<Digest, Descriptor> = m.layers.iter().map(|l| (l.digest.clone(), l.clone())).collect();
            read_cache_config(&mut imported, &m.config, &blobs, &mut warnings).await?;
        }
        Document::Manifest(m) => {
            read_image(&mut imported, &m, &mut warnings).await?;
        }
        Document::Index(ix) => {
            if let Some(cfg) = ix.manifests.iter().find(|d| d.media_type == CACHE_CONFIG_V0) {
                let blobs: HashMap<Digest, Descriptor> = ix
                    .manifests
                    .iter()
                    .filter(|d| d.media_type != CACHE_CONFIG_V0)
                    .map(|l| (l.digest.clone(), l.clone()))
                    .collect();
                read_cache_config(&mut imported, cfg, &blobs, &mut warnings).await?;
            } else {
                for d in ix
                    .manifests
                    .iter()
                    .filter(|d| media::is_manifest(&d.media_type))
                    .take(MAX_IMAGES)
                {
                    if d.platform.as_ref().is_some_and(|p| p.os == "unknown") {
                        continue;
                    }
                    let b = imported.loc.read_document(d).await?;
                    if let Document::Manifest(m) = Document::parse(&b, Some(&d.media_type)).map_err(invalid)? {
                        read_image(&mut imported, &m, &mut warnings).await?;
                    }
                }
            }
        }
    }
    Ok((imported, warnings))
}

/// A registry or local cache: its config, its records by digest, each
/// result a chain of layers the manifest lists, with the diff IDs the
/// config's annotations give (a layer without one cannot be checked: left out).
async fn read_cache_config(
    imported: &mut Imported,
    desc: &Descriptor,
    blobs: &HashMap<Digest, Descriptor>,
    warnings: &mut Vec<String>,
) -> R<()> {
    if desc.size > super::format::MAX_CONFIG_SIZE {
        return Err(invalid(format!("cache config {} is larger than 4 MiB", desc.digest)));
    }
    let bytes = imported.loc.read_document(desc).await?;
    let config = CacheConfig::parse(&bytes).map_err(|e| invalid(format!("cache config {}: {e}", desc.digest)))?;
    let mut layers: Vec<Option<CachedLayer>> = Vec::new();
    for l in &config.layers {
        let blob = Digest::parse(&l.blob).ok().and_then(|d| blobs.get(&d).cloned());
        let diff_id = l.annotations.as_ref().and_then(|a| Digest::parse(&a.diff_id).ok());
        match (blob, diff_id) {
            (Some(b), Some(d)) => layers.push(Some(CachedLayer {
                desc: Descriptor::new(&b.media_type, b.digest, b.size),
                diff_id: d,
            })),
            (None, _) => {
                warnings.push(format!(
                    "the cache config names blob {} that its manifest does not list: the records on it are ignored",
                    l.blob
                ));
                layers.push(None);
            }
            (Some(_), None) => {
                warnings.push(format!(
                    "layer {} has no diff ID: the records on it are ignored",
                    l.blob
                ));
                layers.push(None);
            }
        }
    }
    for r in &config.records {
        let key = r.digest.strip_prefix("sha256:").unwrap_or(&r.digest).to_string();
        let chains: Vec<Vec<CachedLayer>> = config
            .results_of(r)
            .into_iter()
            .filter_map(|c| c.iter().map(|i| layers.get(*i).cloned().flatten()).collect())
            .collect();
        if !chains.is_empty() {
            imported.keyed.entry(key).or_default().extend(chains);
        }
    }
    Ok(())
}

/// An image: its layers and history (matched by history), and its inline
/// cache's records (matched by key) when it has one.
async fn read_image(imported: &mut Imported, m: &strata_oci::Manifest, warnings: &mut Vec<String>) -> R<()> {
    let bytes = imported.loc.read_document(&m.config).await?;
    let config = ImageConfig::parse(&bytes).map_err(invalid)?;
    if config.rootfs.diff_ids.len() != m.layers.len() {
        warnings.push(format!(
            "image {}: the config lists {} layers but the manifest {}: ignored",
            m.config.digest,
            config.rootfs.diff_ids.len(),
            m.layers.len()
        ));
        return Ok(());
    }
    let layers: Vec<CachedLayer> = m
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(l, d)| CachedLayer {
            desc: Descriptor::new(&l.media_type, l.digest.clone(), l.size),
            diff_id: d.clone(),
        })
        .collect();
    if let Some(v) = config.extra.get(INLINE_KEY) {
        let records = match v {
            // Go's []byte: base64 of the records' JSON.
            serde_json::Value::String(s) => base64::engine::general_purpose::STANDARD.decode(s).ok(),
            other => serde_json::to_vec(other).ok(),
        };
        let blobs: Vec<String> = layers.iter().map(|l| l.desc.digest.to_string()).collect();
        match records.map(|r| CacheConfig::from_inline(&r, &blobs)) {
            Some(Ok(c)) => {
                for r in &c.records {
                    let key = r.digest.strip_prefix("sha256:").unwrap_or(&r.digest).to_string();
                    let chains: Vec<Vec<CachedLayer>> = c
                        .results_of(r)
                        .into_iter()
                        .map(|ch| ch.iter().map(|i| layers[*i].clone()).collect())
                        .collect();
                    if !chains.is_empty() {
                        imported.keyed.entry(key).or_default().extend(chains);
                    }
                }
            }
            Some(Err(e)) => warnings.push(format!("image {}: inline cache ignored: {e}", m.config.digest)),
            None => warnings.push(format!(
                "image {}: inline cache is not base64 JSON: ignored",
                m.config.digest
            )),
        }
    }
    imported.images.push(InlineImage {
        layers,
        history: config.history,
    });
    Ok(())
}

impl Imported {
    /// The layer a step with `key` (and history text `created_by`) makes on `current`.
    pub fn lookup(
        &self,
        key: &str,
        current: &ImageConfig,
        created_by: Option<&str>,
    ) -> std::result::Result<(CachedLayer, &'static str), String> {
        let cur = &current.rootfs.diff_ids;
        if let Some(chains) = self.keyed.get(key) {
            for c in chains {
                if c.len() == cur.len() + 1 && c.iter().zip(cur).all(|(l, d)| l.diff_id == *d) {
                    return Ok((c[cur.len()].clone(), "key"));
                }
            }
            return Err("a record has this step's key but its layers are not this step's".into());
        }
        let Some(created_by) = created_by else {
            return Err("no record with this step's key".into());
        };
        let mut why = "no record with this step's key, no image in it with this history".to_string();
        for img in &self.images {
            match history_match(img, current, created_by) {
                Ok(i) => return Ok((img.layers[i].clone(), "history")),
                Err(w) => why = format!("no record with this step's key; {w}"),
            }
        }
        Err(why)
    }
}

/// The index of the layer `created_by` makes on `current` in `img`, when
/// `img` was built that far as `current` was (see the module documentation).
pub(crate) fn history_match(
    img: &InlineImage,
    current: &ImageConfig,
    created_by: &str,
) -> std::result::Result<usize, String> {
    let cur = &current.rootfs.diff_ids;
    let n = cur.len();
    if img.layers.len() <= n || img.layers[..n].iter().zip(cur).any(|(l, d)| l.diff_id != *d) {
        return Err("its layers differ from this step's (another base or earlier steps)".into());
    }
    let h = &current.history;
    if h.iter().filter(|e| !e.empty_layer).count() != n || img.history.len() <= h.len() {
        return Err("its history differs".into());
    }
    for (i, (a, b)) in h.iter().zip(&img.history).enumerate() {
        if a.created_by != b.created_by || a.empty_layer != b.empty_layer {
            return Err(format!(
                "its history differs at entry {}: {:?}",
                i + 1,
                super::super::cache::one_line(b.created_by.as_deref().unwrap_or(""), 60)
            ));
        }
    }
    let next = &img.history[h.len()];
    if next.empty_layer || next.created_by.as_deref() != Some(created_by) {
        return Err(format!(
            "its next step is {:?}",
            super::super::cache::one_line(next.created_by.as_deref().unwrap_or(""), 60)
        ));
    }
    Ok(n)
}

/// Downloads a layer into the store: the blob checked against its digest,
/// its content against the diff ID, in one pass; named only when both hold.
pub(crate) async fn fetch_layer(loc: &Loc, store: &mut Store, layer: &CachedLayer) -> R<()> {
    use tokio::io::AsyncReadExt;
    let mut data = loc.open_blob(&layer.desc).await?;
    let staging = strata_transfer::ingest::staging_file(store)?;
    let mut ingest =
        strata_transfer::ingest::LayerIngest::start(staging, &layer.diff_id, None, Box::new(|_| {}), Box::new(|_| {}))?;
    let what = format!("blob {}", layer.desc.digest);
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let fetched = loop {
        match data.read(&mut buf).await {
            Ok(0) => break Ok(total),
            Ok(n) => {
                if let Err(e) = std::io::Write::write_all(&mut ingest, &buf[..n]) {
                    break Err(TransferError::io(format!("storing {what}"), e));
                }
                total += n as u64;
            }
            Err(e) => break Err(strata_transfer::from_io(e, &what)),
        }
    };
    let staged = ingest.finish(fetched, &layer.diff_id, layer.desc.size).await?;
    store
        .commit_synced(staged.tmp, &layer.desc.digest)
        .map_err(|e| TransferError::Location(format!("storing {what}: {e}")))?;
    store
        .add_layer_blob(&layer.diff_id, staged.diff_size, &layer.desc)
        .map_err(|e| TransferError::Location(format!("recording layer {}: {e}", layer.diff_id)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> CachedLayer {
        let d = Digest::sha256_of(&[n]);
        CachedLayer {
            desc: Descriptor::new(media::OCI_LAYER_GZIP, d.clone(), 1),
            diff_id: d,
        }
    }

    fn h(by: &str, empty: bool) -> History {
        History {
            created_by: Some(by.into()),
            empty_layer: empty,
            ..Default::default()
        }
    }

    #[test]
    fn history_matches_only_the_same_base_and_steps() {
        let img = InlineImage {
            layers: vec![layer(0), layer(1), layer(2)],
            history: vec![
                h("base", false),
                h("ENV A=1", true),
                h("RUN a", false),
                h("RUN b", false),
            ],
        };
        let mut cur = ImageConfig::default();
        cur.rootfs.diff_ids = vec![layer(0).diff_id];
        cur.history = vec![h("base", false), h("ENV A=1", true)];
        assert_eq!(history_match(&img, &cur, "RUN a"), Ok(1));
        assert!(history_match(&img, &cur, "RUN b").is_err());
        // Another ENV value before: no match.
        cur.history[1] = h("ENV A=2", true);
        assert!(history_match(&img, &cur, "RUN a").is_err());
        // Another base layer: no match.
        cur.history[1] = h("ENV A=1", true);
        cur.rootfs.diff_ids = vec![layer(9).diff_id];
        assert!(history_match(&img, &cur, "RUN a").is_err());
    }
}
