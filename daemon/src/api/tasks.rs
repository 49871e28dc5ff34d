//! /v1/tasks: the inbox, claiming, and completing a task with an action.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::instances::{perform, ActionRequest};
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::{self, InstanceView, Paged, TaskView};
use super::AppState;
use crate::principal::{Principal, Role};
use crate::store::records::{TaskRecord, TaskStatus};
use crate::store::tasks::TaskFilter;

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
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<TaskQuery>,
) -> Result<Json<Paged<TaskView>>, Problem> {
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let filter = TaskFilter {
        role: query.role,
        organization: query.org,
        assignee: query.assignee.map(|a| if a == "me" { principal.name.clone() } else { a }),
        within: principal.scope(),
        free_or_held_by: None,
    };
    let (rows, total) = state.store.open_tasks(&filter, page.slice()).await?;
    Ok(Json(page.body(views::tasks_with_notices(&state, &rows).await?, total)))
}

/// An open task `principal` may see: staff of another organization find none (404), and a
/// closed one is a conflict. The API and the console both look tasks up this way.
pub async fn open_task(state: &AppState, principal: &Principal, id: &str) -> Result<TaskRecord, Problem> {
    let task = state
        .store
        .task(id)
        .await?
        .filter(|t| {
            !principal.is_staff() || t.organization.as_ref().is_some_and(|o| principal.organizations.contains(o))
        })
        .ok_or_else(|| Problem::not_found(format!("task {id} does not exist")))?;
    if task.status != TaskStatus::Open {
        return Err(Problem::new(StatusCode::CONFLICT, "Task closed", format!("task {id} is already closed")));
    }
    Ok(task)
}

/// Only those who may complete a task may claim it: staff of its organization, and
/// administrators. A regulator or scheduler holding a task would block the staff who owe it.
pub fn may_handle(principal: &Principal, task: &TaskRecord) -> Result<(), Problem> {
    match principal.role {
        Role::Administrator => Ok(()),
        Role::Staff if task.organization.as_ref().is_some_and(|o| principal.organizations.contains(o)) => Ok(()),
        role => Err(Problem::forbidden(format!("a {role} does not handle task {}", task.id))),
    }
}

pub async fn claim(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<TaskView>, Problem> {
    let task = open_task(&state, &principal, &id).await?;
    may_handle(&principal, &task)?;
    if !state.engine.claim(&task.id, &principal).await? {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Already claimed",
            format!("task {id} is claimed by {}", task.assignee.unwrap_or_default()),
        ));
    }
    let task = open_task(&state, &principal, &id).await?;
    let mut view = views::tasks_with_notices(&state, std::slice::from_ref(&task)).await?;
    Ok(Json(view.pop().expect("one task, one view")))
}

pub async fn complete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<ActionRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let task = open_task(&state, &principal, &id).await?;
    may_handle(&principal, &task)?;
    if !task.offers(&request.action) {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "action",
            format!("task {id} offers {}, not `{}`", task.actions.join(", "), request.action),
        ));
    }
    perform(&state, &principal, task.instance_id, request).await
}
