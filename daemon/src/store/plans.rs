//! Query plans of the per-call paths. Every statement the daemon runs while it serves calls
//! (start, inbox, claim, complete, act, show, list, history, the overdue board), while it
//! serves the console's pages and forms, and while its workers fire timers, carry out
//! effects and deliver notices is collected, then asked
//! for its plan with SQLite's `EXPLAIN QUERY PLAN` and the values it ran with. A full scan
//! of a table that grows with the work (instances, their history, tasks, timers, the outbox,
//! the ledger, the audit log, principals, people, sessions, schedule runs) fails the test,
//! naming the statement and its plan: at a million open instances such a scan costs every
//! call tens of milliseconds.
//!
//! SQLite plans without statistics assume large tables, so the plans here are the plans a
//! grown database gets. Tables bounded by configuration (definitions, calendars, the
//! directory, schedules, the ledger's head, anchors) may be scanned.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};

use super::directory::DirectoryFile;
use super::people::NewUser;
use super::records::Role;
use super::Store;
use crate::api;
use crate::engine::embedded::clock::Clock;
use crate::engine::embedded::delivery::Channels;
use crate::engine::embedded::Embedded;

/// Tables whose rows grow with instances, calls or people.
const GROWING: [&str; 12] = [
    "instances",
    "instance_organizations",
    "history",
    "timers",
    "tasks",
    "outbox",
    "ledger",
    "audit",
    "principals",
    "users",
    "sessions",
    "schedule_runs",
];

const DIRECTORY: &str = include_str!("../../../tests/fixtures/taian-directory.toml");

/// Collects each distinct statement (by its SQL) while recording is on.
#[derive(Default)]
struct Recorder {
    on: Mutex<bool>,
    statements: Mutex<BTreeMap<String, Statement>>,
}

impl Recorder {
    fn see(&self, statement: &Statement) {
        if *self.on.lock().unwrap() {
            self.statements.lock().unwrap().entry(statement.sql.clone()).or_insert_with(|| statement.clone());
        }
    }

    fn set(&self, on: bool) {
        *self.on.lock().unwrap() = on;
    }
}

/// Columns that split a table into a few large parts: an index search constrained by them
/// alone reads, say, every open task.
const UNSELECTIVE: [&str; 3] = ["status", "kind", "overdue"];

/// The steps of `plan` (for the statement `sql`) that read a growing table in full or in a
/// large part: a `SCAN` (even of an index), or a `SEARCH` constrained only by unselective
/// columns, in a statement without `LIMIT` (with one, an index walked in order stops early,
/// as when the outbox's next due effect is read). A `SCAN` under a `LIMIT` counts too unless
/// the statement filters nothing and sorts nothing: only then does the walk stop after the
/// rows it returns (the newest entries of the audit log, a bounded count).
fn full_scans<'p>(plan: &'p [String], sql: &str) -> Vec<&'p String> {
    let limited = sql.contains(" LIMIT ");
    let ordered_walk = limited && !sql.contains(" WHERE ") && !plan.iter().any(|step| step.contains("TEMP B-TREE"));
    plan.iter()
        .filter(|detail| {
            let mut words = detail.split_whitespace();
            let (step, table) = (words.next(), words.next());
            if !table.is_some_and(|table| GROWING.contains(&table)) {
                return false;
            }
            match step {
                Some("SCAN") => !ordered_walk,
                Some("SEARCH") => {
                    let constraints = detail.rsplit_once('(').map_or("", |(_, c)| c.trim_end_matches(')'));
                    let columns = constraints.split(" AND ").map(|c| c.split(['=', '<', '>']).next().unwrap_or(""));
                    let columns: Vec<&str> = columns.collect();
                    !limited && columns.iter().all(|column| UNSELECTIVE.contains(column))
                }
                _ => false,
            }
        })
        .collect()
}

#[test]
fn full_scans_are_recognised() {
    let plan = |lines: &[&str]| lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    let select = "SELECT * FROM tasks WHERE …";
    assert_eq!(full_scans(&plan(&["SCAN tasks USING INDEX tasks_open"]), select).len(), 1);
    assert_eq!(full_scans(&plan(&["SCAN instances"]), select).len(), 1);
    // Every open task, through the (status, organization) index.
    assert_eq!(full_scans(&plan(&["SEARCH tasks USING INDEX tasks_open_by_org (status=?)"]), select).len(), 1);
    assert!(full_scans(&plan(&["SEARCH tasks USING INDEX tasks_by_instance (instance_id=? AND status=?)"]), select)
        .is_empty());
    let first_due = "SELECT next_attempt_at FROM outbox WHERE kind = ? AND status = ? ORDER BY next_attempt_at LIMIT ?";
    assert!(full_scans(&plan(&["SEARCH outbox USING INDEX outbox_ready_by_kind (kind=? AND status=?)"]), first_due)
        .is_empty());
    assert!(full_scans(&plan(&["SCAN definitions", "USE TEMP B-TREE FOR ORDER BY"]), select).is_empty());
    // The newest rows, walking the table backwards: stops after the page.
    let newest = "SELECT id FROM audit ORDER BY id DESC LIMIT ? OFFSET ?";
    assert!(full_scans(&plan(&["SCAN audit"]), newest).is_empty());
    // A filter or a sort under the limit can still read everything.
    let filtered = "SELECT id FROM audit WHERE detail = ? ORDER BY id DESC LIMIT ?";
    assert_eq!(full_scans(&plan(&["SCAN audit"]), filtered).len(), 1);
    let sorted = "SELECT id FROM audit ORDER BY target LIMIT ?";
    assert_eq!(full_scans(&plan(&["SCAN audit", "USE TEMP B-TREE FOR ORDER BY"]), sorted).len(), 1);
}

/// Sends a request as an HTTP client would (from a blocking thread: ureq is synchronous) and
/// returns its status and body. Redirects are followed, as a browser does after a form.
async fn send(url: String, method: &str, headers: Vec<(&'static str, String)>, body: Option<String>) -> (u16, String) {
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut request = ureq::http::Request::builder().method(method.as_str()).uri(&url);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match body {
            Some(body) => agent.run(request.body(body).unwrap()),
            None => agent.run(request.body(()).unwrap()),
        }
        .unwrap();
        let status = response.status().as_u16();
        (status, response.into_body().read_to_string().unwrap_or_default())
    })
    .await
    .unwrap()
}

/// Calls the API with a bearer token; the call must succeed.
async fn call(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let headers = vec![("Authorization", format!("Bearer {token}")), ("Content-Type", "application/json".into())];
    let (status, text) = send(format!("{base}{path}"), method, headers, body.map(|b| b.to_string())).await;
    assert!(status < 300, "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Opens a console page (or posts a form to it) as a signed-in person; it must succeed.
async fn visit(base: &str, session: &str, method: &str, path: &str, form: Option<&str>) {
    let mut headers = vec![("Cookie", format!("statflow_session={session}"))];
    if form.is_some() {
        headers.push(("Content-Type", "application/x-www-form-urlencoded".into()));
    }
    let (status, text) = send(format!("{base}{path}"), method, headers, form.map(str::to_owned)).await;
    assert!(status < 300, "{method} {path}: {status} {}", text.chars().take(400).collect::<String>());
}

/// Signs `name` in as a console user with `role`: the session cookie's value.
async fn sign_in(store: &Store, name: &str, role: Role, organizations: &[String]) -> String {
    let now = chrono::Utc::now().timestamp_millis();
    let hash = crate::console::password::hash("plans password").unwrap();
    let user = NewUser { name, role, organizations, password_hash: &hash };
    let user = store.create_user(user, now).await.unwrap();
    let session = format!("plans-session-{name}");
    store.create_session(user.id, &api::auth::token_hash(&session), CSRF, now, now + 3_600_000).await.unwrap();
    session
}

/// The CSRF token of the console sessions made here.
const CSRF: &str = "plans-csrf";

/// SQLite's plan for `statement`, run with its values: one line of detail per step. A script
/// of several statements (the writer's, `bulk::Script`) is explained statement by statement:
/// `EXPLAIN QUERY PLAN` covers only the first of a text and would run the others.
async fn plan(store: &Store, statement: &Statement) -> Vec<String> {
    let mut values = statement.values.as_ref().map(|v| v.0.clone()).unwrap_or_default().into_iter();
    let mut details = Vec::new();
    for sql in statement.sql.split(";\n").filter(|sql| !sql.trim().is_empty()) {
        // Script parts bind only `?`, one value each, and hold no literal `?`.
        let bound: Vec<_> = values.by_ref().take(sql.matches('?').count()).collect();
        let explain = Statement {
            sql: format!("EXPLAIN QUERY PLAN {sql}"),
            values: statement.values.as_ref().map(|_| sea_orm::Values(bound)),
            db_backend: DbBackend::Sqlite,
        };
        let rows = store.db.query_all_raw(explain).await.unwrap_or_else(|e| panic!("explain {sql}: {e}"));
        details.extend(rows.iter().map(|row| row.try_get::<String>("", "detail").unwrap()));
    }
    details
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_per_call_statement_scans_a_growing_table() {
    let dir = std::env::temp_dir().join(format!("statflow-plans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("plans.db").display());
    let recorder = Arc::new(Recorder::default());
    let observer = recorder.clone();
    let store =
        Store::open_observed(&url, Arc::new(move |statement: &Statement| observer.see(statement))).await.unwrap();
    let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").unwrap();
    let engine = Embedded::load(store.clone(), Clock::Virtual(Mutex::new(start))).await.unwrap();
    store.load_directory(&DirectoryFile::parse(DIRECTORY, "directory.toml").unwrap(), 0).await.unwrap();
    let orgs = ["taian-registry".to_owned(), "taian-market".to_owned()];
    let clerk = api::auth::create_token(&store, "clerk", "staff", &orgs, None).await.unwrap();
    let admin = api::auth::create_token(&store, "admin", "administrator", &[], None).await.unwrap();
    let clerk_session = sign_in(&store, "console-clerk", Role::Staff, &orgs).await;
    let chief_session = sign_in(&store, "console-chief", Role::Administrator, &[]).await;
    let channels = Channels {
        mailer: statflow_activities::email::Mailer::spool(dir.join("mail"), "statflow <statflow@plans.example>")
            .unwrap(),
        templates: statflow_activities::templates::Templates::new(None),
        webhook: None,
        base_url: "http://127.0.0.1".into(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(engine.clone(), store.clone(), false, Default::default());
    tokio::spawn(async move { axum::serve(listener, router).await });

    recorder.set(true);
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let body = json!({"procedure": "registration", "jurisdiction": "taian", "input": input});
    let id = call(&base, &clerk, "POST", "/v1/instances", Some(body)).await["id"].as_i64().unwrap();
    let inbox = call(&base, &clerk, "GET", "/v1/tasks", None).await;
    let task = inbox["items"][0]["id"].as_str().unwrap().to_owned();
    call(&base, &clerk, "POST", &format!("/v1/tasks/{task}/claim"), Some(json!({}))).await;
    call(&base, &clerk, "GET", "/v1/tasks?assignee=me", None).await;
    call(&base, &clerk, "POST", &format!("/v1/tasks/{task}/complete"), Some(json!({"action": "accept"}))).await;
    let act = |action: &str, data: Value| json!({"action": action, "data": data});
    let actions = format!("/v1/instances/{id}/actions");
    let engage = act("engage_third_party", json!({"third_party": "合规服务中心", "reason": "涉及个人信息"}));
    call(&base, &clerk, "POST", &actions, Some(engage)).await;
    call(&base, &clerk, "POST", &actions, Some(act("pass", json!({"compliance_report": "合规"})))).await;
    call(&base, &clerk, "GET", &format!("/v1/instances/{id}"), None).await;
    call(&base, &clerk, "GET", "/v1/instances?status=running", None).await;
    call(&base, &admin, "GET", &format!("/v1/instances/{id}/history"), None).await;
    call(&base, &clerk, "GET", "/v1/overdue", None).await;
    call(&base, &admin, "GET", &format!("/v1/audit?target=instance/{id}"), None).await;
    call(&base, &admin, "GET", "/v1/audit?principal=admin", None).await;
    // The workers: notices of the tasks opened, the publicity timer, the certificate.
    engine.deliver_once(&channels).await.unwrap();
    let fired = engine.fire_due(start + TimeDelta::days(14)).await.unwrap();
    assert!(!fired.is_empty(), "the publicity timer fires");
    engine.run_outbox_once().await.unwrap();
    engine.deliver_once(&channels).await.unwrap();
    assert_eq!(engine.store().instance(id).await.unwrap().step.as_deref(), Some("rights_confirmation"));
    call(&base, &clerk, "POST", &actions, Some(act("confirm_rights", json!({})))).await;
    engine.run_outbox_once().await.unwrap();

    // The console: a second registration claimed and accepted there, and the pages people
    // open all day.
    let body = json!({"procedure": "registration", "jurisdiction": "taian", "input": input});
    let second = call(&base, &clerk, "POST", "/v1/instances", Some(body)).await["id"].as_i64().unwrap();
    let tasks = call(&base, &clerk, "GET", "/v1/tasks?per_page=100", None).await;
    let task = tasks["items"].as_array().unwrap().iter().find(|t| t["instance"] == second).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let csrf = format!("csrf={CSRF}");
    visit(&base, &clerk_session, "GET", "/inbox", None).await;
    visit(&base, &clerk_session, "POST", &format!("/tasks/{task}/claim"), Some(&csrf)).await;
    visit(&base, &clerk_session, "GET", &format!("/instances/{second}"), None).await;
    visit(&base, &clerk_session, "POST", &format!("/instances/{second}/actions/accept"), Some(&csrf)).await;
    visit(&base, &clerk_session, "GET", "/search?text=%E4%BC%81%E4%B8%9A", None).await;
    visit(&base, &clerk_session, "GET", "/overdue", None).await;
    for page in [
        "/inbox",
        "/search?procedure=registration&status=running",
        "/overdue",
        "/overdue.csv",
        "/schedules",
        "/definitions",
        "/admin/calendar",
        "/admin/deliveries",
        "/admin/people",
        "/admin/audit",
        "/admin/directory",
        "/admin/clock",
    ] {
        visit(&base, &chief_session, "GET", page, None).await;
    }
    visit(&base, &chief_session, "GET", &format!("/instances/{id}"), None).await;
    // The daily retention sweep looks for finished instances past their period.
    store.sweep_retention(start + TimeDelta::days(4000), 10, &Default::default()).await.unwrap();
    recorder.set(false);

    let statements = std::mem::take(&mut *recorder.statements.lock().unwrap());
    assert!(statements.len() > 20, "the paths above run many statements: {}", statements.len());
    // The check itself: a search on an unindexed column is a full scan.
    let unindexed = Statement::from_string(DbBackend::Sqlite, "SELECT id FROM tasks WHERE title = 'x'");
    assert!(!full_scans(&plan(&store, &unindexed).await, &unindexed.sql).is_empty(), "a scan of tasks is seen");
    let mut scanning = Vec::new();
    for (sql, statement) in &statements {
        let plan = plan(&store, statement).await;
        if !full_scans(&plan, sql).is_empty() {
            scanning.push(format!("{sql}\n    {}", plan.join("\n    ")));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    assert!(scanning.is_empty(), "statements scanning a growing table:\n\n{}", scanning.join("\n\n"));
}
