//! Which OSV ecosystem, package name and version a catalogued package is
//! looked up as, with which comparator; and which Trivy target it belongs to.

use serde::Serialize;
use strata_sbom::{Distro, Package, PackageType};
use strata_vercmp::Scheme;

/// How a package is looked up in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    /// The ecosystem passed to [`strata_vulndb::Db::advisories_for`]
    /// (`Debian:12`, `Alpine:v3.19`, `PyPI`, `Ubuntu` for every release).
    pub ecosystem: String,
    /// The ecosystem as reported (`Ubuntu:22.04`).
    pub display: String,
    /// The package name as the ecosystem's advisories name it.
    pub name: String,
    /// The version compared.
    pub version: String,
    pub scheme: Scheme,
    /// For ecosystems whose release strings carry more than the release
    /// (`Ubuntu:22.04:LTS`, `Red Hat:enterprise_linux:9::appstream`): which
    /// `affected[]` entries apply. `None`: every entry returned.
    pub(crate) release: Option<ReleaseMatch>,
}

/// Which release part of an `affected[].package.ecosystem` applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReleaseMatch {
    /// `Ubuntu:22.04` and `Ubuntu:22.04:LTS`, not `Ubuntu:Pro:22.04:LTS`.
    Ubuntu(String),
    /// `Red Hat:enterprise_linux:9::appstream` and the like for a major.
    RedHat(String),
}

impl ReleaseMatch {
    /// Whether an entry's ecosystem (`Base:release`) applies.
    pub(crate) fn matches(&self, ecosystem: &str) -> bool {
        let release = ecosystem.split_once(':').map_or("", |(_, r)| r);
        match self {
            ReleaseMatch::Ubuntu(v) => {
                release == v || release.strip_prefix(v.as_str()).is_some_and(|r| r.starts_with(':'))
            }
            ReleaseMatch::RedHat(major) => {
                let mut parts = release.split(':');
                let product = parts.next().unwrap_or("");
                let version = parts.next().unwrap_or("");
                product == "enterprise_linux" && (version == major || version.split('.').next() == Some(major))
            }
        }
    }
}

/// The first dotted component (`12.5` → `12`).
fn major(v: &str) -> &str {
    v.split(['.', '-', '_']).next().unwrap_or(v)
}

/// `3.19.1` → `3.19`.
fn major_minor(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Debian releases by codename, for images without `VERSION_ID` (testing).
fn debian_release(d: &Distro) -> Option<String> {
    if let Some(v) = d.version_id.as_deref().filter(|v| !v.is_empty()) {
        return Some(major(v).to_string());
    }
    let n = match d.version_codename.as_deref()? {
        "buster" => "10",
        "bullseye" => "11",
        "bookworm" => "12",
        "trixie" => "13",
        "forky" => "14",
        _ => return None,
    };
    Some(n.to_string())
}

/// The OSV ecosystem, name and version to look `pkg` up as, or why it
/// cannot be (no distro, a distro without an OSV source, a Java archive
/// without a group, a Go module built from a working tree).
pub fn ecosystem_for(pkg: &Package, distro: Option<&Distro>) -> Result<Lookup, String> {
    let plain = |eco: &str, scheme: Scheme, name: &str| Lookup {
        ecosystem: eco.to_string(),
        display: eco.to_string(),
        name: name.to_string(),
        version: pkg.version.clone(),
        scheme,
        release: None,
    };
    if pkg.version.is_empty() {
        return Err(format!("{} {}: no version", pkg.kind, pkg.name));
    }
    // Distribution advisories name source packages (Debian, Ubuntu, Alpine).
    let source_name = || pkg.source.as_ref().map_or(pkg.name.as_str(), |s| s.name.as_str());
    let source_version = || {
        pkg.source
            .as_ref()
            .map(|s| s.version.as_str())
            .filter(|v| !v.is_empty())
            .unwrap_or(pkg.version.as_str())
            .to_string()
    };
    Ok(match pkg.kind {
        PackageType::Deb => {
            let d = distro.ok_or("deb packages in an image without /etc/os-release: no Debian or Ubuntu release")?;
            match d.id.as_str() {
                "debian" => {
                    let rel = debian_release(d)
                        .ok_or_else(|| format!("Debian without VERSION_ID or a known codename ({})", d.qualifier()))?;
                    Lookup {
                        ecosystem: format!("Debian:{rel}"),
                        display: format!("Debian:{rel}"),
                        name: source_name().to_string(),
                        version: source_version(),
                        scheme: Scheme::Dpkg,
                        release: None,
                    }
                }
                "ubuntu" => {
                    let v = d
                        .version_id
                        .clone()
                        .ok_or("Ubuntu without VERSION_ID: no release to match")?;
                    Lookup {
                        ecosystem: "Ubuntu".into(),
                        display: format!("Ubuntu:{v}"),
                        name: source_name().to_string(),
                        version: source_version(),
                        scheme: Scheme::Dpkg,
                        release: Some(ReleaseMatch::Ubuntu(v)),
                    }
                }
                other => return Err(format!("deb packages of distro {other:?}: no OSV ecosystem for it")),
            }
        }
        PackageType::Apk => {
            let d = distro.ok_or("apk packages in an image without /etc/os-release: no Alpine release")?;
            let (eco, display) = match d.id.as_str() {
                "alpine" => {
                    let v = d.version_id.as_deref().ok_or("Alpine without VERSION_ID")?;
                    let e = format!("Alpine:v{}", major_minor(v));
                    (e.clone(), e)
                }
                "wolfi" => ("Wolfi".into(), "Wolfi".into()),
                "chainguard" => ("Chainguard".into(), "Chainguard".into()),
                other => return Err(format!("apk packages of distro {other:?}: no OSV ecosystem for it")),
            };
            Lookup {
                ecosystem: eco,
                display,
                name: source_name().to_string(),
                version: pkg.version.clone(),
                scheme: Scheme::Apk,
                release: None,
            }
        }
        PackageType::Rpm => {
            let d = distro.ok_or("rpm packages in an image without /etc/os-release: no release")?;
            let v = d.version_id.as_deref().unwrap_or("");
            let need = |what: &str| {
                if v.is_empty() {
                    Err(format!("{what} without VERSION_ID: no release to match"))
                } else {
                    Ok(())
                }
            };
            let (ecosystem, display, release) = match d.id.as_str() {
                "rhel" => {
                    need("Red Hat")?;
                    (
                        "Red Hat".to_string(),
                        format!("Red Hat:{}", major(v)),
                        Some(ReleaseMatch::RedHat(major(v).to_string())),
                    )
                }
                "rocky" => {
                    need("Rocky Linux")?;
                    let e = format!("Rocky Linux:{}", major(v));
                    (e.clone(), e, None)
                }
                "almalinux" => {
                    need("AlmaLinux")?;
                    let e = format!("AlmaLinux:{}", major(v));
                    (e.clone(), e, None)
                }
                "azurelinux" => {
                    need("Azure Linux")?;
                    let e = format!("Azure Linux:{}", major_minor(v));
                    (e.clone(), e, None)
                }
                "photon" => {
                    need("Photon OS")?;
                    let e = format!("Photon OS:{}", major_minor(v));
                    (e.clone(), e, None)
                }
                "mageia" => {
                    need("Mageia")?;
                    let e = format!("Mageia:{v}");
                    (e.clone(), e, None)
                }
                "opensuse-leap" => {
                    need("openSUSE Leap")?;
                    let e = format!("openSUSE:Leap {v}");
                    (e.clone(), e, None)
                }
                "opensuse-tumbleweed" => ("openSUSE:Tumbleweed".into(), "openSUSE:Tumbleweed".into(), None),
                other => return Err(format!("rpm packages of distro {other:?}: no OSV ecosystem for it")),
            };
            Lookup {
                ecosystem,
                display,
                name: pkg.name.clone(),
                version: pkg.version.clone(),
                scheme: Scheme::Rpm,
                release,
            }
        }
        PackageType::Python => plain("PyPI", Scheme::Pep440, &pkg.name),
        PackageType::Npm => plain("npm", Scheme::SemVer, &pkg.name),
        PackageType::Cargo => plain("crates.io", Scheme::SemVer, &pkg.name),
        PackageType::Gem => plain("RubyGems", Scheme::RubyGems, &pkg.name),
        PackageType::GoModule => {
            if pkg.version == "(devel)" {
                return Err(format!(
                    "Go module {} built from a working tree: version (devel)",
                    pkg.name
                ));
            }
            plain("Go", Scheme::Go, &pkg.name)
        }
        PackageType::JavaArchive => {
            let group = pkg
                .metadata
                .get("groupId")
                .filter(|g| !g.is_empty())
                .ok_or_else(|| format!("Java archive {} has no Maven groupId", pkg.name))?;
            plain("Maven", Scheme::Maven, &format!("{group}:{}", pkg.name))
        }
    })
}

/// Trivy's result classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TargetClass {
    #[serde(rename = "os-pkgs")]
    OsPkgs,
    #[serde(rename = "lang-pkgs")]
    LangPkgs,
}

impl TargetClass {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetClass::OsPkgs => "os-pkgs",
            TargetClass::LangPkgs => "lang-pkgs",
        }
    }
}

/// A Trivy result: OS packages under `"<image> (debian 12)"`, Python, npm,
/// gem and Java packages aggregated under `Python`, `Node.js`, `Ruby`,
/// `Java`; lock files, Go and Rust binaries per file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub class: TargetClass,
    pub name: String,
    /// Trivy's `Type`: `debian`, `alpine`, `python-pkg`, `node-pkg`, `npm`,
    /// `gobinary`, `cargo`, `rustbinary`, `jar`, `gemspec`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Trivy's OS family name for an os-release ID.
pub(crate) fn os_family(id: &str) -> &str {
    match id {
        "rhel" => "redhat",
        "almalinux" => "alma",
        "sles" => "suse linux enterprise server",
        "amzn" => "amazon",
        "ol" => "oracle",
        "azurelinux" => "azurelinux",
        other => other,
    }
}

/// A package's path in the image as Trivy writes it (no leading `/`).
pub(crate) fn rel_path(p: &str) -> &str {
    p.trim_start_matches('/')
}

/// The Trivy target `pkg` is listed under in a scan of image `image`.
pub fn target_for(pkg: &Package, image: &str, distro: Option<&Distro>) -> Target {
    let location = pkg.locations.first().map(|l| rel_path(l)).unwrap_or("");
    // Archive entries (`a.jar:b.jar`): the outer file.
    let file = location.split(':').next().unwrap_or(location);
    let lang = |name: &str, kind: &str| Target {
        class: TargetClass::LangPkgs,
        name: name.to_string(),
        kind: kind.to_string(),
    };
    match pkg.kind {
        PackageType::Deb | PackageType::Apk | PackageType::Rpm => {
            let (family, version) = match distro {
                Some(d) => (
                    os_family(&d.id).to_string(),
                    d.version_id
                        .clone()
                        .or_else(|| d.version_codename.clone())
                        .unwrap_or_default(),
                ),
                None => (
                    match pkg.kind {
                        PackageType::Deb => "debian",
                        PackageType::Apk => "alpine",
                        _ => "redhat",
                    }
                    .to_string(),
                    "unknown".into(),
                ),
            };
            let os = format!("{family} {version}");
            Target {
                class: TargetClass::OsPkgs,
                name: format!("{image} ({})", os.trim()),
                kind: family,
            }
        }
        PackageType::Python => lang("Python", "python-pkg"),
        PackageType::Gem => lang("Ruby", "gemspec"),
        PackageType::JavaArchive => lang("Java", "jar"),
        PackageType::Npm if pkg.metadata.contains_key("lockfile") => lang(file, "npm"),
        PackageType::Npm => lang("Node.js", "node-pkg"),
        PackageType::GoModule => lang(file, "gobinary"),
        PackageType::Cargo if pkg.metadata.contains_key("auditable") => lang(file, "rustbinary"),
        PackageType::Cargo => lang(file, "cargo"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_matching() {
        let u = ReleaseMatch::Ubuntu("22.04".into());
        assert!(u.matches("Ubuntu:22.04"));
        assert!(u.matches("Ubuntu:22.04:LTS"));
        assert!(!u.matches("Ubuntu:Pro:22.04:LTS"));
        assert!(!u.matches("Ubuntu:22.10"));
        let r = ReleaseMatch::RedHat("9".into());
        assert!(r.matches("Red Hat:enterprise_linux:9::appstream"));
        assert!(!r.matches("Red Hat:enterprise_linux:8::appstream"));
        assert!(!r.matches("Red Hat:rhel_aus:9.2::appstream"));
    }

    #[test]
    fn versions() {
        assert_eq!(major("12.5"), "12");
        assert_eq!(major_minor("3.19.1"), "3.19");
        assert_eq!(major_minor("3.19"), "3.19");
    }
}
