//! Parsing of the State Council's annual holiday notices into [`Notice`]s.
//!
//! Two layouts are accepted: the project's TSV (`date<TAB>holiday<TAB>off|work`, grouped under
//! `# YEAR: source...` headers) and the JSON layout of the widely used `holiday-cn` data set
//! (`{"year":..,"papers":[..],"days":[{"name","date","isOffDay"}]}`). Both are checked for
//! malformed and contradictory entries, and every error names the line or the date at fault.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;

use super::CalendarError;

/// Whether a listed date is a statutory day off or an adjusted working day (调休上班).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DayKind {
    Off,
    Work,
}

impl DayKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DayKind::Off => "off",
            DayKind::Work => "work",
        }
    }
}

/// One exception to the weekend rule, as the notice lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoticeDay {
    pub date: NaiveDate,
    /// The holiday the exception belongs to, e.g. `春节`.
    pub holiday: String,
    pub kind: DayKind,
}

/// The official notice for one year: its sources and its exceptions to the weekend rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    pub year: i32,
    /// Where the notice was published (URLs or document numbers), kept for traceability.
    pub sources: Vec<String>,
    pub days: Vec<NoticeDay>,
}

impl Notice {
    /// Writes the notice in the project's TSV layout; [`parse_tsv`] reads it back unchanged.
    pub fn to_tsv(&self) -> String {
        let mut out = format!("# {}: {}\n", self.year, self.sources.join(" "));
        for day in &self.days {
            out.push_str(&format!("{}\t{}\t{}\n", day.date, day.holiday, day.kind.as_str()));
        }
        out
    }

    /// Checks the notice on its own: dates near its year, no date listed twice. (An adjusted
    /// working day may fall on a weekday: the 2020 supplementary notice lists 2020-02-03, the
    /// Monday work resumed after the extended break.)
    fn check(&self, origin: &str, line_of: &dyn Fn(usize) -> String) -> Result<(), CalendarError> {
        let mut seen: BTreeMap<NaiveDate, usize> = BTreeMap::new();
        for (i, day) in self.days.iter().enumerate() {
            let at = line_of(i);
            // A notice covers its own year plus the days of a break that starts in late
            // December or ends in early January.
            let near = |d: NaiveDate| {
                d.year() == self.year
                    || (d.year() == self.year - 1 && d.month() == 12)
                    || (d.year() == self.year + 1 && d.month() == 1)
            };
            if !near(day.date) {
                return Err(CalendarError::invalid(
                    origin,
                    &at,
                    format!("date {} does not belong to the {} notice", day.date, self.year),
                ));
            }
            if let Some(first) = seen.insert(day.date, i) {
                let other = &self.days[first];
                let what = if other.kind == day.kind { "listed twice" } else { "listed both as off and as work" };
                return Err(CalendarError::invalid(
                    origin,
                    &at,
                    format!("{} is {what} (first at {})", day.date, line_of(first)),
                ));
            }
        }
        if self.days.is_empty() {
            return Err(CalendarError::invalid(origin, "", format!("the {} notice lists no days", self.year)));
        }
        Ok(())
    }
}

/// The statutory holidays every year's notice arranges (全国年节及纪念日放假办法 第二条).
pub const STATUTORY_HOLIDAYS: [&str; 7] = ["元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"];

/// How many statutory days off a year has: 11 until 2024, 13 from 2025, when the revised
/// 全国年节及纪念日放假办法 (国务院令第795号) added a day each to the Spring Festival and
/// Labour Day.
pub fn statutory_days_off(year: i32) -> i64 {
    if year >= 2025 {
        13
    } else {
        11
    }
}

impl Notice {
    /// Working days the notice takes out of the year: weekdays made days off less weekend
    /// days made working days. The notices move days off around a holiday but balance every
    /// move with an adjusted working day, so this equals [`statutory_days_off`].
    pub fn net_days_off(&self) -> i64 {
        self.days
            .iter()
            .map(|day| match (day.kind, is_weekend(day.date)) {
                (DayKind::Off, false) => 1,
                (DayKind::Work, true) => -1,
                _ => 0,
            })
            .sum()
    }

    /// What makes the notice implausible as a State Council notice, if anything: a statutory
    /// holiday missing, or days off and adjusted working days out of balance. A correction may
    /// add days off (as the 2020 supplementary notice extended the Spring Festival) but never
    /// take statutory ones away.
    pub fn implausibilities(&self, correction: bool) -> Vec<String> {
        let mut problems: Vec<String> = STATUTORY_HOLIDAYS
            .iter()
            .filter(|holiday| !self.days.iter().any(|day| day.holiday.contains(*holiday)))
            .map(|holiday| format!("the statutory holiday {holiday} is missing"))
            .collect();
        let (net, statutory) = (self.net_days_off(), statutory_days_off(self.year));
        let balanced = if correction { net >= statutory } else { net == statutory };
        if !balanced {
            problems.push(format!(
                "weekdays off less adjusted working days come to {net}, but {} has {statutory} statutory days off",
                self.year
            ));
        }
        problems
    }
}

pub(crate) fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

/// Parses the TSV layout. `origin` names the file in error messages.
pub fn parse_tsv(text: &str, origin: &str) -> Result<Vec<Notice>, CalendarError> {
    let mut notices: Vec<Notice> = Vec::new();
    let mut lines_of_days: Vec<Vec<usize>> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            // `# 2026: source source` opens a new year; other comments are ignored.
            if let Some((year, sources)) = comment.trim().split_once(':') {
                if let Ok(year) = year.trim().parse::<i32>() {
                    if notices.iter().any(|n| n.year == year) {
                        return Err(CalendarError::invalid(
                            origin,
                            &format!("line {line_no}"),
                            format!("the {year} notice appears twice"),
                        ));
                    }
                    notices.push(Notice {
                        year,
                        sources: sources.split_whitespace().map(str::to_owned).collect(),
                        days: Vec::new(),
                    });
                    lines_of_days.push(Vec::new());
                }
            }
            continue;
        }
        let at = format!("line {line_no}");
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 3 {
            return Err(CalendarError::invalid(
                origin,
                &at,
                format!("expected 3 tab-separated fields (date, holiday, off|work), found {}", fields.len()),
            ));
        }
        let date = NaiveDate::parse_from_str(fields[0].trim(), "%Y-%m-%d").map_err(|_| {
            CalendarError::invalid(origin, &at, format!("`{}` is not a date in YYYY-MM-DD form", fields[0]))
        })?;
        let holiday = fields[1].trim();
        if holiday.is_empty() {
            return Err(CalendarError::invalid(origin, &at, "the holiday name is empty".into()));
        }
        let kind = match fields[2].trim() {
            "off" => DayKind::Off,
            "work" => DayKind::Work,
            other => {
                return Err(CalendarError::invalid(origin, &at, format!("kind `{other}` must be `off` or `work`")))
            }
        };
        let Some(notice) = notices.last_mut() else {
            return Err(CalendarError::invalid(
                origin,
                &at,
                "a day comes before any `# YEAR: source` header naming its notice".into(),
            ));
        };
        notice.days.push(NoticeDay { date, holiday: holiday.to_owned(), kind });
        lines_of_days.last_mut().expect("pushed with the notice").push(line_no);
    }
    if notices.is_empty() {
        return Err(CalendarError::invalid(origin, "", "no `# YEAR: source` header and no days found".into()));
    }
    for (notice, lines) in notices.iter().zip(&lines_of_days) {
        notice.check(origin, &|i| format!("line {}", lines[i]))?;
    }
    Ok(notices)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayCnFile {
    year: i32,
    #[serde(default)]
    papers: Vec<String>,
    days: Vec<HolidayCnDay>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayCnDay {
    name: String,
    date: String,
    #[serde(rename = "isOffDay")]
    is_off_day: bool,
}

/// Parses one year in the `holiday-cn` JSON layout.
pub fn parse_holiday_cn_json(text: &str, origin: &str) -> Result<Notice, CalendarError> {
    let file: HolidayCnFile = serde_json::from_str(text).map_err(|e| {
        CalendarError::invalid(origin, &format!("line {}", e.line()), format!("not a holiday-cn year file: {e}"))
    })?;
    let mut days = Vec::with_capacity(file.days.len());
    for day in file.days {
        let date = NaiveDate::parse_from_str(&day.date, "%Y-%m-%d").map_err(|_| {
            CalendarError::invalid(origin, &format!("date `{}`", day.date), "not a date in YYYY-MM-DD form".into())
        })?;
        let kind = if day.is_off_day { DayKind::Off } else { DayKind::Work };
        days.push(NoticeDay { date, holiday: day.name, kind });
    }
    let notice = Notice { year: file.year, sources: file.papers, days };
    notice.check(origin, &|i| format!("date {}", notice.days[i].date))?;
    Ok(notice)
}

/// Parses a notice file in either layout, chosen by its first non-blank character.
pub fn parse_any(text: &str, origin: &str) -> Result<Vec<Notice>, CalendarError> {
    if text.trim_start().starts_with('{') {
        Ok(vec![parse_holiday_cn_json(text, origin)?])
    } else {
        parse_tsv(text, origin)
    }
}
