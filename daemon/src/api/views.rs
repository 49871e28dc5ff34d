//! What the API shows, as typed views: the OpenAPI document derives its response schemas
//! from these types (see [`super::openapi`]), so what is documented is what is sent.
//!
//! An instance shows its step, deadline with legal basis and remaining working days, open
//! tasks, data (confidential fields only to handlers), and effects.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Serialize;
use serde_json::{json, Value};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::data::confidential;
use statflow_workflows::engine::InstanceState;
use utoipa::ToSchema;

use super::AppState;
use crate::principal::Principal;
use crate::store::effects::EffectKind;
use crate::store::records::{EffectRecord, EffectStatus, InstanceRecord, InstanceStatus, TaskRecord, TaskStatus};
use crate::store::{from_millis, StoreError};

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T: ToSchema> {
    pub items: Vec<T>,
    pub page: u64,
    pub per_page: u64,
    /// How many items the whole list holds, when `total_exact`; otherwise at least this many
    /// (items are counted only up to 10,000 past this page).
    pub total: u64,
    pub total_exact: bool,
}

/// An open (or closed) task: who owes which step of which instance, and by when.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// `{instance}:{task}`.
    pub id: String,
    pub instance: i64,
    pub step: String,
    pub title: String,
    pub role: String,
    pub organization: Option<String>,
    /// The actions that complete it.
    pub actions: Vec<String>,
    pub due: Option<DateTime<FixedOffset>>,
    pub overdue: bool,
    pub status: TaskStatus,
    pub assignee: Option<String>,
    /// What the procedure rests on that was not in force when the instance started (a draft,
    /// a lapsed text): told to whoever works the task.
    pub source_notices: Vec<String>,
}

pub fn task(task: &TaskRecord) -> TaskView {
    TaskView {
        id: task.id.clone(),
        instance: task.instance_id,
        step: task.step.clone(),
        title: task.title.clone(),
        role: task.role.clone(),
        organization: task.organization.clone(),
        actions: task.actions.clone(),
        due: task.due_at.map(from_millis),
        overdue: task.overdue,
        status: task.status,
        assignee: task.assignee.clone(),
        source_notices: Vec::new(),
    }
}

/// `tasks` as views, each with its instance's source notices: they follow from the
/// instance's definition and start day (one small query, no states read).
pub async fn tasks_with_notices(state: &AppState, tasks: &[TaskRecord]) -> Result<Vec<TaskView>, StoreError> {
    let ids: Vec<i64> = tasks.iter().map(|t| t.instance_id).collect();
    let origins = state.store.instance_origins(&ids).await?;
    let notices = |instance: i64| {
        let origin = origins.get(&instance)?;
        let started = statflow_workflows::calendar::local_date(from_millis(origin.created_at));
        Some(state.engine.definitions().get(&origin.definition_version)?.source_notices(started))
    };
    Ok(tasks
        .iter()
        .map(|row| {
            let mut view = task(row);
            view.source_notices = notices(row.instance_id).unwrap_or_default();
            view
        })
        .collect())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    pub title: String,
    pub entered_at: DateTime<FixedOffset>,
}

/// The current step's deadline, with the legal article it comes from.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadlineView {
    /// When the limit ends; null while the clock is stopped.
    pub due: Option<DateTime<FixedOffset>>,
    pub last_day: Option<NaiveDate>,
    pub remaining_working_days: Option<i64>,
    /// Computed with a calendar year whose official notice is not loaded yet.
    pub provisional: bool,
    /// The clock is stopped (e.g. while materials are being supplemented).
    pub paused: bool,
    pub overdue: bool,
    /// The period in force, e.g. `5 working days`.
    pub period: String,
    /// An extension granted, if any.
    #[schema(value_type = Option<Object>)]
    pub extension: Value,
    /// The legal article, spelled out.
    pub basis: String,
}

/// An effect of the instance (a notice, an escalation, a certificate…) and how it went.
#[derive(Debug, Serialize, ToSchema)]
pub struct EffectView {
    pub key: String,
    pub kind: EffectKind,
    pub status: EffectStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
}

/// An instance as its viewer may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    pub id: i64,
    pub procedure: String,
    pub title: String,
    pub jurisdiction: String,
    pub definition_version: String,
    pub status: InstanceStatus,
    pub outcome: Option<String>,
    pub step: Option<StepView>,
    pub deadline: Option<DeadlineView>,
    pub tasks: Vec<TaskView>,
    pub record_status: Option<String>,
    /// What the procedure rests on that was not in force when the instance started (a draft
    /// for comment, a lapsed text): shown wherever the instance is.
    pub source_notices: Vec<String>,
    /// Start input and the data of every action, by field; confidential fields show as
    /// `(confidential)` to anyone but the handlers.
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, Value>,
    pub effects: Vec<EffectView>,
    /// What finished activities returned (certificate numbers…), by key.
    #[schema(value_type = Object)]
    pub activity_results: BTreeMap<String, Value>,
    #[schema(value_type = Vec<Object>)]
    pub activity_failures: Value,
    pub parent: Option<i64>,
    /// The schedule run that started it: `{schedule}@{fire time}/{subject}`.
    pub start_key: Option<String>,
    pub version: i64,
    /// Why it failed verification (see its history); a flagged instance takes no actions.
    pub flagged: Option<String>,
    pub created_at: DateTime<FixedOffset>,
    pub updated_at: DateTime<FixedOffset>,
}

/// The current step's deadline as it stands at `now` with `calendar`.
pub fn deadline(
    state: &InstanceState,
    definition: &Definition,
    calendar: &Calendar,
    now: DateTime<FixedOffset>,
) -> Option<DeadlineView> {
    state.step.as_ref().and_then(|s| s.deadline.as_ref()).map(|d| {
        let status = d.rule.status(calendar);
        DeadlineView {
            due: status.due,
            last_day: status.last_day,
            remaining_working_days: d.rule.remaining_working_days(now, calendar),
            provisional: status.provisional,
            paused: status.paused,
            overdue: d.overdue,
            period: d.rule.effective_period().to_string(),
            extension: json!(d.rule.extension),
            basis: definition.basis_text(&d.basis),
        }
    })
}

#[allow(clippy::too_many_arguments)]
pub fn instance(
    row: &InstanceRecord,
    state: &InstanceState,
    definition: &Definition,
    calendar: &Calendar,
    now: DateTime<FixedOffset>,
    open_tasks: &[TaskRecord],
    effects: &[EffectRecord],
    viewer: &Principal,
) -> InstanceView {
    let step = state.step.as_ref().map(|s| {
        let title = definition.step(&s.name).map(|d| d.title.clone()).unwrap_or_default();
        StepView { name: s.name.clone(), title, entered_at: s.entered_at }
    });
    let deadline = deadline(state, definition, calendar, now);
    // Confidential fields (a reporter's identity) are shown to the handlers only.
    let handler = viewer.is_admin()
        || open_tasks.iter().any(|t| t.organization.as_ref().is_some_and(|o| viewer.organizations.contains(o)));
    let hidden = confidential(&definition.procedure.input);
    let data: serde_json::Map<String, Value> = state
        .data
        .iter()
        .map(|(k, v)| (k.clone(), if !handler && hidden.contains(k) { json!("(confidential)") } else { v.clone() }))
        .collect();
    InstanceView {
        id: row.id,
        procedure: row.procedure.clone(),
        title: definition.procedure.title.clone(),
        jurisdiction: row.jurisdiction.clone(),
        definition_version: row.definition_version.clone(),
        status: row.status,
        outcome: row.outcome.clone(),
        step,
        deadline,
        tasks: open_tasks
            .iter()
            .map(|row| TaskView { source_notices: state.source_notices.clone(), ..task(row) })
            .collect(),
        record_status: state.record_status.clone(),
        source_notices: state.source_notices.clone(),
        data,
        effects: effects
            .iter()
            .map(|e| EffectView {
                key: e.key.clone(),
                kind: e.kind,
                status: e.status,
                attempts: e.attempts,
                last_error: e.last_error.clone(),
            })
            .collect(),
        activity_results: state.activity_results.clone(),
        activity_failures: json!(state.activity_failures),
        parent: row.parent,
        start_key: row.start_key.clone(),
        version: row.version,
        flagged: row.flagged.clone(),
        created_at: from_millis(row.created_at),
        updated_at: from_millis(row.updated_at),
    }
}
