//! Calendar imports that can be trusted and that do not stall a request:
//!
//! - `calendars.correction`: the reason an administrator gave for replacing a year's notice
//!   that was already loaded; empty for a first import. Shown with the year, so a corrected
//!   official notice never passes for the original.
//! - `calendars.generation`: which import the row came from (1, 2, …); the calendar's
//!   generation is the largest.
//! - `instances.calendar_generation`: the calendar generation the instance's deadlines were
//!   last computed with. After an import the daemon recomputes running instances below the
//!   new generation in bounded batches, in the background; the column makes that resumable
//!   after a restart and its progress countable.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Calendars {
    Table,
    Correction,
    Generation,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Status,
    CalendarGeneration,
}

const INDEX: &str = "idx_instances_calendar_generation";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Calendars::Table)
                    .add_column(ColumnDef::new(Calendars::Correction).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Calendars::Table)
                    .add_column(ColumnDef::new(Calendars::Generation).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Instances::Table)
                    .add_column(ColumnDef::new(Instances::CalendarGeneration).big_integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Instances::Table)
                    .col(Instances::Status)
                    .col(Instances::CalendarGeneration)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Instances::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(Instances::Table).drop_column(Instances::CalendarGeneration).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Calendars::Table).drop_column(Calendars::Generation).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Calendars::Table).drop_column(Calendars::Correction).to_owned()).await
    }
}
