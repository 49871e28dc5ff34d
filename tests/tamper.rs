//! Tamper evidence, tried as someone with write access to the database would: each edit is
//! caught by the check that covers it, the instance is flagged and refuses actions, and a
//! rewrite that recomputes every hash still disagrees with the day's anchors (in the file
//! outside the database, signed with a key kept outside it, and mailed to the regulator).

mod common;

use std::process::Command;

use common::{act, read_mail, start, Backend, TestApp};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const KEY: &str = "6f1c0e2a9b8d7c6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d";

fn registration() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

/// A daemon whose anchors are signed, appended to a file and mailed to the regulator.
fn anchored_daemon() -> TestApp {
    let dir = common::scratch("tamper-key");
    std::fs::write(dir.join("anchor.key"), KEY).unwrap();
    let config = format!(
        "[integrity]\nkey_file = \"{}\"\nanchor_file = \"{}\"\nmail_to = [\"ledger@regulator.example\"]\n",
        dir.join("anchor.key").display(),
        dir.join("anchors.jsonl").display()
    );
    TestApp::start_configured(Backend::Sqlite, "2026-03-02T09:00:00+08:00", &config)
}

fn anchor_file(app: &TestApp) -> std::path::PathBuf {
    let config = std::fs::read_to_string(app.dir.join("statflow.toml")).unwrap();
    let line = config.lines().find(|l| l.starts_with("anchor_file")).unwrap();
    std::path::PathBuf::from(line.split('"').nth(1).unwrap())
}

/// Runs SQL on the daemon's database behind its back.
fn sql(app: &TestApp, statements: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = Database::connect(app.db.as_str()).await.unwrap();
        for statement in statements {
            db.execute_unprepared(statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        db.close().await.unwrap();
    });
}

fn query(app: &TestApp, sql: &str) -> Vec<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let db = Database::connect(app.db.as_str()).await.unwrap();
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        let out = rows
            .iter()
            .map(|row| {
                (0..)
                    .map_while(|i| {
                        row.try_get_by_index::<String>(i)
                            .or_else(|_| row.try_get_by_index::<i64>(i).map(|n| n.to_string()))
                            .ok()
                    })
                    .collect()
            })
            .collect();
        db.close().await.unwrap();
        out
    })
}

/// The verdict of each check on the instance's history page.
fn verdicts(app: &TestApp, id: i64) -> Value {
    let (status, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
    assert_eq!(status, 200, "{history}");
    let checks = &history["checks"];
    json!({
        "chain": checks["chain"]["verdict"], "head": checks["head"]["verdict"],
        "ledger": checks["ledger"]["verdict"], "replay": checks["replay"]["verdict"],
    })
}

fn all_passed() -> Value {
    json!({"chain": "passed", "head": "passed", "ledger": "passed", "replay": "passed"})
}

/// An instance with a few events whose effects have all been carried out (they append
/// events of their own, after commit).
fn settled_instance(app: &TestApp, clerk: &str) -> i64 {
    let id = start(app, &app.admin, "registration", "taian", registration());
    act(app, clerk, id, "accept", json!({}));
    app.wait_for(id, "effects done", |body| {
        body["effects"].as_array().unwrap().iter().all(|e| e["status"] != "pending")
    });
    id
}

fn sha256(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn verify(app: &TestApp, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["verify", "--db", &app.db, "--config"];
    let config = app.dir.join("statflow.toml");
    args.push(config.to_str().unwrap());
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_statflow")).args(&args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn verdict_line<'a>(report: &'a str, name: &str) -> &'a str {
    report.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name} line in {report}"))
}

#[test]
fn each_edit_of_the_store_is_caught_by_the_check_that_covers_it() {
    let app = anchored_daemon();
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let [truncated, emptied, edited, swapped_a, swapped_b, untouched] =
        [(); 6].map(|()| settled_instance(&app, &clerk));
    for id in [truncated, emptied, edited, swapped_a, swapped_b, untouched] {
        assert_eq!(verdicts(&app, id), all_passed(), "instance {id} before any edit");
    }

    // Deleting the last event leaves a chain that is whole, but shorter than its recorded
    // head and than the ledger.
    sql(&app, &[format!(
        "DELETE FROM history WHERE instance_id = {truncated} AND seq = (SELECT MAX(seq) FROM history WHERE instance_id = {truncated})"
    )]);
    assert_eq!(
        verdicts(&app, truncated),
        json!({"chain": "passed", "head": "failed", "ledger": "failed", "replay": "failed"})
    );
    // Deleting all of them.
    sql(&app, &[format!("DELETE FROM history WHERE instance_id = {emptied}")]);
    assert_eq!(verdicts(&app, emptied)["chain"], "failed");
    assert_eq!(verdicts(&app, emptied)["ledger"], "failed");
    // Editing the stored state: only replaying the history shows it.
    sql(
        &app,
        &[format!("UPDATE instances SET state = replace(state, '企业登记信息', '伪造的资源') WHERE id = {edited}")],
    );
    assert_eq!(
        verdicts(&app, edited),
        json!({"chain": "passed", "head": "passed", "ledger": "passed", "replay": "failed"})
    );
    // Swapping two instances' histories (and heads): each hash names its instance.
    sql(&app, &[
        format!("UPDATE history SET instance_id = -1 WHERE instance_id = {swapped_a}"),
        format!("UPDATE history SET instance_id = {swapped_a} WHERE instance_id = {swapped_b}"),
        format!("UPDATE history SET instance_id = {swapped_b} WHERE instance_id = -1"),
        format!("UPDATE instances SET head_hash = (SELECT hash FROM history WHERE instance_id = {swapped_a} ORDER BY seq DESC LIMIT 1) WHERE id = {swapped_a}"),
        format!("UPDATE instances SET head_hash = (SELECT hash FROM history WHERE instance_id = {swapped_b} ORDER BY seq DESC LIMIT 1) WHERE id = {swapped_b}"),
    ]);
    for id in [swapped_a, swapped_b] {
        let (_, history) = app.get(&format!("/v1/instances/{id}/history"), &app.admin);
        assert_eq!(history["checks"]["chain"]["verdict"], "failed", "{history}");
        assert!(history["checks"]["chain"]["detail"].as_str().unwrap().contains("another instance"), "{history}");
        assert_eq!(history["chain_intact"], false);
    }
    assert_eq!(verdicts(&app, untouched), all_passed(), "the others are not dragged in");

    // Every failing instance is flagged, listed for administrators and refuses actions;
    // its history can still be read (and exported) as stored.
    let (_, flagged) = app.get("/v1/instances?flagged=true&per_page=50", &app.admin);
    let mut ids: Vec<i64> = flagged["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [truncated, emptied, edited, swapped_a, swapped_b]);
    assert!(app.instance(edited)["flagged"].as_str().unwrap().starts_with("replay:"), "{}", app.instance(edited));
    let (status, problem) = app.post(
        &format!("/v1/instances/{edited}/actions"),
        &clerk,
        &json!({"action": "pass", "data": {"compliance_report": "合规"}}),
    );
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("flagged"), "{problem}");
    let audit = query(&app, "SELECT target FROM audit WHERE action = 'instance.flagged' ORDER BY target");
    assert_eq!(audit.len(), 5, "{audit:?}");

    // The command-line verification finds the same, on the database directly.
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("instances 6 checked, 5 failed (0 newly flagged)"), "{report}");
    assert!(verdict_line(&report, "ledger").contains("passed"), "{report}");
    let (code, report) = verify(&app, &["--instance", &untouched.to_string()]);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_rewrite_that_recomputes_every_hash_still_disagrees_with_the_anchors() {
    let app = anchored_daemon();
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let victim = settled_instance(&app, &clerk);
    let other = settled_instance(&app, &clerk);
    // The day ends: the ledger's head is anchored in the database, in the file and by mail.
    app.advance("PT15H");
    let (_, runs) = app.get("/v1/schedules/ledger_anchor", &app.admin);
    let run = &runs["runs"]["items"][0];
    assert_eq!(run["status"], "done", "{runs}");
    assert_eq!(run["result"]["signed"], true, "{runs}");
    let anchored_seq = run["result"]["ledger_seq"].as_i64().unwrap();
    let lines = std::fs::read_to_string(anchor_file(&app)).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    let anchor: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(anchor["ledger_seq"], anchored_seq);
    assert!(!lines.contains(KEY), "the key never leaves its file");
    let mail = app.wait_until("the anchor mailed to the regulator", || {
        read_mail(&app.dir.join("mail"))
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap_or("").contains("ledger anchor"))
    });
    assert_eq!(mail["to"], json!(["ledger@regulator.example"]), "{mail}");
    assert!(mail["text"].as_str().unwrap().contains(anchor["ledger_hash"].as_str().unwrap()), "{mail}");
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(
        verdict_line(&report, "anchors").contains("2 anchors agree with the ledger, 2 signatures hold"),
        "{report}"
    );

    // Someone rewrites the victim's start input, its state to match, and then recomputes
    // every hash after it: its history, its head, the ledger from its first entry on, and
    // the ledger's head. Chain, head, ledger and replay all agree again.
    let forged = "伪造的资源";
    sql(
        &app,
        &[
            format!(
                "UPDATE history SET event = replace(event, '企业登记信息', '{forged}') WHERE instance_id = {victim}"
            ),
            format!("UPDATE instances SET state = replace(state, '企业登记信息', '{forged}') WHERE id = {victim}"),
        ],
    );
    let mut updates = Vec::new();
    let mut prev = "0".repeat(64);
    let mut new_hashes = std::collections::HashMap::new();
    for row in
        query(&app, &format!("SELECT seq, at, actor, event FROM history WHERE instance_id = {victim} ORDER BY seq"))
    {
        let hash = sha256(&["statflow/history/v2", &victim.to_string(), &prev, &row[0], &row[1], &row[2], &row[3]]);
        updates.push(format!(
            "UPDATE history SET prev_hash = '{prev}', hash = '{hash}' WHERE instance_id = {victim} AND seq = {}",
            row[0]
        ));
        new_hashes.insert(row[0].clone(), hash.clone());
        prev = hash;
    }
    updates.push(format!("UPDATE instances SET head_hash = '{prev}' WHERE id = {victim}"));
    let mut ledger_prev = "0".repeat(64);
    let mut last = (0i64, String::new());
    for row in query(&app, "SELECT seq, instance_id, event_seq, event_hash, kind FROM ledger ORDER BY seq") {
        let event_hash = if row[1] == victim.to_string() { new_hashes[&row[2]].clone() } else { row[3].clone() };
        let hash = sha256(&["statflow/ledger/v1", &ledger_prev, &row[0], &row[4], &row[1], &row[2], &event_hash]);
        updates.push(format!(
            "UPDATE ledger SET event_hash = '{event_hash}', prev_hash = '{ledger_prev}', hash = '{hash}' WHERE seq = {}",
            row[0]
        ));
        ledger_prev = hash.clone();
        last = (row[0].parse().unwrap(), hash);
    }
    updates.push(format!("UPDATE ledger_head SET seq = {}, hash = '{}'", last.0, last.1));
    sql(&app, &updates);
    assert_eq!(verdicts(&app, victim), all_passed(), "the rewrite is consistent in itself");
    assert_eq!(app.instance(victim)["data"]["resource_name"], forged);

    // The anchors are not: the ledger entry they name has another hash now.
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 1, "{report}");
    let anchors = verdict_line(&report, "anchors");
    assert!(anchors.contains("failed") && anchors.contains("the ledger was rewritten"), "{report}");
    assert!(verdict_line(&report, "ledger").contains("passed"), "{report}");
    // Re-anchoring the stored anchor needs the key: without it the signature gives out.
    sql(&app, &[format!("UPDATE anchors SET ledger_hash = (SELECT hash FROM ledger WHERE seq = {anchored_seq})")]);
    std::fs::remove_file(anchor_file(&app)).unwrap();
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 1, "{report}");
    assert!(verdict_line(&report, "anchors").contains("signature the key does not give"), "{report}");
    let _ = other;
}

#[test]
fn deleting_instances_or_cutting_the_ledger_back_is_caught_as_a_whole() {
    let app = anchored_daemon();
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    let kept = settled_instance(&app, &clerk);
    let deleted = settled_instance(&app, &clerk);
    app.advance("PT15H");
    // An instance removed with everything it owns, but not by the retention sweep.
    sql(
        &app,
        &[
            format!("DELETE FROM history WHERE instance_id = {deleted}"),
            format!("DELETE FROM tasks WHERE instance_id = {deleted}"),
            format!("DELETE FROM outbox WHERE instance_id = {deleted}"),
            format!("DELETE FROM timers WHERE instance_id = {deleted}"),
            format!("DELETE FROM instances WHERE id = {deleted}"),
        ],
    );
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 1, "{report}");
    assert!(
        verdict_line(&report, "missing").contains(&format!("instances {deleted} are in the ledger but were deleted")),
        "{report}"
    );
    // And its ledger entries cut off the end, with the head moved back to match: the
    // anchor names an entry that is gone.
    let first: i64 =
        query(&app, &format!("SELECT MIN(seq) FROM ledger WHERE instance_id = {deleted}"))[0][0].parse().unwrap();
    sql(
        &app,
        &[
            format!("DELETE FROM ledger WHERE seq >= {first}"),
            format!(
                "UPDATE ledger_head SET seq = {}, hash = (SELECT hash FROM ledger WHERE seq = {})",
                first - 1,
                first - 1
            ),
        ],
    );
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 1, "{report}");
    assert!(verdict_line(&report, "missing").contains("passed"), "{report}");
    assert!(verdict_line(&report, "anchors").contains("which is missing: the ledger was cut back"), "{report}");
    assert_eq!(verdicts(&app, kept), all_passed());
}

/// PostgreSQL writers commit concurrently: the ledger's head row serializes their appends,
/// so the ledger stays one unbroken chain.
#[test]
fn concurrent_writers_on_postgres_keep_one_unbroken_ledger() {
    if common::postgres_url().is_none() {
        eprintln!("STATFLOW_TEST_POSTGRES_URL is not set; run `.ci/postgres` for this test");
        return;
    }
    let app = TestApp::start(Backend::Postgres, "2026-03-02T09:00:00+08:00");
    let clerk = app.token("clerk", "staff", &["taian-registry"]);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..10 {
                    let id = start(&app, &app.admin, "registration", "taian", registration());
                    act(&app, &clerk, id, "accept", json!({}));
                }
            });
        }
    });
    let (code, report) = verify(&app, &[]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("instances 80 checked, 0 failed"), "{report}");
    let entries: i64 = query(&app, "SELECT COUNT(*) FROM ledger")[0][0].parse().unwrap();
    let events: i64 = query(&app, "SELECT COUNT(*) FROM history")[0][0].parse().unwrap();
    assert_eq!(entries, events, "every event is in the ledger once");
}
