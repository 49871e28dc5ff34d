//! The timers a step's deadline needs at a given moment: the deadline itself, reminders
//! still ahead, windows counted back from the deadline, and the next escalation while
//! overdue. Recomputed after every change and diffed against what is scheduled, so
//! pausing, extending or importing a calendar moves exactly the timers that must move.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, Duration, FixedOffset, NaiveDate};

use super::run::Run;
use super::types::*;
use crate::calendar::{end_of_day, local_date, start_of_day, Period};
use crate::definition::model::{Length, Step};

/// Reminders and windows are sent at the start of the office day.
const OFFICE_HOUR: i64 = 9;

fn office_time(day: NaiveDate) -> DateTime<FixedOffset> {
    start_of_day(day) + Duration::hours(OFFICE_HOUR)
}

impl Run<'_> {
    /// A moment `period` after (day, instant): for day-based periods the end of the day
    /// reached, for hours the exact instant.
    fn after(
        &self,
        day: NaiveDate,
        instant: DateTime<FixedOffset>,
        period: Period,
    ) -> (NaiveDate, DateTime<FixedOffset>) {
        let day_end = |d: NaiveDate| (d, end_of_day(d));
        match period {
            Period::WorkingDays(n) => day_end(self.calendar.add_working_days(day, n).value),
            Period::Days(n) => day_end(day + Days::new(u64::from(n))),
            Period::Months(n) => day_end(self.calendar.add_months(day, n).value),
            Period::Years(n) => day_end(self.calendar.add_years(day, n).value),
            Period::Hours(n) => {
                let at = instant + Duration::hours(i64::from(n));
                (local_date(at), at)
            }
            Period::Through(last) => day_end(last),
        }
    }

    /// A moment `period` before the deadline, at office time for day-based periods.
    fn before(&self, last_day: NaiveDate, due: DateTime<FixedOffset>, period: Period) -> DateTime<FixedOffset> {
        match period {
            Period::WorkingDays(0) | Period::Days(0) => office_time(last_day),
            Period::WorkingDays(n) => office_time(self.calendar.working_days_before(last_day, n).value),
            Period::Days(n) => office_time(last_day - Days::new(u64::from(n))),
            Period::Months(n) => office_time(self.calendar.months_before(last_day, n)),
            Period::Years(n) => office_time(self.calendar.months_before(last_day, n.saturating_mul(12))),
            Period::Hours(n) => due - Duration::hours(i64::from(n)),
            // Reminders count back in lengths, never to an agreed day.
            Period::Through(_) => office_time(last_day),
        }
    }

    /// When the escalation with 0-based index `index` is due, or `None` when the plan has
    /// no more.
    pub(super) fn escalation_time(&self, index: u32) -> Result<Option<DateTime<FixedOffset>>, Refusal> {
        let step = self.current_step();
        let (Some(spec), Some(deadline)) =
            (step.deadline.as_ref(), self.state.step.as_ref().and_then(|s| s.deadline.as_ref()))
        else {
            return Ok(None);
        };
        let (Some(plan_name), Some(due), Some(last_day)) = (&spec.escalation, deadline.due, deadline.last_day) else {
            return Ok(None);
        };
        let plan = &self.definition.procedure.escalations[plan_name.get_ref().as_str()];
        let levels = plan.levels.len() as u32;
        if index < levels {
            let period = self.period(&plan.levels[index as usize].after)?;
            return Ok(Some(self.after(last_day, due, period).1));
        }
        let Some(repeat) = &plan.repeat_every else {
            return Ok(None);
        };
        let repeat = self.period(repeat)?;
        let last_level = self.period(&plan.levels[levels as usize - 1].after)?;
        let (mut day, mut at) = self.after(last_day, due, last_level);
        for _ in levels..=index {
            (day, at) = self.after(day, at, repeat);
        }
        Ok(Some(at))
    }

    /// Sends every escalation whose time has come.
    pub(super) fn escalate_due(&mut self) -> Result<(), Refusal> {
        let step = self.current_step();
        let Some(plan_name) = step.deadline.as_ref().and_then(|d| d.escalation.as_ref()) else {
            return Ok(());
        };
        let plan = &self.definition.procedure.escalations[plan_name.get_ref().as_str()];
        let mut previous = None;
        loop {
            let sent = self.state.step.as_ref().and_then(|s| s.deadline.as_ref()).map_or(0, |d| d.escalations_sent);
            let Some(at) = self.escalation_time(sent)? else {
                break;
            };
            // A plan whose repetition does not move forward would never end.
            if at > self.now || previous.is_some_and(|p| at <= p) {
                break;
            }
            previous = Some(at);
            let level = (sent as usize).min(plan.levels.len() - 1);
            let spec = &plan.levels[level];
            let activity = Activity::Escalate {
                level: level as u32 + 1,
                title: spec.title.clone(),
                to: spec.to.iter().map(|to| self.recipient(to.get_ref())).collect(),
                step: self.state.step_name().unwrap_or_default().to_owned(),
                deadline: self.deadline_info(),
                basis: self.deadline_info().map(|d| d.basis),
            };
            self.run_activity(activity);
            self.deadline_mut().expect("escalating a deadline").escalations_sent += 1;
        }
        Ok(())
    }

    /// The deadline-related timers the current step should have now.
    fn desired_deadline_timers(&self) -> Result<BTreeMap<String, ScheduledTimer>, Refusal> {
        let mut desired = BTreeMap::new();
        let Some(step_state) = self.state.step.as_ref() else {
            return Ok(desired);
        };
        let step = self.current_step();
        let (Some(spec), Some(deadline)) = (step.deadline.as_ref(), step_state.deadline.as_ref()) else {
            return Ok(desired);
        };
        let (Some(due), Some(last_day)) = (deadline.due, deadline.last_day) else {
            return Ok(desired); // the clock is stopped
        };
        let visit = step_state.visit;
        let mut add = |id: String, at: DateTime<FixedOffset>, kind: TimerKind| {
            desired.insert(id, ScheduledTimer { at, kind });
        };
        if deadline.overdue {
            let sent = deadline.escalations_sent;
            if let Some(at) = self.escalation_time(sent)? {
                add(format!("v{visit}.escalate.{sent}"), at, TimerKind::Escalation(sent));
            }
            return Ok(desired);
        }
        add(format!("v{visit}.deadline"), due, TimerKind::Deadline);
        for &n in &spec.remind_working_days_before {
            let at = self.before(last_day, due, Period::WorkingDays(n));
            if at > self.now {
                add(format!("v{visit}.remind.{n}"), at, TimerKind::Reminder(n));
            }
        }
        for &n in &spec.remind_hours_before {
            let at = self.before(last_day, due, Period::Hours(n));
            if at > self.now {
                add(format!("v{visit}.remind.{n}h"), at, TimerKind::Reminder(n));
            }
        }
        for timer in &step.timers {
            if let Some(length) = &timer.before_deadline {
                let at = self.before(last_day, due, self.period(length)?);
                if at > self.now {
                    let name = timer.name.get_ref();
                    add(format!("v{visit}.timer.{name}.0"), at, TimerKind::StepTimer(name.clone(), 0));
                }
            }
        }
        Ok(desired)
    }

    /// Brings the scheduled deadline timers in line with what the step needs now.
    pub(super) fn sync_deadline_timers(&mut self) -> Result<(), Refusal> {
        let desired = self.desired_deadline_timers()?;
        let step = self.current_step();
        let recurring = |kind: &TimerKind| match kind {
            TimerKind::StepTimer(name, _) => step.timers.iter().any(|t| t.name.get_ref() == name && t.every.is_some()),
            _ => false,
        };
        let Some(step_state) = self.state.step.as_mut() else {
            return Ok(());
        };
        let stale: Vec<String> = step_state
            .timers
            .iter()
            .filter(|(id, timer)| !recurring(&timer.kind) && !desired.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            step_state.timers.remove(&id);
            self.commands.push(Command::CancelTimer { id });
        }
        for (id, timer) in desired {
            if step_state.timers.get(&id) != Some(&timer) {
                self.commands.push(Command::ScheduleTimer { id: id.clone(), at: timer.at, kind: timer.kind.clone() });
                step_state.timers.insert(id, timer);
            }
        }
        Ok(())
    }

    /// Schedules the next repetition (from `repetition` on) of each recurring (`every`) timer
    /// of the step. Repetitions count from the deadline's start when the step has one (an
    /// annual report falls due on the term's anniversaries, even after a suspension), and
    /// those already past are skipped rather than sent late.
    pub(super) fn schedule_recurring_timers(&mut self, step: &Step, repetition: u32) -> Result<(), Refusal> {
        let step_state = self.state.step.as_ref().expect("running");
        let visit = step_state.visit;
        let anchor = step_state.deadline.as_ref().map_or(step_state.entered_at, |d| d.rule.start);
        for timer in &step.timers {
            let Some(every) = &timer.every else { continue };
            let mut repetition = repetition;
            let mut at = self.nth_repetition(anchor, every, repetition + 1)?;
            while at <= self.now && repetition < 10_000 {
                repetition += 1;
                at = self.nth_repetition(anchor, every, repetition + 1)?;
            }
            let name = timer.name.get_ref().clone();
            let id = format!("v{visit}.timer.{name}.{repetition}");
            let kind = TimerKind::StepTimer(name, repetition);
            self.commands.push(Command::ScheduleTimer { id: id.clone(), at, kind: kind.clone() });
            self.state.step.as_mut().expect("running").timers.insert(id, ScheduledTimer { at, kind });
        }
        Ok(())
    }

    /// The n-th multiple of `every` after `start`, at office time for day-based periods.
    fn nth_repetition(
        &self,
        start: DateTime<FixedOffset>,
        every: &Length,
        n: u32,
    ) -> Result<DateTime<FixedOffset>, Refusal> {
        let period = match self.period(every)? {
            Period::WorkingDays(k) => Period::WorkingDays(k * n),
            Period::Days(k) => Period::Days(k * n),
            Period::Months(k) => Period::Months(k * n),
            Period::Years(k) => Period::Years(k * n),
            Period::Hours(k) => return Ok(start + Duration::hours(i64::from(k * n))),
            Period::Through(day) => return Ok(office_time(day)),
        };
        let (day, _) = self.after(local_date(start), start, period);
        Ok(office_time(day))
    }
}
