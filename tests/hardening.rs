//! The holes found by trying the daemon as an attacker and a careless administrator would:
//! organization scope matched with SQL wildcards, claims that blocked or were ignored,
//! numbers that panicked, clock moves that ran for minutes, unpaged lists, errors that were
//! not problem documents, two daemons on one SQLite file, and a start-up that migrated
//! before checking its address. Each test here failed on the daemon before the fix.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{scratch, start, Backend, TestApp};
use serde_json::{json, Value};

fn registration(agency: &str) -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": agency})
}

fn statflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_statflow")).args(args).output().unwrap()
}

#[test]
fn organization_scope_is_an_exact_match_and_ids_follow_one_rule() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let id = start(&app, &app.admin, "registration", "taian", registration("taian-registry"));
    // `_` is a LIKE wildcard: this clerk once saw taian-registry's instances.
    let lookalike = app.token("lookalike", "staff", &["taian_registry"]);
    let (status, list) = app.get("/v1/instances", &lookalike);
    assert_eq!((status, &list["total"]), (200, &json!(0)), "{list}");
    assert_eq!(app.get(&format!("/v1/instances/{id}"), &lookalike).0, 404);
    let (_, board) = app.get("/v1/overdue", &lookalike);
    assert_eq!(board["organizations"], json!([]));
    // An administrator's filter is exact too.
    let (_, list) = app.get("/v1/instances?org=taian_registry", &app.admin);
    assert_eq!(list["total"], 0, "{list}");
    let (_, list) = app.get("/v1/instances?org=taian-registry", &app.admin);
    assert_eq!(list["total"], 1, "{list}");

    // `%` matched every organization; such ids are refused wherever they enter.
    for (args, message) in [
        (vec!["--name", "all", "--role", "staff", "--org", "%"], "--org: `%` is not an organization id"),
        (vec!["--name", "blank", "--role", "staff", "--org", ""], "--org: `` is not an organization id"),
        (vec!["--name", " ", "--role", "administrator"], "--name: a principal's name is 1 to 128 characters"),
        (vec!["--name", "", "--role", "administrator"], "--name: a principal's name is 1 to 128 characters"),
    ] {
        let mut full = vec!["token", "create", "--db", &app.db];
        full.extend(args);
        let out = statflow(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{full:?}: {stderr}");
    }
    let (status, problem) = app.post(
        "/v1/instances",
        &app.admin,
        &json!({"procedure": "registration", "jurisdiction": "taian", "input": registration("a,b")}),
    );
    assert_eq!((status, problem["field"].as_str()), (422, Some("input.agency_org")), "{problem}");
    let (status, problem) =
        app.put("/v1/directory/organizations/bad%25id", &app.admin, &json!({"name": "x", "email": "a@b.example"}));
    assert_eq!((status, problem["field"].as_str()), (422, Some("id")), "{problem}");
    let (status, problem) = app.post(
        "/v1/directory",
        &app.admin,
        &json!({"source": "[organizations.\"x y\"]\nname = \"x\"\nemail = \"a@b.example\"\n"}),
    );
    assert_eq!((status, problem["field"].as_str()), (422, Some("source")), "{problem}");
}

fn first_task(app: &TestApp, token: &str) -> String {
    let (_, inbox) = app.get("/v1/tasks", token);
    inbox["items"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn only_those_who_may_complete_a_task_claim_it_and_a_claim_is_respected() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let zhang = app.token("zhang", "staff", &["taian-registry"]);
    let li = app.token("li", "staff", &["taian-registry"]);
    let regulator = app.token("regulator", "regulator", &[]);
    let scheduler = app.token("scheduler", "scheduler", &[]);
    let id = start(&app, &zhang, "registration", "taian", registration("taian-registry"));
    let task = first_task(&app, &zhang);
    for outsider in [&regulator, &scheduler] {
        let (status, problem) = app.post(&format!("/v1/tasks/{task}/claim"), outsider, &json!({}));
        assert_eq!(status, 403, "{problem}");
        assert_eq!(app.post(&format!("/v1/tasks/{task}/complete"), outsider, &json!({"action": "accept"})).0, 403);
    }
    assert_eq!(app.post(&format!("/v1/tasks/{task}/claim"), &zhang, &json!({})).0, 200);
    // Li may not complete Zhang's task, neither through the task nor through the instance.
    let (status, problem) = app.post(&format!("/v1/tasks/{task}/complete"), &li, &json!({"action": "accept"}));
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("claimed by zhang"), "{problem}");
    let (status, _) = app.post(&format!("/v1/instances/{id}/actions"), &li, &json!({"action": "accept"}));
    assert_eq!(status, 409);
    assert_eq!(app.instance(id)["step"]["name"], "acceptance");
    // An administrator may, and that is recorded as overriding Zhang's claim.
    let (status, body) = app.post(&format!("/v1/tasks/{task}/complete"), &app.admin, &json!({"action": "accept"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["step"]["name"], "substantive_review");
    let audit = audit_rows(&app, "task.complete_claimed_by_other");
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].contains("\"claimed_by\":\"zhang\""), "{audit:?}");
    // The next task is free again: Li claims and completes it.
    let next = first_task(&app, &li);
    assert_eq!(app.post(&format!("/v1/tasks/{next}/claim"), &li, &json!({})).0, 200);
}

/// The audit rows of `action`, as `principal detail` lines, read from the database file.
fn audit_rows(app: &TestApp, action: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = sea_orm::Database::connect(&app.db).await.unwrap();
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT principal, detail FROM audit WHERE action = ? ORDER BY id",
                [action.into()],
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.try_get::<String>("", "principal").unwrap(),
                    r.try_get::<String>("", "detail").unwrap()
                )
            })
            .collect()
    })
}

#[test]
fn every_request_gets_an_answer_with_bounded_numbers() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    for (path, field) in [
        ("/v1/instances?page=9223372036854775809", "page"),
        ("/v1/instances?per_page=100000", "per_page"),
        ("/v1/tasks?page=0", "page"),
        ("/v1/overdue?after=-1", "after"),
        ("/v1/admin/deliveries?page=x", "page"),
        ("/v1/schedules?per_page=501", "per_page"),
        ("/v1/directory?page=100001", "page"),
    ] {
        let (status, problem, content_type) = app.request("GET", path, Some(&app.admin), None);
        assert_eq!((status, problem["field"].as_str()), (400, Some(field)), "{path}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
    // A bad path parameter, an unknown method and an unknown route are problem documents.
    for (method, path, status) in
        [("DELETE", "/v1/directory/contacts/abc", 400), ("PATCH", "/v1/instances", 405), ("GET", "/v2/x", 404)]
    {
        let (got, problem, content_type) = app.request(method, path, Some(&app.admin), None);
        assert_eq!((got, content_type.as_str()), (status, "application/problem+json"), "{method} {path}: {problem}");
    }
    assert_eq!(app.request("GET", "/v1/instances/1", Some(&clerk), None).0, 404);

    // The clock: a typo of a hundred million days, and a jump of two centuries, are refused
    // at once instead of panicking or running for minutes.
    let started = Instant::now();
    for body in [
        json!({"advance": "P100000000D"}),
        json!({"advance": "P99999999999999999W"}),
        json!({"set": "2226-03-02T09:00:00+08:00"}),
        json!({"set": null}),
    ] {
        let (status, problem) = app.post("/v1/admin/clock", &app.admin, &body);
        assert_eq!(status, 422, "{body}: {problem}");
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // A long move within the bound goes in batches and reports them.
    let (status, moved) = app.post("/v1/admin/clock", &app.admin, &json!({"advance": "P400D"}));
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["now"], "2027-04-06T09:00:00+08:00");
    assert!(moved["batches"].as_u64().unwrap() >= 13, "{moved}");
    assert!(moved["runs_total"].as_u64().unwrap() >= 250, "a daily digest fire time a day: {moved}");
    // Answers carry their request id.
    let response = ureq::get(format!("{}/healthz", app.base())).call().unwrap();
    assert!(response.headers().get("x-request-id").is_some());
}

#[test]
fn the_overdue_board_and_the_inbox_come_in_pages() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let ids: Vec<i64> =
        (0..5).map(|_| start(&app, &app.admin, "registration", "taian", registration("taian-registry"))).collect();
    app.advance("P5D");
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let (status, page) = app.get(&format!("/v1/overdue?per_page=2{after}"), &app.admin);
        assert_eq!(status, 200, "{page}");
        for organization in page["organizations"].as_array().unwrap() {
            seen.extend(organization["red"].as_array().unwrap().iter().map(|i| i["instance"].as_i64().unwrap()));
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let (_, inbox) = app.get("/v1/tasks?per_page=2&page=3", &app.admin);
    assert_eq!((inbox["items"].as_array().unwrap().len(), &inbox["total"]), (1, &json!(5)), "{inbox}");
}

#[test]
fn a_second_daemon_on_the_same_sqlite_file_is_refused() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let out = statflow(&["serve", "--listen", "127.0.0.1:0", "--db", &app.db]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another statflow daemon is serving"), "{stderr}");
    // The first one is untouched, and after a SIGKILL the lock does not linger.
    assert_eq!(app.get("/readyz", "").0, 200);
    app.crash_and_restart("2026-03-02T10:00:00+08:00");
    assert_eq!(app.get("/readyz", "").0, 200);
}

#[test]
fn start_up_checks_its_address_first_and_gives_up_on_an_unreachable_database_in_time() {
    let dir = scratch("startup");
    let file = dir.join("never.db");
    let db = format!("sqlite://{}?mode=rwc", file.display());
    let out = statflow(&["serve", "--listen", "256.0.0.1:80", "--db", &db]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen: 256.0.0.1:80"));
    assert!(!file.exists(), "nothing is created or migrated before the address is checked");

    // Nothing listens on port 9 of this host: the attempt fails, quickly and without the
    // password in the message.
    let started = Instant::now();
    let out = statflow(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        "postgres://statflow:hunter2-secret@127.0.0.1:9/statflow",
        "--db-connect-timeout",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--db: postgres://statflow:***@127.0.0.1:9/statflow"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let out = statflow(&["serve", "--db-connect-timeout", "0"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(dir).unwrap();
}

/// 20,000 open tasks read by 8 clients at once, page by page, twice: the daemon's resident
/// memory peaks under 256 MiB in both rounds (an unpaged inbox took it from 21 MiB past
/// 500 MiB, and on with the data), and the second round grows it by less than 128 MiB. The
/// first round warms SQLite's page caches (at most 32 MiB for each of the 8 connections):
/// actions are checked inside the writer's transaction, so creating the tasks no longer warms
/// the readers' connections, and a growth measured cold would count the cache filling rather
/// than the reading. The peak is reset before each round, so what is measured is the
/// reading; past the caches each reader holds one page.
#[test]
fn concurrent_reads_of_a_large_inbox_stay_within_bounded_memory() {
    const TASKS: usize = 20_000;
    const GROWTH_BOUND_KIB: u64 = 128 * 1024;
    const PEAK_BOUND_KIB: u64 = 256 * 1024;
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..TASKS / 8 {
                    start(&app, &app.admin, "registration", "taian", registration("taian-registry"));
                }
            });
        }
    });
    let kib = |field: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", app.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let read_all = || {
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let mut read = 0;
                    for page in 1.. {
                        let (status, body) = app.get(&format!("/v1/tasks?per_page=500&page={page}"), &app.admin);
                        assert_eq!(status, 200);
                        let items = body["items"].as_array().unwrap().len();
                        read += items;
                        if items < 500 {
                            break;
                        }
                    }
                    assert_eq!(read, TASKS);
                });
            }
        });
    };
    // Linux: writing 5 to clear_refs resets the peak (VmHWM) to the current resident size.
    let reset_peak = || std::fs::write(format!("/proc/{}/clear_refs", app.pid()), "5").unwrap();
    reset_peak();
    let cold = kib("VmRSS:");
    read_all();
    let cold_peak = kib("VmHWM:");
    println!("RSS with {TASKS} open tasks, cold caches: {} MiB before, peak {} MiB", cold / 1024, cold_peak / 1024);
    assert!(cold_peak < PEAK_BOUND_KIB, "peak RSS {} MiB on the first round", cold_peak / 1024);
    reset_peak();
    let before = kib("VmRSS:");
    read_all();
    let peak = kib("VmHWM:");
    let growth = peak.saturating_sub(before);
    println!(
        "RSS with {TASKS} open tasks: {} MiB before reading, peak {} MiB with 8 readers (+{} MiB)",
        before / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(growth < GROWTH_BOUND_KIB, "reading grew RSS by {} MiB", growth / 1024);
    assert!(peak < PEAK_BOUND_KIB, "peak RSS {} MiB", peak / 1024);
}

/// Readiness names the engine's workers, and SIGTERM stops them in order: the listener first,
/// then every worker after its current pass, then the process, which says so.
#[test]
fn readiness_lists_the_workers_and_sigterm_drains_them() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let (status, ready) = app.get("/readyz", "");
    assert_eq!((status, ready["status"].as_str()), (200, Some("ready")), "{ready}");
    let mut workers: Vec<(String, String)> = ready["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap().to_owned(), w["state"].as_str().unwrap().to_owned()))
        .collect();
    workers.sort();
    let expected = ["calendar_recompute", "delivery", "outbox", "schedules", "timers"];
    assert_eq!(workers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), expected);
    assert!(workers.iter().all(|(_, state)| state == "running"), "{workers:?}");

    let exit = app.terminate();
    assert!(exit.success(), "a SIGTERM is a clean stop: {exit:?}");
    let log = app.log();
    let stopping = log.find("stopping the workers").unwrap_or_else(|| panic!("the drain is logged:\n{log}"));
    let stopped = log.find("statflow stopped").unwrap_or_else(|| panic!("the stop is logged:\n{log}"));
    assert!(stopping < stopped, "workers stop before the process says it stopped");
    assert!(!log.contains("a worker failed"), "no worker failed on the way down:\n{log}");
    // The start says what runs where; a log file gets no terminal colour codes.
    let serving = log.lines().find(|l| l.contains(" serving ")).unwrap_or_else(|| panic!("no start line:\n{log}"));
    assert!(serving.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))), "{serving}");
    assert!(serving.contains("engine=\"embedded\"") && serving.contains("db=sqlite://"), "{serving}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in a log file:\n{log}");
    // Each request is in the access log with its id, path, status and time taken.
    let access = log
        .lines()
        .find(|l| l.contains("statflow::access") && l.contains("path=/readyz"))
        .unwrap_or_else(|| panic!("no access line for /readyz:\n{log}"));
    assert!(access.contains("request_id=") && access.contains("status=200") && access.contains("micros="), "{access}");
}

/// With `log_format = "json"` every line the daemon logs is one JSON object, and a request's
/// access line carries its id from the request's span.
#[test]
fn json_logs_are_one_object_a_line_and_the_access_line_names_its_request() {
    let app = TestApp::start_configured(Backend::Sqlite, "2026-03-02T09:00:00+08:00", "log_format = \"json\"\n");
    let (status, _, id) = app.request_identified("GET", "/v1/instances", &app.admin, None);
    assert_eq!(status, 200);
    assert!(app.terminate().success());
    let log = app.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["target"] == "statflow::access" && l["span"]["request_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no access line for request {id}:\n{log}"));
    assert_eq!(
        (access["fields"]["status"].as_u64(), access["span"]["path"].as_str()),
        (Some(200), Some("/v1/instances"))
    );
    assert!(lines.iter().any(|l| l["fields"]["message"] == "statflow stopped"), "{log}");
}

/// A token made to expire works through its last day, by the daemon's clock, and not after.
#[test]
fn a_token_works_through_its_last_day_and_not_after() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let args =
        ["token", "create", "--db", &app.db, "--name", "auditor", "--role", "regulator", "--expires", "2026-03-04"];
    let created = statflow(&args);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert_eq!(app.get("/v1/instances", &token).0, 200);
    let (_, tokens) = app.get("/v1/admin/tokens", &app.admin);
    let auditor = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "auditor").unwrap().clone();
    assert_eq!(
        (auditor["expires_at"].as_str(), auditor["expired"].as_bool()),
        (Some("2026-03-05T00:00:00+08:00"), Some(false))
    );
    let listed = String::from_utf8_lossy(&statflow(&["token", "list", "--db", &app.db]).stdout).to_string();
    assert!(
        listed.lines().any(|l| l.starts_with("auditor\tregulator\t") && l.ends_with("expires 2026-03-05 00:00")),
        "{listed}"
    );
    app.advance("PT62H59M"); // 03-04 23:59
    assert_eq!(app.get("/v1/instances", &token).0, 200, "the last day is whole");
    app.advance("PT1M");
    let (status, problem) = app.get("/v1/instances", &token);
    assert_eq!(status, 401);
    assert_eq!(problem["detail"], "the token expired at the end of 2026-03-04");
    let (_, tokens) = app.get("/v1/admin/tokens", &app.admin);
    assert!(tokens["items"].as_array().unwrap().iter().any(|t| t["name"] == "auditor" && t["expired"] == true));
    let bad =
        statflow(&["token", "create", "--db", &app.db, "--name", "x", "--role", "staff", "--expires", "next week"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date (YYYY-MM-DD)"));
}

/// Tokens are listed and revoked from the command line; a revoked token opens nothing, and
/// its holder's history keeps the name. People are created with a password read from
/// standard input, and a name is taken by a person or a token, never both.
#[test]
fn tokens_are_listed_and_revoked_and_names_are_one_actor_each() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let system = app.token("old-system", "staff", &["taian-registry"]);
    assert_eq!(app.get("/v1/tasks", &system).0, 200);
    let listed = statflow(&["token", "list", "--db", &app.db]);
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listing.lines().any(|l| l.starts_with("old-system\tstaff\ttaian-registry\t")), "{listing}");
    assert!(!listing.contains("sf_"), "a listing never shows a token");
    let revoked = statflow(&["token", "revoke", "--db", &app.db, "old-system"]);
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert_eq!(app.get("/v1/tasks", &system).0, 401, "a revoked token is refused");
    let again = statflow(&["token", "revoke", "--db", &app.db, "old-system"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no token of `old-system`"));

    // Revoked through the API too, and recorded.
    let second = app.token("second-system", "staff", &["taian-registry"]);
    let (_, tokens) = app.get("/v1/admin/tokens", &app.admin);
    let names: Vec<&str> = tokens["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "second-system"], "{tokens}");
    assert_eq!(app.delete("/v1/admin/tokens/second-system", &app.admin).0, 204);
    assert_eq!(app.get("/v1/tasks", &second).0, 401);
    assert_eq!(app.delete("/v1/admin/tokens/second-system", &app.admin).0, 404);
    let (_, audit) = app.get("/v1/audit?action=token.revoke", &app.admin);
    assert_eq!(audit["items"][0]["principal"], "admin");

    app.user("zhangsan", "staff", &["taian-registry"], "a long passphrase");
    let taken = statflow(&["token", "create", "--db", &app.db, "--name", "zhangsan", "--role", "staff", "--org", "x"]);
    assert_eq!(taken.status.code(), Some(2), "a token cannot take a person's name");
    let users = String::from_utf8_lossy(&statflow(&["user", "list", "--db", &app.db]).stdout).to_string();
    assert!(users.contains("zhangsan\tstaff\ttaian-registry"), "{users}");
    assert!(!users.contains("argon2"), "a listing never shows a password hash");
    let disabled = statflow(&["user", "disable", "--db", &app.db, "zhangsan"]);
    assert!(disabled.status.success());
    let users = String::from_utf8_lossy(&statflow(&["user", "list", "--db", &app.db]).stdout).to_string();
    assert!(users.contains("zhangsan\tstaff\ttaian-registry (disabled)"), "{users}");
}
