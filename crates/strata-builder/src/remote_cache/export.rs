//! Writing a cache: the steps of the build as BuildKit cache records (each
//! record's digest is the step's strata key, its result the top layer of
//! the step's chain, its input the step before), the layers as blobs
//! chained by parent; into a registry or an OCI layout as an OCI image
//! manifest whose config is the cache config (BuildKit's
//! `image-manifest=true` form, which every registry takes), or into the
//! image config as an inline cache.

use std::collections::{BTreeSet, HashMap};

use base64::Engine as _;
use strata_layer::Compression;
use strata_oci::{Descriptor, Digest, ImageConfig, Manifest, media};
use strata_store::Store;

use super::StepRecord;
use super::buildkit_keys::{self, BkOp};
use super::format::{
    CACHE_CONFIG_V0, CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, INLINE_KEY, RESULT_LINK,
};
use super::location::Loc;
use super::spec::CacheExport;
use crate::error::{Error, Result};

/// The steps `finals` came through (their keys and every parent's), or all with `max`.
fn selected<'a>(steps: &'a [StepRecord], finals: &[String], max: bool) -> Vec<&'a StepRecord> {
    if max {
        return steps.iter().collect();
    }
    let by_key: HashMap<&str, &StepRecord> = steps.iter().map(|s| (s.key.as_str(), s)).collect();
    let mut keep = BTreeSet::new();
    for f in finals {
        let mut k = f.as_str();
        while let Some(s) = by_key.get(k) {
            if !keep.insert(k) {
                break;
            }
            k = s.parent.as_str();
        }
    }
    steps.iter().filter(|s| keep.contains(s.key.as_str())).collect()
}

fn now() -> Option<String> {
    Some(strata_image::now_rfc3339())
}

/// BuildKit's records of `steps` (in build order), appended to `records`
/// (`top(i)`: the layer index of step i's result): one per step BuildKit
/// makes an op of, linked to the record of the op before it. A step with
/// no op that leaves the layers as they were (ENV, ARG, USER, …) is no
/// vertex in BuildKit either: its successor links past it. A step that
/// changed the layers without a BuildKit description ends the chain there
/// (a record past it would name layers its inputs do not have).
fn buildkit_records(steps: &[&StepRecord], top: impl Fn(usize) -> Option<i64>, records: &mut Vec<CacheRecord>) {
    let by_key: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.key.as_str(), i)).collect();
    let mut bk_at: Vec<Option<usize>> = vec![None; steps.len()];
    let first = records.len();
    let add = |records: &mut Vec<CacheRecord>, digest: String, inputs: Vec<Vec<CacheInput>>, result: Option<i64>| {
        if let Some(i) = records.iter().position(|r| r.digest == digest && r.inputs == inputs) {
            return i;
        }
        // One record per result (BuildKit loads a result through any record that has it).
        let result = result.filter(|t| {
            !records[first..]
                .iter()
                .any(|r| r.results.iter().any(|x| x.layer_index == *t))
        });
        records.push(CacheRecord {
            results: result
                .map(|t| {
                    vec![CacheResult {
                        layer_index: t,
                        created_at: now(),
                    }]
                })
                .unwrap_or_default(),
            chained_results: Vec::new(),
            digest,
            inputs,
        });
        records.len() - 1
    };
    let link = |i: usize| {
        vec![CacheInput {
            selector: String::new(),
            link_index: i as i64,
        }]
    };
    for (i, s) in steps.iter().enumerate() {
        let parent = by_key.get(s.parent.as_str()).copied().filter(|p| *p < i);
        let parent_bk = parent.and_then(|p| bk_at[p]);
        bk_at[i] = match (&s.bk, parent) {
            // The base's source: no result (the image's own layers), as BuildKit writes it.
            (Some(op @ BkOp::Image { .. }), _) if s.parent.is_empty() => {
                Some(add(records, buildkit_keys::record_digest(op), Vec::new(), None))
            }
            (Some(op @ BkOp::Exec(_)), Some(_)) => {
                parent_bk.map(|p| add(records, buildkit_keys::record_digest(op), vec![link(p)], top(i)))
            }
            (Some(op @ BkOp::Copy(c)), Some(_)) => parent_bk.map(|p| {
                let content = add(records, buildkit_keys::content_key(&c.checksums), Vec::new(), None);
                add(
                    records,
                    buildkit_keys::record_digest(op),
                    vec![link(p), link(content)],
                    top(i),
                )
            }),
            (None, Some(p)) if steps[p].diff_ids == s.diff_ids => parent_bk,
            _ => None,
        };
    }
    // strata's records name the BuildKit record holding the same result instead of holding it.
    let held: HashMap<i64, usize> = (first..records.len())
        .filter_map(|i| records[i].results.first().map(|r| (r.layer_index, i)))
        .collect();
    for r in records[..first].iter_mut() {
        if let Some(bk) = r.results.first().and_then(|x| held.get(&x.layer_index)) {
            r.results.clear();
            r.inputs.push(vec![CacheInput {
                selector: RESULT_LINK.to_string(),
                link_index: *bk as i64,
            }]);
        }
    }
}

/// Sets the inline cache of an image whose config is `config` and last key `final_key`.
pub(crate) fn inline_into(steps: &[StepRecord], config: &mut ImageConfig, final_key: &str) -> Result<()> {
    let chosen = selected(steps, &[final_key.to_string()], false);
    let diff_ids = &config.rootfs.diff_ids;
    // Only records whose result is a prefix of the image's layers can name them by index.
    let usable: Vec<&StepRecord> = chosen
        .into_iter()
        .filter(|s| s.diff_ids.len() <= diff_ids.len() && s.diff_ids[..] == diff_ids[..s.diff_ids.len()])
        .collect();
    let index: HashMap<&str, usize> = usable.iter().enumerate().map(|(i, s)| (s.key.as_str(), i)).collect();
    let records: Vec<CacheRecord> = usable
        .iter()
        .map(|s| CacheRecord {
            results: match s.diff_ids.len() {
                0 => Vec::new(),
                n => vec![CacheResult {
                    layer_index: n as i64 - 1,
                    created_at: now(),
                }],
            },
            chained_results: Vec::new(),
            digest: format!("sha256:{}", s.key),
            inputs: match index.get(s.parent.as_str()) {
                Some(p) => vec![vec![CacheInput {
                    selector: String::new(),
                    link_index: *p as i64,
                }]],
                None => Vec::new(),
            },
        })
        .collect();
    let mut records = records;
    buildkit_records(
        &usable,
        |i| usable[i].diff_ids.len().checked_sub(1).map(|t| t as i64),
        &mut records,
    );
    let json = serde_json::to_vec(&records).map_err(|e| Error::Internal(format!("writing the inline cache: {e}")))?;
    config.extra.insert(
        INLINE_KEY.to_string(),
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(json)),
    );
    Ok(())
}

/// A compressed form of layer `diff_id` from the store (gzip made and
/// recorded now when the store holds it only plain).
fn blob_for(store: &mut Store, diff_id: &Digest) -> Result<Descriptor> {
    let forms = store.held_layer_blobs(diff_id)?;
    let compressed = |c: Compression| {
        forms
            .iter()
            .find(|b| Compression::of_layer_media_type(&b.media_type) == Some(c))
            .cloned()
    };
    if let Some(b) = compressed(Compression::Gzip).or_else(|| compressed(Compression::Zstd)) {
        return Ok(Descriptor::new(&b.media_type, b.digest, b.size).with_oci_media_type());
    }
    let plain = forms
        .iter()
        .find(|b| Compression::of_layer_media_type(&b.media_type) == Some(Compression::None))
        .ok_or_else(|| Error::Internal(format!("layer {diff_id} is not in the store in any form")))?;
    let src = store.open_blob(&plain.digest)?;
    let w = store.blob_writer()?;
    let failed = |e: &dyn std::fmt::Display| Error::Internal(format!("compressing layer {diff_id}: {e}"));
    let mut enc = strata_layer::Encoder::new(w, Compression::Gzip, None).map_err(|e| failed(&e))?;
    std::io::copy(&mut std::io::BufReader::with_capacity(256 * 1024, src), &mut enc).map_err(|e| failed(&e))?;
    let (w, digest, size) = enc.finish().map_err(|e| failed(&e))?;
    w.commit(Some(&digest)).map_err(|e| failed(&e))?;
    let desc = Descriptor::new(media::OCI_LAYER_GZIP, digest, size);
    let diff_size = store.layer_size(diff_id)?.unwrap_or(0);
    store.add_layer_blob(diff_id, diff_size, &desc)?;
    Ok(desc)
}

/// The cache config of `steps` and the blobs it names, in order.
pub(crate) fn cache_config(store: &mut Store, steps: &[&StepRecord]) -> Result<(CacheConfig, Vec<Descriptor>)> {
    let mut config = CacheConfig::default();
    let mut blobs: Vec<Descriptor> = Vec::new();
    // Chain ID → layer index: a blob on another parent is another layer.
    let mut layer_at: HashMap<Digest, usize> = HashMap::new();
    let mut forms: HashMap<Digest, Descriptor> = HashMap::new();
    let mut tops = Vec::new();
    for s in steps {
        let chain = strata_oci::chain_ids(&s.diff_ids);
        let mut parent: i64 = -1;
        for (i, c) in chain.iter().enumerate() {
            let idx = match layer_at.get(c) {
                Some(i) => *i,
                None => {
                    let d = &s.diff_ids[i];
                    let blob = match forms.get(d) {
                        Some(b) => b.clone(),
                        None => {
                            let b = blob_for(store, d)?;
                            forms.insert(d.clone(), b.clone());
                            if !blobs.iter().any(|x| x.digest == b.digest) {
                                blobs.push(b.clone());
                            }
                            b
                        }
                    };
                    config.layers.push(CacheLayer {
                        blob: blob.digest.to_string(),
                        parent_index: parent,
                        annotations: Some(super::format::LayerAnnotations {
                            media_type: blob.media_type.clone(),
                            diff_id: d.to_string(),
                            size: blob.size as i64,
                            created_at: now(),
                        }),
                    });
                    layer_at.insert(c.clone(), config.layers.len() - 1);
                    config.layers.len() - 1
                }
            };
            parent = idx as i64;
        }
        tops.push(parent);
    }
    let index: HashMap<&str, usize> = steps.iter().enumerate().map(|(i, s)| (s.key.as_str(), i)).collect();
    for (s, top) in steps.iter().zip(tops.iter().copied()) {
        config.records.push(CacheRecord {
            results: match top {
                -1 => Vec::new(),
                t => vec![CacheResult {
                    layer_index: t,
                    created_at: now(),
                }],
            },
            chained_results: Vec::new(),
            digest: format!("sha256:{}", s.key),
            inputs: match index.get(s.parent.as_str()) {
                Some(p) => vec![vec![CacheInput {
                    selector: String::new(),
                    link_index: *p as i64,
                }]],
                None => Vec::new(),
            },
        });
    }
    buildkit_records(steps, |i| Some(tops[i]).filter(|t| *t >= 0), &mut config.records);
    Ok((config, blobs))
}

/// Writes one registry or local cache; says what it wrote.
pub(crate) fn write(
    rt: &tokio::runtime::Runtime,
    store: &mut Store,
    steps: &[StepRecord],
    finals: &[String],
    e: &CacheExport,
    client: &strata_registry::ClientOptions,
) -> Result<String> {
    let chosen = selected(steps, finals, e.max);
    let (config, blobs) = cache_config(store, &chosen)?;
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| Error::Internal(format!("writing the cache config: {e}")))?;
    let config_desc = Descriptor::new(
        CACHE_CONFIG_V0,
        Digest::sha256_of(&config_bytes),
        config_bytes.len() as u64,
    );
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config_desc.clone(),
        layers: blobs.clone(),
        subject: None,
        annotations: None,
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::Internal(format!("writing the cache manifest: {e}")))?;
    let manifest_desc = Descriptor::new(
        media::OCI_MANIFEST,
        Digest::sha256_of(&manifest_bytes),
        manifest_bytes.len() as u64,
    );
    let paths: Vec<(Descriptor, std::path::PathBuf)> =
        blobs.iter().map(|b| (b.clone(), store.blob_path(&b.digest))).collect();
    let name = e.name();
    let failed = |err: strata_transfer::TransferError| Error::CacheExport {
        name: name.clone(),
        message: err.to_string(),
    };
    let uploaded = rt
        .block_on(async {
            let (loc, tag) = Loc::for_writing(&e.spec, client)?;
            let mut uploaded = 0usize;
            for (d, p) in &paths {
                if !loc.has_blob(d).await? {
                    loc.put_file(d, p).await?;
                    uploaded += 1;
                }
            }
            if !loc.has_blob(&config_desc).await? {
                loc.put_bytes(&config_desc, config_bytes.clone()).await?;
            }
            loc.put_root(&manifest_desc, &manifest_bytes, &tag).await?;
            Ok::<usize, strata_transfer::TransferError>(uploaded)
        })
        .map_err(failed)?;
    Ok(format!(
        "writing cache manifest {} done: {} records, {} layers ({} uploaded)",
        manifest_desc.digest,
        config.records.len(),
        blobs.len(),
        uploaded
    ))
}
