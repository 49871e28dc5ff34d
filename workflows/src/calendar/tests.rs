//! Calendar tests against the official notices and the legal examples of PROCEDURES.md.

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate};

use super::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// A 2027 notice for tests: the real one is not published yet, so this one is made up, in
/// the holiday-cn layout an administrator would import.
const NOTICE_2027_JSON: &str = r#"{"year":2027,"papers":["test notice"],"days":[
  {"name":"元旦","date":"2027-01-01","isOffDay":true},
  {"name":"春节","date":"2027-02-06","isOffDay":false},
  {"name":"春节","date":"2027-02-08","isOffDay":true},
  {"name":"春节","date":"2027-02-09","isOffDay":true}]}"#;

#[test]
fn every_day_2019_to_2026_follows_the_notices() {
    let calendar = Calendar::official();
    // Read the source transcription independently of the parser under test.
    let mut listed = std::collections::HashMap::new();
    for line in include_str!("../../data/cn-official.tsv").lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        listed.insert(d(f[0]), f[2] == "work");
    }
    let mut day = d("2019-01-01");
    let mut checked = 0;
    while day <= d("2026-12-31") {
        let weekday = day.weekday().number_from_monday() <= 5;
        let expected = *listed.get(&day).unwrap_or(&weekday);
        assert_eq!(calendar.is_workday(day), expected, "{day}");
        assert!(!calendar.day_info(day).provisional, "{day} should be certain");
        checked += 1;
        day = day + Days::new(1);
    }
    assert_eq!(checked, 2922);
}

#[test]
fn published_working_day_totals() {
    let calendar = Calendar::official();
    let in_year = |y: i32| calendar.working_days_between(d(&format!("{}-12-31", y - 1)), d(&format!("{y}-12-31")));
    // 2024: 262 weekdays − 16 weekday holidays + 5 adjusted working days.
    assert_eq!(in_year(2024), 251);
    // 2025: 261 weekdays − 18 weekday holidays (元旦 1, 春节 6, 清明 1, 劳动节 3, 端午 1,
    // 国庆/中秋 6) + 5 adjusted working days (01-26, 02-08, 04-27, 09-28, 10-11).
    assert_eq!(in_year(2025), 248);
}

#[test]
fn day_reasons_name_the_holiday() {
    let calendar = Calendar::official();
    let info = calendar.day_info(d("2026-02-14"));
    assert!(info.workday);
    assert_eq!(info.reason.to_string(), "adjusted working day (春节)");
    let info = calendar.day_info(d("2026-10-01"));
    assert!(!info.workday);
    assert_eq!(info.reason.to_string(), "statutory holiday (国庆节)");
    assert_eq!(calendar.day_info(d("2026-03-07")).reason, DayReason::Weekend);
    assert_eq!(calendar.day_info(d("2026-03-09")).reason, DayReason::Weekday);
}

#[test]
fn worked_example_of_procedures_md() {
    // Received Friday 2026-02-13: 02-14 (adjusted working day) is day 1, the Spring Festival
    // break follows, 02-24 is day 2, so the limit ends at 24:00 on 02-25.
    let calendar = Calendar::official();
    let result = calendar.add_working_days(d("2026-02-13"), 3);
    assert_eq!(result, Computed { value: d("2026-02-25"), provisional: false });
    let deadline = Deadline::new(Period::WorkingDays(3), t("2026-02-13T16:30:00+08:00"));
    assert_eq!(deadline.status(&calendar).due, Some(t("2026-02-26T00:00:00+08:00")));
}

#[test]
fn add_working_days_agrees_with_walking_day_by_day() {
    let calendar = Calendar::official();
    let mut start = d("2018-11-01");
    while start < d("2027-03-01") {
        for n in [1u32, 2, 3, 5, 20, 60] {
            let mut day = start;
            let mut left = n;
            while left > 0 {
                day = day + Days::new(1);
                if calendar.is_workday(day) {
                    left -= 1;
                }
            }
            assert_eq!(calendar.add_working_days(start, n).value, day, "{start} + {n}");
        }
        start = start + Days::new(3);
    }
}

#[test]
fn month_end_and_leap_day_periods() {
    let calendar = Calendar::official();
    assert_eq!(calendar.add_months(d("2024-01-31"), 1).value, d("2024-02-29"));
    assert_eq!(calendar.add_months(d("2023-01-31"), 1).value, d("2023-02-28"));
    assert_eq!(calendar.add_years(d("2024-02-29"), 1).value, d("2025-02-28"));
    // 2020-02-29 + 4 years lands on the leap day itself (a Thursday).
    assert_eq!(calendar.add_years(d("2020-02-29"), 4).value, d("2024-02-29"));
    // 2025-08-31 + 1 month → 2025-09-30, a Tuesday.
    assert_eq!(calendar.add_months(d("2025-08-31"), 1).value, d("2025-09-30"));
}

#[test]
fn a_period_ending_on_a_day_off_rolls_past_the_national_day_break() {
    let calendar = Calendar::official();
    // 2026-09-01 + 1 month = 2026-10-01, inside the National Day break (10-01..10-07).
    assert_eq!(calendar.add_months(d("2026-09-01"), 1).value, d("2026-10-08"));
    // Calendar days too: 2025-09-25 + 6 days = 2025-10-01 → first working day 2025-10-09.
    assert_eq!(calendar.add_days(d("2025-09-25"), 6).value, d("2025-10-09"));
    // A period ending on an ordinary Sunday rolls to Monday.
    assert_eq!(calendar.add_days(d("2026-03-01"), 7).value, d("2026-03-09"));
}

#[test]
fn stopping_the_clock_keeps_the_days_used_and_restarts_after_resumption() {
    let calendar = Calendar::official();
    // 3 working days from Monday 2026-03-02; one used (03-03) when supplements are requested
    // on 03-03; materials arrive Monday 03-09, so 2 days remain: 03-10 and 03-11.
    let mut deadline = Deadline::new(Period::WorkingDays(3), t("2026-03-02T10:00:00+08:00"));
    assert_eq!(deadline.status(&calendar).last_day, Some(d("2026-03-05")));
    deadline.pause(t("2026-03-03T11:00:00+08:00")).unwrap();
    let paused = deadline.status(&calendar);
    assert!(paused.paused);
    assert_eq!(paused.due, None);
    assert_eq!(paused.frozen_remaining, Some(2));
    assert_eq!(deadline.remaining_working_days(t("2026-03-20T10:00:00+08:00"), &calendar), Some(2));
    assert_eq!(deadline.pause(t("2026-03-04T10:00:00+08:00")), Err(ClockError::AlreadyPaused));
    deadline.resume(t("2026-03-09T09:00:00+08:00")).unwrap();
    let resumed = deadline.status(&calendar);
    assert_eq!(resumed.last_day, Some(d("2026-03-11")));
    assert_eq!(resumed.due, Some(t("2026-03-12T00:00:00+08:00")));
    assert_eq!(deadline.remaining_working_days(t("2026-03-09T09:00:00+08:00"), &calendar), Some(2));
    assert_eq!(deadline.resume(t("2026-03-10T09:00:00+08:00")), Err(ClockError::NotPaused));
}

#[test]
fn a_pause_after_the_limit_ran_out_gains_nothing() {
    let calendar = Calendar::official();
    let mut deadline = Deadline::new(Period::WorkingDays(1), t("2026-03-02T10:00:00+08:00"));
    deadline.pause(t("2026-03-05T10:00:00+08:00")).unwrap();
    deadline.resume(t("2026-03-10T10:00:00+08:00")).unwrap();
    assert_eq!(deadline.status(&calendar).last_day, Some(d("2026-03-03")));
}

#[test]
fn extension_counts_from_the_same_start() {
    let calendar = Calendar::official();
    let mut deadline = Deadline::new(Period::WorkingDays(5), t("2026-03-02T10:00:00+08:00"));
    assert_eq!(deadline.status(&calendar).last_day, Some(d("2026-03-09")));
    deadline.extend(Period::WorkingDays(20), "agency-clerk", "第三方服务机构协助审查", t("2026-03-04T10:00:00+08:00"));
    assert_eq!(deadline.status(&calendar).last_day, Some(d("2026-03-30")));
    assert_eq!(deadline.extension.as_ref().unwrap().by, "agency-clerk");
}

#[test]
fn hour_limits_run_around_the_clock() {
    let calendar = Calendar::official();
    let deadline = Deadline::new(Period::Hours(24), t("2026-10-01T08:00:00+08:00"));
    assert_eq!(deadline.status(&calendar).due, Some(t("2026-10-02T08:00:00+08:00")));
}

#[test]
fn results_in_2027_are_provisional_until_its_notice_is_imported() {
    let mut calendar = Calendar::official();
    let before = calendar.add_working_days(d("2026-12-29"), 3);
    // Weekend rule only: 12-30, 12-31, 2027-01-01 (a Friday).
    assert_eq!(before, Computed { value: d("2027-01-01"), provisional: true });
    assert!(calendar.day_info(d("2027-01-01")).provisional);
    let deadline = Deadline::new(Period::WorkingDays(3), t("2026-12-29T09:00:00+08:00"));
    assert!(deadline.status(&calendar).provisional);

    let notice = parse_holiday_cn_json(NOTICE_2027_JSON, "2027.json").unwrap();
    let summary = calendar.import(notice, "2027.json").unwrap();
    assert_eq!(summary.year, 2027);
    assert!(!summary.replaced);
    let after = calendar.add_working_days(d("2026-12-29"), 3);
    assert_eq!(after, Computed { value: d("2027-01-04"), provisional: false });
    let status = deadline.status(&calendar);
    assert!(!status.provisional);
    assert_eq!(status.last_day, Some(d("2027-01-04")));
    assert!(calendar.is_workday(d("2027-02-06")));
}

#[test]
fn reminders_can_count_working_days_backwards() {
    let calendar = Calendar::official();
    // One working day before Wednesday 2026-02-25 is Tuesday 02-24; before that, 02-14.
    assert_eq!(calendar.working_days_before(d("2026-02-25"), 1).value, d("2026-02-24"));
    assert_eq!(calendar.working_days_before(d("2026-02-24"), 1).value, d("2026-02-14"));
}

#[test]
fn remaining_working_days_counts_down_to_zero_and_below() {
    let calendar = Calendar::official();
    let last = d("2026-02-25");
    assert_eq!(calendar.remaining_working_days(t("2026-02-13T09:00:00+08:00"), last), 3);
    assert_eq!(calendar.remaining_working_days(t("2026-02-20T09:00:00+08:00"), last), 2);
    assert_eq!(calendar.remaining_working_days(t("2026-02-25T23:00:00+08:00"), last), 0);
    assert_eq!(calendar.remaining_working_days(t("2026-02-27T09:00:00+08:00"), last), -2);
}

#[test]
fn malformed_and_contradictory_notices_are_refused_with_their_place() {
    let err = |text: &str| parse_any(text, "x.tsv").unwrap_err().to_string();
    assert_eq!(
        err("# 2027: s\n2027-13-01\t元旦\toff\n"),
        "x.tsv: line 2: `2027-13-01` is not a date in YYYY-MM-DD form"
    );
    assert_eq!(
        err("# 2027: s\n2027-01-01\t元旦\n"),
        "x.tsv: line 2: expected 3 tab-separated fields (date, holiday, off|work), found 2"
    );
    assert_eq!(err("# 2027: s\n2027-01-01\t元旦\tholiday\n"), "x.tsv: line 2: kind `holiday` must be `off` or `work`");
    assert_eq!(
        err("2027-01-01\t元旦\toff\n"),
        "x.tsv: line 1: a day comes before any `# YEAR: source` header naming its notice"
    );
    assert_eq!(
        err("# 2027: s\n2027-01-01\t元旦\toff\n\n2027-01-01\t元旦\twork\n"),
        "x.tsv: line 4: 2027-01-01 is listed both as off and as work (first at line 2)"
    );
    assert_eq!(
        err("# 2027: s\n2027-01-01\t元旦\toff\n2027-01-01\t元旦\toff\n"),
        "x.tsv: line 3: 2027-01-01 is listed twice (first at line 2)"
    );
    assert_eq!(err("# 2027: s\n# 2027: t\n"), "x.tsv: line 2: the 2027 notice appears twice");
    assert_eq!(
        err("# 2027: s\n2026-05-01\t劳动节\toff\n"),
        "x.tsv: line 2: date 2026-05-01 does not belong to the 2027 notice"
    );
    let json_err = parse_any(r#"{"year":2027,"days":[{"name":"元旦","date":"2027-1-1x","isOffDay":true}]}"#, "y.json")
        .unwrap_err()
        .to_string();
    assert_eq!(json_err, "y.json: date `2027-1-1x`: not a date in YYYY-MM-DD form");
    let json_err = parse_any("{\"year\":2027,\n\"days\":[{\"name\":1}]}", "y.json").unwrap_err().to_string();
    assert!(json_err.starts_with("y.json: line 2: not a holiday-cn year file"), "{json_err}");
}

#[test]
fn an_import_contradicting_another_years_notice_changes_nothing() {
    let mut calendar = Calendar::official();
    // Give the 2026 notice a day off on 2026-12-31, then import a 2027 notice that calls it
    // a working day: the two notices contradict each other.
    let mut notice = parse_tsv("# 2026: s\n2026-12-31\t元旦\toff\n", "a.tsv").unwrap().remove(0);
    notice.year = 2026;
    let mut extended = calendar.notice(2026).unwrap().clone();
    extended.days.extend(notice.days.clone());
    calendar.import(extended, "a.tsv").unwrap();
    let conflicting = Notice {
        year: 2027,
        sources: vec![],
        days: vec![NoticeDay { date: d("2026-12-31"), holiday: "元旦".into(), kind: DayKind::Work }],
    };
    let err = calendar.import(conflicting, "b.tsv").unwrap_err();
    assert_eq!(err.to_string(), "b.tsv: 2026-12-31 is `work` in the 2027 notice but `off` in the loaded 2026 notice");
    assert!(!calendar.is_workday(d("2026-12-31")));
    assert!(!calendar.is_certain(2027));
}

#[test]
fn notices_round_trip_through_tsv() {
    let calendar = Calendar::official();
    for year in calendar.years() {
        let notice = calendar.notice(year).unwrap();
        let back = parse_tsv(&notice.to_tsv(), "round-trip").unwrap();
        assert_eq!(&back[0], notice);
    }
    assert_eq!(calendar.years().collect::<Vec<_>>(), (2019..=2026).collect::<Vec<_>>());
}

#[test]
fn every_embedded_notice_is_plausible_except_the_2020_extension() {
    let calendar = Calendar::official();
    for year in calendar.years() {
        let notice = calendar.notice(year).unwrap();
        let problems = notice.implausibilities(false);
        if year == 2020 {
            // The supplementary notice extended the Spring Festival by two days: a correction.
            assert_eq!(notice.net_days_off(), 13);
            assert!(notice.implausibilities(true).is_empty());
        } else {
            assert!(problems.is_empty(), "{year}: {problems:?}");
        }
    }
}

#[test]
fn an_official_notice_is_replaced_only_as_a_plausible_correction() {
    let mut calendar = Calendar::official();
    let one_day = parse_tsv("# 2026: x\n2026-10-01\t国庆节\toff\n", "x.tsv").unwrap().remove(0);
    let refused = calendar.import_checked(one_day.clone(), "x.tsv", None).unwrap_err();
    assert!(matches!(refused, CalendarError::Replacement { year: 2026, .. }), "{refused}");
    let refused = calendar.import_checked(one_day, "x.tsv", Some("typo")).unwrap_err();
    let CalendarError::Implausible { problems, .. } = &refused else { panic!("{refused}") };
    assert_eq!(problems.len(), 7, "{refused}");
    // Nothing changed: 2026-10-07 is still a day of the National Day break, 10-10 worked.
    assert!(!calendar.is_workday(d("2026-10-07")));
    assert!(calendar.is_workday(d("2026-10-10")));
    // The same notice again, as a correction with its reason, is accepted.
    let same = calendar.notice(2026).unwrap().clone();
    assert!(calendar.import_checked(same, "fix.tsv", Some("重新核对")).unwrap().replaced);
}

#[test]
fn a_new_year_must_balance_its_days_off() {
    let mut calendar = Calendar::official();
    let notice = parse_holiday_cn_json(NOTICE_2027_JSON, "2027.json").unwrap();
    let refused = calendar.import_checked(notice, "2027.json", None).unwrap_err();
    assert!(refused.to_string().contains("statutory holiday 清明节 is missing"), "{refused}");
    assert!(refused.to_string().contains("but 2027 has 13 statutory days off"), "{refused}");
    assert!(calendar.notice(2027).is_none());
}
