//! Image references, parsed and normalized by Docker's rules:
//! `[registry[:port]/][namespace/]name[:tag][@digest]`.
//!
//! `busybox` is `docker.io/library/busybox:latest`; `localhost:5000/a/b` keeps
//! its registry. Errors say which part is wrong and why.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

fn err(input: &str, reason: impl Into<String>) -> ReferenceError {
    let input = if input.len() > 300 {
        format!("{}…", &input[..input.floor_char_boundary(300)])
    } else {
        input.to_string()
    };
    ReferenceError {
        input,
        reason: reason.into(),
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks one path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err("repository name has an empty path component".into());
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("repository name must be lowercase (found {c:?})"));
    }
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "path component {c:?} must start and end with a lowercase letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if alnum(b) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "path component {c:?} contains an invalid separator or character {sep:?}"
            ));
        }
    }
    Ok(())
}

fn check_domain(d: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("registry {d:?} has an unterminated IPv6 address"))?;
        let ip = &rest[..end];
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(format!("registry {d:?} is not a valid IPv6 address"));
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (None, Some(p)),
            None if after.is_empty() => (None, None),
            None => return Err(format!("registry {d:?} is not a valid host")),
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry {d:?} has an invalid port"));
    }
    if let Some(host) = host {
        if host.is_empty() {
            return Err(format!("registry {d:?} has an empty host name"));
        }
        for comp in host.split('.') {
            let b = comp.as_bytes();
            let ok = !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-');
            if !ok {
                return Err(format!("registry host {host:?} is not a valid host name"));
            }
        }
    }
    Ok(())
}

fn check_tag(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("tag is empty".into());
    }
    if t.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag is {} characters long; at most {MAX_TAG_LEN} are allowed",
            t.len()
        ));
    }
    let b = t.as_bytes();
    if !(b[0].is_ascii_alphanumeric() || b[0] == b'_') {
        return Err(format!("tag {t:?} must start with a letter, digit or underscore"));
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "tag {t:?} contains {c:?}; only letters, digits, '_', '.' and '-' are allowed"
        ));
    }
    Ok(())
}

impl Reference {
    /// Parses and normalizes a reference the way `docker` does on its command line.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.is_empty() {
            return Err(err(s, "repository name must have at least one component"));
        }
        if is_hex64(s) {
            return Err(err(
                s,
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(Digest::parse(d).map_err(|e| err(s, e.to_string()))?)),
            None => (s, None),
        };
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i + 1..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            check_tag(t).map_err(|r| err(s, r))?;
        }
        if name.is_empty() {
            return Err(err(s, "repository name must have at least one component"));
        }
        let (mut domain, mut path) = match name.find('/') {
            Some(i) => {
                let first = &name[..i];
                if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) {
                    (first.to_string(), name[i + 1..].to_string())
                } else {
                    (DEFAULT_DOMAIN.to_string(), name.to_string())
                }
            }
            None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        check_domain(&domain).map_err(|r| err(s, r))?;
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_string();
        }
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("{OFFICIAL_PREFIX}{path}");
        }
        for comp in path.split('/') {
            check_path_component(comp).map_err(|r| err(s, r))?;
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(err(
                s,
                format!("repository name must not be more than {MAX_NAME_LEN} characters"),
            ));
        }
        Ok(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Parses a repository name alone (no tag, no digest), as the registry
    /// API sees it: `library/busybox`, `a/b/c`.
    pub fn check_repository_path(path: &str) -> Result<(), ReferenceError> {
        if path.is_empty() {
            return Err(err(path, "repository name must have at least one component"));
        }
        if path.len() > MAX_NAME_LEN {
            return Err(err(
                path,
                format!("repository name must not be more than {MAX_NAME_LEN} characters"),
            ));
        }
        for comp in path.split('/') {
            check_path_component(comp).map_err(|r| err(path, r))?;
        }
        Ok(())
    }

    pub fn check_tag(tag: &str) -> Result<(), ReferenceError> {
        check_tag(tag).map_err(|r| err(tag, r))
    }

    /// Builds a reference from already-split parts (validated).
    pub fn from_parts(
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        let mut s = repository.to_string();
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        let mut r = Reference::parse(&s)?;
        r.digest = digest;
        Ok(r)
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
    /// The repository path inside the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Fully qualified repository: `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Repository as Docker prints it: `busybox`, `user/app`, `localhost:5000/a`.
    pub fn familiar_repository(&self) -> String {
        familiar_repository(&self.repository())
    }

    /// Adds the `latest` tag when the reference has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    pub fn with_tag(mut self, tag: &str) -> Reference {
        self.tag = Some(tag.to_string());
        self
    }

    pub fn without_digest(mut self) -> Reference {
        self.digest = None;
        self
    }

    pub fn with_digest(mut self, d: Digest) -> Reference {
        self.digest = Some(d);
        self
    }

    /// `busybox:latest`, `localhost:5000/a/b@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

/// Turns `docker.io/library/x` into `x` and `docker.io/u/x` into `u/x`;
/// keeps `docker.io/` when the rest would read as another registry
/// (`docker.io/localhost/a`, `docker.io/a.b/c`), so that the familiar form
/// parses back to the same repository (found by fuzzing); keeps `library/`
/// before a 64-hex name, which alone reads as an image ID (Docker prints it
/// bare, and then refuses what it printed).
pub fn familiar_repository(full: &str) -> String {
    let image_id_like = |n: &str| n.len() == 64 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match full.strip_prefix("docker.io/") {
        Some(rest) => match rest.strip_prefix(OFFICIAL_PREFIX) {
            Some(name) if !name.contains('/') && !image_id_like(name) => name.to_string(),
            Some(_) if !rest[OFFICIAL_PREFIX.len()..].contains('/') => rest.to_string(),
            _ => match rest.split_once('/') {
                Some((first, _))
                    if first.contains(['.', ':'])
                        || first == "localhost"
                        || first.bytes().any(|b| b.is_ascii_uppercase()) =>
                {
                    full.to_string()
                }
                _ => rest.to_string(),
            },
        },
        None => full.to_string(),
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("library/busybox:1"), "docker.io/library/busybox:1");
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("index.docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(norm("localhost/a"), "localhost/a:latest");
        assert_eq!(
            norm("127.0.0.1:5000/library/busybox:latest"),
            "127.0.0.1:5000/library/busybox:latest"
        );
        assert_eq!(norm("quay.io/a/b/c:v1.2-x_y"), "quay.io/a/b/c:v1.2-x_y");
        assert_eq!(norm("[::1]:5000/a"), "[::1]:5000/a:latest");
        assert_eq!(norm("a__b.c--d"), "docker.io/library/a__b.c--d:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), d);
        let r = Reference::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.familiar(), format!("busybox:1@{d}"));
    }

    #[test]
    fn familiar_forms() {
        assert_eq!(Reference::parse("busybox").unwrap().familiar_repository(), "busybox");
        assert_eq!(Reference::parse("docker.io/u/x").unwrap().familiar_repository(), "u/x");
        assert_eq!(
            Reference::parse("localhost:5000/a/b").unwrap().familiar_repository(),
            "localhost:5000/a/b"
        );
        assert_eq!(
            Reference::parse("docker.io/library/a/b").unwrap().familiar_repository(),
            "library/a/b"
        );
    }

    #[test]
    fn rejects_with_reasons() {
        let cases = [
            ("", "at least one component"),
            ("Busybox", "lowercase"),
            ("docker.io/User/app", "lowercase"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            (":tag", "at least one component"),
            ("busybox:", "tag is empty"),
            ("a@sha256:abc", "64 lowercase hex"),
            ("a@md5:abc", "unsupported algorithm"),
            ("a@sha256:../../x", "64 lowercase hex"),
            ("a-", "start and end"),
            ("a..b", "separator"),
            ("busybox:-x", "must start"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "image ID",
            ),
            ("localhost:port/a", "invalid port"),
            ("a b", "separator or character"),
        ];
        for (input, why) in cases {
            let e = Reference::parse(input).expect_err(input);
            assert!(e.to_string().contains(why), "{input}: {e}");
        }
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(
            Reference::parse(&long_tag)
                .unwrap_err()
                .to_string()
                .contains("at most 128")
        );
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
        let long_name = format!("x/{}", "a".repeat(260));
        assert!(Reference::parse(&long_name).unwrap_err().to_string().contains("255"));
    }

    /// A Docker Hub path whose first component looks like a registry keeps
    /// its domain in the familiar form, which must parse back to the same
    /// repository (found by fuzzing, #16 item 4).
    #[test]
    fn familiar_form_parses_back_to_the_same_repository() {
        for s in [
            "docker.io/localhost/a",
            "docker.io/do.io/ta",
            "index.docker.io/er.io/328.0",
            "docker.io/a:b/c",
            "library/e3b0420000000000000000000000000000000000000000034495991b7852b855",
        ] {
            let Ok(r) = Reference::parse(s) else { continue };
            let back = Reference::parse(&r.familiar()).unwrap();
            assert_eq!(back.repository(), r.repository(), "{s}");
        }
        assert_eq!(
            Reference::parse("docker.io/localhost/a").unwrap().familiar(),
            "docker.io/localhost/a"
        );
        assert_eq!(Reference::parse("docker.io/u/x").unwrap().familiar(), "u/x");
        assert_eq!(Reference::parse("busybox").unwrap().familiar(), "busybox");
        // A bare 64-hex name reads as an image ID: `library/` stays.
        let hex = "e3b0420000000000000000000000000000000000000000034495991b7852b855";
        assert_eq!(
            Reference::parse(&format!("library/{hex}:t")).unwrap().familiar(),
            format!("library/{hex}:t")
        );
    }
}
