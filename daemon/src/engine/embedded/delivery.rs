//! The delivery worker: sends the notices and escalations the outbox holds, by email (SMTP or
//! the mail spool) and, for the events the webhook is configured for (by default the
//! escalations to a regulator), also to the webhook; and the staff's daily digests (see
//! [`super::digest`]), which belong to no instance.
//!
//! - Sent: the instance hears `ActivityCompleted` with the Message-ID and addresses.
//! - Transient failure (server down, 4xx SMTP reply): retried with exponential backoff and
//!   jitter, up to [`MAX_ATTEMPTS`].
//! - Permanent failure (bad or unknown address, refused): recorded on the outbox row, told to
//!   the instance as `ActivityFailed` (shown with the instance), written to the audit log and
//!   listed at `/v1/admin/deliveries`. A notice never holds up the procedure.
//!
//! Each outbox row is one message with a stable key: a crash between sending and recording
//! sends it again with the same Message-ID.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use serde_json::{json, Value};
use statflow_activities::email::{Email, Mailer};
use statflow_activities::templates::{date_label, DeadlineView, MessageContext, Templates};
use statflow_activities::webhook::{self, WebhookConfig, WebhookEvent};
use statflow_activities::{Activity, Failure};
use statflow_workflows::engine::{DeadlineInfo, Event, Recipient};
use tokio::sync::OnceCell;

use super::outbox::backoff;
use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};
use crate::store::directory::Address;
use crate::store::effects::{Effect, EffectKind};
use crate::store::records::{EffectRecord, InstanceRecord};
use crate::store::{to_millis, NewAuditEntry, Store, StoreError};

/// After this many failed attempts a delivery is given up and reported.
pub const MAX_ATTEMPTS: i32 = 10;

/// How many ready deliveries one pass takes.
const BATCH: u64 = 256;

/// How many one pass takes when several nodes share the work: a pass is acknowledged as a
/// whole, so a node that dies in the middle of one has the node taking over send its
/// messages again (same Message-IDs); a smaller pass repeats fewer of them.
pub const SHARED_BATCH: u64 = 16;

/// The channels messages go out on.
pub struct Channels {
    pub mailer: Mailer,
    pub templates: Templates,
    pub webhook: Option<WebhookConfig>,
    /// Links in messages point under this address.
    pub base_url: String,
}

impl Embedded {
    /// Delivers the ready notices; returns how many were attempted. The messages of a pass
    /// are made durable together (the spool's one flush), then the deliveries that reported
    /// to nobody are marked done in one write.
    pub async fn deliver_once(&self, channels: &Channels) -> Result<usize, StoreError> {
        let now = to_millis(self.clock.now());
        let batch = if self.shared_work.lease_held().is_some() { SHARED_BATCH } else { BATCH };
        let (count, groups) = self.store.ready_effects(&self.delivered_kinds(), now, batch).await?;
        let mut ids: Vec<i64> = groups.iter().flatten().filter_map(|row| row.instance_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let pass = Pass { instances: self.store.instances_by_id(&ids).await?, addresses: Default::default() };
        let pass = &pass;
        let sent = join_all(groups.into_iter().map(|rows| async move {
            let mut sent = Vec::with_capacity(rows.len());
            for row in rows {
                if !self.shared_work.here() {
                    break;
                }
                let outcome = self.deliver(channels, pass, &row).await;
                sent.push((row, outcome));
            }
            sent
        }))
        .await;
        let mut sent: Vec<(EffectRecord, Result<Value, Failure>)> = sent.into_iter().flatten().collect();
        if let Err(failure) = channels.mailer.flush().await {
            // Not durable, so not sent: every message of the pass goes again.
            for (_, outcome) in sent.iter_mut().filter(|(_, outcome)| outcome.is_ok()) {
                *outcome = Err(failure.clone());
            }
        }
        if !self.shared_work.here() {
            // The lease ran out during the pass: the node holding it now sends these again,
            // with the same Message-IDs (a redelivery of a send never acknowledged).
            tracing::warn!(
                deliveries = sent.len(),
                "the work lease ran out during a delivery pass; leaving it to the holder"
            );
            return Ok(count);
        }
        let recorded = join_all(sent.iter().map(|(row, outcome)| self.record(row, outcome.clone(), now))).await;
        let mut done = Vec::with_capacity(count);
        for ((row, _), quiet) in sent.iter().zip(recorded) {
            if quiet? {
                crate::metrics::delivery(row.kind, "sent");
                done.push(row.id);
            }
        }
        self.store.finish_effects(&done, to_millis(self.clock.now())).await?;
        Ok(count)
    }

    /// The kinds this worker sends: all, but an instance's own messages under a host (its
    /// workflow sends them, through [`Embedded::deliver_hosted`]).
    fn delivered_kinds(&self) -> Vec<EffectKind> {
        let hosted = self.host().is_some();
        EffectKind::DELIVERED.into_iter().filter(|kind| !(hosted && kind.of_an_instance())).collect()
    }

    /// Sends one message of an instance a host's workflow runs (the Temporal engine's
    /// `statflow.deliver` activity), on its `attempt`, counted from 1. `Err` is a transient
    /// failure to retry; `Ok(Err(error))` a delivery given up (recorded as the delivery
    /// worker records it), which the instance hears.
    pub async fn deliver_hosted(
        &self,
        channels: &Channels,
        row: &EffectRecord,
        attempt: i32,
    ) -> Result<Result<Value, String>, String> {
        let ids: Vec<i64> = row.instance_id.into_iter().collect();
        let instances = self.store.instances_by_id(&ids).await.map_err(|e| e.to_string())?;
        let pass = Pass { instances, addresses: Default::default() };
        let mut outcome = self.deliver(channels, &pass, row).await;
        if outcome.is_ok() {
            if let Err(failure) = channels.mailer.flush().await {
                outcome = Err(failure);
            }
        }
        let now = to_millis(self.clock.now());
        match outcome {
            Ok(result) => {
                self.store.finish_effects(&[row.id], now).await.map_err(|e| e.to_string())?;
                crate::metrics::delivery(row.kind, "sent");
                Ok(Ok(result))
            }
            Err(failure) if failure.permanent || attempt >= MAX_ATTEMPTS => {
                Ok(Err(self.give_up(row, failure, attempt).await.map_err(|e| e.to_string())?))
            }
            Err(failure) => {
                tracing::warn!(instance = row.instance_id, key = %row.key, error = %failure.reason, attempt, "delivery will be retried");
                crate::metrics::delivery(row.kind, "retry");
                self.store.retry_effect(row.id, attempt, now, &failure.reason).await.ok();
                Err(failure.reason)
            }
        }
    }

    /// Sends one row; `Ok` carries what the instance hears as the activity's result.
    async fn deliver(&self, channels: &Channels, pass: &Pass, row: &EffectRecord) -> Result<Value, Failure> {
        match row.effect().map_err(|e| Failure::permanent(e.to_string()))? {
            Effect::Digest(digest) => self.send_digest(channels, row, digest).await,
            Effect::Anchor(anchor) => self.send_anchor(channels, row, anchor).await,
            Effect::Webhook(event) => {
                let config = channels.webhook.as_ref().ok_or_else(|| Failure::permanent("no webhook is configured"))?;
                let status = webhook::post(config, &row.key, event.to_string()).await?;
                Ok(json!({"webhook": config.url, "status": status}))
            }
            Effect::Activity(activity) | Effect::TaskOpened(activity) => {
                self.send_email(channels, pass, row, &activity).await
            }
            other => Err(Failure::permanent(format!("the delivery worker does not send {} effects", other.kind()))),
        }
    }

    async fn send_email(
        &self,
        channels: &Channels,
        pass: &Pass,
        row: &EffectRecord,
        activity: &Activity,
    ) -> Result<Value, Failure> {
        let (to, template, step, deadline, basis, reason, escalation) = match activity {
            Activity::Notify { to, template, step, deadline, basis, reason } => {
                (to, template.as_str(), step, deadline, basis, reason, None)
            }
            // Level 0: a definition's own report upwards (e.g. a terminated authorization), told
            // with the notice template it names; not an overdue escalation.
            Activity::Escalate { level: 0, title, to, step, deadline, basis } => {
                (to, title.as_str(), step, deadline, basis, &None, None)
            }
            Activity::Escalate { level, title, to, step, deadline, basis } => {
                (to, "escalation", step, deadline, basis, &None, Some((*level, title.clone())))
            }
            _ => return Err(Failure::permanent("not a notice")),
        };
        let instance_id = row.instance_id.ok_or_else(|| Failure::permanent("the notice names no instance"))?;
        let instance = pass
            .instances
            .get(&instance_id)
            .ok_or_else(|| Failure::permanent(format!("instance {instance_id} does not exist")))?;
        let definition = self.definitions.get(&instance.definition_version);
        let headline = match (&escalation, template) {
            (Some((level, _)), _) => format!("已超过法定办理期限(第{level}级督办)"),
            (None, "deadline_reminder") => "办理期限即将届满".to_owned(),
            (None, name) => Templates::headline(name),
        };
        let link = format!("{}/instances/{}", channels.base_url, instance.id);
        let event = match (&escalation, template) {
            (Some(_), _) => WebhookEvent::Escalation,
            (None, "deadline_reminder") => WebhookEvent::Reminder,
            (None, _) => WebhookEvent::Notice,
        };
        let to_regulator = to.iter().any(|r| r.role == "regulator");
        // A task's notice is for people; systems follow tasks through the API.
        let for_systems = row.kind != EffectKind::TaskNotice;
        if for_systems && channels.webhook.as_ref().is_some_and(|webhook| webhook.wants(event, to_regulator)) {
            // The agency's or the regulator's own system hears of it too, as its own delivery
            // with its own retries, queued before the email so a failing email cannot hold it
            // back.
            let event = json!({
                "event": event_name(event),
                "template": template,
                "key": row.key,
                "instance": instance.id,
                "procedure": instance.procedure,
                "jurisdiction": instance.jurisdiction,
                "step": step,
                "level": escalation.as_ref().map(|(level, _)| level),
                "title": escalation.as_ref().map_or(&headline, |(_, title)| title),
                "deadline": deadline,
                "basis": basis,
                "link": link,
                "to": to,
            });
            self.store
                .enqueue_effect(
                    row.instance_id,
                    &format!("{}/webhook", row.key),
                    &Effect::Webhook(event),
                    to_millis(self.clock.now()),
                )
                .await
                .map_err(|e| Failure::transient(e.to_string()))?;
            self.deliveries_changed.notify_one();
        }
        let mut addresses = Vec::new();
        for recipient in to {
            addresses.extend(pass.resolve(&self.store, recipient).await.map_err(Failure::permanent)?);
        }
        let context = MessageContext {
            procedure: instance.procedure.clone(),
            procedure_title: definition
                .as_ref()
                .map_or_else(|| instance.procedure.clone(), |d| d.procedure.title.clone()),
            jurisdiction: instance.jurisdiction.clone(),
            instance: instance.id,
            step: step.clone(),
            step_title: definition
                .as_ref()
                .and_then(|d| d.step(step))
                .map_or_else(|| step.clone(), |s| s.title.clone()),
            headline,
            title: escalation.as_ref().map(|(_, title)| title.clone()),
            level: escalation.as_ref().map(|(level, _)| *level),
            deadline: deadline.as_ref().map(deadline_view),
            basis: basis.clone(),
            reason: reason.clone(),
            link,
            recipient: addresses.iter().map(|a| a.label.as_str()).collect::<Vec<_>>().join("、"),
            source_notices: instance.state().map_err(|e| Failure::permanent(e.to_string()))?.source_notices,
        };
        let content = channels.templates.render(template, &context).map_err(|e| Failure::permanent(e.to_string()))?;
        let emails: Vec<String> = addresses.iter().map(|a| a.email.clone()).collect();
        let message_id = channels.mailer.send(&Email { key: &row.key, to: &emails, content: &content }).await?;
        Ok(json!({"message_id": message_id, "to": emails}))
    }

    /// Records how a delivery went. True when it was sent and the row only remains to be
    /// marked done (with the rest of the pass).
    async fn record(&self, row: &EffectRecord, outcome: Result<Value, Failure>, now: i64) -> Result<bool, StoreError> {
        let key = row.activity_key();
        // The instance that waits for this delivery's outcome: none for its webhook copy, a
        // digest, or a task's notice (the engine's own, not the definition's).
        let reports_to = row.instance_id.filter(|_| row.kind.reports());
        match outcome {
            Ok(result) => {
                if let Some(instance) = reports_to {
                    self.apply(instance, &Event::ActivityCompleted { key, result }).await.ok();
                }
                return Ok(true);
            }
            Err(failure) if failure.permanent || row.attempts + 1 >= MAX_ATTEMPTS => {
                let error = self.give_up(row, failure, row.attempts + 1).await?;
                if let Some(instance) = reports_to {
                    self.apply(instance, &Event::ActivityFailed { key, error }).await.ok();
                }
            }
            Err(failure) => {
                let delay = backoff(row.attempts, &row.key);
                tracing::warn!(instance = row.instance_id, key = %row.key, error = %failure.reason, delay_ms = delay, "delivery will be retried");
                crate::metrics::delivery(row.kind, "retry");
                self.store.retry_effect(row.id, row.attempts + 1, now + delay, &failure.reason).await?;
            }
        }
        Ok(false)
    }

    /// Gives a delivery up after `attempts`: recorded on its row, logged and written to the
    /// audit log. Answers with the error its instance hears.
    async fn give_up(&self, row: &EffectRecord, failure: Failure, attempts: i32) -> Result<String, StoreError> {
        let error = if failure.permanent {
            failure.reason
        } else {
            format!("gave up after {attempts} attempts: {}", failure.reason)
        };
        tracing::error!(instance = row.instance_id, key = %row.key, %error, "delivery failed");
        crate::metrics::delivery(row.kind, "failed");
        let target = row.instance_id.map_or_else(|| row.key.clone(), |id| format!("instance/{id}"));
        let audit = NewAuditEntry::new("system", "delivery_failed", &target, &json!({"key": row.key, "error": error}));
        self.store.give_up_effect(row.id, error.clone(), to_millis(self.clock.now()), audit).await?;
        Ok(error)
    }

    /// The delivery worker's loop, until shutdown.
    pub(super) async fn run_delivery(
        self: Arc<Self>,
        channels: Arc<Channels>,
        heartbeat: Heartbeat,
        shutdown: Shutdown,
    ) {
        let kinds = self.delivered_kinds();
        self.work_until_stopped(&kinds, &self.deliveries_changed, "delivery", heartbeat, shutdown, || {
            self.deliver_once(&channels)
        })
        .await
    }
}

/// What one pass reads once for all its deliveries: their instances (one read), and each
/// recipient's addresses (a burst of notices goes to a handful of organizations).
struct Pass {
    instances: HashMap<i64, InstanceRecord>,
    addresses: Mutex<HashMap<RecipientKey, Arc<AddressLookup>>>,
}

/// A recipient's role and organization: what its addresses depend on.
type RecipientKey = (String, Option<String>);

/// A recipient's addresses, looked up by the first delivery that needs them and awaited by
/// the others (or why they could not be).
type AddressLookup = OnceCell<Result<Vec<Address>, String>>;

impl Pass {
    /// One lookup per recipient and pass: the pass's deliveries start side by side, so the
    /// first of them to need a recipient looks it up and the others wait for its answer
    /// (each looking it up itself cost a pass of 256 notices to one office 256 lookups).
    async fn resolve(&self, store: &Store, recipient: &Recipient) -> Result<Vec<Address>, String> {
        let key = (recipient.role.clone(), recipient.organization.clone());
        let cell = self.addresses.lock().expect("not poisoned").entry(key).or_default().clone();
        cell.get_or_init(|| store.resolve(recipient)).await.clone()
    }
}

/// How a webhook event names its kind.
fn event_name(event: WebhookEvent) -> &'static str {
    match event {
        WebhookEvent::Notice => "notice",
        WebhookEvent::Reminder => "reminder",
        WebhookEvent::Escalation | WebhookEvent::RegulatorEscalation => "escalation",
    }
}

fn deadline_view(info: &DeadlineInfo) -> DeadlineView {
    let due = match (info.last_day, info.due) {
        (Some(day), _) => format!("{}24:00", date_label(day)),
        (None, Some(due)) => due.format("%Y-%m-%d %H:%M").to_string(),
        (None, None) => "未定".to_owned(),
    };
    DeadlineView {
        due,
        remaining_working_days: info.remaining_working_days,
        provisional: info.provisional,
        paused: info.paused,
        overdue: info.overdue,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use chrono::DateTime;
    use serde_json::json;
    use statflow_activities::email::Mailer;
    use statflow_activities::templates::Templates;
    use statflow_workflows::engine::Actor;

    use super::Channels;
    use crate::engine::embedded::clock::Clock;
    use crate::engine::embedded::Embedded;
    use crate::store::directory::DirectoryFile;
    use crate::store::transition::Origin;
    use crate::store::{sql_observer, Store};

    const DIRECTORY: &str = include_str!("../../../../tests/fixtures/taian-directory.toml");

    /// How many statements reading the directory one delivery pass runs for the notices of
    /// `instances` registrations just started (each notifies the same registration agency).
    async fn directory_reads_of_a_pass(instances: usize) -> usize {
        let dir = std::env::temp_dir().join(format!("statflow-delivery-{}-{instances}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("delivery.db").display());
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let observer = sql_observer(move |sql| {
            if sql.contains(r#""organizations""#) || sql.contains(r#""contacts""#) {
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let store = Store::open_observed(&url, observer).await.unwrap();
        let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").unwrap();
        store.load_directory(&DirectoryFile::parse(DIRECTORY, "directory.toml").unwrap(), 0).await.unwrap();
        let engine = Embedded::load(store, Clock::Virtual(Mutex::new(start))).await.unwrap();
        let definition = engine.definitions.current("registration", "taian").unwrap();
        let clerk = Actor {
            id: "clerk".into(),
            roles: vec!["registrant".into()],
            organizations: vec!["taian-market".into()],
            administrator: false,
            request: None,
        };
        let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
        for _ in 0..instances {
            engine.start_with(&definition, input.clone(), clerk.clone(), Origin::Direct).await.unwrap();
        }
        let channels = Channels {
            mailer: Mailer::spool(dir.join("spool"), "statflow@example.org").unwrap(),
            templates: Templates::new(None),
            webhook: None,
            base_url: "http://127.0.0.1".into(),
        };
        reads.store(0, Ordering::Relaxed);
        let delivered = engine.deliver_once(&channels).await.unwrap();
        let spooled = std::fs::read_dir(dir.join("spool")).unwrap().count();
        std::fs::remove_dir_all(&dir).ok();
        assert!(delivered >= instances, "each registration's first task has its notice");
        assert_eq!(spooled, delivered, "every notice of the pass is in the spool");
        reads.load(Ordering::Relaxed)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_looks_each_recipient_up_once_however_many_notices_it_has() {
        let one = directory_reads_of_a_pass(1).await;
        let many = directory_reads_of_a_pass(40).await;
        assert!(one > 0, "the recipient is looked up in the directory");
        assert_eq!(many, one, "forty notices to one agency read the directory as often as one does");
    }
}
