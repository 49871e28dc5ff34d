//! Definition loading and validation: the library loads, and each kind of broken definition
//! is refused with the file, the line and a message that says what to do.

use super::*;

#[test]
fn the_built_in_library_is_valid_and_complete() {
    let library = Library::built_in();
    assert_eq!(library.iter().count(), BUILT_IN.len());
    // Every file of the procedures folder is embedded.
    let mut on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/procedures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let embedded: Vec<&str> = BUILT_IN.iter().map(|(name, _)| *name).collect();
    assert_eq!(on_disk, embedded);
    // The file name says which procedure and jurisdiction it holds.
    for definition in library.iter() {
        assert_eq!(definition.file, format!("{}.{}.toml", definition.id(), definition.jurisdiction()));
    }
}

#[test]
fn every_procedure_of_procedures_md_is_in_the_library() {
    let library = Library::built_in();
    for (procedure, jurisdiction) in [
        ("registration", "taian"),
        ("conditional_open", "tianjin"),
        ("conditional_open", "wuzhong"),
        ("authorized_operation", "taian"),
        ("authorized_operation", "jinzhou"),
        ("annual_evaluation", "taian"),
        ("annual_evaluation", "jinzhou"),
        ("annual_work_report", "taian"),
        ("rectification", "taian"),
        ("rectification", "jinzhou"),
        ("scenario_demand", "taian"),
        ("scenario_demand", "jinzhou"),
        ("half_yearly_summary", "taian"),
        ("sharing", "wuzhong"),
        ("backflow", "wuzhong"),
        ("data_correction", "wuzhong"),
        ("catalogue_update", "wuzhong"),
        ("withdrawal", "wuzhong"),
        ("access_suspension", "wuzhong"),
        ("incident_report", "tianjin"),
        ("incident_report", "jinzhou"),
        ("incident_report", "taian"),
        ("incident_report", "wuzhong"),
        ("rectification_order", "tianjin"),
        ("complaint", "tianjin"),
        ("correction_order", "tianjin"),
        ("correction_order", "wuzhong"),
        ("open_data_objection", "tianjin"),
        ("quality_feedback", "jinzhou"),
        ("authority_correction", "wuzhong"),
        ("verification_request", "wuzhong"),
        ("risk_suspension", "wuzhong"),
        ("misuse_measures", "jinzhou"),
    ] {
        assert!(library.get(procedure, jurisdiction).is_some(), "{procedure}/{jurisdiction} missing");
    }
}

#[test]
fn versions_are_content_hashes() {
    let text = BUILT_IN[0].1;
    let a = Definition::load(text, "a.toml").unwrap();
    let b = Definition::load(&format!("{text}\n# a comment changes the version\n"), "a.toml").unwrap();
    assert!(a.version.starts_with("sha256:") && a.version.len() == 23, "{}", a.version);
    assert_ne!(a.version, b.version);
    assert_eq!(a.version, Definition::load(text, "b.toml").unwrap().version);
}

const BASE: &str = r#"id = "demo"
jurisdiction = "test"
title = "示例"
initial = "review"

[sources]
law = { title = "示例办法", status = "in_force", in_force_from = 2020-01-01 }

[roles.clerk]
title = "经办人"
organization = "org"

[input]
org = "string"

[escalations.standard]
levels = [{ after = { working_days = 0 }, to = ["assignee"] }]

[steps.review]
title = "审查"
task = { role = "clerk", title = "审查" }

[steps.review.deadline]
working_days = 5
basis = "law 第三条"
escalation = "standard"
limit = "statutory"

[steps.review.actions.approve]
role = "clerk"
goto = "done"

[steps.done]
title = "完成"
outcome = "approved"
"#;

/// Loads BASE with `from` replaced by `to` and returns the error lines.
fn errors_after(from: &str, to: &str) -> Vec<String> {
    assert!(BASE.contains(from), "BASE does not contain {from:?}");
    match Definition::load(&BASE.replacen(from, to, 1), "demo.toml") {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn the_base_definition_is_valid() {
    assert_eq!(errors_after("title = \"示例\"", "title = \"示例\""), Vec::<String>::new());
}

#[test]
fn broken_definitions_are_refused_with_file_line_and_what_to_do() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("initial = \"review\"", "initial = \"reveiw\"", "demo.toml:4: the initial step `reveiw` is not defined under [steps]"),
        ("goto = \"done\"", "goto = \"finished\"", "demo.toml:31: action `approve` goes to step `finished`, which is not defined under [steps]"),
        ("role = \"clerk\"\ngoto", "role = \"cleark\"\ngoto", "demo.toml:30: unknown role `cleark`; the roles of this procedure are clerk"),
        ("basis = \"law 第三条\"\n", "", "demo.toml:19: the deadline of step `review` has no legal basis: add `basis = \"<source> <article>\"` naming the article that sets the limit"),
        ("basis = \"law 第三条\"", "basis = \"statute 第三条\"", "demo.toml:25: legal basis `statute 第三条` cites source `statute`, which [sources] does not declare"),
        ("basis = \"law 第三条\"", "basis = \"第三条\"", "demo.toml:25: legal basis `第三条` must be a source key and an article, e.g. \"taian 第九条\""),
        ("[steps.review.deadline]\nworking_days = 5\nbasis = \"law 第三条\"\nescalation = \"standard\"\nlimit = \"statutory\"\n", "", "demo.toml:19: step `review` waits but has no time limit: add [steps.review.deadline] with its legal basis, or `no_deadline = \"why there is none\"`"),
        ("working_days = 5", "working_days = 5\ndays = 3", "demo.toml:19: the deadline of step `review` must give exactly one of working_days, days, months, years or hours (found 2)"),
        ("working_days = 5", "working_days = \"$term\"", "demo.toml:19: `$term` refers to a field that neither [input] nor any action declares"),
        ("escalation = \"standard\"", "escalation = \"urgent\"", "demo.toml:26: unknown escalation plan `urgent`; declare it under [escalations]"),
        ("to = [\"assignee\"]", "to = [\"mayor\"]", "demo.toml:17: unknown role `mayor`; the roles of this procedure are clerk"),
        ("organization = \"org\"", "organization = \"organisation\"", "demo.toml:11: role `clerk` takes its organization from input field `organisation`, which [input] does not declare"),
        ("org = \"string\"", "org = \"varchar\"", "demo.toml:14: field `org` has unknown type `varchar`; use one of string, text, integer, date, boolean, enum"),
        ("[steps.done]", "[steps.orphan]\ntitle = \"孤立\"\noutcome = \"x\"\n\n[steps.done]", "demo.toml:33: step `orphan` cannot be reached from the initial step `review`"),
        ("outcome = \"approved\"", "outcome = \"approved\"\ntask = { role = \"clerk\", title = \"x\" }", "demo.toml:35: final step `done` ends the procedure; it cannot also have a task, deadline, actions, child, signals or timers"),
        ("goto = \"done\"", "clock = \"stop\"", "demo.toml:31: `clock` must be `pause` or `resume`, not `stop`"),
        ("goto = \"done\"", "goto = \"done\"\nextend = { working_days = 20, limit = \"statutory\" }", "demo.toml:29: the extension of action `approve` has no legal basis"),
        ("working_days = 5", "working_day = 5", "demo.toml:24: unknown field `working_day`, expected one of `working_days`, `days`, `months`, `years`, `hours`, `limit`, `policy`, `basis`, `from`, `until`, `remind_working_days_before`, `remind_hours_before`, `escalation`, `on_expiry`"),
        ("title = \"示例\"", "title = 示例", "demo.toml:3: string values must be quoted, expected literal string"),
        ("[steps.review.actions.approve]\nrole = \"clerk\"\ngoto = \"done\"\n", "", "demo.toml:19: step `review` can never be left: give it an action, a child, a signal or a deadline `on_expiry`"),
        // Every source says whether it binds.
        ("law = { title = \"示例办法\", status = \"in_force\", in_force_from = 2020-01-01 }", "law = { title = \"示例办法\" }", "demo.toml:7: source `law` does not say whether it binds: add `status = \"in_force\"` (with `in_force_from` and, if it lapses, `in_force_until`), `\"draft\"` or `\"expired\"`"),
        ("status = \"in_force\"", "status = \"proposed\"", "demo.toml:7: `status` must be in_force, draft, expired, not `proposed`"),
        ("law = { title = \"示例办法\", status = \"in_force\", in_force_from = 2020-01-01 }", "law = { title = \"泰安\", file = \"002_e4ead0635384efa0.txt\", status = \"draft\" }", "demo.toml:7: source `law` is a kept text: its standing comes from workflows/regulations/index.toml; do not declare it here"),
        // Every limit says what its number is.
        ("limit = \"statutory\"\n", "", "demo.toml:19: the deadline of step `review` does not say what its number is: add `limit = \"statutory\"` (the cited article states it), `limit = \"policy\"` with `policy = \"<the agency's rule>\"` (本单位规定), or `limit = \"case\"` (a `$field` set in each case)"),
        ("limit = \"statutory\"", "limit = \"usual\"", "demo.toml:27: `limit` must be statutory, policy, case, not `usual`"),
        ("limit = \"statutory\"", "limit = \"policy\"", "demo.toml:27: the deadline of step `review`: a policy limit names the agency's rule it comes from: add `policy = \"…\"`"),
        ("limit = \"statutory\"", "limit = \"case\"", "demo.toml:27: the deadline of step `review`: a `case` limit takes its number from the case (`\"$field\"`); a fixed number is `statutory` or `policy`"),
        ("limit = \"statutory\"", "limit = \"statutory\"\npolicy = \"本局规程\"", "demo.toml:27: the deadline of step `review`: only a `policy` limit takes `policy`"),
        ("working_days = 5", "working_days = \"$days\"", "demo.toml:27: the deadline of step `review`: a statutory limit is a number the article states; a `$field` amount is `case`"),
        ("goto = \"done\"", "goto = \"done\"\nextend = { working_days = 20, basis = \"law 第三条\" }", "demo.toml:29: the extension of action `approve` does not say what its number is: add `limit = \"statutory\"` (the cited article states it), `limit = \"policy\"` with `policy = \"<the agency's rule>\"` (本单位规定), or `limit = \"case\"` (a `$field` set in each case)"),
    ];
    let mut mismatches = Vec::new();
    for (from, to, expected) in cases {
        let errors = errors_after(from, to);
        if !errors.iter().any(|e| e == expected) {
            mismatches
                .push(format!("replacing {from:?} with {to:?}\nexpected: {expected}\ngot:\n{}", errors.join("\n")));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

#[test]
fn a_set_checks_children_and_duplicates() {
    let parent = BASE.replace(
        "[steps.review.actions.approve]\nrole = \"clerk\"\ngoto = \"done\"\n",
        "[steps.review.child]\nprocedure = \"sub\"\non_outcome = { approved = \"done\", unknown = \"done\" }\n",
    );
    let child = BASE.replace("id = \"demo\"", "id = \"sub\"");
    let parent = Definition::load(&parent, "demo.toml").unwrap();
    let child = Definition::load(&child, "sub.toml").unwrap();
    let errors: Vec<String> = check_set(&[&parent, &child]).iter().map(ToString::to_string).collect();
    assert_eq!(errors, vec!["demo.toml:31: child `sub` never ends with outcome `unknown`"]);
    let errors: Vec<String> = check_set(&[&parent]).iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec!["demo.toml:30: step `review` starts child procedure `sub`, which is not defined for jurisdiction `test`"]
    );
    let errors: Vec<String> = check_set(&[&child, &child]).iter().map(ToString::to_string).collect();
    assert_eq!(errors, vec!["sub.toml:1: procedure `sub` for jurisdiction `test` is defined more than once"]);
}

#[test]
fn the_graph_lists_every_transition() {
    let library = Library::built_in();
    let definition = library.get("scenario_demand", "jinzhou").unwrap();
    let diagram = mermaid(definition, chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    assert!(diagram.contains("    review --> providing: all approved\n"), "{diagram}");
    assert!(diagram.contains("    review --> review: authority_approves\n"), "{diagram}");
    assert_eq!(diagram.matches(" --> ").count(), definition.transitions().len() + 1 + 2);
    assert!(!diagram.contains("note"), "Jinzhou's measures are in force in 2026");
    let wuzhong = library.get("sharing", "wuzhong").unwrap();
    let diagram = mermaid(wuzhong, chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    assert!(
        diagram.contains(
            "    note left of answer : 依据文件《吴忠市公共数据管理办法(暂行)(征求意见稿)》为征求意见稿,尚未生效\n"
        ),
        "{diagram}"
    );
    let incident = library.get("incident_report", "tianjin").unwrap();
    let diagram = mermaid(incident, chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap());
    assert!(diagram.contains("[2h; 本单位规定]") || diagram.contains("本单位规定]"), "{diagram}");
}

/// BASE citing the real text of Tai'an's measures (art. 9 states 3 working days for acceptance).
fn citing_taian(article: &str, working_days: u32) -> Vec<String> {
    let text = BASE
        .replace(
            "law = { title = \"示例办法\", status = \"in_force\", in_force_from = 2020-01-01 }",
            "law = { title = \"泰安市公共数据开发利用管理办法(试行)\", file = \"002_e4ead0635384efa0.txt\" }",
        )
        .replace("basis = \"law 第三条\"", &format!("basis = \"law {article}\""))
        .replace("working_days = 5", &format!("working_days = {working_days}"));
    match Definition::load(&text, "demo.toml") {
        Ok(_) => vec![],
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_statutory_number_must_stand_in_the_article_it_cites() {
    assert_eq!(citing_taian("第九条第(二)项", 3), Vec::<String>::new());
    assert_eq!(
        citing_taian("第九条第(二)项", 2),
        ["demo.toml:19: the deadline of step `review` is statutory, but 《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项 does not state 2 working days: make it `limit = \"policy\"` with the agency's rule, or cite the article that states it"]
    );
    assert_eq!(
        citing_taian("第九十九条", 3),
        ["demo.toml:25: legal basis `law 第九十九条`: the text has no 第九十九条"]
    );
}

#[test]
fn a_policy_limit_shows_as_the_agencys_rule_with_the_duty_it_serves() {
    let policy = BASE.replace("limit = \"statutory\"", "limit = \"policy\"\npolicy = \"本局审查规程第3条\"");
    let definition = Definition::load(&policy, "demo.toml").unwrap();
    assert_eq!(
        definition.basis_text("本单位规定:本局审查规程第3条|law 第三条"),
        "本单位规定(本局审查规程第3条);义务依据《示例办法》第三条"
    );
    assert_eq!(definition.basis_text("本单位规定:本局审查规程第3条"), "本单位规定(本局审查规程第3条)");
    // Without an article the agency's own limit stands alone.
    let alone = policy.replace("basis = \"law 第三条\"\n", "");
    assert!(Definition::load(&alone, "demo.toml").is_ok());
}
