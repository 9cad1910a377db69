//! Go module versions, ordered as `golang.org/x/mod/semver.Compare`.
//!
//! `vMAJOR.MINOR.PATCH[-pre][+build]`, plus the shorthands `vMAJOR` and
//! `vMAJOR.MINOR` (= `.0`). Build metadata, `+incompatible` included, is
//! ignored; a pseudo-version (`v0.0.0-20191109021931-daa7c04131f5`) is an
//! ordinary pre-release and orders as one. OSV writes Go versions without
//! the `v`, so a missing one is supplied (`1.2.3` is `v1.2.3`). Unlike
//! `semver.Compare`, which puts invalid strings below every valid one, an
//! invalid string is an error.

use std::cmp::Ordering;

use crate::semver::{SemVersion, parse_core, precedence};
use crate::{Scheme, VersionError, order_from_ord};

/// A parsed Go module version.
#[derive(Debug, Clone)]
pub struct GoVersion {
    pub sem: SemVersion,
}

impl GoVersion {
    pub fn parse(s: &str) -> Result<GoVersion, VersionError> {
        let t = s.strip_prefix('v').unwrap_or(s);
        parse_core(t, true)
            .map(|sem| GoVersion { sem })
            .map_err(|reason| VersionError::new(Scheme::Go, s, reason))
    }

    /// Whether the build metadata is `+incompatible` (a v2+ module without
    /// a go.mod).
    pub fn is_incompatible(&self) -> bool {
        self.sem.build == ["incompatible"]
    }
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        precedence(&self.sem, &other.sem)
    }
}
order_from_ord!(GoVersion);
