//! The directory notifications are addressed from: organizations (with their duty address,
//! supervising authority and regulator) and contacts (people of an organization holding
//! roles, optionally linked to a principal).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    Email,
    Supervisor,
    Regulator,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    Organization,
    Name,
    Email,
    Roles,
    Principal,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(string(Organizations::Id).primary_key())
                    .col(string(Organizations::Name))
                    .col(string_null(Organizations::Email))
                    .col(string_null(Organizations::Supervisor))
                    .col(string_null(Organizations::Regulator))
                    .col(big_integer(Organizations::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(big_pk_auto(Contacts::Id))
                    .col(string(Contacts::Organization))
                    .col(string(Contacts::Name))
                    .col(string(Contacts::Email))
                    // `,role,role,` so one LIKE finds the holders of a role.
                    .col(text(Contacts::Roles))
                    .col(string_null(Contacts::Principal))
                    .col(big_integer(Contacts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("contacts_by_organization_email")
                    .table(Contacts::Table)
                    .col(Contacts::Organization)
                    .col(Contacts::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Contacts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Organizations::Table).to_owned()).await
    }
}
