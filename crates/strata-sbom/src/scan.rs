//! One pass over a layer tar: the file index, and the cataloguers' findings
//! for the files they want (read while the entry streams past, each up to
//! its size limit; every other file's contents are skipped unread).

use std::collections::HashMap;
use std::io::{self, Read};

use crate::index::{Entry, EntryKind, LayerIndex, normalize};
use crate::model::{Distro, Package, Warning};
use crate::{Options, apk, cargo, distro, dpkg, gem, golang, java, npm, python, rpm};

/// What a cataloguer made of one file.
#[derive(Clone, Debug)]
pub(crate) enum Extract {
    /// A package database (dpkg status, apk installed, rpmdb): each package
    /// is attributed to the first layer from which its record stays present.
    Database(Vec<Package>),
    /// Packages attributed to the layer that wrote this file.
    Packages(Vec<Package>),
    OsRelease(Distro),
    /// Licenses named by a Debian copyright file.
    Licenses(Vec<String>),
}

/// A scanned layer: its file index and what the cataloguers found in it.
#[derive(Clone, Debug, Default)]
pub struct LayerScan {
    pub index: LayerIndex,
    pub digest: Option<String>,
    pub created_by: Option<String>,
    pub warnings: Vec<Warning>,
    pub(crate) extracts: HashMap<String, Extract>,
}

/// The file index of a layer alone (no cataloguing): what `image analyze` needs.
pub fn index_layer<R: Read>(reader: R) -> io::Result<LayerIndex> {
    walk(reader, |_, _, _| {}).map(|(index, _)| index)
}

/// Walks a layer tar once, indexing every entry and cataloguing the files
/// that hold package metadata. `layer` labels the warnings.
pub fn scan_layer<R: Read>(reader: R, layer: usize, opts: &Options) -> io::Result<LayerScan> {
    let mut extracts: HashMap<String, Extract> = HashMap::new();
    let (index, notes) = walk(
        reader,
        |entry: &Entry, data: &mut dyn Read, notes: &mut Vec<String>| match &entry.kind {
            EntryKind::File => {
                let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    extract(&entry.path, entry.size, entry.mode, data, opts, notes)
                }))
                .unwrap_or_else(|_| {
                    notes.push("could not be read (a bug in strata-sbom; the file was skipped)".into());
                    None
                });
                if let Some(x) = found {
                    extracts.insert(entry.path.clone(), x);
                }
            }
            // A hard link is the same file under another name: the same
            // findings when that name is one the same cataloguer reads (not,
            // say, a `status-old` linked to dpkg's `status`).
            EntryKind::Hardlink { target } if classify(&entry.path, entry.mode) == classify(target, entry.mode) => {
                if let Some(x) = extracts.get(target) {
                    let x = relocate(x.clone(), target, &entry.path);
                    extracts.insert(entry.path.clone(), x);
                }
            }
            _ => {}
        },
    )?;
    let warnings = notes
        .into_iter()
        .map(|(path, message)| Warning {
            layer: Some(layer),
            path: path.map(|p| format!("/{p}")),
            message,
        })
        .collect();
    Ok(LayerScan {
        index,
        digest: None,
        created_by: None,
        warnings,
        extracts,
    })
}

type Notes = Vec<(Option<String>, String)>;

/// The tar walk. `visit` sees each indexed entry with its content reader
/// (for regular files) and collects messages about it.
fn walk<R: Read>(
    reader: R,
    mut visit: impl FnMut(&Entry, &mut dyn Read, &mut Vec<String>),
) -> io::Result<(LayerIndex, Notes)> {
    let mut ar = tar::Archive::new(reader);
    let mut index = LayerIndex::default();
    let mut notes: Notes = Vec::new();
    for item in ar.entries()? {
        let mut item = item?;
        let raw = String::from_utf8_lossy(&item.path_bytes()).into_owned();
        let header = item.header();
        let et = header.entry_type();
        if matches!(
            et,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName
        ) {
            continue;
        }
        let Some(path) = normalize(&raw) else {
            if raw.split('/').any(|c| c == "..") {
                notes.push((None, format!("entry {raw:?} climbs out of the root with '..'; ignored")));
            }
            continue;
        };
        let mode = header.mode().unwrap_or(0);
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let size = item.size();
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path.as_str()),
        };
        let kind = if name == ".wh..wh..opq" {
            Some((dir.to_owned(), EntryKind::Opaque))
        } else if let Some(gone) = name.strip_prefix(".wh.") {
            let p = if dir.is_empty() {
                gone.to_owned()
            } else {
                format!("{dir}/{gone}")
            };
            Some((p, EntryKind::Whiteout))
        } else {
            let link = || {
                item.link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            match et {
                tar::EntryType::Regular | tar::EntryType::Continuous => Some((path.clone(), EntryKind::File)),
                tar::EntryType::Directory => Some((path.clone(), EntryKind::Dir)),
                tar::EntryType::Symlink => Some((path.clone(), EntryKind::Symlink { target: link() })),
                tar::EntryType::Link => match normalize(&link()) {
                    Some(target) => Some((path.clone(), EntryKind::Hardlink { target })),
                    None => {
                        notes.push((Some(path.clone()), "hard link with an invalid target; ignored".into()));
                        None
                    }
                },
                tar::EntryType::Char => Some((path.clone(), EntryKind::CharDevice)),
                tar::EntryType::Block => Some((path.clone(), EntryKind::BlockDevice)),
                tar::EntryType::Fifo => Some((path.clone(), EntryKind::Fifo)),
                _ => None,
            }
        };
        let Some((path, kind)) = kind else { continue };
        let entry = Entry {
            path,
            size: if kind == EntryKind::File { size } else { 0 },
            kind,
            mode,
            uid,
            gid,
        };
        let mut msgs = Vec::new();
        visit(&entry, &mut item, &mut msgs);
        notes.extend(msgs.into_iter().map(|m| (Some(entry.path.clone()), m)));
        index.entries.push(entry);
    }
    Ok((index, notes))
}

/// Which cataloguer wants a file, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Candidate {
    DpkgStatus,
    DpkgStatusD,
    DebCopyright,
    ApkInstalled,
    RpmSqlite,
    RpmUnsupported,
    OsRelease,
    PythonMetadata,
    NpmPackageJson,
    NpmLockfile,
    CargoLock,
    Gemspec,
    JavaArchive,
    /// An executable: maybe a Go or cargo-auditable binary.
    Executable,
}

fn classify(path: &str, mode: u32) -> Option<Candidate> {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let parent = dir.rsplit('/').next().unwrap_or("");
    let grandparent_dir = dir.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let grandparent = grandparent_dir.rsplit('/').next().unwrap_or("");
    use Candidate::*;
    Some(match path {
        "var/lib/dpkg/status" => DpkgStatus,
        "lib/apk/db/installed" => ApkInstalled,
        "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => RpmSqlite,
        "var/lib/rpm/Packages" | "var/lib/rpm/Packages.db" | "usr/lib/sysimage/rpm/Packages.db" => RpmUnsupported,
        "etc/os-release" | "usr/lib/os-release" => OsRelease,
        _ if dir == "var/lib/dpkg/status.d" && !name.ends_with(".md5sums") => DpkgStatusD,
        _ if name == "copyright" && grandparent_dir == "usr/share/doc" => DebCopyright,
        _ if name == "METADATA" && parent.ends_with(".dist-info") => PythonMetadata,
        _ if name == "PKG-INFO" && parent.ends_with(".egg-info") => PythonMetadata,
        _ if name.ends_with(".egg-info") => PythonMetadata,
        _ if name == "package.json"
            && (grandparent == "node_modules"
                || (grandparent.starts_with('@')
                    && grandparent_dir.rsplit('/').nth(1).is_some_and(|c| c == "node_modules"))) =>
        {
            NpmPackageJson
        }
        _ if name == "package-lock.json" && !path.split('/').any(|c| c == "node_modules") => NpmLockfile,
        _ if name == "Cargo.lock" => CargoLock,
        _ if name.ends_with(".gemspec")
            && (parent == "specifications" || (parent == "default" && grandparent == "specifications")) =>
        {
            Gemspec
        }
        _ if java::is_archive_name(name) => JavaArchive,
        _ if mode & 0o111 != 0 => Executable,
        _ => return None,
    })
}

/// Reads a whole file if it fits under `cap`, else says so.
fn read_capped(r: &mut dyn Read, size: u64, cap: u64, what: &str, notes: &mut Vec<String>) -> Option<Vec<u8>> {
    if size > cap {
        notes.push(format!(
            "{size} bytes, over the {} limit for {what}; not read",
            human(cap)
        ));
        return None;
    }
    let mut buf = Vec::with_capacity(size as usize);
    match r.take(cap).read_to_end(&mut buf) {
        Ok(_) => Some(buf),
        Err(e) => {
            notes.push(format!("could not be read: {e}"));
            None
        }
    }
}

pub(crate) fn human(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// Largest prefix of a Debian copyright file read (the License: lines of a
/// machine-readable one come early enough; the rest is skipped).
const COPYRIGHT_PREFIX: u64 = 256 << 10;

fn extract(
    path: &str,
    size: u64,
    mode: u32,
    r: &mut dyn Read,
    opts: &Options,
    notes: &mut Vec<String>,
) -> Option<Extract> {
    let candidate = classify(path, mode)?;
    let meta = opts.max_metadata_size;
    Some(match candidate {
        Candidate::DpkgStatus => {
            let data = read_capped(r, size, meta, "a dpkg status file", notes)?;
            Extract::Database(dpkg::parse_status(&data, path, false, notes))
        }
        Candidate::DpkgStatusD => {
            let data = read_capped(r, size, meta, "a dpkg status file", notes)?;
            Extract::Packages(dpkg::parse_status(&data, path, true, notes))
        }
        Candidate::DebCopyright => {
            let mut data = Vec::new();
            r.take(COPYRIGHT_PREFIX).read_to_end(&mut data).ok()?;
            Extract::Licenses(dpkg::copyright_licenses(&data))
        }
        Candidate::ApkInstalled => {
            let data = read_capped(r, size, meta, "an apk database", notes)?;
            Extract::Database(apk::parse_installed(&data, path, notes))
        }
        Candidate::RpmSqlite => {
            if size > opts.max_database_size {
                notes.push(format!(
                    "{size} bytes, over the {} limit for an rpm database; not read",
                    human(opts.max_database_size)
                ));
                return None;
            }
            Extract::Database(rpm::read_sqlite(r, path, notes)?)
        }
        Candidate::RpmUnsupported => {
            notes.push(
                "an rpm database in the Berkeley DB or NDB format, which strata does not read (only rpmdb.sqlite); \
                 its packages are not listed"
                    .into(),
            );
            return None;
        }
        Candidate::OsRelease => {
            let data = read_capped(r, size, 1 << 20, "os-release", notes)?;
            Extract::OsRelease(distro::parse_os_release(&data)?)
        }
        Candidate::PythonMetadata => {
            let data = read_capped(r, size, meta, "Python package metadata", notes)?;
            Extract::Packages(python::parse_metadata(&data, path, notes).into_iter().collect())
        }
        Candidate::NpmPackageJson => {
            let data = read_capped(r, size, meta, "a package.json", notes)?;
            Extract::Packages(npm::parse_package_json(&data, path, notes).into_iter().collect())
        }
        Candidate::NpmLockfile => {
            let data = read_capped(r, size, meta, "a package-lock.json", notes)?;
            Extract::Packages(npm::parse_lockfile(&data, path, notes))
        }
        Candidate::CargoLock => {
            let data = read_capped(r, size, meta, "a Cargo.lock", notes)?;
            Extract::Packages(cargo::parse_lockfile(&data, path, notes))
        }
        Candidate::Gemspec => {
            let data = read_capped(r, size, meta, "a gemspec", notes)?;
            Extract::Packages(gem::parse_gemspec(&data, path, notes).into_iter().collect())
        }
        Candidate::JavaArchive => {
            let data = read_capped(r, size, opts.max_archive_size, "a Java archive", notes)?;
            Extract::Packages(java::catalog_archive(&data, path, opts, notes))
        }
        Candidate::Executable => {
            const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
            if size < 64 {
                return None;
            }
            let mut magic = [0u8; 4];
            r.read_exact(&mut magic).ok()?;
            if &magic != ELF_MAGIC {
                return None;
            }
            if size > opts.max_binary_size {
                notes.push(format!(
                    "an executable of {size} bytes, over the {} limit; not examined for Go or Rust packages",
                    human(opts.max_binary_size)
                ));
                return None;
            }
            let mut data = Vec::with_capacity(size as usize);
            data.extend_from_slice(&magic);
            if let Err(e) = r.read_to_end(&mut data) {
                notes.push(format!("could not be read: {e}"));
                return None;
            }
            let mut pkgs = golang::catalog_binary(&data, path, notes);
            pkgs.extend(cargo::catalog_auditable_binary(&data, path, notes));
            if pkgs.is_empty() {
                return None;
            }
            Extract::Packages(pkgs)
        }
    })
}

/// The same findings under a hard link's own path.
fn relocate(x: Extract, from: &str, to: &str) -> Extract {
    let fix = |mut pkgs: Vec<Package>| {
        let (from, to) = (format!("/{from}"), format!("/{to}"));
        for p in &mut pkgs {
            for l in &mut p.locations {
                if let Some(rest) = l.strip_prefix(&from) {
                    *l = format!("{to}{rest}");
                }
            }
        }
        pkgs
    };
    match x {
        Extract::Database(p) => Extract::Database(fix(p)),
        Extract::Packages(p) => Extract::Packages(fix(p)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths() {
        use Candidate::*;
        let c = |p| classify(p, 0o644);
        assert_eq!(c("var/lib/dpkg/status"), Some(DpkgStatus));
        assert_eq!(c("var/lib/dpkg/status.d/base"), Some(DpkgStatusD));
        assert_eq!(c("var/lib/dpkg/status.d/base.md5sums"), None);
        assert_eq!(c("usr/share/doc/bash/copyright"), Some(DebCopyright));
        assert_eq!(
            c("usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA"),
            Some(PythonMetadata)
        );
        assert_eq!(
            c("usr/lib/python3/dist-packages/six-1.16.0.egg-info"),
            Some(PythonMetadata)
        );
        assert_eq!(c("app/node_modules/left-pad/package.json"), Some(NpmPackageJson));
        assert_eq!(c("app/node_modules/@babel/core/package.json"), Some(NpmPackageJson));
        assert_eq!(c("app/node_modules/left-pad/lib/package.json"), None);
        assert_eq!(c("app/package.json"), None);
        assert_eq!(c("app/package-lock.json"), Some(NpmLockfile));
        assert_eq!(c("app/node_modules/x/package-lock.json"), None);
        assert_eq!(c("src/Cargo.lock"), Some(CargoLock));
        assert_eq!(
            c("usr/lib/ruby/gems/3.1.0/specifications/rake-13.0.6.gemspec"),
            Some(Gemspec)
        );
        assert_eq!(
            c("usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec"),
            Some(Gemspec)
        );
        assert_eq!(c("opt/app/lib/x.jar"), Some(JavaArchive));
        assert_eq!(classify("usr/bin/tool", 0o755), Some(Executable));
        assert_eq!(c("usr/bin/readme"), None);
    }
}
