//! A schedule run's outcome is its result, not what it "started" (a retention sweep or a
//! digest starts nothing): the column says so.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ScheduleRuns {
    Table,
    Started,
    Result,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ScheduleRuns::Table)
                    .rename_column(ScheduleRuns::Started, ScheduleRuns::Result)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ScheduleRuns::Table)
                    .rename_column(ScheduleRuns::Result, ScheduleRuns::Started)
                    .to_owned(),
            )
            .await
    }
}
