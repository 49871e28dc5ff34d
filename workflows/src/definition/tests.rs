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
        ("rectification_order", "tianjin"),
        ("complaint", "tianjin"),
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

[sources.law]
title = "示例办法"

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
        ("goto = \"done\"", "goto = \"finished\"", "demo.toml:30: action `approve` goes to step `finished`, which is not defined under [steps]"),
        ("role = \"clerk\"\ngoto", "role = \"cleark\"\ngoto", "demo.toml:29: unknown role `cleark`; the roles of this procedure are clerk"),
        ("basis = \"law 第三条\"\n", "", "demo.toml:19: the deadline of step `review` has no legal basis: add `basis = \"<source> <article>\"` naming the article that sets the limit"),
        ("basis = \"law 第三条\"", "basis = \"statute 第三条\"", "demo.toml:25: legal basis `statute 第三条` cites source `statute`, which [sources] does not declare"),
        ("basis = \"law 第三条\"", "basis = \"第三条\"", "demo.toml:25: legal basis `第三条` must be a source key and an article, e.g. \"taian 第九条\""),
        ("[steps.review.deadline]\nworking_days = 5\nbasis = \"law 第三条\"\nescalation = \"standard\"\n", "", "demo.toml:19: step `review` waits but has no time limit: add [steps.review.deadline] with its legal basis, or `no_deadline = \"why there is none\"`"),
        ("working_days = 5", "working_days = 5\ndays = 3", "demo.toml:19: the deadline of step `review` must give exactly one of working_days, days, months, years or hours (found 2)"),
        ("working_days = 5", "working_days = \"$term\"", "demo.toml:19: `$term` refers to a field that neither [input] nor any action declares"),
        ("escalation = \"standard\"", "escalation = \"urgent\"", "demo.toml:26: unknown escalation plan `urgent`; declare it under [escalations]"),
        ("to = [\"assignee\"]", "to = [\"mayor\"]", "demo.toml:17: unknown role `mayor`; the roles of this procedure are clerk"),
        ("organization = \"org\"", "organization = \"organisation\"", "demo.toml:11: role `clerk` takes its organization from input field `organisation`, which [input] does not declare"),
        ("org = \"string\"", "org = \"varchar\"", "demo.toml:14: field `org` has unknown type `varchar`; use one of string, text, integer, date, boolean, enum"),
        ("[steps.done]", "[steps.orphan]\ntitle = \"孤立\"\noutcome = \"x\"\n\n[steps.done]", "demo.toml:32: step `orphan` cannot be reached from the initial step `review`"),
        ("outcome = \"approved\"", "outcome = \"approved\"\ntask = { role = \"clerk\", title = \"x\" }", "demo.toml:34: final step `done` ends the procedure; it cannot also have a task, deadline, actions, child, signals or timers"),
        ("goto = \"done\"", "clock = \"stop\"", "demo.toml:30: `clock` must be `pause` or `resume`, not `stop`"),
        ("goto = \"done\"", "goto = \"done\"\nextend = { working_days = 20 }", "demo.toml:28: the extension of action `approve` has no legal basis"),
        ("working_days = 5", "working_day = 5", "demo.toml:24: unknown field `working_day`, expected one of `working_days`, `days`, `months`, `years`, `hours`, `basis`, `from`, `remind_working_days_before`, `remind_hours_before`, `escalation`, `on_expiry`"),
        ("title = \"示例\"", "title = 示例", "demo.toml:3: string values must be quoted, expected literal string"),
        ("[steps.review.actions.approve]\nrole = \"clerk\"\ngoto = \"done\"\n", "", "demo.toml:19: step `review` can never be left: give it an action, a child, a signal or a deadline `on_expiry`"),
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
    assert_eq!(errors, vec!["demo.toml:30: child `sub` never ends with outcome `unknown`"]);
    let errors: Vec<String> = check_set(&[&parent]).iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec!["demo.toml:29: step `review` starts child procedure `sub`, which is not defined for jurisdiction `test`"]
    );
    let errors: Vec<String> = check_set(&[&child, &child]).iter().map(ToString::to_string).collect();
    assert_eq!(errors, vec!["sub.toml:1: procedure `sub` for jurisdiction `test` is defined more than once"]);
}

#[test]
fn the_graph_lists_every_transition() {
    let library = Library::built_in();
    let definition = library.get("scenario_demand", "jinzhou").unwrap();
    let diagram = mermaid(definition);
    assert!(diagram.contains("    review --> providing: all approved\n"), "{diagram}");
    assert!(diagram.contains("    review --> review: authority_approves\n"), "{diagram}");
    assert_eq!(diagram.matches(" --> ").count(), definition.transitions().len() + 1 + 2);
}
