//! `db update`: downloading OSV bulk exports over HTTP(S) and importing them.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::import::{self, ImportReport, Kind, Progress, SourceReport};
use crate::store::{self, SourceMeta};
use crate::{Db, Result};

/// The OSV project's bucket of bulk exports: `<base>/<Ecosystem>/all.zip`.
pub const OSV_BASE_URL: &str = "https://osv-vulnerabilities.storage.googleapis.com";

/// The largest zip `update` downloads.
pub const MAX_DOWNLOAD_BYTES: u64 = 4 << 30;

/// The zip URL of one ecosystem under a base URL in the bucket's layout
/// (`Rocky Linux` → `<base>/Rocky%20Linux/all.zip`). A source URL that
/// already ends in `.zip` is taken as it is.
pub fn export_url(base: &str, ecosystem: &str) -> String {
    if base.to_ascii_lowercase().ends_with(".zip") {
        return base.to_string();
    }
    let mut eco = String::new();
    for b in ecosystem.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            eco.push(char::from(b));
        } else {
            eco.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{}/{eco}/all.zip", base.trim_end_matches('/'))
}

/// Hides user-info (`https://user:pass@host/` → `https://***@host/`).
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            match rest[..host_end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

enum Fetched {
    NotModified,
    File {
        file: tempfile::NamedTempFile,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

fn client() -> std::result::Result<reqwest::blocking::Client, String> {
    // rustls needs one process-wide crypto provider; strata uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| format!("setting up HTTP: {e}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Downloads `url` into a temporary file in `dir`, sending the validators of
/// the last download so an unchanged export is not fetched again.
fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    dir: &Path,
    validators: Option<(Option<String>, Option<String>)>,
) -> std::result::Result<Fetched, String> {
    let mut req = client.get(url);
    if let Some((etag, last_modified)) = validators {
        if let Some(e) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, e);
        }
        if let Some(l) = last_modified {
            req = req.header(reqwest::header::IF_MODIFIED_SINCE, l);
        }
    }
    let mut resp = req.send().map_err(|e| error_chain(&e))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD_BYTES) {
        return Err(format!("larger than {} GiB", MAX_DOWNLOAD_BYTES >> 30));
    }
    let header = |h| {
        resp.headers()
            .get(h)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let etag = header(reqwest::header::ETAG);
    let last_modified = header(reqwest::header::LAST_MODIFIED);
    let mut file = tempfile::Builder::new()
        .prefix("download-")
        .suffix(".zip")
        .tempfile_in(dir)
        .map_err(|e| format!("creating a temporary file in {}: {e}", dir.display()))?;
    let mut limited = std::io::Read::take(&mut resp, MAX_DOWNLOAD_BYTES + 1);
    let n = std::io::copy(&mut limited, &mut std::io::BufWriter::new(file.as_file_mut()))
        .map_err(|e| format!("downloading: {}", error_chain(&e)))?;
    if n > MAX_DOWNLOAD_BYTES {
        return Err(format!("larger than {} GiB", MAX_DOWNLOAD_BYTES >> 30));
    }
    file.as_file_mut().flush().map_err(|e| e.to_string())?;
    Ok(Fetched::File {
        file,
        etag,
        last_modified,
    })
}

impl Db {
    /// Downloads the OSV bulk export of each ecosystem from each source and
    /// imports it, one transaction per zip (the URL is the source's name, so
    /// the next update replaces it).
    ///
    /// `sources` are base URLs in the OSV bucket's layout
    /// (`<base>/<Ecosystem>/all.zip`; [`OSV_BASE_URL`] when empty) or URLs
    /// of zips. `ecosystems` are OSV names (`"PyPI"`, `"Debian:12"`); when
    /// empty, the ecosystems already in the database. A download that fails
    /// lands in the report's `failed` and the others go on; an export the
    /// server says is unchanged (ETag / Last-Modified) is kept and marked
    /// checked.
    pub fn update(
        &mut self,
        sources: &[String],
        ecosystems: &[String],
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<ImportReport> {
        let bases: Vec<String> = if sources.is_empty() {
            vec![OSV_BASE_URL.to_string()]
        } else {
            sources.to_vec()
        };
        let ecosystems: Vec<String> = if ecosystems.is_empty() {
            store::ecosystems(&self.conn)?
        } else {
            ecosystems.to_vec()
        };
        let mut urls: Vec<String> = Vec::new();
        for base in &bases {
            if base.to_ascii_lowercase().ends_with(".zip") {
                urls.push(base.clone());
            } else {
                urls.extend(ecosystems.iter().map(|e| export_url(base, e)));
            }
        }
        urls.dedup();
        let mut report = ImportReport::default();
        if urls.is_empty() {
            return Err(crate::Error::NothingToUpdate);
        }
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                report.failed.extend(urls.iter().map(|u| (redact(u), e.clone())));
                return Ok(report);
            }
        };
        let tmp = self.dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| crate::Error::Io {
            path: tmp.clone(),
            error: e,
        })?;
        for url in &urls {
            let name = redact(url);
            let validators = store::source_validators(&self.conn, &name)?;
            match download(&client, url, &tmp, validators) {
                Err(e) => report.failed.push((name, e)),
                Ok(Fetched::NotModified) => {
                    store::touch_source(&self.conn, &name)?;
                    report.sources.push(SourceReport {
                        name,
                        kind: "url".into(),
                        records: 0,
                        withdrawn: 0,
                        skipped: 0,
                        replaced: 0,
                        unchanged: true,
                    });
                }
                Ok(Fetched::File {
                    file,
                    etag,
                    last_modified,
                }) => {
                    let meta = SourceMeta {
                        name,
                        kind: "url",
                        etag,
                        last_modified,
                    };
                    let r = import::import_source(&mut self.conn, file.path(), Kind::Zip, &meta, progress)?;
                    report.merge(r);
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(export_url("http://h/osv/", "PyPI"), "http://h/osv/PyPI/all.zip");
        assert_eq!(export_url("http://h", "Rocky Linux"), "http://h/Rocky%20Linux/all.zip");
        assert_eq!(export_url("http://h", "Debian:12"), "http://h/Debian:12/all.zip");
        assert_eq!(export_url("http://h/x.zip", "Go"), "http://h/x.zip");
        assert_eq!(redact("https://u:p@h/x"), "https://***@h/x");
        assert_eq!(redact("https://h/x@y"), "https://h/x@y");
    }
}
