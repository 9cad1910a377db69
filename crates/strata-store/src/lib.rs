//! strata-store: the local image store — blobs by digest, the SQLite
//! metadata database (tags, images, layers, containers), the store lock,
//! leases on images a container is being made from, and the integrity check.
//!
//! It owns the invariants "a name under `blobs/` holds exactly its digest's
//! bytes" and "every change to names and relations is one transaction". It
//! knows nothing of tar streams or HTTP and never interprets layer content.

mod blobs;
mod containers;
mod db;
mod deletions;
mod error;
mod images;
mod indexes;
mod integrity;
mod leases;
mod leftovers;
mod lock;

pub use blobs::BlobWriter;
pub use containers::ContainerRow;
pub use error::{Error, Result};
pub use images::{ContainerRef, ImageRecord, LayerRecord, NewImage, RemovedImage, RemovedLayers, TagRef};
pub use indexes::IndexMember;
pub use integrity::BlobReference;
pub use leases::Lease;
pub use leftovers::{LeftoverArea, WorkEntry, is_work_name, mounts_under, remove_layer_dir, remove_work_entry};
pub use lock::StoreLock;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// An open store. Cheap to open; one per process is typical.
pub struct Store {
    root: PathBuf,
    conn: Connection,
    read_only: bool,
}

impl Store {
    /// `/var/lib/strata` for root, `$XDG_DATA_HOME/strata` (or
    /// `~/.local/share/strata`) otherwise, also inside the rootless user
    /// namespace (where the effective uid is 0).
    pub fn default_root() -> PathBuf {
        if strata_rootless::privileged() {
            return PathBuf::from("/var/lib/strata");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("strata");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/strata")
    }

    /// Opens (creating when needed) the store at `root`, removing what
    /// killed processes left in it (see [`Store::remove_dead_work`]).
    ///
    /// A store on a read-only filesystem opens read-only (see
    /// [`Store::is_read_only`]) and nothing is tidied.
    pub fn open(root: &Path) -> Result<Store> {
        let store = Self::open_as_is(root)?;
        if store.read_only {
            return Ok(store);
        }
        // What a killed process was writing is garbage once it is gone.
        store.remove_dead_work();
        // A deletion a killed process left half done.
        let _ = store.finish_deletions();
        // Blobs a killed process named and never referenced.
        let _ = store.settle_named_blobs();
        Ok(store)
    }

    /// Opens the store without tidying anything (for the store check, which
    /// reports leftovers before removing them).
    pub fn open_as_is(root: &Path) -> Result<Store> {
        if on_read_only_fs(root) {
            error::set_read_only_root(root);
            let conn = db::open_read_only(&root.join("strata.db"), root)?;
            return Ok(Store {
                root: root.to_path_buf(),
                conn,
                read_only: true,
            });
        }
        for dir in ["blobs/sha256", "blobs/sha512", "tmp", "layers", "containers"] {
            let p = root.join(dir);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
        }
        let conn = db::open(&root.join("strata.db"))?;
        restrict_permissions(root)?;
        Ok(Store {
            root: root.to_path_buf(),
            conn,
            read_only: false,
        })
    }

    /// Another connection to this open store, for a part of the same
    /// command that needs its own (a copy's sink beside the caller): the
    /// directories exist and the store was tidied when it was opened.
    pub fn another_connection(&self) -> Result<Store> {
        if self.read_only {
            return Store::open(&self.root);
        }
        Ok(Store {
            root: self.root.clone(),
            conn: db::open(&self.root.join("strata.db"))?,
            read_only: false,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the store is on a read-only filesystem (mounted `ro`): it
    /// was opened read-only, every read works and every write fails with
    /// [`Error::ReadOnly`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// [`Error::ReadOnly`] for `what` on a read-only store, for writers
    /// that would otherwise fail deeper down.
    pub fn check_writable(&self, what: &str) -> Result<()> {
        match self.read_only {
            true => Err(Error::ReadOnly {
                root: self.root.clone(),
                what: format!("cannot {what}"),
            }),
            false => Ok(()),
        }
    }

    /// Directory for temporary files on the store's filesystem (so renames are atomic).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Top-level directories that hold image or container content: only the
    /// store's owner may enter them (see [`restrict_permissions`]).
    pub const PRIVATE_DIRS: [&'static str; 6] = ["blobs", "tmp", "layers", "containers", "volumes", "build-mounts"];

    /// The raw connection, for crates that keep their own tables (build cache, containers).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// Whether the store at `root` (an existing one) is on a filesystem
/// mounted read-only.
fn on_read_only_fs(root: &Path) -> bool {
    root.join("strata.db").exists()
        && rustix::fs::statvfs(root).is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// The store root is 0711 and what holds content is 0700, tightened on every
/// open (CVE-2021-41091): unpacked layers keep their setuid binaries and
/// device nodes, and a running container's root is under `containers/`; a
/// local user who could walk there would run them as their owner. The
/// metadata database is the owner's only too. Costs a few `stat`s per open.
fn restrict_permissions(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| -> Result<()> {
        let md = match std::fs::symlink_metadata(p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        if md.permissions().mode() & 0o7777 != mode && !md.file_type().is_symlink() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(format!("restricting the permissions of {}", p.display()), e))?;
        }
        Ok(())
    };
    set(root, 0o711)?;
    for dir in Store::PRIVATE_DIRS {
        set(&root.join(dir), 0o700)?;
    }
    for db in ["strata.db", "strata.db-wal", "strata.db-shm"] {
        set(&root.join(db), 0o600)?;
    }
    Ok(())
}
