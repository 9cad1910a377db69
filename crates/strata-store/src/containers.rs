//! The `containers` table: one row per container, so that image rules
//! (`rmi` refuses an image a container uses, `prune` keeps it) hold in one
//! transaction with the images. The row's `config` is JSON that
//! strata-container owns; the store never interprets it.

use crate::{Error, Result, Store};

/// A container's row as strata-container writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRow {
    pub id: String,
    /// Unique among containers.
    pub name: String,
    pub image_id: String,
    pub image_ref: String,
    /// RFC 3339; listing is newest first.
    pub created: String,
    /// The container layer's record, as JSON.
    pub config: String,
}

impl Store {
    /// Adds a container; a name already taken is [`Error::Conflict`] naming it.
    pub fn insert_container(&self, row: &ContainerRow) -> Result<()> {
        let r = self.conn.execute(
            "INSERT INTO containers (id, name, image_id, image_ref, created, config) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            [
                &row.id,
                &row.name,
                &row.image_id,
                &row.image_ref,
                &row.created,
                &row.config,
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{}\" is already in use. You have to remove (or rename) that container to be able to reuse that name.",
                    row.name
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every container's `config` JSON, newest first.
    pub fn container_configs(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT config FROM containers ORDER BY created DESC, rowid DESC")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a container's row (nothing when there is none).
    pub fn delete_container(&self, id: &str) -> Result<()> {
        self.conn.execute("DELETE FROM containers WHERE id=?1", [id])?;
        Ok(())
    }
}
