//! The engine facade: everything the API, the CLI and the console ask of whatever runs the
//! procedures — start, act (complete a task), claim, signal, move the virtual clock, import a
//! calendar year, load a definition version, change schedules — as one trait, [`Engine`].
//! Reads go to the store, the read model every engine keeps up to date. Handlers hold an
//! `Arc<dyn Engine>`, so a second engine sits beside the embedded one without touching them.
//!
//! - [`embedded`]: the default engine, in this process, on the store's database.
//! - [`registry`]: the definition versions instances run on, shared by every engine.
//! - [`supervisor`]: background workers in a `JoinSet`, restarted when they fail, with
//!   heartbeats for readiness and one shutdown signal.

pub mod embedded;
pub mod registry;
pub mod supervisor;
pub mod temporal;

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::Value;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::{Definition, DefinitionError};
use statflow_workflows::engine::Refusal;
use statflow_workflows::schedules::ScheduleSpec;

use crate::principal::Principal;
use crate::store::records::InstanceRecord;
use crate::store::transition::{CallerDenial, Declined, Standing};
use crate::store::StoreError;
pub use registry::Definitions;
pub use supervisor::WorkerHealth;

/// Why an engine did not do what it was asked; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The instance does not exist, or the caller may not see it.
    #[error("instance {0} does not exist")]
    NotFound(i64),
    /// The bearer token the caller presented no longer stands: it was revoked after the
    /// daemon last read it (see [`crate::principal::Principal::unconfirmed_token`]).
    #[error("the token is not valid")]
    TokenGone,
    /// The interpreter refused the event.
    #[error("{0}")]
    Refused(Refusal),
    #[error("{0}")]
    Forbidden(String),
    /// The task offering the action is claimed by someone else.
    #[error("{0}")]
    Claimed(String),
    /// A request field is wrong (a calendar notice, a schedule, a start's procedure).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A definition failed validation, with every problem found.
    #[error("the definition is invalid ({} problems)", .0.len())]
    InvalidDefinition(Vec<DefinitionError>),
    /// Another change to the same instance kept winning the race.
    #[error("the instance changed concurrently; try again")]
    Conflict,
    /// The instance failed verification; it takes no further actions.
    #[error("instance {id} is flagged as possibly tampered with ({reason}); an administrator must review it")]
    Flagged { id: i64, reason: String },
    /// The engine is stopping (or a worker it needs is down).
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed, or stored data is unreadable.
    #[error(transparent)]
    Store(StoreError),
}

impl EngineError {
    pub fn invalid(field: &str, message: impl Into<String>) -> EngineError {
        EngineError::Invalid { field: field.to_owned(), message: message.into() }
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(id) => EngineError::NotFound(id),
            StoreError::Conflict => EngineError::Conflict,
            StoreError::Flagged { id, reason } => EngineError::Flagged { id, reason },
            StoreError::WriterStopped => EngineError::Unavailable(error.to_string()),
            other => EngineError::Store(other),
        }
    }
}

impl From<Declined> for EngineError {
    fn from(declined: Declined) -> Self {
        match declined {
            Declined::Refused(refusal) => EngineError::Refused(refusal),
            Declined::Caller(CallerDenial::TokenGone) => EngineError::TokenGone,
            Declined::Caller(CallerDenial::Unseen(id)) => EngineError::NotFound(id),
            Declined::Caller(CallerDenial::Forbidden(message)) => EngineError::Forbidden(message),
            Declined::Caller(CallerDenial::Claimed(message)) => EngineError::Claimed(message),
        }
    }
}

/// A start: of the current version of (procedure, jurisdiction), with its input.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub procedure: String,
    pub jurisdiction: String,
    pub input: Value,
    pub caller: Principal,
}

/// An action on an instance, by a caller whose rights the engine checks against the
/// instance as stored.
#[derive(Clone, Debug)]
pub struct ActRequest {
    pub instance: i64,
    pub action: String,
    pub data: Value,
    pub caller: Principal,
}

/// An administrator's repair of a running instance, with the reason its history keeps.
#[derive(Clone, Debug)]
pub struct RepairRequest {
    pub instance: i64,
    pub repair: Repair,
    pub reason: String,
    pub caller: Principal,
}

/// What an administrator does to an instance that should not, or cannot, go on as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Ends it: cancelled (whom the definition names is told) or terminated (nobody is).
    End(statflow_workflows::engine::Ending),
    /// Moves it to this step of its definition, entered afresh.
    MoveTo(String),
}

impl Repair {
    /// The audit log's name for it, e.g. `instance.cancel`.
    pub fn audit_action(&self) -> &'static str {
        use statflow_workflows::engine::Ending;
        match self {
            Repair::End(Ending::Cancelled) => "instance.cancel",
            Repair::End(Ending::Terminated) => "instance.terminate",
            Repair::MoveTo(_) => "instance.move",
        }
    }
}

/// A migration of running instances of one procedure to another version of its definition,
/// or (`dry_run`) the list of what it would do.
#[derive(Clone, Debug)]
pub struct MigrationRequest {
    pub procedure: String,
    pub jurisdiction: String,
    /// The version to go to: the current one when not given.
    pub to_version: Option<String>,
    /// Only instances on this version (every other version otherwise).
    pub from_version: Option<String>,
    /// Only these instances (every running one otherwise).
    pub instances: Option<Vec<i64>>,
    /// Current step → step of the new version, where the names differ.
    pub steps: std::collections::BTreeMap<String, String>,
    pub deadline: statflow_workflows::engine::MigratedDeadline,
    pub reason: String,
    pub dry_run: bool,
    pub caller: Principal,
}

/// A node's work lease, as readiness reports it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WorkLease {
    /// This node's name.
    pub node: String,
    /// Whether this node holds the lease now (and so runs timers, the outbox, deliveries
    /// and schedules).
    pub held: bool,
    /// The lease's epoch when this node last held it (0: never): raised at every takeover.
    pub epoch: i64,
    /// How long the lease lasts unrenewed.
    pub seconds: u64,
}

/// At most this many instances are migrated by one request; the report says how many more
/// the same request would take.
pub const MIGRATION_BATCH: usize = 1000;

/// What a migration did, or would do, instance by instance.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrationReport {
    pub dry_run: bool,
    pub to_version: String,
    pub items: Vec<MigrationItem>,
    /// Instances migrated (or, in a dry run, that would be).
    pub migrated: usize,
    /// Instances that cannot be migrated as asked (each item says why).
    pub refused: usize,
    /// Instances the request takes beyond this batch: send it again for them.
    pub remaining: usize,
}

/// One instance in a migration: where it stands and where it goes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrationItem {
    pub instance: i64,
    pub from_version: String,
    pub step: Option<String>,
    /// The step it is (or would be) in on the new version.
    pub to_step: Option<String>,
    pub due_before: Option<DateTime<FixedOffset>>,
    pub due_after: Option<DateTime<FixedOffset>>,
    pub outcome: MigrationOutcome,
    /// Why it was refused.
    pub problem: Option<String>,
}

/// What became of one instance in a migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MigrationOutcome {
    Migrated,
    /// In a dry run: it would be migrated.
    WouldMigrate,
    /// It cannot be migrated as asked (`problem` says why); it is left as it was.
    Refused,
}

/// A timer that fired during a clock move.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Fired {
    pub instance: i64,
    pub timer: String,
    pub due: DateTime<FixedOffset>,
}

/// What one schedule run did.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub schedule: String,
    pub fire_at: DateTime<FixedOffset>,
    pub status: String,
    #[schema(value_type = Object)]
    pub result: Value,
}

/// What a clock move did: the first [`MOVE_LISTED`] timers and runs, and totals.
#[derive(Debug, Default)]
pub struct ClockMove {
    pub fired: Vec<Fired>,
    pub fired_total: usize,
    pub runs: Vec<RunReport>,
    pub runs_total: usize,
    pub batches: usize,
}

/// At most this many fired timers and schedule runs are listed in a clock move's answer.
pub const MOVE_LISTED: usize = 1000;

/// What an accepted calendar import will change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub years: Vec<i32>,
    pub generation: i64,
    /// Running instances whose deadlines the background recomputation will revisit.
    pub instances_to_recompute: u64,
}

/// What every engine offers the API, the CLI and the console.
#[async_trait::async_trait]
pub trait Engine: Send + Sync {
    /// Which engine runs the instances: `embedded`, or `temporal` (on a Temporal cluster).
    fn kind(&self) -> &'static str;
    /// The engine's clock (virtual under `--virtual-clock`).
    fn now(&self) -> DateTime<FixedOffset>;
    fn has_virtual_clock(&self) -> bool;
    /// The calendar deadlines are computed with, and the import generation it stands for.
    fn calendar(&self) -> (Arc<Calendar>, i64);
    /// The definition versions instances run on and the current one per procedure.
    fn definitions(&self) -> &Definitions;
    /// The health of the engine's workers; readiness fails while one is down.
    fn health(&self) -> Vec<WorkerHealth>;
    /// With several nodes sharing the work that answers no request: this node's work lease
    /// (`None` when it does that work alone).
    fn work_lease(&self) -> Option<WorkLease>;

    /// Starts an instance on the current version of its procedure; answers with it as it
    /// now stands (with its open tasks and effects).
    async fn start(&self, request: StartRequest) -> Result<Standing, EngineError>;
    /// Takes an action on an instance (completing the task that offers it); answers with it
    /// as it now stands.
    async fn act(&self, request: ActRequest) -> Result<Standing, EngineError>;
    /// Claims an open task for `caller`; false when someone else holds it.
    /// Cancels, terminates or moves an instance (administrators only), recorded in its
    /// history and the audit log.
    async fn repair(&self, request: RepairRequest) -> Result<Standing, EngineError>;
    /// Migrates running instances to another version of their definition (administrators),
    /// or lists what that would do.
    async fn migrate(&self, request: MigrationRequest) -> Result<MigrationReport, EngineError>;
    async fn claim(&self, task: &str, caller: &Principal) -> Result<bool, EngineError>;
    /// Sends a signal to an instance, as another instance's step would.
    async fn signal(&self, instance: i64, name: &str, data: Value) -> Result<InstanceRecord, EngineError>;
    /// Moves the virtual clock to `to`, firing timers and schedules in order on the way.
    async fn advance_clock(&self, to: DateTime<FixedOffset>) -> Result<ClockMove, EngineError>;
    /// Imports calendar notices (a correction when `correction` gives the reason).
    async fn import_calendar(
        &self,
        origin: &str,
        content: &str,
        correction: Option<&str>,
    ) -> Result<Imported, EngineError>;
    /// Validates, stores and makes current a definition version.
    async fn load_definition(&self, file: &str, source: &str) -> Result<Arc<Definition>, EngineError>;
    /// Creates or replaces a schedule.
    async fn put_schedule(&self, id: &str, spec: &ScheduleSpec) -> Result<(), EngineError>;
    /// Removes a schedule that is not built in.
    async fn delete_schedule(&self, id: &str) -> Result<(), EngineError>;
    /// Runs a schedule's job at once, as a fire time of its own (now); its regular fire times
    /// stay as they are.
    async fn run_schedule_now(&self, id: &str) -> Result<RunReport, EngineError>;
    /// Sends failed deliveries again: the one `id`, or every failed one (of `kind` if given).
    /// Returns how many.
    async fn retry_deliveries(
        &self,
        id: Option<i64>,
        kind: Option<crate::store::effects::EffectKind>,
    ) -> Result<u64, EngineError>;
}
