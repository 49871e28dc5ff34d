//! Wuzhong's sharing, backflow, correction, catalogue, withdrawal and access-suspension
//! procedures.

use serde_json::json;

use crate::support::{t, Scenario};

pub fn sharing_answered_and_completed_within_five_working_days_each() {
    let start = || {
        let mut s = Scenario::start(
            "sharing",
            "wuzhong",
            "2026-04-28T10:00:00+08:00",
            json!({"requester_org": "wz-tax", "provider_org": "wz-market", "data_needed": "企业登记信息"}),
        );
        s.person("market", "provider", "wz-market");
        s
    };
    let mut s = start();
    // 5 working days from Tuesday 04-28: 04-29, 04-30, (May Day break 05-01..05), 05-06,
    // 05-07, 05-08.
    assert_eq!(s.due(), Some(t("2026-05-09T00:00:00+08:00")));
    s.advance_to("2026-05-06T10:00:00+08:00").act("market", "agree", json!({})).expect_step("sharing");
    // Completion is counted from the answer: 05-07, 05-08, 05-09 (Saturday, adjusted
    // working day), 05-11, 05-12.
    assert_eq!(s.due(), Some(t("2026-05-13T00:00:00+08:00")));
    // Overdue when 05-12 ends; the supervisor hears when the next working day ends.
    s.advance_to("2026-05-14T10:00:00+08:00");
    assert_eq!(
        s.escalations(),
        vec![
            (t("2026-05-13T00:00:00+08:00"), 1, vec!["provider".to_owned()]),
            (t("2026-05-14T00:00:00+08:00"), 2, vec!["supervisor".to_owned()])
        ]
    );
    s.act("market", "shared", json!({}));
    assert_eq!(s.outcome(), Some("shared"));

    // Overdue when 05-08 ends; the supervisor when Saturday 05-09, a working day, ends.
    let mut s = start();
    s.advance_to("2026-05-10T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 2);
    s.act("market", "refuse", json!({"legal_basis": "《政务数据共享条例》"}));
    assert_eq!(s.outcome(), Some("refused"));
}

pub fn backflow_answered_within_five_working_days() {
    let start = || {
        let mut s = Scenario::start(
            "backflow",
            "wuzhong",
            "2026-06-15T10:00:00+08:00",
            json!({"lower_org": "county", "upper_org": "city", "data_needed": "人口数据"}),
        );
        s.person("city", "upper_unit", "city");
        s
    };
    let mut s = start();
    // 06-16, 06-17, 06-18, (端午 06-19..21), 06-22, 06-23.
    assert_eq!(s.due(), Some(t("2026-06-24T00:00:00+08:00")));
    s.advance_to("2026-06-25T10:00:00+08:00");
    assert_eq!(s.escalations()[0].0, t("2026-06-24T00:00:00+08:00"));
    s.act("city", "agree", json!({"method": "data_zone"}));
    assert_eq!(s.outcome(), Some("agreed"));
    let mut s = start();
    s.act("city", "refuse", json!({"reasons": "无回流必要"}));
    assert_eq!(s.outcome(), Some("refused"));
}

pub fn correction_forwarded_in_two_and_corrected_in_five_working_days() {
    let start = || {
        let mut s = Scenario::start(
            "data_correction",
            "wuzhong",
            "2026-09-24T16:00:00+08:00",
            json!({"authority_org": "wz-bureau", "holder_org": "wz-social", "applicant_org": "citizen", "objection": "参保记录有误"}),
        );
        s.person("bureau", "data_authority", "wz-bureau").person("social", "holder", "wz-social");
        s
    };
    let mut s = start();
    // 2 working days from Thursday 09-24: 09-28 (after 中秋 09-25..27) and 09-29.
    assert_eq!(s.due(), Some(t("2026-09-30T00:00:00+08:00")));
    s.advance_to("2026-09-30T10:00:00+08:00");
    assert_eq!(s.escalations()[0].0, t("2026-09-30T00:00:00+08:00"));
    s.act("bureau", "forward", json!({})).expect_step("correction");
    // 5 working days from 09-30: 10-08, 10-09, 10-10 (Saturday, adjusted), 10-12, 10-13.
    assert_eq!(s.due(), Some(t("2026-10-14T00:00:00+08:00")));
    s.advance_to("2026-10-15T10:00:00+08:00").act("social", "corrected", json!({"result": "已更正"}));
    assert_eq!(s.outcome(), Some("corrected"));
    assert!(s.escalations().iter().any(|(at, level, _)| *at == t("2026-10-14T00:00:00+08:00") && *level == 1));

    let mut s = start();
    s.act("bureau", "forward", json!({})).act("social", "confirmed_accurate", json!({"result": "数据无误"}));
    assert_eq!(s.outcome(), Some("confirmed"));
}

pub fn catalogue_updated_approved_and_revised() {
    let mut s = Scenario::start(
        "catalogue_update",
        "wuzhong",
        "2026-03-02T09:00:00+08:00",
        json!({"unit_org": "wz-health", "authority_org": "wz-bureau", "change": "新修订的条例施行", "changed_on": "2026-03-02"}),
    );
    s.person("health", "unit", "wz-health").person("bureau", "data_authority", "wz-bureau");
    // 15 working days from 03-02 → 03-23.
    assert_eq!(s.due(), Some(t("2026-03-24T00:00:00+08:00")));
    // Art. 13 counts from the change itself: a change on 02-13 recorded here on 03-02 is due
    // at the end of 03-12 (15 working days: the adjusted Saturdays 02-14 and 02-28 count, the
    // Spring Festival break 02-15 to 02-23 does not), not 15 working days from 03-02.
    let late = Scenario::start(
        "catalogue_update",
        "wuzhong",
        "2026-03-02T09:00:00+08:00",
        json!({"unit_org": "wz-health", "authority_org": "wz-bureau", "change": "职能调整", "changed_on": "2026-02-13"}),
    );
    assert_eq!(late.due(), Some(t("2026-03-13T00:00:00+08:00")));
    // Overdue when 03-23 ends; supervisor when 03-24 ends.
    s.advance_to("2026-03-25T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 2);
    s.act("health", "submit", json!({"catalogue": "v2"})).expect_step("approval");
    s.act("bureau", "request_changes", json!({"comments": "共享属性有误"})).expect_step("revision");
    // 10 working days from 03-25 → 04-09 (Friday 04-03 works, 清明 04-04..06 is off).
    assert_eq!(s.due(), Some(t("2026-04-10T00:00:00+08:00")));
    s.act("health", "resubmit", json!({"catalogue": "v3"}));
    // 5 working days for approval, from 03-25 → 04-01.
    assert_eq!(s.due(), Some(t("2026-04-02T00:00:00+08:00")));
    s.advance_to("2026-04-03T10:00:00+08:00");
    assert!(s.escalations().iter().any(|(at, _, _)| *at == t("2026-04-02T00:00:00+08:00")));
    s.advance_to("2026-04-07T10:00:00+08:00");
    // The revision's own limit never ran out: only the two overdue steps escalated.
    assert!(s.escalations().iter().all(|(at, _, _)| *at != t("2026-04-10T00:00:00+08:00")));
    s.act("bureau", "approve", json!({}));
    assert_eq!(s.outcome(), Some("published"));
    s.advance_to("2026-04-10T12:00:00+08:00");
    assert!(s.escalations().iter().all(|(at, _, _)| *at < t("2026-04-07T10:00:00+08:00")));
}

pub fn a_late_catalogue_revision_escalates() {
    let mut s = Scenario::start(
        "catalogue_update",
        "wuzhong",
        "2026-03-02T09:00:00+08:00",
        json!({"unit_org": "wz-health", "authority_org": "wz-bureau", "change": "职能调整", "changed_on": "2026-03-02"}),
    );
    s.person("health", "unit", "wz-health").person("bureau", "data_authority", "wz-bureau");
    s.act("health", "submit", json!({"catalogue": "v2"})).act("bureau", "request_changes", json!({"comments": "c"}));
    // 10 working days from 03-02 → 03-16; overdue when it ends.
    assert_eq!(s.due(), Some(t("2026-03-17T00:00:00+08:00")));
    s.advance_to("2026-03-17T08:00:00+08:00");
    assert_eq!(s.escalations(), vec![(t("2026-03-17T00:00:00+08:00"), 1, vec!["unit".to_owned()])]);
    s.act("health", "resubmit", json!({"catalogue": "v3"})).expect_step("approval");
}

pub fn withdrawal_verified_decided_and_reviewed() {
    let start = || {
        let mut s = Scenario::start(
            "withdrawal",
            "wuzhong",
            "2026-07-01T09:00:00+08:00",
            json!({"holder_org": "wz-transport", "requester_org": "citizen-li", "authority_org": "wz-bureau", "dataset": "车辆违章明细", "claim": "含个人隐私"}),
        );
        s.person("transport", "holder", "wz-transport").person("li", "requester", "citizen-li").person(
            "bureau",
            "data_authority",
            "wz-bureau",
        );
        s
    };
    let mut s = start();
    s.act("transport", "suspend_opening", json!({})).expect_step("verification");
    assert_eq!(s.state.record_status.as_deref(), Some("opening_suspended"));
    s.act("transport", "withdraw", json!({"result": "已撤回"})).expect_step("decided");
    assert!(s.notifications().iter().any(|(_, template, role)| template == "withdrawal_result" && role == "requester"));
    s.act("li", "accept_result", json!({}));
    assert_eq!(s.outcome(), Some("closed"));

    let mut s = start();
    s.act("transport", "unfounded", json!({"result": "已脱敏"})).act(
        "li",
        "request_review",
        json!({"reasons": "仍可识别"}),
    );
    s.act("bureau", "overturn", json!({"reasons": "可识别个人"})).expect_step("verification");
    s.act("transport", "fix_and_reopen", json!({"result": "重新脱敏后开放"}));
    assert_eq!(s.state.record_status.as_deref(), Some("reopened"));
    s.act("li", "request_review", json!({"reasons": "r"})).act("bureau", "uphold", json!({"reasons": "处理得当"}));
    assert_eq!(s.outcome(), Some("closed"));
}

pub fn access_suspension_restored_or_referred() {
    let start = || {
        let mut s = Scenario::start(
            "access_suspension",
            "wuzhong",
            "2026-08-03T09:00:00+08:00",
            json!({"authority_org": "wz-bureau", "user_org": "company", "violation": "no_security_measures", "details": "明文存储", "correction_days": 15}),
        );
        s.person("bureau", "data_authority", "wz-bureau").person("company", "user", "company");
        s
    };
    let mut s = start();
    // 15 days from 08-03 → 08-18.
    assert_eq!(s.due(), Some(t("2026-08-19T00:00:00+08:00")));
    s.act("company", "report_correction", json!({"correction": "已加密"})).expect_step("verification");
    s.act("bureau", "reject", json!({"reasons": "未全部加密"})).expect_step("suspended");
    // The limit counts from the start of the suspension, not from the rejection.
    assert_eq!(s.due(), Some(t("2026-08-19T00:00:00+08:00")));
    s.act("company", "report_correction", json!({"correction": "全部加密"})).act("bureau", "confirm", json!({}));
    assert_eq!(s.outcome(), Some("restored"));
    let changes: Vec<_> = s.access_changes().into_iter().map(|(_, c, subject)| (c, subject)).collect();
    assert_eq!(
        changes,
        vec![
            ("suspend".into(), "company".into()),
            ("suspend".into(), "company".into()),
            ("restore".into(), "company".into())
        ]
    );

    // Art. 46 (ch. 7): "未按照要求改正的,依法依规处理" — the authority decides under the law
    // it names; access stays closed until it does, and nothing is terminated on its own.
    let not_corrected = || {
        let mut s = start();
        s.advance_to("2026-08-25T10:00:00+08:00");
        assert!(s.escalations().len() >= 3);
        s.act("bureau", "not_corrected", json!({"reasons": "逾期未改正"})).expect_step("handling_decision");
        assert_eq!(s.access_changes().last().map(|(_, c, _)| c.clone()), Some("suspend".to_owned()));
        s
    };
    let mut s = not_corrected();
    let missing = s.try_act("bureau", "terminate_access", json!({"reasons": "r"})).unwrap_err();
    assert_eq!(missing.field.as_deref(), Some("legal_basis"), "the decision names its legal basis");
    s.act("bureau", "terminate_access", json!({"legal_basis": "《数据安全法》第四十五条", "reasons": "拒不改正"}));
    assert_eq!(s.outcome(), Some("access_terminated"));
    assert_eq!(s.access_changes().last().map(|(_, c, _)| c.clone()), Some("terminate".to_owned()));
    let mut s = not_corrected();
    s.act(
        "bureau",
        "refer_onward",
        json!({"authority": "市网信办", "legal_basis": "《网络安全法》", "reasons": "涉嫌违法"}),
    );
    assert_eq!(s.outcome(), Some("referred"));
    assert_eq!(
        s.access_changes().last().map(|(_, c, _)| c.clone()),
        Some("suspend".to_owned()),
        "still closed, not terminated"
    );
    let mut s = not_corrected();
    s.act(
        "bureau",
        "other_measure",
        json!({"measure": "约谈", "legal_basis": "本办法第四十六条", "reasons": "情节轻微"}),
    );
    assert_eq!(s.outcome(), Some("handled"));
    // Undecided for 10 working days (the agency's rule): escalated like any overdue task.
    let mut s = not_corrected();
    let before = s.escalations().len();
    s.advance_to("2026-09-15T10:00:00+08:00");
    assert!(s.escalations().len() > before, "the decision is overdue");
}

/// Art. 21 para. 2: the authority starts a verification itself, within a limit it sets.
pub fn the_authority_starts_a_verification_with_its_own_limit() {
    let start = || {
        let mut s = Scenario::start(
            "authority_correction",
            "wuzhong",
            "2026-06-01T09:00:00+08:00",
            json!({"authority_org": "wz-bureau", "holder_org": "wz-health", "dataset": "出生登记", "finding": "inconsistent", "details": "与公安数据不一致", "verify_days": 10}),
        );
        s.person("health", "holder", "wz-health");
        s
    };
    let mut s = start();
    // 10 days from 06-01 → 06-11.
    assert_eq!(s.due(), Some(t("2026-06-12T00:00:00+08:00")));
    s.advance_to("2026-06-12T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 1);
    s.act("health", "corrected", json!({"correction": "已比对更正"}));
    assert_eq!(s.outcome(), Some("corrected"));
    let mut s = start();
    s.act("health", "confirmed_correct", json!({"explanation": "公安数据待更新"}));
    assert_eq!(s.outcome(), Some("confirmed"));
}

/// Art. 26 para. 3: a request to verify data that is not shared is answered "及时" — the
/// agency's 5 working days — unless a law provides otherwise.
pub fn unshared_data_is_verified_on_request() {
    let start = || {
        let mut s = Scenario::start(
            "verification_request",
            "wuzhong",
            "2026-06-01T09:00:00+08:00",
            json!({"requester_org": "wz-tax", "provider_org": "wz-police", "data": "户籍信息", "need": "核实纳税人身份"}),
        );
        s.person("police", "provider", "wz-police");
        s
    };
    let mut s = start();
    assert_eq!(s.due(), Some(t("2026-06-09T00:00:00+08:00")));
    s.act("police", "answer", json!({"result": "一致", "manner": "比对结果"}));
    assert_eq!(s.outcome(), Some("answered"));
    let mut s = start();
    // Not answered: the provider when 06-08 ends, its supervisor a working day later.
    s.advance_to("2026-06-10T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 2);
    s.act("police", "excepted", json!({"legal_basis": "《居民身份证法》第十九条"}));
    assert_eq!(s.outcome(), Some("excepted"));
}

/// Art. 33 para. 3: a risk found in one's own open data stops the opening at once.
pub fn a_risk_found_in_open_data_stops_its_opening_at_once() {
    let start = || {
        Scenario::start(
            "risk_suspension",
            "wuzhong",
            "2026-06-01T09:00:00+08:00",
            json!({"holder_org": "wz-health", "dataset": "医疗机构名录", "risk": "含个人联系方式"}),
        )
    };
    let mut s = start();
    s.person("health", "holder", "wz-health");
    assert_eq!(s.state.record_status.as_deref(), Some("opening_suspended"), "at once, on entering");
    s.act("health", "risk_eliminated", json!({"measures": "已脱敏"}));
    assert_eq!((s.outcome(), s.state.record_status.as_deref()), (Some("reopened"), Some("reopened")));
    let mut s = start();
    s.person("health", "holder", "wz-health");
    s.act("health", "withdraw", json!({"reasons": "无法脱敏"}));
    assert_eq!((s.outcome(), s.state.record_status.as_deref()), (Some("withdrawn"), Some("withdrawn")));
}
