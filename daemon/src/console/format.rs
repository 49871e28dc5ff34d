//! How the console writes dates, times and remaining time: in Chinese, in Asia/Shanghai,
//! e.g. 2026年10月9日(星期五) 14:05.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};
use statflow_workflows::calendar::shanghai;

const WEEKDAYS: [&str; 7] = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"];

/// 2026年10月9日(星期五)
pub fn date(day: NaiveDate) -> String {
    format!(
        "{}年{}月{}日({})",
        day.year(),
        day.month(),
        day.day(),
        WEEKDAYS[day.weekday().num_days_from_monday() as usize]
    )
}

/// 2026年10月9日(星期五) 14:05, in Asia/Shanghai whatever offset the instant carries.
pub fn date_time(instant: DateTime<FixedOffset>) -> String {
    let local = instant.with_timezone(&shanghai());
    format!("{} {:02}:{:02}", date(local.date_naive()), local.hour(), local.minute())
}

/// 剩余 3 个工作日 / 今日到期 / 已超期 2 个工作日
pub fn remaining(working_days: i64) -> String {
    match working_days {
        n if n > 0 => format!("剩余 {n} 个工作日"),
        0 => "今日到期".into(),
        n => format!("已超期 {} 个工作日", -n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_as_an_agency_writes_them() {
        assert_eq!(date(NaiveDate::from_ymd_opt(2026, 10, 9).unwrap()), "2026年10月9日(星期五)");
        let utc = DateTime::parse_from_rfc3339("2026-10-09T23:30:00+00:00").unwrap();
        assert_eq!(date_time(utc), "2026年10月10日(星期六) 07:30", "shown in Asia/Shanghai");
        assert_eq!(remaining(3), "剩余 3 个工作日");
        assert_eq!(remaining(0), "今日到期");
        assert_eq!(remaining(-2), "已超期 2 个工作日");
    }
}
