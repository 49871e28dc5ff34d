//! /v1/overdue: the overdue board. Red items have passed their deadline (with how many
//! working days overdue and the escalation level reached); yellow items fall due within their
//! step's reminder window. Grouped by the organization that owes the work.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Duration;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};
use statflow_workflows::engine::InstanceState;

use super::auth::Principal;
use super::problem::Problem;
use crate::runtime::Runtime;
use crate::store::entities::instances;
use crate::store::{to_millis, StoreError};

/// A step whose deadline has no reminder plan is yellow this many working days ahead.
const DEFAULT_WINDOW_WORKING_DAYS: i64 = 2;

/// No reminder window reaches further than this many calendar days; rows due later are not
/// read at all.
const LOOKAHEAD_DAYS: i64 = 45;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueQuery {
    /// Only the items owed by this organization.
    org: Option<String>,
}

pub async fn board(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    query: Result<Query<OverdueQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid query", e.body_text()))?;
    let now = runtime.clock.now();
    let calendar = runtime.calendar();
    let rows = instances::Entity::find()
        .filter(instances::Column::Status.eq("running"))
        .filter(
            Condition::any()
                .add(instances::Column::Overdue.eq(true))
                .add(instances::Column::NextDueAt.lte(to_millis(now + Duration::days(LOOKAHEAD_DAYS)))),
        )
        .order_by_asc(instances::Column::NextDueAt)
        .all(&runtime.store.db)
        .await
        .map_err(StoreError::from)?;
    let mut board: BTreeMap<String, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
    for row in rows.iter().filter(|r| principal.may_see(&r.organizations)) {
        let state: InstanceState =
            serde_json::from_str(&row.state).map_err(|e| StoreError::Corrupt(format!("instance {}: {e}", row.id)))?;
        let (Some(step), Some(definition)) = (&state.step, runtime.definition(&row.definition_version)) else {
            continue;
        };
        let (Some(deadline), Some(spec)) = (&step.deadline, definition.step(&step.name)) else { continue };
        let Some(remaining) = deadline.rule.remaining_working_days(now, &calendar) else { continue };
        let reminders = spec.deadline.as_ref().map(|d| d.remind_working_days_before.clone()).unwrap_or_default();
        let window = reminders.iter().max().map_or(DEFAULT_WINDOW_WORKING_DAYS, |w| i64::from(*w));
        let red = deadline.overdue;
        if !red && (remaining > window || deadline.rule.status(&calendar).paused) {
            continue;
        }
        let organization = step
            .task
            .as_ref()
            .and_then(|t| t.organization.clone())
            .or_else(|| row.organizations.trim_matches(',').split(',').next().map(str::to_owned))
            .unwrap_or_default();
        if query.org.as_ref().is_some_and(|org| *org != organization) {
            continue;
        }
        let plan = spec
            .deadline
            .as_ref()
            .and_then(|d| d.escalation.as_ref())
            .and_then(|name| definition.procedure.escalations.get(name.get_ref().as_str()));
        let level = deadline.escalations_sent as usize;
        let level_title = plan.and_then(|p| p.levels.get(level.min(p.levels.len()).checked_sub(1)?)).map(|l| &l.title);
        let item = json!({
            "instance": row.id,
            "procedure": row.procedure,
            "jurisdiction": row.jurisdiction,
            "title": definition.procedure.title,
            "step": step.name,
            "step_title": spec.title,
            "task": step.task.as_ref().map(|t| json!({"role": t.role, "title": t.title})),
            "due": deadline.due,
            "provisional": deadline.provisional,
            "remaining_working_days": remaining.max(0),
            "working_days_overdue": if red { (-remaining).max(0) } else { 0 },
            "escalations_sent": deadline.escalations_sent,
            "escalation_level": level_title,
            "basis": definition.basis_text(&deadline.basis),
        });
        let entry = board.entry(organization).or_default();
        if red {
            entry.0.push(item);
        } else {
            entry.1.push(item);
        }
    }
    let organizations: Vec<Value> = board
        .into_iter()
        .map(|(organization, (red, yellow))| json!({"organization": organization, "red": red, "yellow": yellow}))
        .collect();
    Ok(Json(json!({"now": now, "organizations": organizations})))
}
