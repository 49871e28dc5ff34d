//! Supervision: security incidents counted in hours, rectification orders, confidential
//! complaints, and the half-yearly summary.

use serde_json::json;
use statflow_workflows::definition::model::Field;
use statflow_workflows::engine::{data, Activity, RefusalKind};

use crate::support::{library, t, Scenario};

fn incident() -> Scenario {
    let mut s = Scenario::start(
        "incident_report",
        "tianjin",
        "2026-10-03T22:15:00+08:00",
        json!({"responsible_org": "operator", "authority_org": "tj-bureau", "incident": "接口异常访问", "report_within_hours": 2}),
    );
    s.person("operator", "responsible", "operator").person("bureau", "data_authority", "tj-bureau");
    s
}

pub fn incident_reports_run_in_hours_through_holidays() {
    let mut s = incident();
    // Hours ignore the National Day holiday: due at 00:15 on 10-04.
    assert_eq!(s.due(), Some(t("2026-10-04T00:15:00+08:00")));
    s.advance_to("2026-10-04T03:00:00+08:00");
    assert_eq!(s.notifications()[0].0, t("2026-10-03T23:15:00+08:00"));
    // Late: the operator and its supervisor at once, the regulator an hour later, then the
    // regulator every two hours (next at 03:15).
    assert_eq!(
        s.escalations(),
        vec![
            (t("2026-10-04T00:15:00+08:00"), 1, vec!["responsible".to_owned(), "supervisor".to_owned()]),
            (t("2026-10-04T01:15:00+08:00"), 2, vec!["regulator".to_owned()]),
        ]
    );
    s.act("operator", "report", json!({"report": "已启动应急预案", "measures": "封禁来源"}))
        .expect_step("acknowledgement");
    // Unacknowledged: the supervisor at 05:00, the regulator at 07:00, then every 2 hours.
    s.advance_to("2026-10-04T09:30:00+08:00");
    let later: Vec<_> = s.escalations().into_iter().filter(|(at, _, _)| *at > t("2026-10-04T03:00:00+08:00")).collect();
    assert_eq!(
        later,
        vec![
            (t("2026-10-04T05:00:00+08:00"), 1, vec!["supervisor".to_owned()]),
            (t("2026-10-04T07:00:00+08:00"), 2, vec!["regulator".to_owned()]),
            (t("2026-10-04T09:00:00+08:00"), 2, vec!["regulator".to_owned()]),
        ]
    );
    // Art. 6 gives no time for acknowledging a report: the 2 hours are the agency's own rule,
    // and every escalation says so instead of citing art. 6 for them.
    let bases: Vec<Option<String>> = s
        .escalation_bases()
        .into_iter()
        .filter(|(at, _)| *at > t("2026-10-04T03:00:00+08:00"))
        .map(|(_, basis)| basis)
        .collect();
    assert_eq!(bases.len(), 3);
    for basis in bases {
        assert_eq!(
            basis.as_deref(),
            Some("本单位规定(本单位数据安全事件处置规程:收到报告后2小时内确认);义务依据《天津市公共数据资源开发利用安全管理办法(试行)》第六条")
        );
    }
    s.act("bureau", "acknowledge", json!({})).expect_step("handling");
    s.act("operator", "close", json!({"summary": "已处置"}));
    assert_eq!(s.outcome(), Some("closed"));
    assert!(s
        .activities()
        .iter()
        .any(|(_, a)| matches!(a, Activity::WriteReport { kind, .. } if kind == "security_incident_summary")));
}

fn order() -> Scenario {
    let mut s = Scenario::start(
        "rectification_order",
        "tianjin",
        "2026-11-02T09:00:00+08:00",
        json!({"regulator_org": "tj-regulator", "responsible_org": "processor", "risk": "越权访问", "rectification_days": 20}),
    );
    s.person("regulator", "regulator_unit", "tj-regulator").person("processor", "responsible", "processor");
    s
}

pub fn rectification_order_completed_rejected_refused_or_referred() {
    let mut s = order();
    // 20 days from 11-02 → 11-22, a Sunday: Monday 11-23.
    assert_eq!(s.due(), Some(t("2026-11-24T00:00:00+08:00")));
    s.act("processor", "report_completed", json!({"report": "已整改"})).act(
        "regulator",
        "reject",
        json!({"reasons": "仍有越权"}),
    );
    s.expect_step("rectifying");
    s.act("processor", "report_completed", json!({"report": "再次整改"})).act("regulator", "accept", json!({}));
    assert_eq!(s.outcome(), Some("rectified"));

    let mut s = order();
    s.act("processor", "refuse", json!({"statement": "不认可"}));
    assert_eq!(s.outcome(), Some("referred"));
    assert!(s
        .activities()
        .iter()
        .any(|(_, a)| matches!(a, Activity::Escalate { to, .. } if to[0].role == "regulator")));

    let mut s = order();
    s.advance_to("2026-11-30T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 3);
    s.act("regulator", "refer", json!({"reasons": "逾期未整改"}));
    assert_eq!(s.outcome(), Some("referred"));
}

pub fn complaints_keep_the_reporter_confidential() {
    let definition = library().get("complaint", "tianjin").unwrap();
    let confidential = data::confidential(&definition.procedure.input);
    assert_eq!(confidential, vec!["reporter_contact".to_owned(), "reporter_name".to_owned()]);
    let schema = data::json_schema(&definition.procedure.input);
    assert_eq!(schema["properties"]["reporter_name"]["x-confidential"], json!(true));
    assert!(matches!(definition.procedure.input.get("content"), Some(Field::Full(_))));
    for (action, outcome) in
        [("substantiated", "substantiated"), ("unsubstantiated", "unsubstantiated"), ("transfer", "transferred")]
    {
        let mut s = Scenario::start(
            "complaint",
            "tianjin",
            "2026-11-02T09:00:00+08:00",
            json!({"handler_org": "tj-bureau", "subject": "某公司", "content": "违规出售数据", "reporter_name": "张三"}),
        );
        s.person("handler", "handler", "tj-bureau");
        let data = match action {
            "substantiated" => json!({"findings": "属实", "measures": "责令整改"}),
            "unsubstantiated" => json!({"findings": "不属实"}),
            _ => json!({"receiving_department": "网信办"}),
        };
        s.act("handler", action, data);
        assert_eq!(s.outcome(), Some(outcome));
    }
}

pub fn half_yearly_summary_is_filed() {
    let mut s = Scenario::start(
        "half_yearly_summary",
        "taian",
        "2026-07-01T09:00:00+08:00",
        json!({"authority_org": "ta-bureau", "period": "2026H1"}),
    );
    s.person("bureau", "data_authority", "ta-bureau").person("stranger", "data_authority", "elsewhere");
    assert!(s.activities().iter().any(
        |(_, a)| matches!(a, Activity::WriteReport { kind, .. } if kind == "authorized_operation_half_yearly_summary")
    ));
    assert_eq!(
        s.try_act("stranger", "file", json!({"filing_reference": "x"})).unwrap_err().kind,
        RefusalKind::WrongOrganization
    );
    s.act("bureau", "file", json!({"filing_reference": "泰政备〔2026〕12号"}));
    assert_eq!(s.outcome(), Some("filed"));
}

/// Jinzhou art. 21: "立即" report — the hour is the agency's rule, and says so.
pub fn jinzhou_incidents_are_reported_at_once_by_the_agencys_hour() {
    let mut s = Scenario::start(
        "incident_report",
        "jinzhou",
        "2026-10-01T23:00:00+08:00",
        json!({"operator_org": "jz-op", "authority_org": "jz-bureau", "incident": "接口数据泄露"}),
    );
    s.person("operator", "operator", "jz-op").person("bureau", "data_authority", "jz-bureau");
    assert_eq!(s.due(), Some(t("2026-10-02T00:00:00+08:00")));
    s.advance_to("2026-10-02T01:30:00+08:00");
    let escalations = s.escalations();
    assert_eq!(
        escalations[0],
        (t("2026-10-02T00:00:00+08:00"), 1, vec!["operator".to_owned(), "supervisor".to_owned()])
    );
    let basis = s.escalation_bases().into_iter().find_map(|(_, basis)| basis);
    assert_eq!(
        basis.as_deref(),
        Some("本单位规定(本单位数据安全事件处置规程:“立即”报告指发现后1小时内);义务依据《锦州市公共数据资源授权运营管理办法(试行)》第二十一条")
    );
    s.act("operator", "report", json!({"report": "已启动预案", "measures": "关闭接口"})).expect_step("acknowledgement");
    s.advance_to("2026-10-02T04:00:00+08:00");
    assert!(s.escalations().iter().any(|(_, _, to)| to == &vec!["supervisor".to_owned()]));
    s.act("bureau", "acknowledge", json!({})).act("operator", "close", json!({"summary": "已处置"}));
    assert_eq!(s.outcome(), Some("closed"));
}

/// Tai'an art. 30 sets no time and no report: the plan is activated "依法", the agency's
/// hours make a plan not activated show, and the data authority (art. 29) reviews.
pub fn taian_incident_response_is_reviewed_by_the_authority() {
    let mut s = Scenario::start(
        "incident_report",
        "taian",
        "2026-05-06T10:00:00+08:00",
        json!({"operator_org": "ta-op", "authority_org": "ta-bureau", "incident": "数据丢失"}),
    );
    s.person("operator", "operator", "ta-op").person("bureau", "data_authority", "ta-bureau");
    assert_eq!(s.due(), Some(t("2026-05-06T12:00:00+08:00")));
    s.advance_to("2026-05-06T15:00:00+08:00");
    assert_eq!(s.escalations().len(), 2);
    s.act("operator", "record_response", json!({"measures": "切换备份"})).expect_step("handling");
    assert!(s
        .notifications()
        .iter()
        .any(|(_, template, role)| template == "incident_reported" && role == "data_authority"));
    s.act("operator", "close", json!({"summary": "s"})).expect_step("review");
    s.act("bureau", "request_more", json!({"comments": "补充根因分析"})).expect_step("handling");
    s.act("operator", "close", json!({"summary": "含根因"})).act("bureau", "accept", json!({}));
    assert_eq!(s.outcome(), Some("closed"));
}

/// Wuzhong art. 40(6): risks found by the body itself are remedied "立即".
pub fn wuzhong_risks_are_remedied_and_checked() {
    let mut s = Scenario::start(
        "incident_report",
        "wuzhong",
        "2026-07-01T09:00:00+08:00",
        json!({"unit_org": "wz-health", "authority_org": "wz-bureau", "risk": "接口未鉴权"}),
    );
    s.person("health", "unit", "wz-health").person("bureau", "data_authority", "wz-bureau");
    assert_eq!(s.due(), Some(t("2026-07-02T09:00:00+08:00")));
    assert!(!s.state.source_notices.is_empty(), "the text is a draft");
    s.advance_to("2026-07-02T10:00:00+08:00");
    assert_eq!(s.escalations().len(), 1);
    s.act("health", "remedied", json!({"measures": "增加鉴权"})).expect_step("verification");
    s.act("bureau", "insufficient", json!({"reasons": "日志未开启"})).expect_step("remediation");
    s.act("health", "remedied", json!({"measures": "开启日志"})).act("bureau", "confirm", json!({}));
    assert_eq!(s.outcome(), Some("closed"));
}

/// Wuzhong art. 45: corrected within the limit, or — not corrected and serious — referred by
/// the authority's decision, or given a further limit.
pub fn wuzhong_correction_orders_end_corrected_or_referred_by_decision() {
    let order = || {
        let mut s = Scenario::start(
            "correction_order",
            "wuzhong",
            "2026-06-01T09:00:00+08:00",
            json!({"authority_org": "wz-bureau", "unit_org": "wz-health", "failing": "catalogue", "details": "目录半年未更新", "correction_days": 20}),
        );
        s.person("bureau", "data_authority", "wz-bureau").person("health", "unit", "wz-health");
        s
    };
    let mut s = order();
    // 20 days from 06-01 → 06-21, a Sunday: the limit ends with Monday 06-22.
    assert_eq!(s.due(), Some(t("2026-06-23T00:00:00+08:00")));
    s.act("health", "report", json!({"report": "已更新"})).act("bureau", "confirm", json!({}));
    assert_eq!(s.outcome(), Some("corrected"));
    let mut s = order();
    s.act("health", "report", json!({"report": "部分更新"})).act("bureau", "reject", json!({"reasons": "仍缺"}));
    s.expect_step("decision");
    s.act("bureau", "set_further_limit", json!({"reasons": "r", "correction_days": 10})).expect_step("correcting");
    s.advance_to("2026-06-30T10:00:00+08:00");
    assert!(!s.escalations().is_empty(), "the further limit is tracked too");
    s.act("bureau", "not_corrected", json!({"reasons": "逾期"})).act(
        "bureau",
        "refer",
        json!({"authority": "市纪委监委", "reasons": "情节严重"}),
    );
    assert_eq!(s.outcome(), Some("referred"));
}

/// Tianjin open data art. 33: ordered to correct within a limit; past it, accountability is
/// referred. The measures had lapsed by 2026; the instance says so.
pub fn tianjin_open_data_correction_orders() {
    let order = || {
        let mut s = Scenario::start(
            "correction_order",
            "tianjin",
            "2026-06-01T09:00:00+08:00",
            json!({"regulator_org": "tj-cac", "department_org": "tj-dept", "failing": "catalogue", "details": "未编制开放目录", "correction_days": 30}),
        );
        s.person("cac", "regulator_unit", "tj-cac").person("dept", "department", "tj-dept");
        s
    };
    let mut s = order();
    assert_eq!(s.state.source_notices, ["依据文件《天津市公共数据资源开放管理办法》已于2024-07-31失效"]);
    s.act("dept", "report", json!({"report": "已编制"})).act("cac", "reject", json!({"reasons": "不完整"}));
    s.expect_step("correcting");
    s.act("dept", "report", json!({"report": "已补全"})).act("cac", "confirm", json!({}));
    assert_eq!(s.outcome(), Some("corrected"));
    let mut s = order();
    s.advance_to("2026-07-03T10:00:00+08:00");
    assert_eq!(s.escalations()[0].2, vec!["department".to_owned()]);
    s.act("cac", "overdue_uncorrected", json!({"reasons": "逾期"})).act(
        "cac",
        "refer",
        json!({"authority": "市纪委监委", "persons": "直接负责的主管人员"}),
    );
    assert_eq!(s.outcome(), Some("referred"));
}

/// Jinzhou art. 16: a quality problem the operator reports is rectified by the provider, as
/// the authority organizes it; the operator confirms or sends it back.
pub fn jinzhou_quality_feedback_reaches_the_provider() {
    let feedback = || {
        let mut s = Scenario::start(
            "quality_feedback",
            "jinzhou",
            "2026-06-01T09:00:00+08:00",
            json!({"operator_org": "jz-op", "authority_org": "jz-bureau", "provider_org": "jz-tax", "dataset": "纳税信用", "problem": "三个月未更新"}),
        );
        s.person("operator", "operator", "jz-op")
            .person("bureau", "data_authority", "jz-bureau")
            .person("tax", "provider", "jz-tax");
        s
    };
    let mut s = feedback();
    // The authority's 3 working days (its rule): Monday 06-01 → Thursday 06-04.
    assert_eq!(s.due(), Some(t("2026-06-05T00:00:00+08:00")));
    s.act("bureau", "order_rectification", json!({"instructions": "补齐更新", "rectification_days": 10}));
    s.act("tax", "rectified", json!({"rectification": "已补齐"})).act(
        "operator",
        "still_wrong",
        json!({"remaining": "缺5月"}),
    );
    s.expect_step("organizing");
    s.advance_to("2026-06-10T10:00:00+08:00");
    assert!(!s.escalations().is_empty());
    s.act("bureau", "order_rectification", json!({"instructions": "补5月", "rectification_days": 5}));
    s.advance_to("2026-06-17T10:00:00+08:00");
    s.act("tax", "rectified", json!({"rectification": "已补"})).act("operator", "confirm", json!({}));
    assert_eq!(s.outcome(), Some("resolved"));
    let mut s = feedback();
    s.act("bureau", "not_a_quality_problem", json!({"reasons": "按月更新,符合目录"}));
    assert_eq!(s.outcome(), Some("not_a_quality_problem"));
}

/// Jinzhou art. 22: misuse by a party stops its cooperation, for a while or for good.
pub fn jinzhou_misuse_suspends_or_ends_cooperation() {
    let misuse = || {
        let mut s = Scenario::start(
            "misuse_measures",
            "jinzhou",
            "2026-06-01T09:00:00+08:00",
            json!({"operator_org": "jz-op", "authority_org": "jz-bureau", "party": "某应用单位", "misuse": "resale", "details": "转卖数据产品"}),
        );
        s.person("operator", "operator", "jz-op");
        s
    };
    let mut s = misuse();
    s.advance_to("2026-06-02T10:00:00+08:00");
    assert_eq!(s.escalations()[0].2, vec!["operator".to_owned(), "supervisor".to_owned()]);
    s.act("operator", "suspend_cooperation", json!({"measures": "停止接口"})).expect_step("suspended");
    assert!(s.notifications().iter().any(|(_, template, _)| template == "cooperation_suspended"));
    s.act("operator", "resume_cooperation", json!({"reasons": "已追回"}));
    assert_eq!(s.outcome(), Some("resumed"));
    let mut s = misuse();
    s.act("operator", "suspend_cooperation", json!({"measures": "停止接口"})).act(
        "operator",
        "end_cooperation",
        json!({"reasons": "拒不整改"}),
    );
    assert_eq!(s.outcome(), Some("ended"));
    let mut s = misuse();
    s.act("operator", "end_cooperation", json!({"measures": "立即终止"}));
    assert_eq!(s.outcome(), Some("ended"));
}
