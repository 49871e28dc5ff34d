//! What the API shows of an instance: its step, deadline with legal basis and remaining
//! working days, open tasks, data (confidential fields only to handlers), and effects.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::data::confidential;
use statflow_workflows::engine::InstanceState;

use super::auth::Principal;
use crate::store::entities::{instances, outbox, tasks};
use crate::store::from_millis;

pub fn task(task: &tasks::Model) -> Value {
    json!({
        "id": task.id,
        "instance": task.instance_id,
        "step": task.step,
        "title": task.title,
        "role": task.role,
        "organization": task.organization,
        "actions": serde_json::from_str::<Value>(&task.actions).unwrap_or(Value::Null),
        "due": task.due_at.map(from_millis),
        "overdue": task.overdue,
        "status": task.status,
        "assignee": task.assignee,
    })
}

#[allow(clippy::too_many_arguments)]
pub fn instance(
    row: &instances::Model,
    state: &InstanceState,
    definition: &Definition,
    calendar: &Calendar,
    now: DateTime<FixedOffset>,
    open_tasks: &[tasks::Model],
    effects: &[outbox::Model],
    viewer: &Principal,
) -> Value {
    let step = state.step.as_ref().map(|s| {
        let title = definition.step(&s.name).map(|d| d.title.clone()).unwrap_or_default();
        json!({"name": s.name, "title": title, "entered_at": s.entered_at})
    });
    let deadline = state.step.as_ref().and_then(|s| s.deadline.as_ref()).map(|d| {
        let status = d.rule.status(calendar);
        json!({
            "due": status.due,
            "last_day": status.last_day,
            "remaining_working_days": d.rule.remaining_working_days(now, calendar),
            "provisional": status.provisional,
            "paused": status.paused,
            "overdue": d.overdue,
            "period": d.rule.effective_period().to_string(),
            "extension": d.rule.extension,
            "basis": definition.basis_text(&d.basis),
        })
    });
    // Confidential fields (a reporter's identity) are shown to the handlers only.
    let handler = viewer.is_admin()
        || open_tasks.iter().any(|t| t.organization.as_ref().is_some_and(|o| viewer.organizations.contains(o)));
    let hidden = confidential(&definition.procedure.input);
    let data: serde_json::Map<String, Value> = state
        .data
        .iter()
        .map(|(k, v)| (k.clone(), if !handler && hidden.contains(k) { json!("(confidential)") } else { v.clone() }))
        .collect();
    json!({
        "id": row.id,
        "procedure": row.procedure,
        "title": definition.procedure.title,
        "jurisdiction": row.jurisdiction,
        "definition_version": row.definition_version,
        "status": row.status,
        "outcome": row.outcome,
        "step": step,
        "deadline": deadline,
        "tasks": open_tasks.iter().map(task).collect::<Vec<_>>(),
        "record_status": state.record_status,
        "data": data,
        "effects": effects.iter().map(|e| json!({"key": e.key, "kind": e.kind, "status": e.status, "attempts": e.attempts, "last_error": e.last_error})).collect::<Vec<_>>(),
        "activity_results": state.activity_results,
        "activity_failures": state.activity_failures,
        "parent": row.parent_instance_id,
        // The schedule run that started it: `{schedule}@{fire time}/{subject}`.
        "start_key": row.start_key,
        "version": row.version_no,
        // Why it failed verification (see its history); a flagged instance takes no actions.
        "flagged": row.flagged,
        "created_at": from_millis(row.created_at),
        "updated_at": from_millis(row.updated_at),
    })
}
