//! The vocabulary between the interpreter and a runtime: events in, commands out, and the
//! state an instance keeps between them (serializable, so runtimes can store snapshots).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::calendar::Deadline;
use crate::definition::Definition;

/// Who performed an action: a principal with the procedure roles and organizations it holds.
/// Administrators may act in any role and organization (to repair stuck instances); the
/// history still records who they were.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub organizations: Vec<String>,
    #[serde(default)]
    pub administrator: bool,
    /// The request the action came through (its `x-request-id`), when it came through one:
    /// the history then leads to the access log's line and the caller's own records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

impl Actor {
    /// The runtime itself (scheduler, timers, other instances).
    pub fn system() -> Actor {
        Actor { id: "system".into(), roles: vec![], organizations: vec![], administrator: true, request: None }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        input: Value,
        actor: Actor,
    },
    Action {
        actor: Actor,
        action: String,
        #[serde(default)]
        data: Value,
    },
    TimerFired {
        timer: String,
    },
    ActivityCompleted {
        key: String,
        #[serde(default)]
        result: Value,
    },
    ActivityFailed {
        key: String,
        error: String,
    },
    ChildCompleted {
        key: String,
        outcome: String,
    },
    /// A signal from another instance (e.g. an evaluation suspending an authorization).
    Signal {
        name: String,
        #[serde(default)]
        data: Value,
    },
    /// A calendar year was imported or replaced: open deadlines are recomputed.
    CalendarChanged,
    /// An administrator ends a running instance, with the reason: cancelled (the
    /// procedure's `on_cancel` effects run, so whoever must hear of it is told) or
    /// terminated (nothing runs: for an instance that should never have been).
    Ended {
        actor: Actor,
        how: Ending,
        reason: String,
    },
    /// An administrator moves a stuck instance to `step`, with the reason. The step is
    /// entered afresh: its task, deadline, timers and effects begin now.
    Moved {
        actor: Actor,
        step: String,
        reason: String,
    },
    /// An administrator moves a running instance from `from_version` of its definition to
    /// `to_version` (applied with the new version). Its step carries over under the same
    /// name, or the one `steps` maps it to; its deadline is kept or recomputed with the new
    /// version's limit from when the step began.
    Migrated {
        actor: Actor,
        from_version: String,
        to_version: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        steps: BTreeMap<String, String>,
        deadline: MigratedDeadline,
        reason: String,
    },
}

/// What a migration does with the current step's deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigratedDeadline {
    /// As it stands: due when it was due (reminders and escalations follow the new version).
    #[default]
    Keep,
    /// The new version's limit, counted from when the step began, its pauses and extension
    /// kept.
    Recompute,
}

impl Event {
    /// The definition version the event is applied with when it is not the instance's own:
    /// a migration is applied with the version it migrates to.
    pub fn applies_version(&self) -> Option<&str> {
        match self {
            Event::Migrated { to_version, .. } => Some(to_version),
            _ => None,
        }
    }
}

/// How an administrator ends an instance; its name is the instance's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    Cancelled,
    Terminated,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Cancelled => "cancelled",
            Ending::Terminated => "terminated",
        }
    }
}

impl Event {
    /// The event's kind, as its serialized `type` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::Action { .. } => "action",
            Event::TimerFired { .. } => "timer_fired",
            Event::ActivityCompleted { .. } => "activity_completed",
            Event::ActivityFailed { .. } => "activity_failed",
            Event::ChildCompleted { .. } => "child_completed",
            Event::Signal { .. } => "signal",
            Event::CalendarChanged => "calendar_changed",
            Event::Ended { .. } => "ended",
            Event::Moved { .. } => "moved",
            Event::Migrated { .. } => "migrated",
        }
    }
}

/// Someone to tell: a role of the procedure (in the organization holding it in this
/// instance) or a built-in recipient (assignee, supervisor, regulator).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub role: String,
    pub organization: Option<String>,
}

/// Where a deadline stands, as shown in notifications and tasks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineInfo {
    pub due: Option<DateTime<FixedOffset>>,
    pub last_day: Option<NaiveDate>,
    pub remaining_working_days: Option<i64>,
    pub provisional: bool,
    pub paused: bool,
    pub overdue: bool,
    /// The legal basis spelled out, e.g. `《泰安市…办法》第九条第(二)项`.
    pub basis: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Activity {
    Notify {
        to: Vec<Recipient>,
        template: String,
        step: String,
        deadline: Option<DeadlineInfo>,
        basis: Option<String>,
        /// Why an administrator did what the notice tells of (a cancellation's reason).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Escalate {
        level: u32,
        title: String,
        to: Vec<Recipient>,
        step: String,
        deadline: Option<DeadlineInfo>,
        basis: Option<String>,
    },
    IssueCertificate {
        kind: String,
        basis: Option<String>,
    },
    SetStatus {
        status: String,
        basis: Option<String>,
    },
    ChangeAccess {
        change: String,
        subject: String,
        basis: Option<String>,
    },
    WriteReport {
        kind: String,
        basis: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    Deadline,
    /// A reminder this many working days (or hours) before the deadline.
    Reminder(u32),
    /// The n-th escalation while overdue (0-based).
    Escalation(u32),
    /// A step timer by name, and its repetition.
    StepTimer(String, u32),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Schedules a timer; an existing timer with the same id is replaced.
    ScheduleTimer {
        id: String,
        at: DateTime<FixedOffset>,
        kind: TimerKind,
    },
    CancelTimer {
        id: String,
    },
    OpenTask {
        id: String,
        step: String,
        title: String,
        role: String,
        organization: Option<String>,
        actions: Vec<String>,
        deadline: Option<DeadlineInfo>,
    },
    CloseTask {
        id: String,
    },
    /// The step's deadline moved, stopped, restarted, became certain or passed.
    DeadlineChanged {
        step: String,
        task: Option<String>,
        deadline: DeadlineInfo,
    },
    RunActivity {
        key: String,
        activity: Activity,
    },
    StartChild {
        key: String,
        procedure: String,
        jurisdiction: String,
        input: Value,
    },
    SignalInstance {
        key: String,
        target: String,
        signal: String,
        data: Value,
    },
    Complete {
        outcome: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    NotStarted,
    Running,
    Completed { outcome: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    pub id: String,
    pub role: String,
    pub organization: Option<String>,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlineState {
    pub rule: Deadline,
    /// `"source article"` as written in the definition.
    pub basis: String,
    pub due: Option<DateTime<FixedOffset>>,
    pub last_day: Option<NaiveDate>,
    pub provisional: bool,
    pub overdue: bool,
    /// Escalations sent while overdue.
    pub escalations_sent: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledTimer {
    pub at: DateTime<FixedOffset>,
    pub kind: TimerKind,
}

/// The step an instance is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepState {
    pub name: String,
    /// How many steps the instance had entered, this one included: makes ids unique when a
    /// step is entered again.
    pub visit: u32,
    pub entered_at: DateTime<FixedOffset>,
    pub task: Option<TaskState>,
    pub deadline: Option<DeadlineState>,
    /// Actions of an `all_of` join already taken.
    #[serde(default)]
    pub joined: BTreeSet<String>,
    pub child: Option<String>,
    #[serde(default)]
    pub timers: BTreeMap<String, ScheduledTimer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityFailure {
    pub key: String,
    pub error: String,
    pub at: DateTime<FixedOffset>,
}

/// Everything an instance remembers between events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceState {
    pub procedure: String,
    pub jurisdiction: String,
    pub version: String,
    #[serde(flatten)]
    pub status: Status,
    pub started_at: Option<DateTime<FixedOffset>>,
    /// Start input and the data of every action taken, by field.
    pub data: BTreeMap<String, Value>,
    pub step: Option<StepState>,
    /// The status of the domain record this procedure governs (e.g. `registered`).
    pub record_status: Option<String>,
    /// Activities started and not yet reported back.
    pub pending_activities: BTreeSet<String>,
    /// What finished activities returned (certificate numbers…), by key.
    pub activity_results: BTreeMap<String, Value>,
    pub activity_failures: Vec<ActivityFailure>,
    /// Events applied so far; activity keys are derived from it.
    pub events: u64,
    /// What the procedure rests on that was not in force when the instance started (a
    /// draft, a lapsed text), as told to everyone who sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_notices: Vec<String>,
    pub visits: u32,
}

impl InstanceState {
    pub fn new(definition: &Definition) -> Self {
        InstanceState {
            procedure: definition.id().to_owned(),
            jurisdiction: definition.jurisdiction().to_owned(),
            version: definition.version.clone(),
            status: Status::NotStarted,
            started_at: None,
            data: BTreeMap::new(),
            step: None,
            record_status: None,
            pending_activities: BTreeSet::new(),
            activity_results: BTreeMap::new(),
            activity_failures: Vec::new(),
            events: 0,
            visits: 0,
            source_notices: Vec::new(),
        }
    }

    pub fn step_name(&self) -> Option<&str> {
        self.step.as_ref().map(|s| s.name.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// The instance is not running (not started, or completed).
    NotRunning,
    /// The event does not fit the current step (unknown action, signal or child outcome).
    NotAllowed,
    WrongRole,
    WrongOrganization,
    /// Start input or action data is missing a field or has a wrong value.
    InvalidData,
    /// The step's clock or join is not in a state that allows this action.
    Conflict,
    /// The definition cannot produce what the step needs (e.g. a deadline from absent data).
    Definition,
    /// Only an administrator may do this (end or move an instance).
    NotAdministrator,
}

/// Why an event was refused. Nothing changes when it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub kind: RefusalKind,
    /// The data field at fault, for `InvalidData`.
    pub field: Option<String>,
    pub message: String,
}

impl Refusal {
    pub fn new(kind: RefusalKind, message: impl Into<String>) -> Self {
        Refusal { kind, field: None, message: message.into() }
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Refusal { kind: RefusalKind::InvalidData, field: Some(field.to_owned()), message: message.into() }
    }
}
