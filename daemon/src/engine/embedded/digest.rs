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

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate};
use serde_json::{json, Value};
use statflow_activities::email::Email;
use statflow_activities::templates::{date_label, DigestContext, DigestItem};
use statflow_activities::Failure;
use statflow_workflows::calendar::{local_date, start_of_day, Calendar};

use super::delivery::Channels;
use super::Embedded;
use crate::store::effects::{DigestMail, Effect};
use crate::store::records::{ContactRecord, EffectRecord, RunStatus, TaskRecord};
use crate::store::tasks::{DigestBounds, DigestList, OwedTasks};
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
        let mut by_organization: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, contact) in contacts.iter().enumerate() {
            by_organization.entry(contact.organization.as_str()).or_default().push(i);
        }
        let organizations: Vec<String> = by_organization.keys().map(|o| (*o).to_owned()).collect();
        // The open tasks are counted inside the database, grouped by who owes them and by
        // list; only the first tasks of each group, the most a list can show, are read.
        let bounds = digest_bounds(now, lookahead_working_days, &calendar);
        let mut lists: Vec<Lists> = contacts.iter().map(|_| Lists::default()).collect();
        for owed in self.store.count_owed_tasks(&organizations, bounds).await? {
            let owing: Vec<usize> = by_organization
                .get(owed.organization.as_str())
                .into_iter()
                .flatten()
                .copied()
                .filter(|&i| owes(&contacts[i], &owed))
                .collect();
            if owing.is_empty() {
                continue;
            }
            let first = self.store.first_owed_tasks(&owed, bounds, LISTED_PER_LIST as u64).await?;
            // Placed once, whoever of the organization's contacts owes them.
            let placed: Vec<(&TaskRecord, Placed)> =
                first.iter().map(|task| (task, place(task, now, &calendar))).collect();
            for &i in &owing {
                let list = lists[i].of(owed.list);
                list.count(owed.count);
                for (task, at) in &placed {
                    list.offer(at.order, || item(task, at, &calendar));
                }
            }
        }
        let lists: Vec<Lists> = lists.into_iter().map(Lists::trimmed).collect();
        let listed: BTreeSet<i64> = lists.iter().flat_map(Lists::instances).collect();
        let titles = self.procedure_titles(&listed.into_iter().collect::<Vec<_>>()).await?;
        let mut queued = Vec::new();
        for (contact, lists) in contacts.iter().zip(lists) {
            let total = lists.total();
            if total == 0 {
                continue;
            }
            let digest = lists.into_digest(contact, &titles, now, lookahead_working_days);
            let mail = Effect::Digest(DigestMail { to: contact.email.clone(), digest });
            let key = format!("digest/{day}/{}", contact.id);
            self.store.enqueue_effect(None, &key, &mail, to_millis(now)).await?;
            queued.push(json!({"contact": contact.id, "email": contact.email, "tasks": total}));
        }
        if !queued.is_empty() {
            self.deliveries_changed.notify_one();
        }
        Ok(DigestRun { status: RunStatus::Done, result: json!({"date": day, "digests": queued}) })
    }

    /// The procedure title of each of the instances `ids`, by id.
    async fn procedure_titles(&self, ids: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        Ok(self
            .store
            .instance_origins(ids)
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
        digest.complete_totals();
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

/// Whether `contact` owes the tasks `owed` counts: they wait in their organization for a
/// role they hold and nobody has claimed them, or they claimed them.
fn owes(contact: &ContactRecord, owed: &OwedTasks) -> bool {
    if owed.organization != contact.organization {
        return false;
    }
    match &owed.assignee {
        Some(assignee) => contact.principal.as_ref() == Some(assignee),
        None => contact.holds(&owed.role),
    }
}

/// The instants that sort open tasks into a digest's lists at `now`. A task is due soon when
/// the last day of its limit is at most `lookahead_working_days` working days away; the
/// later that day, the more working days, so the lists part at the end of one day: the last
/// within the lookahead (days off included, so a holiday stretches the window).
fn digest_bounds(now: DateTime<FixedOffset>, lookahead_working_days: u32, calendar: &Calendar) -> DigestBounds {
    let within = |day: NaiveDate| calendar.remaining_working_days(now, day) <= i64::from(lookahead_working_days);
    let mut last = local_date(now);
    // The lookahead is at most a few weeks of working days; a year bounds the walk.
    for _ in 0..366 {
        match last.succ_opt() {
            Some(next) if within(next) => last = next,
            _ => break,
        }
    }
    let after = last.succ_opt().unwrap_or(last);
    DigestBounds { now: to_millis(now), due_soon_until: to_millis(start_of_day(after)) }
}

/// How many tasks each list of a digest shows; the rest are counted, and left to the inbox.
pub const LISTED_PER_LIST: usize = 50;

/// The order tasks are listed in: earliest deadline first (tasks without one before them,
/// as the inbox sorts), then by instance.
type Order = (bool, Option<i64>, i64);

/// One list of a digest as its groups of owed tasks are read: every task counted, the first
/// [`LISTED_PER_LIST`] in [`Order`] of those offered kept.
#[derive(Default)]
struct List {
    total: usize,
    kept: Vec<(Order, DigestItem)>,
    /// Once the list is full, the order of its last task: a task after it is not kept, and
    /// its item never written out.
    last_listed: Option<Order>,
}

impl List {
    fn count(&mut self, tasks: u64) {
        self.total += tasks as usize;
    }

    /// Keeps the task of `order` if it is among the first so far.
    fn offer(&mut self, order: Order, item: impl FnOnce() -> DigestItem) {
        if self.last_listed.is_some_and(|last| order >= last) {
            return;
        }
        self.kept.push((order, item()));
        // Trimmed now and then rather than on every task: sorting twice the list's length
        // keeps the pass linear.
        if self.kept.len() >= 2 * LISTED_PER_LIST {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.kept.sort_by_key(|(order, _)| *order);
        self.kept.truncate(LISTED_PER_LIST);
        if self.kept.len() == LISTED_PER_LIST {
            self.last_listed = self.kept.last().map(|(order, _)| *order);
        }
    }

    fn items(self, titles: &HashMap<i64, String>) -> Vec<DigestItem> {
        let mut items: Vec<DigestItem> = self.kept.into_iter().map(|(_, item)| item).collect();
        for item in &mut items {
            item.procedure_title = titles.get(&item.instance).cloned().unwrap_or_default();
        }
        items
    }
}

/// One contact's three lists.
#[derive(Default)]
struct Lists {
    overdue: List,
    due_soon: List,
    other: List,
}

impl Lists {
    fn of(&mut self, list: DigestList) -> &mut List {
        match list {
            DigestList::Overdue => &mut self.overdue,
            DigestList::DueSoon => &mut self.due_soon,
            DigestList::Other => &mut self.other,
        }
    }

    fn trimmed(mut self) -> Lists {
        for list in [&mut self.overdue, &mut self.due_soon, &mut self.other] {
            list.trim();
        }
        self
    }

    fn total(&self) -> usize {
        self.overdue.total + self.due_soon.total + self.other.total
    }

    /// The instances of the tasks listed.
    fn instances(&self) -> impl Iterator<Item = i64> + '_ {
        [&self.overdue, &self.due_soon, &self.other].into_iter().flat_map(|l| l.kept.iter().map(|(_, i)| i.instance))
    }

    fn into_digest(
        self,
        contact: &ContactRecord,
        titles: &HashMap<i64, String>,
        now: DateTime<FixedOffset>,
        lookahead_working_days: u32,
    ) -> DigestContext {
        DigestContext {
            recipient: contact.name.clone(),
            date: date_label(local_date(now)),
            lookahead_working_days,
            total: self.total(),
            overdue_total: self.overdue.total,
            due_soon_total: self.due_soon.total,
            other_total: self.other.total,
            overdue: self.overdue.items(titles),
            due_soon: self.due_soon.items(titles),
            other: self.other.items(titles),
            inbox: "/inbox".into(),
        }
    }
}

/// Where a task stands at `now`; its item is written out only if its list keeps it.
struct Placed {
    order: Order,
    /// The last day of its limit.
    last_day: Option<NaiveDate>,
    /// Working days left until then (negative once past).
    remaining: Option<i64>,
    overdue: bool,
}

fn place(task: &TaskRecord, now: DateTime<FixedOffset>, calendar: &Calendar) -> Placed {
    // A working-day limit is due at the end of its last day, i.e. at 00:00 of the next.
    let last_day = task.due_at.map(|due| local_date(from_millis(due) - Duration::milliseconds(1)));
    let remaining = last_day.map(|day| calendar.remaining_working_days(now, day));
    let overdue = task.overdue || task.due_at.is_some_and(|due| due <= to_millis(now));
    Placed { order: (task.due_at.is_some(), task.due_at, task.instance_id), last_day, remaining, overdue }
}

/// How `task` reads in a digest (its procedure's title is filled in once the listed tasks
/// are known).
fn item(task: &TaskRecord, placed: &Placed, calendar: &Calendar) -> DigestItem {
    let Placed { last_day, remaining, overdue, .. } = *placed;
    DigestItem {
        instance: task.instance_id,
        procedure_title: String::new(),
        task_title: task.title.clone(),
        due: last_day.map(|day| format!("{}24:00", date_label(day))),
        remaining_working_days: remaining.filter(|_| !overdue).map(|r| r.max(0)),
        working_days_overdue: remaining.filter(|_| overdue).map(|r| (-r).max(0)),
        provisional: last_day.is_some_and(|day| !calendar.is_certain(day.year())),
        claimed: task.assignee.is_some(),
        link: format!("/instances/{}", task.instance_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_item(instance: i64) -> DigestItem {
        DigestItem {
            instance,
            procedure_title: String::new(),
            task_title: "登记受理".into(),
            due: None,
            remaining_working_days: None,
            working_days_overdue: None,
            provisional: false,
            claimed: false,
            link: format!("/instances/{instance}"),
        }
    }

    #[test]
    fn a_list_counts_every_task_and_keeps_the_earliest_due_in_order() {
        let mut list = List::default();
        let written = std::cell::Cell::new(0);
        // Instances 1..=500 in a scrambled order; instance i is due at 1000 - i, and every
        // tenth has no deadline. They come in groups of 100 (a role's, a claimant's…), each
        // counted whole.
        for step in 0..500 {
            if step % 100 == 0 {
                list.count(100);
            }
            let instance = (step * 7919) % 500 + 1;
            let due = (instance % 10 != 0).then_some(1000 - instance);
            list.offer((due.is_some(), due, instance), || {
                written.set(written.get() + 1);
                digest_item(instance)
            });
        }
        list.trim();
        assert_eq!(list.total, 500);
        assert!(written.get() < 500, "tasks after a full list's last are not written out: {}", written.get());
        let titles = HashMap::from([(10, "公共数据登记".to_owned())]);
        let items = list.items(&titles);
        assert_eq!(items.len(), LISTED_PER_LIST);
        let undated: Vec<i64> = (1..=500).filter(|i| i % 10 == 0).collect();
        let mut dated: Vec<i64> = (1..=500).filter(|i| i % 10 != 0).collect();
        dated.sort_by_key(|i| 1000 - i);
        let expected: Vec<i64> = undated.into_iter().chain(dated).take(LISTED_PER_LIST).collect();
        assert_eq!(items.iter().map(|i| i.instance).collect::<Vec<_>>(), expected);
        assert_eq!(items[0].procedure_title, "公共数据登记", "titles are filled in for the listed tasks");
    }

    /// The lists by the text: overdue once due (or flagged), due soon while the last day is
    /// at most the lookahead's working days away, other beyond or without a deadline.
    fn list_by_definition(
        task: &TaskRecord,
        now: DateTime<FixedOffset>,
        lookahead: u32,
        calendar: &Calendar,
    ) -> DigestList {
        let placed = place(task, now, calendar);
        match placed.remaining {
            _ if placed.overdue => DigestList::Overdue,
            Some(days) if days <= i64::from(lookahead) => DigestList::DueSoon,
            _ => DigestList::Other,
        }
    }

    /// The list the bounds put a task in, as the store's grouped count does.
    fn list_by_bounds(due: Option<i64>, flagged: bool, bounds: DigestBounds) -> DigestList {
        match due {
            _ if flagged => DigestList::Overdue,
            Some(due) if due <= bounds.now => DigestList::Overdue,
            Some(due) if due <= bounds.due_soon_until => DigestList::DueSoon,
            _ => DigestList::Other,
        }
    }

    fn task() -> TaskRecord {
        TaskRecord {
            id: "1:acceptance".into(),
            instance_id: 1,
            task_id: "acceptance".into(),
            step: "acceptance".into(),
            title: "形式审查并受理登记申请".into(),
            role: "registration_agency".into(),
            organization: Some("taian-registry".into()),
            actions: vec!["accept".into()],
            due_at: None,
            overdue: false,
            status: crate::store::records::TaskStatus::Open,
            assignee: None,
            created_at: 0,
            closed_at: None,
        }
    }

    #[test]
    fn the_bounds_put_every_deadline_in_the_list_its_working_days_call_for() {
        let calendar = Calendar::official();
        // Around the Labour Day holiday of 2026 (1–5 May off, Saturday 9 May worked) and an
        // ordinary stretch, seen early and late in the day, with short and long lookaheads.
        let mut due_soon_seen = 0;
        for now in [
            "2026-04-28T08:00:00+08:00",
            "2026-04-30T23:59:59+08:00",
            "2026-05-08T12:00:00+08:00",
            "2026-06-15T00:00:00+08:00",
        ] {
            let now = DateTime::parse_from_rfc3339(now).unwrap();
            for lookahead in [1, 2, 5, 20] {
                let bounds = digest_bounds(now, lookahead, &calendar);
                // Every hour from three days back to sixty ahead, each instant and the ones
                // just before and after it (midnight among them, where a last day ends).
                let start = to_millis(now) - 3 * 86_400_000;
                let dues = (0..63 * 24).map(|h| start + h * 3_600_000).flat_map(|t| [t - 1, t, t + 1]);
                for due in dues.map(Some).chain([None]) {
                    for flagged in [false, true] {
                        let task = TaskRecord { due_at: due, overdue: flagged, ..task() };
                        let expected = list_by_definition(&task, now, lookahead, &calendar);
                        assert_eq!(
                            list_by_bounds(due, flagged, bounds),
                            expected,
                            "due {:?} at {now} with a lookahead of {lookahead}",
                            due.map(from_millis)
                        );
                        due_soon_seen += usize::from(expected == DigestList::DueSoon);
                    }
                }
            }
        }
        assert!(due_soon_seen > 1000, "the due-soon list was exercised: {due_soon_seen}");
    }
}
