//! `/etc/os-release` (os-release(5)): the distribution's ID and version.

use crate::model::Distro;

/// `None` when the file names no `ID`.
pub(crate) fn parse_os_release(data: &[u8]) -> Option<Distro> {
    let text = String::from_utf8_lossy(data);
    let mut d = Distro::default();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "ID" => d.id = value.to_ascii_lowercase(),
            "VERSION_ID" => d.version_id = Some(value),
            "VERSION_CODENAME" => d.version_codename = Some(value),
            "PRETTY_NAME" => d.pretty_name = Some(value),
            "ID_LIKE" => d.id_like = value.split_whitespace().map(str::to_owned).collect(),
            _ => {}
        }
    }
    (!d.id.is_empty()).then_some(d)
}

/// Shell-style quoting as os-release uses it: `"…"` with `\` escapes, or `'…'`.
fn unquote(v: &str) -> String {
    let bytes = v.as_bytes();
    if bytes.len() >= 2 && (bytes[0] == b'"' || bytes[0] == b'\'') && bytes[bytes.len() - 1] == bytes[0] {
        let inner = &v[1..v.len() - 1];
        if bytes[0] == b'\'' {
            return inner.to_owned();
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_and_alpine() {
        let d = parse_os_release(
            b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n\
              VERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        )
        .unwrap();
        assert_eq!(d.id, "debian");
        assert_eq!(d.version_id.as_deref(), Some("12"));
        assert_eq!(d.version_codename.as_deref(), Some("bookworm"));
        assert_eq!(d.pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(d.qualifier(), "debian-12");
        let a = parse_os_release(b"NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\nID_LIKE='x y'\n").unwrap();
        assert_eq!(a.qualifier(), "alpine-3.19.1");
        assert_eq!(a.id_like, vec!["x", "y"]);
        assert!(parse_os_release(b"\xff\xfe garbage").is_none());
    }
}
