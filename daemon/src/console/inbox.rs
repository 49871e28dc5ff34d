//! 我的待办: the open tasks a person may take up (in their organizations, nobody's or
//! theirs), earliest due first, with the deadline and its basis; claim and release.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::{Deserialize, Serialize};

use super::deadline::{panel, DeadlinePanel};
use super::session::CsrfForm;
use super::{format, ConsoleState, PageError, Viewer};
use crate::api::page::Page;
use crate::api::problem::Problem;
use crate::principal::Role;
use crate::store::from_millis;
use crate::store::records::{TaskRecord, TaskStatus};
use crate::store::tasks::TaskFilter;

/// One task of the inbox.
#[derive(Serialize)]
struct InboxRow {
    id: String,
    instance: i64,
    procedure: String,
    title: String,
    step: String,
    organization: Option<String>,
    assignee: Option<String>,
    mine: bool,
    created: String,
    deadline: Option<DeadlinePanel>,
    colour: &'static str,
    source_notices: Vec<String>,
}

#[derive(Deserialize)]
pub struct InboxQuery {
    page: Option<String>,
}

/// The inbox of `viewer`: staff see their organizations' tasks, administrators every task;
/// regulators and schedulers act on no task, so theirs is empty and says why.
pub async fn page(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<InboxQuery>,
) -> Result<Response, Response> {
    inbox(&console, &viewer, query).await.map_err(|e| e.into_page(&console, Some(&viewer)))
}

async fn inbox(console: &ConsoleState, viewer: &Viewer, query: InboxQuery) -> Result<Response, PageError> {
    let principal = &viewer.principal;
    let page = Page::parse(query.page.as_deref(), Some("50"))?;
    let (tasks, total) = if principal.acts_on_instances() {
        let filter = TaskFilter {
            free_or_held_by: Some(principal.name.clone()),
            within: principal.scope(),
            ..TaskFilter::default()
        };
        console.app.store.open_tasks(&filter, page.slice()).await?
    } else {
        (Vec::new(), 0)
    };
    let rows = rows(console, viewer, &tasks).await?;
    let note = match principal.role {
        Role::Regulator => Some("监管人员不承办任务；督办事项见“超期督办”。"),
        Role::Scheduler => Some("调度账号不承办任务。"),
        _ if rows.is_empty() => Some("目前没有待办任务。"),
        _ => None,
    };
    let pages = total.div_ceil(page.size).max(1);
    Ok(console.render(
        StatusCode::OK,
        "inbox.html",
        minijinja::context! {
            viewer => viewer.header(), active => "inbox", rows, note, total, page => page.number, pages,
            now => format::date_time(console.app.engine.now()),
        },
    ))
}

async fn rows(console: &ConsoleState, viewer: &Viewer, tasks: &[TaskRecord]) -> Result<Vec<InboxRow>, PageError> {
    let ids: Vec<i64> = tasks.iter().map(|t| t.instance_id).collect();
    let instances = console.app.store.instances_by_id(&ids).await?;
    let (calendar, _) = console.app.engine.calendar();
    let now = console.app.engine.now();
    let mut rows = Vec::with_capacity(tasks.len());
    for task in tasks {
        let Some(record) = instances.get(&task.instance_id) else { continue };
        let Some(definition) = console.app.engine.definitions().get(&record.definition_version) else { continue };
        let state = record.state()?;
        let deadline = panel(&state, &definition, &calendar, now);
        let colour = if task.overdue { "red" } else { deadline.as_ref().map_or("normal", |d| d.colour) };
        rows.push(InboxRow {
            id: task.id.clone(),
            instance: task.instance_id,
            procedure: definition.procedure.title.clone(),
            title: task.title.clone(),
            step: definition.step(&task.step).map(|s| s.title.clone()).unwrap_or_else(|| task.step.clone()),
            organization: task.organization.clone(),
            mine: task.assignee.as_deref() == Some(viewer.principal.name.as_str()),
            assignee: task.assignee.clone(),
            created: format::date_time(from_millis(task.created_at)),
            deadline,
            colour,
            source_notices: state.source_notices.clone(),
        });
    }
    Ok(rows)
}

/// Loads an open task `viewer` may handle: staff of its organization, or an administrator.
/// Staff of another organization find no such task; a role that handles no task (regulator,
/// scheduler) is told so, as the API does.
async fn handled_task(console: &ConsoleState, viewer: &Viewer, id: &str) -> Result<TaskRecord, PageError> {
    let principal = &viewer.principal;
    if !principal.acts_on_instances() {
        return Err(Problem::forbidden("您的角色不承办任务。").into());
    }
    let task = console.app.store.task(id).await?.filter(|t| {
        principal.is_admin() || t.organization.as_ref().is_some_and(|o| principal.organizations.contains(o))
    });
    match task {
        Some(task) if task.status == TaskStatus::Open => Ok(task),
        Some(_) => Err(Problem::new(StatusCode::CONFLICT, "Task closed", "该任务已办结。").into()),
        None => Err(Problem::not_found("没有这项任务。").into()),
    }
}

pub async fn claim(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.check_csrf(&form.csrf)?;
        let task = handled_task(&console, &viewer, &id).await?;
        if !console.app.engine.claim(&task.id, &viewer.principal).await? {
            let holder = task.assignee.unwrap_or_default();
            return Err(
                Problem::new(StatusCode::CONFLICT, "Already claimed", format!("该任务已由 {holder} 认领。")).into()
            );
        }
        Ok::<_, PageError>(Redirect::to("/inbox").into_response())
    }
    .await;
    result.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

pub async fn release(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.check_csrf(&form.csrf)?;
        let task = handled_task(&console, &viewer, &id).await?;
        // Staff release their own claims; an administrator may free anyone's.
        let holder = (!viewer.principal.is_admin()).then_some(viewer.principal.name.as_str());
        if !console.app.store.release_task(&task.id, holder).await? {
            return Err(Problem::new(StatusCode::CONFLICT, "Not held", "该任务不是由您认领的，无法退回。").into());
        }
        Ok::<_, PageError>(Redirect::to("/inbox").into_response())
    }
    .await;
    result.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
