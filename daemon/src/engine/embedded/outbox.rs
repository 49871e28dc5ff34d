//! The outbox worker: carries out the effects committed with each transition, at least once,
//! and feeds results back as events. This runtime performs the internal effects
//! (certificates, record status, data access, reports, child instances, signals); notices
//! and escalations stay queued for the delivery channels. Under a host (the Temporal engine)
//! the worker does not run: each instance's workflow carries its effects out as activities,
//! through [`Embedded::carry_out_hosted`].

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::{json, Value};
use statflow_activities::key_digest;
use statflow_workflows::engine::{Activity, Actor, Event};

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};
use crate::engine::EngineError;
use crate::store::effects::{ChildStart, Effect, EffectKind};
use crate::store::records::{EffectRecord, EffectStatus};
use crate::store::transition::Origin;
use crate::store::{to_millis, StoreError};

/// After this many failed attempts an internal effect is given up and reported.
pub const MAX_ATTEMPTS: i32 = 8;

/// How many ready effects one pass takes.
const BATCH: u64 = 256;

/// What an effect led to.
pub enum Done {
    /// An activity finished: report it to its instance.
    Activity(Value),
    /// A child instance was stored (or was already): nothing to report back.
    Child(i64),
    /// Nothing to report back.
    Quiet,
}

impl Embedded {
    /// Carries out the ready internal effects; returns how many were handled.
    pub async fn run_outbox_once(&self) -> Result<usize, StoreError> {
        let now = to_millis(self.clock.now());
        let (count, groups) = self.store.ready_effects(&EffectKind::INTERNAL, now, BATCH).await?;
        let passes = join_all(groups.into_iter().map(|rows| async move {
            let mut done = Vec::with_capacity(rows.len());
            for row in rows {
                if !self.shared_work.here() {
                    break;
                }
                if self.handle(&row, now).await? {
                    done.push(row.id);
                }
            }
            Ok::<_, StoreError>(done)
        }))
        .await;
        let mut done = Vec::with_capacity(count);
        for pass in passes {
            done.extend(pass?);
        }
        if !self.shared_work.here() {
            // The lease ran out during the pass (the process was paused, say): the node
            // holding it now carries these effects out again, by the same keys.
            tracing::warn!(
                effects = done.len(),
                "the work lease ran out during an outbox pass; leaving it to the holder"
            );
            return Ok(count);
        }
        // One write marks the whole pass done. A crash before it repeats these effects, which
        // is why every effect is idempotent by its key.
        self.store.finish_effects(&done, now).await?;
        Ok(count)
    }

    /// Carries out one effect; true when it is done (marked with the rest of the pass).
    async fn handle(&self, row: &EffectRecord, now: i64) -> Result<bool, StoreError> {
        let Some(instance) = row.instance_id else {
            let error = "an internal effect must belong to an instance".to_owned();
            self.store.finish_effect(row.id, EffectStatus::Failed, Some(error), now).await?;
            return Ok(false);
        };
        let effect = match row.effect() {
            Ok(effect) => effect,
            Err(error) => {
                // A row that does not decode is not retried: it would never decode.
                tracing::error!(%error, "an effect cannot be carried out");
                self.store.finish_effect(row.id, EffectStatus::Failed, Some(error.to_string()), now).await?;
                let key = row.activity_key();
                self.apply(instance, &Event::ActivityFailed { key, error: error.to_string() }).await.ok();
                return Ok(false);
            }
        };
        match self.perform(instance, row, effect).await {
            Ok(Done::Activity(result)) => {
                let key = row.activity_key();
                self.apply(instance, &Event::ActivityCompleted { key, result }).await.ok();
                return Ok(true);
            }
            Ok(Done::Quiet | Done::Child(_)) => return Ok(true),
            Err(error) if row.attempts + 1 >= MAX_ATTEMPTS => {
                self.store.finish_effect(row.id, EffectStatus::Failed, Some(error.clone()), now).await?;
                let key = row.activity_key();
                self.apply(instance, &Event::ActivityFailed { key, error }).await.ok();
            }
            Err(error) => {
                let delay = backoff(row.attempts, &row.key);
                self.store.retry_effect(row.id, row.attempts + 1, now + delay, &error).await?;
            }
        }
        Ok(false)
    }

    async fn perform(&self, instance: i64, row: &EffectRecord, effect: Effect) -> Result<Done, String> {
        match effect {
            Effect::Activity(activity) => record_result(instance, row.id, &activity)
                .map(Done::Activity)
                .ok_or_else(|| format!("the outbox worker does not carry out {} effects", row.kind)),
            Effect::StartChild(start) => self.start_child(instance, start).await.map(Done::Child),
            Effect::SignalInstance(signal) => {
                let target =
                    signal.target.parse::<i64>().map_err(|_| format!("`{}` is not an instance id", signal.target))?;
                let event = Event::Signal { name: signal.signal, data: signal.data };
                match self.apply(target, &event).await {
                    Ok(_) => Ok(Done::Quiet),
                    // A refused signal is recorded, not retried: the target has moved on.
                    Err(EngineError::Refused(refusal)) => {
                        tracing::warn!(target, %refusal, "signal refused");
                        Ok(Done::Quiet)
                    }
                    Err(error) => Err(error.to_string()),
                }
            }
            Effect::ChildCompleted(report) => {
                let event = Event::ChildCompleted { key: report.key, outcome: report.outcome };
                self.apply(report.parent, &event).await.map(|_| Done::Quiet).map_err(|e| e.to_string())
            }
            other => Err(format!("the outbox worker does not carry out {} effects", other.kind())),
        }
    }

    /// Stores the child `start` asks for; answers with its id.
    async fn start_child(&self, parent: i64, start: ChildStart) -> Result<i64, String> {
        // At least once: a child already started for this key is not started again.
        if let Some(child) = self.store.child_of(parent, &start.key).await.map_err(|e| e.to_string())? {
            return Ok(child);
        }
        let definition = self.definitions.require(&start.procedure, &start.jurisdiction).map_err(|e| e.to_string())?;
        let origin = Origin::Child { parent, key: start.key };
        let started = self.start_with(&definition, start.input, Actor::system(), origin).await;
        started.map(|applied| applied.instance_id).map_err(|e| e.to_string())
    }

    /// Carries out one internal effect of an instance a host's workflow runs (the Temporal
    /// engine's `statflow.perform` activity), on its `attempt`, counted from 1. `Err` is a
    /// failure to retry; `Ok(Err(error))` an effect given up after [`MAX_ATTEMPTS`] (or one
    /// that can never be carried out), recorded on its row, which the instance hears.
    pub async fn carry_out_hosted(&self, row: &EffectRecord, attempt: i32) -> Result<Result<Done, String>, String> {
        let now = to_millis(self.clock.now());
        let outcome = match (row.instance_id, row.effect()) {
            (None, _) => Err("an internal effect must belong to an instance".to_owned()),
            (_, Err(error)) => Err(error.to_string()),
            (Some(instance), Ok(effect)) => match self.perform(instance, row, effect).await {
                Err(error) if attempt < MAX_ATTEMPTS => {
                    self.store.retry_effect(row.id, attempt, now, &error).await.ok();
                    return Err(error);
                }
                outcome => outcome,
            },
        };
        let stored = match &outcome {
            Ok(_) => self.store.finish_effects(&[row.id], now).await,
            Err(error) => self.store.finish_effect(row.id, EffectStatus::Failed, Some(error.clone()), now).await,
        };
        stored.map_err(|e| e.to_string())?;
        Ok(outcome)
    }

    /// The outbox worker's loop, until shutdown.
    pub(super) async fn run_outbox(self: Arc<Self>, heartbeat: Heartbeat, shutdown: Shutdown) {
        let kinds = EffectKind::INTERNAL;
        self.work_until_stopped(&kinds, &self.outbox_changed, "outbox", heartbeat, shutdown, || self.run_outbox_once())
            .await
    }
}

/// What a record-only activity (a certificate, a record status, a data-access change, a
/// report) returns to its instance, carried out as effect row `row_id` (its certificate
/// number names the row, so a repeat gives the same number); `None` for a notice.
fn record_result(instance: i64, row_id: i64, activity: &Activity) -> Option<Value> {
    match activity {
        Activity::IssueCertificate { .. } => Some(json!({ "certificate_no": format!("CERT-{instance}-{row_id}") })),
        Activity::SetStatus { .. } | Activity::ChangeAccess { .. } | Activity::WriteReport { .. } => {
            Some(json!({ "recorded": true }))
        }
        Activity::Notify { .. } | Activity::Escalate { .. } => None,
    }
}

/// Milliseconds before attempt `attempts + 1`: 1 s doubling to at most an hour, spread by
/// up to a quarter so effects that failed together do not retry together. The spread is
/// drawn from the key, so it is the same on every node and after a restart.
pub(super) fn backoff(attempts: i32, key: &str) -> i64 {
    let base = (1000i64 << attempts.clamp(0, 12)).min(3_600_000);
    let spread = i64::from_str_radix(&key_digest(&format!("{key}#{attempts}"))[..8], 16).unwrap_or(0);
    base + spread % (base / 4 + 1)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_with_a_bounded_spread() {
        for attempts in 0..14 {
            let base = (1000i64 << attempts.min(12)).min(3_600_000);
            let delay = backoff(attempts, "7:e3.0");
            assert!(delay >= base && delay <= base + base / 4, "attempt {attempts}: {delay}");
        }
        assert_ne!(backoff(3, "1:e1.0"), backoff(3, "2:e1.0"), "different effects spread apart");
    }
}
