//! `diff`: what a container changed, as Docker prints it (`A`, `C`, `D`);
//! the snapshotter finds the changes.

use crate::error::Result;

use crate::engine::Containers;
use crate::record::ContainerRecord;

pub use strata_snapshot::{Change, ChangeKind};

impl Containers {
    pub fn diff(&self, rec: &ContainerRecord) -> Result<Vec<Change>> {
        let snap = self.snap.get(&rec.id)?;
        let mut changes = self.snap.changes(&snap)?;
        if !matches!(rec.network.as_str(), "host" | "none") {
            hide_network_files(&mut changes);
        }
        Ok(changes)
    }
}

/// Leaves out the mount points of `/etc/hosts`, `/etc/hostname` and
/// `/etc/resolv.conf` strata made in the container's layer (and `/etc`,
/// when nothing else in it changed), as Docker's diff does not show them
/// (they are in its init layer).
fn hide_network_files(changes: &mut Vec<Change>) {
    let ours = |c: &Change| c.kind == ChangeKind::Added && crate::net::NET_FILES.contains(&c.path.as_str());
    if !changes.iter().any(ours)
        && !changes
            .iter()
            .any(|c| c.path == "/etc" && c.kind == ChangeKind::Changed)
    {
        return;
    }
    changes.retain(|c| !ours(c));
    let etc_touched = changes.iter().any(|c| c.path.starts_with("/etc/"));
    if !etc_touched {
        changes.retain(|c| !(c.path == "/etc" && c.kind == ChangeKind::Changed));
    }
}
