//! 授权运营 (Tai'an art. 13–15, 23–24; Jinzhou art. 9, 13), with the annual evaluation and
//! its rectification child.

use serde_json::json;
use statflow_workflows::engine::{Activity, RefusalKind};

use crate::support::{t, Scenario};

fn taian(at: &str) -> Scenario {
    let mut s = Scenario::start(
        "authorized_operation",
        "taian",
        at,
        json!({"authority_org": "ta-bureau", "operator_org": "ta-operator", "scope": "交通出行数据", "application_days": 20, "publicity_days": 7}),
    );
    s.person("bureau", "data_authority", "ta-bureau").person("operator", "operator", "ta-operator");
    s
}

fn sign(term_years: i64) -> serde_json::Value {
    json!({"agreement_no": "TA-AUTH-1", "effective_from": "2026-04-01", "term_years": term_years})
}

pub fn taian_selection_to_expiry_and_log_retention() {
    let mut s = taian("2026-02-02T09:00:00+08:00");
    s.act("bureau", "record_application", json!({"applicant": "某数据公司", "materials": "申报书"}));
    // Application window: 20 days from 02-02 → 02-22, inside the Spring Festival break,
    // rolls to Tuesday 02-24; applications close when it ends.
    assert_eq!(s.due(), Some(t("2026-02-25T00:00:00+08:00")));
    s.advance_to("2026-02-25T09:00:00+08:00").expect_step("expert_review");
    let late = s.try_act("bureau", "record_application", json!({"applicant": "迟到者", "materials": "x"})).unwrap_err();
    assert_eq!(late.kind, RefusalKind::NotAllowed);
    s.act("bureau", "select", json!({"operator": "某数据公司", "review_report": "综合评审第一"}));
    // Publicity: 7 days from 02-25, ending with 03-04.
    assert_eq!(s.due(), Some(t("2026-03-05T00:00:00+08:00")));
    s.advance_to("2026-03-03T09:00:00+08:00").act(
        "bureau",
        "record_objection",
        json!({"objector": "竞争者", "objection": "资质存疑"}),
    );
    // Dismissing the objection does not cut the publicity short (art. 14(4): 公示无异议后):
    // the list is publicized again for the full 7 days, from 03-03 to the end of 03-10, and
    // only then does the collective decision follow.
    s.act("bureau", "dismiss", json!({"reasons": "资质符合"})).expect_step("candidate_publicity");
    assert_eq!(s.due(), Some(t("2026-03-11T00:00:00+08:00")));
    assert!(s.try_act("bureau", "approve", json!({"meeting_minutes": "x"})).is_err(), "no decision during publicity");
    s.advance_to("2026-03-11T09:00:00+08:00").expect_step("collective_decision");
    s.act("bureau", "approve", json!({"meeting_minutes": "党组会审议通过"})).expect_step("signing");
    // Tai'an's term is "一般不超过3年": longer needs its reason (it is not refused).
    let too_long = s.try_act("bureau", "sign", sign(5)).unwrap_err();
    assert_eq!((too_long.kind, too_long.field.as_deref()), (RefusalKind::InvalidData, Some("over_cap_reason")));
    assert_eq!(
        too_long.message,
        "the term 2026-04-01 to 2031-04-01 is longer than the usual 3 years (《泰安市公共数据开发利用管理办法(试行)》第十四条第(四)项): state the reason in `over_cap_reason`"
    );
    s.act("bureau", "sign", sign(3)).expect_step("active");
    assert!(s
        .activities()
        .iter()
        .any(|(_, a)| matches!(a, Activity::IssueCertificate { kind, .. } if kind == "数据资源授权证书")));
    assert_eq!(s.state.record_status.as_deref(), Some("active"));
    // 3 years from 2026-04-01 → 2029-04-01, a Sunday: the term ends with Monday 04-02
    // (provisional: no 2029 notice yet).
    assert_eq!(s.due(), Some(t("2029-04-03T00:00:00+08:00")));
    assert!(s.provisional());
    // The annual work report (art. 23) is its own tracked obligation (annual_work_report),
    // started each year for every authorization in its term.
    s.advance_to("2029-04-03T00:00:00+08:00").expect_step("expired");
    let templates: Vec<_> = s.notifications().into_iter().map(|(at, template, _)| (at, template)).collect();
    // The renewal window opens 6 months before the last day of the term.
    let renewal: Vec<_> = templates.iter().filter(|(_, n)| n == "renewal_window_open").map(|(at, _)| *at).collect();
    assert_eq!(renewal, vec![t("2028-10-02T09:00:00+08:00")]);
    assert_eq!(
        s.access_changes(),
        vec![(t("2029-04-03T00:00:00+08:00"), "terminate".to_owned(), "ta-operator".to_owned())]
    );
    // Logs are kept 6 months more: 2029-04-03 + 6 months → 2029-10-03 (a weekday by the
    // weekend rule) before the record may be archived.
    assert_eq!(s.due(), Some(t("2029-10-04T00:00:00+08:00")));
    s.advance_to("2029-10-04T00:00:00+08:00");
    assert_eq!(s.outcome(), Some("expired"));
}

pub fn taian_objection_upheld_and_no_candidate() {
    // 20 days from 03-02 → Sunday 03-22, rolled to Monday 03-23: applications close at
    // 24:00 on 03-23.
    let mut s = taian("2026-03-02T09:00:00+08:00");
    assert_eq!(s.due(), Some(t("2026-03-24T00:00:00+08:00")));
    s.advance_to("2026-03-24T09:00:00+08:00").act("bureau", "select", json!({"operator": "甲", "review_report": "r"}));
    s.act("bureau", "record_objection", json!({"objector": "乙", "objection": "评审程序违规"}));
    s.act("bureau", "uphold", json!({"reasons": "重新评审"})).expect_step("expert_review");
    s.act("bureau", "no_candidate", json!({"reasons": "均不符合条件"}));
    assert_eq!(s.outcome(), Some("not_authorized"));

    let mut s = taian("2026-03-02T09:00:00+08:00");
    s.advance_to("2026-03-24T09:00:00+08:00").act("bureau", "select", json!({"operator": "甲", "review_report": "r"}));
    // Publicity of 7 days from 03-24 ends with 03-31; then the collective decision.
    s.advance_to("2026-03-31T23:59:00+08:00").expect_step("candidate_publicity");
    s.advance_to("2026-04-01T00:00:00+08:00").expect_step("collective_decision");
    s.act("bureau", "reject", json!({"reasons": "协议条款需调整"}));
    assert_eq!(s.outcome(), Some("not_authorized"));
}

fn active_taian() -> Scenario {
    let mut s = taian("2026-02-02T09:00:00+08:00");
    s.advance_to("2026-02-25T09:00:00+08:00").act("bureau", "select", json!({"operator": "甲", "review_report": "r"}));
    s.advance_to("2026-03-05T00:00:00+08:00").act("bureau", "approve", json!({"meeting_minutes": "m"}));
    s.act("bureau", "sign", sign(3));
    s
}

pub fn taian_suspended_restored_then_terminated_by_evaluation_signals() {
    let mut s = active_taian();
    let term_due = s.due();
    s.advance_to("2027-05-10T10:00:00+08:00").signal("suspend_access").expect_step("suspended");
    assert_eq!(s.state.record_status.as_deref(), Some("suspended"));
    // The term keeps running while access is suspended.
    assert_eq!(s.due(), term_due);
    s.act("bureau", "record_note", json!({"note": "整改方案已提交"}));
    s.advance_to("2027-06-10T10:00:00+08:00").signal("restore_access").expect_step("active");
    assert_eq!(s.due(), term_due);
    s.advance_to("2027-09-01T10:00:00+08:00").signal("suspend_access").signal("terminate").expect_step("terminated");
    let changes: Vec<_> = s.access_changes().into_iter().map(|(_, c, _)| c).collect();
    assert_eq!(changes, vec!["suspend", "suspend", "terminate"]);
    s.advance_to("2028-03-02T00:00:00+08:00");
    assert_eq!(s.outcome(), Some("terminated"));

    let mut s = active_taian();
    s.advance_to("2027-01-05T10:00:00+08:00").signal("terminate").expect_step("terminated");
}

pub fn taian_expiry_while_suspended() {
    let mut s = active_taian();
    s.advance_to("2029-03-01T10:00:00+08:00").signal("suspend_access");
    // 2029-04-01 is a Sunday: the term ends with Monday 04-02.
    s.advance_to("2029-04-03T00:00:00+08:00").expect_step("expired");
    let unknown = s
        .apply(statflow_workflows::engine::Event::Signal { name: "restore_access".into(), data: json!({}) })
        .unwrap_err();
    assert_eq!(unknown.kind, RefusalKind::NotAllowed);
}

fn jinzhou(at: &str) -> Scenario {
    let mut s = Scenario::start(
        "authorized_operation",
        "jinzhou",
        at,
        json!({"authority_org": "jz-bureau", "operator_org": "jz-operator", "scope": "医疗健康数据"}),
    );
    s.person("bureau", "data_authority", "jz-bureau").person("operator", "operator", "jz-operator");
    s
}

pub fn jinzhou_five_year_term_and_termination() {
    let mut s = jinzhou("2026-03-02T09:00:00+08:00");
    s.act("bureau", "select", json!({"method": "open_tender", "operator": "锦州数据集团"}));
    let over_cap = s
        .try_act("bureau", "sign", json!({"agreement_no": "JZ-1", "effective_from": "2026-04-01", "term_years": 6}))
        .unwrap_err();
    // Art. 9: "原则上不超过5年" — a longer term needs its reason; it is not refused.
    assert_eq!(over_cap.field.as_deref(), Some("over_cap_reason"));
    assert!(over_cap.message.contains("longer than the usual 5 years"), "{}", over_cap.message);
    let mut longer = jinzhou("2026-03-02T09:00:00+08:00");
    longer.act("bureau", "select", json!({"method": "open_tender", "operator": "锦州数据集团"}));
    longer.act(
        "bureau",
        "sign",
        json!({"agreement_no": "JZ-2", "effective_from": "2026-04-01", "term_years": 6, "over_cap_reason": "重大基础设施项目回收期"}),
    );
    assert_eq!(longer.state.data["term_over_cap"], json!(true));
    s.act("bureau", "sign", json!({"agreement_no": "JZ-1", "effective_from": "2026-04-01", "term_years": 5}));
    assert_eq!(s.state.data["term_over_cap"], json!(false));
    // 5 years from 2026-04-01 → 2031-04-01 (a Tuesday by the weekend rule).
    assert_eq!(s.due(), Some(t("2031-04-02T00:00:00+08:00")));
    s.advance_to("2027-05-10T10:00:00+08:00").act(
        "bureau",
        "record_rectification_request",
        json!({"findings": "日志不全"}),
    );
    s.advance_to("2031-04-02T00:00:00+08:00");
    assert_eq!(s.outcome(), Some("expired"));

    let mut s = jinzhou("2026-03-02T09:00:00+08:00");
    s.act("bureau", "select", json!({"method": "negotiation", "operator": "x"}));
    s.act("bureau", "sign", json!({"agreement_no": "JZ-2", "effective_from": "2026-04-01", "term_years": 2}));
    s.signal("terminate");
    assert_eq!(s.outcome(), Some("terminated"));
    let mut s = jinzhou("2026-03-02T09:00:00+08:00");
    s.act("bureau", "abandon", json!({"reasons": "流标"}));
    assert_eq!(s.outcome(), Some("not_authorized"));
}

fn evaluation(jurisdiction: &str) -> Scenario {
    let mut s = Scenario::start(
        "annual_evaluation",
        jurisdiction,
        "2026-12-01T09:00:00+08:00",
        json!({"authority_org": "bureau", "operator_org": "operator", "authorization_instance": "auth-42", "year": 2026, "materials_days": 15}),
    );
    s.person("bureau", "data_authority", "bureau").person("operator", "operator", "operator");
    s
}

pub fn taian_evaluation_compliant_or_restored_after_rectification() {
    let mut s = evaluation("taian");
    // 15 days from 12-01 → 12-16, a Wednesday.
    assert_eq!(s.due(), Some(t("2026-12-17T00:00:00+08:00")));
    s.act("operator", "submit_materials", json!({"materials": "年度材料"})).act(
        "bureau",
        "compliant",
        json!({"findings": "符合"}),
    );
    assert_eq!(s.outcome(), Some("compliant"));
    assert!(s.signals_sent().is_empty());

    let mut s = evaluation("taian");
    s.act("operator", "submit_materials", json!({"materials": "m"}));
    s.act("bureau", "non_compliant", json!({"findings": "超范围使用", "rectification_days": 30}))
        .expect_step("rectification");
    // Tai'an: access is suspended at once, and the rectification runs as a child.
    assert_eq!(s.signals_sent(), vec![("auth-42".to_owned(), "suspend_access".to_owned())]);
    let (procedure, input) = s.child_started().unwrap();
    assert_eq!(procedure, "rectification");
    assert_eq!(
        input,
        json!({"authority_org": "bureau", "operator_org": "operator", "rectification_days": 30, "findings": "超范围使用"})
    );
    s.child_completes("rectified");
    assert_eq!(s.outcome(), Some("restored"));
    assert_eq!(s.signals_sent().last().unwrap(), &("auth-42".to_owned(), "restore_access".to_owned()));
}

pub fn taian_evaluation_overdue_materials_then_failed_rectification_terminates() {
    let mut s = evaluation("taian");
    s.advance_to("2026-12-21T10:00:00+08:00");
    // Overdue at 24:00 on 12-16: the operator, then its supervisor when 12-17 ends, then the
    // regulator when 12-21 ends (3 working days: 12-17, 12-18, 12-21) — not yet at 10:00.
    assert_eq!(
        s.escalations(),
        vec![
            (t("2026-12-17T00:00:00+08:00"), 1, vec!["operator".to_owned()]),
            (t("2026-12-18T00:00:00+08:00"), 2, vec!["supervisor".to_owned()]),
        ]
    );
    s.act("operator", "submit_materials", json!({"materials": "迟交材料"}));
    s.act("bureau", "non_compliant", json!({"findings": "f", "rectification_days": 30}));
    s.child_completes("failed");
    // Art. 24: the authority terminates "按照规定" — its decision, not an automatic
    // consequence; until it decides, access stays suspended and nothing is terminated.
    s.expect_step("termination_decision");
    assert_eq!(s.signals_sent().last().unwrap(), &("auth-42".to_owned(), "suspend_access".to_owned()));
    s.act("bureau", "terminate", json!({"reasons": "逾期未整改,按协议终止"}));
    assert_eq!(s.outcome(), Some("terminated"));
    assert_eq!(s.signals_sent().last().unwrap(), &("auth-42".to_owned(), "terminate".to_owned()));
    assert!(s.activities().iter().any(|(_, a)| matches!(a, Activity::Escalate { to, title, .. } if to[0].role == "regulator" && title == "authorization_terminated")));
}

pub fn taian_failed_rectification_waits_for_the_authoritys_decision() {
    let failed = || {
        let mut s = evaluation("taian");
        s.act("operator", "submit_materials", json!({"materials": "m"}));
        s.act("bureau", "non_compliant", json!({"findings": "f", "rectification_days": 30}));
        s.child_completes("failed");
        s.expect_step("termination_decision");
        s
    };
    // A further limit: the suspension stays, a new rectification runs; completing it restores.
    let mut s = failed();
    s.act("bureau", "set_further_limit", json!({"reasons": "已部分整改", "rectification_days": 15}))
        .expect_step("further_rectification");
    let (procedure, input) = s.child_started().unwrap();
    assert_eq!((procedure.as_str(), &input["rectification_days"]), ("rectification", &json!(15)));
    assert_eq!(s.signals_sent().last().unwrap(), &("auth-42".to_owned(), "suspend_access".to_owned()));
    s.child_completes("rectified");
    assert_eq!(s.outcome(), Some("restored"));
    // Failing again comes back to the decision.
    let mut s = failed();
    s.act("bureau", "set_further_limit", json!({"reasons": "r", "rectification_days": 15}));
    s.child_completes("failed");
    s.expect_step("termination_decision");
    // Reviewed and not terminated: access is restored, with reasons.
    let mut s = failed();
    s.act("bureau", "restore_after_review", json!({"reasons": "整改已实质完成"}));
    assert_eq!(s.outcome(), Some("restored"));
    // A decision not taken in 10 working days (the agency's rule) climbs to the supervisor.
    let mut s = failed();
    s.advance_to("2026-12-20T00:00:00+08:00");
    assert!(s.escalations().iter().any(|(_, level, to)| *level == 2 && to[0] == "supervisor"), "{:?}", s.escalations());
}

pub fn jinzhou_evaluation_paths() {
    let mut s = evaluation("jinzhou");
    // Materials withheld past 12-16: the operator is reminded, then escalated.
    s.advance_to("2026-12-17T08:00:00+08:00");
    assert_eq!(s.escalations(), vec![(t("2026-12-17T00:00:00+08:00"), 1, vec!["operator".to_owned()])]);
    s.act("operator", "submit_materials", json!({"materials": "m"})).act(
        "bureau",
        "compliant",
        json!({"findings": "无问题"}),
    );
    assert_eq!(s.outcome(), Some("compliant"));
    let rectifying = || {
        let mut s = evaluation("jinzhou");
        s.act("operator", "submit_materials", json!({"materials": "m"}));
        s.act("bureau", "problems_found", json!({"findings": "f", "rectification_days": 20}));
        // Jinzhou does not suspend access while rectifying.
        assert!(s.signals_sent().is_empty());
        s
    };
    let mut s = rectifying();
    s.child_completes("rectified");
    assert_eq!(s.outcome(), Some("rectified"));
    // Art. 13 stops at the re-evaluation: a failure goes to the authority's decision under
    // the agreement, never straight to termination.
    let mut s = rectifying();
    s.child_completes("failed");
    s.expect_step("decision");
    assert!(s.signals_sent().is_empty());
    s.act("bureau", "terminate", json!({"reasons": "依协议终止"}));
    assert_eq!(s.outcome(), Some("terminated"));
    assert_eq!(s.signals_sent(), vec![("auth-42".to_owned(), "terminate".to_owned())]);
    let mut s = rectifying();
    s.child_completes("failed");
    s.act("bureau", "set_further_limit", json!({"reasons": "给予整改机会", "rectification_days": 10}))
        .expect_step("rectification");
    assert_eq!(s.child_started().unwrap().1["rectification_days"], 10);
    let mut s = rectifying();
    s.child_completes("failed");
    // Not decided within the agency's 10 working days (from Wednesday 12-02): escalated.
    s.advance_to("2026-12-17T09:00:00+08:00");
    assert!(s.escalations().iter().any(|(_, level, to)| *level == 2 && to[0] == "supervisor"), "{:?}", s.escalations());
    s.act("bureau", "other_decision", json!({"decision": "缩减授权范围", "reasons": "依协议第八条"}));
    assert_eq!(s.outcome(), Some("decided_otherwise"));
    assert!(s.signals_sent().is_empty());
}

fn rectification(jurisdiction: &str) -> Scenario {
    let mut s = Scenario::start(
        "rectification",
        jurisdiction,
        "2026-12-10T10:00:00+08:00",
        json!({"authority_org": "bureau", "operator_org": "operator", "findings": "超范围使用", "rectification_days": 30}),
    );
    s.person("bureau", "data_authority", "bureau").person("operator", "operator", "operator");
    s
}

pub fn rectification_completed_failed_or_out_of_time() {
    for jurisdiction in ["taian", "jinzhou"] {
        let mut s = rectification(jurisdiction);
        // 30 days from 12-10 → 2027-01-09, a Saturday by the weekend rule: Monday 01-11.
        assert_eq!(s.due(), Some(t("2027-01-12T00:00:00+08:00")));
        s.act("operator", "submit_plan", json!({"plan": "整改方案"}));
        s.act("operator", "report_completion", json!({"report": "已整改"})).act(
            "bureau",
            "pass",
            json!({"findings": "到位"}),
        );
        assert_eq!(s.outcome(), Some("rectified"));

        let mut s = rectification(jurisdiction);
        s.act("operator", "report_completion", json!({"report": "r"})).act(
            "bureau",
            "fail",
            json!({"findings": "不到位"}),
        );
        assert_eq!(s.outcome(), Some("failed"));

        let mut s = rectification(jurisdiction);
        s.advance_to("2027-01-12T00:00:00+08:00");
        assert_eq!(s.outcome(), Some("failed"));
        let reminders: Vec<_> = s.notifications().into_iter().map(|(at, _, _)| at).collect();
        assert_eq!(reminders, vec![t("2027-01-06T09:00:00+08:00"), t("2027-01-08T09:00:00+08:00")]);
    }
}

/// Tai'an art. 23: the yearly report is an obligation with a due date (the agency's rule,
/// the text gives none), reminders and escalation, reviewed by the authority.
pub fn taian_annual_work_report_is_tracked_until_reviewed() {
    let mut s = Scenario::start(
        "annual_work_report",
        "taian",
        "2027-01-01T09:00:00+08:00",
        json!({"authority_org": "bureau", "operator_org": "operator", "authorization_instance": "42", "year": 2026}),
    );
    s.person("bureau", "data_authority", "bureau").person("operator", "operator", "operator");
    // 30 days from 01-01 → 01-31, a Sunday: the limit ends with Monday 02-01.
    assert_eq!(s.due(), Some(t("2027-02-02T00:00:00+08:00")));
    s.advance_to("2027-02-03T10:00:00+08:00");
    assert_eq!(s.escalations()[0].2, vec!["operator".to_owned()]);
    let basis = s.escalation_bases().into_iter().find_map(|(_, basis)| basis);
    assert!(basis.unwrap().starts_with("本单位规定(本单位授权运营监管规程:每年1月31日前提交上一年度工作情况报告)"));
    s.act("operator", "submit", json!({"report": "2026年度工作情况"})).expect_step("review");
    s.act("bureau", "request_revision", json!({"comments": "补充收益分配情况"})).expect_step("report");
    s.act("operator", "submit", json!({"report": "补充后"})).act("bureau", "accept", json!({}));
    assert_eq!(s.outcome(), Some("accepted"));
}

/// Civil Code art. 204: an agreement's own dates ("自2026年4月1日起至2027年9月30日止")
/// decide the term, including its first day; a term shorter than a year is possible, and an
/// agreed last day does not roll past days off the way a counted period does.
pub fn an_agreed_term_runs_through_its_last_day() {
    let signed = |data: serde_json::Value| {
        let mut s = taian("2026-02-02T09:00:00+08:00");
        s.act("bureau", "record_application", json!({"applicant": "甲", "materials": "m"}));
        s.advance_to("2026-02-25T09:00:00+08:00");
        s.act("bureau", "select", json!({"operator": "甲", "review_report": "r"}));
        s.advance_to("2026-03-05T09:00:00+08:00").expect_step("collective_decision");
        s.act("bureau", "approve", json!({"meeting_minutes": "m"}));
        (s.try_act("bureau", "sign", data.clone()), s)
    };
    // 18 months, through Wednesday 2027-09-30 — then the National Day break, which an agreed
    // day does not roll into.
    let (result, s) =
        signed(json!({"agreement_no": "A", "effective_from": "2026-04-01", "effective_until": "2027-09-30"}));
    result.unwrap();
    assert_eq!(s.due(), Some(t("2027-10-01T00:00:00+08:00")));
    assert_eq!(
        (s.state.data["term_last_day"].as_str(), &s.state.data["term_over_cap"]),
        (Some("2027-09-30"), &json!(false))
    );
    // Six months is a term too.
    let (result, s) =
        signed(json!({"agreement_no": "B", "effective_from": "2026-04-01", "effective_until": "2026-09-30"}));
    result.unwrap();
    assert_eq!(s.due(), Some(t("2026-10-01T00:00:00+08:00")));
    // "至…止" 3 years later, the day before the anniversary, is within the cap; the
    // anniversary itself is one day over it.
    let (result, _) =
        signed(json!({"agreement_no": "C", "effective_from": "2026-04-01", "effective_until": "2029-03-31"}));
    result.unwrap();
    let (result, _) =
        signed(json!({"agreement_no": "D", "effective_from": "2026-04-01", "effective_until": "2029-04-02"}));
    assert_eq!(result.unwrap_err().field.as_deref(), Some("over_cap_reason"));
    // A last day before the first is refused, naming the field.
    let (result, _) =
        signed(json!({"agreement_no": "E", "effective_from": "2026-04-01", "effective_until": "2026-03-31"}));
    assert_eq!(result.unwrap_err().field.as_deref(), Some("effective_until"));
    // Neither a last day nor a length: nothing to compute.
    let (result, _) = signed(json!({"agreement_no": "F", "effective_from": "2026-04-01"}));
    assert!(result.is_err());
}
