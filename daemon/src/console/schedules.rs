//! 定时任务: the cron schedules (annual evaluations, reports, the digest, sweeps) with when
//! each fires next and how its recent runs went; administrators and schedulers enable and
//! disable them. Every change is audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Serialize;
use statflow_workflows::schedules::ScheduleSpec;

use super::session::CsrfForm;
use super::{format, ConsoleState, PageError, Viewer};
use crate::api::problem::Problem;
use crate::principal::Role;
use crate::store::records::RunStatus;
use crate::store::{from_millis, Slice};

fn may_manage(viewer: &Viewer) -> Result<(), PageError> {
    match viewer.principal.role {
        Role::Administrator | Role::Scheduler => Ok(()),
        _ => Err(Problem::forbidden("定时任务由管理员和调度账号管理。").into()),
    }
}

#[derive(Serialize)]
struct RunRow {
    fire_at: String,
    status: &'static str,
    error: Option<String>,
}

#[derive(Serialize)]
struct ScheduleRow {
    id: String,
    title: String,
    cron: String,
    enabled: bool,
    built_in: bool,
    next: Option<String>,
    runs: Vec<RunRow>,
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer) -> Response {
    let shown = async {
        may_manage(&viewer)?;
        let store = &console.app.store;
        let (schedules, _) = store.schedules(Slice { offset: 0, limit: 500 }).await?;
        let mut rows = Vec::with_capacity(schedules.len());
        for schedule in schedules {
            let (runs, _) = store.runs_of(&schedule.id, Slice { offset: 0, limit: 3 }).await?;
            rows.push(ScheduleRow {
                runs: runs
                    .into_iter()
                    .map(|r| RunRow {
                        fire_at: format::date_time(from_millis(r.fire_at)),
                        status: match r.status {
                            RunStatus::Running => "运行中",
                            RunStatus::Done => "完成",
                            RunStatus::Skipped => "跳过",
                            RunStatus::Failed => "失败",
                        },
                        error: r.error,
                    })
                    .collect(),
                next: schedule.next_fire_at.map(|at| format::date_time(from_millis(at))),
                id: schedule.id,
                title: schedule.title,
                cron: schedule.cron,
                enabled: schedule.enabled,
                built_in: schedule.built_in,
            });
        }
        Ok::<_, PageError>(console.render(
            StatusCode::OK,
            "schedules.html",
            minijinja::context! { viewer => viewer.header(), active => "schedules", rows },
        ))
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// Runs a schedule's job now (administrators and schedulers), e.g. a report wanted today.
pub async fn run_now(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        may_manage(&viewer)?;
        viewer.check_csrf(&form.csrf)?;
        if console.app.store.schedule(&id).await?.is_none() {
            return Err(Problem::not_found("没有这个定时任务。").into());
        }
        let run = console.app.engine.run_schedule_now(&id).await?;
        let detail = serde_json::json!({"fire_at": run.fire_at, "status": run.status});
        console.app.store.audit(&viewer.principal.name, "schedule.run_now", &id, detail).await?;
        Ok::<_, PageError>(Redirect::to("/schedules").into_response())
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// Enables or disables a schedule (`change` is `enable` or `disable`), keeping the rest of it.
pub async fn set_enabled(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path((id, change)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        may_manage(&viewer)?;
        viewer.check_csrf(&form.csrf)?;
        let enabled = match change.as_str() {
            "enable" => true,
            "disable" => false,
            _ => return Err(Problem::not_found("没有这项操作。").into()),
        };
        let schedule =
            console.app.store.schedule(&id).await?.ok_or_else(|| Problem::not_found("没有这个定时任务。"))?;
        let spec = ScheduleSpec {
            title: schedule.title,
            cron: schedule.cron,
            job: schedule.job,
            catch_up: schedule.catch_up,
            enabled,
        };
        console.app.engine.put_schedule(&id, &spec).await?;
        let detail = serde_json::to_value(&spec).expect("serializes");
        console.app.store.audit(&viewer.principal.name, "schedule.put", &id, detail).await?;
        Ok::<_, PageError>(Redirect::to("/schedules").into_response())
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
