//! Cron schedules and their runs, and the key an instance was started under.
//!
//! - `schedules`: a cron expression (Asia/Shanghai), the job it starts, its catch-up policy
//!   and the next fire time not yet handled.
//! - `schedule_runs`: one row per (schedule, fire time), unique, so a fire time runs at most
//!   once; the row records what the run started.
//! - `instances.start_key`: unique when set. A schedule run starts each instance under a key
//!   naming the run and the subject, so resuming a run interrupted by a crash never starts
//!   the same instance twice.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    Title,
    Cron,
    Job,
    CatchUp,
    Enabled,
    BuiltIn,
    NextFireAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScheduleRuns {
    Table,
    Id,
    ScheduleId,
    FireAt,
    Status,
    Started,
    Error,
    CreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    StartKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(string(Schedules::Id).primary_key())
                    .col(string(Schedules::Title))
                    .col(string(Schedules::Cron))
                    .col(text(Schedules::Job))
                    .col(string(Schedules::CatchUp))
                    .col(boolean(Schedules::Enabled))
                    .col(boolean(Schedules::BuiltIn))
                    .col(big_integer_null(Schedules::NextFireAt))
                    .col(big_integer(Schedules::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ScheduleRuns::Table)
                    .col(big_pk_auto(ScheduleRuns::Id))
                    .col(string(ScheduleRuns::ScheduleId))
                    .col(big_integer(ScheduleRuns::FireAt))
                    .col(string(ScheduleRuns::Status))
                    .col(text(ScheduleRuns::Started))
                    .col(text_null(ScheduleRuns::Error))
                    .col(big_integer(ScheduleRuns::CreatedAt))
                    .col(big_integer_null(ScheduleRuns::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("schedule_runs_by_key")
                    .table(ScheduleRuns::Table)
                    .col(ScheduleRuns::ScheduleId)
                    .col(ScheduleRuns::FireAt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Instances::Table).add_column(string_null(Instances::StartKey)).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("instances_by_start_key")
                    .table(Instances::Table)
                    .col(Instances::StartKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("instances_by_start_key").table(Instances::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Instances::Table).drop_column(Instances::StartKey).to_owned()).await?;
        manager.drop_table(Table::drop().table(ScheduleRuns::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Schedules::Table).to_owned()).await
    }
}
