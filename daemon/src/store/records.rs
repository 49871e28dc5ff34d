//! What the store hands out: rows parsed into typed records. Statuses are enums, lists are
//! vectors, JSON columns are decoded here; a row that does not decode is a
//! [`StoreError::Corrupt`] naming its table and id, never a default value. Nothing outside
//! the store sees a sea-orm type.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use statflow_workflows::engine::InstanceState;

use super::effects::{Effect, EffectKind};
use super::entities::{contacts, history, instances, ledger, organizations, outbox, principals, schedule_runs, tasks};
use super::{from_millis, StoreError};

/// Declares a status stored as text: its variants, their stored names, and parsing that names
/// the row at fault.
macro_rules! stored_text {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name it is stored and shown under.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a stored or requested name.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// Parses a stored name of row `row`; an unknown name is corrupt data. (Not every
            /// stored text is read back by this path, hence the allowance.)
            #[allow(dead_code)]
            pub(super) fn decode(
                text: &str,
                row: impl std::fmt::Display,
            ) -> Result<$name, $crate::store::StoreError> {
                Self::parse(text).ok_or_else(|| {
                    $crate::store::StoreError::Corrupt(format!("{row}: `{text}` is not a {}", stringify!($name)))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_text;

/// Names a stored row in an error message ("instance 7"); formatted only if an error is, so
/// decoding a row costs no allocation for its name.
#[derive(Clone, Copy)]
pub(crate) struct RowName<'a, T: std::fmt::Display>(pub &'static str, pub &'a T);

impl<T: std::fmt::Display> std::fmt::Display for RowName<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}

stored_text!(
    /// Where an instance stands.
    InstanceStatus { Running => "running", Completed => "completed" }
);
stored_text!(
    /// Whether a task still waits for someone.
    TaskStatus { Open => "open", Closed => "closed" }
);
stored_text!(
    /// How an effect's delivery stands.
    EffectStatus { Pending => "pending", Done => "done", Failed => "failed" }
);
stored_text!(
    /// How a schedule's fire time went.
    RunStatus { Running => "running", Done => "done", Skipped => "skipped", Failed => "failed" }
);
stored_text!(
    /// What a ledger entry records.
    LedgerKind {
        /// An applied event of a stored instance.
        Event => "event",
        /// An instance the retention sweep removed lawfully.
        Removed => "removed",
    }
);
stored_text!(
    /// What a principal may do: staff act within their organizations, administrators
    /// anywhere, regulators read everything, schedulers start instances.
    Role { Staff => "staff", Administrator => "administrator", Scheduler => "scheduler", Regulator => "regulator" }
);

/// A procedure instance as stored: its summary columns, and its state snapshot decoded on
/// demand (lists never need it).
#[derive(Clone, Debug)]
pub struct InstanceRecord {
    pub id: i64,
    pub procedure: String,
    pub jurisdiction: String,
    pub definition_version: String,
    pub status: InstanceStatus,
    pub outcome: Option<String>,
    pub step: Option<String>,
    /// The organizations it involves (its scope).
    pub organizations: Vec<String>,
    pub version: i64,
    pub next_due_at: Option<i64>,
    pub overdue: bool,
    pub parent: Option<i64>,
    pub parent_key: Option<String>,
    pub start_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The hash of its latest history row.
    pub head_hash: String,
    pub calendar_generation: i64,
    /// Why it failed verification, if it did; it then refuses actions.
    pub flagged: Option<String>,
    /// The state snapshot as stored (verification compares it as text).
    pub stored_state: String,
}

impl InstanceRecord {
    /// `organizations` are its rows of `instance_organizations`.
    pub(super) fn decode(row: instances::Model, organizations: Vec<String>) -> Result<InstanceRecord, StoreError> {
        let id = row.id;
        let name = RowName("instance", &id);
        Ok(InstanceRecord {
            status: InstanceStatus::decode(&row.status, name)?,
            organizations,
            id: row.id,
            procedure: row.procedure,
            jurisdiction: row.jurisdiction,
            definition_version: row.definition_version,
            outcome: row.outcome,
            step: row.step,
            version: row.version_no,
            next_due_at: row.next_due_at,
            overdue: row.overdue,
            parent: row.parent_instance_id,
            parent_key: row.parent_key,
            start_key: row.start_key,
            created_at: row.created_at,
            updated_at: row.updated_at,
            head_hash: row.head_hash,
            calendar_generation: row.calendar_generation,
            flagged: row.flagged,
            stored_state: row.state,
        })
    }

    /// The state snapshot; one that does not decode is corrupt data naming the instance.
    pub fn state(&self) -> Result<InstanceState, StoreError> {
        decode_state(self.id, &self.stored_state)
    }

    pub fn is_running(&self) -> bool {
        self.status == InstanceStatus::Running
    }

    pub fn involves(&self, organization: &str) -> bool {
        self.organizations.iter().any(|o| o == organization)
    }
}

/// The state snapshot of instance `id` as stored; one that does not decode is corrupt data
/// naming the instance.
pub(super) fn decode_state(id: i64, stored: &str) -> Result<InstanceState, StoreError> {
    serde_json::from_str(stored)
        .map_err(|e| StoreError::Corrupt(format!("instance {id}: its state does not decode: {e}")))
}

/// One applied event of an instance, with the hashes that seal it. The event stays as the
/// text the hash covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub instance_id: i64,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub event: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<history::Model> for HistoryEntry {
    fn from(row: history::Model) -> Self {
        HistoryEntry {
            instance_id: row.instance_id,
            seq: row.seq,
            at: row.at,
            actor: row.actor,
            event: row.event,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// A task in someone's inbox.
#[derive(Clone, Debug)]
pub struct TaskRecord {
    /// `{instance}:{task}`.
    pub id: String,
    pub instance_id: i64,
    pub task_id: String,
    pub step: String,
    pub title: String,
    pub role: String,
    pub organization: Option<String>,
    /// The actions that complete it.
    pub actions: Vec<String>,
    pub due_at: Option<i64>,
    pub overdue: bool,
    pub status: TaskStatus,
    pub assignee: Option<String>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

impl TaskRecord {
    pub(super) fn decode(row: tasks::Model) -> Result<TaskRecord, StoreError> {
        let name = RowName("task", &row.id);
        let actions = serde_json::from_str(&row.actions)
            .map_err(|e| StoreError::Corrupt(format!("{name}: its actions do not decode: {e}")))?;
        Ok(TaskRecord {
            status: TaskStatus::decode(&row.status, name)?,
            actions,
            id: row.id,
            instance_id: row.instance_id,
            task_id: row.task_id,
            step: row.step,
            title: row.title,
            role: row.role,
            organization: row.organization,
            due_at: row.due_at,
            overdue: row.overdue,
            assignee: row.assignee,
            created_at: row.created_at,
            closed_at: row.closed_at,
        })
    }

    pub fn offers(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action)
    }
}

/// An effect to carry out after commit, with how its delivery stands. The kind is decoded
/// with the row; the payload when a worker takes it ([`EffectRecord::effect`]).
#[derive(Clone, Debug)]
pub struct EffectRecord {
    pub id: i64,
    /// None for an effect of no instance (a digest, an anchor).
    pub instance_id: Option<i64>,
    /// `{instance}:{activity key}`, or a key of its own for effects of no instance.
    pub key: String,
    pub kind: EffectKind,
    pub status: EffectStatus,
    pub attempts: i32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub done_at: Option<i64>,
    payload: String,
}

impl EffectRecord {
    pub(super) fn decode(row: outbox::Model) -> Result<EffectRecord, StoreError> {
        let id = row.id;
        let name = RowName("effect", &id);
        Ok(EffectRecord {
            kind: EffectKind::decode(&row.kind, name)?,
            status: EffectStatus::decode(&row.status, name)?,
            id: row.id,
            instance_id: row.instance_id,
            key: row.key,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
            done_at: row.done_at,
            payload: row.payload,
        })
    }

    /// What to carry out; a payload that does not decode is corrupt data naming the row.
    pub fn effect(&self) -> Result<Effect, StoreError> {
        Effect::decode(self.kind, &self.payload)
            .map_err(|e| StoreError::Corrupt(format!("effect {} ({}): {e}", self.id, self.kind)))
    }

    /// The activity key the instance knows this effect by.
    pub fn activity_key(&self) -> String {
        self.key.split_once(':').map_or(self.key.as_str(), |(_, key)| key).to_owned()
    }
}

/// A timer of an instance that is due (or will be).
#[derive(Clone, Debug)]
pub struct TimerRecord {
    /// `{instance}:{timer}`.
    pub id: String,
    pub instance_id: i64,
    pub timer_id: String,
    pub due_at: i64,
}

/// One entry of the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub instance_id: i64,
    pub event_seq: i64,
    pub event_hash: String,
    pub kind: String,
    pub prev_hash: String,
    pub hash: String,
}

impl From<ledger::Model> for LedgerEntry {
    fn from(row: ledger::Model) -> Self {
        LedgerEntry {
            seq: row.seq,
            instance_id: row.instance_id,
            event_seq: row.event_seq,
            event_hash: row.event_hash,
            kind: row.kind,
            prev_hash: row.prev_hash,
            hash: row.hash,
        }
    }
}

/// Someone who may call the API.
#[derive(Clone, Debug)]
pub struct PrincipalRecord {
    pub name: String,
    pub role: Role,
    pub organizations: Vec<String>,
    /// When its token was created.
    pub created_at: i64,
    /// When its token stops working, if it does.
    pub expires_at: Option<i64>,
}

impl PrincipalRecord {
    pub(super) fn decode(row: principals::Model) -> Result<PrincipalRecord, StoreError> {
        let id = row.id;
        let name = RowName("principal", &id);
        let organizations = serde_json::from_str(&row.organizations)
            .map_err(|e| StoreError::Corrupt(format!("{name}: its organizations do not decode: {e}")))?;
        Ok(PrincipalRecord {
            role: Role::decode(&row.role, name)?,
            name: row.name,
            organizations,
            created_at: row.created_at,
            expires_at: row.expires_at,
        })
    }
}

/// An organization of the directory.
#[derive(Clone, Debug)]
pub struct OrganizationRecord {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub supervisor: Option<String>,
    pub regulator: Option<String>,
    pub updated_at: i64,
}

impl From<organizations::Model> for OrganizationRecord {
    fn from(row: organizations::Model) -> Self {
        OrganizationRecord {
            id: row.id,
            name: row.name,
            email: row.email,
            supervisor: row.supervisor,
            regulator: row.regulator,
            updated_at: row.updated_at,
        }
    }
}

/// A person notifications go to.
#[derive(Clone, Debug)]
pub struct ContactRecord {
    pub id: i64,
    pub organization: String,
    pub name: String,
    pub email: String,
    pub roles: Vec<String>,
    /// The principal (token name) this person signs in as.
    pub principal: Option<String>,
}

impl From<contacts::Model> for ContactRecord {
    fn from(row: contacts::Model) -> Self {
        ContactRecord {
            id: row.id,
            roles: row.roles.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
            organization: row.organization,
            name: row.name,
            email: row.email,
            principal: row.principal,
        }
    }
}

impl ContactRecord {
    pub fn holds(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// One fire time of a schedule and what it did.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub schedule: String,
    pub fire_at: i64,
    pub status: RunStatus,
    /// What the run started or did.
    pub result: serde_json::Value,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl RunRecord {
    pub(super) fn decode(row: schedule_runs::Model) -> Result<RunRecord, StoreError> {
        let name = format!("run {} of schedule {}", row.id, row.schedule_id);
        let result = serde_json::from_str(&row.result)
            .map_err(|e| StoreError::Corrupt(format!("{name}: its result does not decode: {e}")))?;
        Ok(RunRecord {
            status: RunStatus::decode(&row.status, &name)?,
            result,
            schedule: row.schedule_id,
            fire_at: row.fire_at,
            error: row.error,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }

    pub fn fire_time(&self) -> DateTime<FixedOffset> {
        from_millis(self.fire_at)
    }
}

/// A stored calendar year (its notice as TSV).
#[derive(Clone, Debug)]
pub struct CalendarYearRecord {
    pub year: i32,
    pub origin: String,
    pub notice: String,
    pub imported_at: i64,
    pub correction: Option<String>,
    pub generation: i64,
}

/// A stored definition version.
#[derive(Clone, Debug)]
pub struct DefinitionRecord {
    pub version: String,
    pub procedure: String,
    pub jurisdiction: String,
    pub file: String,
    pub source: String,
}
