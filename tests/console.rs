//! The console in a real browser: Playwright (from PyPI) drives Debian's Chromium against the
//! real daemon (`tests/console/browser.py`), and this test then checks through the API that
//! what the browser did is what was stored. Screenshots of the main pages are kept under
//! `target/console-screenshots/` for a person to look at.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::smtp::{config, directory, eventually, Sink};
use common::{start, Backend, TestApp};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the browser script; its assertions fail the test with what it printed.
fn browse(app: &TestApp, scenario: &str, env: &[(&str, String)]) {
    assert!(std::path::Path::new(CHROMIUM).exists(), "Debian's chromium is installed (.ci/run installs it)");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/console/browser.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg(scenario)
        .env("STATFLOW_BASE", app.base())
        .env("STATFLOW_CHROMIUM", CHROMIUM)
        .env("STATFLOW_SCREENSHOTS", screenshots_dir());
    for (key, value) in env {
        command.env(key, value);
    }
    let out = command.output().expect("python3 runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "browser scenario `{scenario}` failed:\n{printed}\n--- daemon log ---\n{}",
        app.log()
    );
    println!("{printed}");
}

fn registration_input() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

#[test]
fn a_clerk_works_a_registration_through_the_console() {
    a_clerk_works_a_registration(Backend::Sqlite, &[]);
}

#[test]
fn on_the_temporal_engine_a_clerk_works_a_registration_through_the_console() {
    if !common::temporal_available() {
        return;
    }
    let screenshots = screenshots_dir().join("temporal");
    std::fs::create_dir_all(&screenshots).unwrap();
    a_clerk_works_a_registration(Backend::Temporal, &[("STATFLOW_SCREENSHOTS", screenshots.display().to_string())]);
}

fn a_clerk_works_a_registration(backend: Backend, env: &[(&str, String)]) {
    let app = TestApp::start(backend, "2026-02-13T10:00:00+08:00");
    app.user("clerk", "staff", &["taian-registry"], "clerk password 1");
    app.user("outsider", "staff", &["jinan-registry"], "outsider password 1");
    let provider = app.token("provider", "staff", &["taian-market"]);
    let id = start(&app, &provider, "registration", "taian", registration_input());
    let before = app.instance(id);

    let mut env = env.to_vec();
    env.push(("STATFLOW_INSTANCE", id.to_string()));
    browse(&app, "clerk", &env);

    let after = app.instance(id);
    assert_eq!(after["step"]["name"], "publicity", "the clerk accepted and passed the review: {after}");
    assert_eq!(after["data"]["compliance_report"], "材料齐全，符合登记要求");
    assert!(before["version"].as_i64() < after["version"].as_i64());
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    let actors: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "action")
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["clerk", "clerk"], "the person's name is on each action, and the refused one stored nothing");
    assert_eq!(history["chain_intact"], true);
}

#[test]
fn outsiders_forged_forms_and_guessed_passwords_get_nothing() {
    let app = TestApp::start(Backend::Sqlite, "2026-02-13T10:00:00+08:00");
    app.user("clerk", "staff", &["taian-registry"], "clerk password 1");
    app.user("outsider", "staff", &["jinan-registry"], "outsider password 1");
    app.user("victim", "staff", &["taian-registry"], "victim password 1");
    let provider = app.token("provider", "staff", &["taian-market"]);
    let id = start(&app, &provider, "registration", "taian", registration_input());
    let before = app.instance(id);

    browse(&app, "intruders", &[("STATFLOW_INSTANCE", id.to_string())]);

    let after = app.instance(id);
    assert_eq!(after["version"], before["version"], "nothing the intruders did was stored: {after}");
    assert_eq!(after["tasks"][0]["assignee"], Value::Null, "the forged claim did not take");
    assert!(app.log().contains("a sign-in was refused"), "refused sign-ins are logged");
    assert!(!app.log().contains("victim password"), "no password reaches the log");
}

#[test]
fn an_administrator_imports_a_year_moves_the_clock_and_resends_a_failed_notice() {
    let sink = Sink::start();
    let dir = common::scratch("console-admin");
    // The registry's clerk's address bounces until an administrator corrects it.
    let config = config(&sink, &directory(&dir, "bounce@registry.example"));
    // Three working days from 2026-12-29 run into 2027, whose notice is not loaded yet.
    let app = TestApp::start_configured(Backend::Sqlite, "2026-12-29T10:00:00+08:00", &config);
    app.user("chief", "administrator", &[], "chief password 1");
    app.user("inspector", "regulator", &[], "inspector password 1");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let old_system = app.token("old-system", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    assert_eq!(app.instance(id)["deadline"]["provisional"], true);

    let notice = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/2027.json");
    let broken =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/broken-definitions/unknown-references.toml");
    browse(
        &app,
        "admin",
        &[
            ("STATFLOW_INSTANCE", id.to_string()),
            ("STATFLOW_NOTICE", notice.display().to_string()),
            ("STATFLOW_BROKEN_DEFINITION", broken.display().to_string()),
        ],
    );

    let instance = app.instance(id);
    assert_eq!(instance["deadline"]["provisional"], false, "{instance}");
    assert_eq!(instance["deadline"]["overdue"], true);
    // The corrected contact now receives the notices that had bounced, each once.
    eventually(|| sink.messages().iter().any(|m| m["to"].to_string().contains("zhang@registry.example")));
    let (_, failed) = app.get("/v1/admin/deliveries?status=failed&per_page=500", &app.admin);
    assert!(
        failed["items"].as_array().unwrap().iter().all(|d| d["kind"] != "notify"),
        "no notice is left failed: {failed}"
    );
    let (_, audit) = app.get("/v1/admin/deliveries?status=done&per_page=500", &app.admin);
    assert!(audit["total"].as_u64() > Some(0));
    assert_eq!(app.get("/v1/instances", &old_system).0, 401, "the revoked token is refused");
}

/// A signed-in console session over plain HTTP (no redirects followed), for the matrix.
struct Session {
    cookie: Option<String>,
    csrf: String,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

/// The value of the first `name="csrf"` field on a page.
fn csrf_on(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("the page has a form") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

impl Session {
    fn anonymous() -> Session {
        Session { cookie: None, csrf: String::new() }
    }

    fn sign_in(app: &TestApp, name: &str, password: &str) -> Session {
        let agent = agent();
        let mut form = agent.get(format!("{}/login", app.base())).call().unwrap();
        let login_cookie = set_cookie(&form, "statflow_sign_in").expect("the form sets its CSRF cookie");
        let csrf = csrf_on(&form.body_mut().read_to_string().unwrap());
        let response = agent
            .post(format!("{}/login", app.base()))
            .header("Cookie", &login_cookie)
            .send_form([("name", name), ("password", password), ("csrf", csrf.as_str()), ("next", "/inbox")])
            .unwrap();
        assert_eq!(response.status().as_u16(), 303, "{name} signs in");
        let cookie = set_cookie(&response, "statflow_session").expect("a session cookie");
        assert!(
            response.headers().get_all("set-cookie").iter().any(|v| {
                let v = v.to_str().unwrap();
                v.starts_with("statflow_session=") && v.contains("HttpOnly") && v.contains("SameSite=Strict")
            }),
            "the session cookie is HttpOnly and SameSite=Strict"
        );
        let mut inbox = agent.get(format!("{}/inbox", app.base())).header("Cookie", &cookie).call().unwrap();
        let csrf = csrf_on(&inbox.body_mut().read_to_string().unwrap());
        Session { cookie: Some(cookie), csrf }
    }

    /// (status, body) of a GET, or of a POST of `form` (with this session's CSRF token).
    fn call(&self, app: &TestApp, method: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let agent = agent();
        let url = format!("{}{path}", app.base());
        let mut response = if method == "GET" {
            let mut request = agent.get(url);
            if let Some(cookie) = &self.cookie {
                request = request.header("Cookie", cookie);
            }
            request.call().unwrap()
        } else {
            let mut request = agent.post(url);
            if let Some(cookie) = &self.cookie {
                request = request.header("Cookie", cookie);
            }
            let mut fields: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
            fields.extend_from_slice(form);
            request.send_form(fields).unwrap()
        };
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap_or_default())
    }
}

/// Every console page and form, for every kind of visitor: anonymous, staff of the
/// instance's organization, staff of another, administrator, scheduler, regulator.
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 6])] = &[
    ("GET",  "/inbox",                          [303, 200, 200, 200, 200, 200]),
    ("GET",  "/instances/{id}",                 [303, 200, 404, 200, 200, 200]),
    ("GET",  "/overdue",                        [303, 200, 200, 200, 200, 200]),
    ("GET",  "/search?text=%E4%BC%81%E4%B8%9A",  [303, 200, 200, 200, 200, 200]),
    ("GET",  "/start?procedure=registration&jurisdiction=taian", [303, 200, 200, 200, 200, 403]),
    ("GET",  "/overdue.csv",                    [303, 200, 200, 200, 200, 200]),
    ("GET",  "/admin/calendar",                 [303, 403, 403, 200, 403, 403]),
    ("GET",  "/admin/deliveries",               [303, 403, 403, 200, 403, 403]),
    ("GET",  "/admin/clock",                    [303, 403, 403, 200, 403, 403]),
    ("GET",  "/admin/people",                   [303, 403, 403, 200, 403, 403]),
    ("GET",  "/admin/audit?action=user.",       [303, 403, 403, 200, 403, 403]),
    ("GET",  "/admin/directory",                [303, 403, 403, 200, 403, 403]),
    ("POST", "/admin/directory/organizations",  [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/directory/contacts",       [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/directory/contacts/1/delete", [303, 403, 403, 303, 403, 403]),
    ("GET",  "/definitions",                    [303, 200, 200, 200, 200, 200]),
    ("GET",  "/schedules",                      [303, 403, 403, 200, 200, 403]),
    ("POST", "/schedules/daily_digest/enable",  [303, 403, 403, 303, 303, 403]),
    ("POST", "/schedules/retention_sweep/run",  [303, 403, 403, 303, 303, 403]),
    ("GET",  "/definitions/registration/taian", [303, 200, 200, 200, 200, 200]),
    ("POST", "/definitions",                    [303, 403, 403, 422, 403, 403]),
    ("POST", "/admin/people",                   [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/people/spare/disable",     [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/people/password",          [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/tokens/spare-system/revoke", [303, 403, 403, 303, 403, 403]),
    ("POST", "/tasks/{task}/claim",             [303, 303, 404, 303, 403, 403]),
    ("POST", "/tasks/{task}/release",           [303, 409, 404, 409, 403, 403]),
    ("POST", "/instances/{id}/actions/accept",  [303, 303, 404, 303, 403, 403]),
    ("POST", "/start",                          [303, 303, 403, 303, 303, 403]),
    ("POST", "/admin/calendar/import",          [303, 403, 403, 422, 403, 403]),
    ("POST", "/admin/deliveries/all/retry",     [303, 403, 403, 303, 403, 403]),
    ("POST", "/admin/clock",                    [303, 403, 403, 303, 403, 403]),
];

/// Routes open to anyone, each for its reason: the sign-in form and its post, the stylesheet
/// and script, and `/` (a redirect to the inbox, which then asks for a session). Sign-out is
/// checked on its own below.
const OPEN: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/assets/console.css"),
    ("GET", "/assets/console.js"),
];

/// Every (method, path) the console serves, read from its router's source.
fn console_routes() -> Vec<(String, String)> {
    let source = include_str!("../daemon/src/console/mod.rs");
    let mut routes = Vec::new();
    for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
        let path = line.split('"').nth(1).unwrap().to_owned();
        for (method, call) in [("GET", "get("), ("POST", "post(")] {
            if line.contains(call) {
                routes.push((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

/// Whether a concrete matrix path is an instance of route `pattern` (`{x}` is one segment).
fn matches_route(pattern: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap();
    let (pattern, path): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len() && pattern.iter().zip(&path).all(|(p, s)| p.starts_with('{') || p == s)
}

#[test]
fn the_matrix_covers_every_console_route() {
    let routes = console_routes();
    assert!(routes.len() > 20, "the routes are read from the source: {routes:?}");
    let uncovered: Vec<&(String, String)> = routes
        .iter()
        .filter(|(method, pattern)| {
            !OPEN.iter().any(|(m, p)| m == method && p == pattern)
                && !MATRIX.iter().any(|(m, path, _)| m == method && matches_route(pattern, path))
        })
        .collect();
    assert!(uncovered.is_empty(), "console routes without a row in MATRIX: {uncovered:?}");
}

#[test]
fn every_console_page_checks_role_and_organization_exactly() {
    let app = TestApp::start(Backend::Sqlite, "2026-02-13T10:00:00+08:00");
    let people = [
        ("clerk", "staff", vec!["taian-registry"]),
        ("outsider", "staff", vec!["jinan-registry"]),
        ("chief", "administrator", vec![]),
        ("cron", "scheduler", vec![]),
        ("inspector", "regulator", vec![]),
    ];
    for (name, role, organizations) in &people {
        app.user(name, role, organizations, &format!("{name} password 1"));
    }
    let mut sessions = vec![Session::anonymous()];
    sessions.extend(people.iter().map(|(name, _, _)| Session::sign_in(&app, name, &format!("{name} password 1"))));
    let provider = app.token("provider", "staff", &["taian-market"]);
    app.user("spare", "staff", &["taian-registry"], "spare password 1");
    let spare_system = app.token("spare-system", "staff", &["taian-registry"]);
    let mut failures = Vec::new();
    for (method, path, expected) in MATRIX {
        for (who, session) in sessions.iter().enumerate() {
            // A fresh registration for each call, so one call's change cannot decide another's.
            let id = start(&app, &provider, "registration", "taian", registration_input());
            let task = app.instance(id)["tasks"][0]["id"].as_str().unwrap().to_owned();
            let path = path.replace("{id}", &id.to_string()).replace("{task}", &task);
            let form: &[(&str, &str)] = match path.as_str() {
                "/admin/calendar/import" => &[("origin", "x.tsv"), ("content", "not a notice")],
                "/admin/clock" => &[("advance", "PT1M")],
                "/admin/people/password" => &[("name", "spare"), ("password", "a new spare password")],
                "/admin/directory/organizations" => &[("id", "matrix-org"), ("name", "矩阵局")],
                "/admin/directory/contacts" => {
                    &[("organization", "matrix-org"), ("name", "矩阵"), ("email", "matrix@org.example")]
                }
                "/admin/people" => &[
                    ("name", "matrix-made"),
                    ("role", "staff"),
                    ("organizations", "taian-registry"),
                    ("password", "matrix password 1"),
                ],
                "/start" => &[
                    ("procedure", "registration"),
                    ("jurisdiction", "taian"),
                    ("resource_name", "企业登记信息"),
                    ("registration_type", "initial"),
                    ("registrant_org", "taian-market"),
                    ("agency_org", "taian-registry"),
                ],
                _ => &[],
            };
            let (status, body) = session.call(&app, method, &path, form);
            if status != expected[who] {
                failures.push(format!("{method} {path} as #{who}: {status}, expected {}: {body:.200}", expected[who]));
            }
            if who == 2 && (status == 404 || path.starts_with("/search")) {
                assert!(!body.contains("企业登记信息"), "{path}: nothing of another organization's instance: {body}");
            }
        }
    }
    // Every form of a signed-in session without its CSRF token is refused, and nothing changes.
    let id = start(&app, &provider, "registration", "taian", registration_input());
    let before = app.instance(id);
    for session in &sessions[1..] {
        let forged = Session { cookie: session.cookie.clone(), csrf: "0".repeat(64) };
        for path in [format!("/instances/{id}/actions/accept"), "/admin/clock".into(), "/logout".into()] {
            let (status, _) = forged.call(&app, "POST", &path, &[("advance", "PT1M")]);
            if status != 403 {
                failures.push(format!("POST {path} with a forged CSRF token: {status}, expected 403"));
            }
        }
    }
    assert_eq!(app.instance(id)["version"], before["version"], "forged forms changed nothing");
    assert_eq!(app.get("/v1/instances", &spare_system).0, 401, "the revoked token opens nothing");
    // Signing out ends the session: the same cookie no longer opens a page.
    let clerk = &sessions[1];
    assert_eq!(clerk.call(&app, "POST", "/logout", &[]).0, 303);
    assert_eq!(clerk.call(&app, "GET", "/inbox", &[]).0, 303, "the session ended with sign-out");
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
}
