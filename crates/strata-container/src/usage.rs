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

/// Bytes of regular files under `dir` (each inode once), without following symlinks.
pub fn tree_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
        let mut n = 0;
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                n += walk(&e.path(), seen);
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                n += m.len();
            }
        }
        n
    }
    walk(dir, &mut Default::default())
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
