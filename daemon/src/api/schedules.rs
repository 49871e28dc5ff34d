//! /v1/schedules: cron schedules and their runs. Administrators and schedulers manage them;
//! built-in schedules can be changed or disabled, not deleted (start-up would bring them back).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::{json, Value};
use statflow_workflows::schedules::{CatchUp, Job, ScheduleSpec};
use utoipa::ToSchema;

use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::Paged;
use super::AppState;
use crate::engine::EngineError;
use crate::principal::{Principal, Role};
use crate::store::from_millis;
use crate::store::records::{RunRecord, RunStatus};
use crate::store::schedules::ScheduleRecord;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

fn may_manage(principal: &Principal) -> Result<(), Problem> {
    if principal.is_admin() || principal.role == Role::Scheduler {
        Ok(())
    } else {
        Err(Problem::forbidden("only administrators and schedulers manage schedules"))
    }
}

/// A schedule and when it fires next.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub title: String,
    pub cron: String,
    /// Always `Asia/Shanghai`.
    pub timezone: &'static str,
    pub job: Job,
    pub catch_up: CatchUp,
    pub enabled: bool,
    pub built_in: bool,
    /// Null while disabled.
    pub next_fire_at: Option<DateTime<FixedOffset>>,
}

/// One fire time of a schedule and what it did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub schedule: String,
    pub fire_at: DateTime<FixedOffset>,
    pub status: RunStatus,
    #[schema(value_type = Object)]
    pub result: Value,
    pub error: Option<String>,
    pub created_at: DateTime<FixedOffset>,
    pub finished_at: Option<DateTime<FixedOffset>>,
}

/// A schedule with one page of its runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDetail {
    #[serde(flatten)]
    pub schedule: ScheduleView,
    pub runs: Paged<RunView>,
}

fn view(row: &ScheduleRecord) -> ScheduleView {
    ScheduleView {
        id: row.id.clone(),
        title: row.title.clone(),
        cron: row.cron.clone(),
        timezone: "Asia/Shanghai",
        job: row.job.clone(),
        catch_up: row.catch_up,
        enabled: row.enabled,
        built_in: row.built_in,
        next_fire_at: row.next_fire_at.filter(|_| row.enabled).map(from_millis),
    }
}

fn run_view(row: &RunRecord) -> RunView {
    RunView {
        schedule: row.schedule.clone(),
        fire_at: from_millis(row.fire_at),
        status: row.status,
        result: row.result.clone(),
        error: row.error.clone(),
        created_at: from_millis(row.created_at),
        finished_at: row.finished_at.map(from_millis),
    }
}

async fn find(state: &AppState, id: &str) -> Result<ScheduleRecord, Problem> {
    state.store.schedule(id).await?.ok_or_else(|| Problem::not_found(format!("no schedule `{id}`")))
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<PageQuery>,
) -> Result<Json<Paged<ScheduleView>>, Problem> {
    may_manage(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let (rows, total) = state.store.schedules(page.slice()).await?;
    Ok(Json(page.body(rows.iter().map(view).collect(), total)))
}

/// A schedule with one page of its runs, newest first.
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Params(query): Params<PageQuery>,
) -> Result<Json<ScheduleDetail>, Problem> {
    may_manage(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let row = find(&state, &id).await?;
    let (runs, total) = state.store.runs_of(&id, page.slice()).await?;
    Ok(Json(ScheduleDetail { schedule: view(&row), runs: page.body(runs.iter().map(run_view).collect(), total) }))
}

pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(spec): Body<ScheduleSpec>,
) -> Result<Json<ScheduleView>, Problem> {
    may_manage(&principal)?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "id",
            format!("`{id}`: a schedule id uses letters, digits, `.`, `_` and `-`"),
        ));
    }
    state.engine.put_schedule(&id, &spec).await?;
    state.store.audit(&principal.name, "schedule.put", &id, serde_json::to_value(&spec).expect("serializes")).await?;
    Ok(Json(view(&find(&state, &id).await?)))
}

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    may_manage(&principal)?;
    find(&state, &id).await?;
    state.engine.delete_schedule(&id).await.map_err(|e| match e {
        EngineError::Forbidden(message) => Problem::new(StatusCode::CONFLICT, "Built-in schedule", message),
        other => other.into(),
    })?;
    state.store.audit(&principal.name, "schedule.delete", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
