//! Disk usage of containers and volumes (`system df`).

use std::path::Path;

use crate::error::Result;

use crate::engine::Containers;

#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: String,
    pub created: String,
    pub status: crate::Status,
    /// Bytes in the container's writable layer.
    pub size: u64,
    /// Volumes it mounts (named and anonymous).
    pub volumes: usize,
}

#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub name: String,
    /// Containers that mount it.
    pub links: usize,
    pub size: u64,
}

/// Bytes of regular files under `dir` (each inode once), without following
/// symlinks: iterative, so a tree of any depth is counted whole.
pub fn tree_size(dir: &Path) -> u64 {
    sized_tree(dir, false)
}

/// Docker's `pkg/directory.Size` (`ps -s`): [`tree_size`] with each
/// symlink's own length counted too.
pub fn directory_size(dir: &Path) -> u64 {
    sized_tree(dir, true)
}

fn sized_tree(dir: &Path, symlinks: bool) -> u64 {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use std::ffi::CStr;
    use std::os::fd::OwnedFd;

    struct Sizer {
        seen: std::collections::HashSet<(u64, u64)>,
        total: u64,
        symlinks: bool,
    }
    impl strata_layer::TreeVisitor for Sizer {
        type Error = std::io::Error;

        fn fail(&self, _: &Path, e: std::io::Error) -> std::io::Error {
            e
        }

        fn entry(&mut self, parent: &OwnedFd, name: &CStr, _: &Path) -> std::io::Result<Option<OwnedFd>> {
            let Ok(st) = rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) else {
                return Ok(None);
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Ok(rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()),
                FileType::RegularFile => {
                    if self.seen.insert((st.st_dev, st.st_ino)) {
                        self.total += st.st_size as u64;
                    }
                    Ok(None)
                }
                FileType::Symlink if self.symlinks => {
                    if self.seen.insert((st.st_dev, st.st_ino)) {
                        self.total += st.st_size as u64;
                    }
                    Ok(None)
                }
                _ => Ok(None),
            }
        }
    }
    let Ok(top) = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return 0;
    };
    let mut s = Sizer {
        seen: Default::default(),
        total: 0,
        symlinks,
    };
    // A directory that cannot be read counts as empty, as before.
    let _ = strata_layer::walk_tree(&top, Path::new(""), false, &mut s);
    s.total
}

impl Containers {
    pub fn container_usage(&self) -> Result<Vec<ContainerUsage>> {
        let mut out = Vec::new();
        for rec in self.list()? {
            let dir = self.snap.snapshot_dir(&rec.id);
            // Overlay: the upper dir is the container's own data; vfs: the whole copy.
            let size = if dir.join("upper").is_dir() {
                tree_size(&dir.join("upper"))
            } else {
                tree_size(&dir.join("rootfs"))
            };
            out.push(ContainerUsage {
                status: self.status(&rec),
                id: rec.id.clone(),
                name: rec.name.clone(),
                image: rec.image_ref.clone(),
                command: rec.args.join(" "),
                created: rec.created.clone(),
                size,
                volumes: rec.mounts.iter().filter(|m| m.kind != "bind").count(),
            });
        }
        Ok(out)
    }

    pub fn volume_usage(&self) -> Result<Vec<VolumeUsage>> {
        let containers = self.list()?;
        let vols = self.volumes();
        let mut out = Vec::new();
        for v in vols.list()? {
            let links = containers
                .iter()
                .filter(|c| c.mounts.iter().any(|m| m.uses_volume(&v.name)))
                .count();
            out.push(VolumeUsage {
                size: tree_size(&vols.data_dir(&v.name)),
                name: v.name,
                links,
            });
        }
        Ok(out)
    }
}
