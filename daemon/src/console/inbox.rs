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
use crate::api::tasks::{may_handle, open_task};
use crate::principal::Role;
use crate::store::records::TaskRecord;
use crate::store::tasks::TaskFilter;
use crate::store::{from_millis, Total};

/// An escalation that reached the regulator: what a regulator's inbox shows first.
#[derive(Serialize)]
struct EscalationRow {
    instance: i64,
    title: String,
    step: String,
    level: String,
    at: String,
    status: &'static str,
}

/// The escalations addressed to regulators, newest first (the latest 200), in `viewer`'s
/// scope.
async fn escalations(console: &ConsoleState, viewer: &Viewer) -> Result<Vec<EscalationRow>, PageError> {
    use crate::store::effects::{Effect, EffectKind};
    use statflow_workflows::engine::Activity;
    let (effects, _) =
        console.app.store.effects(&[EffectKind::Escalate], None, crate::store::Slice { offset: 0, limit: 500 }).await?;
    let mut rows = Vec::new();
    for effect in effects {
        let (Ok(Effect::Activity(Activity::Escalate { title, to, step, .. })), Some(instance)) =
            (effect.effect(), effect.instance_id)
        else {
            continue;
        };
        if !to.iter().any(|r| r.role == "regulator") || rows.len() == 200 {
            continue;
        }
        let Ok(record) = console.app.store.instance(instance).await else { continue };
        if !viewer.principal.may_see(&record.organizations) {
            continue;
        }
        let definition = console.app.engine.definitions().get(&record.definition_version);
        rows.push(EscalationRow {
            instance,
            title: definition.as_ref().map_or_else(|| record.procedure.clone(), |d| d.procedure.title.clone()),
            step: definition.as_ref().and_then(|d| d.step(&step)).map_or(step.clone(), |s| s.title.clone()),
            level: title,
            at: format::date_time(from_millis(effect.created_at)),
            status: match effect.status {
                crate::store::records::EffectStatus::Pending => "待送达",
                crate::store::records::EffectStatus::Done => "已送达",
                crate::store::records::EffectStatus::Failed => "送达失败",
            },
        });
    }
    Ok(rows)
}

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
        (Vec::new(), Total::exactly(0))
    };
    let rows = rows(console, viewer, &tasks).await?;
    let escalated = if principal.role == Role::Regulator { escalations(console, viewer).await? } else { Vec::new() };
    let note = match principal.role {
        Role::Regulator => Some("监管人员不承办任务；下列为上报监管方的督办事项，全部超期情况见“超期督办”。"),
        Role::Scheduler => Some("调度账号不承办任务。"),
        _ if rows.is_empty() => Some("目前没有待办任务。"),
        _ => None,
    };
    let pages = total.pages(page.size);
    Ok(console.render(
        StatusCode::OK,
        "inbox.html",
        minijinja::context! {
            viewer => viewer.header(), active => "inbox", rows, note, escalated, total, page => page.number, pages,
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

/// The open task `viewer` may handle, by the API's own rules: staff of another organization
/// find no such task, a role that handles none (regulator, scheduler) is told so.
async fn handled_task(console: &ConsoleState, viewer: &Viewer, id: &str) -> Result<TaskRecord, PageError> {
    let task = open_task(&console.app, &viewer.principal, id).await?;
    may_handle(&viewer.principal, &task)?;
    Ok(task)
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
