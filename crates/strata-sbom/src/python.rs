//! Python: `*.dist-info/METADATA`, `*.egg-info/PKG-INFO` and `*.egg-info`
//! files (core metadata: RFC 822 headers, then the description).

use crate::model::{Package, PackageType};

pub(crate) fn parse_metadata(data: &[u8], path: &str, notes: &mut Vec<String>) -> Option<Package> {
    let text = String::from_utf8_lossy(data);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break; // the body (long description) follows
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) if !k.is_empty() && !k.contains(char::is_whitespace) => {
                headers.push((k.to_owned(), v.trim().to_owned()))
            }
            _ => {
                notes.push("not Python package metadata (a line that is not a header); skipped".into());
                return None;
            }
        }
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(name), Some(version)) = (get("Name"), get("Version")) else {
        notes.push("Python package metadata without a Name or Version; skipped".into());
        return None;
    };
    let ok = |s: &str| s.len() <= 200 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+!".contains(&b));
    if !ok(name) || !ok(version) {
        notes.push("Python package metadata with a malformed Name or Version; skipped".into());
        return None;
    }
    let mut p = Package::new(PackageType::Python, name, version, path);
    p.licenses = licenses(&headers);
    Some(p)
}

/// `License-Expression` (PEP 639); else a short `License` field; else the
/// `License ::` classifiers' last parts.
fn licenses(headers: &[(String, String)]) -> Vec<String> {
    fn all<'a>(headers: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
        headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
    if let Some(e) = all(headers, "License-Expression").find(|v| !v.is_empty()) {
        return vec![e.to_owned()];
    }
    if let Some(l) = all(headers, "License")
        .find(|v| !v.is_empty() && !v.contains('\n') && v.len() <= 100 && !v.eq_ignore_ascii_case("UNKNOWN"))
    {
        return vec![l.to_owned()];
    }
    let mut out: Vec<String> = Vec::new();
    for c in all(headers, "Classifier") {
        if let Some(rest) = c.strip_prefix("License ::") {
            let last = rest.rsplit("::").next().unwrap_or("").trim();
            if !last.is_empty() && last != "OSI Approved" && !out.iter().any(|x| x == last) {
                out.push(last.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_licenses() {
        let m = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.19.0\nLicense: Apache 2.0\n\
Classifier: License :: OSI Approved :: Apache Software License\n\nbody: not a header\n";
        let mut notes = Vec::new();
        let p = parse_metadata(m, "x/requests-2.19.0.dist-info/METADATA", &mut notes).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("requests", "2.19.0"));
        assert_eq!(p.licenses, vec!["Apache 2.0"]);
        let c = b"Name: six\nVersion: 1.16.0\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n";
        assert_eq!(
            parse_metadata(c, "p", &mut notes).unwrap().licenses,
            vec!["MIT License"]
        );
        let e = b"Name: x\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\nLicense: MIT\n";
        assert_eq!(
            parse_metadata(e, "p", &mut notes).unwrap().licenses,
            vec!["MIT OR Apache-2.0"]
        );
        assert!(notes.is_empty());
        assert!(parse_metadata(b"\x00\x01\x02garbage\xff\n\n", "p", &mut notes).is_none());
        assert!(parse_metadata(b"Name: only\n", "p", &mut notes).is_none());
        assert_eq!(notes.len(), 2);
    }
}
