//! Where a cache lives: a registry repository or an OCI layout directory,
//! both strata-transfer locations (the one transfer's verified reads and
//! writes).

use std::path::Path;

use strata_oci::{Descriptor, Reference};
use strata_transfer::layout::Layout;
use strata_transfer::registry::RegistryLocation;
use strata_transfer::{BlobRole, BlobStream, Sink, Source, TransferError};

use super::spec::Target;

pub(crate) enum Loc {
    Registry(Box<RegistryLocation>),
    Layout(Layout),
}

type R<T> = std::result::Result<T, TransferError>;

impl Loc {
    /// The location of `t` to read from; `tag`: what names the cache in it.
    pub fn for_reading(t: &Target, client: &strata_registry::ClientOptions) -> R<(Loc, String)> {
        match t {
            Target::Registry { reference } => {
                let r = Reference::parse(reference)
                    .map_err(|e| TransferError::Invalid(format!("{reference:?}: {e}")))?
                    .with_default_tag();
                let name = match (r.digest(), r.tag()) {
                    (Some(d), _) => d.to_string(),
                    (None, Some(t)) => t.to_string(),
                    (None, None) => "latest".into(),
                };
                Ok((
                    Loc::Registry(Box::new(RegistryLocation::new(&r, client.clone())?)),
                    name,
                ))
            }
            Target::Local { dir, tag } => Ok((Loc::Layout(Layout::open(dir)?), tag.clone())),
            Target::Inline => Err(TransferError::Invalid("an inline cache has no location".into())),
        }
    }

    /// The location of `t` to write to.
    pub fn for_writing(t: &Target, client: &strata_registry::ClientOptions) -> R<(Loc, String)> {
        match t {
            Target::Local { dir, tag } => Ok((Loc::Layout(Layout::create(dir)?), tag.clone())),
            _ => Loc::for_reading(t, client),
        }
    }

    pub async fn resolve(&self, name: &str) -> R<Descriptor> {
        match self {
            Loc::Registry(l) => l.resolve(Some(name)).await,
            Loc::Layout(l) => l.resolve(Some(name)).await,
        }
    }

    /// A document, checked against its digest.
    pub async fn read_document(&self, desc: &Descriptor) -> R<Vec<u8>> {
        let bytes = match self {
            Loc::Registry(l) => l.read_document(desc).await?,
            Loc::Layout(l) => l.read_document(desc).await?,
        };
        strata_transfer::read_document_verified(desc, bytes)
    }

    /// A blob, checked against its digest and size as it is read.
    pub async fn open_blob(&self, desc: &Descriptor) -> R<BlobStream> {
        let s = match self {
            Loc::Registry(l) => l.open_blob(desc).await?,
            Loc::Layout(l) => l.open_blob(desc).await?,
        };
        Ok(Box::pin(strata_transfer::VerifyingReader::new(s, desc)))
    }

    pub async fn has_blob(&self, desc: &Descriptor) -> R<bool> {
        match self {
            Loc::Registry(l) => l.has_blob(desc, &BlobRole::Other).await,
            Loc::Layout(l) => l.has_blob(desc, &BlobRole::Other).await,
        }
    }

    /// Puts a blob from a file of the store (verified on the way).
    pub async fn put_file(&self, desc: &Descriptor, path: &Path) -> R<()> {
        let f = tokio::fs::File::open(path)
            .await
            .map_err(|e| TransferError::io(format!("opening {}", path.display()), e))?;
        let data: BlobStream = Box::pin(strata_transfer::VerifyingReader::new(f, desc));
        match self {
            Loc::Registry(l) => l.put_blob(desc, &BlobRole::Other, data).await,
            Loc::Layout(l) => l.put_blob(desc, &BlobRole::Other, data).await,
        }
    }

    pub async fn put_bytes(&self, desc: &Descriptor, bytes: Vec<u8>) -> R<()> {
        let data: BlobStream = Box::pin(std::io::Cursor::new(bytes));
        match self {
            Loc::Registry(l) => l.put_blob(desc, &BlobRole::Other, data).await,
            Loc::Layout(l) => l.put_blob(desc, &BlobRole::Other, data).await,
        }
    }

    /// Puts the root document and names it `tag`.
    pub async fn put_root(&self, desc: &Descriptor, bytes: &[u8], tag: &str) -> R<()> {
        match self {
            Loc::Registry(l) => {
                l.put_document(desc, bytes).await?;
                l.finish(desc, &[tag.to_string()]).await
            }
            Loc::Layout(l) => {
                l.put_document(desc, bytes).await?;
                l.finish(desc, &[tag.to_string()]).await
            }
        }
    }
}
