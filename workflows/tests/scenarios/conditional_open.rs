//! 有条件开放申请: Tianjin (2 working days, agreement, usage reports, stop on breach) and
//! Wuzhong (security commitment, suspension for violations).

use serde_json::json;
use statflow_workflows::engine::RefusalKind;

use crate::support::{t, Scenario};

fn tianjin(at: &str) -> Scenario {
    let mut s = Scenario::start(
        "conditional_open",
        "tianjin",
        at,
        json!({"resource": "企业信用数据", "purpose": "信贷风控模型", "user_org": "tj-user", "provider_org": "tj-provider", "center_org": "tj-center"}),
    );
    s.person("user", "user", "tj-user").person("provider", "provider", "tj-provider").person(
        "center",
        "big_data_center",
        "tj-center",
    );
    s
}

fn agreement(start: &str) -> serde_json::Value {
    json!({"agreement_no": "TJ-2026-001", "agreement_start": start, "term_months": 12, "report_every_months": 3, "security_measures": "专区使用,日志留存"})
}

pub fn tianjin_provided_used_and_ended() {
    let mut s = tianjin("2026-09-30T10:00:00+08:00");
    s.act("provider", "accept", json!({})).expect_step("decision");
    // 2 working days from Wednesday 09-30 skip the National Day break: 10-08 and 10-09.
    assert_eq!(s.due(), Some(t("2026-10-10T00:00:00+08:00")));
    s.advance_to("2026-10-08T10:00:00+08:00").act("provider", "provide", agreement("2026-10-08"));
    s.expect_step("in_use");
    // 12 months from 2026-10-08 end with 2027-10-08, in a year without a notice yet.
    assert_eq!(s.due(), Some(t("2027-10-09T00:00:00+08:00")));
    assert!(s.provisional());
    s.advance_to("2027-01-08T12:00:00+08:00").act("user", "report_usage", json!({"usage_report": "季度利用情况"}));
    s.advance_to("2027-10-09T01:00:00+08:00").expect_step("term_ended");
    let reminders: Vec<_> = s
        .notifications()
        .into_iter()
        .filter(|(_, template, _)| template == "usage_report_due")
        .map(|(at, _, _)| at)
        .collect();
    assert_eq!(
        reminders,
        vec![
            t("2027-01-08T09:00:00+08:00"),
            t("2027-04-08T09:00:00+08:00"),
            t("2027-07-08T09:00:00+08:00"),
            t("2027-10-08T09:00:00+08:00")
        ]
    );
    assert_eq!(
        s.access_changes(),
        vec![(t("2027-10-09T00:00:00+08:00"), "terminate".to_owned(), "tj-user".to_owned())]
    );
    assert_eq!(s.outcome(), Some("term_ended"));
    assert!(s.timers.is_empty());
}

pub fn tianjin_breach_confirmed_by_both_stops_service() {
    let mut s = tianjin("2026-03-02T10:00:00+08:00");
    s.act("provider", "accept", json!({})).act("provider", "provide", agreement("2026-03-03"));
    let term_due = s.due();
    s.advance_to("2026-05-11T10:00:00+08:00").act("provider", "record_breach", json!({"breach": "转售数据"}));
    // A breach that is not confirmed returns to use with the term unchanged.
    s.act("center", "not_confirmed", json!({"findings": "未发现转售"})).expect_step("in_use");
    assert_eq!(s.due(), term_due);
    s.act("provider", "record_breach", json!({"breach": "再次发现转售"}));
    s.act("center", "center_confirms", json!({"findings": "属实"})).expect_step("breach_verification");
    let twice = s.try_act("center", "center_confirms", json!({"findings": "属实"})).unwrap_err();
    assert_eq!(twice.kind, RefusalKind::Conflict);
    s.act("provider", "provider_confirms", json!({"findings": "属实"}));
    assert_eq!(s.outcome(), Some("service_stopped"));
    assert_eq!(
        s.access_changes(),
        vec![(t("2026-05-11T10:00:00+08:00"), "terminate".to_owned(), "tj-user".to_owned())]
    );
}

pub fn tianjin_refusals_and_overdue_decision() {
    let mut s = tianjin("2026-03-02T10:00:00+08:00");
    s.act("provider", "reject", json!({"reasons": "非有条件开放资源", "legal_basis": "第十条"}));
    assert_eq!(s.outcome(), Some("refused"));

    let mut s = tianjin("2026-03-02T10:00:00+08:00");
    s.act("provider", "accept", json!({}));
    // 2 working days: 03-03, 03-04. Overdue at 24:00 on 03-04.
    s.advance_to("2026-03-05T12:00:00+08:00");
    assert_eq!(s.escalations(), vec![(t("2026-03-05T00:00:00+08:00"), 1, vec!["provider".to_owned()])]);
    let wrong = s.try_act("user", "refuse", json!({"reasons": "x", "legal_basis": "y"})).unwrap_err();
    assert_eq!(wrong.kind, RefusalKind::WrongRole);
    s.act("provider", "refuse", json!({"reasons": "涉及个人隐私", "legal_basis": "第十条"}));
    assert_eq!(s.outcome(), Some("refused"));
}

fn wuzhong(at: &str) -> Scenario {
    let mut s = Scenario::start(
        "conditional_open",
        "wuzhong",
        at,
        json!({"resource": "不动产登记数据", "purpose": "普惠金融", "applicant_org": "wz-bank", "provider_org": "wz-land"}),
    );
    s.person("bank", "applicant", "wz-bank").person("land", "provider", "wz-land");
    s
}

fn commitment() -> serde_json::Value {
    json!({"security_commitment": "承诺按约定安全使用", "agreement_no": "WZ-7", "agreement_start": "2026-04-01", "term_months": 6})
}

pub fn wuzhong_commitment_violation_and_correction() {
    let mut s = wuzhong("2026-03-20T10:00:00+08:00");
    s.act("land", "approve", json!({})).expect_step("commitment");
    s.act("bank", "sign", commitment()).expect_step("in_use");
    // 6 months from 04-01 → 10-01, a National Day holiday: rolls to 10-08.
    assert_eq!(s.due(), Some(t("2026-10-09T00:00:00+08:00")));
    s.advance_to("2026-05-06T10:00:00+08:00").act(
        "land",
        "record_violation",
        json!({"violation": "未采取安全措施", "correction_days": 10}),
    );
    s.expect_step("suspended");
    // 10 days from 05-06 → 05-16, a Saturday: the limit ends with Monday 05-18.
    assert_eq!(s.due(), Some(t("2026-05-19T00:00:00+08:00")));
    s.advance_to("2026-05-12T10:00:00+08:00").act("land", "corrected", json!({})).expect_step("in_use");
    assert_eq!(s.due(), Some(t("2026-10-09T00:00:00+08:00")));
    assert_eq!(
        s.access_changes(),
        vec![
            (t("2026-05-06T10:00:00+08:00"), "suspend".to_owned(), "wz-bank".to_owned()),
            (t("2026-05-12T10:00:00+08:00"), "restore".to_owned(), "wz-bank".to_owned())
        ]
    );
    s.advance_to("2026-10-09T00:00:00+08:00");
    assert_eq!(s.outcome(), Some("term_ended"));
}

pub fn wuzhong_uncorrected_violation_is_escalated() {
    let mut s = wuzhong("2026-03-20T10:00:00+08:00");
    s.act("land", "approve", json!({})).act("bank", "sign", commitment());
    s.advance_to("2026-05-06T10:00:00+08:00").act(
        "land",
        "record_violation",
        json!({"violation": "转售", "correction_days": 10}),
    );
    s.advance_to("2026-05-20T10:00:00+08:00");
    assert_eq!(s.escalations()[0], (t("2026-05-19T00:00:00+08:00"), 1, vec!["applicant".to_owned()]));
    s.act("land", "not_corrected", json!({"reasons": "逾期未改正"})).expect_step("handling_decision");
    // Art. 46 (ch. 7) leaves the handling to a decision under the law: nothing terminated yet.
    assert_eq!(s.access_changes().last().map(|(_, c, _)| c.as_str()), Some("suspend"));
    let mut referred = wuzhong_violation_not_corrected();
    s.act("land", "terminate_access", json!({"legal_basis": "《数据安全法》第四十五条", "reasons": "拒不改正"}));
    assert_eq!(s.outcome(), Some("terminated"));
    assert!(s.activities().iter().any(
        |(_, a)| matches!(a, statflow_workflows::engine::Activity::Escalate { to, .. } if to[0].role == "regulator")
    ));
    assert_eq!(s.access_changes().last().map(|(_, c, _)| c.as_str()), Some("terminate"));
    referred.act(
        "land",
        "refer_onward",
        json!({"authority": "市公安局", "legal_basis": "《刑法》第二百五十三条之一", "reasons": "涉嫌犯罪"}),
    );
    assert_eq!(referred.outcome(), Some("referred"));
    assert_eq!(referred.access_changes().last().map(|(_, c, _)| c.as_str()), Some("suspend"));
    let mut handled = wuzhong_violation_not_corrected();
    // Undecided past the agency's 10 working days: escalated.
    let before = handled.escalations().len();
    handled.advance_to("2026-06-10T10:00:00+08:00");
    assert!(handled.escalations().len() > before);
    handled.act(
        "land",
        "other_measure",
        json!({"measure": "责令删除数据", "legal_basis": "协议第五条", "reasons": "已停止转售"}),
    );
    assert_eq!(handled.outcome(), Some("handled"));
}

fn wuzhong_violation_not_corrected() -> Scenario {
    let mut s = wuzhong("2026-03-20T10:00:00+08:00");
    s.act("land", "approve", json!({})).act("bank", "sign", commitment());
    s.advance_to("2026-05-06T10:00:00+08:00").act(
        "land",
        "record_violation",
        json!({"violation": "转售", "correction_days": 10}),
    );
    s.act("land", "not_corrected", json!({"reasons": "逾期未改正"}));
    s
}

pub fn wuzhong_refused_or_withdrawn() {
    let mut s = wuzhong("2026-03-20T10:00:00+08:00");
    s.act("land", "refuse", json!({"reasons": "不属于可开放范围"}));
    assert_eq!(s.outcome(), Some("refused"));
    let mut s = wuzhong("2026-03-20T10:00:00+08:00");
    s.act("land", "approve", json!({})).act("bank", "decline", json!({}));
    assert_eq!(s.outcome(), Some("withdrawn"));
}

/// Tianjin open data art. 19: an objection is verified "及时" — the agency's 5 working days.
pub fn open_data_objections_are_verified_in_the_agencys_time() {
    let objection = || {
        let mut s = Scenario::start(
            "open_data_objection",
            "tianjin",
            "2026-06-01T09:00:00+08:00",
            json!({"user_org": "tj-user", "provider_org": "tj-provider", "resource": "企业信用数据", "ground": "error", "objection": "注册资本有误"}),
        );
        s.person("user", "user", "tj-user").person("provider", "provider", "tj-provider");
        s
    };
    let mut s = objection();
    // 5 working days from Monday 06-01 → Monday 06-08.
    assert_eq!(s.due(), Some(t("2026-06-09T00:00:00+08:00")));
    s.act("provider", "correct", json!({"handling": "已更正"}));
    assert_eq!(s.outcome(), Some("upheld"));
    assert!(s.notifications().iter().any(|(_, template, role)| template == "objection_upheld" && role == "user"));
    let mut s = objection();
    s.advance_to("2026-06-10T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 1);
    s.act("provider", "dismiss", json!({"reasons": "数据与登记一致"}));
    assert_eq!(s.outcome(), Some("dismissed"));
}
