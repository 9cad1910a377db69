//! A store-wide advisory lock. Writers that add references to blobs hold it
//! shared from the first blob written to the metadata commit; deleters and
//! garbage collection hold it exclusive, so a blob that an import is about to
//! reference is never swept underneath it. A new container holds it shared
//! from resolving its image to taking a lease on it (see [`crate::Lease`]).
//!
//! `flock` locks belong to an open file: a process holding the lock must not
//! take it again exclusive (it would wait for itself); code that already
//! holds it exclusive passes it along (e.g. [`crate::Store::delete_image_locked`]).

use std::fs::File;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::error::{Error, Result};

pub struct StoreLock {
    _file: File,
    exclusive: bool,
}

impl StoreLock {
    fn take(root: &Path, op: FlockOperation) -> Result<StoreLock> {
        let path = root.join("lock");
        let file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            // A read-only store: readers (shared) lock the file as it is
            // (no writer can come); a deleter says why it cannot.
            Err(e)
                if e.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error())
                    && matches!(op, FlockOperation::LockShared) =>
            {
                std::fs::File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?
            }
            Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
        };
        flock(&file, op).map_err(|e| Error::io(format!("locking {}", path.display()), e.into()))?;
        Ok(StoreLock {
            _file: file,
            exclusive: matches!(op, FlockOperation::LockExclusive),
        })
    }

    pub fn shared(root: &Path) -> Result<StoreLock> {
        Self::take(root, FlockOperation::LockShared)
    }

    pub fn exclusive(root: &Path) -> Result<StoreLock> {
        Self::take(root, FlockOperation::LockExclusive)
    }

    /// The lock exclusive if no other process holds it now, else None.
    pub fn try_exclusive(root: &Path) -> Result<Option<StoreLock>> {
        match Self::take(root, FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}
