//! Layer tars built in the test, and cataloguing them.
#![allow(dead_code)]

use std::io::Cursor;

use strata_sbom::{LayerInput, Options, Sbom, catalog};

/// A layer tar under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
    pub created_by: String,
}

impl Layer {
    pub fn new(created_by: &str) -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
            created_by: created_by.into(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h
    }

    pub fn file(mut self, path: &str, data: impl AsRef<[u8]>) -> Self {
        self.file_mode_mut(path, data.as_ref(), 0o644);
        self
    }

    pub fn exe(mut self, path: &str, data: impl AsRef<[u8]>) -> Self {
        self.file_mode_mut(path, data.as_ref(), 0o755);
        self
    }

    fn file_mode_mut(&mut self, path: &str, data: &[u8], mode: u32) {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.b.append_data(&mut h, path, &[][..]).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    /// `.wh.NAME` next to the deleted path.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, b"")
    }

    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), b"")
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub fn digest(i: usize) -> String {
    format!("sha256:{:064x}", i + 1)
}

pub fn opts() -> Options {
    Options {
        created: Some(1_700_000_000),
        ..Options::default()
    }
}

pub fn run_with(layers: Vec<Layer>, opts: &Options) -> Sbom {
    let inputs: Vec<LayerInput<Cursor<Vec<u8>>>> = layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let created_by = l.created_by.clone();
            LayerInput {
                reader: Cursor::new(l.finish()),
                digest: Some(digest(i)),
                created_by: Some(created_by),
            }
        })
        .collect();
    catalog(inputs, opts).unwrap()
}

pub fn run(layers: Vec<Layer>) -> Sbom {
    run_with(layers, &opts())
}

/// `(name, version, layer)` of the packages of a type.
pub fn summary(sbom: &Sbom, kind: &str) -> Vec<(String, String, usize)> {
    sbom.packages
        .iter()
        .filter(|p| p.kind.as_str() == kind)
        .map(|p| (p.name.clone(), p.version.clone(), p.layer))
        .collect()
}

pub fn find<'a>(sbom: &'a Sbom, kind: &str, name: &str) -> Option<&'a strata_sbom::Package> {
    sbom.packages.iter().find(|p| p.kind.as_str() == kind && p.name == name)
}

pub const DEBIAN_OS_RELEASE: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

pub const ALPINE_OS_RELEASE: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n\
PRETTY_NAME=\"Alpine Linux v3.19\"\n";

/// A command on PATH, or None with the reason printed for the skip.
pub fn tool(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file());
    if found.is_none() {
        eprintln!("skipped: {name} is not installed (scripts/deps.d/sbom-tools.sh installs it)");
    }
    found
}
