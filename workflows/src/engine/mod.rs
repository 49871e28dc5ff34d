//! The interpreter: `apply(definition, state, event, now, calendar) -> (state, commands)`.
//!
//! Pure and deterministic: the same inputs always give the same output, so a runtime can
//! replay a history to rebuild an instance and every runtime (embedded, PostgreSQL,
//! Temporal) runs the same procedures. Time comes in as `now`; effects go out as
//! [`Command`]s for the runtime to carry out after it has stored the transition.
//!
//! - [`types`]: events, commands, activities, the instance state and refusals.
//! - [`run`]: how each event moves an instance.
//! - [`schedule`]: which timers a step's deadline needs at a given moment.
//! - [`data`]: checking start input and action data against the definition's fields.

pub mod data;
mod run;
mod schedule;
pub mod types;

use chrono::{DateTime, FixedOffset};

use crate::calendar::Calendar;
use crate::definition::Definition;
pub use types::*;

/// The outcome of applying one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub state: InstanceState,
    pub commands: Vec<Command>,
}

/// Applies `event` to `state`. A refused event (an action not allowed now, by the wrong
/// role, with missing data…) returns the reason and changes nothing.
pub fn apply(
    definition: &Definition,
    state: &InstanceState,
    event: &Event,
    now: DateTime<FixedOffset>,
    calendar: &Calendar,
) -> Result<Transition, Refusal> {
    run::Run::new(definition, state, now, calendar).apply(event)
}

/// Starts an instance: [`apply`] of [`Event::Started`] on a fresh state.
pub fn start(
    definition: &Definition,
    input: serde_json::Value,
    actor: Actor,
    now: DateTime<FixedOffset>,
    calendar: &Calendar,
) -> Result<Transition, Refusal> {
    apply(definition, &InstanceState::new(definition), &Event::Started { input, actor }, now, calendar)
}
