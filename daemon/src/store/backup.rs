//! A consistent copy of a live SQLite database, taken without stopping the daemon.

use std::path::Path;

use sea_orm::{ConnectionTrait, DbBackend};

use super::{Store, StoreError};

impl Store {
    /// Writes a copy of the database to the new file `target` with `VACUUM INTO`: one read
    /// transaction, so the copy is the database as of one instant (WAL lets the daemon go on
    /// writing meanwhile), compacted. PostgreSQL has its own tools (`pg_dump`).
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        if self.db.get_database_backend() != DbBackend::Sqlite {
            return Err(StoreError::Unsupported(
                "a PostgreSQL database is backed up with pg_dump (see docs/operations.md)".into(),
            ));
        }
        let text = target.to_str().ok_or_else(|| StoreError::Unsupported("the backup's path is not UTF-8".into()))?;
        // A quoted SQL string: a quote in the path is doubled.
        self.db.execute_unprepared(&format!("VACUUM INTO '{}'", text.replace('\'', "''"))).await?;
        Ok(())
    }
}
