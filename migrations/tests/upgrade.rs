//! Upgrading a database that already holds data: the outbox rebuild of migration 5 on SQLite
//! keeps every row, its ids and its indexes, and rolling it back restores the old table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use statflow_migrations::Migrator;

async fn strings(db: &DatabaseConnection, sql: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
    rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
}

async fn outbox_rows(db: &DatabaseConnection) -> Vec<String> {
    strings(
        db,
        "SELECT id || '|' || COALESCE(instance_id, 'none') || '|' || key || '|' || status FROM outbox ORDER BY id",
    )
    .await
}

#[tokio::test]
async fn the_outbox_rebuild_keeps_every_row_and_rolls_back_cleanly() {
    let dir = std::env::temp_dir().join(format!("statflow-migrations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("upgrade.db");
    let _ = std::fs::remove_file(&path);
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();

    Migrator::up(&db, Some(4)).await.unwrap();
    for (id, instance, key, status) in
        [(1, 7, "7:e1.0", "done"), (2, 7, "7:e2.0", "pending"), (5, 9, "9:e1.0", "failed")]
    {
        db.execute_unprepared(&format!(
            "INSERT INTO outbox (id, instance_id, key, kind, payload, status, attempts, next_attempt_at, created_at) \
             VALUES ({id}, {instance}, '{key}', 'notify', '{{}}', '{status}', 0, 0, 0)"
        ))
        .await
        .unwrap();
    }
    let before = outbox_rows(&db).await;
    assert!(db.execute_unprepared("INSERT INTO outbox (key, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ('x', 'digest', '{}', 'pending', 0, 0, 0)").await.is_err(), "an instance is required before");

    Migrator::up(&db, None).await.unwrap();
    assert_eq!(outbox_rows(&db).await, before, "every row kept with its id");
    db.execute_unprepared("INSERT INTO outbox (key, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ('digest/2026-05-06/1', 'digest', '{}', 'pending', 0, 0, 0)")
        .await
        .unwrap();
    let after = outbox_rows(&db).await;
    assert_eq!(after.last().unwrap(), "6|none|digest/2026-05-06/1|pending", "ids go on after the kept ones");
    let indexes = strings(
        &db,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'outbox' AND sql IS NOT NULL ORDER BY name",
    )
    .await;
    assert_eq!(indexes, ["outbox_by_instance", "outbox_ready", "outbox_ready_by_kind"]);
    let duplicate = "INSERT INTO outbox (instance_id, key, kind, payload, status, attempts, next_attempt_at, created_at) VALUES (7, '7:e1.0', 'notify', '{}', 'pending', 0, 0, 0)";
    assert!(db.execute_unprepared(duplicate).await.is_err(), "keys stay unique");

    // Back through migrations 16 (audit by target), 15 (work leases), 14 (token expiry), 13 (retention indexes), 12 (people), 11 (task index), 10 (run
    // results), 9 (instance organizations), 8 (current versions), 7 (ledger) and 6 (calendar
    // corrections) to before migration 5.
    Migrator::down(&db, Some(12)).await.unwrap();
    assert_eq!(outbox_rows(&db).await, before, "effects of no instance cannot exist under the old schema");
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(outbox_rows(&db).await, before);
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test]
async fn instance_organizations_move_to_their_own_rows_and_back() {
    let dir = std::env::temp_dir().join(format!("statflow-migrations-scope-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scope.db");
    let _ = std::fs::remove_file(&path);
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    Migrator::up(&db, Some(8)).await.unwrap();
    db.execute_unprepared("INSERT INTO schedule_runs (schedule_id, fire_at, status, started, created_at) VALUES ('s', 1, 'done', '{\"instances\":[1]}', 0)")
        .await
        .unwrap();
    for (id, organizations) in [(1, ",taian-market,taian-registry,"), (2, ",taian_registry,"), (3, ",,")] {
        db.execute_unprepared(&format!(
            "INSERT INTO instances (id, procedure, jurisdiction, definition_version, status, organizations, state, \
             version_no, overdue, created_at, updated_at, head_hash, calendar_generation) \
             VALUES ({id}, 'p', 'j', 'v', 'running', '{organizations}', '{{}}', 1, false, 0, 0, 'h', 0)"
        ))
        .await
        .unwrap();
    }

    Migrator::up(&db, None).await.unwrap();
    let rows = strings(
        &db,
        "SELECT instance_id || ':' || organization FROM instance_organizations ORDER BY instance_id, organization",
    )
    .await;
    assert_eq!(rows, ["1:taian-market", "1:taian-registry", "2:taian_registry"], "one row per organization");
    let results = strings(&db, "SELECT result FROM schedule_runs").await;
    assert_eq!(results, ["{\"instances\":[1]}"], "a run's result keeps its value under its new name");
    let columns = strings(&db, "SELECT name FROM pragma_table_info('instances')").await;
    assert!(!columns.iter().any(|c| c == "organizations"), "the old column is gone: {columns:?}");
    let duplicate = "INSERT INTO instance_organizations (instance_id, organization) VALUES (1, 'taian-market')";
    assert!(db.execute_unprepared(duplicate).await.is_err(), "an organization is recorded once per instance");
    let by_organization = strings(
        &db,
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'instance_organizations' AND sql IS NOT NULL",
    )
    .await;
    assert_eq!(by_organization, ["instance_organizations_by_organization"]);

    Migrator::down(&db, Some(8)).await.unwrap();
    let restored = strings(&db, "SELECT id || '|' || organizations FROM instances ORDER BY id").await;
    assert_eq!(restored, ["1|,taian-market,taian-registry,", "2|,taian_registry,", "3|,,"]);
    std::fs::remove_dir_all(dir).ok();
}

fn sha256_of(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Stores an instance with `events` history rows sealed by the formula before migration 7.
async fn instance_with_v1_history(db: &DatabaseConnection, id: i64, events: i64) {
    db.execute_unprepared(&format!(
        "INSERT INTO instances (id, procedure, jurisdiction, definition_version, status, organizations, state, \
         version_no, overdue, created_at, updated_at) VALUES ({id}, 'p', 'j', 'v', 'running', ',,', '{{}}', 1, false, 0, 0)"
    ))
    .await
    .unwrap();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=events {
        let event = format!("{{\"n\":{seq}}}");
        let hash = sha256_of(&[&prev, &seq.to_string(), &(seq * 1000).to_string(), "clerk", &event]);
        db.execute_unprepared(&format!(
            "INSERT INTO history (instance_id, seq, at, actor, event, prev_hash, hash) \
             VALUES ({id}, {seq}, {}, 'clerk', '{event}', '{prev}', '{hash}')",
            seq * 1000
        ))
        .await
        .unwrap();
        prev = hash;
    }
    db.execute_unprepared(&format!("UPDATE instances SET head_hash = '{prev}' WHERE id = {id}")).await.unwrap();
}

#[tokio::test]
async fn the_ledger_migration_reseals_histories_and_flags_one_already_broken() {
    let dir = std::env::temp_dir().join(format!("statflow-migrations-ledger-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ledger.db");
    let _ = std::fs::remove_file(&path);
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
    Migrator::up(&db, Some(6)).await.unwrap();
    instance_with_v1_history(&db, 1, 3).await;
    instance_with_v1_history(&db, 2, 2).await;
    // An edit made before the upgrade must not be laundered by the re-seal.
    db.execute_unprepared("UPDATE history SET event = '{\"n\":99}' WHERE instance_id = 2 AND seq = 1").await.unwrap();
    let v1 = strings(&db, "SELECT hash FROM history ORDER BY instance_id, seq").await;

    Migrator::up(&db, None).await.unwrap();
    let ledger =
        strings(&db, "SELECT seq || '|' || instance_id || '|' || event_seq || '|' || kind FROM ledger ORDER BY seq")
            .await;
    assert_eq!(ledger, ["1|1|1|event", "2|1|2|event", "3|1|3|event", "4|2|1|event", "5|2|2|event"]);
    let v2 = strings(&db, "SELECT hash FROM history ORDER BY instance_id, seq").await;
    assert!(v1.iter().zip(&v2).all(|(a, b)| a != b), "every row is re-sealed");
    let first = strings(&db, "SELECT hash FROM history WHERE instance_id = 1 AND seq = 1").await;
    assert_eq!(first[0], sha256_of(&["statflow/history/v2", "1", GENESIS, "1", "1000", "clerk", "{\"n\":1}"]));
    let heads = strings(&db, "SELECT head_hash FROM instances ORDER BY id").await;
    let lasts = strings(&db, "SELECT hash FROM history WHERE seq = (SELECT MAX(seq) FROM history h WHERE h.instance_id = history.instance_id) ORDER BY instance_id").await;
    assert_eq!(heads, lasts, "each instance's head is its re-sealed last row");
    let ledger_head = strings(&db, "SELECT seq || '|' || hash FROM ledger_head").await;
    let last_entry = strings(&db, "SELECT seq || '|' || hash FROM ledger ORDER BY seq DESC LIMIT 1").await;
    assert_eq!(ledger_head, last_entry);
    let flagged = strings(&db, "SELECT id || ':' || COALESCE(flagged, '-') FROM instances ORDER BY id").await;
    assert_eq!(flagged[0], "1:-");
    assert!(flagged[1].starts_with("2:history did not verify"), "{flagged:?}");

    // Back through migrations 16 (audit by target), 15 (work leases), 14 (token expiry), 13 (retention indexes), 12 (people), 11 (task index), 10 (run
    // results), 9 (instance organizations) and 8 to before the ledger.
    Migrator::down(&db, Some(10)).await.unwrap();
    let restored = strings(&db, "SELECT hash FROM history WHERE instance_id = 1 ORDER BY seq").await;
    assert_eq!(restored, v1[..3], "rolling back restores the old seals");
    std::fs::remove_dir_all(dir).ok();
}
