//! - /v1/admin/clock: moves a virtual clock, firing timers and running schedules in the order
//!   they fall due. Without
//!   `--virtual-clock` the endpoint does not exist (404).
//! - /v1/admin/deliveries: notices, escalations and webhook events with their delivery
//!   state, so administrators see what failed and why; `/retry` sends failed ones again.
//! - /v1/audit: the audit log of administrative acts, newest first, with filters.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::FixedOffset;
use chrono::{DateTime, Duration};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::page::Page;
use super::problem::{Body, Params, Problem};
use super::views::Paged;
use super::AppState;
use crate::engine::{Fired, RunReport};
use crate::principal::Principal;
use crate::store::effects::EffectKind;
use crate::store::from_millis;
use crate::store::records::EffectStatus;

/// Where a clock move got to and what fell due on the way.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    pub now: DateTime<FixedOffset>,
    /// The first 1000 timers fired, in order.
    pub fired: Vec<Fired>,
    /// The first 1000 schedule runs.
    pub runs: Vec<RunReport>,
    pub fired_total: usize,
    pub runs_total: usize,
    /// How many bounded steps the move took.
    pub batches: usize,
}

/// A notice, escalation, webhook event, digest or anchor, and how its delivery went.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// What `/v1/admin/deliveries/retry` names it by.
    pub id: i64,
    pub instance: Option<i64>,
    pub key: String,
    pub kind: EffectKind,
    pub status: EffectStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<FixedOffset>,
    pub last_error: Option<String>,
    pub created_at: DateTime<FixedOffset>,
    pub done_at: Option<DateTime<FixedOffset>>,
}

/// The furthest one request moves the clock: five years, the longest authorization term,
/// so a whole term can be shown in one move while a typo (`P100000000D`) is refused.
pub const MAX_MOVE_DAYS: i64 = 5 * 366;

/// Give exactly one of `advance` and `set`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    /// An ISO 8601 duration of days, hours, minutes and seconds, e.g. `P3D`.
    advance: Option<String>,
    /// An RFC 3339 instant; the clock never goes back.
    set: Option<String>,
}

/// An ISO 8601 duration of days, hours, minutes and seconds (`P3D`, `PT2H`, `P1DT12H30M`).
fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.strip_prefix('P')?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = Duration::zero();
    let mut number = String::new();
    for (part, units) in [(days, "DW"), (time, "HMS")] {
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            if !units.contains(c) || number.is_empty() {
                return None;
            }
            let n: i64 = number.parse().ok()?;
            number.clear();
            let part = match c {
                'W' => Duration::try_weeks(n),
                'D' => Duration::try_days(n),
                'H' => Duration::try_hours(n),
                'M' => Duration::try_minutes(n),
                _ => Duration::try_seconds(n),
            }?;
            total = total.checked_add(&part)?;
        }
    }
    (number.is_empty() && text != "P" && !text.ends_with('T')).then_some(total)
}

pub async fn clock(
    State(state): State<AppState>,
    principal: Principal,
    Body(request): Body<ClockRequest>,
) -> Result<Json<ClockView>, Problem> {
    if !state.engine.has_virtual_clock() {
        return Err(Problem::not_found("no such endpoint"));
    }
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators move the clock"));
    }
    let now = state.engine.now();
    let target = clock_target(now, request.advance.as_deref(), request.set.as_deref())?;
    state.store.audit(&principal.name, "clock.move", "clock", json!({"from": now, "to": target})).await?;
    let moved = state.engine.advance_clock(target).await?;
    Ok(Json(ClockView {
        now: state.engine.now(),
        fired: moved.fired,
        runs: moved.runs,
        fired_total: moved.fired_total,
        runs_total: moved.runs_total,
        batches: moved.batches,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("P3D"), Some(Duration::days(3)));
        assert_eq!(parse_duration("PT2H"), Some(Duration::hours(2)));
        assert_eq!(parse_duration("P1DT12H30M"), Some(Duration::hours(36) + Duration::minutes(30)));
        assert_eq!(parse_duration("P2W"), Some(Duration::weeks(2)));
        for bad in ["3D", "P", "PT", "P3", "PD", "P3H", "PT3D", "P-1D", "P99999999999999999W", "P9223372036854775807D"]
        {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `pending`, `done` or `failed`; all when absent.
    status: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

pub async fn deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<DeliveriesQuery>,
) -> Result<Json<Paged<DeliveryView>>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators see deliveries"));
    }
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(EffectStatus::parse(text).ok_or_else(|| {
            Problem::field(StatusCode::BAD_REQUEST, "status", format!("`{text}` is not pending, done or failed"))
        })?),
    };
    let (rows, total) = state.store.effects(&EffectKind::DELIVERED, status, page.slice()).await?;
    let deliveries: Vec<DeliveryView> = rows
        .iter()
        .map(|row| DeliveryView {
            id: row.id,
            instance: row.instance_id,
            key: row.key.clone(),
            kind: row.kind,
            status: row.status,
            attempts: row.attempts,
            next_attempt_at: from_millis(row.next_attempt_at),
            last_error: row.last_error.clone(),
            created_at: from_millis(row.created_at),
            done_at: row.done_at.map(from_millis),
        })
        .collect();
    Ok(Json(page.body(deliveries, total)))
}

/// An administrative act as the audit log keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub at: DateTime<FixedOffset>,
    /// Who did it (a principal's name, `cli`, `system` or `scheduler`).
    pub principal: String,
    /// What was done, e.g. `delivery.retry`, `token.revoke`, `clock.move`.
    pub action: String,
    /// What it was done to, e.g. `instance/7`.
    pub target: String,
    pub detail: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    principal: Option<String>,
    /// Actions that start with this, e.g. `delivery.`.
    action: Option<String>,
    target: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
}

/// Longest filter value taken (names, actions and targets are far shorter).
const MAX_FILTER: usize = 200;

pub async fn audit(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<AuditQuery>,
) -> Result<Json<Paged<AuditView>>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators read the audit log"));
    }
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    for (field, value) in [("principal", &query.principal), ("action", &query.action), ("target", &query.target)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > MAX_FILTER) {
            return Err(Problem::field(StatusCode::BAD_REQUEST, field, format!("at most {MAX_FILTER} characters")));
        }
    }
    let (entries, total) = state
        .store
        .audit_log(query.principal.as_deref(), query.action.as_deref(), query.target.as_deref(), page.slice())
        .await?;
    let items = entries
        .into_iter()
        .map(|entry| AuditView {
            at: from_millis(entry.at),
            principal: entry.principal,
            action: entry.action,
            target: entry.target,
            detail: serde_json::from_str(&entry.detail).unwrap_or(serde_json::Value::String(entry.detail)),
        })
        .collect();
    Ok(Json(page.body(items, total)))
}

/// Which failed deliveries to send again: the one `id`, every failed one of `kind`, or (with
/// neither) every failed one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    pub id: Option<i64>,
    /// `notify`, `escalate`, `webhook`, `digest`, `anchor` or `task_notice`.
    pub kind: Option<String>,
}

/// How many deliveries were put back in the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetryView {
    pub retried: u64,
}

pub async fn retry_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Body(request): Body<RetryRequest>,
) -> Result<Json<RetryView>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators retry deliveries"));
    }
    let kind = match request.kind.as_deref() {
        None => None,
        Some(text) => Some(EffectKind::parse(text).filter(|k| EffectKind::DELIVERED.contains(k)).ok_or_else(|| {
            let kinds: Vec<&str> = EffectKind::DELIVERED.iter().map(|k| k.as_str()).collect();
            Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "kind",
                format!("`{text}` is not one of {}", kinds.join(", ")),
            )
        })?),
    };
    if request.id.is_some() && kind.is_some() {
        return Err(Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "kind", "give `id` or `kind`, not both"));
    }
    let retried = state.engine.retry_deliveries(request.id, kind).await?;
    let target = request.id.map_or_else(|| kind.map_or("all", |k| k.as_str()).to_owned(), |id| id.to_string());
    let detail = json!({"delivery": request.id, "kind": kind, "retried": retried});
    state.store.audit(&principal.name, "delivery.retry", &target, detail).await?;
    Ok(Json(RetryView { retried }))
}

/// Where a clock move goes: `advance` by a duration (P3D, PT2H) or `set` to a later instant,
/// at most [`MAX_MOVE_DAYS`] ahead; errors name the field at fault.
pub fn clock_target(
    now: DateTime<FixedOffset>,
    advance: Option<&str>,
    set: Option<&str>,
) -> Result<DateTime<FixedOffset>, Problem> {
    let too_far = |field: &str| {
        Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            format!("the clock moves at most {MAX_MOVE_DAYS} days (5 years) per request; move it in steps"),
        )
    };
    let target = match (advance, set) {
        (Some(advance), None) => {
            let duration = parse_duration(advance).ok_or_else(|| {
                Problem::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "advance",
                    format!("`{advance}` is not a duration such as P3D or PT2H"),
                )
            })?;
            if duration > Duration::days(MAX_MOVE_DAYS) {
                return Err(too_far("advance"));
            }
            now + duration
        }
        (None, Some(set)) => {
            let to = DateTime::parse_from_rfc3339(set).map_err(|_| {
                Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "set", format!("`{set}` is not an RFC 3339 instant"))
            })?;
            if to < now {
                return Err(Problem::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "set",
                    format!("the clock is at {now}; it does not go back"),
                ));
            }
            if to - now > Duration::days(MAX_MOVE_DAYS) {
                return Err(too_far("set"));
            }
            to
        }
        _ => {
            return Err(Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "advance",
                "give exactly one of `advance` or `set`",
            ))
        }
    };
    Ok(target)
}
