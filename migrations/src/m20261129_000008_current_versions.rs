//! Which definition version new instances of a procedure start on, when an administrator
//! chose one by loading it (`POST /v1/definitions`). Without this table the choice lived only
//! in memory: after a restart the built-in version was current again, and a procedure that
//! exists only as a loaded file could not be started at all.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CurrentVersions {
    Table,
    Procedure,
    Jurisdiction,
    Version,
    ChosenAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CurrentVersions::Table)
                    .col(ColumnDef::new(CurrentVersions::Procedure).string().not_null())
                    .col(ColumnDef::new(CurrentVersions::Jurisdiction).string().not_null())
                    .col(ColumnDef::new(CurrentVersions::Version).string().not_null())
                    .col(ColumnDef::new(CurrentVersions::ChosenAt).big_integer().not_null())
                    .primary_key(Index::create().col(CurrentVersions::Procedure).col(CurrentVersions::Jurisdiction))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(CurrentVersions::Table).to_owned()).await
    }
}
