//! `--cache-from` and `--cache-to` as buildx takes them: CSV of `key=value`
//! (`type=registry,ref=R,mode=max`), or a bare reference (a registry cache,
//! as `docker build --cache-from R`).

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where a cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A repository tag (a cache manifest, or an image with an inline cache).
    Registry { reference: String },
    /// An OCI image layout directory, the cache under `tag` in its `index.json`.
    Local { dir: PathBuf, tag: String },
    /// The image's own config (`--cache-to` only).
    Inline,
}

/// One `--cache-from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheImport {
    pub spec: Target,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheExport {
    pub spec: Target,
    /// `mode=max`: every stage's steps, not only the result's.
    pub max: bool,
    /// `ignore-error=true`: a failed export is a warning.
    pub ignore_error: bool,
}

fn name_of(t: &Target) -> String {
    match t {
        Target::Registry { reference } => reference.clone(),
        Target::Local { dir, tag } => format!("{}:{tag}", dir.display()),
        Target::Inline => "the image (inline)".into(),
    }
}

impl CacheImport {
    pub fn name(&self) -> String {
        name_of(&self.spec)
    }
}

impl CacheExport {
    pub fn name(&self) -> String {
        name_of(&self.spec)
    }
}

fn fields(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.trim().to_lowercase(), v.trim().to_string()),
            None => (String::new(), f.trim().to_string()),
        })
        .collect()
}

fn bad(flag: &str, s: &str, why: &str) -> Error {
    Error::Unsupported(format!("{flag} {s:?}: {why}"))
}

/// Parses one `--cache-from`.
pub fn parse_cache_from(s: &str) -> Result<CacheImport> {
    let flag = "--cache-from";
    if !s.contains('=') {
        // `--cache-from REF`: a registry cache (or an image with an inline cache).
        return Ok(CacheImport {
            spec: Target::Registry {
                reference: s.trim().to_string(),
            },
        });
    }
    let f = fields(s);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ty = get("type").unwrap_or_else(|| "registry".into());
    let spec = match ty.as_str() {
        "registry" => Target::Registry {
            reference: get("ref").ok_or_else(|| bad(flag, s, "type=registry needs ref=REPOSITORY:TAG"))?,
        },
        "local" => Target::Local {
            dir: PathBuf::from(get("src").ok_or_else(|| bad(flag, s, "type=local needs src=DIR"))?),
            tag: get("tag").unwrap_or_else(|| "latest".into()),
        },
        "inline" => {
            return Err(bad(
                flag,
                s,
                "an inline cache is read from its image: use type=registry,ref=IMAGE",
            ));
        }
        other => {
            return Err(bad(
                flag,
                s,
                &format!("cache type {other:?} is not supported (registry or local)"),
            ));
        }
    };
    for (k, _) in &f {
        if !matches!(k.as_str(), "type" | "ref" | "src" | "tag" | "digest") {
            return Err(bad(flag, s, &format!("unknown attribute {k:?}")));
        }
    }
    Ok(CacheImport { spec })
}

/// Parses one `--cache-to`.
pub fn parse_cache_to(s: &str) -> Result<CacheExport> {
    let flag = "--cache-to";
    let f = fields(s);
    let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let ty = get("type").ok_or_else(|| bad(flag, s, "type= is required (registry, local or inline)"))?;
    let spec = match ty.as_str() {
        "registry" => Target::Registry {
            reference: get("ref").ok_or_else(|| bad(flag, s, "type=registry needs ref=REPOSITORY:TAG"))?,
        },
        "local" => Target::Local {
            dir: PathBuf::from(get("dest").ok_or_else(|| bad(flag, s, "type=local needs dest=DIR"))?),
            tag: get("tag").unwrap_or_else(|| "latest".into()),
        },
        "inline" => Target::Inline,
        other => {
            return Err(bad(
                flag,
                s,
                &format!("cache type {other:?} is not supported (registry, local or inline)"),
            ));
        }
    };
    let max = match get("mode").as_deref() {
        None | Some("min") => false,
        Some("max") => true,
        Some(m) => return Err(bad(flag, s, &format!("mode {m:?}: use min or max"))),
    };
    if max && spec == Target::Inline {
        return Err(bad(flag, s, "an inline cache has mode=min only (as BuildKit)"));
    }
    let ignore_error = match get("ignore-error").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(bad(flag, s, &format!("ignore-error={v:?}: use true or false"))),
    };
    for (k, _) in &f {
        // Accepted and left to strata's defaults: the layers go as the store holds
        // them compressed (gzip), in an OCI image manifest.
        if !matches!(
            k.as_str(),
            "type"
                | "ref"
                | "dest"
                | "tag"
                | "mode"
                | "ignore-error"
                | "oci-mediatypes"
                | "image-manifest"
                | "compression"
                | "compression-level"
                | "force-compression"
        ) {
            return Err(bad(flag, s, &format!("unknown attribute {k:?}")));
        }
    }
    Ok(CacheExport {
        spec,
        max,
        ignore_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        assert_eq!(
            parse_cache_from("localhost:5000/app:cache").unwrap().spec,
            Target::Registry {
                reference: "localhost:5000/app:cache".into()
            }
        );
        assert_eq!(
            parse_cache_from("type=local,src=/tmp/c").unwrap().spec,
            Target::Local {
                dir: "/tmp/c".into(),
                tag: "latest".into()
            }
        );
        let to = parse_cache_to("type=registry,ref=r/x:c,mode=max").unwrap();
        assert!(to.max);
        assert_eq!(parse_cache_to("type=inline").unwrap().spec, Target::Inline);
        assert!(parse_cache_to("type=inline,mode=max").is_err());
        assert!(parse_cache_to("type=gha").is_err());
        assert!(parse_cache_to("type=local").is_err());
        assert!(parse_cache_to("type=registry,ref=x,mode=all").is_err());
        assert!(parse_cache_from("type=registry").is_err());
        assert!(parse_cache_from("type=registry,ref=x,bogus=1").is_err());
    }
}
