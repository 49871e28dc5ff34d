//! Notifications against a real SMTP server on loopback (aiosmtpd, `tests/fixtures/smtp_sink.py`)
//! with the virtual clock: reminders, the overdue notice and the escalation chain, each
//! exactly once and in order; retries while the server is down; permanent failures recorded
//! without holding up the procedure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::smtp::{config, directory, eventually, is_digest, is_task_notice, Sink};
use common::{scratch, Backend, TestApp};
use serde_json::{json, Value};

/// The daemon on 2026-03-02 09:00, delivering to `sink`, with the registry's clerk at
/// `clerk_email`.
fn daemon(sink: &Sink, clerk_email: &str) -> TestApp {
    daemon_on(Backend::Sqlite, sink, clerk_email)
}

fn daemon_on(backend: Backend, sink: &Sink, clerk_email: &str) -> TestApp {
    let dir = scratch("notify");
    TestApp::start_configured(backend, "2026-03-02T09:00:00+08:00", &config(sink, &directory(&dir, clerk_email)))
}

fn start_registration(app: &TestApp) -> i64 {
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let (status, body) = app.post(
        "/v1/instances",
        &app.admin,
        &json!({"procedure": "registration", "jurisdiction": "taian", "input": input}),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

fn set_clock(app: &TestApp, at: &str) {
    let (status, body) = app.post("/v1/admin/clock", &app.admin, &json!({"set": at}));
    assert_eq!(status, 200, "{body}");
}

/// The subjects of the notices about `instance` (digests list many instances: not these).
fn subjects_for(messages: &[Value], instance: i64) -> Vec<String> {
    messages
        .iter()
        .filter(|m| {
            !is_digest(m) && !is_task_notice(m) && m["text"].as_str().unwrap().contains(&format!("第{instance}号"))
        })
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_late_acceptance_climbs_to_the_regulator_once_and_acting_in_time_stops_it() {
    a_late_acceptance_climbs_to_the_regulator(Backend::Sqlite);
}

#[test]
fn on_the_temporal_engine_a_late_acceptance_climbs_to_the_regulator_once() {
    if !common::temporal_available() {
        return;
    }
    a_late_acceptance_climbs_to_the_regulator(Backend::Temporal);
}

fn a_late_acceptance_climbs_to_the_regulator(backend: Backend) {
    let sink = Sink::start();
    let app = daemon_on(backend, &sink, "zhang@registry.example");
    let late = start_registration(&app);
    let in_time = start_registration(&app);

    // 3 working days from Monday 2 March: due at the end of Thursday 5 March. Reminders go
    // out one working day before and on the day.
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2, "one reminder per instance: {messages:#?}");
    assert_eq!(messages[0]["to"], json!(["zhang@registry.example"]));
    assert_eq!(subjects_for(&messages, late), ["【办理提醒】公共数据登记第1号「登记受理」剩余1个工作日"]);

    // The clerk accepts the second registration in time: nothing more is sent about it.
    let (status, body) =
        app.post(&format!("/v1/instances/{in_time}/actions"), &app.admin, &json!({"action": "accept"}));
    assert_eq!(status, 200, "{body}");

    // Past the deadline (Fri 6 March 00:00), one working day later the supervisor, three
    // working days later (Wed 11 March 00:00) the regulator.
    set_clock(&app, "2026-03-12T09:00:00+08:00");
    eventually(|| subjects_for(&sink.messages(), late).len() >= 5);
    let messages = sink.wait_for(0);
    assert_eq!(
        subjects_for(&messages, late),
        [
            "【办理提醒】公共数据登记第1号「登记受理」剩余1个工作日",
            "【办理提醒】公共数据登记第1号「登记受理」剩余0个工作日",
            "【超期】公共数据登记第1号「登记受理」已超期",
            "【超期上报主管部门】公共数据登记第1号「登记受理」已超期",
            "【超期上报监管方】公共数据登记第1号「登记受理」已超期",
        ],
        "in order, each once: {messages:#?}"
    );
    // The accepted one is now in substantive review, whose own deadline sends its own
    // reminders; of the acceptance step only the reminder sent before accepting remains.
    let acceptance_notices: Vec<String> =
        subjects_for(&messages, in_time).into_iter().filter(|s| s.contains("「登记受理」")).collect();
    assert_eq!(acceptance_notices, ["【办理提醒】公共数据登记第2号「登记受理」剩余1个工作日"]);
    let late_messages: Vec<&Value> =
        messages.iter().filter(|m| m["text"].as_str().unwrap().contains("第1号")).collect();
    let recipients: Vec<&Value> = late_messages.iter().map(|m| &m["to"]).collect();
    assert_eq!(
        recipients,
        [
            &json!(["zhang@registry.example"]),
            &json!(["zhang@registry.example"]),
            &json!(["zhang@registry.example"]),
            &json!(["li@bureau.example"]),
            &json!(["duty@regulator.example"]),
        ]
    );
    for message in &late_messages {
        let text = message["text"].as_str().unwrap();
        assert!(text.contains("依据:《泰安市公共数据开发利用管理办法(试行)》第九条第(二)项"), "{text}");
        assert!(text.contains("办理期限:2026年3月5日(星期四)24:00"), "{text}");
        assert!(text.contains("https://statflow.example/instances/1"), "emails link to the console page: {text}");
        assert!(message["html"].as_str().unwrap().contains("第九条第(二)项"));
    }
    let ids: std::collections::BTreeSet<&str> = messages.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), messages.len(), "every message has its own Message-ID");
    // The sends are recorded in the instance's history.
    let (_, history) = app.get(&format!("/v1/instances/{late}/history"), &app.admin);
    let completed = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "activity_completed" && e["event"]["result"]["message_id"].is_string())
        .count();
    assert_eq!(completed, 5, "{history:#}");
}

#[test]
fn messages_wait_out_an_smtp_outage_and_bad_addresses_are_recorded_without_blocking() {
    messages_wait_out_an_smtp_outage(Backend::Sqlite);
}

#[test]
fn on_the_temporal_engine_messages_wait_out_an_smtp_outage_as_retried_activities() {
    if !common::temporal_available() {
        return;
    }
    messages_wait_out_an_smtp_outage(Backend::Temporal);
}

/// On the Temporal engine the retries are the activity's, in real time (Temporal's retry
/// policy), so the clock move after the outage changes nothing there.
fn messages_wait_out_an_smtp_outage(backend: Backend) {
    let mut sink = Sink::start();
    let app = daemon_on(backend, &sink, "zhang@registry.example");
    let id = start_registration(&app);
    sink.stop();
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    // The reminder fails while the server is down and waits for its retry.
    eventually(|| {
        let (_, body) = app.get("/v1/admin/deliveries?status=pending&per_page=500", &app.admin);
        body["items"].as_array().is_some_and(|d| d.iter().any(|d| d["attempts"].as_i64() >= Some(1)))
    });
    assert!(sink.messages().is_empty());
    sink.resume();
    app.advance("PT10M");
    let messages = sink.wait_for(1);
    assert_eq!(messages.len(), 1, "delivered once after the outage: {messages:#?}");
    assert_eq!(subjects_for(&messages, id), ["【办理提醒】公共数据登记第1号「登记受理」剩余1个工作日"]);

    // A clerk whose address the server refuses: the failure is recorded, shown on the
    // instance, reported to administrators, and the procedure goes on.
    let app = daemon_on(backend, &sink, "bounce@registry.example");
    let id = start_registration(&app);
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    eventually(|| {
        let (_, body) = app.get("/v1/admin/deliveries?status=failed&per_page=500", &app.admin);
        body["items"].as_array().is_some_and(|d| d.iter().any(|d| d["kind"] == "notify"))
    });
    let (_, body) = app.get("/v1/admin/deliveries?status=failed&per_page=500", &app.admin);
    let failed = body["items"].as_array().unwrap().iter().find(|d| d["kind"] == "notify").unwrap();
    assert_eq!(failed["instance"], id);
    assert!(failed["last_error"].as_str().unwrap().contains("550"), "{failed}");
    // Shown on the instance once it has heard of it (a moment after the delivery's record).
    app.wait_for(id, "the failure is shown", |instance| {
        instance["activity_failures"][0]["error"].as_str().is_some_and(|e| e.contains("550"))
    });
    let (status, body) = app.post(&format!("/v1/instances/{id}/actions"), &app.admin, &json!({"action": "accept"}));
    assert_eq!((status, body["step"]["name"].as_str()), (200, Some("substantive_review")), "{body}");
}

#[test]
fn a_cancellation_tells_the_task_holder_why_by_email() {
    let sink = Sink::start();
    let app = daemon(&sink, "zhang@registry.example");
    let id = start_registration(&app);
    let reason = "登记主体撤回申请";
    let (status, body) = app.post(&format!("/v1/instances/{id}/cancel"), &app.admin, &json!({"reason": reason}));
    assert_eq!(status, 200, "{body}");
    let told = app.wait_until("the clerk hears of the cancellation", || {
        sink.messages().into_iter().find(|m| {
            m["to"] == json!(["zhang@registry.example"]) && !subjects_for(std::slice::from_ref(m), id).is_empty()
        })
    });
    assert_eq!(told["subject"], format!("【公共数据登记】办件已撤销(第{id}号)"));
    let text = told["text"].as_str().unwrap();
    assert!(text.lines().any(|line| line.trim_end() == format!("原因:{reason}")), "{text}");
    assert!(!text.contains("办理期限"), "a cancelled instance has no deadline to state: {text}");
}

/// The failed notice of `instance`, once there is one.
fn failed_notice(app: &TestApp, instance: i64) -> Value {
    app.wait_until("the notice fails", || {
        let (_, body) = app.get("/v1/admin/deliveries?status=failed&per_page=500", &app.admin);
        body["items"].as_array()?.iter().find(|d| d["kind"] == "notify" && d["instance"] == instance).cloned()
    })
}

#[test]
fn a_failed_delivery_retried_by_an_administrator_goes_out_once() {
    a_failed_delivery_retried_goes_out_once(Backend::Sqlite);
}

#[test]
fn on_the_temporal_engine_a_failed_delivery_retried_reaches_running_and_finished_instances() {
    if !common::temporal_available() {
        return;
    }
    a_failed_delivery_retried_goes_out_once(Backend::Temporal);
}

fn a_failed_delivery_retried_goes_out_once(backend: Backend) {
    let sink = Sink::start();
    let app = daemon_on(backend, &sink, "bounce@registry.example");
    let (running, finished) = (start_registration(&app), start_registration(&app));
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    let (first, second) = (failed_notice(&app, running), failed_notice(&app, finished));
    // One instance finishes meanwhile (its workflow, on Temporal, ends).
    let reject = json!({"action": "reject", "data": {"reasons": "材料不全"}});
    let (status, body) = app.post(&format!("/v1/instances/{finished}/actions"), &app.admin, &reject);
    assert_eq!((status, body["status"].as_str()), (200, Some("completed")), "{body}");

    // The address is corrected, and the two failed reminders are sent again: one through
    // the API, one through the CLI.
    let contact = json!({"organization": "taian-registry", "name": "张三", "email": "zhang@registry.example", "roles": ["registration_agency"]});
    assert_eq!(app.put("/v1/directory/contacts", &app.admin, &contact).0, 200);
    let (_, listing) = app.get("/v1/directory", &app.admin);
    let bounce =
        listing["contacts"].as_array().unwrap().iter().find(|c| c["email"] == "bounce@registry.example").unwrap()["id"]
            .clone();
    assert_eq!(app.delete(&format!("/v1/directory/contacts/{bounce}"), &app.admin).0, 204);
    let (status, body) = app.post("/v1/admin/deliveries/retry", &app.admin, &json!({"kind": "certificate"}));
    assert_eq!((status, body["field"].as_str()), (422, Some("kind")), "{body}");
    // A dry run lists the failed notices it would send, and sends none.
    let (code, out, err) = common::cli(&app, &app.admin, &["deliveries", "retry", "--kind", "notify", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    // (The rejection's notice to the registrant, who is not in the directory, failed too.)
    let listed = out.lines().filter(|l| l.contains("\tnotify\tfailed\t")).count();
    assert!(out.ends_with(&format!("{listed} would be put back in the queue\n")), "{out}");
    for failed in [&first, &second] {
        assert!(out.lines().any(|l| l.starts_with(&format!("{}\t", failed["id"]))), "{out}");
    }
    assert!(sink.messages().is_empty(), "nothing was sent by the dry run");
    let (status, body) = app.post("/v1/admin/deliveries/retry", &app.admin, &json!({"id": first["id"]}));
    assert_eq!((status, body["retried"].as_i64()), (200, Some(1)), "{body}");
    let (code, out, err) = common::cli(&app, &app.admin, &["deliveries", "retry", &second["id"].to_string()]);
    assert_eq!((code, out.trim()), (0, "1 put back in the queue"), "{err}");

    let messages = sink.wait_for(2);
    let reminders: Vec<&Value> = messages.iter().filter(|m| !is_digest(m) && !is_task_notice(m)).collect();
    assert_eq!(reminders.len(), 2, "each reminder once: {messages:#?}");
    for id in [running, finished] {
        assert_eq!(subjects_for(&messages, id).len(), 1, "instance {id}: {messages:#?}");
    }
    assert!(reminders.iter().all(|m| m["to"] == json!(["zhang@registry.example"])), "{reminders:#?}");
    // Both are done now, and the running instance heard of its reminder's Message-ID.
    eventually(|| {
        let (_, body) = app.get("/v1/admin/deliveries?status=done&per_page=500", &app.admin);
        let done = body["items"].as_array().unwrap();
        [&first, &second].iter().all(|f| done.iter().any(|d| d["id"] == f["id"]))
    });
    eventually(|| {
        let instance = app.instance(running);
        instance["activity_results"].as_object().is_some_and(|r| r.values().any(|v| v["message_id"].is_string()))
    });
    // Retrying what is no longer failed sends nothing.
    let (status, body) = app.post("/v1/admin/deliveries/retry", &app.admin, &json!({"id": first["id"]}));
    assert_eq!((status, body["retried"].as_i64()), (200, Some(0)), "{body}");

    // Each retry is in the audit log, newest first, as are the failures that led to them.
    let (_, audit) = app.get("/v1/audit?action=delivery.retry", &app.admin);
    let targets: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
    let (first_id, second_id) = (first["id"].to_string(), second["id"].to_string());
    assert_eq!(targets, [first_id.as_str(), second_id.as_str(), first_id.as_str()], "{audit}");
    assert_eq!(audit["items"][1]["detail"]["retried"], 1, "{audit}");
    let (_, failures) = app.get(&format!("/v1/audit?action=delivery_failed&target=instance/{running}"), &app.admin);
    let keys: Vec<&Value> = failures["items"].as_array().unwrap().iter().map(|e| &e["detail"]["key"]).collect();
    assert!(keys.contains(&&first["key"]), "the reminder's failure: {failures}");
    assert!(failures["items"].as_array().unwrap().iter().all(|e| e["target"] == format!("instance/{running}")));
    let (code, out, err) = common::cli(&app, &app.admin, &["audit", "--action", "delivery.", "--limit", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| l.contains("\tdelivery.retry\t")), "{out}");
}

#[test]
fn a_daemon_killed_between_sending_and_acknowledging_resends_the_same_message_id() {
    let sink = Sink::start();
    // The server keeps the message, then holds its answer long enough for the kill.
    std::fs::write(sink.dir.join(".hold"), "30").unwrap();
    // The task's notice would be held by the server too; this is about the reminder.
    let dir = scratch("notify");
    let config = format!("task_notices = false\n{}", config(&sink, &directory(&dir, "zhang@registry.example")));
    let app = TestApp::start_configured(Backend::Sqlite, "2026-03-02T09:00:00+08:00", &config);
    // The clerk's daily digests would be held by the server too; this is about the reminder.
    let (code, _, err) = common::cli(&app, &app.admin, &["schedules", "disable", "daily_digest"]);
    assert_eq!(code, 0, "{err}");
    let id = start_registration(&app);
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    eventually(|| sink.messages().len() == 1);
    app.crash_and_restart("2026-03-04T10:00:00+08:00");
    std::fs::remove_file(sink.dir.join(".hold")).unwrap();

    // Not acknowledged, so sent again after the restart, as the same message.
    app.advance("PT10M");
    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(messages[0]["message_id"], messages[1]["message_id"]);
    assert_eq!(subjects_for(&messages, id), ["【办理提醒】公共数据登记第1号「登记受理」剩余1个工作日"; 2]);
    eventually(|| {
        let (_, body) = app.get("/v1/admin/deliveries?status=done&per_page=500", &app.admin);
        body["items"].as_array().is_some_and(|d| d.iter().filter(|d| d["kind"] == "notify").count() == 1)
    });
}

/// The webhook receiver (`tests/fixtures/webhook_sink.py`), answering the first `failures`
/// requests with 500; it checks signatures with the secret `s3cret`.
struct Receiver {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    fn start(failures: u32) -> Receiver {
        let dir = scratch("webhook");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/webhook_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([&port.to_string(), dir.to_str().unwrap(), "s3cret", &failures.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Receiver { port, dir, child: Some(child) }
    }

    /// The daemon's `[webhook]` section for this receiver.
    fn config(&self) -> String {
        format!("[webhook]\nurl = \"http://127.0.0.1:{}/statflow\"\nsecret = \"s3cret\"\n", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The requests the webhook receiver got, in order.
fn webhook_requests(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("requests.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn escalations_to_the_regulator_reach_the_webhook_signed_and_retried_after_500() {
    let sink = Sink::start();
    let mut receiver = Receiver::start(2);
    let receiver_dir = receiver.dir.clone();
    let dir = scratch("notify");
    let app = TestApp::start_configured(
        Backend::Sqlite,
        "2026-03-02T09:00:00+08:00",
        &format!("{}{}", config(&sink, &directory(&dir, "zhang@registry.example")), receiver.config()),
    );
    let id = start_registration(&app);
    // Due 03-05 24:00; the regulator is told after 3 working days overdue (03-11 00:00).
    set_clock(&app, "2026-03-11T10:00:00+08:00");
    // The first two answers are 500: the event is sent again, with backoff, until accepted.
    eventually(|| {
        app.advance("PT1M");
        webhook_requests(&receiver_dir).len() >= 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    app.advance("PT1H");
    std::thread::sleep(Duration::from_millis(500));
    let requests = webhook_requests(&receiver_dir);
    receiver.stop();
    assert_eq!(requests.len(), 3, "accepted on the third attempt and not sent again: {requests:#?}");
    assert!(requests.iter().all(|r| r["valid"] == true), "every signature verifies: {requests:#?}");
    assert!(requests.iter().all(|r| r["delivery"] == requests[0]["delivery"]), "one delivery id");
    let event = &requests[0]["body"];
    assert_eq!(event["event"], "escalation");
    assert_eq!(event["instance"], id);
    assert_eq!(event["title"], "超期上报监管方");
    assert!(event["basis"].as_str().unwrap().contains("第九条"), "{event}");
    let (_, body) = app.get("/v1/admin/deliveries?status=done&per_page=500", &app.admin);
    let webhook = body["items"].as_array().unwrap().iter().find(|d| d["kind"] == "webhook").cloned().unwrap();
    assert_eq!(webhook["attempts"], 2, "two failed attempts before success: {webhook}");
    // The regulator's duty address got the same escalation by email.
    let messages = sink.wait_for(1);
    assert!(messages
        .iter()
        .any(|m| m["to"][0] == "duty@regulator.example"
            && m["subject"].as_str().unwrap().starts_with("【超期上报监管方】")));
}

#[test]
fn the_directory_is_managed_through_the_api_and_cli_and_notices_follow_it() {
    // No SMTP configured: messages go to the mail spool.
    let app = TestApp::start(Backend::Sqlite, "2026-03-02T09:00:00+08:00");
    let cli = |args: &[&str]| common::cli(&app, &app.admin, args);
    let broken = app.dir.join("broken.toml");
    std::fs::write(&broken, "[organizations.a]\nname = \"A\"\nemial = \"x@a.example\"\n").unwrap();
    let (code, _, err) = cli(&["directory", "load", broken.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("broken.toml:3:") && err.contains("emial"), "{err}");

    let file = directory(&app.dir, "zhang@registry.example");
    let (code, out, err) = cli(&["directory", "load", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "loaded 3 organizations and 2 contacts");
    let (_, out, _) = cli(&["directory", "show"]);
    assert!(
        out.contains("taian-registry\t泰安市数据登记机构\tduty@registry.example\tsupervisor taian-bureau"),
        "{out}"
    );
    assert!(out.contains("张三 <zhang@registry.example>\tregistration_agency"), "{out}");

    // Bad entries are refused with the field at fault, and change nothing.
    let contact = json!({"organization": "taian-registry", "name": "王五", "email": "wang.registry.example", "roles": ["registration_agency"]});
    let (status, body) = app.put("/v1/directory/contacts", &app.admin, &contact);
    assert_eq!((status, body["field"].as_str()), (422, Some("email")), "{body}");
    let mut contact = contact;
    contact["email"] = json!("wang@registry.example");
    contact["organization"] = json!("nowhere");
    let (status, body) = app.put("/v1/directory/contacts", &app.admin, &contact);
    assert_eq!((status, body["field"].as_str()), (422, Some("organization")), "{body}");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    assert_eq!(app.put("/v1/directory/contacts", &clerk, &contact).0, 403);

    // The clerk is replaced: 张三 leaves, 王五 takes the role; the reminder goes to 王五.
    contact["organization"] = json!("taian-registry");
    assert_eq!(app.put("/v1/directory/contacts", &app.admin, &contact).0, 200);
    let (_, listing) = app.get("/v1/directory", &app.admin);
    let zhang = listing["contacts"].as_array().unwrap().iter().find(|c| c["name"] == "张三").unwrap()["id"].clone();
    assert_eq!(app.delete(&format!("/v1/directory/contacts/{zhang}"), &app.admin).0, 204);
    let id = start_registration(&app);
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    eventually(|| !subjects_for(&app.spooled_mail(), id).is_empty());
    let mail: Vec<Value> = app.spooled_mail().into_iter().filter(|m| !is_digest(m) && !is_task_notice(m)).collect();
    assert_eq!(subjects_for(&mail, id), ["【办理提醒】公共数据登记第1号「登记受理」剩余1个工作日"]);
    assert_eq!(mail[0]["to"], json!(["wang@registry.example"]));
}

#[test]
fn the_webhook_hears_of_an_escalation_even_when_its_email_is_refused() {
    the_webhook_hears_of_an_escalation(Backend::Sqlite);
}

#[test]
fn on_the_temporal_engine_the_webhook_call_is_an_activity_of_its_own() {
    if !common::temporal_available() {
        return;
    }
    the_webhook_hears_of_an_escalation(Backend::Temporal);
}

fn the_webhook_hears_of_an_escalation(backend: Backend) {
    let sink = Sink::start();
    let receiver = Receiver::start(0);
    let dir = scratch("notify");
    let file = directory(&dir, "zhang@registry.example");
    let text = std::fs::read_to_string(&file).unwrap().replace("duty@regulator.example", "bounce@regulator.example");
    std::fs::write(&file, text).unwrap();
    let app = TestApp::start_configured(
        backend,
        "2026-03-02T09:00:00+08:00",
        &format!("{}{}", config(&sink, &file), receiver.config()),
    );
    let id = start_registration(&app);
    set_clock(&app, "2026-03-11T10:00:00+08:00");
    eventually(|| !webhook_requests(&receiver.dir).is_empty());
    let requests = webhook_requests(&receiver.dir);
    assert_eq!(requests[0]["body"]["instance"], id);
    assert_eq!(requests[0]["body"]["title"], "超期上报监管方");
    eventually(|| {
        let (_, body) = app.get("/v1/admin/deliveries?status=failed&per_page=500", &app.admin);
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "escalate" && d["last_error"].as_str().unwrap().contains("550"))
    });
}

/// A registry with two clerks who hold the acceptance role (张三 and 王五, who sign in as
/// `zhang` and `wang`) and a bureau whose director holds no task.
fn digest_directory(dir: &Path) -> PathBuf {
    let path = directory(dir, "zhang@registry.example");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("roles = [\"registration_agency\"]\n", "roles = [\"registration_agency\"]\nprincipal = \"zhang\"\n");
    text.push_str(
        "\n[[contacts]]\norganization = \"taian-registry\"\nname = \"王五\"\nemail = \"wang@registry.example\"\nroles = [\"registration_agency\"]\nprincipal = \"wang\"\n",
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The digests received by `address`, subject and text, by their day (deliveries to
/// different recipients and days run side by side, so they may arrive in any order).
fn digests_to(sink: &Sink, address: &str) -> Vec<(String, String)> {
    let mut digests: Vec<(String, String)> = sink
        .digests()
        .iter()
        .filter(|m| m["to"] == json!([address]))
        .map(|m| (m["subject"].as_str().unwrap().to_owned(), m["text"].as_str().unwrap().replace("\r\n", "\n")))
        .collect();
    // "【每日待办】2026年5月9日(星期六):…" → (2026, 5, 9)
    let day = |subject: &str| -> Vec<u32> {
        let date = subject.strip_prefix("【每日待办】").unwrap();
        date.split(['年', '月', '日']).take(3).map(|n| n.parse().unwrap()).collect()
    };
    digests.sort_by_key(|(subject, _)| day(subject));
    digests
}

#[test]
fn each_clerk_gets_one_digest_per_working_day_listing_overdue_and_due_soon_tasks() {
    each_clerk_gets_one_digest_per_working_day(Backend::Sqlite);
}

/// The same on PostgreSQL, whose grouped counts and ordering the digest relies on too.
#[test]
fn each_clerk_gets_one_digest_per_working_day_on_postgresql() {
    if common::postgres_url().is_none() {
        eprintln!("STATFLOW_TEST_POSTGRES_URL is not set: not run on PostgreSQL");
        return;
    }
    each_clerk_gets_one_digest_per_working_day(Backend::Postgres);
}

fn each_clerk_gets_one_digest_per_working_day(backend: Backend) {
    let sink = Sink::start();
    let dir = scratch("notify");
    // Thursday 30 April 2026; 1–5 May is the Labour Day holiday and Saturday 9 May is an
    // adjusted working day.
    let app = TestApp::start_configured(backend, "2026-04-30T07:00:00+08:00", &config(&sink, &digest_directory(&dir)));
    let shared = start_registration(&app);
    let claimed = start_registration(&app);
    // 王五 claims the second: it leaves 张三's digest and is marked as his in 王五's.
    let wang = app.token("wang", "staff", &["taian-registry"]);
    let (_, inbox) = app.get("/v1/tasks", &wang);
    let task = inbox["items"].as_array().unwrap().iter().find(|t| t["instance"] == claimed).unwrap()["id"].clone();
    let (status, body) = app.post(&format!("/v1/tasks/{}/claim", task.as_str().unwrap()), &wang, &json!({}));
    assert_eq!(status, 200, "{body}");

    // Acceptance takes 3 working days: 6, 7 and 8 May, so due at the end of Friday 8 May.
    set_clock(&app, "2026-05-09T09:00:00+08:00");
    eventually(|| digests_to(&sink, "wang@registry.example").len() >= 5);
    sink.wait_for(0);
    let zhang = digests_to(&sink, "zhang@registry.example");
    let subjects: Vec<&str> = zhang.iter().map(|(subject, _)| subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "【每日待办】2026年4月30日(星期四):待办1件",
            "【每日待办】2026年5月6日(星期三):待办1件,2个工作日内到期1件",
            "【每日待办】2026年5月7日(星期四):待办1件,2个工作日内到期1件",
            "【每日待办】2026年5月8日(星期五):待办1件,2个工作日内到期1件",
            "【每日待办】2026年5月9日(星期六):待办1件,已超期1件",
        ],
        "working days only, the holiday skipped and the adjusted Saturday kept"
    );
    let line = |n: i64, rest: &str| {
        format!("公共数据登记 第{n}号「形式审查并受理登记申请」 期限:2026年5月8日(星期五)24:00 {rest}")
    };
    assert!(
        zhang[0].1.contains("其他待办(1件)") && zhang[0].1.contains(&line(shared, "剩余3个工作日")),
        "{}",
        zhang[0].1
    );
    assert!(zhang[1].1.contains("一、2个工作日内到期(1件)") && zhang[1].1.contains(&line(shared, "剩余2个工作日")));
    assert!(zhang[3].1.contains(&line(shared, "剩余0个工作日")), "{}", zhang[3].1);
    assert!(zhang[4].1.contains("一、已超过办理期限(1件)") && zhang[4].1.contains(&line(shared, "已超期1个工作日")));
    assert!(zhang.iter().all(|(_, text)| !text.contains(&format!("第{claimed}号"))), "claimed by someone else");
    assert!(zhang[4].1.contains(&format!("https://statflow.example/instances/{shared}")));
    assert!(zhang[4].1.contains("https://statflow.example/inbox"), "the digest links to the console's inbox");

    let wang_digests = digests_to(&sink, "wang@registry.example");
    assert_eq!(wang_digests.len(), 5);
    assert_eq!(wang_digests[3].0, "【每日待办】2026年5月8日(星期五):待办2件,2个工作日内到期2件");
    assert!(wang_digests[3].1.contains(&line(claimed, "剩余0个工作日 〔已由本人认领〕")), "{}", wang_digests[3].1);
    assert!(wang_digests[3].1.contains(&line(shared, "剩余0个工作日\n")), "{}", wang_digests[3].1);
    assert!(digests_to(&sink, "li@bureau.example").is_empty(), "no task, no digest");
    // Digests belong to no instance; they are delivered (and recorded) in the clock's time.
    let (_, body) = app.get("/v1/admin/deliveries?status=done&per_page=500", &app.admin);
    let digests: Vec<&Value> = body["items"].as_array().unwrap().iter().filter(|d| d["kind"] == "digest").collect();
    assert_eq!(digests.len(), 10, "{body:#}");
    for digest in digests {
        assert_eq!(digest["instance"], Value::Null);
        assert!(digest["key"].as_str().unwrap().starts_with("digest/2026-0"), "{digest}");
        assert!(digest["done_at"].as_str().unwrap() >= "2026-04-30T08:00", "{digest}");
        assert!(digest["done_at"].as_str().unwrap() <= "2026-05-09T09:00:00+08:00", "{digest}");
    }

    let (_, schedule) = app.get("/v1/schedules/daily_digest", &app.admin);
    let skipped: Vec<&Value> =
        schedule["runs"]["items"].as_array().unwrap().iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 5, "1–5 May: {schedule:#}");
    assert!(skipped.iter().all(|r| r["result"]["reason"].as_str().unwrap().contains("劳动节")), "{schedule:#}");

    // Down over Sunday, back on Monday 11 May at 10:00: today's digest is caught up, once.
    app.crash_and_restart("2026-05-11T10:00:00+08:00");
    app.advance("PT1H");
    eventually(|| digests_to(&sink, "zhang@registry.example").len() >= 6);
    // Back only on Wednesday 13 May at 07:00, having missed Tuesday's: that one is stale and
    // skipped; Wednesday's goes out at 08:00.
    app.crash_and_restart("2026-05-13T07:00:00+08:00");
    app.advance("PT2H");
    eventually(|| digests_to(&sink, "zhang@registry.example").len() >= 7);
    sink.wait_for(0);
    let subjects: Vec<String> = digests_to(&sink, "zhang@registry.example").into_iter().map(|(s, _)| s).collect();
    assert!(subjects[5].starts_with("【每日待办】2026年5月11日(星期一)"), "{subjects:#?}");
    assert!(subjects[6].starts_with("【每日待办】2026年5月13日(星期三)"), "{subjects:#?}");
    assert_eq!(subjects.len(), 7, "{subjects:#?}");
    let ids: std::collections::BTreeSet<String> =
        sink.digests().iter().map(|m| m["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), sink.digests().len(), "one Message-ID per contact and day");
    let (_, schedule) = app.get("/v1/schedules/daily_digest", &app.admin);
    let tuesday =
        schedule["runs"]["items"].as_array().unwrap().iter().find(|r| r["fire_at"] == "2026-05-12T08:00:00+08:00");
    assert_eq!(tuesday.map(|r| r["status"].clone()), Some(json!("skipped")), "{schedule:#}");
}

#[test]
fn an_agency_feeds_its_own_system_every_reminder_and_escalation_through_the_webhook() {
    let sink = Sink::start();
    let receiver = Receiver::start(0);
    let dir = scratch("notify");
    let app = TestApp::start_configured(
        Backend::Sqlite,
        "2026-03-02T09:00:00+08:00",
        &format!(
            "{}{}events = [\"notice\", \"reminder\", \"escalation\"]\n",
            config(&sink, &directory(&dir, "zhang@registry.example")),
            receiver.config()
        ),
    );
    let id = start_registration(&app);
    set_clock(&app, "2026-03-12T09:00:00+08:00");
    eventually(|| webhook_requests(&receiver.dir).iter().filter(|r| r["body"]["event"] == "escalation").count() >= 3);
    std::thread::sleep(Duration::from_millis(1000));
    let requests = webhook_requests(&receiver.dir);
    assert!(requests.iter().all(|r| r["valid"] == true), "every signature verifies: {requests:#?}");
    let events: Vec<(String, Value, String)> = requests
        .iter()
        .map(|r| &r["body"])
        .filter(|body| body["instance"] == id && body["step"] == "acceptance")
        .map(|body| {
            (
                body["event"].as_str().unwrap().to_owned(),
                body["level"].clone(),
                body["to"][0]["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("reminder".to_owned(), Value::Null, "registration_agency".to_owned()),
            ("reminder".to_owned(), Value::Null, "registration_agency".to_owned()),
            ("escalation".to_owned(), json!(1), "registration_agency".to_owned()),
            ("escalation".to_owned(), json!(2), "supervisor".to_owned()),
            ("escalation".to_owned(), json!(3), "regulator".to_owned()),
        ],
        "each once, in order: {requests:#?}"
    );
    let keys: std::collections::BTreeSet<&str> = requests.iter().map(|r| r["delivery"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), requests.len(), "one delivery per message");
    // The emails went out as well.
    assert_eq!(subjects_for(&sink.wait_for(5), id).len(), 5);
}

#[test]
fn a_burst_of_messages_keeps_to_the_connections_the_mail_server_allows() {
    let sink = Sink::start();
    // Each message takes the server a second, so sends overlap if they may.
    std::fs::write(sink.dir.join(".hold"), "1").unwrap();
    let dir = scratch("notify");
    let app = TestApp::start_configured(
        Backend::Sqlite,
        "2026-03-02T09:00:00+08:00",
        &format!("{}max_connections = 2\n", config(&sink, &directory(&dir, "zhang@registry.example"))),
    );
    let ids: Vec<i64> = (0..6).map(|_| start_registration(&app)).collect();
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    eventually(|| ids.iter().all(|id| !subjects_for(&sink.messages(), *id).is_empty()));
    let most = std::fs::read_to_string(sink.dir.join(".most_at_once")).unwrap();
    assert_eq!(most, "2", "six reminders and two digests, never more than two at once");
}

/// Nobody waits for the next morning's digest: a task opened is told at once to the contacts
/// holding its role in its organization, linking to its console page, and each task once.
#[test]
fn a_new_task_is_told_at_once_to_whoever_holds_its_role() {
    let sink = Sink::start();
    let app = daemon(&sink, "zhang@registry.example");
    let id = start_registration(&app);
    eventually(|| !sink.task_notices().is_empty());
    let notices = sink.task_notices();
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(notices[0]["to"], json!(["zhang@registry.example"]));
    assert_eq!(notices[0]["subject"], format!("【公共数据登记】您有一项新的待办任务(第{id}号)"));
    let text = notices[0]["text"].as_str().unwrap();
    assert!(text.contains(&format!("https://statflow.example/instances/{id}")), "{text}");
    assert!(text.contains("登记受理"), "it names the step: {text}");

    let (status, body) = app.post(&format!("/v1/instances/{id}/actions"), &app.admin, &json!({"action": "accept"}));
    assert_eq!(status, 200, "{body}");
    eventually(|| sink.task_notices().len() >= 2);
    std::thread::sleep(Duration::from_millis(1000));
    let notices = sink.task_notices();
    assert_eq!(notices.len(), 2, "one notice per task opened: {notices:#?}");
    assert!(notices[1]["text"].as_str().unwrap().contains("登记审查"));
    // The notice is the engine's own: the instance's history does not wait for it.
    let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    let reported =
        history["events"].as_array().unwrap().iter().filter(|e| e["event"]["type"] == "activity_completed").count();
    assert_eq!(reported, 0, "{history:#}");
}

#[test]
fn task_notices_can_be_turned_off() {
    let sink = Sink::start();
    let dir = scratch("notify");
    let config = format!("task_notices = false\n{}", config(&sink, &directory(&dir, "zhang@registry.example")));
    let app = TestApp::start_configured(Backend::Sqlite, "2026-03-02T09:00:00+08:00", &config);
    start_registration(&app);
    // The reminder a day before the deadline comes; no task notice came before it.
    set_clock(&app, "2026-03-04T10:00:00+08:00");
    sink.wait_for(1);
    assert!(sink.task_notices().is_empty(), "{:#?}", sink.task_notices());
}
