//! The audit log read by target through an index (`audit_by_target`, newest first by id),
//! as it is by principal since migration 12: `GET /v1/audit?target=instance/7` used to walk
//! the whole log backwards from its newest entry to find a rare target's few.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Audit {
    Table,
    Id,
    Target,
}

const BY_TARGET: &str = "audit_by_target";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index = Index::create().name(BY_TARGET).table(Audit::Table).col(Audit::Target).col(Audit::Id).to_owned();
        manager.create_index(index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(BY_TARGET).table(Audit::Table).to_owned()).await
    }
}
