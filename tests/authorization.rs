//! The authorization matrix: every route the router serves × every kind of caller (no token,
//! staff of the organization involved, staff of another organization, administrator,
//! scheduler, regulator), each request made for real against the daemon.
//!
//! The routes are read from the router's source (`daemon/src/api/mod.rs`), so a new route or
//! method without a row in [`EXPECTED`] fails this test until someone decides who may call it.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{start, Backend, TestApp};
use serde_json::{json, Value};

/// The callers, in the order of the columns of [`EXPECTED`].
const CALLERS: [&str; 6] = ["nobody", "staff", "other-staff", "administrator", "scheduler", "regulator"];

/// Expected status per caller. "staff" works for the organization the fixture instance
/// involves (`taian-registry`); "other-staff" for `wz-bureau`, which it does not.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, [u16; 6])] = &[
    ("GET",    "/healthz",                            [200, 200, 200, 200, 200, 200]),
    ("GET",    "/readyz",                             [200, 200, 200, 200, 200, 200]),
    // Not a principal's: the loopback scraper (the default `[metrics]`) reads it.
    ("GET",    "/metrics",                            [200, 200, 200, 200, 200, 200]),
    ("GET",    "/v1/openapi.json",                    [200, 200, 200, 200, 200, 200]),
    ("POST",   "/v1/instances",                       [401, 201, 403, 201, 201, 403]),
    ("GET",    "/v1/instances",                       [401, 200, 200, 200, 200, 200]),
    ("GET",    "/v1/instances/{id}",                  [401, 200, 404, 200, 200, 200]),
    ("GET",    "/v1/instances/{id}/history",          [401, 200, 404, 200, 200, 200]),
    ("POST",   "/v1/instances/{id}/actions",          [401, 200, 404, 200, 403, 403]),
    ("POST",   "/v1/instances/{id}/cancel",           [401, 403, 403, 200, 403, 403]),
    ("POST",   "/v1/instances/{id}/terminate",        [401, 403, 403, 200, 403, 403]),
    ("POST",   "/v1/instances/{id}/move",             [401, 403, 403, 200, 403, 403]),
    ("GET",    "/v1/overdue",                         [401, 200, 200, 200, 200, 200]),
    ("GET",    "/v1/tasks",                           [401, 200, 200, 200, 200, 200]),
    ("POST",   "/v1/tasks/{id}/claim",                [401, 200, 404, 200, 403, 403]),
    ("POST",   "/v1/tasks/{id}/complete",             [401, 200, 404, 200, 403, 403]),
    ("POST",   "/v1/admin/clock",                     [401, 403, 403, 200, 403, 403]),
    ("GET",    "/v1/admin/deliveries",                [401, 403, 403, 200, 403, 403]),
    ("POST",   "/v1/admin/deliveries/retry",          [401, 403, 403, 200, 403, 403]),
    ("POST",   "/v1/admin/migrations",                [401, 403, 403, 200, 403, 403]),
    ("GET",    "/v1/admin/tokens",                    [401, 403, 403, 200, 403, 403]),
    ("DELETE", "/v1/admin/tokens/{name}",             [401, 403, 403, 204, 403, 403]),
    ("GET",    "/v1/audit",                           [401, 403, 403, 200, 403, 403]),
    ("GET",    "/v1/directory",                       [401, 403, 403, 200, 403, 403]),
    ("POST",   "/v1/directory",                       [401, 403, 403, 200, 403, 403]),
    ("PUT",    "/v1/directory/organizations/{id}",    [401, 403, 403, 200, 403, 403]),
    ("PUT",    "/v1/directory/contacts",              [401, 403, 403, 200, 403, 403]),
    ("DELETE", "/v1/directory/contacts/{id}",         [401, 403, 403, 204, 403, 403]),
    ("GET",    "/v1/schedules",                       [401, 403, 403, 200, 200, 403]),
    ("GET",    "/v1/schedules/{id}",                  [401, 403, 403, 200, 200, 403]),
    ("PUT",    "/v1/schedules/{id}",                  [401, 403, 403, 200, 200, 403]),
    ("DELETE", "/v1/schedules/{id}",                  [401, 403, 403, 204, 204, 403]),
    ("GET",    "/v1/definitions",                     [401, 200, 200, 200, 200, 200]),
    ("POST",   "/v1/definitions",                     [401, 403, 403, 201, 403, 403]),
    ("GET",    "/v1/definitions/{procedure}",         [401, 200, 200, 200, 200, 200]),
    ("GET",    "/v1/calendars",                       [401, 200, 200, 200, 200, 200]),
    ("POST",   "/v1/calendars",                       [401, 403, 403, 202, 403, 403]),
];

/// Every (method, path) the router serves, read from its source.
fn routes() -> BTreeSet<(String, String)> {
    let router = include_str!("../daemon/src/api/mod.rs");
    let mut routes = BTreeSet::new();
    for line in router.lines().filter_map(|l| l.trim().strip_prefix(".route(\"")) {
        let (path, handlers) = line.split_once('"').unwrap();
        for method in ["get", "post", "put", "delete", "patch"] {
            // Handlers are `module::name` or closures, so a method router is the first call
            // after the path (`, get(`), chained (`.get(`) or spelled out (`routing::get(`).
            if [", ", ".", "::"].iter().any(|before| handlers.contains(&format!("{before}{method}("))) {
                routes.insert((method.to_uppercase(), path.to_owned()));
            }
        }
    }
    routes
}

fn registration() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

/// A fresh name per call, for fixtures each request consumes.
fn fresh(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// Makes the request `method path` as `token`, with whatever fixture it needs made fresh by
/// the administrator, so every caller meets the same situation.
fn call(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let admin = app.admin.as_str();
    let instance = || start(app, admin, "registration", "taian", registration());
    let task_of = |id: i64| app.instance(id)["tasks"][0]["id"].as_str().unwrap().to_owned();
    let schedule = json!({"title": "t", "cron": "0 9 1 * *", "catch_up": "once",
        "job": {"kind": "start", "procedure": "half_yearly_summary", "jurisdiction": "taian",
                "input": {"authority_org": "ta-bureau", "period": "{fire_date}"}}});
    let (path, body): (String, Option<Value>) = match (method, path) {
        ("POST", "/v1/instances") => {
            (path.into(), Some(json!({"procedure": "registration", "jurisdiction": "taian", "input": registration()})))
        }
        (_, "/v1/instances/{id}") | (_, "/v1/instances/{id}/history") => {
            (path.replace("{id}", &instance().to_string()), None)
        }
        ("POST", "/v1/instances/{id}/actions") => {
            (path.replace("{id}", &instance().to_string()), Some(json!({"action": "accept"})))
        }
        ("POST", "/v1/instances/{id}/cancel") | ("POST", "/v1/instances/{id}/terminate") => {
            (path.replace("{id}", &instance().to_string()), Some(json!({"reason": "matrix"})))
        }
        ("POST", "/v1/instances/{id}/move") => {
            (path.replace("{id}", &instance().to_string()), Some(json!({"step": "acceptance", "reason": "matrix"})))
        }
        ("POST", "/v1/tasks/{id}/claim") => (path.replace("{id}", &task_of(instance())), Some(json!({}))),
        ("POST", "/v1/tasks/{id}/complete") => {
            (path.replace("{id}", &task_of(instance())), Some(json!({"action": "accept"})))
        }
        ("POST", "/v1/admin/clock") => (path.into(), Some(json!({"advance": "PT1M"}))),
        ("POST", "/v1/admin/deliveries/retry") => (path.into(), Some(json!({}))),
        ("DELETE", "/v1/admin/tokens/{name}") => {
            let name = fresh("holder");
            app.token(&name, "staff", &["taian-registry"]);
            (path.replace("{name}", &name), None)
        }
        ("POST", "/v1/admin/migrations") => (
            path.into(),
            Some(json!({"procedure": "registration", "jurisdiction": "taian", "reason": "matrix", "dry_run": true})),
        ),
        ("POST", "/v1/directory") => (
            path.into(),
            Some(json!({"source": "[organizations.matrix-bulk]\nname = \"批量\"\nemail = \"bulk@matrix.example\"\n"})),
        ),
        ("PUT", "/v1/directory/organizations/{id}") => {
            (path.replace("{id}", &fresh("org")), Some(json!({"name": "某局", "email": "duty@matrix.example"})))
        }
        ("PUT", "/v1/directory/contacts") => (
            path.into(),
            Some(
                json!({"organization": "matrix-org", "name": "张三", "email": format!("{}@matrix.example", fresh("c"))}),
            ),
        ),
        ("DELETE", "/v1/directory/contacts/{id}") => {
            let contact = json!({"organization": "matrix-org", "name": "李四", "email": format!("{}@matrix.example", fresh("d"))});
            let (status, body) = app.put("/v1/directory/contacts", admin, &contact);
            assert_eq!(status, 200, "{body}");
            let (_, listing) = app.get("/v1/directory?per_page=500", admin);
            let id = listing["contacts"].as_array().unwrap().iter().find(|c| c["email"] == contact["email"]).unwrap()
                ["id"]
                .clone();
            (path.replace("{id}", &id.to_string()), None)
        }
        ("GET", "/v1/schedules/{id}") => (path.replace("{id}", "daily_digest"), None),
        ("PUT", "/v1/schedules/{id}") => (path.replace("{id}", &fresh("put")), Some(schedule)),
        ("DELETE", "/v1/schedules/{id}") => {
            let id = fresh("del");
            assert_eq!(app.put(&format!("/v1/schedules/{id}"), admin, &schedule).0, 200);
            (path.replace("{id}", &id), None)
        }
        ("POST", "/v1/definitions") => (
            path.into(),
            Some(
                json!({"file": "registration.taian.toml", "source": include_str!("../workflows/procedures/registration.taian.toml")}),
            ),
        ),
        ("GET", "/v1/definitions/{procedure}") => ("/v1/definitions/registration?jurisdiction=taian".into(), None),
        ("POST", "/v1/calendars") => {
            (path.into(), Some(json!({"origin": "2027.json", "content": include_str!("fixtures/2027.json")})))
        }
        _ => (path.into(), None),
    };
    let (status, body, _) = app.request(method, &path, token, body.as_ref());
    (status, body)
}

#[test]
fn every_route_checks_role_and_organization_exactly() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let tokens = [
        None,
        Some(app.token("staff", "staff", &["taian-registry"])),
        Some(app.token("other-staff", "staff", &["wz-bureau"])),
        Some(app.admin.clone()),
        Some(app.token("scheduler", "scheduler", &[])),
        Some(app.token("regulator", "regulator", &[])),
    ];
    let (status, body) = app.put("/v1/directory/organizations/matrix-org", &app.admin, &json!({"name": "矩阵"}));
    assert_eq!(status, 200, "{body}");

    let served = routes();
    let ruled: BTreeSet<(String, String)> =
        EXPECTED.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    let unruled: Vec<_> = served.difference(&ruled).collect();
    assert!(unruled.is_empty(), "routes without a rule in EXPECTED: {unruled:?}");
    let stale: Vec<_> = ruled.difference(&served).collect();
    assert!(stale.is_empty(), "rules for routes the router no longer serves: {stale:?}");

    let mut wrong = Vec::new();
    for (method, path, expected) in EXPECTED {
        for ((caller, token), want) in CALLERS.iter().zip(&tokens).zip(expected) {
            let (got, body) = call(&app, method, path, token.as_deref());
            if got != *want {
                wrong.push(format!("{method} {path} as {caller}: {got}, expected {want}: {body}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // What staff of another organization may list, they see nothing of this one in.
    let other = tokens[2].as_deref().unwrap();
    assert_eq!(app.get("/v1/instances", other).1["total"], 0);
    assert_eq!(app.get("/v1/tasks", other).1["total"], 0);
    assert_eq!(app.get("/v1/overdue", other).1["organizations"], json!([]));
    assert!(app.get("/v1/instances", tokens[1].as_deref().unwrap()).1["total"].as_u64().unwrap() > 0);
}
