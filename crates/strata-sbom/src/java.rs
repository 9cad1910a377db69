//! Java archives (`.jar`, `.war`, `.ear`, …): `META-INF/maven/**/pom.properties`,
//! else `META-INF/MANIFEST.MF` and the file name, and the archives nested
//! inside (Spring Boot's `BOOT-INF/lib/*.jar`, a war's `WEB-INF/lib/`).
//!
//! Zip bombs are bounded three ways: every entry is read through a limit
//! (what its header claims is not trusted), all entries read from one
//! top-level archive share a budget (`max_archive_expanded`), and nesting
//! stops at `max_archive_depth`.

use std::io::{Cursor, Read};

use zip::ZipArchive;

use crate::Options;
use crate::model::{Package, PackageType};
use crate::scan::human;

const EXTENSIONS: &[&str] = &[".jar", ".war", ".ear", ".jpi", ".hpi", ".par", ".sar", ".nar", ".kar"];
/// Largest pom.properties or MANIFEST.MF read.
const MAX_SMALL_ENTRY: u64 = 1 << 20;
const MAX_ENTRIES: usize = 500_000;

pub(crate) fn is_archive_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    EXTENSIONS.iter().any(|e| lower.ends_with(e) && lower.len() > e.len())
}

struct Walk<'a> {
    opts: &'a Options,
    budget: u64,
    exhausted: bool,
    out: Vec<Package>,
    notes: &'a mut Vec<String>,
}

pub(crate) fn catalog_archive(data: &[u8], path: &str, opts: &Options, notes: &mut Vec<String>) -> Vec<Package> {
    let mut w = Walk {
        opts,
        budget: opts.max_archive_expanded,
        exhausted: false,
        out: Vec::new(),
        notes,
    };
    let file_name = path.rsplit('/').next().unwrap_or(path);
    w.archive(data, &format!("/{path}"), file_name, 0);
    w.out
}

impl Walk<'_> {
    fn archive(&mut self, data: &[u8], location: &str, file_name: &str, depth: usize) {
        let inner = |location: &str| {
            location
                .split_once(':')
                .map(|(_, i)| format!("{i}: "))
                .unwrap_or_default()
        };
        let mut zip = match ZipArchive::new(Cursor::new(data)) {
            Ok(z) => z,
            Err(e) => {
                self.notes
                    .push(format!("{}not a readable Java archive ({e}); skipped", inner(location)));
                return;
            }
        };
        if zip.len() > MAX_ENTRIES {
            self.notes.push(format!(
                "{}{} entries, over the limit of {MAX_ENTRIES}; skipped",
                inner(location),
                zip.len()
            ));
            return;
        }
        let names: Vec<(usize, String)> = zip.file_names().map(str::to_owned).enumerate().collect();
        let mut found = 0;
        let mut manifest = None;
        let mut nested = Vec::new();
        for (i, name) in &names {
            if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
                let Some(bytes) = self.read(&mut zip, *i, MAX_SMALL_ENTRY, location, name) else {
                    continue;
                };
                if let Some(p) = pom_package(&bytes, location, name) {
                    self.out.push(p);
                    found += 1;
                }
            } else if name == "META-INF/MANIFEST.MF" {
                manifest = Some(*i);
            } else if is_archive_name(name) {
                nested.push((*i, name.clone()));
            }
        }
        if found == 0 {
            let mf = manifest.and_then(|i| self.read(&mut zip, i, MAX_SMALL_ENTRY, location, "META-INF/MANIFEST.MF"));
            if let Some(p) = manifest_package(mf.as_deref().unwrap_or_default(), file_name, location) {
                self.out.push(p);
            }
        }
        for (i, name) in nested {
            if depth + 1 > self.opts.max_archive_depth {
                self.notes.push(format!(
                    "{}Java archives nested deeper than {} levels; {name} and its siblings not read",
                    inner(location),
                    self.opts.max_archive_depth
                ));
                return;
            }
            let Some(bytes) = self.read(&mut zip, i, self.opts.max_archive_size, location, &name) else {
                continue;
            };
            let child_name = name.rsplit('/').next().unwrap_or(&name).to_owned();
            self.archive(&bytes, &format!("{location}:{name}"), &child_name, depth + 1);
            if self.exhausted {
                return;
            }
        }
    }

    /// An entry's bytes, read through both its own limit and the budget.
    fn read(
        &mut self,
        zip: &mut ZipArchive<Cursor<&[u8]>>,
        i: usize,
        cap: u64,
        location: &str,
        name: &str,
    ) -> Option<Vec<u8>> {
        if self.exhausted {
            return None;
        }
        let limit = cap.min(self.budget);
        let where_ = match location.split_once(':') {
            Some((_, inner)) => format!("{inner}:{name}"),
            None => name.to_owned(),
        };
        let mut f = match zip.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                self.notes
                    .push(format!("{where_}: cannot be read from the archive ({e})"));
                return None;
            }
        };
        let mut buf = Vec::new();
        let r = (&mut f).take(limit + 1).read_to_end(&mut buf);
        self.budget = self.budget.saturating_sub(buf.len() as u64);
        if let Err(e) = r {
            self.notes.push(format!("{where_}: cannot be decompressed ({e})"));
            return None;
        }
        if buf.len() as u64 > limit {
            if limit == cap {
                self.notes.push(format!(
                    "{where_}: expands beyond {} (a zip bomb?); not read",
                    human(cap)
                ));
            } else {
                self.exhausted = true;
                self.notes.push(format!(
                    "the archive expands beyond {} in all (a zip bomb?); the rest of it not read",
                    human(self.opts.max_archive_expanded)
                ));
            }
            return None;
        }
        Some(buf)
    }
}

fn properties(data: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(data)
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            l.split_once(['=', ':'])
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn pom_package(data: &[u8], location: &str, entry: &str) -> Option<Package> {
    let props = properties(data);
    let get = |k: &str| {
        props
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (artifact, version) = (get("artifactId")?, get("version")?);
    let mut p = Package::new(PackageType::JavaArchive, artifact, version, location).meta("pomProperties", entry);
    p.locations = vec![location.to_owned()];
    if let Some(g) = get("groupId") {
        p = p.meta("groupId", g);
    }
    Some(p)
}

/// From MANIFEST.MF attributes and the file name (`name-1.2.3.jar`).
fn manifest_package(mf: &[u8], file_name: &str, location: &str) -> Option<Package> {
    // Manifest lines wrap at 72 bytes with a leading space on continuations.
    let text = String::from_utf8_lossy(mf).replace("\r\n", "\n").replace("\n ", "");
    let main_section = text.split("\n\n").next().unwrap_or("");
    let attrs = properties(main_section.as_bytes());
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let stem = EXTENSIONS.iter().find_map(|e| {
        let lower = file_name.to_ascii_lowercase();
        lower.ends_with(e).then(|| &file_name[..file_name.len() - e.len()])
    })?;
    let (file_artifact, file_version) = match stem
        .char_indices()
        .find(|&(i, c)| c == '-' && stem[i + 1..].starts_with(|d: char| d.is_ascii_digit()))
    {
        Some((i, _)) => (&stem[..i], Some(&stem[i + 1..])),
        None => (stem, None),
    };
    let version = get("Implementation-Version")
        .or(get("Bundle-Version"))
        .or(get("Specification-Version"))
        .or(file_version)?;
    let name = if file_artifact.is_empty() {
        get("Implementation-Title")?
    } else {
        file_artifact
    };
    let mut p = Package::new(PackageType::JavaArchive, name, version, location);
    p.locations = vec![location.to_owned()];
    if let Some(g) = get("Implementation-Vendor-Id") {
        p = p.meta("groupId", g);
    } else if let Some(sym) = get("Bundle-SymbolicName") {
        let sym = sym.split(';').next().unwrap_or(sym).trim();
        if let Some((group, _)) = sym.rsplit_once('.') {
            p = p.meta("groupId", group);
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_manifests() {
        assert!(
            is_archive_name("x.JAR")
                && is_archive_name("a.war")
                && !is_archive_name(".jar")
                && !is_archive_name("x.rar")
        );
        let mf = b"Manifest-Version: 1.0\r\nImplementation-Title: Commons IO\r\nImplementation-Version: 2.11.0\r\n\
Bundle-SymbolicName: org.apache.commons.commons-io\r\n\r\nName: x\r\nImplementation-Version: 9\r\n";
        let p = manifest_package(mf, "commons-io-2.11.0.jar", "/lib/commons-io-2.11.0.jar").unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("commons-io", "2.11.0"));
        assert_eq!(
            p.metadata.get("groupId").map(String::as_str),
            Some("org.apache.commons")
        );
        let p = manifest_package(b"", "guava-32.1.2-jre.jar", "/g.jar").unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("guava", "32.1.2-jre"));
        assert!(manifest_package(b"", "app.jar", "/app.jar").is_none());
        let p = pom_package(
            b"#x\ngroupId=org.slf4j\nartifactId=slf4j-api\nversion=2.0.9\n",
            "/a.jar",
            "p",
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("slf4j-api", "2.0.9"));
    }
}
