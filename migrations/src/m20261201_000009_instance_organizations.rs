//! The organizations an instance involves, one row each, instead of an `,a,b,` text column
//! matched with LIKE: "instances involving X" becomes an indexed equality, and no
//! organization id can act as a pattern. Existing instances are carried over from the old
//! column, which is then dropped; going down rebuilds it from the rows.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InstanceOrganizations {
    Table,
    InstanceId,
    Organization,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Organizations,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InstanceOrganizations::Table)
                    .col(ColumnDef::new(InstanceOrganizations::InstanceId).big_integer().not_null())
                    .col(ColumnDef::new(InstanceOrganizations::Organization).string().not_null())
                    .primary_key(
                        Index::create().col(InstanceOrganizations::InstanceId).col(InstanceOrganizations::Organization),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("instance_organizations_by_organization")
                    .table(InstanceOrganizations::Table)
                    .col(InstanceOrganizations::Organization)
                    .col(InstanceOrganizations::InstanceId)
                    .to_owned(),
            )
            .await?;
        // Carry the old column over: `,a,b,` becomes one row per organization.
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let rows = db.query_all_raw(Statement::from_string(backend, "SELECT id, organizations FROM instances")).await?;
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            let text: String = row.try_get("", "organizations")?;
            let mut organizations: Vec<&str> = text.split(',').filter(|o| !o.is_empty()).collect();
            organizations.sort_unstable();
            organizations.dedup();
            if organizations.is_empty() {
                continue;
            }
            let mut insert = Query::insert();
            insert
                .into_table(InstanceOrganizations::Table)
                .columns([InstanceOrganizations::InstanceId, InstanceOrganizations::Organization]);
            for organization in organizations {
                insert.values_panic([id.into(), organization.into()]);
            }
            manager.exec_stmt(insert).await?;
        }
        manager
            .alter_table(Table::alter().table(Instances::Table).drop_column(Instances::Organizations).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Instances::Table)
                    .add_column(ColumnDef::new(Instances::Organizations).text().not_null().default(",,"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        let backend = db.get_database_backend();
        let rows = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT instance_id, organization FROM instance_organizations ORDER BY instance_id, organization",
            ))
            .await?;
        let mut by_instance: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
        for row in rows {
            by_instance.entry(row.try_get("", "instance_id")?).or_default().push(row.try_get("", "organization")?);
        }
        for (id, organizations) in by_instance {
            let update = Query::update()
                .table(Instances::Table)
                .value(Instances::Organizations, format!(",{},", organizations.join(",")))
                .and_where(Expr::col(Alias::new("id")).eq(id))
                .to_owned();
            manager.exec_stmt(update).await?;
        }
        manager.drop_table(Table::drop().table(InstanceOrganizations::Table).to_owned()).await
    }
}
