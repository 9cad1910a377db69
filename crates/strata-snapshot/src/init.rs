//! A container's init layer, as Docker's (`daemon/initlayer`): the mount
//! points and files the runtime puts in every container, in a lower layer
//! of the container's own between the image and its writable layer. So
//! `diff` and `commit` never see them, even for an image without `/etc`,
//! `/proc` or `/dev` (a `FROM scratch` binary): what Docker shows.
//!
//! Unlike Docker's, it holds only what the image lacks: an image's own
//! `/etc/hosts` or `/etc/mtab` is not hidden (with `--network none` or
//! `host` nothing is mounted over it), and a directory it needs that the
//! image has (`/etc` for `/etc/hosts`) is made with the image's mode, owner
//! and times, so the merged view shows the image's (an overlay shows a
//! directory's attributes from the topmost layer that has it).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Ctx, Result};

/// The directory of a snapshot that holds its init layer.
pub(crate) const INIT_DIR: &str = "init";

enum Entry {
    Dir,
    File,
    Symlink(&'static str),
}

/// Docker's list (`setup_unix.go`), 0755, parents made as needed.
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

/// What the image (its layers, top first) has at a path.
enum InImage {
    Absent,
    Dir(fs::Metadata),
    /// Something else, or a non-directory on the way to it.
    Other,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// The merged view of `lowers_top_first` at `rel` (whiteouts, opaque
/// directories and non-directories on the way applied). Lookups never
/// follow a symlink: a component that is one is `Other`.
fn in_image(lowers_top_first: &[PathBuf], rel: &Path) -> InImage {
    let comps: Vec<_> = rel.components().collect();
    for layer in lowers_top_first {
        let mut cur = layer.clone();
        let mut last_layer = false;
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if is_whiteout(&m) => return InImage::Absent,
                Ok(m) if i + 1 == comps.len() => {
                    return if m.is_dir() { InImage::Dir(m) } else { InImage::Other };
                }
                Ok(m) if m.is_dir() => {
                    // Below an opaque directory no lower layer counts.
                    last_layer |= fs::File::open(&cur).is_ok_and(strata_rootless::is_opaque_dir);
                }
                Ok(_) => return InImage::Other,
                Err(_) => break,
            }
        }
        if last_layer {
            return InImage::Absent;
        }
    }
    InImage::Absent
}

/// Fills `dir` (made here) with the init layer for a container of the
/// image whose layer directories are `lowers_top_first`.
pub(crate) fn make_init_layer(dir: &Path, lowers_top_first: &[PathBuf]) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.mode(0o755);
    builder.create(dir).ctx(|| format!("creating {}", dir.display()))?;
    set_mode(dir, 0o755)?;
    // The image's directories' times, set last (entries made inside change them).
    let mut copied: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    'entries: for (rel, entry) in ENTRIES {
        let rel = Path::new(rel);
        if !matches!(in_image(lowers_top_first, rel), InImage::Absent) {
            continue;
        }
        // Parents: as the image has them, or new.
        let mut parents: Vec<&Path> = rel.ancestors().skip(1).filter(|p| !p.as_os_str().is_empty()).collect();
        parents.reverse();
        for p in parents {
            let at = dir.join(p);
            if at.exists() {
                continue;
            }
            match in_image(lowers_top_first, p) {
                InImage::Other => continue 'entries,
                InImage::Dir(m) => {
                    builder.create(&at).ctx(|| format!("creating {}", at.display()))?;
                    copy_owner_and_mode(&at, &m)?;
                    copied.push((at, m));
                }
                InImage::Absent => {
                    builder.create(&at).ctx(|| format!("creating {}", at.display()))?;
                    set_mode(&at, 0o755)?;
                }
            }
        }
        let path = dir.join(rel);
        match entry {
            Entry::Dir => builder
                .create(&path)
                .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755))),
            Entry::File => fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&path)
                .and_then(|f| f.set_permissions(fs::Permissions::from_mode(0o755))),
            Entry::Symlink(target) => std::os::unix::fs::symlink(target, &path),
        }
        .ctx(|| format!("creating {}", path.display()))?;
    }
    for (path, m) in copied.iter().rev() {
        let times = fs::FileTimes::new()
            .set_accessed(m.accessed().unwrap_or(std::time::UNIX_EPOCH))
            .set_modified(m.modified().unwrap_or(std::time::UNIX_EPOCH));
        fs::File::open(path)
            .and_then(|f| f.set_times(times))
            .ctx(|| format!("setting the times of {}", path.display()))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx(|| format!("chmod {}", path.display()))
}

/// The image's directory's owner and mode on its init-layer twin.
fn copy_owner_and_mode(path: &Path, m: &fs::Metadata) -> Result<()> {
    strata_rootless::tolerate_chown(rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(m.uid())),
        Some(rustix::fs::Gid::from_raw(m.gid())),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    ))
    .ctx(|| format!("chown {}", path.display()))?;
    set_mode(path, m.mode() & 0o7777)
}
