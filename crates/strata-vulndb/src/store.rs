//! The SQLite file: schema, writing one source in one transaction, reading
//! advisories and status back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::advisory::{Advisory, AffectedPackage};
use crate::cvss::Rating;
use crate::osv::{Event, EventKind, Parsed, Range, Severity, normalize_package, split_ecosystem};
use crate::{Error, Result};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sources (
    sid             INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,   -- canonical path, or the URL
    kind            TEXT NOT NULL,          -- zip, directory, file, url
    imported_at     INTEGER NOT NULL,       -- unix seconds of the last import or check
    records         INTEGER NOT NULL,
    withdrawn       INTEGER NOT NULL,
    skipped         INTEGER NOT NULL,
    newest_modified TEXT,
    etag            TEXT,                   -- HTTP validators of a downloaded zip
    last_modified   TEXT
);
CREATE TABLE IF NOT EXISTS records (
    rid               INTEGER PRIMARY KEY,
    sid               INTEGER NOT NULL,
    id                TEXT NOT NULL,
    modified          TEXT NOT NULL,
    published         TEXT,
    withdrawn         TEXT,
    summary           TEXT,
    details           TEXT,
    details_truncated INTEGER NOT NULL,
    severity_source   TEXT,                 -- CVSS_V3, CVSS_V4, database_specific, ...
    severity_vector   TEXT,                 -- the vector, or the database's word
    severity_score    REAL,
    severity_rating   TEXT
);
CREATE INDEX IF NOT EXISTS records_sid ON records(sid);
CREATE INDEX IF NOT EXISTS records_id ON records(id);
CREATE TABLE IF NOT EXISTS aliases (
    rid   INTEGER NOT NULL,
    alias TEXT NOT NULL,
    PRIMARY KEY (rid, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS affected (
    aid       INTEGER PRIMARY KEY,
    rid       INTEGER NOT NULL,
    ecosystem TEXT NOT NULL,                -- base, spelled as OSV does: Debian
    release   TEXT NOT NULL,                -- after the colon: 12; '' if none
    package   TEXT NOT NULL,                -- normalized for lookup (PEP 503 for PyPI)
    name      TEXT NOT NULL,                -- as the record writes it
    purl      TEXT,
    versions  TEXT                          -- the explicit versions list, one per line
);
CREATE INDEX IF NOT EXISTS affected_package ON affected(ecosystem, package);
CREATE INDEX IF NOT EXISTS affected_rid ON affected(rid);
CREATE TABLE IF NOT EXISTS ranges (
    aid  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    type TEXT NOT NULL,                     -- SEMVER or ECOSYSTEM (GIT is not kept)
    PRIMARY KEY (aid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    aid       INTEGER NOT NULL,
    range_seq INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    kind      INTEGER NOT NULL,             -- 0 introduced, 1 fixed, 2 last_affected, 3 limit
    version   TEXT NOT NULL,
    PRIMARY KEY (aid, range_seq, seq)
) WITHOUT ROWID;
"#;

pub(crate) fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // 64 MiB of page cache (used only as needed): an import of 100,000
    // records touches its indexes all over; the default 2 MiB thrashes.
    conn.pragma_update(None, "cache_size", -65536)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            version,
        });
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))?;
    }
    Ok(conn)
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn to_time(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

/// What identifies a source and how it was fetched.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceMeta {
    pub name: String,
    pub kind: &'static str,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Counts of one source's import.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts {
    pub records: u64,
    pub withdrawn: u64,
    pub skipped: u64,
    pub replaced: u64,
}

/// One source being written: old records gone, new ones going in, all in one
/// transaction that [`SourceWriter::commit`] ends (dropping it rolls back).
pub(crate) struct SourceWriter<'c> {
    tx: Transaction<'c>,
    sid: i64,
    seen: HashSet<String>,
    newest: Option<String>,
    pub counts: Counts,
}

impl<'c> SourceWriter<'c> {
    pub fn begin(conn: &'c mut Connection, meta: &SourceMeta) -> Result<SourceWriter<'c>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old: Option<(i64, i64)> = tx
            .query_row("SELECT sid, records FROM sources WHERE name = ?1", [&meta.name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let mut counts = Counts::default();
        let sid = match old {
            Some((sid, records)) => {
                counts.replaced = records as u64;
                delete_source_data(&tx, sid)?;
                sid
            }
            None => {
                tx.execute(
                    "INSERT INTO sources (name, kind, imported_at, records, withdrawn, skipped)
                     VALUES (?1, ?2, ?3, 0, 0, 0)",
                    params![meta.name, meta.kind, now()],
                )?;
                tx.last_insert_rowid()
            }
        };
        Ok(SourceWriter {
            tx,
            sid,
            seen: HashSet::new(),
            newest: None,
            counts,
        })
    }

    /// Adds one record; `Err(reason)` when it is skipped (a second record
    /// with an id this source already gave).
    pub fn add(&mut self, p: &Parsed) -> Result<std::result::Result<(), String>> {
        if !self.seen.insert(p.id.clone()) {
            return Ok(Err(format!("{}: a second record with this id", p.id)));
        }
        let tx = &self.tx;
        let sev = p.severity.as_ref();
        tx.prepare_cached(
            "INSERT INTO records (sid, id, modified, published, withdrawn, summary, details,
                details_truncated, severity_source, severity_vector, severity_score, severity_rating)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            self.sid,
            p.id,
            p.modified,
            p.published,
            p.withdrawn,
            p.summary,
            p.details,
            p.details_truncated,
            sev.map(|s| &s.source),
            sev.map(|s| &s.vector),
            sev.and_then(|s| s.score),
            sev.map(|s| s.rating.as_str()),
        ])?;
        let rid = tx.last_insert_rowid();
        let mut alias = tx.prepare_cached("INSERT OR IGNORE INTO aliases (rid, alias) VALUES (?1, ?2)")?;
        for a in &p.aliases {
            alias.execute(params![rid, a])?;
        }
        let mut affected = tx.prepare_cached(
            "INSERT INTO affected (rid, ecosystem, release, package, name, purl, versions)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let mut range = tx.prepare_cached("INSERT INTO ranges (aid, seq, type) VALUES (?1, ?2, ?3)")?;
        let mut event =
            tx.prepare_cached("INSERT INTO events (aid, range_seq, seq, kind, version) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for a in &p.affected {
            let versions = (!a.versions.is_empty()).then_some(&a.versions);
            affected.execute(params![
                rid,
                a.ecosystem,
                a.release,
                a.package,
                a.name,
                a.purl,
                versions
            ])?;
            let aid = tx.last_insert_rowid();
            for (ri, r) in a.ranges.iter().enumerate() {
                range.execute(params![aid, ri as i64, r.kind])?;
                for (ei, e) in r.events.iter().enumerate() {
                    event.execute(params![aid, ri as i64, ei as i64, e.kind.code(), e.version])?;
                }
            }
        }
        self.counts.records += 1;
        if p.withdrawn.is_some() {
            self.counts.withdrawn += 1;
        }
        if self.newest.as_deref().is_none_or(|n| p.modified.as_str() > n) {
            self.newest = Some(p.modified.clone());
        }
        Ok(Ok(()))
    }

    pub fn commit(self, meta: &SourceMeta) -> Result<Counts> {
        self.tx.execute(
            "UPDATE sources SET kind = ?2, imported_at = ?3, records = ?4, withdrawn = ?5,
                skipped = ?6, newest_modified = ?7, etag = ?8, last_modified = ?9
             WHERE sid = ?1",
            params![
                self.sid,
                meta.kind,
                now(),
                self.counts.records as i64,
                self.counts.withdrawn as i64,
                self.counts.skipped as i64,
                self.newest,
                meta.etag,
                meta.last_modified,
            ],
        )?;
        self.tx.commit()?;
        Ok(self.counts)
    }
}

fn delete_source_data(tx: &Transaction<'_>, sid: i64) -> Result<()> {
    const AIDS: &str = "SELECT aid FROM affected WHERE rid IN (SELECT rid FROM records WHERE sid = ?1)";
    for table in ["events", "ranges"] {
        tx.execute(&format!("DELETE FROM {table} WHERE aid IN ({AIDS})"), [sid])?;
    }
    tx.execute(
        "DELETE FROM affected WHERE rid IN (SELECT rid FROM records WHERE sid = ?1)",
        [sid],
    )?;
    tx.execute(
        "DELETE FROM aliases WHERE rid IN (SELECT rid FROM records WHERE sid = ?1)",
        [sid],
    )?;
    tx.execute("DELETE FROM records WHERE sid = ?1", [sid])?;
    Ok(())
}

/// Removes a source and its records; false when there was none by that name.
pub(crate) fn remove_source(conn: &mut Connection, name: &str) -> Result<bool> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let sid: Option<i64> = tx
        .query_row("SELECT sid FROM sources WHERE name = ?1", [name], |r| r.get(0))
        .optional()?;
    let Some(sid) = sid else { return Ok(false) };
    delete_source_data(&tx, sid)?;
    tx.execute("DELETE FROM sources WHERE sid = ?1", [sid])?;
    tx.commit()?;
    Ok(true)
}

/// Marks a source as checked now without changing its records (an HTTP 304).
pub(crate) fn touch_source(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "UPDATE sources SET imported_at = ?2 WHERE name = ?1",
        params![name, now()],
    )?;
    Ok(())
}

pub(crate) fn source_validators(conn: &Connection, name: &str) -> Result<Option<(Option<String>, Option<String>)>> {
    Ok(conn
        .query_row("SELECT etag, last_modified FROM sources WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// One source in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// The canonical path of the file or directory, or the URL.
    pub name: String,
    /// `"zip"`, `"directory"`, `"file"` or `"url"`.
    pub kind: String,
    /// When it was last imported (or, for a URL, last found unchanged).
    pub imported_at: SystemTime,
    pub records: u64,
    pub withdrawn: u64,
    pub skipped: u64,
    /// The newest `modified` among its records (RFC 3339, as written).
    pub newest_modified: Option<String>,
    pub etag: Option<String>,
    /// Imported more than [`crate::STALE_AFTER`] ago.
    pub stale: bool,
}

/// What `strata scan db status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub path: std::path::PathBuf,
    pub sources: Vec<SourceStatus>,
    /// Distinct record ids naming a package of each ecosystem (base name).
    pub ecosystems: BTreeMap<String, u64>,
    /// Distinct record ids in all.
    pub records: u64,
    /// Distinct withdrawn record ids.
    pub withdrawn: u64,
    pub newest_modified: Option<String>,
    /// The oldest source's import time: the database is as old as its
    /// stalest part.
    pub imported_at: Option<SystemTime>,
    /// How long ago that was.
    pub age: Option<Duration>,
    /// True when `age` is over [`crate::STALE_AFTER`] (7 days).
    pub stale: bool,
}

pub(crate) fn status(conn: &Connection, path: &Path, stale_after: Duration) -> Result<Status> {
    let now_t = SystemTime::now();
    let age_of = |t: SystemTime| now_t.duration_since(t).unwrap_or_default();
    let mut stmt = conn.prepare(
        "SELECT name, kind, imported_at, records, withdrawn, skipped, newest_modified, etag
         FROM sources ORDER BY name",
    )?;
    let sources = stmt
        .query_map([], |r| {
            let imported_at = to_time(r.get(2)?);
            Ok(SourceStatus {
                name: r.get(0)?,
                kind: r.get(1)?,
                imported_at,
                records: r.get::<_, i64>(3)? as u64,
                withdrawn: r.get::<_, i64>(4)? as u64,
                skipped: r.get::<_, i64>(5)? as u64,
                newest_modified: r.get(6)?,
                etag: r.get(7)?,
                stale: age_of(imported_at) > stale_after,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut ecosystems = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT a.ecosystem, COUNT(DISTINCT r.id) FROM affected a JOIN records r ON r.rid = a.rid
         GROUP BY a.ecosystem",
    )?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (e, n) = row?;
        ecosystems.insert(e, n as u64);
    }
    let (records, withdrawn, newest_modified): (i64, i64, Option<String>) = conn.query_row(
        "SELECT COUNT(DISTINCT id), COUNT(DISTINCT CASE WHEN withdrawn IS NOT NULL THEN id END),
                MAX(modified) FROM records",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let imported_at = sources.iter().map(|s| s.imported_at).min();
    let age = imported_at.map(age_of);
    Ok(Status {
        path: path.to_path_buf(),
        sources,
        ecosystems,
        records: records as u64,
        withdrawn: withdrawn as u64,
        newest_modified,
        imported_at,
        age,
        stale: age.is_some_and(|a| a > stale_after),
    })
}

/// Ecosystems (base names) that some record names.
pub(crate) fn ecosystems(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT ecosystem FROM affected ORDER BY ecosystem")?;
    let v = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(v)
}

struct RecordRow {
    rid: i64,
    advisory: Advisory,
}

fn load_record(conn: &Connection, rid: i64) -> Result<Advisory> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.modified, r.published, r.withdrawn, r.summary, r.details, r.details_truncated,
                r.severity_source, r.severity_vector, r.severity_score, r.severity_rating, s.name
         FROM records r JOIN sources s ON s.sid = r.sid WHERE r.rid = ?1",
    )?;
    let mut adv = stmt.query_row([rid], |r| {
        let source: Option<String> = r.get(7)?;
        let severity = match source {
            Some(source) => Some(Severity {
                source,
                vector: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                score: r.get(9)?,
                rating: r
                    .get::<_, Option<String>>(10)?
                    .and_then(|s| Rating::parse(&s))
                    .unwrap_or(Rating::Unknown),
            }),
            None => None,
        };
        Ok(Advisory {
            id: r.get(0)?,
            aliases: Vec::new(),
            modified: r.get(1)?,
            published: r.get(2)?,
            withdrawn: r.get(3)?,
            summary: r.get(4)?,
            details: r.get(5)?,
            details_truncated: r.get(6)?,
            severity,
            source: r.get(11)?,
            affected: Vec::new(),
        })
    })?;
    let mut stmt = conn.prepare_cached("SELECT alias FROM aliases WHERE rid = ?1 ORDER BY alias")?;
    adv.aliases = stmt.query_map([rid], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(adv)
}

/// The columns of one `affected` row that [`load_affected`] reads.
const AFFECTED_COLUMNS: &str = "aid, rid, ecosystem, release, name, purl, versions";

struct AffectedRow {
    aid: i64,
    rid: i64,
    ecosystem: String,
    release: String,
    name: String,
    purl: Option<String>,
    versions: Option<String>,
}

fn affected_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AffectedRow> {
    Ok(AffectedRow {
        aid: r.get(0)?,
        rid: r.get(1)?,
        ecosystem: r.get(2)?,
        release: r.get(3)?,
        name: r.get(4)?,
        purl: r.get(5)?,
        versions: r.get(6)?,
    })
}

fn load_affected(conn: &Connection, row: AffectedRow) -> Result<AffectedPackage> {
    let mut stmt = conn.prepare_cached("SELECT seq, type FROM ranges WHERE aid = ?1 ORDER BY seq")?;
    let mut ranges: Vec<(i64, Range)> = stmt
        .query_map([row.aid], |r| {
            Ok((
                r.get(0)?,
                Range {
                    kind: r.get(1)?,
                    events: Vec::new(),
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt =
        conn.prepare_cached("SELECT range_seq, kind, version FROM events WHERE aid = ?1 ORDER BY range_seq, seq")?;
    let events = stmt.query_map([row.aid], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
    })?;
    for e in events {
        let (rs, kind, version) = e?;
        let kind = EventKind::from_code(kind).ok_or_else(|| Error::Corrupt(format!("event kind {kind}")))?;
        if let Some((_, r)) = ranges.iter_mut().find(|(s, _)| *s == rs) {
            r.events.push(Event { kind, version });
        }
    }
    let versions = row
        .versions
        .map_or_else(Vec::new, |v| v.split('\n').map(str::to_string).collect());
    let ecosystem = if row.release.is_empty() {
        row.ecosystem
    } else {
        format!("{}:{}", row.ecosystem, row.release)
    };
    Ok(AffectedPackage {
        ecosystem,
        name: row.name,
        purl: row.purl,
        ranges: ranges.into_iter().map(|(_, r)| r).collect(),
        versions,
    })
}

/// Keeps, of several records with one id (from several sources), the one
/// modified last (the one imported last on a tie).
fn newest_per_id(rows: Vec<RecordRow>) -> Vec<Advisory> {
    let mut best: HashMap<String, RecordRow> = HashMap::new();
    for row in rows {
        match best.get(&row.advisory.id) {
            Some(cur) if (cur.advisory.modified.as_str(), cur.rid) > (row.advisory.modified.as_str(), row.rid) => {}
            _ => {
                best.insert(row.advisory.id.clone(), row);
            }
        }
    }
    let mut out: Vec<Advisory> = best.into_values().map(|r| r.advisory).collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

pub(crate) fn advisories_for(conn: &Connection, ecosystem: &str, package: &str) -> Result<Vec<Advisory>> {
    let (base, release) = split_ecosystem(ecosystem);
    let package = normalize_package(&base, package);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {AFFECTED_COLUMNS} FROM affected
         WHERE ecosystem = ?1 AND package = ?2 AND (?3 = '' OR release = ?3 OR release = '')
         ORDER BY rid, aid"
    ))?;
    let rows = stmt
        .query_map(params![base, package, release], affected_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut records: Vec<RecordRow> = Vec::new();
    for row in rows {
        if records.last().is_none_or(|r| r.rid != row.rid) {
            records.push(RecordRow {
                rid: row.rid,
                advisory: load_record(conn, row.rid)?,
            });
        }
        let pkg = load_affected(conn, row)?;
        records.last_mut().expect("pushed above").advisory.affected.push(pkg);
    }
    Ok(newest_per_id(records))
}

/// Every record with this id or alias, newest per id, all `affected`.
pub(crate) fn advisory(conn: &Connection, id: &str) -> Result<Vec<Advisory>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rid FROM records WHERE id = ?1
         UNION SELECT rid FROM aliases WHERE alias = ?1 ORDER BY 1",
    )?;
    let rids = stmt
        .query_map([id], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut records = Vec::new();
    for rid in rids {
        let mut advisory = load_record(conn, rid)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {AFFECTED_COLUMNS} FROM affected WHERE rid = ?1 ORDER BY aid"
        ))?;
        let rows = stmt
            .query_map([rid], affected_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for row in rows {
            advisory.affected.push(load_affected(conn, row)?);
        }
        records.push(RecordRow { rid, advisory });
    }
    Ok(newest_per_id(records))
}
