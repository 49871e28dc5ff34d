//! An instance's open tasks by index: every action reads them (who holds a claim) and every
//! instance view shows them. Without it each read scanned all open tasks of every instance,
//! so an action's cost grew with the number of open procedures.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    InstanceId,
    Status,
}

const NAME: &str = "tasks_by_instance";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create().name(NAME).table(Tasks::Table).col(Tasks::InstanceId).col(Tasks::Status).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(NAME).table(Tasks::Table).to_owned()).await
    }
}
