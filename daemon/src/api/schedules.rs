//! /v1/schedules: cron schedules and their runs. Administrators and schedulers manage them;
//! built-in schedules can be changed or disabled, not deleted (start-up would bring them back).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Principal;
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::Paged;
use crate::engine::embedded::schedules::{Job, ScheduleSpec};
use crate::engine::embedded::Runtime;
use crate::store::entities::{schedule_runs, schedules};
use crate::store::{from_millis, StoreError};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    page: Option<String>,
    per_page: Option<String>,
}

fn may_manage(principal: &Principal) -> Result<(), Problem> {
    if principal.is_admin() || principal.role == "scheduler" {
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
    #[schema(value_type = Job)]
    pub job: Value,
    pub catch_up: String,
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
    /// `running`, `done`, `failed` or `skipped`.
    pub status: String,
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

fn view(row: &schedules::Model) -> ScheduleView {
    ScheduleView {
        id: row.id.clone(),
        title: row.title.clone(),
        cron: row.cron.clone(),
        timezone: "Asia/Shanghai",
        job: serde_json::from_str::<Value>(&row.job).unwrap_or(Value::Null),
        catch_up: row.catch_up.clone(),
        enabled: row.enabled,
        built_in: row.built_in,
        next_fire_at: row.next_fire_at.filter(|_| row.enabled).map(from_millis),
    }
}

fn run_view(row: &schedule_runs::Model) -> RunView {
    RunView {
        schedule: row.schedule_id.clone(),
        fire_at: from_millis(row.fire_at),
        status: row.status.clone(),
        result: serde_json::from_str::<Value>(&row.started).unwrap_or(Value::Null),
        error: row.error.clone(),
        created_at: from_millis(row.created_at),
        finished_at: row.finished_at.map(from_millis),
    }
}

async fn find(runtime: &Runtime, id: &str) -> Result<schedules::Model, Problem> {
    schedules::Entity::find_by_id(id)
        .one(&runtime.store.db)
        .await
        .map_err(StoreError::from)?
        .ok_or_else(|| Problem::not_found(format!("no schedule `{id}`")))
}

pub async fn list(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Params(query): Params<PageQuery>,
) -> Result<Json<Paged<ScheduleView>>, Problem> {
    may_manage(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let select = schedules::Entity::find().order_by_asc(schedules::Column::Id);
    let (rows, total) = page.read(select, &runtime.store.db).await?;
    Ok(Json(page.body(rows.iter().map(view).collect(), total)))
}

/// A schedule with one page of its runs, newest first.
pub async fn show(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Params(query): Params<PageQuery>,
) -> Result<Json<ScheduleDetail>, Problem> {
    may_manage(&principal)?;
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let row = find(&runtime, &id).await?;
    let runs = schedule_runs::Entity::find()
        .filter(schedule_runs::Column::ScheduleId.eq(&id))
        .order_by_desc(schedule_runs::Column::FireAt);
    let (runs, total) = page.read(runs, &runtime.store.db).await?;
    Ok(Json(ScheduleDetail { schedule: view(&row), runs: page.body(runs.iter().map(run_view).collect(), total) }))
}

pub async fn put(
    State(runtime): State<Arc<Runtime>>,
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
    let cron = runtime
        .check_schedule(&spec)
        .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, e.field, e.message))?;
    runtime.put_schedule(&id, &spec, &cron, false).await?;
    runtime.store.audit(&principal.name, "schedule.put", &id, serde_json::to_value(&spec).expect("serializes")).await?;
    Ok(Json(view(&find(&runtime, &id).await?)))
}

pub async fn delete(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, Problem> {
    may_manage(&principal)?;
    let row = find(&runtime, &id).await?;
    if row.built_in {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "Built-in schedule",
            format!("`{id}` comes with the procedure library; disable it (\"enabled\": false) instead"),
        ));
    }
    schedules::Entity::delete_by_id(&id).exec(&runtime.store.db).await.map_err(StoreError::from)?;
    runtime.store.audit(&principal.name, "schedule.delete", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
