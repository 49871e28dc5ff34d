//! Several daemons (nodes) on one PostgreSQL database, against a real SMTP server: the API is
//! served by all of them, the work that answers no request by whichever holds the work
//! lease, and killing or pausing nodes loses nothing and does nothing twice.
//!
//! Needs `STATFLOW_TEST_POSTGRES_URL` (CI's PostgreSQL); without it these tests say so and
//! pass.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use common::smtp::{config, directory, Sink};
use common::{read_mail, scratch, start, Backend, TestApp, LEASE};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};

const START: &str = "2026-03-02T09:00:00+08:00";
const CLERK: &str = "zhang@registry.example";

fn postgres_configured() -> bool {
    let configured = common::postgres_url().is_some();
    if !configured {
        eprintln!("skipped: STATFLOW_TEST_POSTGRES_URL is not set");
    }
    configured
}

/// `count` nodes on one fresh database, delivering to `sink`.
fn nodes(count: usize, sink: &Sink) -> Vec<TestApp> {
    let dir = scratch("cluster");
    let first = TestApp::start_configured(Backend::Postgres, START, &config(sink, &directory(&dir, CLERK)));
    let mut nodes: Vec<TestApp> = (1..count).map(|_| first.beside()).collect();
    nodes.insert(0, first);
    nodes
}

fn lease(node: &TestApp) -> Value {
    let (status, ready) = node.get("/readyz", "");
    assert_eq!(status, 200, "{ready}");
    ready["lease"].clone()
}

/// Waits until exactly one of the running `nodes` holds the lease; answers which.
fn holder(nodes: &[&TestApp]) -> usize {
    let deadline = Instant::now() + LEASE * 5;
    loop {
        let held: Vec<usize> = (0..nodes.len()).filter(|i| lease(nodes[*i])["held"] == true).collect();
        assert!(held.len() <= 1, "two nodes hold the lease at once: {held:?}");
        if let [one] = held[..] {
            return one;
        }
        assert!(Instant::now() < deadline, "no node took the lease");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the metric line `name` on `node`'s `/metrics`.
fn metric(node: &TestApp, name: &str) -> Option<f64> {
    let (status, body, _) = node.request("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap_or_default().to_owned();
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).unwrap()
}

/// Runs `sql` on the nodes' database and answers its first column as text, row by row.
fn query(node: &TestApp, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = Database::connect(node.db.as_str()).await.unwrap();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
    })
}

/// Moves the shared clock on `node` without waiting for the answer (the node may be killed
/// in the middle of it).
fn move_clock_in_background(node: &TestApp, to: &str) -> std::thread::JoinHandle<()> {
    let (url, token, body) = (format!("{}/v1/admin/clock", node.base()), node.admin.clone(), json!({"set": to}));
    std::thread::spawn(move || {
        let _ = ureq::post(&url).header("Authorization", format!("Bearer {token}")).send_json(&body);
    })
}

fn history(node: &TestApp, id: i64) -> Value {
    let (status, history) = node.get(&format!("/v1/instances/{id}/history"), &node.admin);
    assert_eq!(status, 200, "{history}");
    history
}

#[test]
fn three_nodes_keep_every_guarantee_through_twenty_kills() {
    if !postgres_configured() {
        return;
    }
    let sink = Sink::start();
    let nodes = nodes(3, &sink);
    let clerk = nodes[0].token("clerk", "staff", &["taian-registry"]);
    let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
    let mut started: Vec<i64> = Vec::new();
    let mut acted: Vec<(i64, &str)> = Vec::new();
    let mut clock = at(START);
    let kills = 20;
    for round in 0..kills {
        // Every other round the lease's holder dies, a while after it took the lease over and
        // in the middle of moving the clock; the others, some other node.
        let running: Vec<&TestApp> = nodes.iter().collect();
        let victim = if round % 2 == 0 { holder(&running) } else { round % 3 };
        if round % 2 == 0 {
            std::thread::sleep(Duration::from_millis(300 + 200 * (round as u64 % 6)));
        }
        let survivors: Vec<&TestApp> = (0..3).filter(|i| *i != victim).map(|i| &nodes[i]).collect();
        clock += chrono::Duration::hours(12);
        let moving = move_clock_in_background(&nodes[victim], &clock.to_rfc3339());
        std::thread::sleep(Duration::from_millis(20 * (round as u64 % 5)));
        nodes[victim].crash();
        moving.join().unwrap();
        // Meanwhile the others take requests: new registrations, and acceptance of the ones
        // started two rounds ago (the rest are left to run late and escalate).
        for node in &survivors {
            started.push(start(node, &clerk, "registration", "taian", input.clone()));
            let older = &started[..started.len().saturating_sub(4)];
            let waiting = older.iter().copied().find(|id| !acted.iter().any(|(acted_on, _)| acted_on == id));
            if let Some(id) = waiting.filter(|_| round % 2 == 1) {
                let (status, body) =
                    node.post(&format!("/v1/instances/{id}/actions"), &clerk, &json!({"action": "accept"}));
                assert_eq!(status, 200, "{body}");
                acted.push((id, "accept"));
            }
        }
        // The clock move the victim never answered is made again on a survivor.
        let (status, body) =
            survivors[0].post("/v1/admin/clock", &survivors[0].admin, &json!({"set": clock.to_rfc3339()}));
        assert_eq!(status, 200, "{body}");
        nodes[victim].restart(START);
    }

    // Settle: one last move, then wait until nothing waits to be delivered.
    let running: Vec<&TestApp> = nodes.iter().collect();
    let settler = running[holder(&running)];
    clock += chrono::Duration::days(7);
    let (status, body) = settler.post("/v1/admin/clock", &settler.admin, &json!({"set": clock.to_rfc3339()}));
    assert_eq!(status, 200, "{body}");
    settler.wait_until("every effect is carried out", || {
        let pending = query(settler, "SELECT CAST(COUNT(*) AS TEXT) FROM outbox WHERE status = 'pending'");
        (pending == ["0"]).then_some(())
    });

    // Every acknowledged start and action is in its history, whose chain and replay hold.
    let mut fired_timers = 0;
    for id in &started {
        let history = history(settler, *id);
        assert_eq!(history["chain_intact"], true, "instance {id}");
        assert_eq!(history["checks"]["replay"]["verdict"], "passed", "instance {id}: {}", history["checks"]);
        let events = history["events"].as_array().unwrap();
        let actions: Vec<&str> = events
            .iter()
            .filter(|e| e["event"]["type"] == "action")
            .filter_map(|e| e["event"]["action"].as_str())
            .collect();
        for (_, action) in acted.iter().filter(|(acted_on, _)| acted_on == id) {
            assert!(
                actions.contains(action),
                "instance {id}: the acknowledged `{action}` is in its history: {actions:?}"
            );
        }
        // Each timer fired once (a step entered anew arms timers under new names).
        let timers: Vec<&str> = events
            .iter()
            .filter(|e| e["event"]["type"] == "timer_fired")
            .map(|e| e["event"]["timer"].as_str().unwrap())
            .collect();
        let distinct: BTreeSet<&str> = timers.iter().copied().collect();
        assert_eq!(distinct.len(), timers.len(), "instance {id}: a timer fired twice: {timers:?}");
        fired_timers += timers.len();
    }
    assert!(fired_timers > started.len(), "the clock moves fired timers: {fired_timers}");
    let due_left = query(
        settler,
        &format!("SELECT CAST(COUNT(*) AS TEXT) FROM timers WHERE due_at <= {}", clock.timestamp_millis()),
    );
    assert_eq!(due_left, ["0"], "every due timer fired");

    // Every message went out; a Message-ID came twice at most (a send killed before it was
    // acknowledged, sent again by the node that took over).
    let messages = read_mail(&sink.dir);
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        *by_id.entry(message["message_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let sent = query(
        settler,
        "SELECT CAST(COUNT(*) AS TEXT) FROM outbox WHERE status = 'done' AND kind IN ('notify', 'escalate', 'digest', 'task_notice')",
    );
    assert_eq!(by_id.len().to_string(), sent[0], "one Message-ID per message sent");
    let repeated: Vec<(&String, &usize)> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.iter().all(|(_, n)| **n == 2), "{repeated:?}");
    // At most one pass of the holder's was cut off by each kill.
    let bound = kills * statflow::engine::embedded::delivery::SHARED_BATCH as usize;
    assert!(repeated.len() <= bound, "{} repeated of {}: {repeated:?}", repeated.len(), by_id.len());
    eprintln!(
        "{} instances, {fired_timers} timers fired, {} messages ({} sent twice)",
        started.len(),
        by_id.len(),
        repeated.len()
    );
    // The clerk's digest came once a working day. A digest sent again after a kill carries the
    // same Message-ID (bounded above), so the messages are counted once per Message-ID.
    let mut digests: BTreeMap<&str, &str> = BTreeMap::new();
    for message in messages.iter().filter(|m| common::smtp::is_digest(m)) {
        digests.insert(message["message_id"].as_str().unwrap(), message["subject"].as_str().unwrap());
    }
    let days: BTreeSet<&str> = digests.values().map(|subject| subject.split(':').next().unwrap()).collect();
    assert!(!digests.is_empty() && days.len() == digests.len(), "{digests:#?}");
    // Each schedule fire time ran once, and every run finished.
    let runs = query(settler, "SELECT schedule_id || ' ' || CAST(fire_at AS TEXT) || ' ' || status FROM schedule_runs");
    assert!(!runs.is_empty());
    assert!(runs.iter().all(|run| !run.ends_with(" running")), "{runs:?}");
}

fn signal(node: &TestApp, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &node.pid().to_string()]).status().unwrap();
    assert!(sent.success());
}

#[test]
fn a_paused_holder_loses_its_work_and_does_not_finish_it_when_it_resumes() {
    if !postgres_configured() {
        return;
    }
    let mut sink = Sink::start();
    let nodes = nodes(2, &sink);
    let both: Vec<&TestApp> = nodes.iter().collect();
    let holding = holder(&both);
    let (paused, standby) = (&nodes[holding], &nodes[1 - holding]);
    let epoch = lease(paused)["epoch"].as_i64().unwrap();
    // The metrics say the same as readiness.
    assert_eq!(metric(paused, "statflow_work_lease_held"), Some(1.0));
    assert_eq!(metric(standby, "statflow_work_lease_held"), Some(0.0));
    // A reminder waits to be sent while the mail server is down: the holder keeps it.
    sink.stop();
    let id = start(
        standby,
        &standby.admin,
        "registration",
        "taian",
        json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}),
    );
    let (status, body) = standby.post("/v1/admin/clock", &standby.admin, &json!({"set": "2026-03-04T10:00:00+08:00"}));
    assert_eq!(status, 200, "{body}");
    standby.wait_until("the holder tried the reminder", || {
        let (_, body) = standby.get("/v1/admin/deliveries?status=pending&per_page=500", &standby.admin);
        body["items"].as_array()?.iter().find(|d| d["instance"] == id && d["attempts"].as_i64() >= Some(1)).cloned()
    });

    // Paused past its lease: the other node takes the work over and sends the reminder.
    signal(paused, "STOP");
    let began = Instant::now();
    standby.wait_until("the standby takes the lease", || (lease(standby)["held"] == true).then_some(()));
    let took = began.elapsed();
    assert!(took >= LEASE / 2, "taken over after the lease ran out, not before: {took:?}");
    let taken = lease(standby)["epoch"].as_i64().unwrap();
    assert!(taken > epoch, "a takeover raises the epoch: {epoch} then {taken}");
    assert_eq!(metric(standby, "statflow_work_lease_held"), Some(1.0));
    assert_eq!(metric(standby, "statflow_work_lease_taken_total"), Some(1.0));
    sink.resume();
    // An hour on, the reminder's next attempt is due.
    let (status, body) = standby.post("/v1/admin/clock", &standby.admin, &json!({"set": "2026-03-04T11:00:00+08:00"}));
    assert_eq!(status, 200, "{body}");
    let reminder = |messages: &[Value]| {
        messages.iter().filter(|m| m["text"].as_str().unwrap().contains(&format!("第{id}号"))).count()
    };
    standby.wait_until("the reminder is sent", || (reminder(&sink.messages()) >= 1).then_some(()));

    // Resumed, the paused node knows at once that the lease is no longer its: it stands by,
    // and sends nothing more.
    signal(paused, "CONT");
    assert_eq!(lease(paused)["held"], false, "{}", lease(paused));
    std::thread::sleep(LEASE * 2);
    assert_eq!(reminder(&sink.messages()), 1, "the reminder went out once");
    let both: Vec<&TestApp> = nodes.iter().collect();
    assert_eq!(holder(&both), 1 - holding, "the lease stays with the node that took it");
    assert!(paused.log().contains("another node holds the work lease now"), "{}", paused.log());
}
