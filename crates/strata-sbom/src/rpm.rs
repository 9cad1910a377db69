//! rpm: the SQLite database (`/var/lib/rpm/rpmdb.sqlite`,
//! `/usr/lib/sysimage/rpm/rpmdb.sqlite`), table `Packages(hnum, blob)`
//! where each blob is an rpm header. The file is copied to a temporary file
//! and opened read-only and immutable. The Berkeley DB and NDB formats are
//! not read (the scan says so).

use std::io::{self, Read};

use rusqlite::{Connection, OpenFlags};

use crate::model::{Package, PackageType, SourcePackage};

const TAG_NAME: i32 = 1000;
const TAG_VERSION: i32 = 1001;
const TAG_RELEASE: i32 = 1002;
const TAG_EPOCH: i32 = 1003;
const TAG_LICENSE: i32 = 1014;
const TAG_ARCH: i32 = 1022;
const TAG_SOURCERPM: i32 = 1044;
const TAG_VENDOR: i32 = 1011;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// `None` (with a note) when the database cannot be opened at all.
pub(crate) fn read_sqlite(r: &mut dyn Read, path: &str, notes: &mut Vec<String>) -> Option<Vec<Package>> {
    let mut copy = || -> io::Result<tempfile::NamedTempFile> {
        let mut tmp = tempfile::Builder::new().prefix(".strata-rpmdb-").tempfile()?;
        io::copy(r, tmp.as_file_mut())?;
        Ok(tmp)
    };
    let tmp = match copy() {
        Ok(t) => t,
        Err(e) => {
            notes.push(format!("could not copy the rpm database to a temporary file: {e}"));
            return None;
        }
    };
    match read_db(tmp.path(), path, notes) {
        Ok(p) => Some(p),
        Err(e) => {
            notes.push(format!("not a readable rpm SQLite database: {e}"));
            None
        }
    }
}

fn read_db(file: &std::path::Path, path: &str, notes: &mut Vec<String>) -> rusqlite::Result<Vec<Package>> {
    let uri = format!("file:{}?immutable=1", uri_escape(&file.to_string_lossy()));
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags)?;
    let mut stmt = conn.prepare("SELECT hnum, blob FROM Packages ORDER BY hnum")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let mut bad = Vec::new();
    while let Some(row) = rows.next()? {
        let hnum: i64 = row.get(0)?;
        let blob: Vec<u8> = row.get(1)?;
        match parse_header(&blob) {
            Ok(h) => {
                if let Some(p) = h.into_package(path) {
                    out.push(p);
                }
            }
            Err(e) => bad.push(format!("header {hnum}: {e}")),
        }
    }
    if !bad.is_empty() {
        notes.push(format!("{} malformed rpm header(s) skipped: {}", bad.len(), bad[0]));
    }
    Ok(out)
}

fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'?' | b'#' | b'%' => format!("%{b:02X}"),
            _ => (b as char).to_string(),
        })
        .collect()
}

#[derive(Debug, Default)]
struct Header {
    name: Option<String>,
    version: Option<String>,
    release: Option<String>,
    epoch: Option<i32>,
    arch: Option<String>,
    license: Option<String>,
    source_rpm: Option<String>,
    vendor: Option<String>,
}

impl Header {
    fn into_package(self, path: &str) -> Option<Package> {
        let name = self.name?;
        if name == "gpg-pubkey" {
            return None; // a signing key recorded as a package, not software
        }
        let vr = match (&self.version, &self.release) {
            (Some(v), Some(r)) => format!("{v}-{r}"),
            (Some(v), None) => v.clone(),
            _ => return None,
        };
        let version = match self.epoch {
            Some(e) => format!("{e}:{vr}"),
            None => vr.clone(),
        };
        let mut p = Package::new(PackageType::Rpm, &name, version, path);
        p.arch = self.arch;
        p.licenses.extend(self.license);
        p.source = Some(match self.source_rpm.as_deref().and_then(split_source_rpm) {
            Some(s) => s,
            None => SourcePackage {
                name: name.clone(),
                version: vr,
            },
        });
        if let Some(e) = self.epoch {
            p = p.meta("epoch", e.to_string());
        }
        if let Some(v) = self.vendor {
            p = p.meta("vendor", v);
        }
        Some(p)
    }
}

/// `bash-5.2.15-3.fc38.src.rpm` → bash, 5.2.15-3.fc38.
fn split_source_rpm(s: &str) -> Option<SourcePackage> {
    let base = s.strip_suffix(".src.rpm").or_else(|| s.strip_suffix(".nosrc.rpm"))?;
    let mut parts = base.rsplitn(3, '-');
    let release = parts.next()?;
    let version = parts.next()?;
    let name = parts.next()?;
    Some(SourcePackage {
        name: name.to_owned(),
        version: format!("{version}-{release}"),
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// An rpm header blob as the database stores it: index count, data length,
/// 16-byte index entries (tag, type, offset, count), then the data store.
fn parse_header(blob: &[u8]) -> Result<Header, String> {
    let il = be32(blob, 0).ok_or("shorter than its preamble")? as usize;
    let dl = be32(blob, 4).ok_or("shorter than its preamble")? as usize;
    if il > 1 << 16 || dl > blob.len() {
        return Err(format!("implausible sizes ({il} entries, {dl} bytes of data)"));
    }
    let data_start = 8 + il * 16;
    let store = blob.get(data_start..data_start + dl).ok_or("truncated")?;
    let mut h = Header::default();
    for i in 0..il {
        let at = 8 + i * 16;
        let tag = be32(blob, at).ok_or("truncated index")? as i32;
        let ty = be32(blob, at + 4).ok_or("truncated index")?;
        let off = be32(blob, at + 8).ok_or("truncated index")? as usize;
        let string = || -> Option<String> {
            if !matches!(ty, TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING) {
                return None;
            }
            let rest = store.get(off..)?;
            let end = rest.iter().position(|&b| b == 0)?;
            Some(String::from_utf8_lossy(&rest[..end]).into_owned())
        };
        match tag {
            TAG_NAME => h.name = string(),
            TAG_VERSION => h.version = string(),
            TAG_RELEASE => h.release = string(),
            TAG_ARCH => h.arch = string(),
            TAG_LICENSE => h.license = string(),
            TAG_SOURCERPM => h.source_rpm = string(),
            TAG_VENDOR => h.vendor = string(),
            TAG_EPOCH if ty == TYPE_INT32 => h.epoch = be32(store, off).map(|v| v as i32),
            _ => {}
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: &[(i32, u32, &[u8])]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, ty, data) in entries {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(store.len() as u32).to_be_bytes());
            index.extend_from_slice(&1u32.to_be_bytes());
            store.extend_from_slice(data);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        b.extend_from_slice(&(store.len() as u32).to_be_bytes());
        b.extend(index);
        b.extend(store);
        b
    }

    #[test]
    fn header_blob() {
        let b = header(&[
            (TAG_NAME, TYPE_STRING, b"bash\0"),
            (TAG_VERSION, TYPE_STRING, b"5.2.15\0"),
            (TAG_RELEASE, TYPE_STRING, b"3.fc38\0"),
            (TAG_EPOCH, TYPE_INT32, &1i32.to_be_bytes()),
            (TAG_ARCH, TYPE_STRING, b"x86_64\0"),
            (TAG_LICENSE, TYPE_STRING, b"GPL-3.0-or-later\0"),
            (TAG_SOURCERPM, TYPE_STRING, b"bash-5.2.15-3.fc38.src.rpm\0"),
        ]);
        let p = parse_header(&b)
            .unwrap()
            .into_package("var/lib/rpm/rpmdb.sqlite")
            .unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str()), ("bash", "1:5.2.15-3.fc38"));
        assert_eq!(
            p.source,
            Some(SourcePackage {
                name: "bash".into(),
                version: "5.2.15-3.fc38".into()
            })
        );
        assert_eq!(p.metadata.get("epoch").map(String::as_str), Some("1"));
        assert!(parse_header(&b[..20]).is_err());
        assert!(parse_header(&[0xff; 64]).is_err());
    }
}
