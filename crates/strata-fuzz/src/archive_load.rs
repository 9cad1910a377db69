//! `archive_load`: a docker-archive or oci-archive (plain, gzip or zstd),
//! loaded into a fresh store as `strata load` loads it; oracle: errors are
//! fine, panics are not, and `system check` finds the store clean after
//! (no image naming a missing blob, no blob without its record, nothing
//! left in the store's temporary area).

use std::io::Cursor;

use strata_image::CheckOptions;
use strata_store::Store;
use strata_transfer::archive::{ArchiveInput, ImageArchive};
use strata_transfer::store::StoreLocation;
use strata_transfer::{CopyOptions, PlatformChoice, copy, no_progress};

/// Loads every image of `archive` into `store`, as `strata load` does.
pub async fn load(store: &Store, archive: Vec<u8>) -> Result<(), String> {
    let input = ArchiveInput::Stream(Box::new(Cursor::new(archive)));
    let archive = ImageArchive::open(input, &store.tmp_dir())
        .await
        .map_err(|e| e.to_string())?;
    for image in archive.images().map_err(|e| e.to_string())? {
        for n in &image.names {
            let _ = strata_oci::Reference::parse(n);
        }
        let mut sink = StoreLocation::new(Store::open(store.root()).map_err(|e| e.to_string())?);
        sink.set_repo_digests(false);
        sink.set_unpack(false);
        let opts = CopyOptions {
            platforms: PlatformChoice::All,
            ..CopyOptions::default()
        };
        copy(
            &archive,
            &sink,
            Some(&image.reference),
            &image.names,
            &opts,
            no_progress(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn run(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("store")).expect("a fresh store opens");
    let loaded = strata_registry::block_on(load(&store, data.to_vec())).expect("a runtime");
    let report = strata_image::check(&store, &CheckOptions::default(), &[]).expect("the check runs");
    let problems: Vec<_> = report.problems.iter().map(|p| &p.message).collect();
    assert!(
        problems.is_empty(),
        "after a load ({loaded:?}) the store has problems: {problems:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// The harness loads a well-formed archive (so the fuzzer starts from
    /// inputs that reach the copy into the store, not only refusals).
    #[test]
    fn a_docker_archive_loads() {
        let layer = tar(&[("hello", b"hello\n")]);
        let diff = strata_oci::Digest::sha256_of(&layer);
        let config =
            format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#);
        let cid = strata_oci::Digest::sha256_of(config.as_bytes());
        let manifest = format!(
            r#"[{{"Config":"{}.json","RepoTags":["fuzz:latest"],"Layers":["{}/layer.tar"]}}]"#,
            cid.hex(),
            diff.hex()
        );
        let archive = tar(&[
            ("manifest.json", manifest.as_bytes()),
            (&format!("{}.json", cid.hex()), config.as_bytes()),
            (&format!("{}/layer.tar", diff.hex()), &layer),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        strata_registry::block_on(load(&store, archive.clone()))
            .unwrap()
            .unwrap();
        run(&archive);
    }
}
