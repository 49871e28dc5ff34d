//! A statutory time limit as a rule (period, start, pauses, extension) rather than a fixed
//! instant, so it can be recomputed when the clock is stopped or resumed, when the limit is
//! extended, and when a new year's notice is imported.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{end_of_day, local_date, Calendar, Computed};

/// The length of a time limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    WorkingDays(u32),
    Days(u32),
    Months(u32),
    Years(u32),
    /// Hours run around the clock (incident reports); they end at the exact instant.
    Hours(u32),
    /// Up to and including an agreed day ("自…起至…止", Civil Code art. 204): it ends at
    /// 24:00 of that day and does not roll past days off, which only apply to counted periods.
    Through(NaiveDate),
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Period::WorkingDays(n) => write!(f, "{n} working days"),
            Period::Days(n) => write!(f, "{n} days"),
            Period::Months(n) => write!(f, "{n} months"),
            Period::Years(n) => write!(f, "{n} years"),
            Period::Hours(n) => write!(f, "{n} hours"),
            Period::Through(day) => write!(f, "through {day}"),
        }
    }
}

/// A stretch of time during which the clock was stopped (e.g. waiting for 补正 materials).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub from: DateTime<FixedOffset>,
    pub until: Option<DateTime<FixedOffset>>,
}

/// A recorded extension: the new length, counted from the same start, who decided and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub period: Period,
    pub by: String,
    pub reason: String,
    pub at: DateTime<FixedOffset>,
}

/// A time limit as the rule that produces it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    pub period: Period,
    pub start: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pauses: Vec<Pause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

/// Where a deadline stands under a given calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeadlineStatus {
    /// The instant the limit ends; `None` while the clock is stopped.
    pub due: Option<DateTime<FixedOffset>>,
    /// The last day of the limit (the day before `due` for limits counted in days).
    pub last_day: Option<NaiveDate>,
    pub provisional: bool,
    pub paused: bool,
    /// Working (or calendar, for day periods) days left when the clock stopped.
    pub frozen_remaining: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("the clock is already stopped")]
    AlreadyPaused,
    #[error("the clock is not stopped")]
    NotPaused,
    #[error("the clock cannot be resumed before it was stopped")]
    ResumeBeforePause,
}

impl Deadline {
    pub fn new(period: Period, start: DateTime<FixedOffset>) -> Self {
        Deadline { period, start, pauses: Vec::new(), extension: None }
    }

    /// The period in force: the extension's when there is one.
    pub fn effective_period(&self) -> Period {
        self.extension.as_ref().map_or(self.period, |e| e.period)
    }

    pub fn is_paused(&self) -> bool {
        self.pauses.last().is_some_and(|p| p.until.is_none())
    }

    /// Stops the clock at `at`.
    pub fn pause(&mut self, at: DateTime<FixedOffset>) -> Result<(), ClockError> {
        if self.is_paused() {
            return Err(ClockError::AlreadyPaused);
        }
        self.pauses.push(Pause { from: at, until: None });
        Ok(())
    }

    /// Restarts the clock at `at`; counting resumes the day after, as at the start.
    pub fn resume(&mut self, at: DateTime<FixedOffset>) -> Result<(), ClockError> {
        let pause = self.pauses.last_mut().filter(|p| p.until.is_none()).ok_or(ClockError::NotPaused)?;
        if at < pause.from {
            return Err(ClockError::ResumeBeforePause);
        }
        pause.until = Some(at);
        Ok(())
    }

    /// Extends the limit to `period` counted from the same start (Tai'an: 5 → 20 working days).
    pub fn extend(&mut self, period: Period, by: &str, reason: &str, at: DateTime<FixedOffset>) {
        self.extension = Some(Extension { period, by: by.to_owned(), reason: reason.to_owned(), at });
    }

    /// Computes the deadline under `calendar`.
    pub fn status(&self, calendar: &Calendar) -> DeadlineStatus {
        match self.effective_period() {
            Period::WorkingDays(n) => self.counted_in_days(
                n,
                |a, b| calendar.working_days_between(a, b),
                |d, k| calendar.add_working_days(d, k),
            ),
            Period::Days(n) => self.counted_in_days(n, |a, b| (b - a).num_days(), |d, k| calendar.add_days(d, k)),
            Period::Months(n) => self.calendar_period(calendar, calendar.add_months(local_date(self.start), n)),
            Period::Years(n) => self.calendar_period(calendar, calendar.add_years(local_date(self.start), n)),
            Period::Hours(n) => self.hours(n),
            Period::Through(day) => self.calendar_period(calendar, Computed { value: day, provisional: false }),
        }
    }

    /// Limits counted day by day (working or calendar): each stop of the clock keeps what was
    /// already used; counting restarts the day after resumption.
    fn counted_in_days(
        &self,
        n: u32,
        used_between: impl Fn(NaiveDate, NaiveDate) -> i64,
        add: impl Fn(NaiveDate, u32) -> Computed<NaiveDate>,
    ) -> DeadlineStatus {
        let mut remaining = i64::from(n);
        let mut cursor = local_date(self.start);
        for pause in &self.pauses {
            let stopped_on = local_date(pause.from);
            let used = used_between(cursor, stopped_on).max(0);
            if used >= remaining {
                // The limit had run out before the clock stopped: stopping gains nothing.
                break;
            }
            remaining -= used;
            match pause.until {
                Some(until) => cursor = local_date(until),
                None => {
                    return DeadlineStatus {
                        due: None,
                        last_day: None,
                        provisional: false,
                        paused: true,
                        frozen_remaining: Some(remaining),
                    }
                }
            }
        }
        let last = add(cursor, remaining as u32);
        DeadlineStatus {
            due: Some(end_of_day(last.value)),
            last_day: Some(last.value),
            provisional: last.provisional,
            paused: false,
            frozen_remaining: None,
        }
    }

    /// Months and years: the end date moves by the calendar days the clock stood still.
    fn calendar_period(&self, calendar: &Calendar, unpaused_end: Computed<NaiveDate>) -> DeadlineStatus {
        let mut shift = 0i64;
        for pause in &self.pauses {
            let from = local_date(pause.from);
            if from > unpaused_end.value {
                break;
            }
            match pause.until {
                Some(until) => shift += (local_date(until) - from).num_days(),
                None => {
                    return DeadlineStatus {
                        due: None,
                        last_day: None,
                        provisional: false,
                        paused: true,
                        frozen_remaining: Some((unpaused_end.value - from).num_days() + shift),
                    }
                }
            }
        }
        let last = if shift == 0 { unpaused_end } else { calendar.add_days(unpaused_end.value, shift as u32) };
        DeadlineStatus {
            due: Some(end_of_day(last.value)),
            last_day: Some(last.value),
            provisional: last.provisional || unpaused_end.provisional,
            paused: false,
            frozen_remaining: None,
        }
    }

    fn hours(&self, n: u32) -> DeadlineStatus {
        let mut due = self.start + Duration::hours(i64::from(n));
        for pause in &self.pauses {
            if pause.from >= due {
                break;
            }
            match pause.until {
                Some(until) => due += until - pause.from,
                None => {
                    let left = (due - pause.from).num_hours();
                    return DeadlineStatus {
                        due: None,
                        last_day: None,
                        provisional: false,
                        paused: true,
                        frozen_remaining: Some(left),
                    };
                }
            }
        }
        DeadlineStatus {
            due: Some(due),
            last_day: Some(local_date(due)),
            provisional: false,
            paused: false,
            frozen_remaining: None,
        }
    }

    /// Working days left at `now` (frozen while the clock is stopped).
    pub fn remaining_working_days(&self, now: DateTime<FixedOffset>, calendar: &Calendar) -> Option<i64> {
        let status = self.status(calendar);
        match (status.frozen_remaining, status.last_day) {
            (Some(frozen), _) => Some(frozen),
            (None, Some(last)) => Some(calendar.remaining_working_days(now, last)),
            _ => None,
        }
    }
}
