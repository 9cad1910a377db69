//! CycloneDX 1.5 JSON (<https://cyclonedx.org/docs/1.5/json/>).

use serde_json::{Value, json};

use crate::license::to_spdx;
use crate::model::{Package, Sbom};
use crate::output::package_id;

impl Sbom {
    /// A CycloneDX 1.5 JSON BOM: the image as `metadata.component`, the
    /// distro as an `operating-system` component, every package as a
    /// `library` with `strata:` properties for its layer, history step,
    /// type, locations and source package.
    pub fn to_cyclonedx_json(&self) -> String {
        let root_ref = format!("image-{}", self.safe_name());
        let mut components: Vec<Value> = Vec::new();
        let mut refs: Vec<String> = Vec::new();
        if let Some(d) = &self.distro {
            let r = format!("os-{}", crate::output::sanitize(&d.qualifier()));
            let mut c = json!({ "bom-ref": r, "type": "operating-system", "name": d.id });
            if let Some(o) = c.as_object_mut() {
                if let Some(v) = &d.version_id {
                    o.insert("version".into(), v.clone().into());
                }
                if let Some(p) = &d.pretty_name {
                    o.insert("description".into(), p.clone().into());
                }
            }
            components.push(c);
            refs.push(r);
        }
        for p in &self.packages {
            let r = package_id(p);
            components.push(component(p, &r));
            refs.push(r);
        }
        let mut root = json!({
            "bom-ref": root_ref,
            "type": "container",
            "name": if self.image.name.is_empty() { "image" } else { &self.image.name },
        });
        if let Some(o) = root.as_object_mut() {
            if let Some(id) = &self.image.id {
                o.insert("version".into(), id.clone().into());
            }
            if let Some(purl) = self.image_purl() {
                o.insert("purl".into(), purl.into());
            }
        }
        let doc = json!({
            "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "serialNumber": format!("urn:uuid:{}", self.document_uuid()),
            "version": 1,
            "metadata": {
                "timestamp": self.created_rfc3339(),
                "tools": { "components": [{ "type": "application", "name": "strata", "version": env!("CARGO_PKG_VERSION") }] },
                "component": root,
            },
            "components": components,
            "dependencies": [{ "ref": root_ref, "dependsOn": refs }],
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
    }
}

fn component(p: &Package, bom_ref: &str) -> Value {
    let mut props = vec![
        ("strata:package:type", p.kind.as_str().to_owned()),
        ("strata:layer:index", p.layer.to_string()),
    ];
    if let Some(d) = &p.layer_digest {
        props.push(("strata:layer:digest", d.clone()));
    }
    if let Some(s) = &p.created_by {
        props.push(("strata:layer:createdBy", s.clone()));
    }
    if let Some(s) = &p.source {
        props.push(("strata:source:name", s.name.clone()));
        props.push(("strata:source:version", s.version.clone()));
    }
    if let Some(a) = &p.arch {
        props.push(("strata:package:arch", a.clone()));
    }
    let locations: Vec<(String, String)> = p
        .locations
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("strata:location:{i}:path"), l.clone()))
        .collect();
    let mut properties: Vec<Value> = props
        .into_iter()
        .map(|(n, v)| json!({ "name": n, "value": v }))
        .collect();
    properties.extend(locations.into_iter().map(|(n, v)| json!({ "name": n, "value": v })));
    for (k, v) in &p.metadata {
        properties.push(json!({ "name": format!("strata:metadata:{k}"), "value": v }));
    }
    let mut c = json!({
        "bom-ref": bom_ref,
        "type": "library",
        "name": p.name,
        "version": p.version,
        "purl": p.purl,
        "properties": properties,
    });
    if let Some(o) = c.as_object_mut() {
        if let Some(g) = p.metadata.get("groupId") {
            o.insert("group".into(), g.clone().into());
        }
        if !p.licenses.is_empty() {
            o.insert("licenses".into(), licenses(&p.licenses));
        }
    }
    c
}

/// One expression when the package states a single compound one; else a
/// license per statement, by SPDX id when it is one, by name otherwise.
fn licenses(raw: &[String]) -> Value {
    let spdx: Vec<_> = raw.iter().map(|l| to_spdx(l)).collect();
    if let [one] = spdx.as_slice()
        && one.id.is_none()
        && one.extracted.is_none()
    {
        return json!([{ "expression": one.expression }]);
    }
    Value::Array(
        raw.iter()
            .zip(&spdx)
            .map(|(r, s)| match &s.id {
                Some(id) => json!({ "license": { "id": id } }),
                None => json!({ "license": { "name": r } }),
            })
            .collect(),
    )
}
