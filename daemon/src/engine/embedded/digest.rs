//! The daily digest: every working day, each staff member (a directory contact) receives one
//! message listing their open tasks, with what is overdue and what falls due within the next
//! working days first.
//!
//! A schedule (`Job::Digest`, built in as `daily_digest`) fires at the configured hour every
//! day; on days off of the official calendar the run is recorded as skipped. A run queues one
//! outbox row per contact with open tasks, keyed `digest/{date}/{contact}`, so a contact
//! hears at most once per day, even when a crash repeats the run. The row holds the digest as
//! it stood at the fire time; the delivery worker renders and sends it with its retries.
//!
//! A contact's tasks are the open tasks of their organization that wait for a role they hold
//! and nobody has claimed, plus the ones they claimed themselves (through their principal).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, FixedOffset};
use serde_json::{json, Value};
use statflow_activities::email::Email;
use statflow_activities::templates::{date_label, DigestContext, DigestItem};
use statflow_activities::Failure;
use statflow_workflows::calendar::{local_date, Calendar};

use super::delivery::Channels;
use super::Embedded;
use crate::store::effects::{DigestMail, Effect};
use crate::store::records::{ContactRecord, EffectRecord, RunStatus, TaskRecord};
use crate::store::{from_millis, to_millis, StoreError};

/// What a digest run did.
pub struct DigestRun {
    /// `done`, or `skipped` on a day off or for a fire time from an earlier day.
    pub status: RunStatus,
    pub result: Value,
}

impl Embedded {
    /// Queues the digests of the fire time's day for every contact with open tasks.
    pub async fn queue_digests(
        &self,
        fire: DateTime<FixedOffset>,
        lookahead_working_days: u32,
    ) -> Result<DigestRun, StoreError> {
        let calendar = self.current_calendar();
        let day = local_date(fire);
        let now = self.clock.now();
        if local_date(now) != day {
            // Caught up after an outage: yesterday's digest would be stale news.
            let reason = "missed while the daemon was down; a digest is sent on its own day only";
            return Ok(DigestRun { status: RunStatus::Skipped, result: json!({"date": day, "reason": reason}) });
        }
        let info = calendar.day_info(day);
        if !info.workday {
            let reason = format!("not a working day ({})", info.reason);
            return Ok(DigestRun { status: RunStatus::Skipped, result: json!({"date": day, "reason": reason}) });
        }
        let contacts = self.store.contacts().await?;
        let organizations: BTreeSet<String> = contacts.iter().map(|c| c.organization.clone()).collect();
        let open = self.store.open_tasks_in(&organizations.into_iter().collect::<Vec<_>>()).await?;
        let titles = self.procedure_titles(&open).await?;
        let mut queued = Vec::new();
        for contact in &contacts {
            let mine: Vec<&TaskRecord> = open.iter().filter(|task| owes(contact, task)).collect();
            if mine.is_empty() {
                continue;
            }
            let digest = compose(contact, &mine, &titles, now, lookahead_working_days, &calendar);
            let mail = Effect::Digest(DigestMail { to: contact.email.clone(), digest });
            let key = format!("digest/{day}/{}", contact.id);
            self.store.enqueue_effect(None, &key, &mail, to_millis(now)).await?;
            queued.push(json!({"contact": contact.id, "email": contact.email, "tasks": mine.len()}));
        }
        if !queued.is_empty() {
            self.deliveries_changed.notify_one();
        }
        Ok(DigestRun { status: RunStatus::Done, result: json!({"date": day, "digests": queued}) })
    }

    /// The procedure title of each task's instance, by instance id.
    async fn procedure_titles(&self, open: &[TaskRecord]) -> Result<HashMap<i64, String>, StoreError> {
        let ids: Vec<i64> = open.iter().map(|t| t.instance_id).collect::<BTreeSet<_>>().into_iter().collect();
        Ok(self
            .store
            .instance_origins(&ids)
            .await?
            .into_iter()
            .map(|(id, origin)| {
                let title = self
                    .definitions
                    .get(&origin.definition_version)
                    .map_or(origin.procedure, |d| d.procedure.title.clone());
                (id, title)
            })
            .collect())
    }

    /// Sends one queued digest; returns what the instance-less row records as sent.
    pub(super) async fn send_digest(
        &self,
        channels: &Channels,
        row: &EffectRecord,
        mut payload: DigestMail,
    ) -> Result<Value, Failure> {
        let digest = &mut payload.digest;
        digest.inbox = format!("{}{}", channels.base_url, digest.inbox);
        for item in digest.overdue.iter_mut().chain(&mut digest.due_soon).chain(&mut digest.other) {
            item.link = format!("{}{}", channels.base_url, item.link);
        }
        let content = channels.templates.render("digest", digest).map_err(|e| Failure::permanent(e.to_string()))?;
        let to = [payload.to];
        let message_id = channels.mailer.send(&Email { key: &row.key, to: &to, content: &content }).await?;
        Ok(json!({"message_id": message_id, "to": to}))
    }
}

/// Whether `contact` owes `task`: it waits in their organization for a role they hold and
/// nobody has claimed it, or they claimed it.
fn owes(contact: &ContactRecord, task: &TaskRecord) -> bool {
    if task.organization.as_deref() != Some(contact.organization.as_str()) {
        return false;
    }
    match &task.assignee {
        Some(assignee) => contact.principal.as_ref() == Some(assignee),
        None => contact.holds(&task.role),
    }
}

/// One contact's digest at `now`, its tasks sorted into overdue, due soon and the rest.
fn compose(
    contact: &ContactRecord,
    tasks: &[&TaskRecord],
    titles: &HashMap<i64, String>,
    now: DateTime<FixedOffset>,
    lookahead_working_days: u32,
    calendar: &Calendar,
) -> DigestContext {
    let mut digest = DigestContext {
        recipient: contact.name.clone(),
        date: date_label(local_date(now)),
        lookahead_working_days,
        total: tasks.len(),
        overdue: Vec::new(),
        due_soon: Vec::new(),
        other: Vec::new(),
        inbox: "/inbox".into(),
    };
    for task in tasks {
        // A working-day limit is due at the end of its last day, i.e. at 00:00 of the next.
        let last_day = task.due_at.map(|due| local_date(from_millis(due) - Duration::milliseconds(1)));
        let remaining = last_day.map(|day| calendar.remaining_working_days(now, day));
        let overdue = task.overdue || task.due_at.is_some_and(|due| due <= to_millis(now));
        let item = DigestItem {
            instance: task.instance_id,
            procedure_title: titles.get(&task.instance_id).cloned().unwrap_or_default(),
            task_title: task.title.clone(),
            due: last_day.map(|day| format!("{}24:00", date_label(day))),
            remaining_working_days: remaining.filter(|_| !overdue).map(|r| r.max(0)),
            working_days_overdue: remaining.filter(|_| overdue).map(|r| (-r).max(0)),
            provisional: last_day.is_some_and(|day| !calendar.is_certain(day.year())),
            claimed: task.assignee.is_some(),
            link: format!("/instances/{}", task.instance_id),
        };
        match remaining {
            _ if overdue => digest.overdue.push(item),
            Some(days) if days <= i64::from(lookahead_working_days) => digest.due_soon.push(item),
            _ => digest.other.push(item),
        }
    }
    digest
}
