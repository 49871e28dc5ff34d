//! The activities of an instance's workflow. `load` reads the instance as its start stored
//! it and `record` stores the transitions the workflow applied, in order, keeping
//! statflow's store (the read model) in step; `perform` carries out a record-only effect (a
//! certificate, a record status, a data-access change, a report) and answers with what the
//! instance hears. All are idempotent (a transition recorded twice is stored once, an effect
//! carried out twice gives the same result), so Temporal may retry them freely.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use statflow_workflows::engine::{Command, Event, InstanceState, Transition};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use super::world;
use crate::engine::embedded::outbox::{record_result, RECORDS};
use crate::engine::Engine;
use crate::store::effects::Effect;
use crate::store::from_millis;
use crate::store::records::EffectStatus;

/// An instance as the store holds it when its workflow starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loaded {
    pub version: String,
    pub state: InstanceState,
    /// When it last changed, in milliseconds.
    pub updated_at: i64,
    /// Its record-only effects not carried out yet (those its start asked for).
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

/// A record-only effect of an instance, by its activity key (what it asks for is stored
/// with it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Perform {
    pub instance: i64,
    pub key: String,
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
        let mut pending = Vec::new();
        for row in engine.store().effects_of(instance).await? {
            if row.status == EffectStatus::Pending && RECORDS.contains(&row.kind) {
                pending.push(Perform { instance, key: row.activity_key() });
            }
        }
        Ok(Loaded { version: record.definition_version, state, updated_at: record.updated_at, pending })
    }

    #[activity(name = "statflow.perform")]
    pub async fn perform(_ctx: ActivityContext, effect: Perform) -> Result<Value, ActivityError> {
        let engine = world();
        let key = format!("{}:{}", effect.instance, effect.key);
        let effects = engine.store().effects_of(effect.instance).await?;
        // Recorded with the transition that asked for it, before this activity was started.
        let row = effects.into_iter().find(|row| row.key == key).ok_or_else(|| missing(&key))?;
        let Effect::Activity(activity) = row.effect()? else { return Err(missing(&key)) };
        let result = record_result(effect.instance, row.id, &activity).ok_or_else(|| missing(&key))?;
        if row.status == EffectStatus::Pending {
            engine.store().finish_effects(&[row.id], crate::store::to_millis(engine.now())).await?;
        }
        Ok(result)
    }

    #[activity(name = "statflow.record")]
    pub async fn record(_ctx: ActivityContext, transitions: Vec<Recorded>) -> Result<(), ActivityError> {
        let engine = world();
        for recorded in transitions {
            let transition = Transition { state: recorded.transition_state, commands: recorded.commands };
            let now = from_millis(recorded.at_millis);
            engine.record_hosted(recorded.instance, recorded.event, transition, now).await?;
        }
        Ok(())
    }
}

fn missing(key: &str) -> ActivityError {
    ActivityError::from(std::io::Error::other(format!("effect {key} is not a stored record-only effect")))
}
