//! SPDX 2.3 JSON (<https://spdx.github.io/spdx-spec/v2.3/>).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::license::to_spdx;
use crate::model::{PackageType, Sbom};
use crate::output::{package_id, sanitize};

impl Sbom {
    /// An SPDX 2.3 JSON document: the image as the described package, which
    /// CONTAINS every package found. Layer and history step go in each
    /// package's `sourceInfo` and an annotation-free `comment`.
    pub fn to_spdx_json(&self) -> String {
        let uuid = self.document_uuid();
        let name = self.safe_name();
        let root_id = format!("SPDXRef-DocumentRoot-Image-{name}");
        let mut extracted: BTreeMap<String, String> = BTreeMap::new();
        let mut packages = vec![self.root_package(&root_id)];
        let mut relationships = vec![json!({
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": root_id,
        })];
        for p in &self.packages {
            let id = format!("SPDXRef-{}", package_id(p));
            let declared = if p.licenses.is_empty() {
                "NOASSERTION".to_owned()
            } else {
                let parts: Vec<String> = p
                    .licenses
                    .iter()
                    .map(|l| {
                        let s = to_spdx(l);
                        if let Some(text) = s.extracted {
                            extracted.entry(s.expression.clone()).or_insert(text);
                        }
                        s.expression
                    })
                    .collect();
                if parts.len() == 1 {
                    parts.into_iter().next().unwrap_or_default()
                } else {
                    let wrapped: Vec<String> = parts
                        .iter()
                        .map(|e| if e.contains(' ') { format!("({e})") } else { e.clone() })
                        .collect();
                    wrapped.join(" AND ")
                }
            };
            let layer = match &p.layer_digest {
                Some(d) => format!("layer {} ({d})", p.layer),
                None => format!("layer {}", p.layer),
            };
            let step = p
                .created_by
                .as_deref()
                .map(|s| format!(", history step: {s}"))
                .unwrap_or_default();
            let mut pkg = json!({
                "name": p.name,
                "SPDXID": id,
                "versionInfo": p.version,
                "supplier": "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": declared,
                "copyrightText": "NOASSERTION",
                "sourceInfo": format!("{} package found at {} in {layer}{step}", p.kind, p.locations.join(", ")),
                "externalRefs": [{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": p.purl,
                }],
                "primaryPackagePurpose": if p.kind.is_os() { "OPERATING-SYSTEM" } else { "LIBRARY" },
            });
            if let Some(s) = &p.source
                && p.kind == PackageType::Deb
                && let Some(o) = pkg.as_object_mut()
            {
                o.insert(
                    "comment".into(),
                    format!("source package: {} {}", s.name, s.version).into(),
                );
            }
            packages.push(pkg);
            relationships.push(json!({
                "spdxElementId": root_id,
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        }
        let mut doc = json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": if self.image.name.is_empty() { "image" } else { &self.image.name },
            "documentNamespace": format!("https://spdx.org/spdxdocs/strata-{name}-{uuid}"),
            "creationInfo": {
                "created": self.created_rfc3339(),
                "creators": [format!("Tool: strata-{}", env!("CARGO_PKG_VERSION"))],
            },
            "packages": packages,
            "relationships": relationships,
        });
        if !extracted.is_empty()
            && let Some(o) = doc.as_object_mut()
        {
            let infos: Vec<Value> = extracted
                .into_iter()
                .map(|(id, text)| json!({ "licenseId": id, "name": text, "extractedText": text }))
                .collect();
            o.insert("hasExtractedLicensingInfos".into(), infos.into());
        }
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }

    fn root_package(&self, id: &str) -> Value {
        let mut root = json!({
            "name": if self.image.name.is_empty() { "image" } else { &self.image.name },
            "SPDXID": id,
            "versionInfo": self.image.id.clone().unwrap_or_else(|| "NOASSERTION".into()),
            "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
        });
        if let Some(purl) = self.image_purl()
            && let Some(o) = root.as_object_mut()
        {
            o.insert(
                "externalRefs".into(),
                json!([{ "referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl }]),
            );
        }
        root
    }

    /// `pkg:oci/NAME@sha256:…` for the image, when its digest is known.
    pub(crate) fn image_purl(&self) -> Option<String> {
        let digest = self.image.manifest_digest.as_ref().or(self.image.id.as_ref())?;
        let base = self.image.name.split(['@', ':']).next().unwrap_or("");
        let last = base.rsplit('/').next().unwrap_or(base).to_ascii_lowercase();
        let last = if last.is_empty() {
            "image".to_owned()
        } else {
            sanitize(&last)
        };
        Some(format!("pkg:oci/{last}@{}", crate::purl::enc(digest)))
    }
}
