//! `diff`: what a container changed, as Docker prints it (`A`, `C`, `D`);
//! the snapshotter finds the changes.

use crate::error::Result;

use crate::engine::Containers;
use crate::record::ContainerRecord;

pub use strata_snapshot::{Change, ChangeKind};

impl Containers {
    pub fn diff(&self, rec: &ContainerRecord) -> Result<Vec<Change>> {
        let snap = self.snap.get(&rec.id)?;
        Ok(self.snap.changes(&snap)?)
    }
}
