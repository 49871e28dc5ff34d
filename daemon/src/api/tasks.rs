//! /v1/tasks: the inbox, claiming, and completing a task with an action.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;

use super::auth::Principal;
use super::instances::{perform, ActionRequest};
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::{self, InstanceView, Paged, TaskView};
use crate::engine::embedded::Runtime;
use crate::store::entities::tasks;
use crate::store::StoreError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    role: Option<String>,
    org: Option<String>,
    assignee: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

pub async fn list(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Params(query): Params<TaskQuery>,
) -> Result<Json<Paged<TaskView>>, Problem> {
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let mut select = tasks::Entity::find()
        .filter(tasks::Column::Status.eq("open"))
        .order_by_asc(tasks::Column::DueAt)
        .order_by_asc(tasks::Column::Id);
    if let Some(role) = query.role {
        select = select.filter(tasks::Column::Role.eq(role));
    }
    if let Some(org) = query.org {
        select = select.filter(tasks::Column::Organization.eq(org));
    }
    match query.assignee.as_deref() {
        Some("me") => select = select.filter(tasks::Column::Assignee.eq(principal.name.clone())),
        Some(other) => select = select.filter(tasks::Column::Assignee.eq(other.to_owned())),
        None => {}
    }
    if principal.role == "staff" {
        select = select.filter(tasks::Column::Organization.is_in(principal.organizations.clone()));
    }
    let (rows, total) = page.read(select, &runtime.store.db).await?;
    Ok(Json(page.body(views::tasks_with_notices(&runtime, &rows).await?, total)))
}

async fn open_task(runtime: &Runtime, principal: &Principal, id: &str) -> Result<tasks::Model, Problem> {
    let task = tasks::Entity::find_by_id(id.to_owned())
        .one(&runtime.store.db)
        .await
        .map_err(StoreError::from)?
        .filter(|t| {
            principal.role != "staff" || t.organization.as_ref().is_some_and(|o| principal.organizations.contains(o))
        })
        .ok_or_else(|| Problem::not_found(format!("task {id} does not exist")))?;
    if task.status != "open" {
        return Err(Problem::new(StatusCode::CONFLICT, "Task closed", format!("task {id} is already closed")));
    }
    Ok(task)
}

/// Only those who may complete a task may claim it: staff of its organization, and
/// administrators. A regulator or scheduler holding a task would block the staff who owe it.
fn may_handle(principal: &Principal, task: &tasks::Model) -> Result<(), Problem> {
    match principal.role.as_str() {
        "administrator" => Ok(()),
        "staff" if task.organization.as_ref().is_some_and(|o| principal.organizations.contains(o)) => Ok(()),
        role => Err(Problem::forbidden(format!("a {role} does not handle task {}", task.id))),
    }
}

pub async fn claim(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<TaskView>, Problem> {
    let task = open_task(&runtime, &principal, &id).await?;
    may_handle(&principal, &task)?;
    // Claim only if nobody else holds it: the condition is part of the update.
    let claimed = tasks::Entity::update_many()
        .col_expr(tasks::Column::Assignee, Some(principal.name.clone()).into())
        .filter(tasks::Column::Id.eq(task.id.clone()))
        .filter(tasks::Column::Status.eq("open"))
        .filter(
            sea_orm::Condition::any()
                .add(tasks::Column::Assignee.is_null())
                .add(tasks::Column::Assignee.eq(principal.name.clone())),
        )
        .exec(&runtime.store.db)
        .await
        .map_err(StoreError::from)?;
    if claimed.rows_affected == 0 {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Already claimed",
            format!("task {id} is claimed by {}", task.assignee.unwrap_or_default()),
        ));
    }
    let task = open_task(&runtime, &principal, &id).await?;
    let mut view = views::tasks_with_notices(&runtime, std::slice::from_ref(&task)).await?;
    Ok(Json(view.pop().expect("one task, one view")))
}

pub async fn complete(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<ActionRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let task = open_task(&runtime, &principal, &id).await?;
    may_handle(&principal, &task)?;
    let actions: Vec<String> = serde_json::from_str(&task.actions).unwrap_or_default();
    if !actions.contains(&request.action) {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "action",
            format!("task {id} offers {}, not `{}`", actions.join(", "), request.action),
        ));
    }
    perform(&runtime, &principal, task.instance_id, request).await
}
