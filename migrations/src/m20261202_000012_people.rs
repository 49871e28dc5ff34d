//! People who sign in to the console: a name, a role, organizations and an argon2id password
//! hash (`users`), and their sessions (`sessions`), of which only the hash of the cookie's
//! value is stored, with the CSRF token every form of that session carries. Sessions that ran
//! out are removed by expiry, the console's audit log is read by actor, and an instance's
//! children are found by their parent (each child start and each instance page asks): all by
//! index.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Name,
    Role,
    Organizations,
    PasswordHash,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    UserId,
    Csrf,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Audit {
    Table,
    Principal,
    Id,
}

const SESSIONS_BY_USER: &str = "sessions_by_user";
const SESSIONS_BY_EXPIRY: &str = "sessions_by_expiry";
const AUDIT_BY_PRINCIPAL: &str = "audit_by_principal";
const INSTANCES_BY_PARENT: &str = "instances_by_parent";

#[derive(DeriveIden)]
enum Instances {
    Table,
    ParentInstanceId,
    ParentKey,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(big_pk_auto(Users::Id))
                    .col(string_uniq(Users::Name))
                    .col(string(Users::Role))
                    .col(text(Users::Organizations))
                    .col(string(Users::PasswordHash))
                    .col(boolean(Users::Disabled).default(false))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::TokenHash).primary_key())
                    .col(big_integer(Sessions::UserId))
                    .col(string(Sessions::Csrf))
                    .col(big_integer(Sessions::CreatedAt))
                    .col(big_integer(Sessions::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name(SESSIONS_BY_USER).table(Sessions::Table).col(Sessions::UserId).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name(SESSIONS_BY_EXPIRY).table(Sessions::Table).col(Sessions::ExpiresAt).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(AUDIT_BY_PRINCIPAL)
                    .table(Audit::Table)
                    .col(Audit::Principal)
                    .col(Audit::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INSTANCES_BY_PARENT)
                    .table(Instances::Table)
                    .col(Instances::ParentInstanceId)
                    .col(Instances::ParentKey)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INSTANCES_BY_PARENT).table(Instances::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name(AUDIT_BY_PRINCIPAL).table(Audit::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Sessions::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Users::Table).to_owned()).await
    }
}
