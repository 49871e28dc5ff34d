//! The activities of an instance's workflow that keep statflow's store, the read model, in
//! step with it: `load` reads the instance as its start stored it, `record` stores the
//! transitions the workflow applied, in order. Both are idempotent (a transition recorded
//! twice is stored once), so Temporal may retry them freely.

use serde::{Deserialize, Serialize};
use statflow_workflows::engine::{Command, Event, InstanceState, Transition};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use super::world;
use crate::engine::Engine;
use crate::store::from_millis;

/// An instance as the store holds it when its workflow starts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Loaded {
    pub version: String,
    pub state: InstanceState,
    /// When it last changed, in milliseconds.
    pub updated_at: i64,
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
        Ok(Loaded { version: record.definition_version, state, updated_at: record.updated_at })
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
