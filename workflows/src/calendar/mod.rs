//! The official China working-day calendar and the legal arithmetic of time limits.
//!
//! Rules (PROCEDURES.md, "How time is counted"; 民法典 第二百零一至二百零三条):
//! - Monday–Friday work, weekends off, except what the State Council's notice of the year
//!   turns into a day off (法定节假日) or an adjusted working day (调休上班).
//! - "Within N working days from D": the start day is not counted; the limit ends at 24:00
//!   Asia/Shanghai of the Nth working day strictly after D.
//! - Calendar periods in days, months and years end on the corresponding day (the month's
//!   last day when there is none); a last day that is a day off rolls to the next working day.
//! - A result that touches a year whose notice is not loaded is *provisional*: computed with
//!   the weekend rule and recomputed when the notice is imported.
//!
//! The official notices for 2019–2026 are embedded; more years can be imported at run time.

mod deadline;
mod index;
mod notice;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, NaiveTime, TimeZone};

pub use deadline::{ClockError, Deadline, DeadlineStatus, Extension, Pause, Period};
use index::{DayNumber, WorkdayIndex};
pub use notice::{
    parse_any, parse_holiday_cn_json, parse_tsv, statutory_days_off, DayKind, Notice, NoticeDay, STATUTORY_HOLIDAYS,
};

/// The embedded transcription of the State Council notices, 2019–2026.
const OFFICIAL_TSV: &str = include_str!("../../data/cn-official.tsv");

/// Asia/Shanghai. China has observed UTC+8 without daylight saving since 1991, so a fixed
/// offset is exact for every date this product deals with.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// Midnight at the start of `date` in Asia/Shanghai.
pub fn start_of_day(date: NaiveDate) -> DateTime<FixedOffset> {
    shanghai().from_local_datetime(&date.and_time(NaiveTime::MIN)).single().expect("fixed offsets have no gaps")
}

/// The end of `date` (24:00 Asia/Shanghai), which is how a limit counted in days ends.
pub fn end_of_day(date: NaiveDate) -> DateTime<FixedOffset> {
    start_of_day(date + Days::new(1))
}

/// The calendar date an instant falls on in Asia/Shanghai.
pub fn local_date(instant: DateTime<FixedOffset>) -> NaiveDate {
    instant.with_timezone(&shanghai()).date_naive()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// A notice file is malformed or contradicts itself: `origin` is the file, `at` the line
    /// or date at fault.
    #[error("{origin}{sep}{at}: {message}", sep = if at.is_empty() { "" } else { ": " })]
    Invalid { origin: String, at: String, message: String },
    /// An imported notice disagrees with a loaded notice of another year about a date.
    #[error("{origin}: {date} is `{new}` in the {new_year} notice but `{old}` in the loaded {old_year} notice")]
    Conflict { origin: String, date: NaiveDate, new: &'static str, new_year: i32, old: &'static str, old_year: i32 },
    #[error("date out of the supported range")]
    OutOfRange,
    /// The year already has a notice; replacing it is a correction and needs a reason.
    #[error("{origin}: the {year} notice is already loaded (from {loaded_from}); replacing an official notice is a correction: give the reason for it (`replace`)")]
    Replacement { origin: String, year: i32, loaded_from: String },
    /// The notice does not look like a State Council notice.
    #[error("{origin}: the {year} notice is implausible: {}", problems.join("; "))]
    Implausible { origin: String, year: i32, problems: Vec<String> },
}

impl CalendarError {
    pub(crate) fn invalid(origin: &str, at: &str, message: String) -> Self {
        CalendarError::Invalid { origin: origin.to_owned(), at: at.to_owned(), message }
    }
}

/// A computed value, with whether it relied on a year whose notice is not loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Computed<T> {
    pub value: T,
    pub provisional: bool,
}

/// Why a day is or is not a working day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DayReason {
    Weekday,
    Weekend,
    StatutoryHoliday(String),
    AdjustedWorkingDay(String),
}

impl std::fmt::Display for DayReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DayReason::Weekday => write!(f, "weekday"),
            DayReason::Weekend => write!(f, "weekend"),
            DayReason::StatutoryHoliday(name) => write!(f, "statutory holiday ({name})"),
            DayReason::AdjustedWorkingDay(name) => write!(f, "adjusted working day ({name})"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayInfo {
    pub workday: bool,
    pub reason: DayReason,
    /// The day's year has no loaded notice: the answer follows the weekend rule only.
    pub provisional: bool,
}

/// What an import changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub year: i32,
    /// The year already had a notice, which this one replaced.
    pub replaced: bool,
    pub days: usize,
    pub working_days_in_year: i64,
}

/// The working-day calendar: the loaded notices and an index for fast arithmetic.
#[derive(Clone, Debug)]
pub struct Calendar {
    notices: BTreeMap<i32, Notice>,
    /// Every listed date, with the year of the notice that lists it.
    exceptions: BTreeMap<NaiveDate, (NoticeDay, i32)>,
    index: WorkdayIndex,
}

fn day_number(date: NaiveDate) -> DayNumber {
    date.num_days_from_ce()
}

fn from_day_number(n: DayNumber) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(n).expect("day number within chrono's range")
}

impl Calendar {
    /// A calendar with no notice: every answer follows the weekend rule and is provisional.
    pub fn empty() -> Self {
        Self::from_notices(BTreeMap::new())
    }

    /// The embedded official calendar, 2019–2026.
    pub fn official() -> Self {
        let mut calendar = Calendar::empty();
        for notice in parse_tsv(OFFICIAL_TSV, "cn-official.tsv").expect("the embedded calendar is valid") {
            calendar.import(notice, "cn-official.tsv").expect("the embedded notices agree");
        }
        calendar
    }

    fn from_notices(notices: BTreeMap<i32, Notice>) -> Self {
        let mut exceptions = BTreeMap::new();
        for notice in notices.values() {
            for day in &notice.days {
                exceptions.insert(day.date, (day.clone(), notice.year));
            }
        }
        let (first, end) = match (exceptions.keys().next(), exceptions.keys().next_back()) {
            (Some(lo), Some(hi)) => (day_number(*lo), day_number(*hi) + 1),
            _ => (1, 1),
        };
        let index = WorkdayIndex::build(first, end, |n| {
            let date = from_day_number(n);
            match exceptions.get(&date) {
                Some((day, _)) => day.kind == DayKind::Work,
                None => !notice::is_weekend(date),
            }
        });
        Calendar { notices, exceptions, index }
    }

    /// Imports a notice as an administrator does: a year that already has a notice is only
    /// replaced as a correction (with its reason), and a notice that is not plausible as a
    /// State Council notice is refused ([`Notice::implausibilities`]). Nothing changes on
    /// refusal.
    pub fn import_checked(
        &mut self,
        notice: Notice,
        origin: &str,
        correction: Option<&str>,
    ) -> Result<ImportSummary, CalendarError> {
        if let (Some(loaded), None) = (self.notices.get(&notice.year), correction) {
            let loaded_from =
                if loaded.sources.is_empty() { "an earlier import".into() } else { loaded.sources.join(" ") };
            return Err(CalendarError::Replacement { origin: origin.to_owned(), year: notice.year, loaded_from });
        }
        let problems = notice.implausibilities(correction.is_some());
        if !problems.is_empty() {
            return Err(CalendarError::Implausible { origin: origin.to_owned(), year: notice.year, problems });
        }
        self.import(notice, origin)
    }

    /// Loads (or replaces) one year's notice without the administrator's checks: for the
    /// embedded notices and those already accepted and stored. A date that another loaded
    /// notice lists with the opposite kind is refused, and nothing changes.
    pub fn import(&mut self, notice: Notice, origin: &str) -> Result<ImportSummary, CalendarError> {
        for day in &notice.days {
            if let Some((other, other_year)) = self.exceptions.get(&day.date) {
                if *other_year != notice.year && other.kind != day.kind {
                    return Err(CalendarError::Conflict {
                        origin: origin.to_owned(),
                        date: day.date,
                        new: day.kind.as_str(),
                        new_year: notice.year,
                        old: other.kind.as_str(),
                        old_year: *other_year,
                    });
                }
            }
        }
        let year = notice.year;
        let days = notice.days.len();
        let mut notices = std::mem::take(&mut self.notices);
        let replaced = notices.insert(year, notice).is_some();
        *self = Self::from_notices(notices);
        let jan1 = NaiveDate::from_ymd_opt(year, 1, 1).ok_or(CalendarError::OutOfRange)?;
        let next_jan1 = NaiveDate::from_ymd_opt(year + 1, 1, 1).ok_or(CalendarError::OutOfRange)?;
        let working_days_in_year = self.index.rank(day_number(next_jan1)) - self.index.rank(day_number(jan1));
        Ok(ImportSummary { year, replaced, days, working_days_in_year })
    }

    pub fn notice(&self, year: i32) -> Option<&Notice> {
        self.notices.get(&year)
    }

    /// Years whose notice is loaded.
    pub fn years(&self) -> impl Iterator<Item = i32> + '_ {
        self.notices.keys().copied()
    }

    /// Whether `year`'s working days are certain (its notice is loaded).
    pub fn is_certain(&self, year: i32) -> bool {
        self.notices.contains_key(&year)
    }

    fn provisional_between(&self, a: NaiveDate, b: NaiveDate) -> bool {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        (lo.year()..=hi.year()).any(|y| !self.is_certain(y))
    }

    pub fn is_workday(&self, date: NaiveDate) -> bool {
        self.index.is_workday(day_number(date))
    }

    pub fn day_info(&self, date: NaiveDate) -> DayInfo {
        let reason = match self.exceptions.get(&date) {
            Some((day, _)) if day.kind == DayKind::Off => DayReason::StatutoryHoliday(day.holiday.clone()),
            Some((day, _)) => DayReason::AdjustedWorkingDay(day.holiday.clone()),
            None if notice::is_weekend(date) => DayReason::Weekend,
            None => DayReason::Weekday,
        };
        let workday = matches!(reason, DayReason::Weekday | DayReason::AdjustedWorkingDay(_));
        DayInfo { workday, reason, provisional: !self.is_certain(date.year()) }
    }

    /// The last day of "N working days from `start`" (start not counted). N = 0 is `start`.
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Computed<NaiveDate> {
        let value = if n == 0 {
            start
        } else {
            let rank = self.index.rank(day_number(start) + 1);
            from_day_number(self.index.nth(rank + i64::from(n) - 1))
        };
        Computed { value, provisional: self.provisional_between(start, value) }
    }

    /// The working day that lies `n` working days before `date` (n ≥ 1), e.g. for "remind
    /// one working day before the deadline".
    pub fn working_days_before(&self, date: NaiveDate, n: u32) -> Computed<NaiveDate> {
        let rank = self.index.rank(day_number(date));
        let value = from_day_number(self.index.nth(rank - i64::from(n)));
        Computed { value, provisional: self.provisional_between(value, date) }
    }

    /// The first working day on or after `date`.
    pub fn next_working_day_from(&self, date: NaiveDate) -> NaiveDate {
        from_day_number(self.index.nth(self.index.rank(day_number(date))))
    }

    /// Working days in (a, b]: how many working days pass from the end of `a` to the end of
    /// `b`. Negative when b < a.
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> i64 {
        self.index.rank(day_number(b) + 1) - self.index.rank(day_number(a) + 1)
    }

    /// Working days left before a limit whose last day is `last_day`, seen at `now`: N on the
    /// day the limit started, 0 on its last day, negative (working days overdue) after it.
    pub fn remaining_working_days(&self, now: DateTime<FixedOffset>, last_day: NaiveDate) -> i64 {
        self.working_days_between(local_date(now), last_day)
    }

    fn roll_to_working_day(&self, start: NaiveDate, end: NaiveDate) -> Computed<NaiveDate> {
        let value = self.next_working_day_from(end);
        Computed { value, provisional: self.provisional_between(start, value) }
    }

    /// The last day of a period of `n` calendar days from `start`, rolled past days off.
    pub fn add_days(&self, start: NaiveDate, n: u32) -> Computed<NaiveDate> {
        self.roll_to_working_day(start, start + Days::new(u64::from(n)))
    }

    /// The last day of a period of `n` months: the corresponding day, or the month's last
    /// day when there is none; rolled past days off.
    pub fn add_months(&self, start: NaiveDate, n: u32) -> Computed<NaiveDate> {
        self.roll_to_working_day(start, start.checked_add_months(Months::new(n)).unwrap_or(NaiveDate::MAX))
    }

    /// The last day of a period of `n` years (2024-02-29 + 1 year → 2025-02-28).
    pub fn add_years(&self, start: NaiveDate, n: u32) -> Computed<NaiveDate> {
        self.add_months(start, n.saturating_mul(12))
    }

    /// The day `n` calendar months before `date`, without rolling (for windows such as
    /// "6 months before expiry").
    pub fn months_before(&self, date: NaiveDate, n: u32) -> NaiveDate {
        date.checked_sub_months(Months::new(n)).unwrap_or(NaiveDate::MIN)
    }
}

#[cfg(test)]
mod tests;
