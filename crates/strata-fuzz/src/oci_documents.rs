//! `oci_documents`: manifests, indexes and image configs parsed from
//! untrusted JSON and, when accepted, serialized and parsed back unchanged.
//!
//! Input: a selector byte (which content type to claim, or to parse an image
//! config), then the JSON.

use strata_oci::{Document, ImageConfig, media};

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some(media::OCI_MANIFEST),
    Some(media::OCI_INDEX),
    Some(media::DOCKER_MANIFEST),
    Some(media::DOCKER_MANIFEST_LIST),
    Some("application/json"),
    Some(""),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
];

pub fn run(data: &[u8]) {
    let Some((&sel, json)) = data.split_first() else { return };
    if let Ok(c) = ImageConfig::parse(json) {
        let bytes = c.to_bytes();
        let back = ImageConfig::parse(&bytes).unwrap_or_else(|e| panic!("config written back is refused: {e}"));
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&c).unwrap(),
            "config changed by a round trip"
        );
        let _ = c.platform();
    }
    let ct = CONTENT_TYPES[sel as usize % CONTENT_TYPES.len()];
    let Ok(doc) = Document::parse(json, ct) else { return };
    let bytes = match &doc {
        Document::Manifest(m) => serde_json::to_vec(m).unwrap(),
        Document::Index(i) => serde_json::to_vec(i).unwrap(),
    };
    let back = Document::parse(&bytes, ct).unwrap_or_else(|e| panic!("document written back is refused: {e}"));
    assert_eq!(back, doc, "document changed by a round trip");
    let _ = doc.media_type();
}
