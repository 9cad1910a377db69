//! dpkg: `/var/lib/dpkg/status`, distroless's `/var/lib/dpkg/status.d/*`,
//! and the licenses of `/usr/share/doc/PKG/copyright` (machine-readable
//! DEP-5 `License:` fields, and `/usr/share/common-licenses/NAME` references).

use crate::model::{Package, PackageType, SourcePackage};

/// Control-file stanzas: fields with their (continuation-joined) values.
pub(crate) fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        match line.split_once(':') {
            Some((k, v)) => cur.push((k.trim().to_owned(), v.trim().to_owned())),
            None => cur.push((line.trim().to_owned(), String::new())),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(stanza: &'a [(String, String)], name: &str) -> Option<&'a str> {
    stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// The installed packages of a status file. In `status.d` (distroless) a
/// stanza without a `Status:` field counts as installed.
pub(crate) fn parse_status(data: &[u8], path: &str, status_d: bool, notes: &mut Vec<String>) -> Vec<Package> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (n, st) in stanzas(&text).iter().enumerate() {
        let name = field(st, "Package");
        let version = field(st, "Version");
        let (Some(name), Some(version)) = (name, version) else {
            bad.push(match name {
                Some(name) => format!("stanza {} (Package: {name}) has no Version", n + 1),
                None => format!("stanza {} has no Package field", n + 1),
            });
            continue;
        };
        if !valid_name(name) || version.contains(char::is_whitespace) {
            bad.push(format!("stanza {} has a malformed Package or Version field", n + 1));
            continue;
        }
        match field(st, "Status") {
            Some(s) if s.split_whitespace().nth(2) == Some("installed") => {}
            Some(_) => continue, // removed, config-files, half-installed, …
            None if status_d => {}
            None => {
                bad.push(format!("stanza {} (Package: {name}) has no Status", n + 1));
                continue;
            }
        }
        let mut p = Package::new(PackageType::Deb, name, version, path);
        p.arch = field(st, "Architecture").map(str::to_owned);
        p.source = Some(source_package(field(st, "Source"), name, version));
        out.push(p);
    }
    if !bad.is_empty() {
        let more = if bad.len() > 3 {
            format!(" (and {} more)", bad.len() - 3)
        } else {
            String::new()
        };
        notes.push(format!(
            "malformed dpkg status, skipped: {}{more}",
            bad[..bad.len().min(3)].join("; ")
        ));
    }
    out
}

fn valid_name(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.:_".contains(&b))
}

/// `Source: glibc (2.36-9)` → glibc 2.36-9; `Source: gcc-12` → gcc-12 at the
/// binary's version; no field → the package itself.
fn source_package(source: Option<&str>, name: &str, version: &str) -> SourcePackage {
    match source {
        None => SourcePackage {
            name: name.to_owned(),
            version: version.to_owned(),
        },
        Some(s) => match s.split_once('(') {
            Some((n, v)) => SourcePackage {
                name: n.trim().to_owned(),
                version: v.trim_end_matches(')').trim().to_owned(),
            },
            None => SourcePackage {
                name: s.trim().to_owned(),
                version: version.to_owned(),
            },
        },
    }
}

/// License names in a Debian copyright file, in order of appearance.
pub(crate) fn copyright_licenses(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut out: Vec<String> = Vec::new();
    let mut push = |l: &str| {
        let l = l.trim().trim_end_matches([',', '.', ';']);
        if !l.is_empty() && l.len() <= 200 && !out.iter().any(|x| x == l) {
            out.push(l.to_owned());
        }
    };
    let machine_readable = text.lines().next().is_some_and(|l| {
        l.starts_with("Format:") && (l.contains("copyright-format") || l.contains("dep5") || l.contains("DEP-5"))
    });
    for line in text.lines() {
        if machine_readable && let Some(v) = line.strip_prefix("License:") {
            push(v);
        }
        let mut rest = line;
        while let Some(i) = rest.find("/usr/share/common-licenses/") {
            rest = &rest[i + "/usr/share/common-licenses/".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '+' | '_'))
                .collect();
            let name = name.trim_end_matches('.');
            if !name.is_empty() {
                push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: libc6\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n\
Multi-Arch: same\nSource: glibc (2.36-9+deb12u4)\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library\n \
Contains the standard libraries.\n .\n More.\n\nPackage: bash\nStatus: install ok installed\nArchitecture: amd64\n\
Version: 5.2.15-2+b2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n\nPackage: trunc\nStatus: install ok inst";

    #[test]
    fn status_stanzas_source_and_truncation() {
        let mut notes = Vec::new();
        let p = parse_status(STATUS.as_bytes(), "var/lib/dpkg/status", false, &mut notes);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].name.as_str(), p[0].version.as_str()), ("libc6", "2.36-9+deb12u4"));
        assert_eq!(
            p[0].source,
            Some(SourcePackage {
                name: "glibc".into(),
                version: "2.36-9+deb12u4".into()
            })
        );
        assert_eq!(
            p[1].source,
            Some(SourcePackage {
                name: "bash".into(),
                version: "5.2.15-2+b2".into()
            })
        );
        assert_eq!(p[1].locations, vec!["/var/lib/dpkg/status"]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("Package: trunc"), "{notes:?}");
    }

    #[test]
    fn copyright() {
        let dep5 = b"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\n\
Copyright: 1989 FSF\nLicense: GPL-3+\n\nFiles: lib/*\nLicense: LGPL-2.1+ or Artistic\n\nLicense: GPL-3+\n \
On Debian systems, see /usr/share/common-licenses/GPL-3.\n";
        assert_eq!(
            copyright_licenses(dep5),
            vec!["GPL-3+", "LGPL-2.1+ or Artistic", "GPL-3"]
        );
        let free = b"This is free software.\nSee /usr/share/common-licenses/GPL-2 for the text.\n";
        assert_eq!(copyright_licenses(free), vec!["GPL-2"]);
    }
}
