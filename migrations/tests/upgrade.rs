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

    // Back through migration 6 (calendar corrections) to before migration 5.
    Migrator::down(&db, Some(2)).await.unwrap();
    assert_eq!(outbox_rows(&db).await, before, "effects of no instance cannot exist under the old schema");
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(outbox_rows(&db).await, before);
    std::fs::remove_dir_all(dir).ok();
}
