//! Any location behind one type, for callers that learn the locations at
//! run time (`strata copy`): an enum over the locations that forwards each
//! call (the traits' futures are not object-safe; the enum is cheaper anyway).

use std::path::PathBuf;

use strata_registry::ClientOptions;

use crate::docker_archive::DockerArchive;
use crate::layout::Layout;
use crate::location::LocationSpec;
use crate::oci_archive::OciArchive;
use crate::registry::RegistryLocation;
use crate::store::StoreLocation;
use crate::{BlobRole, BlobStream, Descriptor, MountFrom, Result, Sink, Source};

/// What opening a location needs besides its spec.
#[derive(Debug, Clone)]
pub struct LocationContext {
    /// The local store (`strata:`).
    pub store_root: PathBuf,
    /// Client options for a registry source and a registry destination.
    pub source_client: ClientOptions,
    pub destination_client: ClientOptions,
}

/// One of the locations (made once per copy: their sizes do not matter).
#[allow(clippy::large_enum_variant)]
pub enum AnyLocation {
    Registry(RegistryLocation),
    Layout(Layout),
    OciArchive(OciArchive),
    DockerArchive(DockerArchive),
    Store(StoreLocation),
}

/// Opens `spec` to read from.
pub async fn open_source(spec: &LocationSpec, ctx: &LocationContext) -> Result<AnyLocation> {
    Ok(match spec {
        LocationSpec::Registry(r) => AnyLocation::Registry(RegistryLocation::new(r, ctx.source_client.clone())?),
        LocationSpec::Layout { dir, .. } => AnyLocation::Layout(Layout::open(dir)?),
        LocationSpec::OciArchive { file, .. } => AnyLocation::OciArchive(OciArchive::open(file).await?),
        LocationSpec::DockerArchive { file, .. } => AnyLocation::DockerArchive(DockerArchive::open(file).await?),
        LocationSpec::Store { .. } => AnyLocation::Store(StoreLocation::open(&ctx.store_root)?),
    })
}

/// Opens `spec` to write into.
pub async fn create_sink(spec: &LocationSpec, ctx: &LocationContext) -> Result<AnyLocation> {
    Ok(match spec {
        LocationSpec::Registry(r) => AnyLocation::Registry(RegistryLocation::new(r, ctx.destination_client.clone())?),
        LocationSpec::Layout { dir, .. } => AnyLocation::Layout(Layout::create(dir)?),
        LocationSpec::OciArchive { file, .. } => AnyLocation::OciArchive(OciArchive::create(file)?),
        LocationSpec::DockerArchive { file, .. } => AnyLocation::DockerArchive(DockerArchive::create(file)?),
        LocationSpec::Store { .. } => AnyLocation::Store(StoreLocation::open(&ctx.store_root)?),
    })
}

macro_rules! each {
    ($self:expr, $l:ident => $e:expr) => {
        match $self {
            AnyLocation::Registry($l) => $e,
            AnyLocation::Layout($l) => $e,
            AnyLocation::OciArchive($l) => $e,
            AnyLocation::DockerArchive($l) => $e,
            AnyLocation::Store($l) => $e,
        }
    };
}

impl Source for AnyLocation {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        each!(self, l => Source::resolve(l, reference).await)
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        each!(self, l => l.read_document(desc).await)
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        each!(self, l => l.open_blob(desc).await)
    }

    fn mount_from(&self) -> Vec<MountFrom> {
        each!(self, l => l.mount_from())
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        each!(self, l => l.blob_file(desc))
    }

    fn vouches_for_digests(&self) -> bool {
        each!(self, l => l.vouches_for_digests())
    }
}

impl Sink for AnyLocation {
    async fn has_blob(&self, desc: &Descriptor, role: &BlobRole) -> Result<bool> {
        each!(self, l => l.has_blob(desc, role).await)
    }

    async fn put_blob(&self, desc: &Descriptor, role: &BlobRole, data: BlobStream) -> Result<()> {
        each!(self, l => l.put_blob(desc, role, data).await)
    }

    async fn put_blob_file(
        &self,
        desc: &Descriptor,
        role: &BlobRole,
        data: BlobStream,
        file: &std::path::Path,
    ) -> Result<()> {
        each!(self, l => l.put_blob_file(desc, role, data, file).await)
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &MountFrom) -> Result<bool> {
        each!(self, l => l.mount_blob(desc, from).await)
    }

    fn keeps_partial_indexes(&self) -> bool {
        each!(self, l => l.keeps_partial_indexes())
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        each!(self, l => l.put_document(desc, bytes).await)
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        each!(self, l => l.finish(root, names).await)
    }
}
