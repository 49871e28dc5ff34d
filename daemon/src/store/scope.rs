//! An instance's scope: the organizations it involves, one row each in
//! `instance_organizations` (written with the instance's start, in the same transaction).
//! Which organizations those are is decided by the core (`Definition::organizations_involved`);
//! here they are stored, read back, and used to narrow queries by exact equality.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{instance_organizations, instances};

/// Instances that involve exactly `organization`.
pub(super) fn involves(organization: &str) -> Condition {
    involves_any(std::slice::from_ref(&organization.to_owned()))
}

/// Instances that involve any of `organizations` (none: no instance, said outright rather
/// than left to how an empty IN renders).
pub(super) fn involves_any(organizations: &[String]) -> Condition {
    if organizations.is_empty() {
        return Condition::all().add(Expr::val(1).eq(0));
    }
    let scoped = Query::select()
        .column(instance_organizations::Column::InstanceId)
        .from(instance_organizations::Entity)
        .and_where(instance_organizations::Column::Organization.is_in(organizations.iter().cloned()))
        .to_owned();
    Condition::all().add(instances::Column::Id.in_subquery(scoped))
}

/// The scope of each of `ids`, by id (ids without organizations are absent).
pub(super) async fn of(db: &impl ConnectionTrait, ids: &[i64]) -> Result<HashMap<i64, Vec<String>>, DbErr> {
    let mut scopes: HashMap<i64, Vec<String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(scopes);
    }
    for chunk in ids.chunks(500) {
        for row in instance_organizations::Entity::find()
            .filter(instance_organizations::Column::InstanceId.is_in(super::bulk::padded(chunk.to_vec())))
            .order_by_asc(instance_organizations::Column::InstanceId)
            .order_by_asc(instance_organizations::Column::Organization)
            .all(db)
            .await?
        {
            scopes.entry(row.instance_id).or_default().push(row.organization);
        }
    }
    Ok(scopes)
}

/// The rows recording that `instance` involves `organizations`.
pub(super) fn rows(instance: i64, organizations: &[String]) -> Vec<instance_organizations::ActiveModel> {
    organizations
        .iter()
        .map(|organization| instance_organizations::ActiveModel {
            instance_id: sea_orm::Set(instance),
            organization: sea_orm::Set(organization.clone()),
        })
        .collect()
}
