//! Leases on PostgreSQL (`work_leases`): a named lease is held by one node until it expires,
//! by the database's clock, so nodes whose clocks disagree still agree on who holds it. The
//! holder renews it before it runs out; a node that dies (or is paused) stops renewing, and
//! once the lease has expired another node takes it, raising its `epoch`. A lease renewed by
//! its holder keeps its epoch, so a holder can tell "still mine" from "lost and taken back".
//!
//! Also here: the shared virtual clock (`virtual_clock`), which several nodes of a
//! demonstration or test read so that they all see the same time.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::{Store, StoreError};

/// The database's clock in UTC milliseconds, as SQL.
const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A lease as a node holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Raised each time the lease changes hands.
    pub epoch: i64,
}

impl Store {
    fn shares_leases(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// Takes the lease `name` for `owner` for `ttl_millis` if it is free, expired or already
    /// `owner`'s (then it is renewed). `None` when another node holds it, and always on
    /// SQLite (one daemon owns a SQLite database; nothing is shared).
    pub async fn claim_lease(&self, name: &str, owner: &str, ttl_millis: i64) -> Result<Option<Held>, StoreError> {
        if !self.shares_leases() {
            return Ok(None);
        }
        let sql = format!(
            "INSERT INTO work_leases (name, owner, epoch, expires_at, acquired_at) \
             VALUES ($1, $2, 1, {DB_NOW} + $3, {DB_NOW}) \
             ON CONFLICT (name) DO UPDATE SET \
               owner = EXCLUDED.owner, \
               epoch = CASE WHEN work_leases.owner = EXCLUDED.owner THEN work_leases.epoch ELSE work_leases.epoch + 1 END, \
               expires_at = EXCLUDED.expires_at, \
               acquired_at = CASE WHEN work_leases.owner = EXCLUDED.owner THEN work_leases.acquired_at ELSE EXCLUDED.acquired_at END \
             WHERE work_leases.owner = EXCLUDED.owner OR work_leases.expires_at < {DB_NOW} \
             RETURNING epoch"
        );
        let statement =
            Statement::from_sql_and_values(DbBackend::Postgres, sql, [name.into(), owner.into(), ttl_millis.into()]);
        match self.db.query_one_raw(statement).await? {
            Some(row) => Ok(Some(Held { epoch: row.try_get("", "epoch")? })),
            None => Ok(None),
        }
    }

    /// Gives the lease `name` up if `owner` holds it (a node stopping cleanly), so another
    /// takes it at once instead of after it expires.
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        if !self.shares_leases() {
            return Ok(());
        }
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM work_leases WHERE name = $1 AND owner = $2",
            [name.into(), owner.into()],
        );
        self.db.execute_raw(statement).await?;
        Ok(())
    }

    /// The shared virtual clock's instant (UTC milliseconds), if one was set.
    pub async fn shared_virtual_clock(&self) -> Result<Option<i64>, StoreError> {
        if !self.shares_leases() {
            return Ok(None);
        }
        let statement = Statement::from_string(DbBackend::Postgres, "SELECT at FROM virtual_clock WHERE id = 1");
        match self.db.query_one_raw(statement).await? {
            Some(row) => Ok(Some(row.try_get("", "at")?)),
            None => Ok(None),
        }
    }

    /// Moves the shared virtual clock to `at` (never back) and answers where it stands.
    pub async fn advance_shared_virtual_clock(&self, at: i64) -> Result<Option<i64>, StoreError> {
        if !self.shares_leases() {
            return Ok(None);
        }
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO virtual_clock (id, at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET at = GREATEST(virtual_clock.at, EXCLUDED.at) RETURNING at",
            [at.into()],
        );
        match self.db.query_one_raw(statement).await? {
            Some(row) => Ok(Some(row.try_get("", "at")?)),
            None => Ok(None),
        }
    }
}
