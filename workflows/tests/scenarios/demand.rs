//! 一场景一申请 (Tai'an art. 17; Jinzhou art. 11): both the data authority and the provider
//! must agree before data is provided.

use serde_json::json;
use statflow_workflows::engine::RefusalKind;

use crate::support::Scenario;

fn demand(jurisdiction: &str) -> Scenario {
    let mut input = json!({"authority_org": "bureau", "provider_org": "provider", "operator_org": "operator", "scenario": "普惠金融", "data_needed": "纳税数据"});
    if jurisdiction == "taian" {
        input["registration_certificate"] = json!("DJ-2026-0001");
    }
    let mut s = Scenario::start("scenario_demand", jurisdiction, "2026-06-01T09:00:00+08:00", input);
    s.person("bureau", "data_authority", "bureau")
        .person("provider", "provider", "provider")
        .person("operator", "operator", "operator");
    s
}

pub fn both_approve_in_either_order_then_data_is_provided() {
    for jurisdiction in ["taian", "jinzhou"] {
        let mut s = demand(jurisdiction);
        s.act("bureau", "authority_approves", json!({})).expect_step("review");
        // The operator cannot approve on anyone's behalf.
        assert_eq!(s.try_act("operator", "provider_approves", json!({})).unwrap_err().kind, RefusalKind::WrongRole);
        s.act("provider", "provider_approves", json!({"opinion": "同意"})).expect_step("providing");
        s.act("provider", "provided", json!({"delivery": "接口已开通"}));
        assert_eq!(s.outcome(), Some("provided"));

        let mut s = demand(jurisdiction);
        s.act("provider", "provider_approves", json!({})).act("bureau", "authority_approves", json!({}));
        s.expect_step("providing");
    }
}

pub fn either_objection_refuses() {
    for jurisdiction in ["taian", "jinzhou"] {
        let mut s = demand(jurisdiction);
        s.act("bureau", "authority_approves", json!({})).act(
            "provider",
            "provider_objects",
            json!({"reasons": "涉密"}),
        );
        assert_eq!(s.outcome(), Some("refused"));
        let mut s = demand(jurisdiction);
        s.act("bureau", "authority_objects", json!({"reasons": "场景不明确"}));
        assert_eq!(s.outcome(), Some("refused"));
        assert!(s
            .notifications()
            .iter()
            .any(|(_, template, role)| template == "scenario_refused" && role == "operator"));
    }
}

/// Registration before authorization is Tai'an's rule (art. 11); Jinzhou's art. 11 asks for
/// no certificate, so its demand takes none.
pub fn a_demand_needs_a_registered_resource() {
    let input =
        json!({"authority_org": "b", "provider_org": "p", "operator_org": "o", "scenario": "s", "data_needed": "d"});
    let refused =
        Scenario::try_start("scenario_demand", "taian", "2026-06-01T09:00:00+08:00", input.clone()).err().unwrap();
    assert_eq!(refused.field.as_deref(), Some("registration_certificate"));
    let jinzhou = Scenario::try_start("scenario_demand", "jinzhou", "2026-06-01T09:00:00+08:00", input);
    assert!(jinzhou.is_ok(), "{:?}", jinzhou.err());
}
