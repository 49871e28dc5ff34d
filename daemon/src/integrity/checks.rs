//! The checks of one instance, each reported on its own:
//!
//! - `chain`: its history rows are numbered 1, 2, … and each hash covers the instance's id,
//!   the previous hash and the event;
//! - `head`: the head recorded with the instance is its last row's hash, and the state has
//!   applied exactly that many events;
//! - `ledger`: every history row is in the ledger with the same hash, and nothing else of
//!   the instance is;
//! - `replay`: applying the history through the interpreter gives the stored state.
//!
//! These are pure functions of rows already read; the caller decides what to read.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{self, Event, InstanceState};

use crate::store::from_millis;
use crate::store::ledger::{history_hash, sealed, GENESIS};
use crate::store::records::{HistoryEntry, InstanceRecord, LedgerEntry, LedgerKind};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// Could not be decided either way (the detail says why); never flags an instance.
    Inconclusive,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Check {
    pub verdict: Verdict,
    pub detail: String,
}

impl Check {
    pub fn passed(detail: impl Into<String>) -> Check {
        Check { verdict: Verdict::Passed, detail: detail.into() }
    }

    pub fn failed(detail: impl Into<String>) -> Check {
        Check { verdict: Verdict::Failed, detail: detail.into() }
    }

    pub fn inconclusive(detail: impl Into<String>) -> Check {
        Check { verdict: Verdict::Inconclusive, detail: detail.into() }
    }

    pub fn is_failure(&self) -> bool {
        self.verdict == Verdict::Failed
    }
}

/// The four checks of an instance.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceChecks {
    pub chain: Check,
    pub head: Check,
    pub ledger: Check,
    pub replay: Check,
}

impl InstanceChecks {
    /// What failed, as one line (empty when nothing did).
    pub fn failures(&self) -> String {
        [("chain", &self.chain), ("head", &self.head), ("ledger", &self.ledger), ("replay", &self.replay)]
            .iter()
            .filter(|(_, check)| check.is_failure())
            .map(|(name, check)| format!("{name}: {}", check.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub fn chain(id: i64, history: &[HistoryEntry]) -> Check {
    if history.is_empty() {
        return Check::failed("the instance has no history; its events were deleted");
    }
    let mut prev = GENESIS;
    for (n, row) in history.iter().enumerate() {
        let expected_seq = n as i64 + 1;
        if row.seq != expected_seq {
            return Check::failed(format!("event {expected_seq} is missing (the next stored is {})", row.seq));
        }
        if row.prev_hash != prev {
            return Check::failed(format!("event {} does not follow event {}", row.seq, row.seq - 1));
        }
        if row.hash != history_hash(id, prev, row.seq, row.at, &row.actor, &row.event) {
            return Check::failed(format!("event {} was altered (or belongs to another instance)", row.seq));
        }
        prev = &row.hash;
    }
    Check::passed(format!("{} events, each sealed to the one before", history.len()))
}

pub fn head(row: &InstanceRecord, history: &[HistoryEntry]) -> Check {
    let Some(last) = history.last() else {
        return Check::failed("no history to end at the recorded head");
    };
    if row.head_hash != last.hash {
        return Check::failed(format!(
            "the recorded head is not the hash of the last stored event ({}): events after it were removed, or the head was edited",
            last.seq
        ));
    }
    match serde_json::from_str::<InstanceState>(&row.stored_state) {
        Ok(state) if state.events as i64 == last.seq => {
            Check::passed(format!("the recorded head is event {}'s hash", last.seq))
        }
        Ok(state) => {
            Check::failed(format!("the state has applied {} events, the history holds {}", state.events, last.seq))
        }
        Err(error) => Check::failed(format!("the stored state is unreadable: {error}")),
    }
}

/// `entries` are the instance's ledger rows in ledger order; `linked` says whether each is
/// followed in the ledger by a row that names it (checked by the caller, who can see the
/// whole ledger or the rows after these).
pub fn ledger(history: &[HistoryEntry], entries: &[LedgerEntry], linked: Result<(), String>) -> Check {
    if let Some(entry) = entries.iter().find(|e| !sealed(e)) {
        return Check::failed(format!("ledger entry {} was altered", entry.seq));
    }
    if let Some(entry) = entries.iter().find(|e| e.kind != LedgerKind::Event.as_str()) {
        return Check::failed(format!(
            "ledger entry {} records the instance as {}, yet it is stored",
            entry.seq, entry.kind
        ));
    }
    for (n, entry) in entries.iter().enumerate() {
        match history.iter().find(|h| h.seq == entry.event_seq) {
            None => {
                return Check::failed(format!(
                    "the ledger holds event {} (entry {}), which is missing from the history",
                    entry.event_seq, entry.seq
                ))
            }
            Some(row) if row.hash != entry.event_hash => {
                return Check::failed(format!("event {} differs from what the ledger recorded", row.seq))
            }
            Some(_) if entry.event_seq != n as i64 + 1 => {
                return Check::failed(format!("ledger entry {} is out of order", entry.seq))
            }
            Some(_) => {}
        }
    }
    if entries.len() < history.len() {
        return Check::failed(format!(
            "events {}–{} were never recorded in the ledger",
            entries.len() + 1,
            history.len()
        ));
    }
    if let Err(detail) = linked {
        return Check::failed(detail);
    }
    Check::passed(format!("all {} events are in the ledger", entries.len()))
}

/// Replays `history` through the interpreter with `calendar` and compares the result with
/// the stored state. `stale` says the instance's deadlines wait for recomputation with the
/// current calendar.
pub fn replay(
    row: &InstanceRecord,
    history: &[HistoryEntry],
    definitions: &dyn Fn(&str) -> Option<Arc<Definition>>,
    calendar: &Calendar,
    stale: bool,
) -> Check {
    let mut events = Vec::with_capacity(history.len());
    for entry in history {
        match serde_json::from_str::<Event>(&entry.event) {
            Ok(event) => events.push(event),
            Err(error) => return Check::failed(format!("event {} is unreadable: {error}", entry.seq)),
        }
    }
    // An instance migrated to another version began on the version its first migration
    // left; each migration is applied with the version it goes to.
    let first_version = events
        .iter()
        .find_map(|e| match e {
            Event::Migrated { from_version, .. } => Some(from_version.as_str()),
            _ => None,
        })
        .unwrap_or(&row.definition_version);
    let Some(mut definition) = definitions(first_version) else {
        return Check::failed(format!("definition version {first_version} is not stored"));
    };
    // The interpreter computes deadlines with the calendar of the moment. The calendar an
    // instance ran under before a correction is no longer at hand, so after one the
    // deadlines are left out of the comparison (everything else must still agree).
    let mut calendar_changed = stale;
    let mut state = InstanceState::new(&definition);
    for (entry, event) in history.iter().zip(&events) {
        calendar_changed |= matches!(event, Event::CalendarChanged);
        if let Some(version) = event.applies_version() {
            match definitions(version) {
                Some(next) => definition = next,
                None => return Check::failed(format!("definition version {version} is not stored")),
            }
        }
        match engine::apply(&definition, &state, event, from_millis(entry.at), calendar) {
            Ok(transition) => state = transition.state,
            Err(refusal) if calendar_changed => {
                return Check::inconclusive(format!(
                    "event {} is refused on replay with today's calendar ({refusal}); the calendar changed during the instance",
                    entry.seq
                ))
            }
            Err(refusal) => return Check::failed(format!("event {} is refused on replay: {refusal}", entry.seq)),
        }
    }
    let stored: Value = match serde_json::from_str(&row.stored_state) {
        Ok(value) => value,
        Err(error) => return Check::failed(format!("the stored state is unreadable: {error}")),
    };
    let replayed = serde_json::to_value(&state).expect("states serialize");
    if comparable(&replayed, calendar_changed) == comparable(&stored, calendar_changed) {
        let scope = if calendar_changed { " (deadlines aside: the calendar changed)" } else { "" };
        return Check::passed(format!("replaying {} events gives the stored state{scope}", history.len()));
    }
    Check::failed(format!(
        "replaying the history does not give the stored state: {}",
        first_difference(&replayed, &stored)
    ))
}

/// `value` with instants as milliseconds (states written before instants were stored to the
/// millisecond carry finer ones) and, if `without_deadlines`, the step's deadline and timers
/// left out.
fn comparable(value: &Value, without_deadlines: bool) -> Value {
    let mut value = normalized(value);
    if without_deadlines {
        if let Some(step) = value.get_mut("step").and_then(Value::as_object_mut) {
            step.remove("deadline");
            step.remove("timers");
        }
    }
    value
}

fn normalized(value: &Value) -> Value {
    match value {
        Value::String(text) => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(instant) => Value::String(format!("@{}", instant.timestamp_millis())),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect()),
        other => other.clone(),
    }
}

/// The first top-level field where two states differ, for the report.
fn first_difference(replayed: &Value, stored: &Value) -> String {
    let (Some(a), Some(b)) = (replayed.as_object(), stored.as_object()) else {
        return "the stored state is not an object".into();
    };
    let field = a
        .keys()
        .chain(b.keys())
        .find(|k| normalized(a.get(*k).unwrap_or(&Value::Null)) != normalized(b.get(*k).unwrap_or(&Value::Null)));
    match field {
        Some(field) => format!("`{field}` differs"),
        None => "the deadlines differ".into(),
    }
}
