//! The initial schema: instances with their state snapshot and optimistic version, the
//! hash-chained per-instance history, timers indexed by due time, tasks, the outbox of
//! effects, stored definitions and calendar years, principals with token hashes, and audit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Instances {
    Table,
    Id,
    Procedure,
    Jurisdiction,
    DefinitionVersion,
    Status,
    Outcome,
    Step,
    Organizations,
    State,
    VersionNo,
    NextDueAt,
    Overdue,
    ParentInstanceId,
    ParentKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum History {
    Table,
    InstanceId,
    Seq,
    At,
    Actor,
    Event,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum Timers {
    Table,
    Id,
    InstanceId,
    TimerId,
    DueAt,
    Kind,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    InstanceId,
    TaskId,
    Step,
    Title,
    Role,
    Organization,
    Actions,
    DueAt,
    Overdue,
    Status,
    Assignee,
    CreatedAt,
    ClosedAt,
}

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
enum Definitions {
    Table,
    Version,
    Procedure,
    Jurisdiction,
    File,
    Source,
    LoadedAt,
}

#[derive(DeriveIden)]
enum Calendars {
    Table,
    Year,
    Origin,
    Notice,
    ImportedAt,
}

#[derive(DeriveIden)]
enum Principals {
    Table,
    Id,
    Name,
    Role,
    Organizations,
    TokenHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Audit {
    Table,
    Id,
    At,
    Principal,
    Action,
    Target,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Instances::Table)
                    .col(big_pk_auto(Instances::Id))
                    .col(string(Instances::Procedure))
                    .col(string(Instances::Jurisdiction))
                    .col(string(Instances::DefinitionVersion))
                    .col(string(Instances::Status))
                    .col(string_null(Instances::Outcome))
                    .col(string_null(Instances::Step))
                    .col(text(Instances::Organizations))
                    .col(text(Instances::State))
                    .col(big_integer(Instances::VersionNo))
                    .col(big_integer_null(Instances::NextDueAt))
                    .col(boolean(Instances::Overdue))
                    .col(big_integer_null(Instances::ParentInstanceId))
                    .col(string_null(Instances::ParentKey))
                    .col(big_integer(Instances::CreatedAt))
                    .col(big_integer(Instances::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("instances_by_status")
                    .table(Instances::Table)
                    .col(Instances::Status)
                    .col(Instances::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(History::Table)
                    .col(big_integer(History::InstanceId))
                    .col(big_integer(History::Seq))
                    .col(big_integer(History::At))
                    .col(string(History::Actor))
                    .col(text(History::Event))
                    .col(string(History::PrevHash))
                    .col(string(History::Hash))
                    .primary_key(Index::create().col(History::InstanceId).col(History::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Timers::Table)
                    .col(string(Timers::Id).primary_key())
                    .col(big_integer(Timers::InstanceId))
                    .col(string(Timers::TimerId))
                    .col(big_integer(Timers::DueAt))
                    .col(text(Timers::Kind))
                    .to_owned(),
            )
            .await?;
        // The timer loop only ever asks "what is due next": an index, never a scan.
        manager
            .create_index(
                Index::create()
                    .name("timers_by_due")
                    .table(Timers::Table)
                    .col(Timers::DueAt)
                    .col(Timers::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("timers_by_instance").table(Timers::Table).col(Timers::InstanceId).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(string(Tasks::Id).primary_key())
                    .col(big_integer(Tasks::InstanceId))
                    .col(string(Tasks::TaskId))
                    .col(string(Tasks::Step))
                    .col(string(Tasks::Title))
                    .col(string(Tasks::Role))
                    .col(string_null(Tasks::Organization))
                    .col(text(Tasks::Actions))
                    .col(big_integer_null(Tasks::DueAt))
                    .col(boolean(Tasks::Overdue))
                    .col(string(Tasks::Status))
                    .col(string_null(Tasks::Assignee))
                    .col(big_integer(Tasks::CreatedAt))
                    .col(big_integer_null(Tasks::ClosedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("tasks_open_by_org")
                    .table(Tasks::Table)
                    .col(Tasks::Status)
                    .col(Tasks::Organization)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(big_pk_auto(Outbox::Id))
                    .col(big_integer(Outbox::InstanceId))
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
        manager
            .create_index(
                Index::create()
                    .name("outbox_ready")
                    .table(Outbox::Table)
                    .col(Outbox::Status)
                    .col(Outbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Definitions::Table)
                    .col(string(Definitions::Version).primary_key())
                    .col(string(Definitions::Procedure))
                    .col(string(Definitions::Jurisdiction))
                    .col(string(Definitions::File))
                    .col(text(Definitions::Source))
                    .col(big_integer(Definitions::LoadedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Calendars::Table)
                    .col(integer(Calendars::Year).primary_key())
                    .col(string(Calendars::Origin))
                    .col(text(Calendars::Notice))
                    .col(big_integer(Calendars::ImportedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Principals::Table)
                    .col(big_pk_auto(Principals::Id))
                    .col(string_uniq(Principals::Name))
                    .col(string(Principals::Role))
                    .col(text(Principals::Organizations))
                    .col(string_uniq(Principals::TokenHash))
                    .col(big_integer(Principals::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Audit::Table)
                    .col(big_pk_auto(Audit::Id))
                    .col(big_integer(Audit::At))
                    .col(string(Audit::Principal))
                    .col(string(Audit::Action))
                    .col(string(Audit::Target))
                    .col(text(Audit::Detail))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Audit::Table.into_iden(),
            Principals::Table.into_iden(),
            Calendars::Table.into_iden(),
            Definitions::Table.into_iden(),
            Outbox::Table.into_iden(),
            Tasks::Table.into_iden(),
            Timers::Table.into_iden(),
            History::Table.into_iden(),
            Instances::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
