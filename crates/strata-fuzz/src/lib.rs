//! Fuzz harnesses for strata's parsers of untrusted input, shared by the
//! cargo-fuzz targets in `fuzz/` (nightly, libFuzzer) and by this crate's
//! `tests/replay.rs`, which replays the committed corpora in
//! `fuzz/corpus/<target>/` on stable as ordinary tests.
//!
//! Each `run` function takes the fuzzer's bytes, must never panic, and
//! asserts its oracle (a round trip, a containment, a clean store) with
//! `assert!`, so that a replay fails where the fuzzer would report a crash.

pub mod dockerfile;
pub mod oci_documents;
pub mod reference;
pub mod shell_words;

#[cfg(feature = "archive")]
pub mod archive_load;
#[cfg(feature = "layer")]
pub mod layer_apply;
#[cfg(feature = "registry")]
pub mod registry_request;

/// A harness: the fuzzer's bytes in, a panic when the oracle fails.
pub type Harness = fn(&[u8]);

/// The targets, by the name of their corpus directory, with their harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("dockerfile", dockerfile::run),
    ("shell_words", shell_words::run),
    ("reference", reference::run),
    ("oci_documents", oci_documents::run),
    #[cfg(feature = "layer")]
    ("layer_apply", layer_apply::run),
    #[cfg(feature = "archive")]
    ("archive_load", archive_load::run),
    #[cfg(feature = "registry")]
    ("registry_request", registry_request::run),
];
