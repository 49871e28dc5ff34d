//! Support for storing transitions in batches:
//! - the hash of each instance's latest history row is kept on the instance itself, so a
//!   transition reads the chain's head with the snapshot instead of querying the history
//!   (existing instances take it from their history);
//! - the outbox is indexed by kind, so each worker finds its ready effects without walking
//!   the ones waiting for another worker.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    HeadHash,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Kind,
    Status,
    NextAttemptAt,
}

/// The hash that precedes the first event of every instance.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Instances::Table)
                    .add_column(string(Instances::HeadHash).default(GENESIS))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE instances SET head_hash = (SELECT h.hash FROM history h WHERE h.instance_id = instances.id \
                 ORDER BY h.seq DESC LIMIT 1) WHERE EXISTS (SELECT 1 FROM history h WHERE h.instance_id = instances.id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_ready_by_kind")
                    .table(Outbox::Table)
                    .col(Outbox::Kind)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("outbox_ready_by_kind").table(Outbox::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Instances::Table).drop_column(Instances::HeadHash).to_owned()).await
    }
}
