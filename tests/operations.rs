//! What an operations team does to a running statflow: back it up under load and restore
//! the copy into a daemon that serves every instance with its history intact.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::smtp::{self, Sink};
use common::{act, start, Backend, TestApp};
use serde_json::json;

fn statflow(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_statflow")).args(args).output().unwrap()
}

#[test]
fn a_backup_taken_under_load_restores_into_a_daemon_with_every_instance_intact() {
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let copy = app.dir.join("backup.db");
    let (stop, acknowledged) = (AtomicBool::new(false), AtomicUsize::new(0));
    let before_backup = std::thread::scope(|s| {
        // Registrations keep arriving, each started and accepted, while the copy is taken.
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let id = start(&app, &clerk, "registration", "taian", input.clone());
                act(&app, &clerk, id, "accept", json!({}));
                acknowledged.fetch_add(1, Ordering::SeqCst);
            }
        });
        while acknowledged.load(Ordering::SeqCst) < 20 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let before = acknowledged.load(Ordering::SeqCst);
        let out = statflow(&["backup", "--db", &app.db, copy.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stop.store(true, Ordering::SeqCst);
        before
    });
    // A second backup to the same file is refused rather than overwriting it.
    let again = statflow(&["backup", "--db", &app.db, copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // The copy verifies (chains, ledger, replay through the interpreter) and serves.
    let restored = TestApp::start_from_copy(&copy, "2026-03-02T09:00:00+08:00");
    let verified = statflow(&["verify", "--db", &restored.db]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    let (_, list) = restored.get("/v1/instances?per_page=500", &restored.admin);
    let ids: Vec<i64> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert!(ids.len() >= before_backup, "{} instances in the copy, {before_backup} acknowledged before it", ids.len());
    for id in ids {
        let (status, history) = restored.get(&format!("/v1/instances/{id}/history"), &restored.admin);
        assert_eq!((status, &history["chain_intact"]), (200, &json!(true)), "instance {id}: {history}");
    }
    // The restored daemon takes actions as the original would.
    let first = act(&restored, &restored.admin, 1, "pass", json!({"compliance_report": "合规"}));
    assert_eq!(first["step"]["name"], "publicity");
}

#[test]
fn a_postgresql_database_is_left_to_pg_dump() {
    let out =
        statflow(&["backup", "--db", "postgres://statflow@db.example/statflow", "/tmp/statflow-never-written.db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!std::path::Path::new("/tmp/statflow-never-written.db").exists());
}

/// `GET /metrics` as a scraper reads it: each sample as `name{label="value",…}` (labels
/// sorted) → value.
fn scrape(app: &TestApp, token: Option<&str>) -> (u16, BTreeMap<String, f64>) {
    let (status, text) = scrape_text(app, token);
    (status, samples(&text))
}

/// `GET /metrics` as the page's text.
fn scrape_text(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let (status, body, content_type) = app.request("GET", "/metrics", token, None);
    if status == 200 {
        assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    }
    (status, body.as_str().map(str::to_owned).unwrap_or_default())
}

/// Whether Prometheus's `promtool` is here; a missing one fails where the deploy tools are
/// required (`.ci/deploy-tools` installs it).
fn have_promtool() -> bool {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var("STATFLOW_TEST_DEPLOY_TOOLS").as_deref() != Ok("required"), "promtool is required here");
        eprintln!("promtool is not installed: the page's format is not linted");
    }
    found
}

fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut found = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let key = match series.split_once('{') {
            Some((name, labels)) => {
                let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                labels.sort_unstable();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        found.insert(key, value.parse().unwrap_or_else(|_| panic!("not a number: {line}")));
    }
    found
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples.get(key).unwrap_or_else(|| panic!("no {key} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

#[test]
fn metrics_count_what_the_daemon_did_and_what_it_holds() {
    let sink = Sink::start();
    let dir = common::scratch("metrics");
    let config = smtp::config(&sink, &smtp::directory(&dir, "zhang@registry.example"));
    let app = TestApp::start_configured(Backend::Sqlite, "2026-03-02T09:00:00+08:00", &config);
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let ids: Vec<i64> = (0..3).map(|_| start(&app, &clerk, "registration", "taian", input.clone())).collect();
    act(&app, &clerk, ids[0], "accept", json!({}));
    // A month on: the others' review deadlines pass, their timers fire and notices go out.
    let fired = app.advance("P30D");
    assert!(!fired.is_empty(), "timers fired");
    let (_, open) = app.get("/v1/instances?procedure=registration&status=running", &app.admin);
    let (_, overdue) = app.get("/v1/instances?procedure=registration&status=running&overdue=true", &app.admin);
    let (open, overdue) = (open["total"].as_f64().unwrap(), overdue["total"].as_f64().unwrap());
    assert!(overdue >= 1.0, "some registration is overdue");

    let sent = "statflow_deliveries_total{kind=\"notify\",outcome=\"sent\"}";
    let metrics = app.wait_until("notices sent", || {
        let (status, metrics) = scrape(&app, None);
        assert_eq!(status, 200, "loopback reads the metrics");
        metrics.get(sent).is_some_and(|n| *n >= 1.0).then_some(metrics)
    });
    // No notice or escalation is counted as sent that the mail server did not take.
    let mailed = sample(&metrics, sent)
        + metrics.get("statflow_deliveries_total{kind=\"escalate\",outcome=\"sent\"}").unwrap_or(&0.0);
    assert!(mailed <= sink.messages().len() as f64, "{mailed} counted, {} received", sink.messages().len());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(sample(&metrics, &format!("statflow_build_info{{engine=\"embedded\",version=\"{version}\"}}")), 1.0);
    let transitions = |event: &str| {
        sample(&metrics, &format!("statflow_transitions_total{{event=\"{event}\",procedure=\"registration\"}}"))
    };
    assert_eq!(transitions("started"), 3.0);
    assert_eq!(transitions("action"), 1.0);
    assert!(transitions("timer_fired") >= 1.0, "a fired deadline is a transition");
    assert_eq!(sample(&metrics, "statflow_timers_fired_total"), fired.len() as f64);
    // The virtual clock stands at each timer's due time: none fired late.
    assert_eq!(sample(&metrics, "statflow_timer_fire_lateness_seconds_bucket{le=\"0.1\"}"), fired.len() as f64);
    assert_eq!(sample(&metrics, "statflow_action_duration_seconds_count{operation=\"start\",outcome=\"ok\"}"), 3.0);
    assert_eq!(sample(&metrics, "statflow_action_duration_seconds_count{operation=\"act\",outcome=\"ok\"}"), 1.0);
    assert!(sample(&metrics, "statflow_commit_duration_seconds_count{outcome=\"ok\"}") >= 1.0);
    assert!(sample(&metrics, "statflow_commit_batch_size_sum") >= 4.0, "at least the starts and the action");
    assert!(sample(&metrics, "statflow_http_requests_total{method=\"POST\",status=\"2xx\"}") >= 5.0);
    // Both organizations the registrations involve, with the counts the API gives.
    for org in ["taian-market", "taian-registry"] {
        let labels = format!("{{organization=\"{org}\",procedure=\"registration\"}}");
        assert_eq!(sample(&metrics, &format!("statflow_instances_open{labels}")), open, "{org}");
        assert_eq!(sample(&metrics, &format!("statflow_instances_overdue{labels}")), overdue, "{org}");
    }
    // Effects of every kind show in both states, zero when there are none.
    assert_eq!(sample(&metrics, "statflow_effects{kind=\"notify\",status=\"failed\"}"), 0.0);
    assert!(metrics.contains_key("statflow_effects{kind=\"anchor\",status=\"pending\"}"));
    let workers: Vec<_> = metrics.iter().filter(|(k, _)| k.starts_with("statflow_worker_up{")).collect();
    assert!(workers.len() >= 3 && workers.iter().all(|(_, up)| **up == 1.0), "{workers:?}");
    assert!(metrics.contains_key("statflow_timers_pending"));
    assert!(
        metrics.iter().any(|(k, n)| k.starts_with("statflow_schedule_runs_total{") && *n >= 1.0),
        "a month of daily schedules ran"
    );

    // The shipped alert rules watch metrics the daemon serves, under their names.
    let rules =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/prometheus/alerts.yaml")).unwrap();
    let mut watched: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("statflow_"))
        .collect();
    watched.dedup();
    assert!(watched.len() >= 5, "{watched:?}");
    for name in watched {
        assert!(
            metrics.keys().any(|k| k.split('{').next() == Some(name)),
            "the rules watch {name}, which is not served"
        );
    }
    if have_promtool() {
        let (_, page) = scrape_text(&app, None);
        let mut lint = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut lint.stdin.take().unwrap(), page.as_bytes()).unwrap();
        let linted = lint.wait_with_output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&linted.stdout), String::from_utf8_lossy(&linted.stderr));
        assert!(linted.status.success(), "promtool check metrics:\n{said}");
    }
}

#[test]
fn metrics_need_their_own_token_when_one_is_set() {
    let app = TestApp::start_configured(
        Backend::Sqlite,
        "2026-03-02T09:00:00+08:00",
        "[metrics]\ntoken = \"scraper-0123456789abcdef\"\n",
    );
    assert_eq!(scrape(&app, None).0, 401, "no token");
    assert_eq!(scrape(&app, Some("scraper-0123456789abcdeX")).0, 401, "a wrong token");
    assert_eq!(scrape(&app, Some(&app.admin)).0, 401, "an administrator's API token is not the scraper's");
    let (status, metrics) = scrape(&app, Some("scraper-0123456789abcdef"));
    assert_eq!(status, 200);
    assert!(metrics.keys().any(|k| k.starts_with("statflow_build_info{")));
    assert!(!app.log().contains("scraper-0123456789abcdef"), "the token is not logged");
}

#[test]
fn metrics_are_served_to_this_machine_only_by_default() {
    // An address of this machine that is not loopback: a request to it comes from it too.
    let hostname = Command::new("hostname").arg("-I").output().unwrap();
    let Some(address) = String::from_utf8_lossy(&hostname.stdout)
        .split_whitespace()
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .map(str::to_owned)
    else {
        eprintln!("this machine has no IPv4 address but loopback: not checked");
        return;
    };
    let dir = common::scratch("metrics-access");
    let db = format!("sqlite://{}/statflow.db?mode=rwc", dir.display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_statflow"))
        .args(["serve", "--listen", "0.0.0.0:0", "--db", &db])
        .env_remove("STATFLOW_CONFIG")
        .env_remove("STATFLOW_DB")
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let status = |host: &str| agent.get(format!("http://{host}:{port}/metrics")).call().unwrap().status().as_u16();
    let (from_loopback, from_the_network) = (status("127.0.0.1"), status(&address));
    child.kill().ok();
    child.wait().ok();
    assert_eq!(from_loopback, 200);
    assert_eq!(from_the_network, 403, "a scrape from {address} is refused");
}

/// An upgrade: a database as the previous release left it (every migration but the newest)
/// is migrated when the daemon starts, and what it held keeps working.
#[test]
fn a_database_of_the_previous_release_is_upgraded_at_start() {
    use sea_orm::ConnectionTrait;
    use sha2::{Digest, Sha256};
    use statflow_migrations::{Migrator, MigratorTrait};

    let dir = common::scratch("upgrade");
    let seed = dir.join("previous.db");
    let token = "sf_issued-by-the-previous-release";
    let hash = format!("{:x}", Sha256::digest(token.as_bytes()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let applied_before = runtime.block_on(async {
        let db = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", seed.display())).await.unwrap();
        let previous = Migrator::migrations().len() as u32 - 1;
        Migrator::up(&db, Some(previous)).await.unwrap();
        // A token as that release stored it.
        let insert = format!(
            "INSERT INTO principals (name, role, organizations, token_hash, created_at) \
             VALUES ('old-admin', 'administrator', '[]', '{hash}', 0)"
        );
        db.execute_unprepared(&insert).await.unwrap();
        let applied = Migrator::get_applied_migrations(&db).await.unwrap().len();
        db.close().await.unwrap();
        applied
    });
    let app = TestApp::start_from_copy(&seed, "2026-03-02T09:00:00+08:00");
    assert_eq!(app.get("/v1/tasks", token).0, 200, "the previous release's token still works");
    let (_, tokens) = app.get("/v1/admin/tokens", token);
    let old = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "old-admin").unwrap().clone();
    assert_eq!((old["expires_at"].clone(), old["expired"].as_bool()), (serde_json::Value::Null, Some(false)));
    start(
        &app,
        token,
        "registration",
        "taian",
        json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}),
    );
    // Every migration is applied now, the newest included.
    let applied_after = runtime.block_on(async {
        let db = sea_orm::Database::connect(&app.db).await.unwrap();
        Migrator::get_applied_migrations(&db).await.unwrap().len()
    });
    assert_eq!((applied_before + 1, applied_after), (Migrator::migrations().len(), Migrator::migrations().len()));
}
