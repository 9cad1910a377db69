//! What the image tests share.

use strata_image::{ImportOptions, ImportSource, Imported};
use strata_oci::Reference;
use strata_store::Store;

/// A new store holding one imported image (a root with `/etc/hostname`)
/// tagged `reference`; the directory holds the store.
pub fn store_with_image(reference: &str) -> (tempfile::TempDir, Store, Imported) {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hostname"), "x\n").unwrap();
    let mut store = Store::open(&dir.path().join("store")).unwrap();
    let opts = ImportOptions {
        reference: Some(Reference::parse(reference).unwrap()),
        ..Default::default()
    };
    let imported = strata_image::import(&mut store, ImportSource::Dir(rootfs), &opts).unwrap();
    (dir, store, imported)
}
