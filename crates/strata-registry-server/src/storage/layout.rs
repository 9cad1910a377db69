//! Where things live in a driver's key space (distribution's layout, simplified):
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>                               blob bytes
//! repositories/<name>/_layers/<alg>/<hex>                    blob linked into a repository
//! repositories/<name>/_manifests/revisions/<alg>/<hex>       manifest in a repository (holds its media type)
//! repositories/<name>/_manifests/tags/<tag>                  tag (holds a digest)
//! repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   referrer descriptor (JSON)
//! _uploads/<id>/...                                          upload sessions (driver-specific)
//! ```
//!
//! A repository name's components cannot start with `_`, so `_layers` and
//! friends never collide with a nested repository.

use strata_oci::Digest;

pub const REPOSITORIES: &str = "repositories";
pub const BLOBS: &str = "blobs";
pub const UPLOADS: &str = "_uploads";

pub fn blob(d: &Digest) -> String {
    format!("blobs/{}/{}/{}", d.algorithm().name(), &d.hex()[..2], d.hex())
}

pub fn repo(name: &str) -> String {
    format!("repositories/{name}")
}

pub fn layer_link(name: &str, d: &Digest) -> String {
    format!("repositories/{name}/_layers/{}/{}", d.algorithm().name(), d.hex())
}

pub fn revision(name: &str, d: &Digest) -> String {
    format!(
        "repositories/{name}/_manifests/revisions/{}/{}",
        d.algorithm().name(),
        d.hex()
    )
}

pub fn revisions(name: &str) -> String {
    format!("repositories/{name}/_manifests/revisions")
}

pub fn tags(name: &str) -> String {
    format!("repositories/{name}/_manifests/tags")
}

pub fn tag(name: &str, tag: &str) -> String {
    format!("repositories/{name}/_manifests/tags/{tag}")
}

pub fn referrers(name: &str, subject: &Digest) -> String {
    format!(
        "repositories/{name}/_referrers/{}/{}",
        subject.algorithm().name(),
        subject.hex()
    )
}

pub fn referrer(name: &str, subject: &Digest, d: &Digest) -> String {
    format!("{}/{}-{}", referrers(name, subject), d.algorithm().name(), d.hex())
}

/// Parses `<alg>/<hex>` pieces back into a digest (None for anything else).
pub fn digest_from(alg: &str, hex: &str) -> Option<Digest> {
    Digest::parse(&format!("{alg}:{hex}")).ok()
}
