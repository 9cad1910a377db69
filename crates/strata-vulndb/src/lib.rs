//! strata-vulndb — the offline OSV vulnerability database of `strata scan`.
//!
//! Owns `<store root>/vulndb/osv.sqlite` (SQLite, WAL) and nothing else: no
//! other crate reads its tables. It imports OSV records (bulk-export zips as
//! OSV publishes them per ecosystem, directories of OSV JSON such as a
//! checkout of an advisory repository, single JSON files), downloads bulk
//! exports for `db update`, reports the database's sources and age, scores
//! CVSS v3.x / v4.0 vectors, and answers "which advisories name this package"
//! with OSV's range evaluation ([`Advisory::affects`]).
//!
//! It never compares versions itself (the caller passes each ecosystem's
//! comparator), never reads images or the image store, never touches the
//! network except in [`Db::update`], and never lets one bad record stop an
//! import: a malformed, oversized (over [`MAX_RECORD_BYTES`]) or duplicate
//! record is skipped and counted. YAML records are not read.

mod advisory;
pub mod cvss;
mod cvss4_table;
mod import;
mod osv;
mod store;
mod update;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use advisory::{Advisory, Affected, AffectedPackage, VersionCmp};
pub use cvss::{CvssVersion, Rating};
pub use import::{ImportReport, MAX_SKIPPED_LISTED, Progress, SourceReport};
pub use osv::{
    Event, EventKind, MAX_DETAILS_BYTES, MAX_RECORD_BYTES, Range, Severity, normalize_package, split_ecosystem,
};
pub use store::{SourceStatus, Status};
pub use update::{MAX_DOWNLOAD_BYTES, OSV_BASE_URL, export_url};

/// A database older than this is stale (`db status` warns).
pub const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The database file under a store root.
pub fn db_path(store_root: &Path) -> PathBuf {
    store_root.join("vulndb").join("osv.sqlite")
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vulnerability database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    /// A path given to import that is missing or of a kind not read.
    #[error("{source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("{} was written by a newer strata (schema {version})", path.display())]
    NewerSchema { path: PathBuf, version: i64 },
    #[error("vulnerability database is corrupt: {0}")]
    Corrupt(String),
    #[error("nothing to update: no ecosystem given and none in the database")]
    NothingToUpdate,
}

pub type Result<T> = std::result::Result<T, Error>;

/// The OSV database of one store.
pub struct Db {
    conn: rusqlite::Connection,
    path: PathBuf,
    dir: PathBuf,
}

impl Db {
    /// Opens (creating if needed) `<store_root>/vulndb/osv.sqlite`.
    pub fn open(store_root: &Path) -> Result<Db> {
        Db::open_file(&db_path(store_root))
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_file(path: &Path) -> Result<Db> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|error| Error::Io {
            path: dir.clone(),
            error,
        })?;
        let conn = store::open(path)?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Imports each path — an OSV bulk-export `.zip`, a directory (every
    /// `*.json` below it, hidden directories skipped) or a `.json` file
    /// holding a record, an array of records or an OSV API answer
    /// (`{"vulns": […]}`) — each in one transaction that replaces what an
    /// earlier import of the same path stored.
    ///
    /// Every path is checked first: a missing one, or one of another kind,
    /// is an [`Error::Source`] before anything is written. Bad records are
    /// skipped and listed in the report; a source that turns out unreadable
    /// (a corrupt zip) is listed in `failed` and leaves the database as it
    /// was for that source.
    pub fn import(&mut self, paths: &[PathBuf], progress: &mut dyn FnMut(&Progress<'_>)) -> Result<ImportReport> {
        let sources = paths.iter().map(|p| import::classify(p)).collect::<Result<Vec<_>>>()?;
        let mut report = ImportReport::default();
        for (path, kind) in sources {
            let meta = store::SourceMeta {
                name: path.display().to_string(),
                kind: kind.as_str(),
                ..Default::default()
            };
            let r = import::import_source(&mut self.conn, &path, kind, &meta, progress)?;
            report.merge(r);
        }
        Ok(report)
    }

    /// Removes a source (by the name [`Db::status`] shows) and its records;
    /// false when there is none.
    pub fn remove_source(&mut self, name: &str) -> Result<bool> {
        store::remove_source(&mut self.conn, name)
    }

    /// Sources, record counts per ecosystem, and age.
    pub fn status(&self) -> Result<Status> {
        store::status(&self.conn, &self.path, STALE_AFTER)
    }

    /// The ecosystems (base names, `"Debian"`) some record names.
    pub fn ecosystems(&self) -> Result<Vec<String>> {
        store::ecosystems(&self.conn)
    }

    /// The advisories that name `package` in `ecosystem`, each with only the
    /// `affected` entries for that package, sorted by id. `ecosystem` is an
    /// OSV name: a base (`"Debian"`: every release) or base and release
    /// (`"Debian:12"`: that release, and entries without one). The package
    /// name is normalized as the database stores it ([`normalize_package`]).
    /// Withdrawn records are included (see [`Advisory::withdrawn`]). When
    /// several sources carry one id, the record modified last is returned.
    pub fn advisories_for(&self, ecosystem: &str, package: &str) -> Result<Vec<Advisory>> {
        store::advisories_for(&self.conn, ecosystem, package)
    }

    /// The records with this id, or with it as an alias, with all their
    /// `affected` entries (newest per id).
    pub fn advisory(&self, id_or_alias: &str) -> Result<Vec<Advisory>> {
        store::advisory(&self.conn, id_or_alias)
    }
}
