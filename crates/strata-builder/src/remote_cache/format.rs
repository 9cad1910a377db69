//! BuildKit's cache format, `application/vnd.buildkit.cacheconfig.v0`: the
//! layers (blobs chained by parent index) and the records (a DAG of cache
//! keys, each with its results: the top layer of a chain). The same JSON
//! names the fields as BuildKit's `cacheimporttypes`, so a config written
//! here is read by BuildKit and the reverse. Inline caches (the image
//! config's `moby.buildkit.cache.v0`) carry only the records, as base64 of
//! their JSON array, their layer indexes naming the image's layers.
//!
//! Every index is checked before use: a config whose records loop, or name
//! a layer or record that is not there, is refused as a whole.

use serde::{Deserialize, Serialize};

/// The media type of a cache config (in a manifest's config or an index's entries).
pub const CACHE_CONFIG_V0: &str = "application/vnd.buildkit.cacheconfig.v0";

/// The image config key holding an inline cache.
pub const INLINE_KEY: &str = "moby.buildkit.cache.v0";

/// The selector of a link from a strata record to the (BuildKit) record
/// holding its result: BuildKit loads a result through any one of the
/// records that have it, so no two records carry the same result, and a
/// strata record names the BuildKit record's instead. BuildKit never
/// follows this link (no op of its has a strata key).
pub const RESULT_LINK: &str = "strata.result";

/// A config larger than this is refused (BuildKit reads at most 1 MiB of it; strata allows its document bound).
pub const MAX_CONFIG_SIZE: u64 = strata_oci::media::MAX_DOCUMENT_SIZE;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<CacheLayer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<CacheRecord>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheLayer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub blob: String,
    /// The layer below (-1: none). Go's `omitempty` leaves out 0, which reads back as 0.
    #[serde(default, rename = "parent", skip_serializing_if = "is_zero")]
    pub parent_index: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<LayerAnnotations>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerAnnotations {
    #[serde(default, rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(default, rename = "diffID", skip_serializing_if = "String::is_empty")]
    pub diff_id: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: i64,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    #[serde(default, rename = "layers", skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<CacheResult>,
    #[serde(default, rename = "chains", skip_serializing_if = "Vec::is_empty")]
    pub chained_results: Vec<ChainedResult>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Vec<CacheInput>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheResult {
    #[serde(rename = "layer", default)]
    pub layer_index: i64,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChainedResult {
    #[serde(rename = "layers", default)]
    pub layer_indexes: Vec<i64>,
    #[serde(default, rename = "createdAt")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheInput {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(rename = "link", default)]
    pub link_index: i64,
}

/// Why a cache config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the cache config is not valid JSON: {0}")]
    Json(String),
    #[error("record {record} names record {link}, which is not there")]
    BadLink { record: usize, link: i64 },
    #[error("record {0} has an empty input")]
    EmptyInput(usize),
    #[error("records loop through record {0}")]
    RecordLoop(usize),
    #[error("layer index {0} is not there")]
    BadLayer(i64),
    #[error("layers loop through layer {0}")]
    LayerLoop(usize),
}

impl CacheConfig {
    /// Parses and checks a cache config.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, FormatError> {
        let c: CacheConfig = serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// The records of an inline cache (the JSON array, as the config key
    /// holds it once base64 is undone), over `layers` image layers each
    /// on the one before, as BuildKit's importer makes them.
    pub fn from_inline(records_json: &[u8], blobs: &[String]) -> Result<CacheConfig, FormatError> {
        let records: Vec<CacheRecord> =
            serde_json::from_slice(records_json).map_err(|e| FormatError::Json(e.to_string()))?;
        let layers = blobs
            .iter()
            .enumerate()
            .map(|(i, b)| CacheLayer {
                blob: b.clone(),
                parent_index: i as i64 - 1,
                annotations: None,
            })
            .collect();
        let c = CacheConfig { layers, records };
        c.check()?;
        Ok(c)
    }

    /// Every link and layer index in range, no loops.
    pub fn check(&self) -> Result<(), FormatError> {
        // Layers: each chain ends at -1 without visiting a layer twice.
        for i in 0..self.layers.len() {
            self.chain(i as i64)?;
        }
        for (i, r) in self.records.iter().enumerate() {
            for input in &r.inputs {
                if input.is_empty() {
                    return Err(FormatError::EmptyInput(i));
                }
                for l in input {
                    if l.link_index < 0 || l.link_index as usize >= self.records.len() {
                        return Err(FormatError::BadLink {
                            record: i,
                            link: l.link_index,
                        });
                    }
                }
            }
            for res in &r.results {
                self.chain(res.layer_index)?;
            }
            for c in &r.chained_results {
                for l in &c.layer_indexes {
                    if *l < 0 || *l as usize >= self.layers.len() {
                        return Err(FormatError::BadLayer(*l));
                    }
                }
            }
        }
        // Records: depth-first over the inputs, a record on the path again is a loop.
        let n = self.records.len();
        let mut state = vec![0u8; n]; // 0 new, 1 open, 2 done
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            state[start] = 1;
            while let Some((i, next)) = stack.pop() {
                let links: Vec<usize> = self.records[i]
                    .inputs
                    .iter()
                    .flatten()
                    .map(|l| l.link_index as usize)
                    .collect();
                if next < links.len() {
                    stack.push((i, next + 1));
                    let j = links[next];
                    match state[j] {
                        1 => return Err(FormatError::RecordLoop(j)),
                        0 => {
                            state[j] = 1;
                            stack.push((j, 0));
                        }
                        _ => {}
                    }
                } else {
                    state[i] = 2;
                }
            }
        }
        Ok(())
    }

    /// The layers of the chain whose top is `top`, lowest first.
    pub fn chain(&self, top: i64) -> Result<Vec<usize>, FormatError> {
        let mut out = Vec::new();
        let mut i = top;
        while i != -1 {
            if i < 0 || i as usize >= self.layers.len() {
                return Err(FormatError::BadLayer(i));
            }
            let u = i as usize;
            if out.contains(&u) {
                return Err(FormatError::LayerLoop(u));
            }
            out.push(u);
            i = self.layers[u].parent_index;
        }
        out.reverse();
        Ok(out)
    }

    /// Each result of record `r` as a chain of layer indexes, lowest first
    /// (a strata record's results may be those of the record it links to
    /// with [`RESULT_LINK`]).
    pub fn results_of(&self, r: &CacheRecord) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for l in r.inputs.iter().flatten().filter(|l| l.selector == RESULT_LINK) {
            if let Some(t) = self.records.get(l.link_index as usize) {
                out.extend(self.own_results(t));
            }
        }
        out.extend(self.own_results(r));
        out
    }

    fn own_results(&self, r: &CacheRecord) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for res in &r.results {
            if let Ok(c) = self.chain(res.layer_index) {
                out.push(c);
            }
        }
        for c in &r.chained_results {
            out.push(c.layer_indexes.iter().map(|i| *i as usize).collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_buildkits_json_and_writes_it_back() {
        // As BuildKit writes it: parent 0 left out (Go's omitempty), -1 for the lowest layer.
        let json = br#"{"layers":[{"blob":"sha256:aa","parent":-1,"annotations":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","diffID":"sha256:bb","size":10,"createdAt":"2024-01-01T00:00:00Z"}},{"blob":"sha256:cc","annotations":{"createdAt":"2024-01-01T00:00:00Z"}}],
            "records":[{"digest":"sha256:r0"},{"layers":[{"layer":1,"createdAt":"2024-01-01T00:00:00Z"}],"digest":"sha256:r1","inputs":[[{"selector":"x","link":0}]]}]}"#;
        let c = CacheConfig::parse(json).unwrap();
        assert_eq!(c.layers[1].parent_index, 0);
        assert_eq!(c.chain(1).unwrap(), vec![0, 1]);
        assert_eq!(c.results_of(&c.records[1]), vec![vec![0, 1]]);
        let again = CacheConfig::parse(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(again, c);
        let v: serde_json::Value = serde_json::to_value(&c).unwrap();
        assert!(v["layers"][1].get("parent").is_none(), "0 is left out as Go does");
        assert_eq!(v["records"][1]["inputs"][0][0]["link"], 0);
    }

    #[test]
    fn refuses_loops_and_dangling_indexes() {
        let looped = br#"{"layers":[{"blob":"sha256:a","parent":1},{"blob":"sha256:b","parent":0}]}"#;
        assert!(matches!(CacheConfig::parse(looped), Err(FormatError::LayerLoop(_))));
        let dangling = br#"{"layers":[{"blob":"sha256:a","parent":-1}],"records":[{"layers":[{"layer":3}]}]}"#;
        assert_eq!(CacheConfig::parse(dangling), Err(FormatError::BadLayer(3)));
        let rec_loop = br#"{"records":[{"digest":"sha256:a","inputs":[[{"link":1}]]},{"digest":"sha256:b","inputs":[[{"link":0}]]}]}"#;
        assert!(matches!(CacheConfig::parse(rec_loop), Err(FormatError::RecordLoop(_))));
        let bad_link = br#"{"records":[{"digest":"sha256:a","inputs":[[{"link":7}]]}]}"#;
        assert!(matches!(CacheConfig::parse(bad_link), Err(FormatError::BadLink { .. })));
        let empty = br#"{"records":[{"digest":"sha256:a","inputs":[[]]}]}"#;
        assert_eq!(CacheConfig::parse(empty), Err(FormatError::EmptyInput(0)));
        assert!(CacheConfig::parse(b"{").is_err());
    }

    #[test]
    fn a_result_link_gives_the_linked_records_result() {
        let recs = br#"[{"digest":"sha256:bk","layers":[{"layer":1}]},{"digest":"sha256:s","inputs":[[{"selector":"strata.result","link":0}]]}]"#;
        let c = CacheConfig::from_inline(recs, &["sha256:l0".into(), "sha256:l1".into()]).unwrap();
        assert_eq!(c.results_of(&c.records[1]), vec![vec![0, 1]]);
        assert_eq!(c.results_of(&c.records[0]), vec![vec![0, 1]]);
    }

    #[test]
    fn inline_records_index_the_image_layers() {
        let recs = br#"[{"digest":"sha256:r0"},{"layers":[{"layer":1}],"digest":"sha256:r1","inputs":[[{"link":0}]]}]"#;
        let c = CacheConfig::from_inline(recs, &["sha256:l0".into(), "sha256:l1".into()]).unwrap();
        assert_eq!(c.chain(1).unwrap(), vec![0, 1]);
        assert_eq!(c.layers[0].parent_index, -1);
    }
}
