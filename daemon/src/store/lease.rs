//! The shared-work lease on PostgreSQL: a transaction-scoped advisory lock held by one
//! process at a time, for as long as its transaction (and so its connection) lives. A process
//! that dies, or loses its connection, loses the lock with it, and another process takes it.

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

use super::{Store, StoreError};

/// The advisory lock's key (any number all statflow processes agree on).
const KEY: i64 = 0x5354_4154_464c_4f57; // "STATFLOW"

/// The lock while held; dropping it releases it.
pub struct LeaseGuard {
    txn: DatabaseTransaction,
}

impl Store {
    /// Takes the shared-work lock if no other process holds it. `None` on SQLite, which one
    /// process owns anyway, or when another process holds it.
    pub async fn try_lease(&self) -> Result<Option<LeaseGuard>, StoreError> {
        if self.db.get_database_backend() != DbBackend::Postgres {
            return Ok(None);
        }
        let txn = self.db.begin().await?;
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_try_advisory_xact_lock($1) AS held",
            [KEY.into()],
        );
        let held: bool = match txn.query_one_raw(statement).await? {
            Some(row) => row.try_get("", "held")?,
            None => false,
        };
        Ok(held.then_some(LeaseGuard { txn }))
    }
}

impl LeaseGuard {
    /// Checks the lock is still held (its connection still answers).
    pub async fn renew(&self) -> Result<(), StoreError> {
        self.txn.execute_unprepared("SELECT 1").await?;
        Ok(())
    }
}
