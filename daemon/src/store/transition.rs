//! The write path: every change to an instance is one database transaction holding the
//! history row, the snapshot (guarded by its version), and the timer, task and outbox rows
//! the interpreter's commands call for. Either all of it is stored or none of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use sea_orm::{
    sea_query::Expr, ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr,
    EntityTrait, IntoActiveModel, ModelTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};
use serde_json::Value;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{self, Activity, Actor, Command, Event, InstanceState, Recipient, Refusal, Status};

use super::bulk::{self, padded, Conflict};
use super::effects::{ChildOutcome, ChildStart, Effect, InstanceSignal};
use super::entities::{history, instance_organizations, instances, outbox, principals, tasks, timers};
use super::ledger::{self, history_hash, GENESIS};
use super::records::{EffectRecord, EffectStatus, InstanceRecord, InstanceStatus, LedgerKind, TaskRecord, TaskStatus};
use super::states::ComputedStates;
use super::{from_millis, scope, to_millis, Store, StoreError};

/// The notice template of a task just opened.
pub const TASK_OPENED: &str = "task_opened";

/// How often a transition is retried when another one on the same instance won the race.
const ATTEMPTS: usize = 8;

/// A stored transition: the instance as it now stands, and what the interpreter asked for.
#[derive(Debug)]
pub struct Applied {
    pub instance_id: i64,
    pub commands: Vec<Command>,
    /// The instance as it now stands, for a start or a caller's action (whose answer shows
    /// it); the engine's own events (timers, results, signals) need no copy of it.
    pub standing: Option<Standing>,
    /// The claimed tasks of an action's instance that the transition closed, as they stood
    /// before (who held them); empty for other transitions.
    pub closed_tasks: Vec<TaskRecord>,
    /// The procedure and event kind of the history row stored (for the metrics); `None`
    /// when the event changed nothing or was recorded before.
    pub event: Option<(String, &'static str)>,
}

/// An instance as a transition left it, with what the answer to its caller shows: its open
/// tasks and its effects (in the order they were queued). Worked out in the transaction
/// that stores the transition, from rows the batch reads once for all its callers, so an
/// answer needs no read of its own.
#[derive(Clone, Debug)]
pub struct Standing {
    pub instance: InstanceRecord,
    pub open_tasks: Vec<TaskRecord>,
    pub effects: Vec<EffectRecord>,
}

/// Why a transition stored nothing although nothing failed: an answer to the caller.
#[derive(Debug)]
pub enum Declined {
    /// The interpreter refused the event.
    Refused(Refusal),
    /// The caller's check on the stored instance turned it down.
    Caller(CallerDenial),
}

/// What a caller's check on the stored instance found ([`Work::Act`]).
#[derive(Debug)]
pub enum CallerDenial {
    /// The bearer token the caller presented no longer stands (revoked since the daemon last
    /// read it; see [`Submission::token`]).
    TokenGone,
    /// The caller may not see the instance: as good as absent.
    Unseen(i64),
    /// The caller sees it but may not act on it.
    Forbidden(String),
    /// The task offering the action is claimed by someone else.
    Claimed(String),
}

/// How one transition came out: stored, declined, or failed.
pub type Outcome = Result<Result<Applied, Declined>, StoreError>;

fn actor_of(event: &Event) -> String {
    match event {
        Event::Started { actor, .. }
        | Event::Action { actor, .. }
        | Event::Ended { actor, .. }
        | Event::Moved { actor, .. }
        | Event::Migrated { actor, .. } => actor.id.clone(),
        Event::TimerFired { .. } => "timer".into(),
        _ => "system".into(),
    }
}

fn status_of(state: &InstanceState) -> (InstanceStatus, Option<String>) {
    match &state.status {
        Status::Completed { outcome } => (InstanceStatus::Completed, Some(outcome.clone())),
        // An instance is stored once started; the interpreter never leaves one unstarted.
        Status::Running | Status::NotStarted => (InstanceStatus::Running, None),
    }
}

fn deadline_of(state: &InstanceState) -> (Option<i64>, bool) {
    let deadline = state.step.as_ref().and_then(|s| s.deadline.as_ref());
    (deadline.and_then(|d| d.due).map(to_millis), deadline.is_some_and(|d| d.overdue))
}

/// How an instance came to be started, beyond the actor who started it.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Started directly, through the API or CLI.
    Direct,
    /// Started by a parent instance's step, under the parent's child key.
    Child { parent: i64, key: String },
    /// Started by a schedule run under a unique key, so a resumed run cannot start it twice.
    Scheduled { key: String },
}

/// What a transition is to do.
pub enum Work {
    Start {
        definition: Arc<Definition>,
        input: Value,
        actor: Actor,
        origin: Origin,
    },
    Apply {
        id: i64,
        event: Event,
        definitions: Resolver,
    },
    /// A caller's action, decided on the instance and its claimed open tasks as stored in the
    /// same transaction: `decide` checks the caller against them and gives the event to
    /// apply. The instance is read once, and no claim can change between the check and the
    /// write.
    Act {
        id: i64,
        decide: Decide,
        definitions: Resolver,
    },
    /// An event another engine has already applied (a Temporal workflow runs the same
    /// interpreter): its transition is stored as given, exactly as [`Work::Apply`] would have
    /// stored it. Recording the same transition twice stores it once (an activity that
    /// recorded it may be retried).
    Record {
        id: i64,
        event: Event,
        transition: Box<engine::Transition>,
        definitions: Resolver,
    },
}

/// A caller's check on a stored instance and its open tasks that someone has claimed (a
/// step opens at most one task, so a task not among them is free), giving the event it may
/// apply. It may run more than once (PostgreSQL recomputes a transition that lost a race).
pub type Decide = Box<
    dyn Fn(&InstanceRecord, &Definition, &InstanceState, &[TaskRecord]) -> Result<Event, CallerDenial> + Send + Sync,
>;

/// Finds a stored definition version (instances run on the version they started with).
pub type Resolver = Arc<dyn Fn(&str) -> Option<Arc<Definition>> + Send + Sync>;

/// A transition submitted for storing, with the instant and calendar it is computed at.
pub struct Submission {
    pub work: Work,
    pub now: DateTime<FixedOffset>,
    pub calendar: Arc<Calendar>,
    /// Which calendar import `calendar` stands for; stamped on the instance.
    pub calendar_generation: i64,
    /// A task this transition opens sends its notice (see `Task::notify`).
    pub task_notices: bool,
    /// The hash of the bearer token its caller presented, when the daemon took the caller
    /// from its memory of tokens instead of reading the token for this request: the
    /// transition is stored only if the token still stands in the same transaction, so a
    /// token revoked meanwhile (by another process, too) changes nothing.
    pub token: Option<String>,
}

/// Why a group of transitions could not be stored; none of it was.
pub(super) enum BatchFailure {
    Db(DbErr),
    /// An instance's version moved under the batch (a concurrent writer committed first).
    Conflict,
}

impl From<DbErr> for BatchFailure {
    fn from(error: DbErr) -> Self {
        BatchFailure::Db(error)
    }
}

impl Store {
    /// Stores one transition and returns once it is durable. A refused event stores nothing;
    /// when another transition of the same instance committed first, it is recomputed.
    pub async fn transition(&self, transition: Submission) -> Outcome {
        if let Some(writer) = &self.writer {
            return writer.submit(transition).await;
        }
        for _ in 0..ATTEMPTS {
            let txn = self.db.begin().await?;
            match store_batch(&txn, &[&transition], false, &mut ComputedStates::default()).await {
                Ok(mut outcomes) => {
                    txn.commit().await?;
                    return outcomes.pop().expect("one outcome per transition");
                }
                Err(BatchFailure::Conflict) => txn.rollback().await?,
                Err(BatchFailure::Db(error)) => {
                    txn.rollback().await?;
                    return Err(error.into());
                }
            }
        }
        Err(StoreError::Conflict)
    }
}

/// Computes `transitions` in order and stores all of them inside `txn` with a handful of
/// set-based statements: one read of the instances involved, then one write per instance
/// and one per table. Later transitions see the effects of earlier ones on the same instance.
/// A declined transition is an outcome, not a failure; any failure means nothing is stored.
///
/// `exclusive` says the caller has held the database's only write lock since before this
/// read (SQLite's `BEGIN IMMEDIATE`): no version can move, so changed instances are written
/// with one multi-row upsert instead of a guarded update each.
pub(super) async fn store_batch(
    txn: &DatabaseTransaction,
    transitions: &[&Submission],
    exclusive: bool,
    states: &mut ComputedStates,
) -> Result<Vec<Outcome>, BatchFailure> {
    let ids: Vec<i64> = transitions
        .iter()
        .filter_map(|t| match &t.work {
            Work::Apply { id, .. } | Work::Act { id, .. } | Work::Record { id, .. } => Some(*id),
            Work::Start { .. } => None,
        })
        .collect();
    let standing_tokens = standing_tokens(txn, transitions).await?;
    let mut batch = Batch::default();
    let starts = transitions.len() - ids.len();
    if exclusive && starts > 0 {
        batch.next_id = Some(next_instance_id(txn).await?);
    }
    let acting: Vec<i64> = transitions
        .iter()
        .filter_map(|t| match &t.work {
            Work::Act { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    if !acting.is_empty() {
        // The open tasks and the effects of the instances acted on, in one read each for the
        // batch: a claim can turn a caller away, and the answer shows both.
        for row in tasks::Entity::find()
            .filter(tasks::Column::InstanceId.is_in(padded(acting.clone())))
            .filter(tasks::Column::Status.eq(TaskStatus::Open.as_str()))
            .all(txn)
            .await?
        {
            batch.open_tasks.entry(row.instance_id).or_default().push(row);
        }
        for row in outbox::Entity::find()
            .filter(outbox::Column::InstanceId.is_in(padded(acting.clone())))
            .order_by_asc(outbox::Column::Id)
            .all(txn)
            .await?
        {
            let instance = row.instance_id.expect("read by instance");
            batch.stored_effects.entry(instance).or_default().push(row);
        }
    }
    if !ids.is_empty() {
        // Only a caller's action needs the scope (who may see it, and the view it answers
        // with). Read on its own it is two short columns a row; joined to the instances it
        // would decode each instance row once per organization.
        let mut scopes = scope::of(txn, &acting).await?;
        for row in instances::Entity::find().filter(instances::Column::Id.is_in(padded(ids))).all(txn).await? {
            let organizations = scopes.remove(&row.id).unwrap_or_default();
            batch.instances.insert(row.id, Open::stored(row, organizations));
        }
    }
    let mut outcomes = Vec::with_capacity(transitions.len());
    for transition in transitions {
        if transition.token.as_ref().is_some_and(|token| !standing_tokens.contains(token)) {
            outcomes.push(Ok(Err(Declined::Caller(CallerDenial::TokenGone))));
            continue;
        }
        let outcome = match &transition.work {
            Work::Start { definition, input, actor, origin } => {
                batch.start(txn, definition, input, actor, transition, origin).await?
            }
            Work::Apply { id, event, definitions } => {
                batch.apply(*id, Decision::Given(event), transition, definitions, states)
            }
            Work::Act { id, decide, definitions } => {
                batch.apply(*id, Decision::Caller(decide), transition, definitions, states)
            }
            Work::Record { id, event, transition: applied, definitions } => {
                batch.apply(*id, Decision::Recorded(event, applied), transition, definitions, states)
            }
        };
        outcomes.push(outcome);
    }
    batch.flush(txn, exclusive).await?;
    Ok(outcomes)
}

/// Which of the tokens `transitions` were presented with still stand, in one read for the
/// batch (none when no transition carries one).
async fn standing_tokens(txn: &DatabaseTransaction, transitions: &[&Submission]) -> Result<HashSet<String>, DbErr> {
    let mut presented: Vec<String> = transitions.iter().filter_map(|t| t.token.clone()).collect();
    if presented.is_empty() {
        return Ok(HashSet::new());
    }
    presented.sort_unstable();
    presented.dedup();
    principals::Entity::find()
        .select_only()
        .column(principals::Column::TokenHash)
        .filter(principals::Column::TokenHash.is_in(padded(presented)))
        .into_tuple::<String>()
        .all(txn)
        .await
        .map(|found| found.into_iter().collect())
}

/// An instance as the batch sees it: the stored row with the changes made so far.
struct Open {
    row: instances::Model,
    /// The organizations it involves (its scope never changes after the start); read only
    /// for the instances a caller acts on, who alone need it.
    organizations: Vec<String>,
    /// The version stored before this batch; the update is guarded by it.
    stored_version: i64,
    changed: bool,
}

impl Open {
    fn stored(row: instances::Model, organizations: Vec<String>) -> Open {
        Open { stored_version: row.version_no, changed: false, row, organizations }
    }

    fn record(&self) -> Result<InstanceRecord, StoreError> {
        InstanceRecord::decode(self.row.clone(), self.organizations.clone())
    }
}

/// Where a transition's event comes from.
enum Decision<'a> {
    /// The engine's own event (a timer, an activity's result, a signal).
    Given(&'a Event),
    /// A caller's action, decided on the stored instance and its open tasks.
    Caller(&'a Decide),
    /// An event with the transition another engine computed for it.
    Recorded(&'a Event, &'a engine::Transition),
}

/// The writes of a group of transitions, merged per row so each table takes one statement.
#[derive(Default)]
struct Batch {
    instances: HashMap<i64, Open>,
    /// The open tasks stored before this batch, of the instances acted on.
    open_tasks: HashMap<i64, Vec<tasks::Model>>,
    /// The effects stored before this batch, of the instances acted on, oldest first.
    stored_effects: HashMap<i64, Vec<outbox::Model>>,
    /// The scopes of instances started by this batch.
    scopes: Vec<instance_organizations::ActiveModel>,
    history: Vec<history::Model>,
    /// Timer row id → the row to store, or `None` to delete it; the last command wins.
    timers: BTreeMap<String, Option<timers::Model>>,
    /// Tasks opened by this batch (later commands change the row before it is inserted).
    new_tasks: BTreeMap<String, tasks::Model>,
    /// Tasks stored earlier that this batch closes, with when.
    closed_tasks: BTreeMap<String, i64>,
    /// Tasks stored earlier whose deadline changed: (due, overdue).
    task_deadlines: BTreeMap<String, (Option<i64>, bool)>,
    /// Effects queued by this batch (their ids are given on insert).
    outbox: Vec<outbox::Model>,
    /// In exclusive mode, the id the next started instance takes; its row is then written
    /// with the others at the end instead of on its own.
    next_id: Option<i64>,
}

/// The first instance id never used, SQLite only: AUTOINCREMENT keeps the largest id ever
/// given out in `sqlite_sequence`, so ids of removed instances are never handed out again.
async fn next_instance_id(txn: &DatabaseTransaction) -> Result<i64, DbErr> {
    let statement = Statement::from_string(
        DbBackend::Sqlite,
        "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'instances'), 0), \
         COALESCE((SELECT MAX(id) FROM instances), 0)) AS last",
    );
    let row = txn.query_one_raw(statement).await?.ok_or_else(|| DbErr::Custom("no row".into()))?;
    Ok(row.try_get::<i64>("", "last")? + 1)
}

impl Batch {
    #[allow(clippy::too_many_arguments)]
    async fn start(
        &mut self,
        txn: &DatabaseTransaction,
        definition: &Definition,
        input: &Value,
        actor: &Actor,
        transition_at: &Submission,
        origin: &Origin,
    ) -> Result<Outcome, DbErr> {
        let (now, calendar) = (stored_instant(transition_at.now), &*transition_at.calendar);
        let event = Event::Started { input: input.clone(), actor: actor.clone() };
        let transition = match engine::apply(definition, &InstanceState::new(definition), &event, now, calendar) {
            Ok(transition) => transition,
            Err(refusal) => return Ok(Ok(Err(Declined::Refused(refusal)))),
        };
        let (status, outcome) = status_of(&transition.state);
        let (next_due_at, overdue) = deadline_of(&transition.state);
        let (at, actor, event_json) =
            (to_millis(now), actor_of(&event), serde_json::to_string(&event).expect("serializes"));
        let organizations = definition.organizations_involved(|field| transition.state.data.get(field));
        let mut row = instances::Model {
            id: 0,
            procedure: definition.id().to_owned(),
            jurisdiction: definition.jurisdiction().to_owned(),
            definition_version: definition.version.clone(),
            status: status.as_str().to_owned(),
            outcome,
            step: transition.state.step_name().map(str::to_owned),
            state: serde_json::to_string(&transition.state).expect("states serialize"),
            version_no: 1,
            next_due_at,
            overdue,
            parent_instance_id: match origin {
                Origin::Child { parent, .. } => Some(*parent),
                _ => None,
            },
            parent_key: match origin {
                Origin::Child { key, .. } => Some(key.clone()),
                _ => None,
            },
            start_key: match origin {
                Origin::Scheduled { key } => Some(key.clone()),
                _ => None,
            },
            created_at: at,
            updated_at: at,
            // Sealed below, once the id the hash covers is known.
            head_hash: GENESIS.into(),
            calendar_generation: transition_at.calendar_generation,
            flagged: None,
        };
        match &mut self.next_id {
            Some(next) => {
                row.id = *next;
                *next += 1;
            }
            None => {
                // The new row is inserted at once: its id names everything else it owns.
                // Its head is written with the batch's other changes.
                let mut active = row.clone().into_active_model();
                active.id = NotSet;
                row.id = instances::Entity::insert(active).exec(txn).await?.last_insert_id;
            }
        }
        let id = row.id;
        let hash = history_hash(id, GENESIS, 1, at, &actor, &event_json);
        row.head_hash = hash.clone();
        self.history.push(history::Model {
            instance_id: id,
            seq: 1,
            at,
            actor,
            event: event_json,
            prev_hash: GENESIS.into(),
            hash,
        });
        self.scopes.extend(scope::rows(id, &organizations));
        let open = Open { row, organizations, stored_version: 1, changed: true };
        self.instances.insert(id, open);
        self.commands(id, &transition.commands, now, transition_at.task_notices.then_some(definition));
        let standing = match self.standing(id) {
            Ok(standing) => standing,
            Err(error) => return Ok(Err(error)),
        };
        Ok(Ok(Ok(Applied {
            instance_id: id,
            commands: transition.commands,
            standing: Some(standing),
            closed_tasks: vec![],
            event: Some((definition.procedure.id.get_ref().clone(), "started")),
        })))
    }

    /// Applies the event `decide` gives for the stored instance (the caller's check runs on
    /// the row this batch read, so the instance is read once). The state it computes is kept
    /// in `states`, for the instance's next transition.
    fn apply(
        &mut self,
        id: i64,
        decision: Decision<'_>,
        at: &Submission,
        definitions: &Resolver,
        states: &mut ComputedStates,
    ) -> Outcome {
        let (now, calendar, generation) = (stored_instant(at.now), &*at.calendar, at.calendar_generation);
        let task_notices = at.task_notices;
        let open = self.instances.get(&id).ok_or(StoreError::NotFound(id))?;
        let definition = definitions(&open.row.definition_version)
            .ok_or_else(|| StoreError::UnknownDefinition(open.row.definition_version.clone()))?;
        let for_caller = matches!(decision, Decision::Caller(_));
        let mut recorded = None;
        let (event, state, claimed) = match decision {
            Decision::Given(event) => (event.clone(), states.decode(id, &open.row.state)?, Vec::new()),
            Decision::Recorded(event, transition) => {
                let state = states.decode(id, &open.row.state)?;
                if state.events >= transition.state.events {
                    // Recorded already (the events counter only grows).
                    return Ok(Ok(Applied {
                        instance_id: id,
                        commands: vec![],
                        standing: None,
                        closed_tasks: vec![],
                        event: None,
                    }));
                }
                if state.events + 1 != transition.state.events {
                    return Err(StoreError::Corrupt(format!(
                        "instance {id}: event {} recorded after event {}; the ones between are missing",
                        transition.state.events, state.events
                    )));
                }
                recorded = Some((*transition).clone());
                ((*event).clone(), state, Vec::new())
            }
            Decision::Caller(decide) => {
                let record = open.record()?;
                let state = states.decode(id, &open.row.state)?;
                let claimed = self.claimed_tasks_of(id)?;
                match decide(&record, &definition, &state, &claimed) {
                    Ok(event) => (event, state, claimed),
                    Err(denial) => return Ok(Err(Declined::Caller(denial))),
                }
            }
        };
        let open = self.instances.get_mut(&id).expect("read above");
        if let Some(reason) = &open.row.flagged {
            return Err(StoreError::Flagged { id, reason: reason.clone() });
        }
        // A migration is applied with, and leaves the instance on, the version it goes to.
        let definition = match event.applies_version() {
            Some(version) => definitions(version).ok_or_else(|| StoreError::UnknownDefinition(version.to_owned()))?,
            None => definition,
        };
        let computed = match recorded {
            Some(transition) => Ok(transition),
            None => engine::apply(&definition, &state, &event, now, calendar),
        };
        let transition = match computed {
            Ok(transition) => transition,
            Err(refusal) => return Ok(Err(Declined::Refused(refusal))),
        };
        if transition.state == *state && transition.commands.is_empty() {
            // Nothing happened, but the deadlines are now known to agree with this calendar.
            if open.row.calendar_generation < generation {
                open.row.calendar_generation = generation;
                open.changed = true;
            }
            let standing = if for_caller { Some(self.standing(id)?) } else { None };
            return Ok(Ok(Applied { instance_id: id, commands: vec![], standing, closed_tasks: vec![], event: None }));
        }
        let (status, outcome) = status_of(&transition.state);
        let (next_due_at, overdue) = deadline_of(&transition.state);
        let (at, actor, event_json) =
            (to_millis(now), actor_of(&event), serde_json::to_string(&event).expect("serializes"));
        let seq = transition.state.events as i64;
        let hash = history_hash(id, &open.row.head_hash, seq, at, &actor, &event_json);
        let prev_hash = std::mem::replace(&mut open.row.head_hash, hash.clone());
        let counted = Some((open.row.procedure.clone(), event.kind()));
        let row = &mut open.row;
        row.definition_version.clone_from(&definition.version);
        row.status = status.as_str().to_owned();
        row.outcome = outcome;
        row.step = transition.state.step_name().map(str::to_owned);
        row.state = serde_json::to_string(&transition.state).expect("states serialize");
        let stored_state = row.state.clone();
        row.version_no += 1;
        row.next_due_at = next_due_at;
        row.overdue = overdue;
        row.updated_at = at;
        row.calendar_generation = row.calendar_generation.max(generation);
        open.changed = true;
        let parent = row.parent_instance_id.map(|parent| (parent, row.parent_key.clone()));
        self.history.push(history::Model { instance_id: id, seq, at, actor, event: event_json, prev_hash, hash });
        if let Event::TimerFired { timer } = &event {
            self.timers.insert(format!("{id}:{timer}"), None);
        }
        self.commands(id, &transition.commands, now, task_notices.then_some(&*definition));
        if let (Status::Completed { outcome }, Some((parent, Some(key)))) = (&transition.state.status, parent) {
            // A finished child reports to its parent through the outbox, after commit.
            let report = Effect::ChildCompleted(ChildOutcome { parent, key, outcome: outcome.clone() });
            self.outbox(id, &format!("{id}:child_completed"), &report, now);
        }
        let closed_tasks = claimed
            .into_iter()
            .filter(|t| transition.commands.iter().any(|c| matches!(c, Command::CloseTask { id } if *id == t.task_id)))
            .collect();
        let standing = if for_caller { Some(self.standing(id)?) } else { None };
        states.keep(id, stored_state, transition.state);
        Ok(Ok(Applied { instance_id: id, commands: transition.commands, standing, closed_tasks, event: counted }))
    }

    /// The claimed open tasks of an instance acted on, as this batch leaves them so far: those
    /// stored before it less the ones it closed (tasks it opened are nobody's yet).
    fn claimed_tasks_of(&self, id: i64) -> Result<Vec<TaskRecord>, StoreError> {
        let stored = self.open_tasks.get(&id).into_iter().flatten().filter(|t| t.assignee.is_some());
        stored.filter(|t| !self.closed_tasks.contains_key(&t.id)).map(|t| TaskRecord::decode(t.clone())).collect()
    }

    /// The instance `id` as this batch leaves it so far, with its open tasks and effects: the
    /// rows stored before the batch (read for the instances acted on; a started one has
    /// none) with the batch's changes.
    fn standing(&self, id: i64) -> Result<Standing, StoreError> {
        let instance = self.instances.get(&id).ok_or(StoreError::NotFound(id))?.record()?;
        let stored = self.open_tasks.get(&id).into_iter().flatten().filter(|t| !self.closed_tasks.contains_key(&t.id));
        let opened = self.new_tasks.values().filter(|t| t.instance_id == id && t.status == TaskStatus::Open.as_str());
        let open_tasks = stored
            .chain(opened)
            .map(|t| {
                let mut row = t.clone();
                if let Some((due, overdue)) = self.task_deadlines.get(&t.id) {
                    (row.due_at, row.overdue) = (*due, *overdue);
                }
                TaskRecord::decode(row)
            })
            .collect::<Result<_, _>>()?;
        let stored = self.stored_effects.get(&id).map(Vec::as_slice).unwrap_or_default();
        // A key already stored is not queued again (the insert skips it).
        let queued = self.outbox.iter().filter(|e| e.instance_id == Some(id) && !stored.iter().any(|s| s.key == e.key));
        let effects = stored.iter().chain(queued).cloned().map(EffectRecord::decode).collect::<Result<_, _>>()?;
        Ok(Standing { instance, open_tasks, effects })
    }

    /// Records the rows the interpreter's commands call for; with `notices`, each task opened
    /// whose step asks for it gets its notice in the outbox.
    fn commands(&mut self, id: i64, commands: &[Command], now: DateTime<FixedOffset>, notices: Option<&Definition>) {
        let now_millis = to_millis(now);
        for command in commands {
            match command {
                Command::ScheduleTimer { id: timer, at, kind } => {
                    let row = timers::Model {
                        id: format!("{id}:{timer}"),
                        instance_id: id,
                        timer_id: timer.clone(),
                        due_at: to_millis(*at),
                        kind: serde_json::to_string(kind).expect("serializes"),
                    };
                    self.timers.insert(row.id.clone(), Some(row));
                }
                Command::CancelTimer { id: timer } => {
                    self.timers.insert(format!("{id}:{timer}"), None);
                }
                Command::OpenTask { id: task, step, title, role, organization, actions, deadline } => {
                    let row = tasks::Model {
                        id: format!("{id}:{task}"),
                        instance_id: id,
                        task_id: task.clone(),
                        step: step.clone(),
                        title: title.clone(),
                        role: role.clone(),
                        organization: organization.clone(),
                        actions: serde_json::to_string(actions).expect("serializes"),
                        due_at: deadline.as_ref().and_then(|d| d.due).map(to_millis),
                        overdue: false,
                        status: TaskStatus::Open.as_str().into(),
                        assignee: None,
                        created_at: now_millis,
                        closed_at: None,
                    };
                    self.new_tasks.insert(row.id.clone(), row);
                    let wanted =
                        notices.and_then(|d| d.step(step)).and_then(|s| s.task.as_ref()).is_some_and(|t| t.notify);
                    if wanted {
                        let notice = Activity::Notify {
                            to: vec![Recipient { role: role.clone(), organization: organization.clone() }],
                            template: TASK_OPENED.into(),
                            step: step.clone(),
                            deadline: deadline.clone(),
                            basis: deadline.as_ref().map(|d| d.basis.clone()),
                            reason: None,
                        };
                        self.outbox(id, &format!("{id}:{task}.opened"), &Effect::TaskOpened(notice), now);
                    }
                }
                Command::CloseTask { id: task } => {
                    let key = format!("{id}:{task}");
                    match self.new_tasks.get_mut(&key) {
                        Some(row) => {
                            row.status = TaskStatus::Closed.as_str().into();
                            row.closed_at = Some(now_millis);
                        }
                        None => {
                            self.closed_tasks.insert(key, now_millis);
                        }
                    }
                }
                Command::DeadlineChanged { task: Some(task), deadline, .. } => {
                    let key = format!("{id}:{task}");
                    let (due, overdue) = (deadline.due.map(to_millis), deadline.overdue);
                    match self.new_tasks.get_mut(&key) {
                        Some(row) => {
                            row.due_at = due;
                            row.overdue = overdue;
                        }
                        None => {
                            self.task_deadlines.insert(key, (due, overdue));
                        }
                    }
                }
                Command::DeadlineChanged { task: None, .. } | Command::Complete { .. } => {}
                Command::RunActivity { key, activity } => {
                    self.outbox(id, &format!("{id}:{key}"), &Effect::Activity(activity.clone()), now);
                }
                Command::StartChild { key, procedure, jurisdiction, input } => {
                    let start = ChildStart {
                        key: key.clone(),
                        procedure: procedure.clone(),
                        jurisdiction: jurisdiction.clone(),
                        input: input.clone(),
                    };
                    self.outbox(id, &format!("{id}:{key}"), &Effect::StartChild(start), now);
                }
                Command::SignalInstance { key, target, signal, data } => {
                    let signal = InstanceSignal { target: target.clone(), signal: signal.clone(), data: data.clone() };
                    self.outbox(id, &format!("{id}:{key}"), &Effect::SignalInstance(signal), now);
                }
            }
        }
    }

    fn outbox(&mut self, id: i64, key: &str, effect: &Effect, now: DateTime<FixedOffset>) {
        self.outbox.push(outbox::Model {
            id: 0,
            instance_id: Some(id),
            key: key.to_owned(),
            kind: effect.kind().as_str().to_owned(),
            payload: effect.payload(),
            status: EffectStatus::Pending.as_str().into(),
            attempts: 0,
            next_attempt_at: to_millis(now),
            last_error: None,
            created_at: to_millis(now),
            done_at: None,
        });
    }

    /// Writes everything recorded. `exclusive` (SQLite's writer): in one script, one trip to
    /// the connection for the whole batch; otherwise one statement per changed instance
    /// (guarded by its version) and per table.
    async fn flush(self, txn: &DatabaseTransaction, exclusive: bool) -> Result<(), BatchFailure> {
        if exclusive && self.largest_part() <= bulk::ROWS_PER_STATEMENT {
            return self.flush_script(txn).await;
        }
        self.flush_each(txn, exclusive).await
    }

    /// The most rows any one table gets from this batch.
    fn largest_part(&self) -> usize {
        [
            self.instances.len(),
            self.scopes.len(),
            self.history.len(),
            self.timers.len(),
            self.new_tasks.len(),
            self.closed_tasks.len(),
            self.task_deadlines.len(),
            self.outbox.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }

    fn ledger_entries(&self) -> Vec<ledger::Entry> {
        self.history
            .iter()
            .map(|row| ledger::Entry {
                kind: LedgerKind::Event,
                instance: row.instance_id,
                event_seq: row.seq,
                event_hash: row.hash.clone(),
            })
            .collect()
    }

    /// The batch's writes as one script on SQLite's writer, which holds the only write lock
    /// (so no version can have moved since the read), in the order [`flush_each`] writes
    /// them. The ledger's head is read first: its new rows chain to it.
    async fn flush_script(self, txn: &DatabaseTransaction) -> Result<(), BatchFailure> {
        use sea_orm::Value;
        let chained = ledger::chain(txn, &self.ledger_entries()).await?;
        let mut script = bulk::Script::default();
        let changed: Vec<instances::ActiveModel> =
            self.instances.into_values().filter(|open| open.changed).map(|open| open.row.into_active_model()).collect();
        script.insert::<instances::Entity>(&changed, &Conflict::Update(instances::Column::Id, instance_columns()))?;
        script.insert::<instance_organizations::Entity>(&self.scopes, &Conflict::Fail)?;
        let history: Vec<history::ActiveModel> =
            self.history.into_iter().map(IntoActiveModel::into_active_model).collect();
        script.insert::<history::Entity>(&history, &Conflict::Fail)?;
        let (scheduled, cancelled): (Vec<_>, Vec<_>) = self.timers.into_iter().partition(|(_, row)| row.is_some());
        script.delete::<timers::Entity>(
            timers::Column::Id,
            cancelled.into_iter().map(|(id, _)| Value::from(id)).collect(),
        );
        let scheduled: Vec<timers::ActiveModel> =
            scheduled.into_iter().filter_map(|(_, row)| row.map(IntoActiveModel::into_active_model)).collect();
        let rescheduled = Conflict::Update(timers::Column::Id, vec![timers::Column::DueAt, timers::Column::Kind]);
        script.insert::<timers::Entity>(&scheduled, &rescheduled)?;
        let new_tasks: Vec<tasks::ActiveModel> =
            self.new_tasks.into_values().map(IntoActiveModel::into_active_model).collect();
        script.insert::<tasks::Entity>(&new_tasks, &Conflict::Fail)?;
        let closed = TaskStatus::Closed.as_str();
        script.update::<tasks::Entity>(
            tasks::Column::Id,
            &[tasks::Column::Status, tasks::Column::ClosedAt],
            self.closed_tasks.into_iter().map(|(task, at)| vec![task.into(), closed.into(), at.into()]).collect(),
        );
        script.update::<tasks::Entity>(
            tasks::Column::Id,
            &[tasks::Column::DueAt, tasks::Column::Overdue],
            self.task_deadlines
                .into_iter()
                .map(|(task, (due, overdue))| vec![task.into(), due.into(), overdue.into()])
                .collect(),
        );
        let effects: Vec<outbox::ActiveModel> =
            self.outbox.into_iter().map(|row| outbox::ActiveModel { id: NotSet, ..row.into_active_model() }).collect();
        // The key is unique: an effect is recorded once, however often its transition is replayed.
        script.insert::<outbox::Entity>(&effects, &Conflict::Keep(outbox::Column::Key))?;
        if let Some(chained) = chained {
            chained.add_to(&mut script)?;
        }
        script.run(txn).await?;
        Ok(())
    }

    /// Writes everything recorded, one statement per table (and, unless `exclusive`, per
    /// changed instance).
    async fn flush_each(self, txn: &DatabaseTransaction, exclusive: bool) -> Result<(), BatchFailure> {
        let entries = self.ledger_entries();
        let changed: Vec<Open> = self.instances.into_values().filter(|open| open.changed).collect();
        if exclusive && !changed.is_empty() {
            let rows = changed.into_iter().map(|open| open.row.into_active_model()).collect();
            bulk::insert::<instances::Entity>(txn, rows, Conflict::Update(instances::Column::Id, instance_columns()))
                .await?;
        } else {
            for open in changed {
                update_guarded(txn, open).await?;
            }
        }
        bulk::insert::<instance_organizations::Entity>(txn, self.scopes, Conflict::Fail).await?;
        let history = self.history.into_iter().map(IntoActiveModel::into_active_model).collect();
        bulk::insert::<history::Entity>(txn, history, Conflict::Fail).await?;
        let (scheduled, cancelled): (Vec<_>, Vec<_>) = self.timers.into_iter().partition(|(_, row)| row.is_some());
        if !cancelled.is_empty() {
            timers::Entity::delete_many()
                .filter(timers::Column::Id.is_in(padded(cancelled.into_iter().map(|(id, _)| id).collect())))
                .exec(txn)
                .await?;
        }
        let scheduled =
            scheduled.into_iter().filter_map(|(_, row)| row.map(IntoActiveModel::into_active_model)).collect();
        let rescheduled = Conflict::Update(timers::Column::Id, vec![timers::Column::DueAt, timers::Column::Kind]);
        bulk::insert::<timers::Entity>(txn, scheduled, rescheduled).await?;
        let new_tasks = self.new_tasks.into_values().map(IntoActiveModel::into_active_model).collect();
        bulk::insert::<tasks::Entity>(txn, new_tasks, Conflict::Fail).await?;
        let mut closed_at: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for (task, at) in self.closed_tasks {
            closed_at.entry(at).or_default().push(task);
        }
        for (at, ids) in closed_at {
            tasks::Entity::update_many()
                .col_expr(tasks::Column::Status, TaskStatus::Closed.as_str().into())
                .col_expr(tasks::Column::ClosedAt, Some(at).into())
                .filter(tasks::Column::Id.is_in(padded(ids)))
                .exec(txn)
                .await?;
        }
        for (task, (due, overdue)) in self.task_deadlines {
            tasks::Entity::update_many()
                .col_expr(tasks::Column::DueAt, due.into())
                .col_expr(tasks::Column::Overdue, overdue.into())
                .filter(tasks::Column::Id.eq(task))
                .exec(txn)
                .await?;
        }
        // The key is unique: an effect is recorded once, however often its transition is replayed.
        let effects = self.outbox.into_iter().map(|row| outbox::ActiveModel { id: NotSet, ..row.into_active_model() });
        bulk::insert::<outbox::Entity>(txn, effects.collect(), Conflict::Keep(outbox::Column::Key)).await?;
        // Last: on PostgreSQL this locks the ledger's head until commit.
        ledger::append(txn, &entries).await?;
        Ok(())
    }
}

/// Every column of an instance a transition may change (a migration changes the version).
fn instance_columns() -> Vec<instances::Column> {
    use instances::Column;
    vec![
        Column::DefinitionVersion,
        Column::Status,
        Column::Outcome,
        Column::Step,
        Column::State,
        Column::VersionNo,
        Column::NextDueAt,
        Column::Overdue,
        Column::UpdatedAt,
        Column::HeadHash,
        Column::CalendarGeneration,
    ]
}

/// `now` as it will be read back: whole milliseconds in Asia/Shanghai. The state holds the
/// same instants the history does, so replaying the history reproduces it exactly.
fn stored_instant(now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    from_millis(to_millis(now))
}

/// Writes a changed instance if its stored version is still the one read.
async fn update_guarded(txn: &DatabaseTransaction, open: Open) -> Result<(), BatchFailure> {
    let row = open.row;
    let mut update = instances::Entity::update_many();
    for column in instance_columns() {
        update = update.col_expr(column, Expr::value(row.get(column)));
    }
    let updated = update
        .filter(instances::Column::Id.eq(row.id))
        .filter(instances::Column::VersionNo.eq(open.stored_version))
        .exec(txn)
        .await?;
    if updated.rows_affected != 1 {
        return Err(BatchFailure::Conflict);
    }
    Ok(())
}
