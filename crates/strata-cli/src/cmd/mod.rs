pub mod build;
pub mod containers;
pub mod distribution;
pub mod images;
pub mod system;

use std::path::Path;

use anyhow::{Context, Result};
use strata_store::Store;

pub fn open_store(root: &Path) -> Result<Store> {
    Store::open(root).with_context(|| format!("opening the store at {}", root.display()))
}
