//! A container's init layer, as Docker's (`daemon/initlayer`): the mount
//! points and files the runtime puts in every container, in a lower layer
//! of the container's own between the image and its writable layer. So
//! `diff` and `commit` never see them, even for an image without `/etc`,
//! `/proc` or `/dev` (a `FROM scratch` binary): what Docker shows.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Ctx, Result};

/// The directory of a snapshot that holds its init layer.
pub(crate) const INIT_DIR: &str = "init";

enum Entry {
    Dir,
    File,
    Symlink(&'static str),
}

/// Docker's list (`setup_unix.go`), parents made as needed, all 0755.
const ENTRIES: &[(&str, Entry)] = &[
    ("dev/pts", Entry::Dir),
    ("dev/shm", Entry::Dir),
    ("proc", Entry::Dir),
    ("sys", Entry::Dir),
    (".dockerenv", Entry::File),
    ("etc/resolv.conf", Entry::File),
    ("etc/hosts", Entry::File),
    ("etc/hostname", Entry::File),
    ("dev/console", Entry::File),
    ("etc/mtab", Entry::Symlink("/proc/mounts")),
];

/// Fills the empty directory `dir` with the init layer.
pub(crate) fn make_init_layer(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true).mode(0o755);
    builder.create(dir).ctx(|| format!("creating {}", dir.display()))?;
    for (rel, entry) in ENTRIES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            builder
                .create(parent)
                .ctx(|| format!("creating {}", parent.display()))?;
        }
        match entry {
            Entry::Dir => builder.create(&path),
            Entry::File => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&path)
                .map(drop),
            Entry::Symlink(target) => std::os::unix::fs::symlink(target, &path),
        }
        .ctx(|| format!("creating {}", path.display()))?;
    }
    // 0755 whatever the umask.
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).ctx(|| format!("chmod {}", d.display()))?;
        for e in fs::read_dir(&d).ctx(|| format!("reading {}", d.display()))? {
            let e = e.ctx(|| format!("reading {}", d.display()))?;
            let t = e.file_type().ctx(|| format!("reading {}", d.display()))?;
            if t.is_dir() {
                dirs.push(e.path());
            } else if t.is_file() {
                fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))
                    .ctx(|| format!("chmod {}", e.path().display()))?;
            }
        }
    }
    Ok(())
}
