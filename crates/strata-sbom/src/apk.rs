//! apk: `/lib/apk/db/installed` (one `K:value` line per field, a blank line
//! between packages).

use crate::model::{Package, PackageType, SourcePackage};

pub(crate) fn parse_installed(data: &[u8], path: &str, notes: &mut Vec<String>) -> Vec<Package> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut bad = 0usize;
    let mut first_bad = None;
    let mut record: Vec<(char, &str)> = Vec::new();
    let mut finish = |record: &mut Vec<(char, &str)>| {
        if record.is_empty() {
            return;
        }
        let get = |k: char| {
            record
                .iter()
                .find(|(c, _)| *c == k)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        match (get('P'), get('V')) {
            (Some(name), Some(version)) if !name.contains(char::is_whitespace) => {
                let mut p = Package::new(PackageType::Apk, name, version, path);
                p.arch = get('A').map(str::to_owned);
                if let Some(l) = get('L') {
                    p.licenses.push(l.to_owned());
                }
                p.source = Some(SourcePackage {
                    name: get('o').unwrap_or(name).to_owned(),
                    version: version.to_owned(),
                });
                out.push(p);
            }
            (name, _) => {
                bad += 1;
                first_bad.get_or_insert_with(|| match name {
                    Some(n) => format!("record P:{n} has no V: (version)"),
                    None => "a record has no P: (name)".to_owned(),
                });
            }
        }
        record.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            finish(&mut record);
            continue;
        }
        let mut chars = line.chars();
        match (chars.next(), chars.next()) {
            (Some(k), Some(':')) => record.push((k, &line[k.len_utf8() + 1..])),
            _ => record.push(('?', line)),
        }
    }
    finish(&mut record);
    if let Some(first) = first_bad {
        notes.push(format!(
            "malformed apk database: {bad} record(s) skipped, the first: {first}"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_db() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nL:MIT\no:musl\nF:lib\nR:libc.musl-x86_64.so.1\n\n\
C:Q1def=\nP:libcrypto3\nV:3.1.4-r1\nA:x86_64\nL:Apache-2.0\no:openssl\n\nP:broken\n";
        let mut notes = Vec::new();
        let p = parse_installed(db.as_bytes(), "lib/apk/db/installed", &mut notes);
        assert_eq!(p.len(), 2);
        assert_eq!((p[1].name.as_str(), p[1].version.as_str()), ("libcrypto3", "3.1.4-r1"));
        assert_eq!(p[1].source.as_ref().unwrap().name, "openssl");
        assert_eq!(p[1].licenses, vec!["Apache-2.0"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}
