//! An image a container uses: `rmi` refuses without -f, untags with -f and
//! leaves it dangling; `image prune -a` keeps it.

mod common;

use strata_image::RemoveEvent;
use strata_store::Store;

fn setup() -> (tempfile::TempDir, Store, String) {
    let (dir, store, imported) = common::store_with_image("app:1");
    let id = imported.id.to_string();
    store
        .conn()
        .execute(
            "INSERT INTO containers (id, name, image_id, image_ref, created, config) VALUES ('c0ffee0000000000', 'web', ?1, 'app:1', '2024-01-01T00:00:00Z', '{}')",
            [&id],
        )
        .unwrap();
    (dir, store, id)
}

#[test]
fn rmi_refuses_then_untags_with_force() {
    let (_d, mut store, id) = setup();
    let err = strata_image::remove_image(&mut store, "app:1", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must force") && err.contains("c0ffee000000"), "{err}");
    let err = strata_image::remove_image(&mut store, &id[7..19], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("being used by container"), "{err}");
    let events = strata_image::remove_image(&mut store, "app:1", true).unwrap();
    assert_eq!(events, vec![RemoveEvent::Untagged("app:1".into())]);
    let images = store.list_images().unwrap();
    assert_eq!(images.len(), 1);
    assert!(images[0].is_dangling(), "kept, dangling");
    // prune -a keeps images in use.
    let report = strata_image::prune(&mut store, true).unwrap();
    assert!(report.events.is_empty());
    assert_eq!(store.list_images().unwrap().len(), 1);
}

/// An image a container is being made from (a lease, taken before the
/// container's row exists) is in use too: rmi refuses without -f, untags
/// with -f and keeps it; prune -a keeps it; once released, prune removes it.
#[test]
fn a_leased_image_is_in_use() {
    let (_d, mut store, imported) = common::store_with_image("app:2");
    let id = imported.id.clone();
    // `Lease` borrows the store: a second handle holds it, as another process would.
    let other = Store::open(store.root()).unwrap();
    let lease = other.lease_image(&id).unwrap();
    let err = strata_image::remove_image(&mut store, "app:2", false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must force") && err.contains("being created"), "{err}");
    let err = strata_image::remove_image(&mut store, &id.hex()[..12], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("being used by a container being created"), "{err}");
    let err = store.delete_image(&id).unwrap_err().to_string();
    assert!(err.contains("being created"), "{err}");
    let events = strata_image::remove_image(&mut store, "app:2", true).unwrap();
    assert_eq!(events, vec![RemoveEvent::Untagged("app:2".into())]);
    let report = strata_image::prune(&mut store, true).unwrap();
    assert!(report.events.is_empty(), "{:?}", report.events);
    assert_eq!(store.list_images().unwrap().len(), 1);
    lease.release().unwrap();
    let report = strata_image::prune(&mut store, false).unwrap();
    assert_eq!(report.events, vec![RemoveEvent::Deleted(id)]);
    assert!(store.list_images().unwrap().is_empty());
}
