//! Cron schedules against the real daemon with a virtual clock: the annual evaluation fires
//! once a year for every active authorization, missed fire times are caught up by policy,
//! a run killed half-way finishes after restart without starting anything twice, and the
//! retention sweep removes only what is older than the legal minimum.

mod common;

use std::collections::BTreeMap;

use common::{act, start, Backend, TestApp};
use serde_json::{json, Value};

fn set_clock(app: &TestApp, at: &str) -> Value {
    let (status, body) = app.post("/v1/admin/clock", &app.admin, &json!({"set": at}));
    assert_eq!(status, 200, "{body}");
    body
}

/// Every instance of a procedure, oldest first.
fn instances_of(app: &TestApp, procedure: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/instances?procedure={procedure}&per_page=500"), &app.admin);
    assert_eq!(status, 200, "{body}");
    let mut items = body["items"].as_array().unwrap().clone();
    items.sort_by_key(|i| i["id"].as_i64());
    items
}

fn runs(app: &TestApp, schedule: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/schedules/{schedule}?per_page=500"), &app.admin);
    assert_eq!(status, 200, "{body}");
    let mut runs = body["runs"]["items"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

/// The organizations the notifications go to.
fn directory(app: &TestApp, operators: usize) -> String {
    let mut text = String::from(
        "[organizations.ta-bureau]\nname = \"泰安市大数据局\"\nemail = \"office@bureau.example\"\nregulator = \"sd-regulator\"\n\n\
         [organizations.sd-regulator]\nname = \"山东省数据监管办公室\"\nemail = \"duty@regulator.example\"\n\n",
    );
    for n in 0..operators {
        text.push_str(&format!(
            "[organizations.op-{n}]\nname = \"运营机构{n}\"\nemail = \"op{n}@operator.example\"\nsupervisor = \"ta-bureau\"\n\n"
        ));
    }
    let path = app.dir.join("directory.toml");
    std::fs::write(&path, text).unwrap();
    format!("directory = \"{}\"\n", path.display())
}

/// Starts the daemon with a directory for `operators` operators (op-0, op-1, …).
fn daemon(clock: &str, operators: usize) -> TestApp {
    let app = TestApp::start(Backend::Sqlite, clock);
    let config = directory(&app, operators);
    let path = app.dir.join("statflow.toml");
    let existing = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{config}{existing}")).unwrap();
    app.crash_and_restart(clock);
    app
}

/// Takes `count` Tai'an authorizations (op-0, op-1, …) from the announcement to their active
/// term, all at once; returns their ids.
fn activate_authorizations(app: &TestApp, count: usize) -> Vec<i64> {
    let ids: Vec<i64> = (0..count)
        .map(|n| {
            start(app, &app.admin, "authorized_operation",
                "taian",
                json!({"authority_org": "ta-bureau", "operator_org": format!("op-{n}"), "scope": "交通数据", "application_days": 10, "publicity_days": 5}),
            )
        })
        .collect();
    app.advance("P11D");
    for (n, id) in ids.iter().enumerate() {
        act(app, &app.admin, *id, "select", json!({"operator": format!("运营机构{n}"), "review_report": "综合评审"}));
    }
    app.advance("P6D");
    for (n, id) in ids.iter().enumerate() {
        act(app, &app.admin, *id, "approve", json!({"meeting_minutes": "审议通过"}));
        let body = act(
            app,
            &app.admin,
            *id,
            "sign",
            json!({"agreement_no": format!("TA-{n}"), "effective_from": "2027-01-01", "term_years": 3}),
        );
        assert_eq!(body["step"]["name"], "active");
    }
    ids
}

/// The annual evaluations started, by the authorization they evaluate: (id, year).
fn evaluations_by_authorization(app: &TestApp) -> BTreeMap<i64, Vec<(i64, i64)>> {
    let mut by = BTreeMap::new();
    for item in instances_of(app, "annual_evaluation") {
        let id = item["id"].as_i64().unwrap();
        let input = &app.instance(id)["data"];
        let authorization: i64 = input["authorization_instance"].as_str().unwrap().parse().unwrap();
        by.entry(authorization).or_insert_with(Vec::new).push((id, input["year"].as_i64().unwrap()));
    }
    by
}

fn subjects_to(app: &TestApp, address: &str) -> Vec<String> {
    app.spooled_mail()
        .iter()
        .filter(|m| m["to"].as_array().unwrap().iter().any(|to| to == address))
        // Tasks the schedules open are told as they open; these tests follow the schedules' own.
        .filter(|m| !common::smtp::is_task_notice(m))
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_annual_evaluation_fires_once_a_year_and_its_findings_suspend_restore_or_terminate() {
    let app = daemon("2026-12-01T09:00:00+08:00", 3);
    let authorizations = activate_authorizations(&app, 3);
    // One more authorization still in its announcement is not evaluated.
    let pending = start(
        &app,
        &app.admin,
        "authorized_operation",
        "taian",
        json!({"authority_org": "ta-bureau", "operator_org": "op-9", "scope": "x", "application_days": 300, "publicity_days": 5}),
    );

    // The built-in schedule fires on 10 January at 09:00, in the middle of this jump.
    let body = set_clock(&app, "2027-01-12T12:00:00+08:00");
    let fired: Vec<&Value> =
        body["runs"].as_array().unwrap().iter().filter(|r| r["schedule"] == "annual_evaluation.taian").collect();
    assert_eq!(fired.len(), 1, "{body}");
    assert_eq!(fired[0]["fire_at"], "2027-01-10T09:00:00+08:00");
    let by = evaluations_by_authorization(&app);
    assert_eq!(by.keys().copied().collect::<Vec<_>>(), authorizations, "only active authorizations: {by:?}");
    assert!(by.values().all(|e| e.len() == 1 && e[0].1 == 2026), "one evaluation of 2026 each: {by:?}");
    assert!(!by.contains_key(&pending));
    let run = &runs(&app, "annual_evaluation.taian")[0];
    assert_eq!(run["status"], "done");
    assert_eq!(run["result"]["instances"].as_array().unwrap().len(), 3);

    // Findings: op-0 compliant; op-1 rectifies and is restored; op-2 fails, and the bureau
    // decides to terminate (art. 24: its decision, not an automatic consequence).
    let evaluation = |n: usize| by[&authorizations[n]][0].0;
    let operators: Vec<String> =
        (0..3).map(|n| app.token(&format!("operator{n}"), "staff", &[&format!("op-{n}")])).collect();
    let operator = |n: usize| operators[n].clone();
    let bureau = app.token("bureau", "staff", &["ta-bureau"]);
    for n in 0..3 {
        act(&app, &operator(n), evaluation(n), "submit_materials", json!({"materials": "年度材料"}));
    }
    act(&app, &bureau, evaluation(0), "compliant", json!({"findings": "符合要求"}));
    for n in [1, 2] {
        act(&app, &bureau, evaluation(n), "non_compliant", json!({"findings": "超范围使用", "rectification_days": 30}));
        app.wait_for(authorizations[n], "access suspended", |b| b["step"]["name"] == "suspended");
    }
    // The annual work report (art. 23) is owed in the term whether access is suspended or
    // not: a run now starts one for the active op-0 and the suspended op-1 and op-2, and none
    // for the authorization still being announced. (The built-in fires on 1 January; this
    // one, with the same job, fires within the next hour.)
    let (_, built_in) = app.get("/v1/schedules/annual_work_report.taian", &app.admin);
    let spec = json!({"title": "年度报告(测试)", "cron": "0 13 12 1 *", "job": built_in["job"], "catch_up": "once"});
    assert_eq!(app.put("/v1/schedules/work_report_now", &app.admin, &spec).0, 200);
    set_clock(&app, "2027-01-12T13:30:00+08:00");
    let reports = &runs(&app, "work_report_now")[0];
    assert_eq!(reports["status"], "done", "{reports}");
    let mut reported: Vec<i64> = reports["result"]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            app.instance(id.as_i64().unwrap())["data"]["authorization_instance"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, authorizations, "every authorization in its term, suspended or not");
    let child_of = |n: usize| {
        app.wait_until("the rectification starts", || {
            instances_of(&app, "rectification")
                .iter()
                .find(|c| app.instance(c["id"].as_i64().unwrap())["parent"] == evaluation(n))
                .and_then(|c| c["id"].as_i64())
        })
    };
    let (rectifying, failing) = (child_of(1), child_of(2));
    act(&app, &operator(1), rectifying, "report_completion", json!({"report": "已整改"}));
    act(&app, &bureau, rectifying, "pass", json!({"findings": "整改到位"}));
    app.wait_for(authorizations[1], "access restored", |b| b["step"]["name"] == "active");
    act(&app, &operator(2), failing, "report_completion", json!({"report": "部分整改"}));
    act(&app, &bureau, failing, "fail", json!({"findings": "整改不到位"}));
    app.wait_for(evaluation(2), "the decision is due", |b| b["step"]["name"] == "termination_decision");
    assert_eq!(app.instance(authorizations[2])["step"]["name"], "suspended", "suspended until the decision");
    act(&app, &bureau, evaluation(2), "terminate", json!({"reasons": "整改不到位,按协议终止"}));
    app.wait_for(authorizations[2], "terminated", |b| b["step"]["name"] == "terminated");
    app.wait_for(authorizations[0], "still active", |b| b["step"]["name"] == "active");

    // Each consequence was told: suspension and restoration to op-1, termination to op-2 and
    // to the regulator.
    app.wait_until("the notices are spooled", || {
        let op1 = subjects_to(&app, "op1@operator.example");
        let op2 = subjects_to(&app, "op2@operator.example");
        let regulator = subjects_to(&app, "duty@regulator.example");
        (op1.iter().any(|s| s.contains("已责令整改"))
            && op1.iter().any(|s| s.contains("数据访问权限已恢复"))
            && op2.iter().any(|s| s.contains("已责令整改"))
            && op2.iter().any(|s| s.contains("授权运营已终止"))
            && regulator.iter().any(|s| s.contains("授权运营已终止")))
        .then_some(())
    });
    assert!(!subjects_to(&app, "op1@operator.example").iter().any(|s| s.contains("授权运营已终止")));
    let (_, deliveries) = app.get("/v1/admin/deliveries?status=failed", &app.admin);
    assert_eq!(deliveries["items"].as_array().unwrap().len(), 0, "{deliveries}");

    // A year later (one jump over the fire time): the two authorizations still active are
    // evaluated for 2027, the terminated one is not, and 2026 is not evaluated again.
    let body = set_clock(&app, "2028-01-11T00:00:00+08:00");
    let fired: Vec<&Value> =
        body["runs"].as_array().unwrap().iter().filter(|r| r["schedule"] == "annual_evaluation.taian").collect();
    assert_eq!(fired.len(), 1, "{body}");
    let by = evaluations_by_authorization(&app);
    let years = |n: usize| by[&authorizations[n]].iter().map(|e| e.1).collect::<Vec<_>>();
    assert_eq!(years(0), [2026, 2027]);
    assert_eq!(years(1), [2026, 2027]);
    assert_eq!(years(2), [2026]);
    assert_eq!(runs(&app, "annual_evaluation.taian").len(), 2);
}

/// A schedule starting one half-yearly summary on the 1st of every month, for `org`.
fn monthly(app: &TestApp, id: &str, catch_up: &str) {
    let spec = json!({
        "title": format!("monthly ({catch_up})"),
        "cron": "0 9 1 * *",
        "job": {"kind": "start", "procedure": "half_yearly_summary", "jurisdiction": "taian",
                "input": {"authority_org": id, "period": "{fire_date}"}},
        "catch_up": catch_up,
    });
    let (status, body) = app.put(&format!("/v1/schedules/{id}"), &app.admin, &spec);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["next_fire_at"], "2027-01-01T09:00:00+08:00");
}

/// The periods of the summaries a schedule started.
fn periods(app: &TestApp, org: &str) -> Vec<String> {
    let mut periods: Vec<String> = instances_of(app, "half_yearly_summary")
        .iter()
        .map(|i| app.instance(i["id"].as_i64().unwrap())["data"].clone())
        .filter(|input| input["authority_org"] == org)
        .map(|input| input["period"].as_str().unwrap().to_owned())
        .collect();
    periods.sort();
    periods
}

/// Waits until no run of these schedules is still running (the ones a restart claimed run
/// while the daemon serves).
fn finished(app: &TestApp, schedules: &[&str]) {
    app.wait_until("the runs claimed at start-up finish", || {
        schedules.iter().all(|schedule| runs(app, schedule).iter().all(|run| run["status"] != "running")).then_some(())
    });
}

fn statuses(app: &TestApp, schedule: &str) -> Vec<(String, String)> {
    runs(app, schedule)
        .iter()
        .map(|r| (r["fire_at"].as_str().unwrap()[..10].to_owned(), r["status"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn fire_times_missed_while_down_follow_the_catch_up_policy_and_never_run_twice() {
    let app = daemon("2026-12-01T10:00:00+08:00", 0);
    monthly(&app, "all", "all");
    monthly(&app, "once", "once");
    monthly(&app, "skip", "skip");

    // Down from December to mid-March: 1 January, 1 February and 1 March are missed. Each is
    // skipped or claimed by its policy before the daemon serves; the claimed ones run while
    // it serves.
    app.crash_and_restart("2027-03-15T10:00:00+08:00");
    let skipped_or_not = |schedule: &str| -> Vec<bool> {
        statuses(&app, schedule).into_iter().map(|(_, status)| status == "skipped").collect()
    };
    assert_eq!(skipped_or_not("all"), [false, false, false]);
    assert_eq!(skipped_or_not("once"), [true, true, false]);
    assert_eq!(skipped_or_not("skip"), [true, true, true]);
    finished(&app, &["all", "once"]);
    assert_eq!(periods(&app, "all"), ["2027-01-01", "2027-02-01", "2027-03-01"]);
    assert_eq!(periods(&app, "once"), ["2027-03-01"]);
    assert!(periods(&app, "skip").is_empty());
    let done = |d: &str| (d.to_owned(), "done".to_owned());
    let skipped = |d: &str| (d.to_owned(), "skipped".to_owned());
    assert_eq!(statuses(&app, "all"), [done("2027-01-01"), done("2027-02-01"), done("2027-03-01")]);
    assert_eq!(statuses(&app, "once"), [skipped("2027-01-01"), skipped("2027-02-01"), done("2027-03-01")]);
    assert_eq!(statuses(&app, "skip"), [skipped("2027-01-01"), skipped("2027-02-01"), skipped("2027-03-01")]);

    // Restarting again (at the same time) changes nothing; the next month runs once for all.
    app.crash_and_restart("2027-03-15T10:00:00+08:00");
    finished(&app, &["all", "once"]);
    assert_eq!(periods(&app, "all").len(), 3);
    assert_eq!(runs(&app, "once").len(), 3);
    app.advance("P20D");
    assert_eq!(periods(&app, "all").last().unwrap(), "2027-04-01");
    assert_eq!(periods(&app, "once"), ["2027-03-01", "2027-04-01"]);
    assert_eq!(periods(&app, "skip"), ["2027-04-01"]);
    // A jump over several fire times while running runs each of them once, in order.
    app.advance("P70D");
    assert_eq!(periods(&app, "skip"), ["2027-04-01", "2027-05-01", "2027-06-01"]);
    assert_eq!(periods(&app, "all").len(), 6);
}

#[test]
fn a_run_killed_half_way_finishes_after_restart_without_starting_anything_twice() {
    const AUTHORIZATIONS: usize = 150;
    let app = daemon("2026-12-01T09:00:00+08:00", AUTHORIZATIONS);
    let authorizations = activate_authorizations(&app, AUTHORIZATIONS);
    set_clock(&app, "2027-01-10T08:59:00+08:00");

    // The clock moves past the fire time in the background; the daemon is killed as soon as
    // the run has started some, but not all, of its evaluations.
    let base = app.base();
    let admin = app.admin.clone();
    let mover = std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let _ = agent
            .post(format!("{base}/v1/admin/clock"))
            .header("Authorization", format!("Bearer {admin}"))
            .send_json(json!({"set": "2027-01-10T09:30:00+08:00"}));
    });
    let started_before_kill = app.wait_until("the run starts evaluations", || {
        let (_, body) = app.get("/v1/instances?procedure=annual_evaluation&per_page=1", &app.admin);
        body["total"].as_u64().filter(|n| *n > 0)
    });
    app.crash_and_restart("2027-01-10T09:30:00+08:00");
    mover.join().unwrap();
    finished(&app, &["annual_evaluation.taian"]);
    assert!(
        (started_before_kill as usize) < AUTHORIZATIONS,
        "the kill was to land during the run, but all {AUTHORIZATIONS} had started"
    );

    let by = evaluations_by_authorization(&app);
    assert_eq!(by.keys().copied().collect::<Vec<_>>(), authorizations);
    assert!(by.values().all(|e| e.len() == 1), "one evaluation per authorization");
    let runs = runs(&app, "annual_evaluation.taian");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "done");
    assert_eq!(runs[0]["result"]["instances"].as_array().unwrap().len(), AUTHORIZATIONS);
}

#[test]
fn schedules_are_validated_and_managed_over_the_api_and_the_cli() {
    let app = daemon("2026-12-01T09:00:00+08:00", 0);
    let (status, body) = app.get("/v1/schedules", &app.admin);
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["items"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "annual_evaluation.jinzhou",
            "annual_evaluation.taian",
            "annual_work_report.taian",
            "daily_digest",
            "half_yearly_summary.taian",
            "ledger_anchor",
            "retention_sweep"
        ]
    );

    let good = json!({"title": "t", "cron": "0 9 1 * *", "catch_up": "once",
                      "job": {"kind": "start", "procedure": "half_yearly_summary", "jurisdiction": "taian", "input": {"authority_org": "x", "period": "{fire_date}"}}});
    let with = |pointer: &str, value: Value| {
        let mut spec = good.clone();
        *spec.pointer_mut(pointer).unwrap() = value;
        spec
    };
    for (spec, field) in [
        (with("/cron", json!("0 25 1 * *")), "cron"),
        (with("/job/procedure", json!("no_such")), "job.procedure"),
        (with("/job/input/period", json!("{subject.id}")), "job.input"),
        (
            json!({"title": "t", "cron": "0 2 * * Sun", "catch_up": "once", "job": {"kind": "retention_sweep", "records_years": 2}}),
            "job.records_years",
        ),
        // Tianjin's art. 8 sets 3 years; shorter is refused wherever it would apply.
        (
            json!({"title": "t", "cron": "0 2 * * Sun", "catch_up": "once", "job": {"kind": "retention_sweep", "records_years": 3, "jurisdictions": {"tianjin": 2}}}),
            "job.jurisdictions",
        ),
        (
            json!({"title": "t", "cron": "0 8 * * *", "catch_up": "once", "job": {"kind": "digest", "lookahead_working_days": 0}}),
            "job.lookahead_working_days",
        ),
    ] {
        let (status, body) = app.put("/v1/schedules/custom", &app.admin, &spec);
        assert_eq!((status, body["field"].as_str()), (422, Some(field)), "{body}");
    }
    // Where no article sets a period, the agency's archival policy may keep records shorter
    // (Tianjin keeps its 3 years).
    let policy = json!({"title": "t", "cron": "0 2 * * Sun", "catch_up": "once", "job": {"kind": "retention_sweep", "records_years": 2, "jurisdictions": {"tianjin": 3}}});
    let (status, body) = app.put("/v1/schedules/policy_sweep", &app.admin, &policy);
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.delete("/v1/schedules/policy_sweep", &app.admin).0, 204);
    let (status, body) = app.put("/v1/schedules/custom", &app.admin, &with("/catch_up", json!("sometimes")));
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("catch_up"), "{body}");
    let (status, _) = app.get("/v1/schedules/custom", &app.admin);
    assert_eq!(status, 404, "refused schedules are not stored");

    let staff = app.token("clerk", "staff", &["ta-bureau"]);
    assert_eq!(app.put("/v1/schedules/custom", &staff, &good).0, 403);
    let scheduler = app.token("cron", "scheduler", &[]);
    assert_eq!(app.put("/v1/schedules/custom", &scheduler, &good).0, 200);
    let (_, sweep) = app.get("/v1/schedules/retention_sweep", &scheduler);
    let disabled = json!({"title": sweep["title"], "cron": sweep["cron"], "job": sweep["job"], "catch_up": sweep["catch_up"], "enabled": false});
    let (status, body) = app.put("/v1/schedules/retention_sweep", &scheduler, &disabled);
    assert_eq!((status, &body["built_in"], &body["enabled"]), (200, &json!(true), &json!(false)), "{body}");
    assert_eq!(app.delete("/v1/schedules/retention_sweep", &scheduler).0, 409, "built-ins are disabled, not deleted");
    assert_eq!(app.delete("/v1/schedules/custom", &scheduler).0, 204);

    // The CLI disables a built-in schedule; it then does not fire.
    let cli = |args: &[&str]| {
        let (code, out, err) = common::cli(&app, &app.admin, args);
        assert_eq!(code, 0, "{err}");
        out
    };
    let line = cli(&["schedules", "disable", "half_yearly_summary.taian"]);
    assert!(line.starts_with("half_yearly_summary.taian\tdisabled"), "{line}");
    let list = cli(&["schedules", "list"]);
    assert!(
        list.contains("annual_evaluation.taian\tenabled\t0 9 10 1 *\tonce\tnext 2027-01-10T09:00:00+08:00"),
        "{list}"
    );
    set_clock(&app, "2027-07-06T00:00:00+08:00");
    assert!(runs(&app, "half_yearly_summary.taian").is_empty());
    let spec_file = app.dir.join("weekly.toml");
    std::fs::write(
        &spec_file,
        "title = \"每周汇总\"\ncron = \"0 9 * * Mon\"\ncatch_up = \"skip\"\n\n[job]\nkind = \"start\"\nprocedure = \"half_yearly_summary\"\njurisdiction = \"taian\"\ninput = { authority_org = \"ta-bureau\", period = \"{fire_date}\" }\n",
    )
    .unwrap();
    let line = cli(&["schedules", "put", "weekly", "--file", spec_file.to_str().unwrap()]);
    assert!(line.contains("next 2027-07-12T09:00:00+08:00"), "{line}");
}

#[test]
fn the_retention_sweep_removes_only_records_older_than_three_years() {
    let app = daemon("2026-12-01T09:00:00+08:00", 0);
    let agency = app.token("agency", "staff", &["taian-registry"]);
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let old = start(&app, &app.admin, "registration", "taian", input.clone());
    act(&app, &agency, old, "reject", json!({"reasons": "材料不全"}));
    let running = start(&app, &app.admin, "registration", "taian", input.clone());
    // The registry's clerk gets a daily digest about the running one: those are kept 3 years
    // too.
    let registry = json!({"name": "泰安市数据登记机构", "email": "duty@registry.example"});
    assert_eq!(app.put("/v1/directory/organizations/taian-registry", &app.admin, &registry).0, 200);
    let clerk = json!({"organization": "taian-registry", "name": "张三", "email": "zhang@registry.example", "roles": ["registration_agency"]});
    assert_eq!(app.put("/v1/directory/contacts", &app.admin, &clerk).0, 200);
    set_clock(&app, "2028-06-01T09:00:00+08:00");
    let young = start(&app, &app.admin, "registration", "taian", input);
    act(&app, &agency, young, "reject", json!({"reasons": "材料不全"}));

    // The weekly sweep: three years after the first rejection the old record goes; the one
    // finished a year and a half later, and the running one, stay.
    set_clock(&app, "2029-11-25T09:00:00+08:00");
    assert_eq!(app.get(&format!("/v1/instances/{old}"), &app.admin).0, 200, "not yet 3 years");
    set_clock(&app, "2029-12-10T09:00:00+08:00");
    assert_eq!(app.get(&format!("/v1/instances/{old}"), &app.admin).0, 404, "past 3 years");
    assert_eq!(app.get(&format!("/v1/instances/{young}"), &app.admin).0, 200);
    assert_eq!(app.get(&format!("/v1/instances/{running}"), &app.admin).0, 200);
    let sweeps = runs(&app, "retention_sweep");
    assert!(sweeps.iter().all(|r| r["status"] == "done"));
    // Each jurisdiction's period is reported with its basis: an article where one sets it,
    // the agency's archival policy elsewhere.
    let periods = &sweeps[0]["result"]["periods"];
    assert_eq!(periods["tianjin"]["years"], 3);
    assert!(periods["tianjin"]["basis"].as_str().unwrap().contains("第八条"), "{periods}");
    assert!(periods["taian"]["basis"].as_str().unwrap().starts_with("本单位档案管理规定"), "{periods}");
    assert_eq!(sweeps.iter().map(|r| r["result"]["removed_instances"].as_u64().unwrap()).sum::<u64>(), 1);
    // The last sweep (Sunday 9 December 2029, 02:00) removed the digests queued up to
    // 9 December 2026, 02:00: those of 2, 3, 4, 7 and 8 December.
    let removed: u64 = sweeps.iter().map(|r| r["result"]["removed_effects_of_no_instance"].as_u64().unwrap()).sum();
    assert_eq!(removed, 5, "{sweeps:#?}");
    // The removal is lawful and recorded as such in the ledger: verification tells it from
    // a deletion, and every day's anchor still agrees.
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_statflow")).args(["verify", "--db", &app.db]).output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("every instance the ledger records is stored or was lawfully removed"), "{report}");
    assert!(report.contains("anchors agree with the ledger"), "{report}");
}
