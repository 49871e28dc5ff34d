//! The outbox worker: carries out the effects committed with each transition, at least once,
//! and feeds results back as events. This runtime performs the internal effects
//! (certificates, record status, data access, reports, child instances, signals); notices
//! and escalations stay queued for the delivery channels.

use std::sync::Arc;

use futures_util::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};
use statflow_activities::key_digest;
use statflow_workflows::engine::{Actor, Event};

use super::Runtime;
use crate::store::entities::{instances, outbox};
use crate::store::transition::Origin;
use crate::store::{to_millis, StoreError};

/// Effects this worker carries out itself.
pub const INTERNAL: [&str; 7] = [
    "issue_certificate",
    "set_status",
    "change_access",
    "write_report",
    "start_child",
    "signal_instance",
    "child_completed",
];

const MAX_ATTEMPTS: i32 = 8;

/// How many ready effects one pass takes.
const BATCH: u64 = 256;

/// What an effect led to.
enum Done {
    /// An activity finished: report it to its instance.
    Activity(Value),
    /// Nothing to report back.
    Quiet,
}

impl Runtime {
    /// Carries out the ready internal effects; returns how many were handled.
    pub async fn run_outbox_once(&self) -> Result<usize, StoreError> {
        let now = to_millis(self.clock.now());
        let (count, groups) = self.store.ready_outbox(&INTERNAL, now, BATCH).await?;
        let passes = join_all(groups.into_iter().map(|rows| async move {
            let mut done = Vec::with_capacity(rows.len());
            for row in rows {
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
        // One write marks the whole pass done. A crash before it repeats these effects, which
        // is why every effect is idempotent by its key.
        self.store.finish_outbox_rows(&done, now).await?;
        Ok(count)
    }

    /// Carries out one effect; true when it is done (marked with the rest of the pass).
    async fn handle(&self, row: &outbox::Model, now: i64) -> Result<bool, StoreError> {
        let Some(instance) = row.instance_id else {
            let error = "an internal effect must belong to an instance".to_owned();
            self.store.finish_outbox(row.id, "failed", Some(error), now).await?;
            return Ok(false);
        };
        let payload: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        match self.perform(instance, row, &payload).await {
            Ok(Done::Activity(result)) => {
                let key = row.activity_key();
                self.apply(instance, &Event::ActivityCompleted { key, result }).await.ok();
                return Ok(true);
            }
            Ok(Done::Quiet) => return Ok(true),
            Err(error) if row.attempts + 1 >= MAX_ATTEMPTS => {
                self.store.finish_outbox(row.id, "failed", Some(error.clone()), now).await?;
                let key = row.activity_key();
                self.apply(instance, &Event::ActivityFailed { key, error }).await.ok();
            }
            Err(error) => {
                let delay = backoff(row.attempts, &row.key);
                self.store.retry_outbox(row.id, row.attempts + 1, now + delay, &error).await?;
            }
        }
        Ok(false)
    }

    async fn perform(&self, instance: i64, row: &outbox::Model, payload: &Value) -> Result<Done, String> {
        match row.kind.as_str() {
            "issue_certificate" => {
                let number = format!("CERT-{instance}-{}", row.id);
                Ok(Done::Activity(json!({ "certificate_no": number })))
            }
            "set_status" | "change_access" | "write_report" => Ok(Done::Activity(json!({ "recorded": true }))),
            "start_child" => self.start_child(instance, payload).await.map(|()| Done::Quiet),
            "signal_instance" => {
                let target = payload["target"]
                    .as_str()
                    .and_then(|t| t.parse::<i64>().ok())
                    .ok_or("the signal names no instance id")?;
                let event = Event::Signal {
                    name: payload["signal"].as_str().unwrap_or_default().to_owned(),
                    data: payload["data"].clone(),
                };
                match self.apply(target, &event).await {
                    Ok(_) => Ok(Done::Quiet),
                    // A refused signal is recorded, not retried: the target has moved on.
                    Err(StoreError::Refused(refusal)) => {
                        tracing::warn!(target, %refusal, "signal refused");
                        Ok(Done::Quiet)
                    }
                    Err(error) => Err(error.to_string()),
                }
            }
            "child_completed" => {
                let parent = payload["parent"].as_i64().ok_or("no parent")?;
                let event = Event::ChildCompleted {
                    key: payload["key"].as_str().unwrap_or_default().to_owned(),
                    outcome: payload["outcome"].as_str().unwrap_or_default().to_owned(),
                };
                self.apply(parent, &event).await.map(|_| Done::Quiet).map_err(|e| e.to_string())
            }
            other => Err(format!("unknown effect {other}")),
        }
    }

    async fn start_child(&self, parent: i64, payload: &Value) -> Result<(), String> {
        let key = payload["key"].as_str().unwrap_or_default();
        // At least once: a child already started for this key is not started again.
        let existing = instances::Entity::find()
            .filter(instances::Column::ParentInstanceId.eq(parent))
            .filter(instances::Column::ParentKey.eq(key))
            .one(&self.store.db)
            .await
            .map_err(|e| e.to_string())?;
        if existing.is_some() {
            return Ok(());
        }
        let procedure = payload["procedure"].as_str().unwrap_or_default();
        let jurisdiction = payload["jurisdiction"].as_str().unwrap_or_default();
        let definition = self
            .current_definition(procedure, jurisdiction)
            .ok_or_else(|| format!("no definition of {procedure} for {jurisdiction}"))?;
        self.start(
            &definition,
            payload["input"].clone(),
            Actor::system(),
            Origin::Child { parent, key: key.to_owned() },
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Runs until the process ends.
    pub async fn run_outbox(self: Arc<Self>) {
        self.work_until_stopped(&INTERNAL, &self.outbox_changed, "outbox", || self.run_outbox_once()).await
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
