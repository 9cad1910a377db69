//! Deletions a killed process leaves half done are finished by the next,
//! and blobs it named but never referenced are removed by the next.
//!
//! Deleting an image is one transaction for its rows, then file removals
//! (blobs, unpacked layers) that cannot be in the transaction. A process
//! killed between the two would leave files nothing references, which no
//! later `rmi` can reach ("No such image"). So the transaction also writes
//! what it dooms to `pending_deletions`; the files are removed, then the
//! rows. [`Store::open`](crate::Store::open) finishes what a killed process
//! left there — under the store lock exclusive, taken only if free at once
//! (a busy store is finished by a later command), and re-checking each
//! entry, as a pull may have named the same blob again in the meantime.
//!
//! The other half: a process names a blob (a config, a layer) before the
//! transaction that references it; killed in between, it leaves a blob
//! nothing references and no later command reaches (a repeated `commit`
//! makes another config). So every naming is first appended to the
//! process's journal `named-blobs/<pid>`; once that process is gone, the next
//! open removes the journal's blobs that nothing references (under the
//! exclusive lock, free at once, as above) and then the journal.

use std::io::Write;
use std::path::Path;

use rusqlite::{Transaction, params};
use strata_oci::Digest;

use crate::Store;
use crate::error::{Error, Result};
use crate::lock::StoreLock;

const BLOB: &str = "blob";
const LAYER: &str = "layer";

/// Records, in the deleting transaction, the blobs and unpacked layers
/// (chain IDs) whose files are to be removed after it commits.
pub(crate) fn journal(tx: &Transaction, blobs: &[Digest], chains: &[Digest]) -> Result<()> {
    let mut st = tx.prepare("INSERT OR IGNORE INTO pending_deletions (kind, digest) VALUES (?1, ?2)")?;
    for b in blobs {
        st.execute(params![BLOB, b.to_string()])?;
    }
    for c in chains {
        st.execute(params![LAYER, c.to_string()])?;
    }
    Ok(())
}

/// Where the journals of named blobs are, one file per process (its pid).
pub(crate) const NAMED_DIR: &str = "named-blobs";

/// Appends `digest` to this process's journal of named blobs.
pub(crate) fn journal_named(root: &Path, digest: &Digest) -> Result<()> {
    let dir = root.join(NAMED_DIR);
    let path = dir.join(std::process::id().to_string());
    let open = || std::fs::OpenOptions::new().create(true).append(true).open(&path);
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
            open()
        }
        r => r,
    }
    .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    f.write_all(format!("{digest}\n").as_bytes())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

impl Store {
    /// Removes the blobs that processes now gone named and nothing
    /// references, then their journals; returns how many blobs went.
    /// Nothing happens while another process holds the store lock.
    pub fn settle_named_blobs(&self) -> Result<usize> {
        let dead: Vec<_> = self.named_journals().into_iter().filter(|e| e.is_dead()).collect();
        if dead.is_empty() {
            return Ok(0);
        }
        let Some(_lock) = StoreLock::try_exclusive(&self.root)? else {
            return Ok(0);
        };
        let mut removed = 0;
        for e in dead {
            let text = std::fs::read_to_string(&e.path).unwrap_or_default();
            for line in text.lines() {
                // A torn last line (killed mid-write) names no blob.
                let Ok(d) = Digest::parse(line) else { continue };
                if self.has_blob(&d) && self.remove_unreferenced_blob(&d).is_ok() {
                    removed += 1;
                }
            }
            let _ = std::fs::remove_file(&e.path);
        }
        Ok(removed)
    }

    /// Forgets journaled deletions once their files are gone.
    pub(crate) fn deletions_done(&self, blobs: &[Digest], chains: &[Digest]) -> Result<()> {
        let mut st = self
            .conn
            .prepare("DELETE FROM pending_deletions WHERE kind=?1 AND digest=?2")?;
        for b in blobs {
            st.execute(params![BLOB, b.to_string()])?;
        }
        for c in chains {
            st.execute(params![LAYER, c.to_string()])?;
        }
        Ok(())
    }

    /// Deletions journaled and not finished: (blobs, chain IDs).
    pub fn pending_deletions(&self) -> Result<(Vec<Digest>, Vec<Digest>)> {
        let mut st = self
            .conn
            .prepare("SELECT kind, digest FROM pending_deletions ORDER BY kind, digest")?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (mut blobs, mut chains) = (Vec::new(), Vec::new());
        for (kind, d) in rows {
            // A row that is not a digest is dropped by the next finish.
            let Ok(d) = Digest::parse(&d) else { continue };
            if kind == LAYER { chains.push(d) } else { blobs.push(d) }
        }
        Ok((blobs, chains))
    }

    /// Finishes the deletions a killed process journaled; returns how many
    /// entries were settled. Nothing happens while another process holds
    /// the store lock.
    pub fn finish_deletions(&self) -> Result<usize> {
        let any: bool = self
            .conn
            .query_row("SELECT EXISTS(SELECT 1 FROM pending_deletions)", [], |r| r.get(0))?;
        if !any {
            return Ok(0);
        }
        let Some(_lock) = StoreLock::try_exclusive(&self.root)? else {
            return Ok(0);
        };
        let (blobs, chains) = self.pending_deletions()?;
        for b in &blobs {
            // Referenced again (pulled since): it stays.
            if self.has_blob(b) {
                let _ = self.remove_unreferenced_blob(b);
            }
        }
        for c in &chains {
            let used: bool = self.conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM image_layers WHERE chain_id=?1)",
                [c.to_string()],
                |r| r.get(0),
            )?;
            let dir = self.layers_dir().join(c.hex());
            if !used && dir.exists() {
                let _ = crate::leftovers::remove_layer_dir(&dir, c);
            }
        }
        self.conn.execute(
            "DELETE FROM pending_deletions WHERE kind NOT IN (?1, ?2)",
            params![BLOB, LAYER],
        )?;
        self.deletions_done(&blobs, &chains)?;
        Ok(blobs.len() + chains.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deleter killed after its transaction: the next open removes the
    /// doomed blob, keeps one that was referenced again, and forgets both.
    #[test]
    fn the_next_open_finishes_a_killed_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let doomed = store.put_blob(b"doomed").unwrap();
        let lock = StoreLock::exclusive(dir.path()).unwrap();
        let tx = store.conn.transaction().unwrap();
        journal(&tx, std::slice::from_ref(&doomed), &[]).unwrap();
        tx.commit().unwrap();
        // Busy store: nothing is done yet.
        assert_eq!(
            Store::open(dir.path()).unwrap().pending_deletions().unwrap().0,
            std::slice::from_ref(&doomed)
        );
        drop(lock);
        assert!(store.has_blob(&doomed));
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.has_blob(&doomed));
        assert_eq!(store.pending_deletions().unwrap(), (vec![], vec![]));
    }

    /// A process killed after naming a blob it never referenced: the next
    /// open removes the blob and the journal; a live process's stays.
    #[test]
    fn the_next_open_removes_blobs_a_dead_process_named_and_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mine = store.put_blob(b"named by this live process").unwrap();
        let left = store.put_blob(b"named by a dead one").unwrap();
        // This process's journal names both; a dead process's names `left`.
        let own = dir.path().join(NAMED_DIR).join(std::process::id().to_string());
        assert!(std::fs::read_to_string(&own).unwrap().contains(&mine.to_string()));
        let dead = dir.path().join(NAMED_DIR).join((u32::MAX - 7).to_string());
        std::fs::write(&dead, format!("{left}\nsha256:torn")).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.has_blob(&left));
        assert!(!dead.exists());
        assert!(store.has_blob(&mine) && own.exists());
        // The check does not take a journal for a leftover.
        assert!(store.work_entries().is_empty());
    }
}
