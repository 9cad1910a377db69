//! Pinning a Dockerfile's base images: every `FROM name[:tag]` resolved to
//! the digest its tag names at the registry now, written back as
//! `name:tag@sha256:…`, and checked later for staleness. The caller parses
//! the Dockerfile and hands over its `FROM` lines ([`FromLine`]). Each base
//! is resolved as a copy resolves its source ([`Source::resolve`] on the
//! registry location), and an index must hold the wanted platform.

use std::collections::HashMap;

use strata_oci::{Digest, Document, Platform, Reference};
use strata_registry::{Client, ClientOptions};

use crate::registry::RegistryLocation;
use crate::{Result, Source, TransferError, read_document_verified};

/// One `FROM` of a Dockerfile, as its parser read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromLine {
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The base image as written.
    pub image: String,
    /// The stage's name (`AS NAME`).
    pub stage_name: Option<String>,
}

#[derive(Clone, Default)]
pub struct PinOptions {
    pub client: ClientOptions,
    /// The platform a multi-platform base must offer (default: the host's).
    pub platform: Option<Platform>,
}

/// One `FROM` line and what pinning makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinLine {
    /// 1-based line of the `FROM`.
    pub line: usize,
    /// The image as written.
    pub image: String,
    pub action: PinAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAction {
    /// Not a registry image, or not one that can be resolved here.
    Skip(String),
    /// Resolved: the tag's digest at the registry now, and the digest the
    /// line already carries (if any).
    Resolved {
        /// `name:tag` (familiar form).
        name: String,
        current: Digest,
        pinned: Option<Digest>,
        /// What the image becomes in the Dockerfile.
        replacement: String,
    },
}

/// `name[:tag]` with the tag (default `latest`) kept as written, the digest dropped.
fn written_name_with_tag(image: &str) -> String {
    let base = image.split('@').next().unwrap_or(image);
    let last = base.rsplit('/').next().unwrap_or(base);
    if last.contains(':') {
        base.to_string()
    } else {
        format!("{base}:latest")
    }
}

/// Resolves every `FROM` of a Dockerfile.
pub fn plan(froms: &[FromLine], opts: &PinOptions) -> Result<Vec<PinLine>> {
    strata_registry::block_on(plan_async(froms, opts)).map_err(TransferError::location)?
}

/// The digest `tagged` names now: its index (which must list `wanted`) or
/// its manifest.
async fn current_digest(location: &RegistryLocation, wanted: &Platform) -> Result<Digest> {
    let top = location.resolve(None).await?;
    if strata_oci::media::is_index(&top.media_type) {
        let bytes = read_document_verified(&top, location.read_document(&top).await?)?;
        match Document::parse(&bytes, Some(&top.media_type)) {
            Ok(Document::Index(ix)) => {
                crate::copy::platform_manifest(&ix, wanted)?;
            }
            Ok(Document::Manifest(_)) => {}
            Err(e) => return Err(TransferError::Invalid(format!("index {}: {e}", top.digest))),
        }
    }
    Ok(top.digest)
}

pub async fn plan_async(froms: &[FromLine], opts: &PinOptions) -> Result<Vec<PinLine>> {
    let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
    let mut clients: HashMap<String, Client> = HashMap::new();
    let mut stage_names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for stage in froms {
        let image = stage.image.clone();
        let skip = |reason: &str| PinLine {
            line: stage.line,
            image: image.clone(),
            action: PinAction::Skip(reason.to_string()),
        };
        let lower = image.to_lowercase();
        if lower == "scratch" {
            out.push(skip("scratch is not an image"));
        } else if stage_names.contains(&lower) {
            out.push(skip("an earlier build stage"));
        } else if image.contains('$') {
            out.push(skip("uses a build argument; pin the value the ARG gives instead"));
        } else {
            let r = Reference::parse(&image)
                .map_err(|e| TransferError::Invalid(format!("line {}: FROM {image}: {e}", stage.line)))?;
            if r.digest().is_some() && r.tag().is_none() {
                out.push(skip("pinned by digest without a tag: nothing to compare it with"));
            } else {
                let tagged = r.clone().without_digest().with_default_tag();
                let client = match clients.get(tagged.domain()) {
                    Some(c) => c.clone(),
                    None => {
                        let c = Client::for_reference(&tagged, opts.client.clone()).map_err(TransferError::location)?;
                        clients.insert(tagged.domain().to_string(), c.clone());
                        c
                    }
                };
                let location = RegistryLocation::with_client(client, &tagged);
                let current = current_digest(&location, &wanted)
                    .await
                    .map_err(|e| e.context(format!("line {}: resolving {}", stage.line, tagged.familiar())))?;
                out.push(PinLine {
                    line: stage.line,
                    image: image.clone(),
                    action: PinAction::Resolved {
                        name: tagged.familiar(),
                        replacement: format!("{}@{current}", written_name_with_tag(&image)),
                        current,
                        pinned: r.digest().cloned(),
                    },
                });
            }
        }
        if let Some(n) = &stage.stage_name {
            stage_names.push(n.to_lowercase());
        }
    }
    Ok(out)
}

/// The Dockerfile with each resolved `FROM` image replaced by its pinned
/// form (only the image word of each `FROM` line changes).
pub fn rewrite(dockerfile: &str, lines: &[PinLine]) -> String {
    let mut text: Vec<String> = dockerfile.split_inclusive('\n').map(str::to_string).collect();
    for l in lines {
        let PinAction::Resolved { replacement, .. } = &l.action else {
            continue;
        };
        // The image may sit on a continuation line after the FROM.
        for idx in l.line.saturating_sub(1)..text.len().min(l.line.saturating_sub(1) + 16) {
            if let Some(new) = replace_word(&text[idx], &l.image, replacement, idx + 1 == l.line) {
                text[idx] = new;
                break;
            }
        }
    }
    text.concat()
}

/// Replaces the whitespace-separated word `word` in `line` (after the
/// `FROM` keyword and its flags when `from_line`).
fn replace_word(line: &str, word: &str, replacement: &str, from_line: bool) -> Option<String> {
    let mut pos = 0;
    let mut seen_from = !from_line;
    for w in line.split_whitespace() {
        let start = pos + line[pos..].find(w)?;
        pos = start + w.len();
        if !seen_from {
            seen_from = w.eq_ignore_ascii_case("from");
            continue;
        }
        if w.starts_with("--") {
            continue;
        }
        if w == word {
            return Some(format!("{}{replacement}{}", &line[..start], &line[pos..]));
        }
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_their_form() {
        assert_eq!(written_name_with_tag("busybox"), "busybox:latest");
        assert_eq!(written_name_with_tag("localhost:5000/a/b"), "localhost:5000/a/b:latest");
        assert_eq!(
            written_name_with_tag("localhost:5000/a/b:1@sha256:00"),
            "localhost:5000/a/b:1"
        );
    }

    #[test]
    fn rewrite_touches_only_the_image() {
        let d = Digest::sha256_of(b"x");
        let df = "FROM --platform=linux/amd64 busybox AS base\nRUN echo busybox\nFROM base\n";
        let lines = vec![PinLine {
            line: 1,
            image: "busybox".into(),
            action: PinAction::Resolved {
                name: "busybox:latest".into(),
                current: d.clone(),
                pinned: None,
                replacement: format!("busybox:latest@{d}"),
            },
        }];
        assert_eq!(
            rewrite(df, &lines),
            format!("FROM --platform=linux/amd64 busybox:latest@{d} AS base\nRUN echo busybox\nFROM base\n")
        );
    }
}
