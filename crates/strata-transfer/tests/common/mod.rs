//! The registry client's test helpers (one file, shared with
//! strata-registry's tests), plus what the pull tests add.
#![allow(dead_code)]

#[path = "../../../strata-registry/tests/common/mod.rs"]
mod registry_common;
pub use registry_common::*;

use strata_registry::Credentials;
use strata_transfer::pull::PullOptions;

/// Anonymous pull options that read nothing from the machine; layers are
/// unpacked in the same pass, as the CLI does.
pub fn pull_options() -> PullOptions {
    PullOptions {
        platform: None,
        client: options(Credentials::Anonymous),
        unpack: true,
    }
}
