//! An OCI image-layout directory (`oci:DIR[:REF]`): `oci-layout`,
//! `index.json` (names in `org.opencontainers.image.ref.name`) and
//! `blobs/<alg>/<hex>`, as skopeo, umoci and oci-image-tool read it.
//!
//! As a sink, blobs are staged in a private directory inside the layout and
//! moved into `blobs/` only by [`Sink::finish`], together with the new
//! `index.json` (written to a temporary file and renamed): a copy that
//! fails leaves the layout as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use strata_oci::{Descriptor, Digest, Index, media};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::verify::from_io;
use crate::{BlobRole, BlobStream, Result, Sink, Source, TransferError};

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image layout on disk.
pub struct Layout {
    dir: PathBuf,
    /// Sink only: where blobs wait for `finish` (removed on drop).
    staging: Mutex<Option<tempfile::TempDir>>,
}

impl Layout {
    /// An existing layout, to read (its `oci-layout` and `index.json` must be there).
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        let text = std::fs::read_to_string(&marker)
            .map_err(|e| TransferError::io(format!("reading {}", marker.display()), e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| TransferError::Invalid(format!("{}: {e}", marker.display())))?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()).is_none() {
            return Err(TransferError::Invalid(format!(
                "{}: no imageLayoutVersion: not an OCI layout",
                marker.display()
            )));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            staging: Mutex::new(None),
        })
    }

    /// A layout to write into: created when missing, added to when it exists.
    pub fn create(dir: &Path) -> Result<Layout> {
        std::fs::create_dir_all(dir.join("blobs"))
            .map_err(|e| TransferError::io(format!("creating {}", dir.display()), e))?;
        let staging = tempfile::Builder::new()
            .prefix(".strata-staging-")
            .tempdir_in(dir)
            .map_err(|e| TransferError::io(format!("creating a staging directory in {}", dir.display()), e))?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            staging: Mutex::new(Some(staging)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.dir.join("blobs").join(d.algorithm().name()).join(d.hex())
    }

    fn staged_path(&self, d: &Digest) -> Option<PathBuf> {
        let g = self.staging.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref()
            .map(|t| t.path().join(format!("{}-{}", d.algorithm().name(), d.hex())))
    }

    /// The layout's `index.json` (an empty index when there is none yet).
    pub fn index(&self) -> Result<Index> {
        let path = self.dir.join("index.json");
        match std::fs::read(&path) {
            Ok(b) => {
                if b.len() as u64 > crate::MAX_DOCUMENT_SIZE {
                    return Err(TransferError::Invalid(format!(
                        "{} is larger than 4 MiB",
                        path.display()
                    )));
                }
                serde_json::from_slice(&b).map_err(|e| TransferError::Invalid(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                schema_version: 2,
                media_type: Some(media::OCI_INDEX.to_string()),
                artifact_type: None,
                manifests: Vec::new(),
                subject: None,
                annotations: None,
            }),
            Err(e) => Err(TransferError::io(format!("reading {}", path.display()), e)),
        }
    }
}

impl Source for Layout {
    async fn resolve(&self, reference: Option<&str>) -> Result<Descriptor> {
        let index = self.index()?;
        let name_of = |d: &Descriptor| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)).cloned();
        let found = match reference {
            None if index.manifests.len() == 1 => index.manifests.first(),
            None => {
                return Err(TransferError::Invalid(format!(
                    "{} holds {} images: name one (oci:DIR:REF)",
                    self.dir.display(),
                    index.manifests.len()
                )));
            }
            Some(r) if r.starts_with("sha256:") => index.manifests.iter().find(|d| d.digest.to_string() == r),
            Some(r) => index.manifests.iter().find(|d| name_of(d).as_deref() == Some(r)),
        };
        let mut desc = found.cloned().ok_or_else(|| TransferError::NotFound {
            what: format!("image {:?} in {}", reference.unwrap_or(""), self.dir.display()),
        })?;
        desc.annotations = None;
        Ok(desc)
    }

    async fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let path = self.blob_path(&desc.digest);
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| TransferError::io(format!("opening {}", path.display()), e))?;
        let mut out = Vec::new();
        f.take(crate::MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|e| TransferError::io(format!("reading {}", path.display()), e))?;
        Ok(out)
    }

    async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let path = self.blob_path(&desc.digest);
        let f = std::fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TransferError::NotFound {
                    what: format!("blob {} in {}", desc.digest, self.dir.display()),
                }
            } else {
                TransferError::io(format!("opening {}", path.display()), e)
            }
        })?;
        Ok(crate::read_ahead::stream(f))
    }
}

impl Sink for Layout {
    async fn has_blob(&self, desc: &Descriptor, _role: &BlobRole) -> Result<bool> {
        // A blob already named in the layout holds its digest's bytes (the layout's promise).
        Ok(tokio::fs::metadata(self.blob_path(&desc.digest))
            .await
            .is_ok_and(|m| m.len() == desc.size))
    }

    async fn put_blob(&self, desc: &Descriptor, _role: &BlobRole, mut data: BlobStream) -> Result<()> {
        let path = self
            .staged_path(&desc.digest)
            .ok_or_else(|| TransferError::Invalid("the layout was opened for reading".into()))?;
        let what = format!("blob {}", desc.digest);
        let mut f = tokio::fs::File::create(&path)
            .await
            .map_err(|e| TransferError::io(format!("creating {}", path.display()), e))?;
        // Large reads and writes: each is a trip to the blocking pool.
        let mut buf = vec![0u8; 1 << 20];
        let copied: std::io::Result<()> = async {
            loop {
                let mut n = 0;
                while n < buf.len() {
                    match data.read(&mut buf[n..]).await? {
                        0 => break,
                        k => n += k,
                    }
                }
                f.write_all(&buf[..n]).await?;
                if n < buf.len() {
                    return Ok(());
                }
            }
        }
        .await;
        if let Err(e) = copied {
            drop(f);
            let _ = tokio::fs::remove_file(&path).await;
            return Err(from_io(e, &what));
        }
        f.flush().await.map_err(|e| TransferError::io(&what, e))?;
        Ok(())
    }

    async fn put_document(&self, desc: &Descriptor, bytes: &[u8]) -> Result<()> {
        let path = self
            .staged_path(&desc.digest)
            .ok_or_else(|| TransferError::Invalid("the layout was opened for reading".into()))?;
        tokio::fs::write(&path, bytes)
            .await
            .map_err(|e| TransferError::io(format!("writing {}", path.display()), e))
    }

    async fn finish(&self, root: &Descriptor, names: &[String]) -> Result<()> {
        let staging = self
            .staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| TransferError::Invalid("the layout was opened for reading".into()))?;
        self.name_staged(staging.path())?;
        drop(staging);
        let mut index = self.index()?;
        let mut add = |name: Option<&String>| {
            let mut d = root.clone();
            if let Some(n) = name {
                index
                    .manifests
                    .retain(|m| m.annotations.as_ref().and_then(|a| a.get(REF_NAME)) != Some(n));
                d.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), n.clone())]));
            } else if index
                .manifests
                .iter()
                .any(|m| m.digest == d.digest && m.annotations.is_none())
            {
                return;
            }
            index.manifests.push(d);
        };
        if names.is_empty() {
            add(None);
        }
        for n in names {
            add(Some(n));
        }
        let bytes = serde_json::to_vec(&index).map_err(|e| TransferError::Invalid(e.to_string()))?;
        write_atomic(&self.dir.join("index.json"), &bytes)
    }
}

impl Layout {
    /// Moves what was staged into `blobs/` and writes `oci-layout`.
    fn name_staged(&self, staging: &Path) -> Result<()> {
        let io = |what: String| move |e| TransferError::io(what, e);
        for entry in std::fs::read_dir(staging).map_err(io(format!("reading {}", staging.display())))? {
            let entry = entry.map_err(io("reading the staging directory".into()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((alg, hex)) = name.split_once('-') else {
                continue;
            };
            let dir = self.dir.join("blobs").join(alg);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            std::fs::rename(entry.path(), dir.join(hex)).map_err(io(format!("moving blob {alg}:{hex}")))?;
        }
        let layout_file = self.dir.join("oci-layout");
        if !layout_file.exists() {
            write_atomic(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        Ok(())
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| TransferError::io(format!("writing {}", path.display()), e))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .map_err(|e| TransferError::io(format!("writing {}", path.display()), e))?;
    tmp.persist(path)
        .map_err(|e| TransferError::io(format!("writing {}", path.display()), e.error))?;
    Ok(())
}
