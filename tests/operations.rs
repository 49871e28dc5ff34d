//! What an operations team does to a running statflow: back it up under load and restore
//! the copy into a daemon that serves every instance with its history intact.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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
