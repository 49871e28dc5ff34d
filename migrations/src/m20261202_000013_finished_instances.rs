//! What the daily retention sweep looks for, by index: finished instances by when they
//! finished (`instances_finished`) and audit entries by time (`audit_by_time`). Before, it
//! read every instance, open or not, into memory each day and walked the whole audit log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    Status,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Audit {
    Table,
    At,
}

const FINISHED: &str = "instances_finished";
const AUDIT_BY_TIME: &str = "audit_by_time";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(FINISHED)
                    .table(Instances::Table)
                    .col(Instances::Status)
                    .col(Instances::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name(AUDIT_BY_TIME).table(Audit::Table).col(Audit::At).to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(AUDIT_BY_TIME).table(Audit::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name(FINISHED).table(Instances::Table).to_owned()).await
    }
}
