//! Sources not in force: a procedure resting on a draft or a lapsed text still runs (an
//! agency may adopt it as its practice) but every instance says so from its start.

use serde_json::json;

use crate::support::Scenario;

pub fn instances_resting_on_a_draft_or_a_lapsed_text_say_so() {
    let wuzhong = Scenario::start(
        "sharing",
        "wuzhong",
        "2026-04-28T10:00:00+08:00",
        json!({"requester_org": "wz-tax", "provider_org": "wz-market", "data_needed": "企业登记信息"}),
    );
    assert_eq!(
        wuzhong.state.source_notices,
        ["依据文件《吴忠市公共数据管理办法(暂行)(征求意见稿)》为征求意见稿,尚未生效"]
    );
    // Tianjin's open-data measures were valid for two years from 2022-08-01 (art. 37).
    let input = json!({"resource": "企业信用数据", "purpose": "信贷风控模型", "user_org": "tj-user", "provider_org": "tj-provider", "center_org": "tj-center"});
    let lapsed = Scenario::start("conditional_open", "tianjin", "2026-03-02T09:00:00+08:00", input.clone());
    assert_eq!(lapsed.state.source_notices, ["依据文件《天津市公共数据资源开放管理办法》已于2024-07-31失效"]);
    let in_force = Scenario::start("conditional_open", "tianjin", "2024-07-31T09:00:00+08:00", input);
    assert!(in_force.state.source_notices.is_empty(), "{:?}", in_force.state.source_notices);
    // A procedure on texts in force says nothing.
    let taian = Scenario::start(
        "registration",
        "taian",
        "2026-03-02T09:00:00+08:00",
        json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}),
    );
    assert!(taian.state.source_notices.is_empty());
}
