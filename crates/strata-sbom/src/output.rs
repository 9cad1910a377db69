//! strata's JSON, the table, and what the documents share: times, the
//! document UUID and package identifiers.

use sha2::{Digest as _, Sha256};

use crate::model::{Package, Sbom};

impl Sbom {
    /// strata's own JSON: every field of the SBOM.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("created".into(), self.created_rfc3339().into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
    }

    /// `docker sbom`'s table: NAME, VERSION, TYPE.
    pub fn to_table(&self) -> String {
        let rows: Vec<[&str; 3]> = self
            .packages
            .iter()
            .map(|p| [p.name.as_str(), p.version.as_str(), p.kind.as_str()])
            .collect();
        let head = ["NAME", "VERSION", "TYPE"];
        let mut width = head.map(str::len);
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&head).chain(&rows) {
            let line = format!("{:<w0$}   {:<w1$}   {}", r[0], r[1], r[2], w0 = width[0], w1 = width[1]);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if self.packages.is_empty() {
            out.push_str("(no packages found)\n");
        }
        out
    }

    pub(crate) fn created_rfc3339(&self) -> String {
        jiff::Timestamp::from_second(self.created)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
    }

    /// A UUID for the document: from its content when reproducible, else
    /// also from the moment and the process.
    pub(crate) fn document_uuid(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.image).unwrap_or_default());
        h.update(self.created.to_le_bytes());
        for p in &self.packages {
            h.update(p.purl.as_bytes());
            h.update(p.layer.to_le_bytes());
            h.update([0]);
        }
        if !self.reproducible {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            h.update(now.as_nanos().to_le_bytes());
            h.update(std::process::id().to_le_bytes());
        }
        let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
        b[6] = (b[6] & 0x0f) | 0x50; // name-based
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
    }

    /// A short name for the image, safe in identifiers and URIs.
    pub(crate) fn safe_name(&self) -> String {
        let n = if self.image.name.is_empty() {
            "image"
        } else {
            &self.image.name
        };
        sanitize(n)
    }
}

/// Letters, digits, `.` and `-`; anything else becomes `-`.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A stable identifier for a package within a document (`Package-deb-bash-…`).
pub(crate) fn package_id(p: &Package) -> String {
    let mut h = Sha256::new();
    h.update(p.purl.as_bytes());
    h.update(p.layer.to_le_bytes());
    for l in &p.locations {
        h.update(l.as_bytes());
        h.update([0]);
    }
    let hash: String = h.finalize()[..8].iter().map(|v| format!("{v:02x}")).collect();
    format!("Package-{}-{}-{hash}", p.kind.as_str(), sanitize(&p.name))
}
