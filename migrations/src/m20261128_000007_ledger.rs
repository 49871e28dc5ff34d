//! Tamper evidence that holds when the database itself is edited:
//!
//! - Each history row's hash now covers its instance's id (formula v2), so two instances'
//!   histories cannot be swapped without breaking both chains.
//! - `ledger`: one append-only row per history row (and one per instance removed by the
//!   retention sweep), chained across all instances in commit order. Deleting the last event
//!   of an instance, all of them, or a whole instance leaves a ledger entry without its row.
//!   `ledger_head` is its single-row head, locked by every writer on PostgreSQL.
//! - `anchors`: the ledger heads exported at each day's end (also appended to a file outside
//!   the database and, if configured, signed with a key kept outside it).
//! - `instances.flagged`: why an instance failed verification; a flagged instance refuses
//!   further actions until an administrator has looked at it.
//!
//! Existing histories are checked with the v1 formula and re-sealed with v2, in id order,
//! building the ledger as they go. An instance whose v1 chain does not verify is flagged
//! instead of being laundered by the re-seal. The two formulas are frozen copies: the
//! daemon's may change in a later migration, this one must not.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait, Value};
use sha2::{Digest, Sha256};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Ledger {
    Table,
    Seq,
    InstanceId,
    EventSeq,
    EventHash,
    Kind,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum LedgerHead {
    Table,
    Id,
    Seq,
    Hash,
}

#[derive(DeriveIden)]
enum Anchors {
    Table,
    Id,
    At,
    LedgerSeq,
    LedgerHash,
    KeyId,
    Signature,
}

#[derive(DeriveIden)]
enum Instances {
    Table,
    Flagged,
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How many instances one re-sealing transaction covers.
const CHUNK: i64 = 200;

fn sha256_of(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The history hash before this migration (frozen).
fn history_v1(prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    sha256_of(&[prev, &seq.to_string(), &at.to_string(), actor, event])
}

/// The history hash from this migration on (frozen copy of the daemon's).
fn history_v2(instance: i64, prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    sha256_of(&["statflow/history/v2", &instance.to_string(), prev, &seq.to_string(), &at.to_string(), actor, event])
}

/// The ledger hash (frozen copy of the daemon's).
fn ledger_v1(prev: &str, seq: i64, kind: &str, instance: i64, event_seq: i64, event_hash: &str) -> String {
    sha256_of(&[
        "statflow/ledger/v1",
        prev,
        &seq.to_string(),
        kind,
        &instance.to_string(),
        &event_seq.to_string(),
        event_hash,
    ])
}

struct Row {
    instance: i64,
    seq: i64,
    at: i64,
    actor: String,
    event: String,
    prev_hash: String,
    hash: String,
}

async fn history_of(db: &impl ConnectionTrait, from: i64, to: i64) -> Result<Vec<Row>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT instance_id, seq, at, actor, event, prev_hash, hash FROM history \
                                WHERE instance_id >= $1 AND instance_id < $2 ORDER BY instance_id, seq"
        }
        _ => {
            "SELECT instance_id, seq, at, actor, event, prev_hash, hash FROM history \
              WHERE instance_id >= ? AND instance_id < ? ORDER BY instance_id, seq"
        }
    };
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, [from.into(), to.into()])).await?;
    rows.iter()
        .map(|r| {
            Ok(Row {
                instance: r.try_get("", "instance_id")?,
                seq: r.try_get("", "seq")?,
                at: r.try_get("", "at")?,
                actor: r.try_get("", "actor")?,
                event: r.try_get("", "event")?,
                prev_hash: r.try_get("", "prev_hash")?,
                hash: r.try_get("", "hash")?,
            })
        })
        .collect()
}

/// Runs `sql` with `?` placeholders, renumbered for PostgreSQL.
async fn run(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            let mut numbered = String::new();
            for (n, piece) in sql.split('?').enumerate() {
                if n > 0 {
                    numbered.push_str(&format!("${n}"));
                }
                numbered.push_str(piece);
            }
            numbered
        }
        _ => sql.to_owned(),
    };
    db.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await.map(|_| ())
}

/// Rewrites every history hash of instances with `formula`, in id order and in chunks;
/// `ledger` also appends each row to the ledger (the up direction).
async fn reseal(
    manager: &SchemaManager<'_>,
    formula: fn(i64, &str, i64, i64, &str, &str) -> String,
    ledger: bool,
) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let backend = db.get_database_backend();
    let last = db
        .query_one_raw(Statement::from_string(backend, "SELECT COALESCE(MAX(instance_id), 0) AS last FROM history"))
        .await?
        .map(|r| r.try_get::<i64>("", "last"))
        .transpose()?
        .unwrap_or(0);
    let (mut ledger_seq, mut ledger_prev) = (0i64, GENESIS.to_owned());
    let mut from = 0;
    while from <= last {
        let txn = db.begin().await?;
        let rows = history_of(&txn, from, from + CHUNK).await?;
        let mut i = 0;
        while i < rows.len() {
            let instance = rows[i].instance;
            let end = rows[i..].iter().position(|r| r.instance != instance).map_or(rows.len(), |n| i + n);
            let events = &rows[i..end];
            // Going up, the old chain is checked first: a re-seal must not launder an edit.
            let mut prev = GENESIS.to_owned();
            let mut intact = true;
            for row in events.iter().filter(|_| ledger) {
                intact &=
                    row.prev_hash == prev && row.hash == history_v1(&prev, row.seq, row.at, &row.actor, &row.event);
                prev = row.hash.clone();
            }
            let mut prev = GENESIS.to_owned();
            for row in events {
                let hash = formula(instance, &prev, row.seq, row.at, &row.actor, &row.event);
                run(
                    &txn,
                    "UPDATE history SET prev_hash = ?, hash = ? WHERE instance_id = ? AND seq = ?",
                    vec![prev.clone().into(), hash.clone().into(), instance.into(), row.seq.into()],
                )
                .await?;
                if ledger {
                    ledger_seq += 1;
                    let entry = ledger_v1(&ledger_prev, ledger_seq, "event", instance, row.seq, &hash);
                    run(
                        &txn,
                        "INSERT INTO ledger (seq, instance_id, event_seq, event_hash, kind, prev_hash, hash) \
                         VALUES (?, ?, ?, ?, 'event', ?, ?)",
                        vec![
                            ledger_seq.into(),
                            instance.into(),
                            row.seq.into(),
                            hash.clone().into(),
                            ledger_prev.clone().into(),
                            entry.clone().into(),
                        ],
                    )
                    .await?;
                    ledger_prev = entry;
                }
                prev = hash;
            }
            run(&txn, "UPDATE instances SET head_hash = ? WHERE id = ?", vec![prev.into(), instance.into()]).await?;
            if ledger && !intact {
                run(
                    &txn,
                    "UPDATE instances SET flagged = ? WHERE id = ?",
                    vec!["history did not verify before the ledger was introduced".into(), instance.into()],
                )
                .await?;
            }
            i = end;
        }
        txn.commit().await?;
        from += CHUNK;
    }
    if ledger {
        run(db, "UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1", vec![ledger_seq.into(), ledger_prev.into()])
            .await?;
    }
    Ok(())
}

fn v2(instance: i64, prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    history_v2(instance, prev, seq, at, actor, event)
}

fn v1(_instance: i64, prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    history_v1(prev, seq, at, actor, event)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Ledger::Table)
                    .col(ColumnDef::new(Ledger::Seq).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(Ledger::InstanceId).big_integer().not_null())
                    .col(ColumnDef::new(Ledger::EventSeq).big_integer().not_null())
                    .col(ColumnDef::new(Ledger::EventHash).string().not_null())
                    .col(ColumnDef::new(Ledger::Kind).string().not_null())
                    .col(ColumnDef::new(Ledger::PrevHash).string().not_null())
                    .col(ColumnDef::new(Ledger::Hash).string().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_ledger_instance")
                    .table(Ledger::Table)
                    .col(Ledger::InstanceId)
                    .col(Ledger::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LedgerHead::Table)
                    .col(ColumnDef::new(LedgerHead::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(LedgerHead::Seq).big_integer().not_null())
                    .col(ColumnDef::new(LedgerHead::Hash).string().not_null())
                    .to_owned(),
            )
            .await?;
        run(manager.get_connection(), "INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, ?)", vec![GENESIS.into()])
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Anchors::Table)
                    .col(ColumnDef::new(Anchors::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Anchors::At).big_integer().not_null())
                    .col(ColumnDef::new(Anchors::LedgerSeq).big_integer().not_null())
                    .col(ColumnDef::new(Anchors::LedgerHash).string().not_null())
                    .col(ColumnDef::new(Anchors::KeyId).string().null())
                    .col(ColumnDef::new(Anchors::Signature).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Instances::Table)
                    .add_column(ColumnDef::new(Instances::Flagged).text().null())
                    .to_owned(),
            )
            .await?;
        reseal(manager, v2, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        reseal(manager, v1, false).await?;
        manager.alter_table(Table::alter().table(Instances::Table).drop_column(Instances::Flagged).to_owned()).await?;
        manager.drop_table(Table::drop().table(Anchors::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(LedgerHead::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Ledger::Table).to_owned()).await
    }
}
