//! `ADD <URL>`: an http(s) download streamed to a file in a scratch
//! directory (hashed on the way), named after the URL's last path
//! component, with the server's Last-Modified as its time and mode 0600
//! (Docker's rules); `--checksum=sha256:...` is checked before anything
//! is used.
//!
//! Credentials in the URL (`http://user:pass@host/f`) are sent as HTTP
//! Basic auth and shown nowhere: history, progress, cache records and
//! errors get the URL as BuildKit's `urlutil.RedactCredentials` writes it
//! (`http://xxxxx:xxxxx@host/f`).

use std::io::Write;
use std::path::Path;

use crate::error::{Ctx, Error, Result};
use sha2::{Digest as _, Sha256};

/// Downloads larger than this are refused.
const MAX_DOWNLOAD: u64 = 32 << 30;

/// Whether an ADD source is a URL.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// What replaces the user and the password of a URL.
const MASK: &str = "xxxxx";

/// Where the user-info of the URL starting at `url` is: its byte range
/// (without the `@`), if any. The authority ends at `/`, `?`, `#` or a
/// character that cannot be in a URL (a space, a quote), as in a text.
fn userinfo_range(url: &str) -> Option<std::ops::Range<usize>> {
    let start = url.find("://")? + 3;
    let len = url[start..]
        .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace())
        .unwrap_or(url.len() - start);
    let at = url[start..start + len].rfind('@')?;
    Some(start..start + at)
}

/// The URL with its user and password masked (BuildKit's `RedactCredentials`).
pub fn redact(url: &str) -> String {
    let Some(r) = userinfo_range(url) else {
        return url.to_string();
    };
    let (user, pass) = match url[r.clone()].split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (&url[r.clone()], None),
    };
    let masked = match (user.is_empty(), pass) {
        (false, Some(_)) => format!("{MASK}:{MASK}"),
        (false, None) => MASK.to_string(),
        (true, Some(_)) => format!(":{MASK}"),
        (true, None) => String::new(),
    };
    format!("{}{masked}{}", &url[..r.start], &url[r.end..])
}

/// `text` with the credentials of every `scheme://user:pass@` in it masked
/// (for Dockerfile lines shown in progress and errors).
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The scheme's letters before `://` go with the URL.
        let begin = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        out.push_str(&rest[..begin]);
        let url = &rest[begin..];
        let len = i - begin
            + 3
            + url[i - begin + 3..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
                .unwrap_or(url.len() - (i - begin + 3));
        out.push_str(&redact(&url[..len]));
        rest = &url[len..];
    }
    out.push_str(rest);
    out
}

/// The URL without its user-info, and the user and password it had
/// (percent-decoded), to be sent as Basic auth.
fn split_credentials(url: &str) -> (String, Option<(String, Option<String>)>) {
    let Some(r) = userinfo_range(url) else {
        return (url.to_string(), None);
    };
    let info = &url[r.clone()];
    let (user, pass) = match info.split_once(':') {
        Some((u, p)) => (percent_decode(u), Some(percent_decode(p))),
        None => (percent_decode(info), None),
    };
    (format!("{}{}", &url[..r.start], &url[r.end + 1..]), Some((user, pass)))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name a URL is saved as: its last non-empty path component.
pub fn file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once('/').map_or("", |x| x.1);
    let name = path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    if name.is_empty() || name == "." || name == ".." {
        "__unnamed__".into()
    } else {
        name.to_string()
    }
}

/// Parses `--checksum=sha256:<hex>`.
pub fn parse_checksum(s: &str) -> Result<String> {
    match s.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
        }
        _ => Err(Error::InvalidChecksum(s.to_string())),
    }
}

/// What a download gave.
pub struct Fetched {
    pub name: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
}

/// Downloads `url` into `dir/<file name>`; its credentials, if any, go as Basic auth.
pub fn fetch(url: &str, dir: &Path, checksum: Option<&str>) -> Result<Fetched> {
    let name = file_name(url);
    let path = dir.join(&name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "starting the HTTP runtime")?;
    let (digest, mtime) = rt.block_on(download(url, &path))?;
    if let Some(want) = checksum
        && want != digest
    {
        return Err(Error::DigestMismatch {
            url: redact(url),
            expected: want.to_string(),
            got: digest,
        });
    }
    let f = std::fs::File::options().write(true).open(&path)?;
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    if let Some(t) = mtime {
        f.set_modified(t)?;
    }
    Ok(Fetched { name, digest })
}

async fn download(url: &str, path: &Path) -> Result<(String, Option<std::time::SystemTime>)> {
    use futures_util::StreamExt;
    // Only the redacted URL is ever shown; the request gets one without user-info.
    let (bare, creds) = split_credentials(url);
    let url = redact(url);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(300))
        .build()
        .map_err(Error::HttpSetup)?;
    let mut req = client.get(&bare);
    if let Some((user, pass)) = creds {
        req = req.basic_auth(user, pass);
    }
    let resp = req.send().await.map_err(|e| Error::Download {
        url: url.clone(),
        reason: chain(&e),
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Error::Download {
            url,
            reason: format!("invalid response status {status}"),
        });
    }
    let mtime = resp
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_http_date);
    if resp.content_length().is_some_and(|n| n > MAX_DOWNLOAD) {
        return Err(too_large(url));
    }
    let mut out =
        std::io::BufWriter::new(std::fs::File::create_new(path).ctx(|| format!("creating {}", path.display()))?);
    let mut h = Sha256::new();
    let mut total = 0u64;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::DownloadRead {
            url: url.clone(),
            reason: chain(&e),
        })?;
        total += chunk.len() as u64;
        if total > MAX_DOWNLOAD {
            return Err(too_large(url));
        }
        h.update(&chunk);
        out.write_all(&chunk).ctx(|| format!("writing {}", path.display()))?;
    }
    out.flush()?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .ctx(|| format!("writing {}", path.display()))?
        .sync_all()?;
    Ok((format!("sha256:{}", strata_oci::digest::to_hex(&h.finalize())), mtime))
}

fn too_large(url: String) -> Error {
    Error::Download {
        url,
        reason: format!("larger than {MAX_DOWNLOAD} bytes"),
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i8 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i8
        + 1;
    let year: i16 = parts[3].parse().ok()?;
    let hms: Vec<i8> = parts[4].split(':').filter_map(|x| x.parse().ok()).collect();
    if hms.len() != 3 {
        return None;
    }
    let dt = jiff::civil::DateTime::new(year, month, day, hms[0], hms[1], hms[2], 0).ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(ts.as_second().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(file_name("https://example.com/a/b/file.tar.gz?x=1"), "file.tar.gz");
        assert_eq!(file_name("https://example.com/"), "__unnamed__");
        assert_eq!(file_name("https://example.com/dir/"), "dir");
        assert_eq!(file_name("http://h/../.."), "__unnamed__");
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(), 784111777);
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(parse_checksum(&format!("sha256:{}", "A".repeat(64))).is_ok());
    }

    #[test]
    fn credentials_are_redacted_as_buildkit_does() {
        assert_eq!(redact("https://u:p@h/x.git"), "https://xxxxx:xxxxx@h/x.git");
        assert_eq!(redact("https://token@h:8080/f?a=b@c"), "https://xxxxx@h:8080/f?a=b@c");
        assert_eq!(redact("http://:p@h/f"), "http://:xxxxx@h/f");
        assert_eq!(redact("http://h/f@x"), "http://h/f@x");
        assert_eq!(redact("http://u:p@ss@h/f"), "http://xxxxx:xxxxx@h/f");
        assert_eq!(
            redact_text("ADD --chmod=644 http://u:pw@h/a https://h/b  git+ssh://k@g/r \"s3://x:y@z\" /d"),
            "ADD --chmod=644 http://xxxxx:xxxxx@h/a https://h/b  git+ssh://xxxxx@g/r \"s3://xxxxx:xxxxx@z\" /d"
        );
        assert_eq!(redact_text("no urls: a@b ://x"), "no urls: a@b ://x");
    }

    #[test]
    fn credentials_are_split_off_and_decoded() {
        let (bare, c) = split_credentials("http://us%65r:p%40ss:w@h:1/f");
        assert_eq!(bare, "http://h:1/f");
        assert_eq!(c, Some(("user".into(), Some("p@ss:w".into()))));
        assert_eq!(split_credentials("http://h/f"), ("http://h/f".into(), None));
        assert_eq!(file_name("http://u:p@h/dir/f.txt"), "f.txt");
    }
}
