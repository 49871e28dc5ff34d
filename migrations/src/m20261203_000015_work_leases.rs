//! Several daemons on one PostgreSQL database: `work_leases` names which daemon (node) holds
//! the lease on the work that belongs to no request (timers, the outbox, deliveries,
//! schedules), until when by the database's clock, and how many times it changed hands
//! (`epoch`); `virtual_clock` holds a shared virtual clock's instant, so every node of a
//! demonstration or test reads the same time. Both stay empty on SQLite, which one daemon owns.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WorkLeases {
    Table,
    Name,
    Owner,
    Epoch,
    ExpiresAt,
    AcquiredAt,
}

#[derive(DeriveIden)]
enum VirtualClock {
    Table,
    Id,
    At,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WorkLeases::Table)
                    .col(ColumnDef::new(WorkLeases::Name).string().not_null().primary_key())
                    .col(ColumnDef::new(WorkLeases::Owner).string().not_null())
                    .col(ColumnDef::new(WorkLeases::Epoch).big_integer().not_null())
                    .col(ColumnDef::new(WorkLeases::ExpiresAt).big_integer().not_null())
                    .col(ColumnDef::new(WorkLeases::AcquiredAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(VirtualClock::Table)
                    .col(ColumnDef::new(VirtualClock::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(VirtualClock::At).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(VirtualClock::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WorkLeases::Table).to_owned()).await
    }
}
