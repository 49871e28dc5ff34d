//! The deadline of a step as staff read it: the period in Chinese, the last day, working days
//! left, whether the clock is stopped or the limit extended, whether a year's official notice
//! is still missing (provisional), and the article it rests on.

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use statflow_workflows::calendar::{Calendar, Period};
use statflow_workflows::definition::model::DeadlineSpec;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::InstanceState;

use super::format;

/// Steps due within this many working days are yellow, as on the overdue board.
pub const SOON_WORKING_DAYS: i64 = 2;

#[derive(Debug, Serialize)]
pub struct DeadlinePanel {
    pub period: String,
    pub last_day: Option<String>,
    pub due: Option<String>,
    pub remaining: Option<String>,
    /// `red` (overdue), `yellow` (due soon) or `normal`.
    pub colour: &'static str,
    pub paused: bool,
    /// The extension granted: its period and reason.
    pub extension: Option<String>,
    pub provisional: bool,
    pub basis: String,
}

/// The panel of the current step's deadline, if it has one.
pub fn panel(
    state: &InstanceState,
    definition: &Definition,
    calendar: &Calendar,
    now: DateTime<FixedOffset>,
) -> Option<DeadlinePanel> {
    let deadline = state.step.as_ref()?.deadline.as_ref()?;
    let status = deadline.rule.status(calendar);
    let remaining = deadline.rule.remaining_working_days(now, calendar);
    let colour = if deadline.overdue || remaining.is_some_and(|r| r < 0) {
        "red"
    } else if remaining.is_some_and(|r| r <= SOON_WORKING_DAYS) {
        "yellow"
    } else {
        "normal"
    };
    Some(DeadlinePanel {
        period: period(deadline.rule.effective_period()),
        last_day: status.last_day.map(format::date),
        due: status.due.map(format::date_time),
        remaining: remaining.map(format::remaining),
        colour,
        paused: status.paused,
        extension: deadline.rule.extension.as_ref().map(|e| format!("延长至{}（{}）", period(e.period), e.reason)),
        provisional: status.provisional,
        basis: definition.basis_text(&deadline.basis),
    })
}

/// 5个工作日, 15日, 3个月…
pub fn period(period: Period) -> String {
    match period {
        Period::WorkingDays(n) => format!("{n}个工作日"),
        Period::Days(n) => format!("{n}日"),
        Period::Months(n) => format!("{n}个月"),
        Period::Years(n) => format!("{n}年"),
        Period::Hours(n) => format!("{n}小时"),
        Period::Through(day) => format!("至{}", format::date(day)),
    }
}

/// A step's limit as its definition states it: "5个工作日（法定）", "按办件的 period 字段（个案确定）".
pub fn limit(spec: &DeadlineSpec) -> String {
    use statflow_workflows::definition::model::{Amount, Unit};
    let lengths = [
        (Unit::WorkingDays, &spec.working_days),
        (Unit::Days, &spec.days),
        (Unit::Months, &spec.months),
        (Unit::Years, &spec.years),
        (Unit::Hours, &spec.hours),
    ];
    let length = lengths
        .iter()
        .find_map(|(unit, amount)| {
            amount.as_ref().map(|amount| match amount {
                Amount::Fixed(n) => period(unit.period(*n)),
                Amount::Field(field) => format!("按办件的 {} 字段", field.trim_start_matches('$')),
            })
        })
        .unwrap_or_else(|| "—".into());
    let kind = match spec.limit.as_ref().map(|l| l.get_ref().as_str()) {
        Some("statutory") => "（法定）",
        Some("policy") => "（本单位规定）",
        Some("case") => "（个案确定）",
        _ => "",
    };
    format!("{length}{kind}")
}
