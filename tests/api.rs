//! Black-box tests of `statflow serve`: the real binary, a real SQLite file, a virtual clock.

mod common;

use common::{act, cli, start, Backend, TestApp};

/// Each test runs on SQLite, and again on PostgreSQL when `STATFLOW_TEST_POSTGRES_URL` names a
/// server (CI starts one).
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Backend::Sqlite); })*
        }
        mod postgres {
            $(#[test] fn $name() {
                if super::common::postgres_url().is_none() {
                    eprintln!("STATFLOW_TEST_POSTGRES_URL is not set: not run on PostgreSQL");
                    return;
                }
                super::$name(super::Backend::Postgres);
            })*
        }
        mod temporal {
            $(#[test] fn $name() {
                if !super::common::temporal_available() {
                    return;
                }
                super::$name(super::Backend::Temporal);
            })*
        }
    };
}

on_both_databases!(
    registration_end_to_end_over_http,
    a_late_acceptance_is_marked_overdue_and_escalated,
    bad_input_gets_the_right_status_and_changes_nothing,
    parallel_actions_on_one_instance_leave_a_consistent_history,
    after_sigkill_timers_and_effects_resume,
    evaluation_suspends_and_restores_an_authorization_through_a_child_and_signals,
    definitions_carry_json_schemas_and_new_versions_apply_to_new_instances,
    importing_a_calendar_year_recomputes_provisional_deadlines,
    an_official_notice_is_replaced_only_by_a_plausible_correction,
    the_overdue_board_shows_yellow_and_red_items_by_organization,
    an_administrator_cancels_terminates_and_moves_instances,
    running_instances_migrate_to_a_corrected_definition_after_a_dry_run,
    a_token_revoked_while_remembered_changes_nothing_and_hears_only_that_it_is_not_valid,
);
use serde_json::{json, Value};

fn registration_input() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

/// Starts and actions take their caller's token from the tokens the daemon lately found
/// standing, and the transaction storing the change confirms it. Revoked by another process
/// (the command line) while remembered, a token changes nothing: a start stores no instance,
/// an action no event, and whatever else it asks hears only that the token is not valid.
fn a_token_revoked_while_remembered_changes_nothing_and_hears_only_that_it_is_not_valid(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let names = ["acting", "starting", "bad-id", "out-of-order"];
    let tokens: Vec<String> = names.iter().map(|name| app.token(name, "staff", &["taian-registry"])).collect();
    // Each starts an instance (its token read, then remembered); the first also acts, its
    // token remembered and confirmed as the action is stored.
    let ids: Vec<i64> =
        tokens.iter().map(|token| start(&app, token, "registration", "taian", registration_input())).collect();
    assert_eq!(act(&app, &tokens[0], ids[0], "accept", json!({}))["step"]["name"], "substantive_review");
    let standing = |id: i64| (app.instance(id)["step"]["name"].clone(), history_len(&app, id));
    let before: Vec<(Value, usize)> = ids.iter().map(|id| standing(*id)).collect();
    let started = app.get("/v1/instances", &app.admin).1["total"].clone();
    for name in names {
        let revoked = std::process::Command::new(env!("CARGO_BIN_EXE_statflow"))
            .args(["token", "revoke", "--db", &app.db, name])
            .output()
            .unwrap();
        assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    }

    let not_valid = |(status, problem): (u16, Value), what: &str| {
        assert_eq!(status, 401, "{what}: {problem}");
        assert_eq!(problem["detail"], "the token is not valid", "{what}: {problem}");
    };
    let actions = |id: i64| format!("/v1/instances/{id}/actions");
    let engage =
        json!({"action": "engage_third_party", "data": {"third_party": "合规服务中心", "reason": "涉及个人信息"}});
    not_valid(app.post(&actions(ids[0]), &tokens[0], &engage), "an action");
    let start_body = json!({"procedure": "registration", "jurisdiction": "taian", "input": registration_input()});
    not_valid(app.post("/v1/instances", &tokens[1], &start_body), "a start");
    // Nor does a refusal tell a revoked token anything: one before the engine (a bad id), nor
    // one the engine would give (an action out of order), since the token is checked first.
    not_valid(app.post("/v1/instances/abc/actions", &tokens[2], &json!({"action": "accept"})), "a bad id");
    not_valid(app.post(&actions(ids[3]), &tokens[3], &engage), "an action out of order");
    // Forgotten once found gone: read again, and refused again.
    for (token, name) in tokens.iter().zip(names) {
        not_valid(app.post(&actions(ids[0]), token, &engage), name);
    }

    let after: Vec<(Value, usize)> = ids.iter().map(|id| standing(*id)).collect();
    assert_eq!(after, before, "nothing changed on the instances");
    assert_eq!(app.get("/v1/instances", &app.admin).1["total"], started, "no instance was started");
}

/// How many events the history holds, leaving out effect results (notices are delivered, or
/// fail, a moment after the transition that asked for them).
fn history_len(app: &TestApp, id: i64) -> usize {
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(history["chain_intact"], true, "{history}");
    let events = history["events"].as_array().unwrap();
    events.iter().filter(|e| !e["event"]["type"].as_str().unwrap().starts_with("activity_")).count()
}

fn registration_end_to_end_over_http(backend: Backend) {
    let app = TestApp::start(backend, "2026-02-13T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let provider = app.token("provider", "staff", &["taian-market"]);
    let id = start(&app, &provider, "registration", "taian", registration_input());

    let body = app.instance(id);
    assert_eq!(body["step"]["name"], "acceptance");
    assert_eq!(body["deadline"]["due"], "2026-02-26T00:00:00+08:00");
    assert_eq!(body["deadline"]["remaining_working_days"], 3);
    assert_eq!(body["deadline"]["basis"], "《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项");
    assert_eq!(body["tasks"][0]["organization"], "taian-registry");

    // The clerk finds the task in the inbox, claims it and completes it by accepting.
    let (_, inbox) = app.get("/v1/tasks", &clerk);
    let task = inbox["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app.post(&format!("/v1/tasks/{task}/claim"), &clerk, &json!({}));
    assert_eq!(status, 200);
    let (_, mine) = app.get("/v1/tasks?assignee=me", &clerk);
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (status, body) = app.post(&format!("/v1/tasks/{task}/complete"), &clerk, &json!({"action": "accept"}));
    assert_eq!(status, 200, "{body}");
    // Review: 5 working days from 02-13 (02-14 is an adjusted working day) → ends with 02-27.
    assert_eq!(body["step"]["name"], "substantive_review");
    assert_eq!(body["deadline"]["due"], "2026-02-28T00:00:00+08:00");

    let body =
        act(&app, &clerk, id, "engage_third_party", json!({"third_party": "合规服务中心", "reason": "涉及个人信息"}));
    assert_eq!(body["deadline"]["due"], "2026-03-20T00:00:00+08:00");
    assert_eq!(body["deadline"]["period"], "20 working days");
    assert_eq!(body["deadline"]["extension"]["by"], "clerk");

    app.advance("P10D");
    let body = act(&app, &clerk, id, "pass", json!({"compliance_report": "合规"}));
    assert_eq!(body["step"]["name"], "publicity");
    // Publicity: 5 working days from 02-23 (a holiday) → 02-24 … 02-28 → ends with 02-28.
    assert_eq!(body["deadline"]["due"], "2026-03-01T00:00:00+08:00");
    let fired = app.advance("P7D");
    assert!(fired.iter().any(|t| t.ends_with(".deadline")), "{fired:?}");
    let body = app.wait_for(id, "certificate issued", |b| {
        b["activity_results"].as_object().is_some_and(|r| r.values().any(|v| v["certificate_no"].is_string()))
    });
    assert_eq!(body["step"]["name"], "rights_confirmation");
    let body = act(&app, &clerk, id, "confirm_rights", json!({}));
    assert_eq!((body["status"].as_str(), body["outcome"].as_str()), (Some("completed"), Some("registered")));
    assert_eq!(body["record_status"], "registered");
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(history["chain_intact"], true);
    assert!(history["events"].as_array().unwrap().len() >= 7, "{history}");
}

fn a_late_acceptance_is_marked_overdue_and_escalated(backend: Backend) {
    let app = TestApp::start(backend, "2026-02-13T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &app.admin, "registration", "taian", registration_input());
    // To 03-03: both reminders, the deadline (02-26 00:00, with the first escalation), the
    // supervisor (02-27 00:00) and the regulator (03-01 00:00, Saturday 02-28 being a
    // working day).
    let fired = app.advance("P18D");
    assert_eq!(fired, ["v1.remind.1", "v1.remind.0", "v1.deadline", "v1.escalate.1", "v1.escalate.2"]);
    let body = app.instance(id);
    assert_eq!(body["deadline"]["overdue"], true);
    assert_eq!(body["tasks"][0]["overdue"], true);
    let effects: Vec<&str> = body["effects"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // The task's notice, then reminders and escalations, are written to the outbox, in
    // order, for delivery channels.
    assert_eq!(effects, ["task_notice", "notify", "notify", "escalate", "escalate", "escalate"]);
    // Still overdue five working days later: the regulator is told again.
    assert_eq!(app.advance("P4D"), ["v1.escalate.3"]);
    let (_, overdue) = app.get("/v1/instances?overdue=true", &clerk);
    assert_eq!(overdue["total"], 1);
    act(&app, &clerk, id, "accept", json!({}));
    assert!(app.advance("P3D").is_empty(), "accepting cancels the remaining escalations");
}

fn bad_input_gets_the_right_status_and_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let outsider = app.token("outsider", "staff", &["jinan-registry"]);
    let regulator = app.token("regulator", "regulator", &[]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    // The task's notice is tried at once (and fails: this daemon has no directory); only then
    // does the instance stand still.
    app.wait_for(id, "its task notice tried", |v| {
        v["effects"].as_array().unwrap().iter().all(|e| e["status"] != "pending")
    });
    let before = (app.instance(id), history_len(&app, id));

    let path = format!("/v1/instances/{id}/actions");
    let cases: Vec<(&str, &str, String, u16, Option<&str>)> = vec![
        ("out of order", &clerk, json!({"action": "pass", "data": {"compliance_report": "x"}}).to_string(), 409, None),
        ("missing field", &clerk, json!({"action": "reject", "data": {}}).to_string(), 422, Some("data.reasons")),
        (
            "wrong type",
            &clerk,
            json!({"action": "reject", "data": {"reasons": 5}}).to_string(),
            422,
            Some("data.reasons"),
        ),
        ("unknown field", &clerk, json!({"action": "accept", "data": {"x": 1}}).to_string(), 422, Some("data.x")),
        ("malformed", &clerk, "{\"action\": ".into(), 400, None),
        ("wrong body type", &clerk, json!({"action": 7}).to_string(), 422, None),
        ("other organization", &outsider, json!({"action": "accept"}).to_string(), 404, None),
        ("regulator acting", &regulator, json!({"action": "accept"}).to_string(), 403, None),
        ("bad token", "sf_nope", json!({"action": "accept"}).to_string(), 401, None),
    ];
    for (what, token, body, status, field) in cases {
        let (got, problem) = app.post_raw(&path, token, &body);
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}: problem details carry the status");
        assert_eq!(problem["field"].as_str(), field, "{what}: {problem}");
    }
    assert_eq!(app.post_declaring_length(&path, &clerk, 400_000), 413, "a body over 256 KiB is refused");
    assert_eq!(app.get("/v1/instances/999", &app.admin).0, 404);
    assert_eq!(app.get("/v1/instances/abc", &app.admin).0, 404);
    assert_eq!(app.post("/v1/instances/999/actions", &app.admin, &json!({"action": "accept"})).0, 404);
    let (status, problem) =
        app.post("/v1/instances", &clerk, &json!({"procedure": "nonexistent", "jurisdiction": "taian", "input": {}}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("procedure")));
    let (status, problem) = app.post(
        "/v1/instances",
        &clerk,
        &json!({"procedure": "registration", "jurisdiction": "taian", "input": {"agency_org": "taian-registry"}}),
    );
    assert_eq!(status, 422, "{problem}");
    assert!(problem["field"].as_str().unwrap().starts_with("input."), "{problem}");
    assert_eq!(app.get("/v1/instances?per_page=0", &app.admin).0, 400);
    assert_eq!(app.get("/nowhere", &app.admin).0, 404);

    assert_eq!((app.instance(id), history_len(&app, id)), before, "refused requests changed stored data");
}

fn parallel_actions_on_one_instance_leave_a_consistent_history(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    let outcomes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (app, clerk) = (&app, &clerk);
                scope.spawn(move || {
                    let action = if i % 2 == 0 { "accept" } else { "reject" };
                    let data = if i % 2 == 0 { json!({}) } else { json!({"reasons": "并发"}) };
                    app.post(&format!("/v1/instances/{id}/actions"), clerk, &json!({"action": action, "data": data})).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Exactly one action wins; every other one finds the step gone and is refused.
    assert_eq!(outcomes.iter().filter(|s| **s == 200).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|s| *s == 200 || *s == 409), "{outcomes:?}");
    assert_eq!(history_len(&app, id), 2);
}

fn after_sigkill_timers_and_effects_resume(backend: Backend) {
    let app = TestApp::start(backend, "2026-02-13T10:00:00+08:00");
    let id = start(&app, &app.admin, "registration", "taian", registration_input());
    app.crash_and_restart("2026-02-13T10:00:00+08:00");
    // Nothing was kept in memory: the deadline and its reminders come back from the database.
    let fired = app.advance("P13D");
    assert_eq!(fired, ["v1.remind.1", "v1.remind.0", "v1.deadline"]);
    assert_eq!(app.instance(id)["deadline"]["overdue"], true);
    assert_eq!(history_len(&app, id), 4);
}

fn evaluation_suspends_and_restores_an_authorization_through_a_child_and_signals(backend: Backend) {
    let app = TestApp::start(backend, "2026-02-02T09:00:00+08:00");
    let bureau = app.token("bureau", "staff", &["ta-bureau"]);
    let operator = app.token("operator", "staff", &["ta-operator"]);
    let auth = start(
        &app,
        &bureau,
        "authorized_operation",
        "taian",
        json!({"authority_org": "ta-bureau", "operator_org": "ta-operator", "scope": "交通数据", "application_days": 20, "publicity_days": 7}),
    );
    app.advance("P23D");
    act(&app, &bureau, auth, "select", json!({"operator": "甲", "review_report": "r"}));
    app.advance("P8D");
    act(&app, &bureau, auth, "approve", json!({"meeting_minutes": "通过"}));
    let body = act(
        &app,
        &bureau,
        auth,
        "sign",
        json!({"agreement_no": "TA-1", "effective_from": "2026-04-01", "term_years": 3}),
    );
    assert_eq!(body["step"]["name"], "active");

    let evaluation = start(
        &app,
        &bureau,
        "annual_evaluation",
        "taian",
        json!({"authority_org": "ta-bureau", "operator_org": "ta-operator", "authorization_instance": auth.to_string(), "year": 2026, "materials_days": 15}),
    );
    act(&app, &operator, evaluation, "submit_materials", json!({"materials": "年度材料"}));
    act(&app, &bureau, evaluation, "non_compliant", json!({"findings": "超范围使用", "rectification_days": 30}));
    // The authorization is suspended by signal, and a rectification child starts.
    app.wait_for(auth, "suspended by the evaluation", |b| b["step"]["name"] == "suspended");
    let child = app.wait_until("the rectification child starts", || {
        let (_, children) = app.get("/v1/instances?procedure=rectification", &bureau);
        children["items"][0]["id"].as_i64()
    });
    assert_eq!(app.instance(child)["parent"], evaluation);
    if let (Backend::Temporal, Some(address)) = (backend, common::temporal_address()) {
        // The child's workflow is a Temporal child workflow of the evaluation's.
        let workflow = |id: i64| format!("{}/instance/{id}", app.task_queue());
        let parent = serde_json::to_string(&common::temporal_history(&address, &workflow(evaluation))).unwrap();
        assert!(parent.contains("START_CHILD_WORKFLOW_EXECUTION_INITIATED"), "{parent}");
        let started = common::temporal_history(&address, &workflow(child)).remove(0);
        let attributes = &started["workflowExecutionStartedEventAttributes"];
        assert_eq!(attributes["parentWorkflowExecution"]["workflowId"], workflow(evaluation), "{started}");
    }
    act(&app, &operator, child, "report_completion", json!({"report": "已整改"}));
    act(&app, &bureau, child, "pass", json!({"findings": "到位"}));
    // The child's outcome reaches the evaluation, which restores the authorization.
    app.wait_for(evaluation, "restored", |b| b["outcome"] == "restored");
    app.wait_for(auth, "access restored", |b| b["step"]["name"] == "active");
}

fn definitions_carry_json_schemas_and_new_versions_apply_to_new_instances(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let (_, list) = app.get("/v1/definitions", &clerk);
    // One per file of the built-in library.
    let library = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows/procedures"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml"))
        .count();
    assert_eq!(list["items"].as_array().unwrap().len(), library);
    let (status, registration) = app.get("/v1/definitions/registration", &clerk);
    assert_eq!(status, 200);
    let required: Vec<&str> =
        registration["input_schema"]["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, ["agency_org", "registrant_org", "registration_type", "resource_name"]);
    let acceptance = registration["steps"].as_array().unwrap().iter().find(|s| s["name"] == "acceptance").unwrap();
    assert_eq!(acceptance["actions"]["reject"]["data_schema"]["required"], json!(["reasons"]));
    assert_eq!(acceptance["deadline"]["basis"], "《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项");
    let (status, problem) = app.get("/v1/definitions/conditional_open", &clerk);
    assert_eq!((status, problem["field"].as_str()), (400, Some("jurisdiction")));
    assert_eq!(app.get("/v1/definitions/conditional_open?jurisdiction=wuzhong", &clerk).0, 200);

    let old = start(&app, &clerk, "registration", "taian", registration_input());
    let source = include_str!("../workflows/procedures/registration.taian.toml");
    // Tai'an art. 9(2) states 3 working days: 4 is refused as statutory, and loads as the
    // agency's own rule.
    let four_statutory = source.replacen("working_days = 3\n", "working_days = 4\n", 1);
    let (status, refused) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "registration.taian.toml", "source": four_statutory}));
    assert_eq!(status, 422, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("does not state 4 working days"), "{refused}");
    let four_days = source.replacen(
        "working_days = 3\nlimit = \"statutory\"\n",
        "working_days = 4\nlimit = \"policy\"\npolicy = \"本单位登记规程:受理期限4个工作日\"\n",
        1,
    );
    assert_ne!(four_days, source);
    assert_eq!(
        app.post("/v1/definitions", &clerk, &json!({"file": "registration.taian.toml", "source": four_days})).0,
        403
    );
    let (status, loaded) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "registration.taian.toml", "source": four_days}));
    assert_eq!(status, 201, "{loaded}");
    assert_ne!(loaded["version"], registration["version"]);
    let new = start(&app, &clerk, "registration", "taian", registration_input());
    assert_eq!(app.instance(new)["definition_version"], loaded["version"]);
    assert_eq!(app.instance(new)["deadline"]["due"], "2026-03-07T00:00:00+08:00");
    // The running instance keeps the version it started with.
    assert_eq!(app.instance(old)["definition_version"], registration["version"]);
    assert_eq!(app.instance(old)["deadline"]["due"], "2026-03-06T00:00:00+08:00");

    let broken = source.replacen("goto = \"substantive_review\"", "goto = \"substantive_reveiw\"", 1);
    let line = broken.lines().position(|l| l.contains("substantive_reveiw")).unwrap() + 1;
    let (status, problem) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "registration.taian.toml", "source": broken}));
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["line"], line);
    assert_eq!(
        problem["errors"][0]["message"],
        "action `accept` goes to step `substantive_reveiw`, which is not defined under [steps]"
    );
    let (_, after) = app.get("/v1/definitions/registration", &clerk);
    assert_eq!(after["version"], loaded["version"], "a refused definition changes nothing");
}

fn importing_a_calendar_year_recomputes_provisional_deadlines(backend: Backend) {
    let app = TestApp::start(backend, "2026-12-29T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    let before = app.instance(id);
    assert_eq!(before["deadline"]["provisional"], true);
    assert_eq!(before["deadline"]["due"], "2027-01-02T00:00:00+08:00");

    let malformed = "# 2027: test\n2027-01-01\t元旦\toff\n2027-02-30\t春节\toff\n";
    let (status, problem) = app.post("/v1/calendars", &app.admin, &json!({"origin": "2027.tsv", "content": malformed}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("content")));
    assert_eq!(problem["detail"], "2027.tsv: line 3: `2027-02-30` is not a date in YYYY-MM-DD form");
    assert_eq!(app.instance(id)["deadline"], before["deadline"], "a refused import changes nothing");

    let notice = include_str!("fixtures/2027.json");
    let (status, body) = app.post("/v1/calendars", &app.admin, &json!({"origin": "2027.json", "content": notice}));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"years": [2027], "generation": 1, "instances_to_recompute": 1}));
    // The recomputation runs in the background; the listing counts what is left. (The view
    // reads provisional marks against the current calendar at once; the stored deadline and
    // its timers follow when the instance is recomputed.)
    let recompute = app.wait_until("recomputed", || {
        Some(app.get("/v1/calendars", &clerk).1["recompute"].clone()).filter(|r| r["instances_remaining"] == 0)
    });
    assert_eq!(recompute, json!({"generation": 1, "instances_remaining": 0}));
    let after = app.instance(id);
    assert_eq!(after["deadline"]["provisional"], false);
    assert_eq!(after["deadline"]["due"], "2027-01-05T00:00:00+08:00");
    // The timers moved with it: the last day is now Monday 01-04, reminded at 09:00.
    assert!(app.advance("P5D").iter().all(|t| t != "v1.deadline"));
    assert_eq!(app.advance("P2D"), ["v1.remind.0", "v1.deadline"]);
    let (_, years) = app.get("/v1/calendars", &clerk);
    let last = years["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["year"].as_i64(), last["origin"].as_str(), &last["correction"]),
        (Some(2027), Some("2027.json"), &Value::Null)
    );
}

/// A one-day "notice" once replaced the embedded official 2026 notice over the API and moved
/// a registration's deadline from 10-10 to 10-03 without a word. An official notice is now
/// replaced only as a correction with its reason, and only by a plausible notice.
fn an_official_notice_is_replaced_only_by_a_plausible_correction(backend: Backend) {
    let app = TestApp::start(backend, "2026-09-29T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    let before = app.instance(id)["deadline"].clone();
    assert_eq!(before["due"], "2026-10-10T00:00:00+08:00", "{before}");
    assert_eq!(before["provisional"], false);

    let one_day = "# 2026: forged\n2026-10-01\t国庆节\toff\n";
    let (status, problem) = app.post("/v1/calendars", &app.admin, &json!({"origin": "2026.tsv", "content": one_day}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("replace")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("the 2026 notice is already loaded"), "{problem}");
    let (status, problem) = app.post(
        "/v1/calendars",
        &app.admin,
        &json!({"origin": "2026.tsv", "content": one_day, "replace": "补充通知"}),
    );
    assert_eq!((status, problem["field"].as_str()), (422, Some("content")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("the statutory holiday 春节 is missing"), "{problem}");
    let (status, problem) =
        app.post("/v1/calendars", &app.admin, &json!({"origin": "2026.tsv", "content": one_day, "replace": " "}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("replace")), "{problem}");
    assert_eq!(app.instance(id)["deadline"], before, "refused imports change nothing");

    // A real correction (here the official text itself, re-checked) is accepted and shown.
    let official: String = include_str!("../workflows/data/cn-official.tsv")
        .split("\n# ")
        .find(|part| part.starts_with("2026:"))
        .map(|part| format!("# {part}"))
        .unwrap();
    let (status, body) = app.post(
        "/v1/calendars",
        &app.admin,
        &json!({"origin": "2026-recheck.tsv", "content": official, "replace": "与国办发明电〔2025〕7号原文重新核对"}),
    );
    assert_eq!(status, 202, "{body}");
    let (_, years) = app.get("/v1/calendars", &clerk);
    let year = years["items"].as_array().unwrap().iter().find(|y| y["year"] == 2026).unwrap().clone();
    assert_eq!(year["correction"], "与国办发明电〔2025〕7号原文重新核对", "{year}");
    app.wait_until("recomputed", || {
        Some(()).filter(|_| app.get("/v1/calendars", &clerk).1["recompute"]["instances_remaining"] == 0)
    });
    assert_eq!(app.instance(id)["deadline"]["due"], "2026-10-10T00:00:00+08:00");
    assert_eq!(app.post("/v1/calendars", &clerk, &json!({"origin": "x", "content": official})).0, 403);
}

#[test]
fn the_openapi_document_describes_every_route() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let (status, document) = app.get("/v1/openapi.json", "");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    // Every route the router serves (daemon/src/api/mod.rs).
    let router = include_str!("../daemon/src/api/mod.rs");
    let routes: Vec<&str> = router
        .lines()
        .filter_map(|l| l.trim().strip_prefix(".route(\""))
        .map(|l| l.split('"').next().unwrap())
        .collect();
    assert!(routes.len() >= 14, "{routes:?}");
    for route in routes {
        assert!(document["paths"][route].is_object(), "{route} is not described");
    }
    // Every success that carries a JSON body has a real schema, derived from the type the
    // handler returns (`/metrics` answers in Prometheus's text format), and every error is a
    // problem document.
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
            for (code, response) in op["responses"].as_object().unwrap() {
                let Some(content) = response["content"].as_object() else { continue };
                let (media, body) = content.iter().next().unwrap();
                let name = body["schema"]["$ref"].as_str().map(|r| r.trim_start_matches("#/components/schemas/"));
                if code.starts_with('2') && media == "application/json" && path != "/v1/openapi.json" {
                    let name = name.unwrap_or_else(|| panic!("{method} {path} {code} has no schema"));
                    let schema = &schemas[name];
                    let real = schema["properties"].is_object() || schema["allOf"].is_array();
                    assert!(real, "{method} {path} {code}: {name} is not a real schema: {schema}");
                } else if !code.starts_with('2') {
                    assert_eq!(
                        (media.as_str(), name),
                        ("application/problem+json", Some("Problem")),
                        "{method} {path} {code}"
                    );
                }
            }
            if let Some(request) = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() {
                let name = request.trim_start_matches("#/components/schemas/");
                assert!(schemas.contains_key(name), "{method} {path}: request schema {name} is missing");
            }
        }
    }
    // What is accepted is what is documented: `set` of the clock may be null.
    assert_eq!(schemas["ClockRequest"]["properties"]["set"]["type"], json!(["string", "null"]));
    let (status, health) = app.get("/healthz", "");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(app.get("/readyz", "").0, 200);
}

/// Runs a client command of the binary against the test daemon.
#[test]
fn the_cli_starts_acts_shows_and_lists() {
    let app = TestApp::start(Backend::Sqlite, "2026-02-13T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let input = app.dir.join("input.json");
    std::fs::write(&input, registration_input().to_string()).unwrap();
    let (code, out, err) =
        cli(&app, &clerk, &["start", "registration", "--jurisdiction", "taian", "--input", input.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\nstep: acceptance, due 2026-02-26T00:00:00+08:00\n");

    let (_, tasks, _) = cli(&app, &clerk, &["tasks"]);
    assert_eq!(tasks, "1:v1.task\t#1\t形式审查并受理登记申请\tdue 2026-02-26T00:00:00+08:00\n");
    app.advance("P14D");
    let (_, overdue, _) = cli(&app, &clerk, &["overdue"]);
    assert_eq!(
        overdue,
        "taian-registry\n  RED    #1\t公共数据登记\t登记受理\tdue 2026-02-26T00:00:00+08:00\t2 working days overdue, \
         超期上报主管部门\t《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项\n"
    );

    let (code, _, err) = cli(&app, &clerk, &["act", "1", "reject"]);
    assert_eq!((code, err.as_str()), (1, "statflow: field `reasons` is required (data.reasons)\n"));
    let (code, out, _) = cli(&app, &clerk, &["act", "1", "accept"]);
    assert_eq!((code, out.as_str()), (0, "step: substantive_review (running)\n"));

    let (code, show, _) = cli(&app, &clerk, &["show", "1"]);
    assert_eq!(code, 0);
    let expected_lines = [
        "#1 公共数据登记 (registration/taian) — running",
        "2026-02-13T10:00:00+08:00  clerk      started",
        "2026-02-26T00:00:00+08:00  timer      timer v1.deadline",
        "2026-02-27T10:00:00+08:00  clerk      action accept",
        "history chain: intact",
        "current step: 登记审查 (substantive_review)",
        // 02-28 (Saturday) is an adjusted working day: 02-28, 03-02 … 03-05.
        "deadline: due 2026-03-06T00:00:00+08:00, 5 working days left (5 working days)",
        "legal basis: 《泰安市公共数据开发利用管理办法(试行)》第九条第(三)项",
        "task 1:v2.task: 实质审查 — registration_agency at taian-registry",
    ];
    for line in expected_lines {
        assert!(show.lines().any(|l| l == line), "missing {line:?} in:\n{show}");
    }
    let (code, _, err) = cli(&app, "sf_wrong", &["show", "1"]);
    assert_eq!((code, err.as_str()), (1, "statflow: the token is not valid\n"));

    // An administrator's repairs, from the command line too.
    let (code, _, err) = cli(&app, &clerk, &["cancel", "1", "--reason", "撤回"]);
    assert_eq!((code, err.as_str()), (1, "statflow: only an administrator cancels, terminates or moves an instance\n"));
    let (code, out, err) = cli(&app, &app.admin, &["move", "1", "acceptance", "--reason", "重新受理"]);
    assert_eq!((code, out.as_str()), (0, "instance 1: step acceptance\n"), "{err}");
    let (code, out, err) = cli(&app, &app.admin, &["cancel", "1", "--reason", "登记主体撤回申请"]);
    assert_eq!((code, out.as_str()), (0, "instance 1: cancelled\n"), "{err}");
    let (_, show, _) = cli(&app, &clerk, &["show", "1"]);
    assert!(show.contains("admin      cancelled by an administrator: 登记主体撤回申请"), "{show}");
}

fn the_overdue_board_shows_yellow_and_red_items_by_organization(backend: Backend) {
    let app = TestApp::start(backend, "2026-02-13T10:00:00+08:00");
    let late = start(&app, &app.admin, "registration", "taian", registration_input());
    let mut other = registration_input();
    other["agency_org"] = json!("jinan-registry");
    let soon = {
        app.advance("P7D");
        start(&app, &app.admin, "registration", "taian", other)
    };
    let board = |token: &str, query: &str| {
        let (status, body) = app.get(&format!("/v1/overdue{query}"), token);
        assert_eq!(status, 200, "{body}");
        body["organizations"].as_array().unwrap().clone()
    };
    // 02-24: the first registration's acceptance (due 02-25 24:00) is within its 1-working-day
    // reminder window; the second, started on 02-20 during the Spring Festival break and due
    // 02-26 24:00, is not.
    let (status, _) = app.post("/v1/admin/clock", &app.admin, &json!({"set": "2026-02-24T10:00:00+08:00"}));
    assert_eq!(status, 200);
    let now = board(&app.admin, "");
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["organization"], "taian-registry");
    assert_eq!(now[0]["red"], json!([]));
    let yellow = &now[0]["yellow"][0];
    assert_eq!((yellow["instance"].as_i64(), yellow["remaining_working_days"].as_i64()), (Some(late), Some(1)));
    assert_eq!(yellow["due"], "2026-02-26T00:00:00+08:00");

    // 03-03: the first is red, five working days overdue (02-26, 02-27, the working Saturday
    // 02-28, 03-02, 03-03) with the regulator told; the second four (from 02-27), which is
    // past the regulator's 3 working days too.
    let (status, _) = app.post("/v1/admin/clock", &app.admin, &json!({"set": "2026-03-03T10:00:00+08:00"}));
    assert_eq!(status, 200);
    let now = board(&app.admin, "");
    let by_org: Vec<(&str, i64, i64, &str)> = now
        .iter()
        .flat_map(|org| {
            org["red"].as_array().unwrap().iter().map(move |item| {
                (
                    org["organization"].as_str().unwrap(),
                    item["instance"].as_i64().unwrap(),
                    item["working_days_overdue"].as_i64().unwrap(),
                    item["escalation_level"].as_str().unwrap_or("-"),
                )
            })
        })
        .collect();
    assert_eq!(by_org, [("jinan-registry", soon, 4, "超期上报监管方"), ("taian-registry", late, 5, "超期上报监管方")]);
    assert!(now[1]["red"][0]["basis"].as_str().unwrap().contains("第九条"), "{now:?}");

    // Staff see their own organization's items only; `org` narrows the board.
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let mine = board(&clerk, "");
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["organization"], "taian-registry");
    assert_eq!(board(&app.admin, "?org=jinan-registry").len(), 1);
    let (status, _) = app.get("/v1/overdue?colour=red", &app.admin);
    assert_eq!(status, 400);

    // `statflow overdue` prints the same board.
    let (code, out, err) = cli(&app, &clerk, &["overdue"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("taian-registry\n"), "{out}");
    assert!(out.contains(&format!("RED    #{late}\t")), "{out}");
    assert!(out.contains("5 working days overdue, 超期上报监管方"), "{out}");
}

/// A procedure resting on a draft says so when started and wherever its instance or its
/// definition is shown; one on texts in force says nothing.
#[test]
fn a_procedure_resting_on_a_text_not_in_force_says_so() {
    let app = TestApp::start(Backend::Sqlite, "2026-04-28T10:00:00+08:00");
    let draft = "依据文件《吴忠市公共数据管理办法(暂行)(征求意见稿)》为征求意见稿,尚未生效";
    let (status, started) = app.post(
        "/v1/instances",
        &app.admin,
        &json!({"procedure": "sharing", "jurisdiction": "wuzhong", "input": {"requester_org": "wz-tax", "provider_org": "wz-market", "data_needed": "企业登记信息"}}),
    );
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["source_notices"], json!([draft]));
    let id = started["id"].as_i64().unwrap();
    assert_eq!(app.instance(id)["source_notices"], json!([draft]));
    // Whoever works its task is told too.
    let provider = app.token("provider", "staff", &["wz-market"]);
    let (_, tasks) = app.get("/v1/tasks", &provider);
    let task = tasks["items"].as_array().unwrap().iter().find(|t| t["instance"] == id).expect("its task").clone();
    assert_eq!(task["source_notices"], json!([draft]), "{task}");
    assert_eq!(app.instance(id)["tasks"][0]["source_notices"], json!([draft]), "and in the instance's own task list");
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(history["source_notices"], json!([draft]), "the history records it from the start");
    let (_, definition) = app.get("/v1/definitions/sharing?jurisdiction=wuzhong", &app.admin);
    assert_eq!(definition["sources"]["wuzhong"]["status"], "draft", "{definition}");
    assert_eq!(definition["sources"]["wuzhong"]["notice"], draft);
    assert!(definition["mermaid"].as_str().unwrap().contains(draft));
    let (_, definition) = app.get("/v1/definitions/conditional_open?jurisdiction=tianjin", &app.admin);
    assert_eq!(definition["sources"]["tianjin_open"]["status"], "expired");
    assert_eq!(definition["sources"]["tianjin_open"]["in_force_until"], "2024-07-31");
    assert_eq!(
        definition["sources"]["tianjin_open"]["notice"],
        "依据文件《天津市公共数据资源开放管理办法》已于2024-07-31失效"
    );
    let id = start(&app, &app.admin, "registration", "taian", registration_input());
    assert_eq!(app.instance(id)["source_notices"], json!([]));
}

/// A version loaded through the API stays current after a restart (even a kill -9), and a
/// procedure that exists only as a loaded file can still be started.
#[test]
fn loaded_definition_versions_stay_current_after_a_restart() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let source = include_str!("../workflows/procedures/registration.taian.toml");
    let four_days = source.replacen(
        "working_days = 3\nlimit = \"statutory\"\n",
        "working_days = 4\nlimit = \"policy\"\npolicy = \"本单位登记规程:受理期限4个工作日\"\n",
        1,
    );
    let (status, loaded) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "registration.taian.toml", "source": four_days}));
    assert_eq!(status, 201, "{loaded}");
    let backflow = include_str!("../workflows/procedures/backflow.wuzhong.toml");
    let custom = backflow.replacen("id = \"backflow\"", "id = \"custom_backflow\"", 1);
    let (status, body) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "custom_backflow.wuzhong.toml", "source": custom}));
    assert_eq!(status, 201, "{body}");

    app.crash_and_restart("2026-03-02T09:00:00+08:00");
    let id = start(&app, &app.admin, "registration", "taian", registration_input());
    assert_eq!(app.instance(id)["definition_version"], loaded["version"], "the loaded version, not the built-in");
    assert_eq!(app.instance(id)["deadline"]["due"], "2026-03-07T00:00:00+08:00");
    let (status, started) = app.post(
        "/v1/instances",
        &app.admin,
        &json!({"procedure": "custom_backflow", "jurisdiction": "wuzhong", "input": {"lower_org": "county", "upper_org": "city", "data_needed": "人口数据"}}),
    );
    assert_eq!(status, 201, "{started}");
}

/// `statflow calendar import` gives the notice to the running daemon, whose deadlines follow
/// at once (it once wrote a folder the daemon never read).
#[test]
fn the_cli_imports_a_calendar_year_into_the_running_daemon() {
    let app = TestApp::start(Backend::Sqlite, "2026-12-29T10:00:00+08:00");
    let id = start(&app, &app.admin, "registration", "taian", registration_input());
    assert_eq!(app.instance(id)["deadline"]["provisional"], true, "2027 has no notice yet");
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/2027.json");
    let (code, out, err) = cli(&app, &app.admin, &["calendar", "import", file]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "imported 2027 into the daemon (calendar generation 1); 1 running instances are being recomputed\n"
    );
    let after = app.wait_for(id, "recomputed with the official 2027 notice", |b| b["deadline"]["provisional"] == false);
    assert_eq!(after["deadline"]["due"], "2027-01-05T00:00:00+08:00");
    let (_, years) = app.get("/v1/calendars", &app.admin);
    assert_eq!(years["items"].as_array().unwrap().last().unwrap()["origin"], "2027.json");
    // Replacing it again is a correction and needs its reason, as over the API.
    let (code, _, err) = cli(&app, &app.admin, &["calendar", "import", file]);
    assert_eq!(code, 1);
    assert!(err.contains("replace"), "{err}");
}

/// A step whose task says `notify = false` opens it without a notice; the next step's task,
/// which does not say so, is told as usual.
#[test]
fn a_step_can_open_its_task_without_a_notice() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let quiet = include_str!("../workflows/procedures/registration.taian.toml").replacen(
        "task = { role = \"registration_agency\", title = \"形式审查并受理登记申请\" }",
        "task = { role = \"registration_agency\", title = \"形式审查并受理登记申请\", notify = false }",
        1,
    );
    assert!(quiet.contains("notify = false"), "the acceptance task is found in the definition");
    let (status, body) =
        app.post("/v1/definitions", &app.admin, &json!({"file": "registration.taian.toml", "source": quiet}));
    assert_eq!(status, 201, "{body}");
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    let kinds = |app: &TestApp| -> Vec<String> {
        app.instance(id)["effects"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
    };
    assert!(!kinds(&app).contains(&"task_notice".to_owned()), "{:?}", kinds(&app));
    act(&app, &clerk, id, "accept", json!({}));
    assert_eq!(kinds(&app), ["task_notice"], "the review's task is told");
}

fn an_administrator_cancels_terminates_and_moves_instances(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let [stuck, withdrawn, duplicate] =
        [(); 3].map(|_| start(&app, &clerk, "registration", "taian", registration_input()));
    act(&app, &clerk, stuck, "accept", json!({}));
    let repair =
        |id: i64, verb: &str, token: &str, body: Value| app.post(&format!("/v1/instances/{id}/{verb}"), token, &body);

    // Staff may not, whatever the instance; bad requests name their field; nothing changes.
    let before = history_len(&app, withdrawn);
    let (status, body) = repair(withdrawn, "cancel", &clerk, json!({"reason": "撤回"}));
    assert_eq!(status, 403, "{body}");
    for (verb, body, field) in [
        ("cancel", json!({"reason": "  "}), "reason"),
        ("terminate", json!({"reason": "x".repeat(2001)}), "reason"),
        ("move", json!({"step": "approval", "reason": "修复"}), "step"),
        ("move", json!({"step": "", "reason": "修复"}), "step"),
    ] {
        let (status, problem) = repair(withdrawn, verb, &app.admin, body);
        assert_eq!((status, problem["field"].as_str()), (422, Some(field)), "{verb}: {problem}");
    }
    let (status, problem) = repair(withdrawn, "move", &app.admin, json!({"step": "approval", "reason": "修复"}));
    assert!(problem["detail"].as_str().unwrap().contains("acceptance"), "{status} {problem}");
    assert_eq!(history_len(&app, withdrawn), before, "refused repairs leave no trace in the history");

    // Moved back to acceptance a week on: a fresh task and a fresh 3-working-day limit.
    app.advance("P7D");
    let (status, moved) = repair(stuck, "move", &app.admin, json!({"step": "acceptance", "reason": "重新受理"}));
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["step"]["name"], "acceptance");
    assert_eq!(moved["deadline"]["due"], "2026-03-13T00:00:00+08:00");
    assert_eq!(moved["tasks"].as_array().unwrap().len(), 1);

    // Cancelled: the registrant and the task's holder are told; terminated: nobody is.
    let notices = |id: i64| {
        let body = app.instance(id);
        body["effects"].as_array().unwrap().iter().filter(|e| e["kind"] == "notify").count()
    };
    let (notified_before, terminated_before) = (notices(withdrawn), notices(duplicate));
    let (status, cancelled) = repair(withdrawn, "cancel", &app.admin, json!({"reason": "登记主体撤回申请"}));
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!((cancelled["status"].as_str(), cancelled["outcome"].as_str()), (Some("completed"), Some("cancelled")));
    assert!(cancelled["tasks"].as_array().unwrap().is_empty(), "{cancelled}");
    assert_eq!(notices(withdrawn), notified_before + 2);
    let (status, terminated) = repair(duplicate, "terminate", &app.admin, json!({"reason": "重复录入"}));
    assert_eq!((status, terminated["outcome"].as_str()), (200, Some("terminated")));
    assert_eq!(notices(duplicate), terminated_before);

    // Over is over: no action, no second ending, and no timer of theirs fires any more.
    let (status, _) = app.post(&format!("/v1/instances/{withdrawn}/actions"), &app.admin, &json!({"action": "accept"}));
    assert_eq!(status, 409);
    assert_eq!(repair(duplicate, "cancel", &app.admin, json!({"reason": "again"})).0, 409);
    let ended_at = [withdrawn, duplicate].map(|id| history_len(&app, id));
    app.advance("P30D");
    assert_eq!([withdrawn, duplicate].map(|id| history_len(&app, id)), ended_at, "no timer outlives its instance");

    // The history says who and why; so does the audit log.
    let (_, history) = app.get(&format!("/v1/instances/{withdrawn}/history"), &app.admin);
    let ended = history["events"].as_array().unwrap().iter().find(|e| e["event"]["type"] == "ended").unwrap();
    assert_eq!((ended["actor"].as_str(), ended["event"]["reason"].as_str()), (Some("admin"), Some("登记主体撤回申请")));
    let (_, audit) = app.get("/v1/audit?action=instance.", &app.admin);
    let acts: Vec<(String, String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (text(&a["action"]), text(&a["target"]), text(&a["detail"]["reason"])))
        .collect();
    let entry = |action: &str, id: i64, reason: &str| (action.to_owned(), format!("instance/{id}"), reason.to_owned());
    assert_eq!(
        acts,
        [
            entry("instance.terminate", duplicate, "重复录入"),
            entry("instance.cancel", withdrawn, "登记主体撤回申请"),
            entry("instance.move", stuck, "重新受理"),
        ]
    );
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The registration as corrected: the substantive review runs 20 working days, and
/// publicity is renamed `public_notice`.
fn corrected_registration() -> String {
    include_str!("../workflows/procedures/registration.taian.toml")
        .replace(
            "[steps.substantive_review.deadline]\nworking_days = 5",
            "[steps.substantive_review.deadline]\nworking_days = 20",
        )
        .replace("steps.publicity", "steps.public_notice")
        .replace("\"publicity\"", "\"public_notice\"")
}

fn running_instances_migrate_to_a_corrected_definition_after_a_dry_run(backend: Backend) {
    let app = TestApp::start(backend, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    // One in substantive review (accepted 03-02: due after 5 working days), one in publicity.
    let [reviewed, published] = [(); 2].map(|_| start(&app, &clerk, "registration", "taian", registration_input()));
    act(&app, &clerk, reviewed, "accept", json!({}));
    act(&app, &clerk, published, "accept", json!({}));
    act(&app, &clerk, published, "pass", json!({"compliance_report": "合规"}));
    let old_version = app.instance(reviewed)["definition_version"].as_str().unwrap().to_owned();
    assert_eq!(app.instance(reviewed)["deadline"]["due"], "2026-03-10T00:00:00+08:00");
    let corrected = app.dir.join("registration.taian.toml");
    std::fs::write(&corrected, corrected_registration()).unwrap();
    let (code, out, err) = cli(&app, &app.admin, &["definitions", "load", corrected.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let new_version =
        out.trim().strip_prefix("registration/taian version ").unwrap().strip_suffix(" is current").unwrap();
    let new_version = new_version.to_owned();
    let started_new = start(&app, &clerk, "registration", "taian", registration_input());

    let migrate = |token: &str, extra: Value| {
        let mut body = json!({"procedure": "registration", "jurisdiction": "taian", "deadline": "recompute", "reason": "第九条第(三)项时限更正"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        app.post("/v1/admin/migrations", token, &body)
    };
    assert_eq!(migrate(&clerk, json!({"dry_run": true})).0, 403);
    let (status, problem) = migrate(&app.admin, json!({"to_version": "not-a-version"}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("to_version")), "{problem}");

    // The dry run lists what would change, and changes nothing.
    let histories = [reviewed, published].map(|id| history_len(&app, id));
    let (status, dry) = migrate(&app.admin, json!({"dry_run": true}));
    assert_eq!(status, 200, "{dry}");
    assert_eq!((dry["dry_run"].as_bool(), dry["to_version"].as_str()), (Some(true), Some(new_version.as_str())));
    let items = dry["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "the instance already on the new version is not taken: {dry}");
    assert_eq!(items[0]["instance"], reviewed);
    assert_eq!(items[0]["outcome"], "would_migrate");
    assert_eq!(items[0]["to_step"], "substantive_review");
    assert_eq!(
        (items[0]["due_before"].as_str(), items[0]["due_after"].as_str()),
        (Some("2026-03-10T00:00:00+08:00"), Some("2026-03-31T00:00:00+08:00"))
    );
    assert_eq!(items[1]["outcome"], "refused");
    assert!(items[1]["problem"].as_str().unwrap().contains("`publicity`"), "{dry}");
    assert_eq!((dry["migrated"].as_u64(), dry["refused"].as_u64()), (Some(1), Some(1)));
    assert_eq!([reviewed, published].map(|id| history_len(&app, id)), histories, "a dry run changes nothing");
    assert_eq!(app.instance(reviewed)["definition_version"], old_version.as_str());
    // The same from the command line.
    let dry_run = ["migrate-instances", "registration", "--jurisdiction", "taian", "--recompute-deadline"];
    let (code, out, err) = cli(&app, &app.admin, &[&dry_run[..], &["--reason", "更正", "--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    let line = format!("#{reviewed}\tsubstantive_review -> substantive_review\tdue 2026-03-10T00:00:00+08:00 -> 2026-03-31T00:00:00+08:00\twould_migrate");
    assert!(out.lines().any(|l| l == line), "{out}");
    assert!(out.ends_with(&format!("1 would migrate to version {new_version}, 1 refused, 0 remaining\n")), "{out}");
    let (code, _, err) = cli(&app, &app.admin, &[&dry_run[..], &["--reason", "更正", "--map", "publicity"]].concat());
    assert_eq!(code, 2, "a step pair without its new name: {err}");
    assert!(err.contains("OLD=NEW"), "{err}");

    // For real: the one that fits migrates, the other is refused and stays as it was…
    let (_, done) = migrate(&app.admin, json!({}));
    assert_eq!((done["migrated"].as_u64(), done["refused"].as_u64()), (Some(1), Some(1)), "{done}");
    let migrated = app.instance(reviewed);
    assert_eq!(migrated["definition_version"], new_version.as_str());
    assert_eq!(migrated["deadline"]["due"], "2026-03-31T00:00:00+08:00");
    assert_eq!(app.instance(published)["definition_version"], old_version.as_str());
    // …until its renamed step is mapped.
    let (_, mapped) = migrate(&app.admin, json!({"steps": {"publicity": "public_notice"}, "deadline": "keep"}));
    assert_eq!(mapped["items"].as_array().unwrap().len(), 1, "{mapped}");
    assert_eq!(
        (mapped["items"][0]["instance"].as_i64(), mapped["items"][0]["to_step"].as_str()),
        (Some(published), Some("public_notice"))
    );
    let (_, nothing_left) = migrate(&app.admin, json!({"dry_run": true}));
    assert!(nothing_left["items"].as_array().unwrap().is_empty(), "{nothing_left}");

    // Each history records the migration, replays through both versions, and goes on.
    let (_, history) = app.get(&format!("/v1/instances/{reviewed}/history"), &app.admin);
    assert_eq!(history["checks"]["replay"]["verdict"], "passed", "{history}");
    let event = history["events"].as_array().unwrap().iter().find(|e| e["event"]["type"] == "migrated").unwrap();
    assert_eq!(
        (event["event"]["from_version"].as_str(), event["event"]["to_version"].as_str()),
        (Some(old_version.as_str()), Some(new_version.as_str()))
    );
    assert_eq!(
        act(&app, &clerk, reviewed, "pass", json!({"compliance_report": "合规"}))["step"]["name"],
        "public_notice"
    );
    app.advance("P14D");
    assert_eq!(app.instance(published)["step"]["name"], "rights_confirmation");
    assert_eq!(app.instance(started_new)["definition_version"], new_version.as_str());
    let (_, audit) = app.get("/v1/audit?action=instance.migrate", &app.admin);
    let targets: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|a| a["target"].as_str().unwrap()).collect();
    assert_eq!(targets, [format!("instance/{published}"), format!("instance/{reviewed}")]);
}

#[test]
fn a_request_id_leads_from_the_answer_to_the_history_and_the_log() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    let accept = json!({"action": "accept"});
    let (status, _, request) =
        app.request_identified("POST", &format!("/v1/instances/{id}/actions"), &clerk, Some(&accept));
    assert_eq!(status, 200);
    // The history's record of who acted names the request…
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    let action = history["events"].as_array().unwrap().iter().find(|e| e["event"]["type"] == "action").unwrap();
    assert_eq!(action["event"]["actor"]["request"], request.as_str(), "{action}");
    assert_eq!(history["checks"]["replay"]["verdict"], "passed");
    // …as does every problem document, and the access log's line.
    let reject = json!({"action": "reject"});
    let (status, problem, refused) =
        app.request_identified("POST", &format!("/v1/instances/{id}/actions"), &clerk, Some(&reject));
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["request_id"], refused.as_str());
    assert_ne!(refused, request, "each request has its own id");
    let log = app.log();
    assert!(
        log.lines().any(|l| l.contains("statflow::access") && l.contains(&request) && l.contains("status=200")),
        "{log}"
    );
}

#[test]
fn bulk_cancellation_lists_first_and_then_takes_only_what_it_listed() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let ids: Vec<i64> = (0..3).map(|_| start(&app, &clerk, "registration", "taian", registration_input())).collect();
    app.advance("P10D");
    act(&app, &clerk, ids[2], "accept", json!({})); // on time again, in substantive review
    let bulk = ["cancel", "--procedure", "registration", "--overdue", "--reason", "批量撤回"];
    let (code, out, err) = cli(&app, &app.admin, &[&bulk[..], &["--dry-run"]].concat());
    assert_eq!(code, 0, "{err}");
    let listed: Vec<&str> = out.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(listed.len(), 2, "{out}");
    assert!(listed[0].starts_with(&format!("#{}\tregistration/taian\tacceptance\tdue ", ids[0])), "{out}");
    assert!(out.ends_with("2 would be cancelled\n"), "{out}");
    assert!(ids.iter().all(|id| app.instance(*id)["status"] == "running"), "a dry run changes nothing");

    let (code, _, err) = cli(&app, &clerk, &bulk);
    assert_eq!((code, err.as_str()), (1, "statflow: only an administrator cancels, terminates or moves an instance\n"));
    let (code, out, err) = cli(&app, &app.admin, &bulk);
    assert_eq!((code, out), (0, format!("instance {}: cancelled\ninstance {}: cancelled\n", ids[0], ids[1])), "{err}");
    assert_eq!(app.instance(ids[2])["status"], "running");
    let (code, _, err) = cli(&app, &app.admin, &["terminate", "--overdue", "--reason", "x"]);
    assert_eq!(code, 2, "a filter needs its procedure: {err}");
}
