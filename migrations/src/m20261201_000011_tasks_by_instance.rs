//! An instance's open tasks by index (`tasks_by_instance`): every action reads them (who
//! holds a claim) and every instance view shows them. Before, each read went through all open
//! tasks of every instance, so an action's cost grew with the number of open procedures.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    InstanceId,
    Status,
}

const BY_INSTANCE: &str = "tasks_by_instance";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(BY_INSTANCE)
                    .table(Tasks::Table)
                    .col(Tasks::InstanceId)
                    .col(Tasks::Status)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(BY_INSTANCE).table(Tasks::Table).to_owned()).await
    }
}
