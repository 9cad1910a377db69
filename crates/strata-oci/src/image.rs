//! Manifests, indexes and image configs, with unknown fields kept so that a
//! document read and written back is unchanged in meaning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::media;
use crate::platform::Platform;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub urls: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub data: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
            data: None,
        }
    }

    /// The same descriptor with the OCI media type for a Docker config or
    /// layer type (the content is the same; an OCI manifest wants OCI types).
    pub fn with_oci_media_type(&self) -> Descriptor {
        let mt = match self.media_type.as_str() {
            crate::media::DOCKER_CONFIG => crate::media::OCI_CONFIG,
            crate::media::DOCKER_LAYER_GZIP => crate::media::OCI_LAYER_GZIP,
            crate::media::DOCKER_LAYER_TAR => crate::media::OCI_LAYER_TAR,
            other => other,
        };
        Descriptor {
            media_type: mt.to_string(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub subject: Option<Descriptor>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A manifest or an index, as fetched by digest or tag.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // parsed once per fetch; boxing buys nothing
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("document is {0} bytes; at most {max} are accepted", max = media::MAX_DOCUMENT_SIZE)]
    TooLarge(u64),
    #[error("document is not valid JSON: {0}")]
    Json(String),
    #[error("document has both \"layers\" and \"manifests\": it is ambiguous")]
    Ambiguous,
    #[error("document has neither \"config\"/\"layers\" nor \"manifests\"")]
    Neither,
    #[error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); push the image again with a current client"
    )]
    Schema1,
    #[error("document's mediaType {declared:?} does not agree with its content type {content_type:?}")]
    MediaTypeMismatch { declared: String, content_type: String },
    #[error("document's schemaVersion is {0}; only 2 is supported")]
    SchemaVersion(u64),
    #[error("unsupported document media type {0:?}")]
    Unsupported(String),
}

impl Document {
    /// Parses a manifest or index, checking its size, its media type against
    /// `content_type` (when one is given) and that it is not ambiguous.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, DocumentError> {
        if bytes.len() as u64 > media::MAX_DOCUMENT_SIZE {
            return Err(DocumentError::TooLarge(bytes.len() as u64));
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| DocumentError::Json(e.to_string()))?;
        let obj = v
            .as_object()
            .ok_or_else(|| DocumentError::Json("top level is not an object".into()))?;
        let declared = obj.get("mediaType").and_then(Value::as_str).map(str::to_string);
        let schema = obj.get("schemaVersion").and_then(Value::as_u64).unwrap_or(0);
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string());
        if schema == 1
            || declared.as_deref().is_some_and(media::is_schema1)
            || ct.as_deref().is_some_and(media::is_schema1)
        {
            return Err(DocumentError::Schema1);
        }
        if schema != 2 {
            return Err(DocumentError::SchemaVersion(schema));
        }
        if let (Some(d), Some(c)) = (&declared, &ct)
            && d != c
            && !c.is_empty()
        {
            return Err(DocumentError::MediaTypeMismatch {
                declared: d.clone(),
                content_type: c.clone(),
            });
        }
        let has_layers = obj.contains_key("layers") || obj.contains_key("config");
        let has_manifests = obj.contains_key("manifests");
        let kind = declared
            .clone()
            .or(ct.clone().filter(|c| !c.is_empty() && c != "application/json"));
        let is_index = match (has_layers, has_manifests) {
            (true, true) => return Err(DocumentError::Ambiguous),
            (false, false) => return Err(DocumentError::Neither),
            (_, m) => m,
        };
        if let Some(k) = &kind {
            let ok = if is_index {
                media::is_index(k)
            } else {
                media::is_manifest(k)
            };
            if !ok {
                return Err(DocumentError::Unsupported(k.clone()));
            }
        }
        if is_index {
            serde_json::from_value(v)
                .map(Document::Index)
                .map_err(|e| DocumentError::Json(e.to_string()))
        } else {
            serde_json::from_value(v)
                .map(Document::Manifest)
                .map_err(|e| DocumentError::Json(e.to_string()))
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Document::Manifest(m) => m.media_type.as_deref().unwrap_or(media::OCI_MANIFEST),
            Document::Index(i) => i.media_type.as_deref().unwrap_or(media::OCI_INDEX),
        }
    }
}

/// Docker's and OCI's image config (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub history: Vec<History>,
    /// Fields strata does not interpret (`container_config`, `docker_version`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".into(),
            diff_ids: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "is_false", default)]
    pub empty_layer: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The execution part of a config, with Docker's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    #[serde(rename = "User", skip_serializing_if = "Option::is_none", default)]
    pub user: Option<String>,
    #[serde(rename = "ExposedPorts", skip_serializing_if = "Option::is_none", default)]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(rename = "Env", skip_serializing_if = "Option::is_none", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", skip_serializing_if = "Option::is_none", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", skip_serializing_if = "Option::is_none", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "Volumes", skip_serializing_if = "Option::is_none", default)]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(rename = "WorkingDir", skip_serializing_if = "Option::is_none", default)]
    pub working_dir: Option<String>,
    #[serde(rename = "Labels", skip_serializing_if = "Option::is_none", default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "StopSignal", skip_serializing_if = "Option::is_none", default)]
    pub stop_signal: Option<String>,
    #[serde(rename = "Healthcheck", skip_serializing_if = "Option::is_none", default)]
    pub healthcheck: Option<Value>,
    #[serde(rename = "OnBuild", skip_serializing_if = "Option::is_none", default)]
    pub on_build: Option<Vec<String>>,
    #[serde(rename = "Shell", skip_serializing_if = "Option::is_none", default)]
    pub shell: Option<Vec<String>>,
    #[serde(rename = "ArgsEscaped", skip_serializing_if = "Option::is_none", default)]
    pub args_escaped: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ContainerConfig {
    /// Sets `KEY=value` in Env, replacing an earlier value of KEY.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }
}

impl ImageConfig {
    /// Parses a config blob, bounded like every document.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, DocumentError> {
        if bytes.len() as u64 > media::MAX_DOCUMENT_SIZE {
            return Err(DocumentError::TooLarge(bytes.len() as u64));
        }
        serde_json::from_slice(bytes).map_err(|e| DocumentError::Json(format!("image config: {e}")))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serializes")
    }

    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_checks() {
        let d = Digest::sha256_of(b"x");
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG
        );
        assert!(matches!(
            Document::parse(m.as_bytes(), Some(media::OCI_MANIFEST)),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            Document::parse(m.as_bytes(), Some(media::DOCKER_MANIFEST)),
            Err(DocumentError::MediaTypeMismatch { .. })
        ));
        let amb = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{d}","size":1}},"layers":[],"manifests":[]}}"#
        );
        assert!(matches!(
            Document::parse(amb.as_bytes(), None),
            Err(DocumentError::Ambiguous)
        ));
        let big = vec![b' '; (media::MAX_DOCUMENT_SIZE + 1) as usize];
        assert!(matches!(Document::parse(&big, None), Err(DocumentError::TooLarge(_))));
        assert!(matches!(
            Document::parse(br#"{"schemaVersion":1}"#, None),
            Err(DocumentError::Schema1)
        ));
        let bad_digest = r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:../../x","size":1}]}"#;
        assert!(Document::parse(bad_digest.as_bytes(), None).is_err());
    }

    #[test]
    fn config_round_trip_keeps_unknown_fields() {
        let src = br#"{"architecture":"amd64","os":"linux","docker_version":"20.10","config":{"Env":["A=1"],"Hostname":"x"},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::parse(src).unwrap();
        let v: Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(v["docker_version"], "20.10");
        assert_eq!(v["config"]["Hostname"], "x");
    }

    /// A number in an unknown field is written back as the same number: a
    /// config read and written again (a commit, a build on it) must not
    /// drift by one bit each time (found by fuzzing, #16 item 4).
    #[test]
    fn config_round_trip_keeps_unknown_numbers_exactly() {
        let src = br#"{"architecture":"amd64","os":"linux","x":999999000004007528396413793278,"config":{"y":2.0000060000000003e+56,"z":7.1434400000000000000000000014347467612885206813e94}}"#;
        let c = ImageConfig::parse(src).unwrap();
        let again = ImageConfig::parse(&c.to_bytes()).unwrap();
        assert_eq!(again, c);
        assert_eq!(again.to_bytes(), c.to_bytes());
    }
}
