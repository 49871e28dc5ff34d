//! Effects that belong to no instance, such as the daily digest a staff member receives:
//! `outbox.instance_id` becomes optional. The outbox is also indexed by instance, so showing
//! an instance and the retention sweep find its effects without reading the whole table.
//!
//! PostgreSQL drops the NOT NULL constraint in place. SQLite cannot change a column's
//! constraint, so the table is rebuilt under a new name, filled from the old one in the same
//! migration, and renamed back; its indexes are created again. The migration runs in one
//! transaction on both databases (SQLite's DDL is transactional too), so it is applied whole
//! or not at all.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    InstanceId,
    Key,
    Kind,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    CreatedAt,
    DoneAt,
}

#[derive(DeriveIden)]
enum OutboxRebuilt {
    Table,
}

const COLUMNS: &str =
    "id, instance_id, key, kind, payload, status, attempts, next_attempt_at, last_error, created_at, done_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => rebuild_sqlite_outbox(manager, true).await?,
            _ => {
                manager
                    .get_connection()
                    .execute_unprepared("ALTER TABLE outbox ALTER COLUMN instance_id DROP NOT NULL")
                    .await?;
            }
        }
        manager
            .create_index(
                Index::create()
                    .name("outbox_by_instance")
                    .table(Outbox::Table)
                    .col(Outbox::InstanceId)
                    .col(Outbox::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Effects without an instance cannot exist under the old schema.
        manager.get_connection().execute_unprepared("DELETE FROM outbox WHERE instance_id IS NULL").await?;
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => rebuild_sqlite_outbox(manager, false).await,
            _ => {
                manager.drop_index(Index::drop().name("outbox_by_instance").table(Outbox::Table).to_owned()).await?;
                manager
                    .get_connection()
                    .execute_unprepared("ALTER TABLE outbox ALTER COLUMN instance_id SET NOT NULL")
                    .await?;
                Ok(())
            }
        }
    }
}

/// Rebuilds SQLite's outbox with `instance_id` optional or required, keeping every row and
/// the indexes of the earlier migrations.
async fn rebuild_sqlite_outbox(manager: &SchemaManager<'_>, optional_instance: bool) -> Result<(), DbErr> {
    let instance =
        if optional_instance { big_integer_null(Outbox::InstanceId) } else { big_integer(Outbox::InstanceId) };
    manager
        .create_table(
            Table::create()
                .table(OutboxRebuilt::Table)
                .col(big_pk_auto(Outbox::Id))
                .col(instance)
                .col(string_uniq(Outbox::Key))
                .col(string(Outbox::Kind))
                .col(text(Outbox::Payload))
                .col(string(Outbox::Status))
                .col(integer(Outbox::Attempts))
                .col(big_integer(Outbox::NextAttemptAt))
                .col(text_null(Outbox::LastError))
                .col(big_integer(Outbox::CreatedAt))
                .col(big_integer_null(Outbox::DoneAt))
                .to_owned(),
        )
        .await?;
    let connection = manager.get_connection();
    connection
        .execute_unprepared(&format!("INSERT INTO outbox_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM outbox"))
        .await?;
    connection.execute_unprepared("DROP TABLE outbox").await?;
    connection.execute_unprepared("ALTER TABLE outbox_rebuilt RENAME TO outbox").await?;
    for (name, columns) in [
        ("outbox_ready", vec![Outbox::Status, Outbox::NextAttemptAt]),
        ("outbox_ready_by_kind", vec![Outbox::Kind, Outbox::Status, Outbox::NextAttemptAt]),
    ] {
        let mut index = Index::create();
        index.name(name).table(Outbox::Table);
        for column in columns {
            index.col(column);
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}
