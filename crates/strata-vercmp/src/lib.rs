//! strata-vercmp: exact version ordering for each package ecosystem the
//! scanner matches against OSV advisories — dpkg, apk, rpm, PEP 440, SemVer,
//! Go modules, Maven and RubyGems.
//!
//! Owns parsing, validation and comparison of version strings, and the map
//! from an OSV ecosystem name to its scheme. Each comparator follows its
//! ecosystem's reference implementation (named in its module), quirks
//! included, and is tested against that implementation. Must never do I/O,
//! never guess: a string the scheme cannot order is an error naming it, never
//! a panic and never a best-effort answer.

use std::cmp::Ordering;
use std::fmt;

pub mod apk;
pub mod dpkg;
pub mod go;
pub mod maven;
mod num;
pub mod pep440;
pub mod rpm;
pub mod rubygems;
pub mod semver;

pub use apk::ApkVersion;
pub use dpkg::DpkgVersion;
pub use go::GoVersion;
pub use maven::MavenVersion;
pub use pep440::Pep440Version;
pub use rpm::RpmVersion;
pub use rubygems::GemVersion;
pub use semver::SemVersion;

/// A version ordering: one per family of ecosystems that share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Debian's `dpkg` (`[epoch:]upstream[-revision]`, `verrevcmp`).
    Dpkg,
    /// Alpine's apk-tools.
    Apk,
    /// `rpmvercmp` over `[epoch:]version[-release]`.
    Rpm,
    /// PEP 440 as Python's `packaging.version.Version` implements it.
    Pep440,
    /// SemVer 2.0.0 precedence (npm, crates.io, NuGet, Hex); a leading `v` is accepted.
    SemVer,
    /// Go module versions as `golang.org/x/mod/semver` orders them.
    Go,
    /// Maven's `ComparableVersion` (Maven 3.8).
    Maven,
    /// RubyGems' `Gem::Version`.
    RubyGems,
}

impl Scheme {
    /// The scheme for an OSV ecosystem name (`"Debian:12"`, `"Alpine:v3.18"`,
    /// `"PyPI"`, …): the part before the first `:` decides. Ecosystems whose
    /// ordering none of the schemes implements exactly (Packagist, Pub, …)
    /// and unknown names give `None`.
    pub fn for_ecosystem(osv_ecosystem: &str) -> Option<Scheme> {
        let base = osv_ecosystem.split(':').next().unwrap_or("").trim();
        Some(match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Alpaquita" | "Wolfi" | "Chainguard" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia" | "openEuler" | "Photon OS"
            | "Azure Linux" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "npm" | "crates.io" | "NuGet" | "Hex" => Scheme::SemVer,
            "Go" => Scheme::Go,
            "Maven" => Scheme::Maven,
            "RubyGems" => Scheme::RubyGems,
            _ => return None,
        })
    }

    /// The scheme's name as error messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Dpkg => "dpkg",
            Scheme::Apk => "apk",
            Scheme::Rpm => "rpm",
            Scheme::Pep440 => "PEP 440",
            Scheme::SemVer => "SemVer",
            Scheme::Go => "Go",
            Scheme::Maven => "Maven",
            Scheme::RubyGems => "RubyGems",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not a version of the scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {scheme} version {version:?}: {reason}")]
pub struct VersionError {
    pub scheme: Scheme,
    pub version: String,
    pub reason: &'static str,
}

impl VersionError {
    pub(crate) fn new(scheme: Scheme, version: &str, reason: &'static str) -> VersionError {
        VersionError {
            scheme,
            version: version.to_owned(),
            reason,
        }
    }
}

/// Orders two versions of one scheme; an error names the first string that
/// is not a version of it.
///
/// Every scheme but Maven is a total order. Maven's own comparison is not
/// transitive for a few odd qualifiers (see [`maven`]), and this follows
/// it: do not sort Maven versions with it (Rust's sorts may panic).
pub fn compare(scheme: Scheme, a: &str, b: &str) -> Result<Ordering, VersionError> {
    Ok(match scheme {
        Scheme::Dpkg => DpkgVersion::parse(a)?.cmp(&DpkgVersion::parse(b)?),
        Scheme::Apk => ApkVersion::parse(a)?.cmp(&ApkVersion::parse(b)?),
        Scheme::Rpm => RpmVersion::parse(a)?.cmp(&RpmVersion::parse(b)?),
        Scheme::Pep440 => Pep440Version::parse(a)?.cmp(&Pep440Version::parse(b)?),
        Scheme::SemVer => SemVersion::parse(a)?.cmp(&SemVersion::parse(b)?),
        Scheme::Go => GoVersion::parse(a)?.cmp(&GoVersion::parse(b)?),
        Scheme::Maven => MavenVersion::parse(a)?.compare(&MavenVersion::parse(b)?),
        Scheme::RubyGems => GemVersion::parse(a)?.cmp(&GemVersion::parse(b)?),
    })
}

/// Whether `v` is a version of the scheme (whether `compare` accepts it).
pub fn is_valid(scheme: Scheme, v: &str) -> bool {
    match scheme {
        Scheme::Dpkg => DpkgVersion::parse(v).is_ok(),
        Scheme::Apk => ApkVersion::parse(v).is_ok(),
        Scheme::Rpm => RpmVersion::parse(v).is_ok(),
        Scheme::Pep440 => Pep440Version::parse(v).is_ok(),
        Scheme::SemVer => SemVersion::parse(v).is_ok(),
        Scheme::Go => GoVersion::parse(v).is_ok(),
        Scheme::Maven => MavenVersion::parse(v).is_ok(),
        Scheme::RubyGems => GemVersion::parse(v).is_ok(),
    }
}

/// Implements `PartialEq`, `Eq` and `PartialOrd` from a type's `Ord`, so that
/// equality is the scheme's (`1.0` = `1.00` where the scheme says so), not
/// the spelling's.
macro_rules! order_from_ord {
    ($t:ty) => {
        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.cmp(other) == std::cmp::Ordering::Equal
            }
        }
        impl Eq for $t {}
        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }
    };
}
pub(crate) use order_from_ord;
