//! npm: `node_modules/**/package.json` (each installed package's own
//! manifest) and `package-lock.json` (lockfile versions 1 to 3).

use serde_json::Value;

use crate::model::{Package, PackageType};

fn parse_json(data: &[u8], what: &str, notes: &mut Vec<String>) -> Option<Value> {
    match serde_json::from_slice::<Value>(data) {
        Ok(v @ Value::Object(_)) => Some(v),
        Ok(_) => {
            notes.push(format!("{what} is not a JSON object; skipped"));
            None
        }
        Err(e) => {
            notes.push(format!("{what} is not valid JSON ({e}); skipped"));
            None
        }
    }
}

fn licenses(v: &Value) -> Vec<String> {
    let one = |l: &Value| match l {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Object(o) => o.get("type").and_then(Value::as_str).map(|s| s.trim().to_owned()),
        _ => None,
    };
    let mut out: Vec<String> = Vec::new();
    if let Some(l) = v.get("license").and_then(one) {
        out.push(l);
    }
    if let Some(Value::Array(ls)) = v.get("licenses") {
        out.extend(ls.iter().filter_map(one));
    }
    out.retain(|l| !l.is_empty() && l.len() <= 200);
    out.dedup();
    out
}

fn plausible(name: &str, version: &str) -> bool {
    !name.is_empty()
        && name.len() <= 214
        && !name.contains(char::is_whitespace)
        && !version.is_empty()
        && version.len() <= 256
}

pub(crate) fn parse_package_json(data: &[u8], path: &str, notes: &mut Vec<String>) -> Option<Package> {
    let v = parse_json(data, "package.json", notes)?;
    let name = v.get("name").and_then(Value::as_str)?;
    let version = v.get("version").and_then(Value::as_str)?;
    if !plausible(name, version) {
        notes.push("package.json with a malformed name or version; skipped".into());
        return None;
    }
    let mut p = Package::new(PackageType::Npm, name, version, path);
    p.licenses = licenses(&v);
    Some(p)
}

pub(crate) fn parse_lockfile(data: &[u8], path: &str, notes: &mut Vec<String>) -> Vec<Package> {
    let Some(v) = parse_json(data, "package-lock.json", notes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(Value::Object(pkgs)) = v.get("packages") {
        // lockfileVersion 2 and 3: keyed by install path.
        for (key, p) in pkgs {
            let Some(i) = key.rfind("node_modules/") else { continue }; // the root, workspace members
            if p.get("link").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(&key[i + "node_modules/".len()..]);
            let Some(version) = p.get("version").and_then(Value::as_str) else {
                continue;
            };
            if plausible(name, version) {
                out.push(lock_package(name, version, p, path));
            }
        }
    } else if let Some(Value::Object(deps)) = v.get("dependencies") {
        // lockfileVersion 1: nested by dependency.
        let mut stack: Vec<&serde_json::Map<String, Value>> = vec![deps];
        while let Some(deps) = stack.pop() {
            for (name, p) in deps {
                if let Some(version) = p.get("version").and_then(Value::as_str)
                    && plausible(name, version)
                {
                    out.push(lock_package(name, version, p, path));
                }
                if let Some(Value::Object(nested)) = p.get("dependencies") {
                    stack.push(nested);
                }
            }
        }
    }
    out
}

fn lock_package(name: &str, version: &str, v: &Value, path: &str) -> Package {
    let mut p = Package::new(PackageType::Npm, name, version, path).meta("lockfile", "true");
    p.licenses = licenses(v);
    if v.get("dev").and_then(Value::as_bool) == Some(true) {
        p = p.meta("dev", "true");
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_lockfiles() {
        let mut notes = Vec::new();
        let p = parse_package_json(
            br#"{"name":"@babel/core","version":"7.23.0","license":"MIT"}"#,
            "p",
            &mut notes,
        );
        let p = p.unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.licenses.clone()),
            ("@babel/core", "7.23.0", vec!["MIT".into()])
        );
        let old = br#"{"name":"x","version":"1.0.0","licenses":[{"type":"BSD"},{"type":"MIT"}]}"#;
        assert_eq!(
            parse_package_json(old, "p", &mut notes).unwrap().licenses,
            vec!["BSD", "MIT"]
        );
        let v3 = br#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app","version":"1.0.0"},
            "node_modules/a":{"version":"1.0.0","license":"ISC"},
            "node_modules/a/node_modules/@s/b":{"version":"2.0.0","dev":true},
            "node_modules/c":{"resolved":"../c","link":true}}}"#;
        let mut l = parse_lockfile(v3, "app/package-lock.json", &mut notes);
        l.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            l.iter()
                .map(|p| (p.name.as_str(), p.version.as_str()))
                .collect::<Vec<_>>(),
            [("@s/b", "2.0.0"), ("a", "1.0.0")]
        );
        let v1 = br#"{"lockfileVersion":1,"dependencies":{"a":{"version":"1.0.0","dependencies":{"b":{"version":"3.0.0"}}}}}"#;
        assert_eq!(parse_lockfile(v1, "p", &mut notes).len(), 2);
        assert!(notes.is_empty());
        assert!(parse_package_json(b"{\"name\": ", "p", &mut notes).is_none());
        assert_eq!(notes.len(), 1);
    }
}
