//! Build attestations as BuildKit attaches them (`--sbom`, `--provenance`):
//! per platform image, an attestation manifest (config
//! `application/vnd.oci.image.config.v1+json` naming no platform, one layer
//! per in-toto statement, `application/vnd.in-toto+json` with annotation
//! `in-toto.io/predicate-type`), named in the result's index with platform
//! `unknown/unknown` and annotations `vnd.docker.reference.type:
//! attestation-manifest`, `vnd.docker.reference.digest: <image manifest>`.
//! The SBOM's predicate comes from the caller ([`SbomGenerator`]: strata-sbom
//! is not a dependency of the builder); the provenance (SLSA v0.2) is made
//! here from what the build used.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};
use strata_oci::{Descriptor, Digest, Manifest, Platform, Reference, media};
use strata_store::Store;

use crate::error::{Error, Result};

/// `in-toto.io/predicate-type` of an SPDX SBOM statement.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// `in-toto.io/predicate-type` of a SLSA v0.2 provenance statement.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
/// The media type of an in-toto statement layer.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// The index annotation telling what an entry is.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The index annotation naming the manifest an attestation describes.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The layer annotation naming a statement's predicate type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// What to attach to a build's result.
#[derive(Clone, Default, Debug)]
pub struct Attestations {
    /// `--sbom=true`: an SPDX SBOM of each platform's image.
    pub sbom: Option<SbomGenerator>,
    /// `--provenance=mode=min|max`.
    pub provenance: Option<ProvenanceMode>,
    /// The manifest each image is named by in the index (and the statements'
    /// subject): the caller's form of the image as a registry takes it
    /// (compressed layers), so that a push serves the index unchanged; the
    /// stored manifest when `None`.
    pub distributable: Option<Distributable>,
}

impl Attestations {
    pub fn any(&self) -> bool {
        self.sbom.is_some() || self.provenance.is_some()
    }
}

/// How much the provenance tells (BuildKit's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// Builder, build type, config source, frontend and non-build-arg
    /// parameters, materials (the bases with their digests), times.
    Min,
    /// Also the build args, secrets' IDs, the Dockerfile and each step's layers.
    Max,
}

/// Makes the SPDX document (the statement's predicate) of a stored image,
/// given its ID.
#[derive(Clone)]
pub struct SbomGenerator(pub Arc<SbomFn>);

/// What an [`SbomGenerator`] calls.
pub type SbomFn = dyn Fn(&Digest) -> std::result::Result<Value, String> + Send + Sync;

impl std::fmt::Debug for SbomGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SbomGenerator")
    }
}

/// Gives, for a stored image (ID, manifest), the manifest a registry takes,
/// recorded as one of the image's.
#[derive(Clone)]
pub struct Distributable(pub Arc<DistributableFn>);

/// What a [`Distributable`] calls.
pub type DistributableFn = dyn Fn(&Digest, &Digest) -> std::result::Result<Descriptor, String> + Send + Sync;

impl std::fmt::Debug for Distributable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Distributable")
    }
}

/// A base image the build used (a provenance material).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Material {
    /// As named in FROM (expanded).
    pub name: String,
    pub platform: Platform,
    /// The digest the name resolved to (the index's when it is one).
    pub digest: Digest,
}

/// What the provenance says about the build as a whole.
pub(crate) struct BuildFacts<'a> {
    pub dockerfile_name: &'a str,
    pub dockerfile: &'a [u8],
    pub build_args: &'a BTreeMap<String, String>,
    pub labels: &'a [String],
    pub target: Option<&'a str>,
    pub secrets: Vec<String>,
    pub invocation_id: String,
    pub started: String,
    pub finished: String,
    pub build_platform: &'a Platform,
}

/// `pkg:docker/NAME@TAG?platform=…` as BuildKit names images in statements.
pub(crate) fn purl(name: &str, platform: &Platform) -> String {
    let (repo, version) = match Reference::parse(name) {
        Ok(r) => {
            let version = match (r.tag(), r.digest()) {
                (_, Some(d)) => d.to_string(),
                (Some(t), None) => t.to_string(),
                (None, None) => "latest".to_string(),
            };
            (r.familiar_repository(), version)
        }
        Err(_) => (name.to_string(), "latest".to_string()),
    };
    let repo = repo.replace(':', "%3A");
    let version = version.replace(':', "%3A");
    format!(
        "pkg:docker/{repo}@{version}?platform={}",
        crate::platform_string(platform).replace('/', "%2F")
    )
}

fn digest_map(d: &Digest) -> Value {
    json!({ d.algorithm().name(): d.hex() })
}

fn statement(predicate_type: &str, subject: &[Value], predicate: Value) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": subject,
        "predicate": predicate,
    })
}

/// The SLSA v0.2 provenance predicate of one platform's image.
fn provenance(
    mode: ProvenanceMode,
    facts: &BuildFacts,
    materials: &[Material],
    manifest: Option<&Manifest>,
    config: &strata_oci::ImageConfig,
) -> Value {
    let max = mode == ProvenanceMode::Max;
    let mut args = serde_json::Map::new();
    if max {
        for (k, v) in facts.build_args {
            args.insert(format!("build-arg:{k}"), json!(v));
        }
    }
    for l in facts.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        args.insert(format!("label:{k}"), json!(v));
    }
    if let Some(t) = facts.target {
        args.insert("target".into(), json!(t));
    }
    let mut parameters = json!({
        "frontend": "dockerfile.v0",
        "args": args,
        "locals": [{"name": "context"}, {"name": "dockerfile"}],
    });
    if max {
        parameters["secrets"] = facts
            .secrets
            .iter()
            .map(|id| json!({"id": id, "optional": false}))
            .collect();
        parameters["ssh"] = json!([]);
    }
    let mats: Vec<Value> = materials
        .iter()
        .map(|m| json!({"uri": purl(&m.name, &m.platform), "digest": digest_map(&m.digest)}))
        .collect();
    let mut bk = serde_json::Map::new();
    // mode=max: the Dockerfile's steps (BuildKit gives its LLB here; strata has none).
    let mut build_config = None;
    if max {
        bk.insert(
            "source".into(),
            json!({"infos": [{
                "filename": facts.dockerfile_name,
                "language": "Dockerfile",
                "data": base64::engine::general_purpose::STANDARD.encode(facts.dockerfile),
            }]}),
        );
        // Each step that made a layer, with its layer (BuildKit keys them by LLB step).
        let mut layers = serde_json::Map::new();
        let mut steps = Vec::new();
        let mut blob = manifest.map(|m| m.layers.iter()).into_iter().flatten();
        for (i, h) in config.history.iter().enumerate() {
            let id = format!("step{i}");
            steps.push(
                json!({"id": id, "created_by": h.created_by.clone().unwrap_or_default(), "empty_layer": h.empty_layer}),
            );
            if h.empty_layer {
                continue;
            }
            if let Some(l) = blob.next() {
                layers.insert(
                    format!("{id}:0"),
                    json!([[{"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.size}]]),
                );
            }
        }
        bk.insert("layers".into(), Value::Object(layers));
        build_config = Some(json!({ "steps": steps }));
    }
    let mut predicate = json!({
        "builder": {"id": ""},
        "buildType": "https://mobyproject.org/buildkit@v1",
        "materials": mats,
        "invocation": {
            "configSource": {"entryPoint": facts.dockerfile_name},
            "parameters": parameters,
            "environment": {"platform": crate::platform_string(facts.build_platform)},
        },
        "metadata": {
            "buildInvocationID": facts.invocation_id,
            "buildStartedOn": facts.started,
            "buildFinishedOn": facts.finished,
            "completeness": {"parameters": max, "environment": true, "materials": false},
            "reproducible": false,
            "https://mobyproject.org/buildkit@v1#metadata": bk,
        },
    });
    if let Some(c) = build_config {
        predicate["buildConfig"] = c;
    }
    predicate
}

/// One platform's image to attest.
pub(crate) struct Attested<'a> {
    pub platform: &'a Platform,
    pub image_id: &'a Digest,
    pub manifest: &'a Descriptor,
    pub materials: &'a [Material],
}

/// Writes the attestation manifest of one platform's image (statements,
/// config, manifest) into the store's blobs and returns its index entry.
pub(crate) fn write(
    store: &Store,
    want: &Attestations,
    facts: &BuildFacts,
    names: &[Reference],
    image: &Attested,
) -> Result<Descriptor> {
    let subject: Vec<Value> = if names.is_empty() {
        vec![json!({"name": "_", "digest": digest_map(&image.manifest.digest)})]
    } else {
        names
            .iter()
            .map(
                |n| json!({"name": purl(&n.to_string(), image.platform), "digest": digest_map(&image.manifest.digest)}),
            )
            .collect()
    };
    let internal = |what: &str, e: String| Error::Internal(format!("{what}: {e}"));
    let mut statements = Vec::new();
    if let Some(sbom) = &want.sbom {
        let doc = (sbom.0)(image.image_id)
            .map_err(|e| Error::Attestation(format!("the SBOM of image {}: {e}", image.image_id)))?;
        statements.push((SPDX_PREDICATE, statement(SPDX_PREDICATE, &subject, doc)));
    }
    if let Some(mode) = want.provenance {
        let manifest_bytes = store.read_blob(&image.manifest.digest, media::MAX_DOCUMENT_SIZE)?;
        let manifest: Option<Manifest> = serde_json::from_slice(&manifest_bytes).ok();
        let config = strata_oci::ImageConfig::parse(&store.read_blob(image.image_id, media::MAX_DOCUMENT_SIZE)?)?;
        let p = provenance(mode, facts, image.materials, manifest.as_ref(), &config);
        statements.push((SLSA_PROVENANCE_V02, statement(SLSA_PROVENANCE_V02, &subject, p)));
    }
    let mut layers = Vec::new();
    for (ptype, st) in statements {
        let bytes = serde_json::to_vec(&st).map_err(|e| internal("writing a statement", e.to_string()))?;
        let d = Digest::sha256_of(&bytes);
        store.put_blob_verified(&d, Some(bytes.len() as u64), &bytes[..])?;
        let mut desc = Descriptor::new(IN_TOTO, d, bytes.len() as u64);
        desc.annotations = Some(BTreeMap::from([(PREDICATE_TYPE.to_string(), ptype.to_string())]));
        layers.push(desc);
    }
    // BuildKit's minimal config: no platform, the statements as "layers".
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).map_err(|e| internal("writing a config", e.to_string()))?;
    let config_digest = Digest::sha256_of(&config);
    store.put_blob_verified(&config_digest, Some(config.len() as u64), &config[..])?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        artifact_type: None,
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config.len() as u64),
        layers,
        subject: None,
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| internal("writing a manifest", e.to_string()))?;
    let digest = Digest::sha256_of(&bytes);
    store.put_blob_verified(&digest, Some(bytes.len() as u64), &bytes[..])?;
    let mut desc = Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64);
    desc.annotations = Some(BTreeMap::from([
        (REFERENCE_DIGEST.to_string(), image.manifest.digest.to_string()),
        (REFERENCE_TYPE.to_string(), "attestation-manifest".to_string()),
    ]));
    desc.platform = Some(unknown_platform());
    Ok(desc)
}

/// `unknown/unknown`: the platform of an attestation manifest in an index.
pub fn unknown_platform() -> Platform {
    Platform {
        os: "unknown".into(),
        architecture: "unknown".into(),
        variant: None,
        os_version: None,
        os_features: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_name_images_as_buildkit_does() {
        let p = Platform::parse("linux/amd64").unwrap();
        assert_eq!(purl("alpine:3.17", &p), "pkg:docker/alpine@3.17?platform=linux%2Famd64");
        assert_eq!(
            purl("localhost:5000/a/b", &p),
            "pkg:docker/localhost%3A5000/a/b@latest?platform=linux%2Famd64"
        );
    }
}
