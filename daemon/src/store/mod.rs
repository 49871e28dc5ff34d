//! Durable storage on sea-orm (SQLite by default, PostgreSQL by URL): the only code that
//! touches the database. Everyone else calls the typed methods of [`Store`] and gets typed
//! records back ([`records`], [`effects`]); no sea-orm type leaves this folder (a test keeps
//! it so).
//!
//! - `entities`: one module per table (private).
//! - [`records`], [`effects`]: rows decoded into typed records and effects.
//! - [`transition`]: the write path — one database transaction per transition: history
//!   append (hash-chained), snapshot update guarded by the instance's version, and the
//!   timers, tasks and outbox rows the interpreter's commands call for.
//! - [`writer`]: SQLite group commit — transitions queued while a commit flushes share the
//!   next transaction.
//! - [`ledger`]: the seals of history rows, the append-only ledger chaining them, anchors.
//! - [`instances`], [`tasks`], [`outbox`], [`timers`], [`schedules`], [`definitions`],
//!   [`principals`], [`directory`]: reads and writes by concern.
//! - `scope`: the organizations an instance involves (a join table).
//! - [`retention`]: the sweep that removes records past their legal keeping period.

pub mod backup;
mod bulk;
pub mod database_url;
pub mod definitions;
pub mod directory;
pub mod effects;
mod entities;
mod gauges;
pub mod instances;
pub mod lease;
pub mod ledger;
pub mod outbox;
pub mod people;
#[cfg(test)]
mod plans;
pub mod principals;
pub mod records;
pub mod retention;
pub mod schedules;
mod scope;
mod states;
pub mod tasks;
pub mod timers;
pub mod transition;
pub mod writer;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QuerySelect, Select, Set,
};
use statflow_migrations::{Migrator, MigratorTrait};
use statflow_workflows::calendar::shanghai;

/// Sees each statement a store runs (see [`Store::open_observed`]).
pub(crate) type Observer = std::sync::Arc<dyn Fn(&sea_orm::Statement) + Send + Sync>;

/// An [`Observer`] shown only each statement's SQL, for code outside the store (which does
/// not name sea-orm's types).
#[cfg(test)]
pub(crate) fn sql_observer(see: impl Fn(&str) + Send + Sync + 'static) -> Observer {
    std::sync::Arc::new(move |statement: &sea_orm::Statement| see(&statement.sql))
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("instance {0} not found")]
    NotFound(i64),
    /// A unique name is taken already.
    #[error("{0} exists already")]
    Exists(String),
    /// Another transition of the same instance kept winning the race.
    #[error("the instance changed concurrently; try again")]
    Conflict,
    /// The instance failed verification; it takes no further actions.
    #[error("instance {id} is flagged as possibly tampered with ({reason}); an administrator must review it")]
    Flagged { id: i64, reason: String },
    #[error("definition version {0} is not loaded")]
    UnknownDefinition(String),
    /// A stored row does not decode; the message names the row.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the writer has stopped; the daemon is shutting down")]
    WriterStopped,
    /// Something this kind of database does not do (the message says what to do instead).
    #[error("{0}")]
    Unsupported(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// Which rows of a list to read: `limit` rows after skipping `offset`.
#[derive(Clone, Copy, Debug)]
pub struct Slice {
    pub offset: u64,
    pub limit: u64,
}

/// How many rows a list has: counted exactly up to [`COUNTED_AHEAD`] rows past the page
/// asked for; beyond that `count` is a lower bound and `exact` is false.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Total {
    pub count: u64,
    pub exact: bool,
}

impl Total {
    /// A count known to be exact.
    pub const fn exactly(count: u64) -> Total {
        Total { count, exact: true }
    }

    /// How many pages of `size` the counted rows fill (at least one).
    pub fn pages(self, size: u64) -> u64 {
        self.count.div_ceil(size).max(1)
    }
}

/// How far past the page asked for a list's rows are counted. Counting every row would make
/// each page of a list cost as much as the whole list (a million open tasks for an
/// administrator's inbox); past this many, a person refines the filter instead of paging.
pub const COUNTED_AHEAD: u64 = 10_000;

/// One slice of `select`'s rows, and how many rows it has (see [`Total`]).
async fn read_page<E>(select: Select<E>, slice: Slice, db: &DatabaseConnection) -> Result<(Vec<E::Model>, Total), DbErr>
where
    E: EntityTrait,
    E::Model: Send + Sync,
{
    let bound = slice.offset.saturating_add(slice.limit).saturating_add(COUNTED_AHEAD);
    let counted = select.clone().limit(bound + 1).count(db).await?;
    let total = Total { count: counted.min(bound), exact: counted <= bound };
    let rows = select.offset(slice.offset).limit(slice.limit).all(db).await?;
    Ok((rows, total))
}

/// How long start-up waits for the database by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The database and how to write to it safely (cheap to clone: a pool and a queue).
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite has a single writer: transitions queue for the group-commit writer instead of
    /// failing with "busy". PostgreSQL writers run concurrently, guarded by the version check.
    writer: Option<writer::Writer>,
}

/// Milliseconds since the epoch, as stored.
pub fn to_millis(instant: DateTime<FixedOffset>) -> i64 {
    instant.timestamp_millis()
}

/// A stored instant, shown in Asia/Shanghai.
pub fn from_millis(millis: i64) -> DateTime<FixedOffset> {
    Utc.timestamp_millis_opt(millis).single().unwrap_or_default().with_timezone(&shanghai())
}

/// Connections reading a SQLite store (the writer has its own).
const READERS: u32 = 4;
/// Page cache per reading connection, in KiB.
const READER_CACHE_KIB: u32 = 8 * 1024;
/// Prepared statements kept per reading connection.
const READER_STATEMENTS_KEPT: usize = 24;
/// Prepared statements kept by the writer: its inserts and `IN` lists come in nine sizes
/// each whatever the row count (`bulk`), and a batch's sizes vary around the usual batch, so
/// every statement of a batch fits and none is parsed twice.
const WRITER_STATEMENTS_KEPT: usize = 160;
/// Page cache of the writer's connection, in KiB.
const WRITER_CACHE_KIB: u32 = 32 * 1024;

/// A pool of `connections` to the SQLite file at `url`: every commit reaches the disk before
/// it is acknowledged (synchronous=FULL), and WAL lets readers run beside the writer.
fn sqlite_options(url: &str, connections: u32, cache_kib: u32, statements_kept: usize, writer: bool) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(move |o| {
            let o = o
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(30))
                .create_if_missing(true)
                .foreign_keys(true)
                .pragma("cache_size", format!("-{cache_kib}"))
                // Each prepared statement kept costs memory; readers, whose queries vary most,
                // keep only a few.
                .statement_cache_capacity(statements_kept);
            if !writer {
                return o;
            }
            // The writer never checkpoints: SQLite's automatic checkpoint runs inside the
            // commit that crosses its threshold, on the one connection every write waits
            // for. The writer has a reading connection do it instead (`writer::Checkpoints`).
            o.pragma("wal_autocheckpoint", "0")
                // When the WAL starts over, its file shrinks back to this (in bytes).
                .pragma("journal_size_limit", (writer::WAL_RESTART_FRAMES * 4096).to_string())
                // A batch's multi-row statements keep a statement journal (to undo just that
                // statement on a conflict); in memory it costs no temporary file's writes.
                .pragma("temp_store", "memory")
        })
        .min_connections(0)
        .max_connections(connections)
        // A local file needs no liveness ping before each use.
        .test_before_acquire(false);
    options
}

/// `db`, with its statements shown to `observer` if there is one.
fn observed(mut db: DatabaseConnection, observer: &Option<Observer>) -> DatabaseConnection {
    if let Some(observer) = observer.clone() {
        db.set_metric_callback(move |info| observer(info.statement));
    }
    db
}

impl Store {
    /// Connects to `url` (`sqlite://FILE?mode=rwc` or `postgres://…`) and runs pending
    /// migrations.
    pub async fn open(url: &str) -> Result<Store, DbErr> {
        Self::open_within(url, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// Like [`open`](Self::open), giving up on a database that does not answer within
    /// `timeout` (an unreachable PostgreSQL would otherwise hold start-up indefinitely).
    pub async fn open_within(url: &str, timeout: Duration) -> Result<Store, DbErr> {
        let store = tokio::time::timeout(timeout, Self::connect(url)).await.map_err(|_| {
            DbErr::Custom(format!("no answer within {} s (see --db-connect-timeout)", timeout.as_secs()))
        })??;
        Migrator::up(&store.db, None).await?;
        Ok(store)
    }

    /// Connects without migrating.
    pub async fn connect(url: &str) -> Result<Store, DbErr> {
        Self::connect_observed(url, None).await
    }

    /// Like [`open`](Self::open), with every statement run (its SQL and values) shown to
    /// `observer`: the query-plan test collects the statements of the per-call paths.
    #[cfg(test)]
    pub(crate) async fn open_observed(url: &str, observer: Observer) -> Result<Store, DbErr> {
        let store = Self::connect_observed(url, Some(observer)).await?;
        Migrator::up(&store.db, None).await?;
        Ok(store)
    }

    async fn connect_observed(url: &str, observer: Option<Observer>) -> Result<Store, DbErr> {
        if !url.starts_with("sqlite:") {
            let mut options = ConnectOptions::new(url.to_owned());
            options.sqlx_logging(false).acquire_timeout(Duration::from_secs(30));
            let db = observed(Database::connect(options).await?, &observer);
            return Ok(Store { db, writer: None });
        }
        // The writer has a connection of its own with a large page cache (the indexes every
        // batch updates stay in memory); readers share a few with small caches, so memory
        // stays bounded however many of them a burst keeps busy.
        let db = observed(
            Database::connect(sqlite_options(url, READERS, READER_CACHE_KIB, READER_STATEMENTS_KEPT, false)).await?,
            &observer,
        );
        let writing = observed(
            Database::connect(sqlite_options(url, 1, WRITER_CACHE_KIB, WRITER_STATEMENTS_KEPT, true)).await?,
            &observer,
        );
        let writer = writer::Writer::spawn(writing, db.clone())
            .map_err(|e| DbErr::Custom(format!("the writer's thread could not start: {e}")))?;
        Ok(Store { db, writer: Some(writer) })
    }

    pub async fn migrate(url: &str) -> Result<Vec<String>, DbErr> {
        let store = Self::connect(url).await?;
        let pending: Vec<String> =
            Migrator::get_pending_migrations(&store.db).await?.iter().map(|m| m.name().to_owned()).collect();
        Migrator::up(&store.db, None).await?;
        Ok(pending)
    }
}

impl Store {
    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// Records an administrative act.
    pub async fn audit(
        &self,
        principal: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), StoreError> {
        NewAuditEntry::new(principal, action, target, &detail).insert(&self.db).await?;
        Ok(())
    }

    /// One slice of the audit log, newest first, narrowed to one actor, to actions that
    /// start with `action` (e.g. `user.`) and to one target when given.
    pub async fn audit_log(
        &self,
        principal: Option<&str>,
        action: Option<&str>,
        target: Option<&str>,
        slice: Slice,
    ) -> Result<(Vec<AuditEntry>, Total), StoreError> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
        let mut select = entities::audit::Entity::find().order_by_desc(entities::audit::Column::Id);
        if let Some(principal) = principal {
            select = select.filter(entities::audit::Column::Principal.eq(principal));
        }
        if let Some(target) = target {
            select = select.filter(entities::audit::Column::Target.eq(target));
        }
        if let Some(action) = action {
            use sea_orm::sea_query::{Expr, ExprTrait};
            select = select.filter(Expr::col(entities::audit::Column::Action).like(literal_like("", action, "%")));
        }
        let (rows, total) = read_page(select, slice, &self.db).await?;
        let entries = rows
            .into_iter()
            .map(|row| AuditEntry {
                at: row.at,
                principal: row.principal,
                action: row.action,
                target: row.target,
                detail: row.detail,
            })
            .collect();
        Ok((entries, total))
    }
}

/// A LIKE pattern matching `text` literally between `before` and `after` (`%` wildcards):
/// `%`, `_` and the escape character in `text` match only themselves.
fn literal_like(before: &str, text: &str, after: &str) -> sea_orm::sea_query::LikeExpr {
    let escaped = text.replace('!', "!!").replace('%', "!%").replace('_', "!_");
    sea_orm::sea_query::LikeExpr::new(format!("{before}{escaped}{after}")).escape('!')
}

/// An administrative act as the audit log keeps it.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub at: i64,
    pub principal: String,
    pub action: String,
    pub target: String,
    /// JSON text.
    pub detail: String,
}

/// An audit entry to be written, stamped by the system's clock when it is made (the audit
/// log records when things were done, whatever the engine's clock says).
#[derive(Clone, Debug)]
pub struct NewAuditEntry {
    at: i64,
    principal: String,
    action: String,
    target: String,
    detail: String,
}

impl NewAuditEntry {
    pub fn new(principal: &str, action: &str, target: &str, detail: &serde_json::Value) -> Self {
        NewAuditEntry {
            at: chrono::Utc::now().timestamp_millis(),
            principal: principal.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub(super) async fn insert(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        entities::audit::ActiveModel {
            at: Set(self.at),
            principal: Set(self.principal.clone()),
            action: Set(self.action.clone()),
            target: Set(self.target.clone()),
            detail: Set(self.detail.clone()),
            ..Default::default()
        }
        .insert(db)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::IntoActiveModel;

    #[tokio::test]
    async fn a_list_is_counted_exactly_up_to_its_bound_and_then_said_to_hold_more() {
        let dir = std::env::temp_dir().join(format!("statflow-total-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.join("total.db").display())).await.unwrap();
        let entry = |id: i64| entities::audit::Model {
            id,
            at: id,
            principal: "admin".into(),
            action: "token.create".into(),
            target: format!("t{id}"),
            detail: "{}".into(),
        };
        let add = |ids: std::ops::Range<i64>| {
            let rows = ids.map(|id| entry(id).into_active_model()).collect();
            bulk::insert::<entities::audit::Entity>(&store.db, rows, bulk::Conflict::Fail)
        };
        add(1..31).await.unwrap();
        let first = Slice { offset: 0, limit: 10 };
        let (rows, total) = store.audit_log(None, None, None, first).await.unwrap();
        assert_eq!((rows.len(), total), (10, Total::exactly(30)));
        assert_eq!(rows[0].target, "t30", "newest first");

        let bound = 10 + COUNTED_AHEAD;
        add(31..bound as i64 + 2).await.unwrap();
        let (_, total) = store.audit_log(None, None, None, first).await.unwrap();
        assert_eq!(total, Total { count: bound, exact: false });
        // Deeper pages count further.
        let (_, total) = store.audit_log(None, None, None, Slice { offset: 100, limit: 10 }).await.unwrap();
        assert_eq!(total, Total::exactly(bound + 1));
        assert_eq!(total.pages(10), bound.div_ceil(10) + 1);
        std::fs::remove_dir_all(&dir).ok();
    }
}
