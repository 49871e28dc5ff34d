//! The activities of an instance's workflow. `load` reads the instance as its start stored
//! it and `record` stores the transitions the workflow applied, in order, keeping
//! statflow's store (the read model) in step; both answer with the instance's effects left to
//! carry out, which `pending` also lists. `perform` carries out an internal effect (a
//! certificate, a record status, a data-access change, a report, a child's start, a signal,
//! a report to a parent) and `deliver` sends a message (a notice, an escalation, a task's
//! notice, a webhook call); both answer with what the instance hears.
//!
//! All are idempotent (a transition recorded twice is stored once, an effect carried out
//! twice gives the same result, a message sent twice has the same Message-ID or delivery
//! id), so Temporal may retry them freely.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statflow_workflows::engine::{Command, Event, InstanceState, Transition};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use super::{channels, world};
use crate::engine::embedded::outbox::Done;
use crate::engine::embedded::Embedded;
use crate::engine::Engine;
use crate::store::effects::EffectKind;
use crate::store::from_millis;
use crate::store::records::{EffectRecord, EffectStatus};

/// An instance as the store holds it when its workflow starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loaded {
    pub version: String,
    pub state: InstanceState,
    /// When it last changed, in milliseconds.
    pub updated_at: i64,
    /// Its effects not carried out yet.
    #[serde(default)]
    pub pending: Vec<Perform>,
}

/// One transition the workflow applied, to store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recorded {
    pub instance: i64,
    pub at_millis: i64,
    pub event: Event,
    pub transition_state: InstanceState,
    pub commands: Vec<Command>,
}

/// An effect of an instance to carry out, by its activity key (what it asks for is stored
/// with it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Perform {
    pub instance: i64,
    pub key: String,
    pub kind: EffectKind,
}

impl Perform {
    fn of(row: &EffectRecord) -> Option<Perform> {
        let instance = row.instance_id?;
        Some(Perform { instance, key: row.activity_key(), kind: row.kind })
    }

    /// The key of its outbox row.
    fn row_key(&self) -> String {
        format!("{}:{}", self.instance, self.key)
    }
}

/// What carrying out an effect came to.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// What the instance hears: `Ok` with the result (`ActivityCompleted`), `Err` with the
    /// error of an effect given up (`ActivityFailed`); `None` when it waits for nothing.
    pub report: Option<Result<Value, String>>,
    /// The child instance a child's start stored: the parent's workflow starts its workflow.
    pub child: Option<i64>,
    /// What the effect queued in turn (a notice's webhook copy).
    pub then: Vec<Perform>,
}

pub struct Projection;

#[activities]
impl Projection {
    #[activity(name = "statflow.load")]
    pub async fn load(_ctx: ActivityContext, instance: i64) -> Result<Loaded, ActivityError> {
        let engine = world();
        let record = engine.store().instance(instance).await?;
        if engine.definitions().get(&record.definition_version).is_none() {
            // Loaded by another process after this worker started.
            engine.refresh_from_store().await?;
        }
        engine.definitions().require_version(&record.definition_version)?;
        let state = record.state()?;
        let pending = pending_of(&engine, instance).await?;
        Ok(Loaded { version: record.definition_version, state, updated_at: record.updated_at, pending })
    }

    #[activity(name = "statflow.record")]
    pub async fn record(_ctx: ActivityContext, transitions: Vec<Recorded>) -> Result<Vec<Perform>, ActivityError> {
        let engine = world();
        let Some(instance) = transitions.first().map(|r| r.instance) else { return Ok(vec![]) };
        for recorded in transitions {
            let transition = Transition { state: recorded.transition_state, commands: recorded.commands };
            let now = from_millis(recorded.at_millis);
            engine.record_hosted(recorded.instance, recorded.event, transition, now).await?;
        }
        Ok(pending_of(&engine, instance).await?)
    }

    #[activity(name = "statflow.pending")]
    pub async fn pending(_ctx: ActivityContext, instance: i64) -> Result<Vec<Perform>, ActivityError> {
        Ok(pending_of(&world(), instance).await?)
    }

    #[activity(name = "statflow.perform")]
    pub async fn perform(ctx: ActivityContext, effect: Perform) -> Result<Outcome, ActivityError> {
        let engine = world();
        let row = row_of(&engine, &effect).await?;
        let done = engine.carry_out_hosted(&row, attempt(&ctx)).await.map_err(retry)?;
        let mut outcome = Outcome::default();
        match done {
            Ok(Done::Activity(result)) => outcome.report = Some(Ok(result)),
            Ok(Done::Child(child)) => outcome.child = Some(child),
            Ok(Done::Quiet) => {}
            Err(error) => outcome.report = Some(Err(error)),
        }
        outcome.report = outcome.report.filter(|_| row.kind.reports());
        Ok(outcome)
    }

    #[activity(name = "statflow.deliver")]
    pub async fn deliver(ctx: ActivityContext, effect: Perform) -> Result<Outcome, ActivityError> {
        let engine = world();
        let row = row_of(&engine, &effect).await?;
        let sent = engine.deliver_hosted(&channels(), &row, attempt(&ctx)).await.map_err(retry)?;
        let mut then = vec![];
        if sent.is_ok() {
            // A notice the agency's or the regulator's system also hears of queued its webhook
            // call, a delivery of its own.
            let webhook = format!("{}/webhook", row.key);
            let effects = engine.store().effects_of(effect.instance).await?;
            then.extend(
                effects
                    .iter()
                    .filter(|r| r.key == webhook && r.status == EffectStatus::Pending)
                    .filter_map(Perform::of),
            );
        }
        Ok(Outcome { report: Some(sent).filter(|_| row.kind.reports()), child: None, then })
    }
}

/// The instance's effects not carried out yet.
async fn pending_of(engine: &Embedded, instance: i64) -> Result<Vec<Perform>, crate::store::StoreError> {
    let effects = engine.store().effects_of(instance).await?;
    Ok(effects
        .iter()
        .filter(|row| row.status == EffectStatus::Pending && row.kind.of_an_instance())
        .filter_map(Perform::of)
        .collect())
}

/// The stored row of `effect` (recorded with the transition that asked for it, or queued by
/// the effect before it, so before this activity was started).
async fn row_of(engine: &Embedded, effect: &Perform) -> Result<EffectRecord, ActivityError> {
    let key = effect.row_key();
    let effects = engine.store().effects_of(effect.instance).await?;
    effects.into_iter().find(|row| row.key == key).ok_or_else(|| retry(format!("effect {key} is not stored")))
}

/// This attempt's number, from 1.
fn attempt(ctx: &ActivityContext) -> i32 {
    i32::try_from(ctx.info().attempt).unwrap_or(i32::MAX).max(1)
}

/// A failure Temporal retries (by the activity's retry policy).
fn retry(reason: String) -> ActivityError {
    ActivityError::from(std::io::Error::other(reason))
}
