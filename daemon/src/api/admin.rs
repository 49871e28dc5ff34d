//! - /v1/admin/clock: moves a virtual clock, firing timers and running schedules in the order
//!   they fall due. Without
//!   `--virtual-clock` the endpoint does not exist (404).
//! - /v1/admin/deliveries: notices, escalations and webhook events with their delivery
//!   state, so administrators see what failed and why.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Duration};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Principal;
use super::problem::{Body, Problem};
use crate::runtime::Runtime;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockRequest {
    advance: Option<String>,
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
            total += match c {
                'W' => Duration::weeks(n),
                'D' => Duration::days(n),
                'H' => Duration::hours(n),
                'M' => Duration::minutes(n),
                _ => Duration::seconds(n),
            };
        }
    }
    (number.is_empty() && text != "P" && !text.ends_with('T')).then_some(total)
}

pub async fn clock(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(request): Body<ClockRequest>,
) -> Result<Json<Value>, Problem> {
    if !runtime.clock.is_virtual() {
        return Err(Problem::not_found("no such endpoint"));
    }
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators move the clock"));
    }
    let now = runtime.clock.now();
    let target = match (&request.advance, &request.set) {
        (Some(advance), None) => {
            now + parse_duration(advance).ok_or_else(|| {
                Problem::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "advance",
                    format!("`{advance}` is not a duration such as P3D or PT2H"),
                )
            })?
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
    runtime.store.audit(&principal.name, "clock.move", "clock", json!({"from": now, "to": target})).await?;
    let (fired, runs) = runtime.advance_to(target).await?;
    // Retries waiting for the (virtual) time just passed are due now.
    runtime.outbox_changed.notify_one();
    runtime.deliveries_changed.notify_one();
    Ok(Json(json!({"now": runtime.clock.now(), "fired": fired, "runs": runs})))
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
        for bad in ["3D", "P", "PT", "P3", "PD", "P3H", "PT3D", "P-1D"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `pending`, `done` or `failed`; all when absent.
    status: Option<String>,
}

pub async fn deliveries(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    axum::extract::Query(query): axum::extract::Query<DeliveriesQuery>,
) -> Result<Json<Value>, Problem> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

    use crate::runtime::delivery::KINDS;
    use crate::store::entities::outbox;
    use crate::store::from_millis;

    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators see deliveries"));
    }
    let mut select = outbox::Entity::find().filter(outbox::Column::Kind.is_in(KINDS));
    if let Some(status) = &query.status {
        if !["pending", "done", "failed"].contains(&status.as_str()) {
            return Err(Problem::field(
                StatusCode::BAD_REQUEST,
                "status",
                format!("`{status}` is not pending, done or failed"),
            ));
        }
        select = select.filter(outbox::Column::Status.eq(status.as_str()));
    }
    let rows = select
        .order_by_desc(outbox::Column::Id)
        .limit(500)
        .all(&runtime.store.db)
        .await
        .map_err(crate::store::StoreError::from)?;
    let deliveries: Vec<Value> = rows
        .iter()
        .map(|row| {
            json!({
                "instance": row.instance_id,
                "key": row.key,
                "kind": row.kind,
                "status": row.status,
                "attempts": row.attempts,
                "next_attempt_at": from_millis(row.next_attempt_at),
                "last_error": row.last_error,
                "created_at": from_millis(row.created_at),
                "done_at": row.done_at.map(from_millis),
            })
        })
        .collect();
    Ok(Json(json!({ "deliveries": deliveries })))
}
