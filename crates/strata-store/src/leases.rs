//! Leases, as containerd's: a process making a container from an image
//! records that it uses the image from the moment it resolves the name to
//! the moment the container's row exists (the row then keeps the image, as
//! `rmi` and `prune` respect). Without it, `image prune -a` could delete the
//! image — its blobs and its unpacked layers — while the container's root
//! was being unpacked or mounted on them: a run started on a partial root.
//!
//! The protocol: the store lock is held shared from resolving the name to
//! [`Store::lease_image`] (a short step: no unpacking under it). Deleters
//! ([`Store::delete_image`], `image prune`, `rmi`) hold it exclusive while
//! they decide and delete, and skip or refuse a leased image. So a deleter
//! either ran before (the name no longer resolves: Docker's "No such
//! image") or sees the lease; unpacking and mounting then run under the
//! lease alone, and containers are made concurrently with each other.
//!
//! A lease of a process that is gone (killed midway) holds nothing: each
//! records its process's pid and when it was taken, and a pid reused by a
//! process that started later does not keep it alive (the rule of the
//! store's leftovers, see [`crate::leftovers`]). Dead leases are removed
//! when leases are read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::params;
use strata_oci::Digest;

use crate::Store;
use crate::error::{Error, Result};

/// A lease on an image, released when dropped (or by [`Lease::release`]).
pub struct Lease<'a> {
    store: &'a Store,
    id: String,
    image: Digest,
    released: bool,
}

impl Lease<'_> {
    pub fn image(&self) -> &Digest {
        &self.image
    }

    /// Ends the lease (once the container's row holds the image).
    pub fn release(mut self) -> Result<()> {
        self.released = true;
        self.store.conn.execute("DELETE FROM leases WHERE id=?1", [&self.id])?;
        Ok(())
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.released {
            // Best effort: a row left behind is a dead lease once this
            // process exits.
            let _ = self.store.conn.execute("DELETE FROM leases WHERE id=?1", [&self.id]);
        }
    }
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Store {
    /// Takes a lease on image `image` for this process. The caller holds the
    /// store lock shared from resolving the image to here (see the module
    /// documentation), so the image is still there.
    pub fn lease_image(&self, image: &Digest) -> Result<Lease<'_>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let now = unix_ms(SystemTime::now());
        let id = format!("{pid}-{now}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.conn.execute(
            "INSERT INTO leases (id, image_id, pid, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![id, image.to_string(), pid, now],
        )?;
        Ok(Lease {
            store: self,
            id,
            image: image.clone(),
            released: false,
        })
    }

    /// The images under a live lease, each with a leaseholder's pid. Leases
    /// whose process is gone are removed (best effort) and left out.
    pub fn leased_images(&self) -> Result<BTreeMap<Digest, u32>> {
        let rows: Vec<(String, String, u32, i64)> = {
            let mut st = self.conn.prepare("SELECT id, image_id, pid, created_ms FROM leases")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let mut out = BTreeMap::new();
        for (id, image, pid, created_ms) in rows {
            let taken = UNIX_EPOCH + Duration::from_millis(created_ms.max(0) as u64);
            if crate::leftovers::process_made(pid, taken) {
                let image = Digest::parse(&image).map_err(|e| Error::Invalid(format!("corrupt metadata: {e}")))?;
                out.insert(image, pid);
            } else {
                let _ = self.conn.execute("DELETE FROM leases WHERE id=?1", [&id]);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    #[test]
    fn leases_hold_while_their_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.lease_image(&digest(1)).unwrap();
        let b = store.lease_image(&digest(2)).unwrap();
        let leased = store.leased_images().unwrap();
        assert_eq!(leased.get(&digest(1)), Some(&std::process::id()));
        assert!(leased.contains_key(&digest(2)));
        a.release().unwrap();
        drop(b);
        assert!(store.leased_images().unwrap().is_empty());
        // A lease of a process that has exited holds nothing, and goes.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        store
            .conn
            .execute(
                "INSERT INTO leases (id, image_id, pid, created_ms) VALUES ('x', ?1, ?2, ?3)",
                params![digest(3).to_string(), dead, unix_ms(SystemTime::now())],
            )
            .unwrap();
        // pid 1 lives, but started after this lease was "taken" (in 1970):
        // a reused pid.
        store
            .conn
            .execute(
                "INSERT INTO leases (id, image_id, pid, created_ms) VALUES ('y', ?1, 1, 0)",
                [digest(4).to_string()],
            )
            .unwrap();
        assert!(store.leased_images().unwrap().is_empty());
        let n: i64 = store
            .conn
            .query_row("SELECT count(*) FROM leases", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
