//! Turning what a user typed (`busybox`, `busybox:1`, `3f2a`, `sha256:…`,
//! `name@sha256:…`) into an image of the store, by Docker's order: a name
//! first, then an ID prefix.

use strata_oci::{Digest, Platform, Reference};
use strata_store::{ImageRecord, Store};

use crate::error::{Error, Result};

/// An image found from a user's words, and how it was named.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub image: ImageRecord,
    /// The reference when the user named a repository (tag defaulted to latest).
    pub reference: Option<Reference>,
    /// The manifest the name pointed to (the image's own manifest when the
    /// name is the digest of a multi-platform index it was pulled from).
    pub manifest: Digest,
    /// The multi-platform index the name points to, when the store keeps
    /// it as one (its platforms are [`Store::index_members`]); `image` is
    /// then the platform chosen (by default the host's).
    pub index: Option<Digest>,
}

pub fn resolve(store: &Store, s: &str) -> Result<Resolved> {
    let found = |id: &Digest, reference: Option<Reference>, manifest: Option<Digest>| -> Result<Resolved> {
        let image = store.image(id)?.ok_or_else(|| Error::NoSuchImage(s.to_string()))?;
        let is_manifest = |d: &Digest| {
            image
                .manifests
                .iter()
                .any(|(m, mt, _)| m == d && strata_oci::media::is_manifest(mt))
        };
        let index = match &manifest {
            Some(d) if !is_manifest(d) && !store.index_members(d)?.is_empty() => Some(d.clone()),
            _ => None,
        };
        let manifest = manifest
            .filter(is_manifest)
            .unwrap_or_else(|| image.primary_manifest().clone());
        Ok(Resolved {
            image,
            reference,
            manifest,
            index,
        })
    };
    // A full image ID.
    if s.starts_with("sha256:") {
        let d = Digest::parse(s).map_err(|e| Error::Invalid(e.to_string()))?;
        if store.image(&d)?.is_some() {
            return found(&d, None, None);
        }
        if let Some(id) = store.image_of_manifest(&d, None)? {
            return found(&id, None, Some(d));
        }
        return Err(Error::NoSuchImage(s.to_string()));
    }
    let parsed = Reference::parse(s);
    if let Ok(r) = &parsed {
        if let Some(d) = r.digest() {
            // The digest wins over the tag, and must belong to the repository.
            let repo = r.repository();
            return match store.image_of_manifest(d, Some(&repo))? {
                Some(id) => found(&id, Some(r.clone()), Some(d.clone())),
                None => Err(Error::NoSuchImage(r.familiar())),
            };
        }
        let r = r.clone().with_default_tag();
        if let Some((manifest, id)) = store.tag_target(&r)? {
            return found(&id, Some(r), Some(manifest));
        }
    }
    // An ID prefix, as `docker` accepts.
    if s.bytes().all(|b| b.is_ascii_hexdigit()) && !s.is_empty() {
        let ids = store.images_with_id_prefix(s)?;
        match ids.as_slice() {
            [one] => return found(one, None, None),
            [] => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "image ID prefix {s:?} is ambiguous: it matches {} images",
                    ids.len()
                )));
            }
        }
    }
    match parsed {
        Ok(r) => Err(Error::NoSuchImage(r.with_default_tag().familiar())),
        Err(e) => Err(Error::Reference(e)),
    }
}

/// [`resolve`] for one platform: of a multi-platform image, that platform's
/// image (an error naming the platforms held when the store lacks it); of
/// a single-platform image, the image when its platform matches (Docker's
/// error otherwise).
pub fn resolve_platform(store: &Store, s: &str, platform: &Platform) -> Result<Resolved> {
    let r = resolve(store, s)?;
    let name = || {
        r.reference
            .as_ref()
            .map(|r| r.familiar())
            .unwrap_or_else(|| s.to_string())
    };
    let Some(index) = &r.index else {
        let have = image_platform(&r.image);
        if platform.matches(&have) {
            return Ok(r);
        }
        return Err(Error::Invalid(format!(
            "image with reference {} was found but its platform ({have}) does not match the specified platform ({platform})",
            name()
        )));
    };
    let members = store.index_members(index)?;
    let held: Vec<String> = members
        .iter()
        .filter(|m| m.image.is_some())
        .map(|m| m.platform.to_string())
        .collect();
    match members.iter().find(|m| platform.matches(&m.platform)) {
        Some(m) => match &m.image {
            Some(id) => {
                let image = store.image(id)?.ok_or_else(|| Error::NoSuchImage(s.to_string()))?;
                Ok(Resolved {
                    image,
                    reference: r.reference.clone(),
                    manifest: m.manifest.digest.clone(),
                    index: r.index.clone(),
                })
            }
            None => Err(Error::Invalid(format!(
                "{}: platform {platform} is not in the store (it holds {}); pull it with `strata pull --platform {platform} {}`",
                name(),
                held.join(", "),
                name()
            ))),
        },
        None => Err(Error::Invalid(format!(
            "{}: no image for platform {platform} (the image has {})",
            name(),
            members
                .iter()
                .map(|m| m.platform.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The platform an image record says it is for.
pub fn image_platform(img: &ImageRecord) -> Platform {
    Platform {
        architecture: img.arch.clone(),
        os: img.os.clone(),
        variant: img.variant.clone(),
        ..Default::default()
    }
}
