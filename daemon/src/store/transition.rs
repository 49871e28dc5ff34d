//! The write path: every change to an instance is one database transaction holding the
//! history row, the snapshot (guarded by its version), and the timer, task and outbox rows
//! the interpreter's commands call for. Either all of it is stored or none of it.

use chrono::{DateTime, FixedOffset};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{self, Activity, Actor, Command, Event, InstanceState, Status};

use super::entities::{history, instances, outbox, tasks, timers};
use super::{to_millis, Store, StoreError};

/// The hash that precedes the first event of every instance.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How often a transition is retried when another one on the same instance won the race.
const ATTEMPTS: usize = 8;

/// A stored transition.
#[derive(Debug)]
pub struct Applied {
    pub instance_id: i64,
    pub commands: Vec<Command>,
}

/// The hash of a history row: it covers the previous hash, so altering or removing any
/// earlier event breaks every hash after it.
pub fn chain_hash(prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [prev, &seq.to_string(), &at.to_string(), actor, event] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn actor_of(event: &Event) -> String {
    match event {
        Event::Started { actor, .. } | Event::Action { actor, .. } => actor.id.clone(),
        Event::TimerFired { .. } => "timer".into(),
        _ => "system".into(),
    }
}

/// The organizations an instance involves, as `,a,b,` for LIKE filters.
fn organizations(definition: &Definition, state: &InstanceState) -> String {
    let mut orgs: Vec<String> = definition
        .procedure
        .roles
        .values()
        .filter_map(|r| r.organization.as_ref())
        .filter_map(|field| state.data.get(field.get_ref().as_str()).and_then(Value::as_str).map(str::to_owned))
        .collect();
    orgs.sort();
    orgs.dedup();
    format!(",{},", orgs.join(","))
}

fn status_of(state: &InstanceState) -> (&'static str, Option<String>) {
    match &state.status {
        Status::Completed { outcome } => ("completed", Some(outcome.clone())),
        Status::Running => ("running", None),
        Status::NotStarted => ("not_started", None),
    }
}

fn deadline_of(state: &InstanceState) -> (Option<i64>, bool) {
    let deadline = state.step.as_ref().and_then(|s| s.deadline.as_ref());
    (deadline.and_then(|d| d.due).map(to_millis), deadline.is_some_and(|d| d.overdue))
}

fn activity_kind(activity: &Activity) -> &'static str {
    match activity {
        Activity::Notify { .. } => "notify",
        Activity::Escalate { .. } => "escalate",
        Activity::IssueCertificate { .. } => "issue_certificate",
        Activity::SetStatus { .. } => "set_status",
        Activity::ChangeAccess { .. } => "change_access",
        Activity::WriteReport { .. } => "write_report",
    }
}

impl Store {
    /// Starts an instance of `definition` in one transaction.
    pub async fn start(
        &self,
        definition: &Definition,
        input: Value,
        actor: Actor,
        now: DateTime<FixedOffset>,
        calendar: &Calendar,
        parent: Option<(i64, String)>,
    ) -> Result<Applied, StoreError> {
        let event = Event::Started { input, actor };
        let transition = engine::apply(definition, &InstanceState::new(definition), &event, now, calendar)
            .map_err(StoreError::Refused)?;
        let _writer = match &self.writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        let (status, outcome) = status_of(&transition.state);
        let (next_due_at, overdue) = deadline_of(&transition.state);
        let row = instances::ActiveModel {
            procedure: Set(definition.id().to_owned()),
            jurisdiction: Set(definition.jurisdiction().to_owned()),
            definition_version: Set(definition.version.clone()),
            status: Set(status.to_owned()),
            outcome: Set(outcome),
            step: Set(transition.state.step_name().map(str::to_owned)),
            organizations: Set(organizations(definition, &transition.state)),
            state: Set(serde_json::to_string(&transition.state).expect("states serialize")),
            version_no: Set(1),
            next_due_at: Set(next_due_at),
            overdue: Set(overdue),
            parent_instance_id: Set(parent.as_ref().map(|(id, _)| *id)),
            parent_key: Set(parent.map(|(_, key)| key)),
            created_at: Set(to_millis(now)),
            updated_at: Set(to_millis(now)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        append_history(&txn, row.id, 1, now, &event).await?;
        apply_commands(&txn, row.id, &transition.commands, now).await?;
        txn.commit().await?;
        Ok(Applied { instance_id: row.id, commands: transition.commands })
    }

    /// Applies `event` to instance `id` in one transaction, retrying when a concurrent
    /// transition of the same instance committed first. A refused event stores nothing.
    pub async fn apply(
        &self,
        id: i64,
        event: &Event,
        now: DateTime<FixedOffset>,
        calendar: &Calendar,
        definition_of: impl Fn(&str) -> Option<Definition>,
    ) -> Result<Applied, StoreError> {
        for _ in 0..ATTEMPTS {
            let _writer = match &self.writer {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            let row = instances::Entity::find_by_id(id).one(&self.db).await?.ok_or(StoreError::NotFound(id))?;
            let state: InstanceState =
                serde_json::from_str(&row.state).map_err(|e| StoreError::Corrupt(format!("instance {id}: {e}")))?;
            let definition = definition_of(&row.definition_version)
                .ok_or_else(|| StoreError::UnknownDefinition(row.definition_version.clone()))?;
            let transition = engine::apply(&definition, &state, event, now, calendar).map_err(StoreError::Refused)?;
            if transition.state == state && transition.commands.is_empty() {
                return Ok(Applied { instance_id: id, commands: vec![] });
            }
            let txn = self.db.begin().await?;
            let (status, outcome) = status_of(&transition.state);
            let (next_due_at, overdue) = deadline_of(&transition.state);
            let updated = instances::Entity::update_many()
                .col_expr(instances::Column::Status, status.into())
                .col_expr(instances::Column::Outcome, outcome.into())
                .col_expr(instances::Column::Step, transition.state.step_name().map(str::to_owned).into())
                .col_expr(
                    instances::Column::State,
                    serde_json::to_string(&transition.state).expect("serializes").into(),
                )
                .col_expr(instances::Column::VersionNo, (row.version_no + 1).into())
                .col_expr(instances::Column::NextDueAt, next_due_at.into())
                .col_expr(instances::Column::Overdue, overdue.into())
                .col_expr(instances::Column::UpdatedAt, to_millis(now).into())
                .filter(instances::Column::Id.eq(id))
                .filter(instances::Column::VersionNo.eq(row.version_no))
                .exec(&txn)
                .await?;
            if updated.rows_affected != 1 {
                txn.rollback().await?;
                continue;
            }
            if let Event::TimerFired { timer } = event {
                timers::Entity::delete_by_id(format!("{id}:{timer}")).exec(&txn).await?;
            }
            append_history(&txn, id, transition.state.events as i64, now, event).await?;
            apply_commands(&txn, id, &transition.commands, now).await?;
            if let (Status::Completed { outcome }, Some(parent)) = (&transition.state.status, row.parent_instance_id) {
                // A finished child reports to its parent through the outbox, after commit.
                let payload = json!({"parent": parent, "key": row.parent_key, "outcome": outcome});
                insert_outbox(&txn, id, &format!("{id}:child_completed"), "child_completed", &payload, now).await?;
            }
            txn.commit().await?;
            return Ok(Applied { instance_id: id, commands: transition.commands });
        }
        Err(StoreError::Conflict)
    }
}

async fn append_history(
    txn: &DatabaseTransaction,
    id: i64,
    seq: i64,
    now: DateTime<FixedOffset>,
    event: &Event,
) -> Result<(), StoreError> {
    let prev = history::Entity::find()
        .filter(history::Column::InstanceId.eq(id))
        .order_by_desc(history::Column::Seq)
        .one(txn)
        .await?
        .map_or_else(|| GENESIS.to_owned(), |h| h.hash);
    let at = to_millis(now);
    let actor = actor_of(event);
    let event_json = serde_json::to_string(event).expect("events serialize");
    let hash = chain_hash(&prev, seq, at, &actor, &event_json);
    history::ActiveModel {
        instance_id: Set(id),
        seq: Set(seq),
        at: Set(at),
        actor: Set(actor),
        event: Set(event_json),
        prev_hash: Set(prev),
        hash: Set(hash),
    }
    .insert(txn)
    .await?;
    Ok(())
}

async fn insert_outbox(
    txn: &DatabaseTransaction,
    id: i64,
    key: &str,
    kind: &str,
    payload: &Value,
    now: DateTime<FixedOffset>,
) -> Result<(), StoreError> {
    let row = outbox::ActiveModel {
        instance_id: Set(id),
        key: Set(key.to_owned()),
        kind: Set(kind.to_owned()),
        payload: Set(payload.to_string()),
        status: Set("pending".into()),
        attempts: Set(0),
        next_attempt_at: Set(to_millis(now)),
        last_error: Set(None),
        created_at: Set(to_millis(now)),
        done_at: Set(None),
        ..Default::default()
    };
    // The key is unique: an effect is recorded once, however often its transition is replayed.
    outbox::Entity::insert(row).on_conflict_do_nothing_on([outbox::Column::Key]).exec(txn).await?;
    Ok(())
}

async fn apply_commands(
    txn: &DatabaseTransaction,
    id: i64,
    commands: &[Command],
    now: DateTime<FixedOffset>,
) -> Result<(), StoreError> {
    for command in commands {
        match command {
            Command::ScheduleTimer { id: timer, at, kind } => {
                let row = timers::ActiveModel {
                    id: Set(format!("{id}:{timer}")),
                    instance_id: Set(id),
                    timer_id: Set(timer.clone()),
                    due_at: Set(to_millis(*at)),
                    kind: Set(serde_json::to_string(kind).expect("serializes")),
                };
                timers::Entity::insert(row)
                    .on_conflict(
                        OnConflict::column(timers::Column::Id)
                            .update_columns([timers::Column::DueAt, timers::Column::Kind])
                            .to_owned(),
                    )
                    .exec(txn)
                    .await?;
            }
            Command::CancelTimer { id: timer } => {
                timers::Entity::delete_by_id(format!("{id}:{timer}")).exec(txn).await?;
            }
            Command::OpenTask { id: task, step, title, role, organization, actions, deadline } => {
                tasks::ActiveModel {
                    id: Set(format!("{id}:{task}")),
                    instance_id: Set(id),
                    task_id: Set(task.clone()),
                    step: Set(step.clone()),
                    title: Set(title.clone()),
                    role: Set(role.clone()),
                    organization: Set(organization.clone()),
                    actions: Set(serde_json::to_string(actions).expect("serializes")),
                    due_at: Set(deadline.as_ref().and_then(|d| d.due).map(to_millis)),
                    overdue: Set(false),
                    status: Set("open".into()),
                    assignee: Set(None),
                    created_at: Set(to_millis(now)),
                    closed_at: Set(None),
                }
                .insert(txn)
                .await?;
            }
            Command::CloseTask { id: task } => {
                tasks::Entity::update_many()
                    .col_expr(tasks::Column::Status, "closed".into())
                    .col_expr(tasks::Column::ClosedAt, Some(to_millis(now)).into())
                    .filter(tasks::Column::Id.eq(format!("{id}:{task}")))
                    .exec(txn)
                    .await?;
            }
            Command::DeadlineChanged { task: Some(task), deadline, .. } => {
                tasks::Entity::update_many()
                    .col_expr(tasks::Column::DueAt, deadline.due.map(to_millis).into())
                    .col_expr(tasks::Column::Overdue, deadline.overdue.into())
                    .filter(tasks::Column::Id.eq(format!("{id}:{task}")))
                    .exec(txn)
                    .await?;
            }
            Command::DeadlineChanged { task: None, .. } | Command::Complete { .. } => {}
            Command::RunActivity { key, activity } => {
                let payload = serde_json::to_value(activity).expect("serializes");
                insert_outbox(txn, id, &format!("{id}:{key}"), activity_kind(activity), &payload, now).await?;
            }
            Command::StartChild { key, procedure, jurisdiction, input } => {
                let payload = json!({"key": key, "procedure": procedure, "jurisdiction": jurisdiction, "input": input});
                insert_outbox(txn, id, &format!("{id}:{key}"), "start_child", &payload, now).await?;
            }
            Command::SignalInstance { key, target, signal, data } => {
                let payload = json!({"target": target, "signal": signal, "data": data});
                insert_outbox(txn, id, &format!("{id}:{key}"), "signal_instance", &payload, now).await?;
            }
        }
    }
    Ok(())
}
