//! Build attestations (BuildKit's in-toto attestation manifests): the
//! `build --sbom/--provenance/--attest` flags, the SBOM generator the
//! builder calls, the SBOM attached to a stored image (for `scan`), and the
//! `.SBOM` / `.Provenance` of `imagetools inspect --format`.
//!
//! strata attaches attestations only when asked (`--sbom=true`,
//! `--provenance=…`, `--attest …`): buildx's default `--provenance=mode=min`
//! on `--push` is not followed, as `docker build` (20.10, or `--load`) does
//! not attach them either and an attested result is always an index.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::Value;
use strata_builder::{Attestations, Distributable, ProvenanceMode, SbomGenerator};
use strata_oci::{Descriptor, Digest, Document, Manifest, media};

/// `in-toto.io/predicate-type` of an SPDX SBOM statement.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// `in-toto.io/predicate-type` of a SLSA v0.2 provenance statement.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";

/// `--sbom`, `--provenance` and `--attest` as buildx takes them.
pub fn build_options(
    root: &Path,
    sbom: Option<&str>,
    provenance: Option<&str>,
    attest: &[String],
) -> Result<Attestations> {
    let mut want_sbom = false;
    let mut mode = None;
    if let Some(s) = sbom {
        want_sbom = parse_bool("--sbom", s)?;
    }
    if let Some(p) = provenance {
        mode = parse_provenance(p)?;
    }
    for a in attest {
        let mut kind = None;
        let mut disabled = false;
        let mut p_mode = None;
        for kv in a.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k.trim() {
                "type" => kind = Some(v.trim().to_string()),
                "disabled" => disabled = parse_bool("--attest disabled", v)?,
                "mode" => p_mode = Some(v.trim().to_string()),
                // BuildKit's other parameters (builder-id, generator, …) are not used.
                _ => {}
            }
        }
        match kind.as_deref() {
            Some("sbom") => want_sbom = !disabled,
            Some("provenance") => {
                mode = match (disabled, p_mode.as_deref()) {
                    (true, _) => None,
                    (false, None) => Some(ProvenanceMode::Min),
                    (false, Some(m)) => parse_provenance(&format!("mode={m}"))?,
                }
            }
            _ => bail!("invalid --attest {a:?}: expected type=sbom or type=provenance[,mode=min|max]"),
        }
    }
    let sbom = want_sbom.then(|| {
        let root = root.to_path_buf();
        SbomGenerator(Arc::new(move |id: &Digest| {
            let s = super::sbom::image_sbom(&root, &id.to_string(), None).map_err(|e| format!("{e:#}"))?;
            serde_json::from_str(&s.sbom.to_spdx_json()).map_err(|e| e.to_string())
        }))
    });
    // Images named by their registry form (gzip layers), as BuildKit exports them.
    let root = root.to_path_buf();
    let distributable = Distributable(Arc::new(move |id: &Digest, manifest: &Digest| {
        let mut store = super::open_store(&root).map_err(|e| format!("{e:#}"))?;
        strata_transfer::distributable_manifest(&mut store, id, manifest).map_err(|e| e.to_string())
    }));
    Ok(Attestations {
        sbom,
        provenance: mode,
        distributable: Some(distributable),
    })
}

fn parse_bool(flag: &str, s: &str) -> Result<bool> {
    match s.trim() {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => bail!("invalid {flag} value {s:?}: expected true or false"),
    }
}

fn parse_provenance(s: &str) -> Result<Option<ProvenanceMode>> {
    let mut mode = Some(ProvenanceMode::Min);
    for part in s.split(',') {
        match part.trim() {
            "" | "true" | "1" | "mode=min" | "min" => {}
            "false" | "0" | "disabled=true" => mode = None,
            "mode=max" | "max" => mode = mode.map(|_| ProvenanceMode::Max),
            _ => bail!("invalid --provenance value {s:?}: expected true, false, mode=min or mode=max"),
        }
    }
    Ok(mode)
}

/// Whether an index entry is an attestation manifest.
pub fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// The manifest an attestation entry describes.
pub fn described(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.digest"))
        .map(String::as_str)
}

/// The statement layers of an attestation manifest with this predicate type.
pub fn statements_of<'a>(m: &'a Manifest, predicate_type: &'a str) -> impl Iterator<Item = &'a Descriptor> + 'a {
    m.layers.iter().filter(move |l| {
        l.annotations
            .as_ref()
            .and_then(|a| a.get("in-toto.io/predicate-type"))
            .is_some_and(|t| t == predicate_type)
    })
}

/// The SBOM attached to a stored image (by a build with `--sbom`): the
/// SPDX predicate of its attestation, read back as strata-sbom's model.
/// `None` when the image has none (not in an index, or no SBOM statement).
/// With `platform` (`scan --platform`), none is looked for: the catalogue
/// of that platform's image is made instead.
pub(crate) fn attached_image_sbom(root: &Path, image: &str, platform: Option<&str>) -> Option<super::sbom::ImageSbom> {
    if platform.is_some() {
        return None;
    }
    let doc = attached_predicate(root, image, SPDX_PREDICATE).ok().flatten()?;
    let bytes = serde_json::to_vec(&doc).ok()?;
    let mut sbom = super::scan::parse_sbom(&bytes).ok()?;
    let store = super::open_store(root).ok()?;
    let r = strata_image::resolve(&store, image).ok()?;
    let config = super::sbom::load_config(&store, &r.image.id).ok()?;
    // What the catalogue would say of the image itself and its layers.
    sbom.image.name = image.to_string();
    sbom.image.id = Some(r.image.id.to_string());
    if sbom.layers.is_empty() {
        let mut steps = config.history.iter().filter(|h| !h.empty_layer);
        sbom.layers = r
            .image
            .diff_ids
            .iter()
            .enumerate()
            .map(|(index, d)| strata_sbom::LayerInfo {
                index,
                digest: Some(d.to_string()),
                created_by: steps.next().and_then(|h| h.created_by.clone()),
                entries: 0,
                size: 0,
            })
            .collect();
    }
    let label = config
        .config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(super::sbom::BASE_NAME_LABEL))
        .cloned();
    let base = super::sbom::find_base(&store, &r.image.id, &r.image.diff_ids, label.as_deref()).ok()?;
    Some(super::sbom::ImageSbom {
        sbom,
        name: image.to_string(),
        id: r.image.id.to_string(),
        base,
    })
}

/// The predicate of type `predicate_type` attached to stored image `image`.
pub(crate) fn attached_predicate(root: &Path, image: &str, predicate_type: &str) -> Result<Option<Value>> {
    let store = super::open_store(root)?;
    let r = strata_image::resolve(&store, image)?;
    let Some(index) = &r.index else { return Ok(None) };
    let bytes = store.read_blob(index, media::MAX_DOCUMENT_SIZE)?;
    let Ok(Document::Index(ix)) = Document::parse(&bytes, None) else {
        return Ok(None);
    };
    // The index names the image by one of its manifests (its registry form).
    let of_image =
        |d: &Descriptor| described(d).is_some_and(|m| r.image.manifests.iter().any(|(x, ..)| x.to_string() == m));
    for d in ix.manifests.iter().filter(|d| is_attestation(d)) {
        if !of_image(d) || !store.has_blob(&d.digest) {
            continue;
        }
        let m: Manifest = serde_json::from_slice(&store.read_blob(&d.digest, media::MAX_DOCUMENT_SIZE)?)?;
        for l in statements_of(&m, predicate_type) {
            let st: Value = serde_json::from_slice(&store.read_blob(&l.digest, 64 << 20)?)?;
            if let Some(p) = st.get("predicate") {
                return Ok(Some(p.clone()));
            }
        }
    }
    Ok(None)
}

/// `imagetools inspect --format TEMPLATE` of a registry image: buildx's
/// `{{json .SBOM}}`, `{{json .Provenance}}` (`{"SPDX": …}` / `{"SLSA": …}`
/// for an image of one platform, else a map by platform), `{{json
/// .Manifest}}`, and a field path below them (`{{json .SBOM.SPDX}}`).
pub fn imagetools_format(
    client: &strata_registry::Client,
    r: &strata_oci::Reference,
    m: &strata_registry::ManifestResponse,
    format: &str,
) -> Result<String> {
    let t = format.trim();
    let (json, path) = match t.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")).map(str::trim) {
        Some(inner) => match inner.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, inner),
        },
        None => bail!(
            "unsupported --format {format:?}: use '{{{{json .SBOM}}}}', '{{{{json .Provenance}}}}' or '{{{{json .Manifest}}}}'"
        ),
    };
    let mut fields = path.trim_start_matches('.').split('.').filter(|f| !f.is_empty());
    let top = fields.next().unwrap_or("");
    let raw: Value = serde_json::from_slice(&m.bytes)?;
    let mut value = match top {
        "Manifest" | "" => raw,
        "SBOM" => by_platform(client, r, m, SPDX_PREDICATE, "SPDX")?,
        "Provenance" => by_platform(client, r, m, SLSA_PROVENANCE_V02, "SLSA")?,
        _ => bail!("unsupported --format field .{top}: use .SBOM, .Provenance or .Manifest"),
    };
    for f in fields {
        value = value.get(f).cloned().unwrap_or(Value::Null);
    }
    Ok(match (json, &value) {
        (false, Value::String(s)) => format!("{s}\n"),
        _ => format!("{}\n", serde_json::to_string_pretty(&value)?),
    })
}

/// The predicates of this type attached to each platform of a registry
/// image: `{KEY: predicate}` for one platform, else by platform.
fn by_platform(
    client: &strata_registry::Client,
    r: &strata_oci::Reference,
    m: &strata_registry::ManifestResponse,
    predicate_type: &str,
    key: &str,
) -> Result<Value> {
    let Document::Index(ix) = &m.document else {
        return Ok(Value::Object(Default::default()));
    };
    let images: Vec<&Descriptor> = ix.manifests.iter().filter(|d| !is_attestation(d)).collect();
    // Sorted by platform, as Go prints buildx's map.
    let mut out = std::collections::BTreeMap::new();
    for img in &images {
        let digest = img.digest.to_string();
        let Some(att) = ix
            .manifests
            .iter()
            .find(|d| is_attestation(d) && described(d) == Some(digest.as_str()))
        else {
            continue;
        };
        let am = strata_registry::block_on(client.get_manifest(r.path(), &att.digest.to_string()))??;
        let Document::Manifest(am) = &am.document else { continue };
        let Some(l) = statements_of(am, predicate_type).next() else {
            continue;
        };
        let mut buf = Vec::new();
        strata_registry::block_on(client.get_blob(r.path(), &l.digest, Some(l.size), &mut buf))??;
        let st: Value = serde_json::from_slice(&buf)?;
        let Some(p) = st.get("predicate").cloned() else {
            continue;
        };
        let entry = serde_json::json!({ key: p });
        if images.len() == 1 {
            return Ok(entry);
        }
        let platform = img.platform.as_ref().map(|p| p.to_string()).unwrap_or_default();
        out.insert(platform, entry);
    }
    Ok(Value::Object(out.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_as_buildx_takes_them() {
        let root = Path::new("/nonexistent");
        let a = build_options(root, Some("true"), Some("mode=max"), &[]).unwrap();
        assert!(a.sbom.is_some());
        assert_eq!(a.provenance, Some(ProvenanceMode::Max));
        let a = build_options(root, Some("false"), Some("false"), &[]).unwrap();
        assert!(!a.any());
        let a = build_options(
            root,
            None,
            None,
            &["type=provenance,mode=max".into(), "type=sbom".into()],
        )
        .unwrap();
        assert!(a.sbom.is_some());
        assert_eq!(a.provenance, Some(ProvenanceMode::Max));
        let a = build_options(root, None, Some("true"), &[]).unwrap();
        assert_eq!(a.provenance, Some(ProvenanceMode::Min));
        assert!(build_options(root, None, Some("mode=huge"), &[]).is_err());
        assert!(build_options(root, None, None, &["type=vex".into()]).is_err());
    }
}
