//! Administration pages: the working-day calendar (a year month by month, importing a new
//! year's notice, what is being recomputed) and deliveries (failed ones with their error,
//! sent again one at a time or all at once). Administrators only; every change is audited.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use statflow_workflows::calendar::DayReason;

use super::session::CsrfForm;
use super::{format, ConsoleState, PageError, Viewer};
use crate::api::problem::Problem;
use crate::store::effects::EffectKind;
use crate::store::records::EffectStatus;
use crate::store::{from_millis, Slice};

#[derive(Serialize)]
struct Day {
    day: u32,
    /// `work`, `weekend`, `holiday` or `adjusted` (a weekend made a working day).
    kind: &'static str,
    name: Option<String>,
}

#[derive(Serialize)]
struct Month {
    title: String,
    /// Empty cells before the 1st, Monday first.
    offset: u32,
    days: Vec<Day>,
}

#[derive(Serialize)]
struct YearRow {
    year: i32,
    origin: String,
    official: bool,
}

#[derive(Deserialize)]
pub struct CalendarQuery {
    year: Option<i32>,
    imported: Option<String>,
}

pub async fn calendar(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<CalendarQuery>,
) -> Response {
    calendar_page(&console, &viewer, query.year, query.imported, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

async fn calendar_page(
    console: &ConsoleState,
    viewer: &Viewer,
    year: Option<i32>,
    imported: Option<String>,
    error: Option<(String, String)>,
    status: StatusCode,
) -> Result<Response, PageError> {
    viewer.require_administrator()?;
    let app = &console.app;
    let (calendar, generation) = app.engine.calendar();
    let stored = app.store.calendar_years().await?;
    let now = app.engine.now();
    let year = year.unwrap_or(now.year()).clamp(1990, 2200);
    let years: Vec<YearRow> = calendar
        .years()
        .map(|y| YearRow {
            year: y,
            origin: stored.iter().find(|r| r.year == y).map_or_else(|| "内置官方通知".to_owned(), |r| r.origin.clone()),
            official: calendar.is_certain(y),
        })
        .collect();
    let months = (1..=12)
        .map(|month| {
            let first = NaiveDate::from_ymd_opt(year, month, 1).expect("a month's first day");
            let days = first
                .iter_days()
                .take_while(|d| d.month() == month)
                .map(|date| {
                    let info = calendar.day_info(date);
                    let (kind, name) = match info.reason {
                        DayReason::Weekday => ("work", None),
                        DayReason::Weekend => ("weekend", None),
                        DayReason::StatutoryHoliday(name) => ("holiday", Some(name)),
                        DayReason::AdjustedWorkingDay(name) => ("adjusted", Some(name)),
                    };
                    Day { day: date.day(), kind, name }
                })
                .collect();
            Month { title: format!("{month}月"), offset: first.weekday().num_days_from_monday(), days }
        })
        .collect::<Vec<_>>();
    let remaining = app.store.count_stale(generation).await?;
    let (error_field, error) = error.map_or((None, None), |(f, e)| (Some(f), Some(e)));
    Ok(console.render(
        status,
        "calendar.html",
        minijinja::context! {
            viewer => viewer.header(), active => "calendar", year, years, months,
            provisional => !calendar.is_certain(year), remaining, imported, error, error_field,
        },
    ))
}

#[derive(Deserialize)]
pub struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    content: String,
}

/// Imports a year's notice pasted (or read from a file by the page's script) into the form.
pub async fn import_calendar(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Form(form): Form<ImportForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let origin = if form.origin.trim().is_empty() { "console upload" } else { form.origin.trim() };
        match console.app.engine.import_calendar(origin, &form.content, None).await {
            Ok(imported) => {
                let years: Vec<String> = imported.years.iter().map(i32::to_string).collect();
                let detail = serde_json::json!({"years": imported.years, "generation": imported.generation});
                console.app.store.audit(&viewer.principal.name, "calendar.import", origin, detail).await?;
                let year = imported.years.first().copied().unwrap_or_default();
                let said = format!(
                    "已导入 {} 年的放假通知，{} 个办件的时限将重新计算。",
                    years.join("、"),
                    imported.instances_to_recompute
                );
                let target =
                    format!("/admin/calendar?year={year}&imported={}", super::session::encode_component(&said));
                Ok::<_, PageError>(Redirect::to(&target).into_response())
            }
            Err(error) => {
                let problem = Problem::from(error);
                if problem.status.is_server_error() {
                    return Err(problem.into());
                }
                let said = (problem.field.unwrap_or_else(|| "content".into()), problem.detail);
                calendar_page(&console, &viewer, None, None, Some(said), StatusCode::UNPROCESSABLE_ENTITY).await
            }
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Serialize)]
struct DeliveryRow {
    id: i64,
    instance: Option<i64>,
    kind: &'static str,
    status: &'static str,
    attempts: i32,
    error: Option<String>,
    created: String,
}

fn kind_title(kind: EffectKind) -> &'static str {
    match kind {
        EffectKind::Notify => "通知",
        EffectKind::Escalate => "督办通知",
        EffectKind::Webhook => "接口推送",
        EffectKind::Digest => "每日待办汇总",
        EffectKind::Anchor => "存证锚定",
        EffectKind::TaskNotice => "待办通知",
        _ => "其他",
    }
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    status: Option<String>,
    retried: Option<u64>,
}

pub async fn deliveries(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<DeliveriesQuery>,
) -> Response {
    let shown = async {
        viewer.require_administrator()?;
        let status = EffectStatus::parse(query.status.as_deref().unwrap_or("failed")).unwrap_or(EffectStatus::Failed);
        let (rows, total) =
            console.app.store.effects(&EffectKind::DELIVERED, Some(status), Slice { offset: 0, limit: 200 }).await?;
        let rows: Vec<DeliveryRow> = rows
            .into_iter()
            .map(|row| DeliveryRow {
                id: row.id,
                instance: row.instance_id,
                kind: kind_title(row.kind),
                status: match row.status {
                    EffectStatus::Pending => "待发送",
                    EffectStatus::Done => "已送达",
                    EffectStatus::Failed => "失败",
                },
                attempts: row.attempts,
                error: row.last_error,
                created: format::date_time(from_millis(row.created_at)),
            })
            .collect();
        Ok::<_, PageError>(console.render(
            StatusCode::OK,
            "deliveries.html",
            minijinja::context! {
                viewer => viewer.header(), active => "deliveries", rows, total,
                status => status.as_str(), retried => query.retried,
            },
        ))
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// Sends one failed delivery again (`id`), or all of them (`all`).
pub async fn retry(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path(which): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let id = match which.as_str() {
            "all" => None,
            text => Some(text.parse::<i64>().map_err(|_| Problem::not_found("没有这项送达记录。"))?),
        };
        let retried = console.app.engine.retry_deliveries(id, None).await?;
        let detail = serde_json::json!({"delivery": id, "retried": retried});
        console.app.store.audit(&viewer.principal.name, "delivery.retry", &which, detail).await?;
        Ok::<_, PageError>(Redirect::to(&format!("/admin/deliveries?retried={retried}")).into_response())
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Deserialize)]
pub struct ClockQuery {
    moved: Option<String>,
}

/// The virtual clock (only under `--virtual-clock`): where it stands, and moving it forward,
/// firing every timer and schedule on the way, for demonstrations and training.
pub async fn clock(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<ClockQuery>) -> Response {
    clock_page(&console, &viewer, query.moved, None, StatusCode::OK)
        .await
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

async fn clock_page(
    console: &ConsoleState,
    viewer: &Viewer,
    moved: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    viewer.require_administrator()?;
    if !console.app.engine.has_virtual_clock() {
        return Err(PageError::Problem(Problem::not_found("本系统使用真实时钟，没有虚拟时钟。")));
    }
    let now = format::date_time(console.app.engine.now());
    Ok(console.render(
        status,
        "clock.html",
        minijinja::context! { viewer => viewer.header(), active => "clock", now, moved, error },
    ))
}

#[derive(Deserialize)]
pub struct ClockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    advance: String,
}

pub async fn move_clock(State(console): State<ConsoleState>, viewer: Viewer, Form(form): Form<ClockForm>) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        if !console.app.engine.has_virtual_clock() {
            return Err(PageError::Problem(Problem::not_found("本系统使用真实时钟，没有虚拟时钟。")));
        }
        let now = console.app.engine.now();
        let target = match crate::api::admin::clock_target(now, Some(form.advance.trim()), None) {
            Ok(target) => target,
            Err(_) => {
                let said = "请填写前进时长，如 P5D（5天）、PT2H（2小时），一次最多前进5年。".to_owned();
                return clock_page(&console, &viewer, None, Some(said), StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        };
        let detail = serde_json::json!({"from": now, "to": target});
        console.app.store.audit(&viewer.principal.name, "clock.move", "clock", detail).await?;
        let moved = console.app.engine.advance_clock(target).await?;
        let said = format!(
            "时钟已前进到 {}，触发计时器 {} 个、定时任务 {} 次。",
            format::date_time(console.app.engine.now()),
            moved.fired_total,
            moved.runs_total
        );
        Ok::<_, PageError>(super::redirect_saying("/admin/clock", "moved", &said))
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
