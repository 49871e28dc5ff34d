//! Crash safety: a client starts 1,000 registrations and acts on them while the daemon is
//! killed with SIGKILL at unpredictable moments. Afterwards every acknowledged start and
//! action is there, no instance is duplicated, every hash chain verifies, and the timers of
//! every instance still fire.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Backend, TestApp};
use serde_json::json;

const INSTANCES: usize = 1000;
/// On the Temporal engine each call is a round trip to the Temporal server and each timer
/// an update: fewer instances keep the test as short, with as many crashes.
const INSTANCES_ON_TEMPORAL: usize = 200;
const CRASHES: usize = 4;
const CLOCK: &str = "2026-03-02T09:00:00+08:00";

/// Milliseconds to wait before the next kill: varies from run to run.
fn unpredictable_pause() -> Duration {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    Duration::from_millis(150 + u64::from(nanos % 450))
}

fn crash_while_a_client_works(backend: Backend) {
    let instances = match backend {
        Backend::Temporal => INSTANCES_ON_TEMPORAL,
        Backend::Sqlite | Backend::Postgres => INSTANCES,
    };
    let app = TestApp::start(backend, CLOCK);
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let done = AtomicBool::new(false);
    // marker → instance id, for starts the daemon acknowledged; ids whose `accept` it acknowledged.
    let (started, accepted) = std::thread::scope(|scope| {
        let client = scope.spawn(|| {
            let mut started: BTreeMap<String, i64> = BTreeMap::new();
            let mut accepted: BTreeSet<i64> = BTreeSet::new();
            for n in 0..instances {
                let marker = format!("resource-{n}");
                let input = json!({"resource_name": marker, "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});
                let request = json!({"procedure": "registration", "jurisdiction": "taian", "input": input});
                // A start is not retried: without an answer nobody knows whether it happened.
                let Some((201, body)) = app.try_post("/v1/instances", &clerk, &request) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let id = body["id"].as_i64().unwrap();
                started.insert(marker, id);
                if n % 2 == 0 {
                    // An action is retried until answered; a retry of one that did commit
                    // finds the step gone (409), which is an acknowledgement too.
                    loop {
                        match app.try_post(&format!("/v1/instances/{id}/actions"), &clerk, &json!({"action": "accept"})) {
                            Some((200 | 409, _)) => {
                                accepted.insert(id);
                                break;
                            }
                            Some((status, body)) => panic!("accept answered {status}: {body}"),
                            None => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            (started, accepted)
        });
        let mut crashes = 0;
        while !done.load(Ordering::SeqCst) && crashes < CRASHES {
            std::thread::sleep(unpredictable_pause());
            if !done.load(Ordering::SeqCst) {
                app.crash_and_restart(CLOCK);
                crashes += 1;
            }
        }
        assert!(crashes >= 2, "the client finished before the daemon was killed more than once");
        client.join().unwrap()
    });
    app.crash_and_restart(CLOCK);
    assert!(started.len() > instances / 2, "only {} starts were acknowledged", started.len());

    // Every instance in the database, once.
    let mut stored: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut page = 1;
    loop {
        let (status, list) = app.get(&format!("/v1/instances?per_page=500&page={page}"), &app.admin);
        assert_eq!(status, 200, "{list}");
        let items = list["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        for item in items {
            let id = item["id"].as_i64().unwrap();
            let body = app.instance(id);
            stored.entry(body["data"]["resource_name"].as_str().unwrap().to_owned()).or_default().push(id);
        }
        page += 1;
    }
    for (marker, ids) in &stored {
        assert_eq!(ids.len(), 1, "{marker} was stored {} times", ids.len());
    }
    for (marker, id) in &started {
        assert_eq!(stored.get(marker), Some(&vec![*id]), "acknowledged start {marker} (instance {id}) was lost");
    }
    for ids in stored.values() {
        let id = ids[0];
        let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
        assert_eq!(history["chain_intact"], true, "instance {id}: {history}");
        let acted = history["events"].as_array().unwrap().iter().any(|e| e["event"]["action"] == "accept");
        if accepted.contains(&id) {
            assert!(acted, "the acknowledged accept of instance {id} is missing");
        }
    }
    // Every timer still fires: three weeks on, every instance is overdue in its step.
    app.advance("P21D");
    let (_, overdue) = app.get("/v1/instances?overdue=true&per_page=1", &app.admin);
    assert_eq!(overdue["total"].as_u64().unwrap() as usize, stored.len(), "some instances' timers did not fire");
}

#[test]
fn sqlite_survives_sigkill() {
    crash_while_a_client_works(Backend::Sqlite);
}

#[test]
fn the_temporal_engine_survives_sigkill() {
    if !common::temporal_available() {
        return;
    }
    crash_while_a_client_works(Backend::Temporal);
}

#[test]
fn postgres_survives_sigkill() {
    if common::postgres_url().is_none() {
        eprintln!("STATFLOW_TEST_POSTGRES_URL is not set: not run on PostgreSQL");
        return;
    }
    crash_while_a_client_works(Backend::Postgres);
}
