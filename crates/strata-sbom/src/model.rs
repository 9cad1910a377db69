//! The SBOM's data: packages, the distro, layers, warnings.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The ecosystem a package belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageType {
    Deb,
    Apk,
    Rpm,
    Python,
    Npm,
    Cargo,
    GoModule,
    JavaArchive,
    Gem,
}

impl PackageType {
    pub fn as_str(self) -> &'static str {
        match self {
            PackageType::Deb => "deb",
            PackageType::Apk => "apk",
            PackageType::Rpm => "rpm",
            PackageType::Python => "python",
            PackageType::Npm => "npm",
            PackageType::Cargo => "cargo",
            PackageType::GoModule => "go-module",
            PackageType::JavaArchive => "java-archive",
            PackageType::Gem => "gem",
        }
    }

    /// Installed by the distribution's package manager.
    pub fn is_os(self) -> bool {
        matches!(self, PackageType::Deb | PackageType::Apk | PackageType::Rpm)
    }
}

impl fmt::Display for PackageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The source package an OS package was built from (dpkg `Source:`, apk
/// origin, rpm source RPM): distribution advisories are by source package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourcePackage {
    pub name: String,
    pub version: String,
}

/// One package found in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// Package URL (<https://github.com/package-url/purl-spec>).
    pub purl: String,
    /// As the package metadata states them (not normalized to SPDX).
    pub licenses: Vec<String>,
    /// Absolute paths of the files the package was read from; `A:B` is entry
    /// `B` inside archive `A`.
    pub locations: Vec<String>,
    /// Index (bottom = 0) of the layer that added the package.
    pub layer: usize,
    pub layer_digest: Option<String>,
    /// The history step (`created_by`, the Dockerfile line) of that layer.
    pub created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourcePackage>,
    /// Ecosystem details: `groupId` (Java), `epoch` (rpm), `goVersion`,
    /// `mainModule`, `checksum`, `lockfile`, ….
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Package {
    /// A package with no layer attribution or purl yet (the cataloguers'
    /// output; [`crate::catalog`] fills in the rest).
    pub(crate) fn new(kind: PackageType, name: impl Into<String>, version: impl Into<String>, location: &str) -> Self {
        Package {
            name: name.into(),
            version: version.into(),
            kind,
            purl: String::new(),
            licenses: Vec::new(),
            locations: vec![format!("/{location}")],
            layer: 0,
            layer_digest: None,
            created_by: None,
            arch: None,
            source: None,
            metadata: BTreeMap::new(),
        }
    }

    pub(crate) fn meta(mut self, key: &str, value: impl Into<String>) -> Self {
        let v = value.into();
        if !v.is_empty() {
            self.metadata.insert(key.to_owned(), v);
        }
        self
    }
}

/// The distribution, from `/etc/os-release` (or `/usr/lib/os-release`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Distro {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_codename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub id_like: Vec<String>,
}

impl Distro {
    /// `debian-12`, `alpine-3.19.1`; the codename when there is no version
    /// (`debian-trixie`); the bare id otherwise. The purl `distro` qualifier.
    pub fn qualifier(&self) -> String {
        match (&self.version_id, &self.version_codename) {
            (Some(v), _) => format!("{}-{v}", self.id),
            (None, Some(c)) => format!("{}-{c}", self.id),
            _ => self.id.clone(),
        }
    }
}

/// Something that could not be read, with where it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Absolute path in the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.layer {
            write!(f, "layer {l}: ")?;
        }
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A layer as the SBOM lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerInfo {
    pub index: usize,
    pub digest: Option<String>,
    pub created_by: Option<String>,
    pub entries: usize,
    /// Regular files' bytes.
    pub size: u64,
}

/// What the SBOM describes: the image as the caller names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// As the user wrote it (`debian:12`, an ID).
    pub name: String,
    /// The image ID (config digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The manifest (repo) digest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// A software bill of materials for one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sbom {
    pub image: ImageInfo,
    pub distro: Option<Distro>,
    pub layers: Vec<LayerInfo>,
    /// Sorted by name, version, type, layer.
    pub packages: Vec<Package>,
    pub warnings: Vec<Warning>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// `created` came from the caller or `SOURCE_DATE_EPOCH`: document
    /// identifiers are then derived from the content alone.
    #[serde(skip)]
    pub reproducible: bool,
}
