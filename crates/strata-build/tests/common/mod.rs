//! Finds the shared conformance corpus (never copied into the project).

use std::path::PathBuf;

/// The conformance directory: `$STRATA_CONFORMANCE_DIR` (relative to this crate if relative),
/// else `../../../shared/conformance` from this crate, else `/work/shared/conformance`.
/// `None` (after printing why) when none of them exists.
pub fn conformance_dir(sub: &str) -> Option<PathBuf> {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("STRATA_CONFORMANCE_DIR") {
        candidates.push(crate_dir.join(dir));
    }
    candidates.push(crate_dir.join("../../../shared/conformance"));
    candidates.push(PathBuf::from("/work/shared/conformance"));
    for dir in &candidates {
        let dir = dir.join(sub);
        if dir.is_dir() {
            return Some(dir);
        }
    }
    let tried: Vec<String> = candidates.iter().map(|d| d.join(sub).display().to_string()).collect();
    println!("skipped: conformance corpus not found at {}", tried.join(" or "));
    None
}
