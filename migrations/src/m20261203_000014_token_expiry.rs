//! An API token may expire: `principals.expires_at` (UTC milliseconds; none: it does not).
//! Tokens made before keep working as they did.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Principals {
    Table,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Principals::Table)
                    .add_column(ColumnDef::new(Principals::ExpiresAt).big_integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Principals::Table).drop_column(Principals::ExpiresAt).to_owned()).await
    }
}
