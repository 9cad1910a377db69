//! Reading sources: an OSV bulk-export zip, a directory of OSV JSON (a
//! checkout of an advisory repository), or single JSON files. Entries are
//! read and parsed on worker threads; the calling thread writes them.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;

use crate::osv::{MAX_RECORD_BYTES, Parsed, parse_document};
use crate::store::{SourceMeta, SourceWriter};
use crate::{Error, Result};

/// How many skipped records a report names; more are only counted.
pub const MAX_SKIPPED_LISTED: usize = 10_000;

/// What one import (or update) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub sources: Vec<SourceReport>,
    /// Records stored, over all sources.
    pub records: u64,
    /// Of those, withdrawn ones.
    pub withdrawn: u64,
    /// Records skipped (malformed, too large, duplicate id), over all sources.
    pub skipped_count: u64,
    /// The first [`MAX_SKIPPED_LISTED`] of them: (entry name, reason).
    pub skipped: Vec<(String, String)>,
    /// Sources that could not be read at all (a corrupt zip, a download
    /// that failed): (source, error). Nothing of them was changed.
    pub failed: Vec<(String, String)>,
}

impl ImportReport {
    pub(crate) fn merge(&mut self, other: ImportReport) {
        self.sources.extend(other.sources);
        self.records += other.records;
        self.withdrawn += other.withdrawn;
        self.skipped_count += other.skipped_count;
        let room = MAX_SKIPPED_LISTED.saturating_sub(self.skipped.len());
        self.skipped.extend(other.skipped.into_iter().take(room));
        self.failed.extend(other.failed);
    }

    fn skip(&mut self, name: String, reason: String) {
        self.skipped_count += 1;
        if self.skipped.len() < MAX_SKIPPED_LISTED {
            self.skipped.push((name, reason));
        }
    }
}

/// One source of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceReport {
    /// The canonical path, or the URL.
    pub name: String,
    /// `"zip"`, `"directory"`, `"file"` or `"url"`.
    pub kind: String,
    pub records: u64,
    pub withdrawn: u64,
    pub skipped: u64,
    /// Records of the earlier import of this source that this one replaced.
    pub replaced: u64,
    /// For a URL: the server said the zip had not changed (HTTP 304), so
    /// the records were kept as they were.
    pub unchanged: bool,
}

/// Progress of an import, reported every few hundred records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress<'a> {
    pub source: &'a str,
    /// Entries (records or files) read so far from this source.
    pub done: u64,
    /// Entries in the source, when known up front.
    pub total: Option<u64>,
}

/// What a path to import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Zip,
    Directory,
    File,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Zip => "zip",
            Kind::Directory => "directory",
            Kind::File => "file",
        }
    }
}

/// Checks a path before anything is written: it exists and is a zip, a
/// directory or a `.json` file. Returns its canonical path and kind.
pub(crate) fn classify(path: &Path) -> Result<(PathBuf, Kind)> {
    let canon = path.canonicalize().map_err(|e| Error::Source {
        source_name: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let md = std::fs::metadata(&canon).map_err(|e| Error::Source {
        source_name: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if md.is_dir() {
        return Ok((canon, Kind::Directory));
    }
    let mut magic = [0u8; 4];
    let n = File::open(&canon)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| Error::Source {
            source_name: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if n == 4 && (magic == *b"PK\x03\x04" || magic == *b"PK\x05\x06") {
        return Ok((canon, Kind::Zip));
    }
    let ext = canon.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext.eq_ignore_ascii_case("json") {
        return Ok((canon, Kind::File));
    }
    if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") {
        return Err(Error::Source {
            source_name: path.display().to_string(),
            reason: "YAML records are not supported; import the JSON (OSV) form".into(),
        });
    }
    Err(Error::Source {
        source_name: path.display().to_string(),
        reason: "neither a zip, a directory nor a .json file".into(),
    })
}

/// What a worker hands the writer.
enum Item {
    /// An entry read: its name and the records (or reasons) in it.
    Entry(String, Vec<std::result::Result<Parsed, String>>),
    /// The source cannot be read further.
    Fatal(String),
}

/// Where the entries of a source come from.
enum Entries {
    Zip { path: PathBuf, count: usize },
    Files { root: PathBuf, files: Vec<PathBuf> },
}

impl Entries {
    fn len(&self) -> usize {
        match self {
            Entries::Zip { count, .. } => *count,
            Entries::Files { files, .. } => files.len(),
        }
    }
}

/// Worker threads for parsing: the cores there are, at most 4 (the writer
/// thread is usually the bottleneck beyond that).
fn workers(entries: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, 4).min(entries.max(1))
}

/// Reads at most `MAX_RECORD_BYTES`; `Err` when there is more.
fn read_bounded(r: impl Read, declared: Option<u64>) -> std::result::Result<Vec<u8>, String> {
    if declared.is_some_and(|n| n > MAX_RECORD_BYTES) {
        return Err(format!("larger than {} MiB", MAX_RECORD_BYTES >> 20));
    }
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(MAX_RECORD_BYTES) as usize);
    r.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading: {e}"))?;
    if buf.len() as u64 > MAX_RECORD_BYTES {
        return Err(format!("larger than {} MiB", MAX_RECORD_BYTES >> 20));
    }
    Ok(buf)
}

fn is_json_name(name: &str) -> bool {
    name.len() > 5 && name[name.len() - 5..].eq_ignore_ascii_case(".json")
}

/// Every `*.json` under `dir`, skipping hidden entries (`.git`); symlinks
/// are not followed. Counts the `*.yaml` / `*.yml` files seen in `yaml`.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, yaml: &mut usize) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&entry.path(), out, yaml)?;
        } else if ft.is_file() && is_json_name(&name) {
            out.push(entry.path());
        } else if ft.is_file() && (name.ends_with(".yaml") || name.ends_with(".yml")) {
            *yaml += 1;
        }
    }
    Ok(())
}

/// A reader of a file at a position of its own (`pread`), buffered so that a
/// seek landing inside the buffer keeps it: the zip reader seeks to every
/// entry, and consecutive entries mostly sit in the same 64 KiB
/// (`BufReader` drops its buffer on every seek).
struct PosReader {
    file: File,
    len: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl PosReader {
    fn new(file: File) -> std::io::Result<PosReader> {
        let len = file.metadata()?.len();
        Ok(PosReader {
            file,
            len,
            pos: 0,
            buf: Vec::new(),
            buf_start: 0,
        })
    }
}

impl Read for PosReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        const BUF: usize = 64 << 10;
        let in_buf = self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            if out.len() >= BUF {
                let n = self.file.read_at(out, self.pos)?;
                self.pos += n as u64;
                return Ok(n);
            }
            self.buf.resize(BUF, 0);
            let n = self.file.read_at(&mut self.buf, self.pos)?;
            self.buf.truncate(n);
            self.buf_start = self.pos;
            if n == 0 {
                return Ok(0);
            }
        }
        let off = (self.pos - self.buf_start) as usize;
        let n = out.len().min(self.buf.len() - off);
        out[..n].copy_from_slice(&self.buf[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for PosReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(n) => Some(n),
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}

fn open_zip(path: &Path) -> std::result::Result<zip::ZipArchive<PosReader>, String> {
    let f = File::open(path).and_then(PosReader::new).map_err(|e| e.to_string())?;
    zip::ZipArchive::new(f).map_err(|e| format!("not a readable zip: {e}"))
}

/// Reads and parses entry `i`; `None` for an entry that is no record (a
/// directory, a file not named `*.json`).
fn read_entry(entries: &Entries, zip: Option<&mut zip::ZipArchive<PosReader>>, i: usize) -> Option<Item> {
    let (name, read) = match (entries, zip) {
        (Entries::Zip { .. }, Some(z)) => {
            let file = match z.by_index(i) {
                Ok(f) => f,
                Err(e) => return Some(Item::Entry(format!("entry {i}"), vec![Err(format!("unreadable: {e}"))])),
            };
            let name = file.name().to_string();
            if file.is_dir() || !is_json_name(&name) {
                return None;
            }
            let size = file.size();
            (name, read_bounded(file, Some(size)))
        }
        (Entries::Files { root, files }, _) => {
            let path = &files[i];
            let name = path.strip_prefix(root).unwrap_or(path).display().to_string();
            let read = File::open(path).map_err(|e| format!("reading: {e}")).and_then(|f| {
                let len = f.metadata().map(|m| m.len()).ok();
                read_bounded(f, len)
            });
            (name, read)
        }
        (Entries::Zip { .. }, None) => unreachable!("a zip source has an archive"),
    };
    Some(match read {
        Ok(bytes) => Item::Entry(name, parse_document(&bytes)),
        Err(reason) => Item::Entry(name, vec![Err(reason)]),
    })
}

/// One worker: takes chunks of entry indexes from `next` and sends what it
/// read, a chunk per message.
fn work(entries: &Entries, next: &AtomicUsize, tx: mpsc::SyncSender<Vec<Item>>) {
    const CHUNK: usize = 16;
    let mut zip = match entries {
        Entries::Zip { path, .. } => match open_zip(path) {
            Ok(z) => Some(z),
            Err(e) => {
                let _ = tx.send(vec![Item::Fatal(e)]);
                return;
            }
        },
        Entries::Files { .. } => None,
    };
    loop {
        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
        if start >= entries.len() {
            return;
        }
        let batch: Vec<Item> = (start..(start + CHUNK).min(entries.len()))
            .filter_map(|i| read_entry(entries, zip.as_mut(), i))
            .collect();
        if tx.send(batch).is_err() {
            return; // the writer gave up
        }
    }
}

/// Imports one source in one transaction, replacing what an earlier import
/// of the same source name stored. `Err` for a database error; a source that
/// cannot be read lands in `report.failed` with nothing changed.
pub(crate) fn import_source(
    conn: &mut Connection,
    path: &Path,
    kind: Kind,
    meta: &SourceMeta,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let fail = |mut report: ImportReport, reason: String| {
        report.failed.push((meta.name.clone(), reason));
        Ok(report)
    };
    let entries = match kind {
        Kind::Zip => match open_zip(path) {
            Ok(z) => Entries::Zip {
                path: path.to_path_buf(),
                count: z.len(),
            },
            Err(e) => return fail(report, e),
        },
        Kind::Directory => {
            let (mut files, mut yaml) = (Vec::new(), 0);
            if let Err(e) = walk(path, &mut files, &mut yaml) {
                return fail(report, format!("listing {}: {e}", path.display()));
            }
            if files.is_empty() && yaml > 0 {
                let why = format!("{yaml} YAML records and no JSON: YAML is not supported, import the OSV JSON form");
                return fail(report, why);
            }
            files.sort();
            Entries::Files {
                root: path.to_path_buf(),
                files,
            }
        }
        Kind::File => Entries::Files {
            root: path.parent().unwrap_or(Path::new("")).to_path_buf(),
            files: vec![path.to_path_buf()],
        },
    };
    let total = entries.len();
    let mut writer = SourceWriter::begin(conn, meta)?;
    let next = AtomicUsize::new(0);
    let fatal = std::thread::scope(|s| -> Result<Option<String>> {
        let (tx, rx) = mpsc::sync_channel::<Vec<Item>>(32);
        for _ in 0..workers(total) {
            let tx = tx.clone();
            let (entries, next) = (&entries, &next);
            s.spawn(move || work(entries, next, tx));
        }
        drop(tx);
        let mut done = 0u64;
        for item in rx.iter().flatten() {
            match item {
                Item::Fatal(e) => return Ok(Some(e)), // dropping rx stops the workers
                Item::Entry(name, results) => {
                    for r in results {
                        let outcome = match r {
                            Ok(p) => writer.add(&p)?,
                            Err(reason) => Err(reason),
                        };
                        if let Err(reason) = outcome {
                            writer.counts.skipped += 1;
                            report.skip(format!("{}: {name}", meta.name), reason);
                        }
                    }
                    done += 1;
                    if done.is_multiple_of(500) {
                        progress(&Progress {
                            source: &meta.name,
                            done,
                            total: Some(total as u64),
                        });
                    }
                }
            }
        }
        progress(&Progress {
            source: &meta.name,
            done,
            total: Some(total as u64),
        });
        Ok(None)
    })?;
    if let Some(e) = fatal {
        drop(writer); // rolls back
        report.skipped.clear();
        report.skipped_count = 0;
        return fail(report, e);
    }
    let counts = writer.commit(meta)?;
    report.records = counts.records;
    report.withdrawn = counts.withdrawn;
    report.sources.push(SourceReport {
        name: meta.name.clone(),
        kind: meta.kind.to_string(),
        records: counts.records,
        withdrawn: counts.withdrawn,
        skipped: counts.skipped,
        replaced: counts.replaced,
        unchanged: false,
    });
    Ok(report)
}
