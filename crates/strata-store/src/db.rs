//! Opening the metadata database and its schema.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};

const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS images (
    id          TEXT PRIMARY KEY,      -- config digest
    created     TEXT,                  -- from the config
    added_at    INTEGER NOT NULL,      -- unix seconds, when this store got it
    size        INTEGER NOT NULL,      -- sum of uncompressed layer sizes
    os          TEXT NOT NULL,
    arch        TEXT NOT NULL,
    variant     TEXT
);
CREATE TABLE IF NOT EXISTS manifests (
    digest      TEXT PRIMARY KEY,
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS manifests_image ON manifests(image_id);
CREATE TABLE IF NOT EXISTS tags (
    repo        TEXT NOT NULL,         -- fully qualified: docker.io/library/busybox
    tag         TEXT NOT NULL,
    manifest    TEXT NOT NULL REFERENCES manifests(digest),
    PRIMARY KEY (repo, tag)
);
CREATE INDEX IF NOT EXISTS tags_manifest ON tags(manifest);
CREATE TABLE IF NOT EXISTS repo_digests (
    repo        TEXT NOT NULL,
    manifest    TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    PRIMARY KEY (repo, manifest)
);
CREATE TABLE IF NOT EXISTS layers (
    diff_id     TEXT PRIMARY KEY,
    diff_size   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layer_blobs (
    digest      TEXT PRIMARY KEY,      -- a compressed (or plain) form of a layer
    diff_id     TEXT NOT NULL REFERENCES layers(diff_id),
    media_type  TEXT NOT NULL,
    size        INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS layer_blobs_diff ON layer_blobs(diff_id);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    diff_id     TEXT NOT NULL,
    chain_id    TEXT NOT NULL,
    PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_diff ON image_layers(diff_id);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS containers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    image_id    TEXT NOT NULL,
    image_ref   TEXT NOT NULL,
    created     TEXT NOT NULL,
    config      TEXT NOT NULL          -- JSON owned by the container layer above
);
CREATE INDEX IF NOT EXISTS containers_image ON containers(image_id);
-- The platforms of a stored index (a multi-platform image): each entry's
-- manifest, present in the store (a manifests row) or not.
CREATE TABLE IF NOT EXISTS index_members (
    index_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    manifest     TEXT NOT NULL,
    media_type   TEXT NOT NULL,
    size         INTEGER NOT NULL,
    platform     TEXT NOT NULL,         -- os/arch[/variant]
    PRIMARY KEY (index_digest, position)
);
CREATE INDEX IF NOT EXISTS index_members_manifest ON index_members(manifest);
-- Images a process is making a container from (resolved, not yet recorded
-- in `containers`): deleters skip them while the process lives.
CREATE TABLE IF NOT EXISTS leases (
    id          TEXT PRIMARY KEY,
    image_id    TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL       -- unix milliseconds
);
CREATE INDEX IF NOT EXISTS leases_image ON leases(image_id);
-- Files a deletion dooms, written in its transaction and removed once the
-- files are gone: what a killed deleter left, the next process finishes.
CREATE TABLE IF NOT EXISTS pending_deletions (
    kind        TEXT NOT NULL,         -- blob | layer
    digest      TEXT NOT NULL,         -- blob digest or chain ID
    PRIMARY KEY (kind, digest)
);
"#;

/// Opens the database of a store on a read-only filesystem: nothing is
/// written (no journal mode, no schema). SQLite reads a WAL database
/// read-only when its `-shm` file exists; without it (the last writer
/// closed cleanly) the file is opened `immutable`, as nothing can change it.
pub(crate) fn open_read_only(path: &Path, root: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let read_only = || -> Result<Connection> {
        let conn = Connection::open_with_flags(path, flags)?;
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
        Ok(conn)
    };
    let conn = match read_only() {
        Ok(c) => c,
        Err(_) => {
            let uri = format!("file:{}?immutable=1", uri_path(path));
            Connection::open_with_flags(uri, flags)?
        }
    };
    conn.busy_timeout(Duration::from_secs(60))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        return Err(Error::ReadOnly {
            root: root.to_path_buf(),
            what: format!("its metadata database (schema {version}) needs an upgrade to schema {SCHEMA_VERSION}"),
        });
    }
    Ok(conn)
}

/// `path` with the characters a URI gives a meaning to escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(*b as char),
        }
    }
    out
}

/// How long an open waits for other processes (SQLite's busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn open(path: &Path) -> Result<Connection> {
    // SQLite answers some lock conflicts with SQLITE_BUSY without asking the
    // busy handler (a new database that several first commands turn to WAL
    // at once: the rootless race test met "database is locked"); the open
    // is then tried again, within the same timeout.
    let start = std::time::Instant::now();
    loop {
        match open_once(path) {
            Err(Error::Db(rusqlite::Error::SqliteFailure(e, _)))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

fn open_once(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers proceed while one writer commits; NORMAL sync is
    // durable across process crashes, which is what several CLIs need.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's database opened read-only (as on a read-only filesystem):
    /// it reads, refuses writes with SQLITE_READONLY, and reads again when
    /// the WAL's `-shm` is gone (immutable).
    #[test]
    fn read_only_database_reads_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strata.db");
        {
            let conn = open(&path).unwrap();
            conn.execute("INSERT INTO layers (diff_id, diff_size) VALUES ('sha256:00', 7)", [])
                .unwrap();
        }
        let count = |c: &Connection| -> i64 { c.query_row("SELECT count(*) FROM layers", [], |r| r.get(0)).unwrap() };
        let ro = open_read_only(&path, dir.path()).unwrap();
        assert_eq!(count(&ro), 1);
        let err = ro
            .execute("INSERT INTO layers (diff_id, diff_size) VALUES ('sha256:01', 1)", [])
            .unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly));
        drop(ro);
        let _ = std::fs::remove_file(dir.path().join("strata.db-shm"));
        let ro = open_read_only(&path, dir.path()).unwrap();
        assert_eq!(count(&ro), 1);
    }

    #[test]
    fn uri_paths_escape_what_a_uri_means() {
        assert_eq!(uri_path(Path::new("/a/b?c#d%e")), "/a/b%3Fc%23d%25e");
    }

    /// First opens of a new database racing (see [`open`]'s retry).
    #[test]
    fn racing_first_opens_of_a_new_database_all_succeed() {
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("strata.db");
            let barrier = std::sync::Barrier::new(8);
            std::thread::scope(|s| {
                let opens: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            open(&path).map(drop)
                        })
                    })
                    .collect();
                for o in opens {
                    if let Err(e) = o.join().unwrap() {
                        panic!("round {round}: {e}");
                    }
                }
            });
        }
    }
}
