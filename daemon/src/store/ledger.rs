//! The seals of stored history, and the append-only ledger that chains them.
//!
//! - Each history row's hash covers its instance's id, the previous row's hash and the
//!   event: an edited, reordered or moved row breaks its instance's chain.
//! - Each history row is also appended to the ledger, whose rows chain across all
//!   instances in commit order: removing an instance's last events, all of them, or the
//!   instance itself leaves ledger entries without their rows.
//! - Recomputing every hash of both chains is caught by the anchors (see
//!   `runtime::integrity`): ledger heads exported outside the database, optionally signed.
//!
//! The retention sweep, which lawfully removes old finished instances, appends a `removed`
//! entry per instance, so verification can tell a lawful removal from a deletion.

use sea_orm::{ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QuerySelect};
use sha2::{Digest, Sha256};

use super::entities::{ledger, ledger_head};

/// The hash that precedes the first event of every instance and the ledger's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The ledger kind of an applied event.
pub const EVENT: &str = "event";
/// The ledger kind of an instance the retention sweep removed.
pub const REMOVED: &str = "removed";

pub(crate) fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of a history row (formula v2; migration 7 holds a frozen copy).
pub fn history_hash(instance: i64, prev: &str, seq: i64, at: i64, actor: &str, event: &str) -> String {
    sha256_hex(&["statflow/history/v2", &instance.to_string(), prev, &seq.to_string(), &at.to_string(), actor, event])
}

/// The hash of a ledger row (migration 7 holds a frozen copy).
pub fn ledger_hash(prev: &str, seq: i64, kind: &str, instance: i64, event_seq: i64, event_hash: &str) -> String {
    sha256_hex(&[
        "statflow/ledger/v1",
        prev,
        &seq.to_string(),
        kind,
        &instance.to_string(),
        &event_seq.to_string(),
        event_hash,
    ])
}

/// Whether a ledger row's hash is the one its fields give.
pub fn sealed(row: &ledger::Model) -> bool {
    row.hash == ledger_hash(&row.prev_hash, row.seq, &row.kind, row.instance_id, row.event_seq, &row.event_hash)
}

/// What one ledger entry records.
pub struct Entry {
    pub kind: &'static str,
    pub instance: i64,
    pub event_seq: i64,
    pub event_hash: String,
}

/// The ledger's head: its last sequence number and hash.
pub async fn head(db: &impl ConnectionTrait) -> Result<(i64, String), DbErr> {
    let row = ledger_head::Entity::find_by_id(1)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::Custom("the ledger head row is missing".into()))?;
    Ok((row.seq, row.hash))
}

/// Appends `entries` inside the caller's transaction. On PostgreSQL the head row is locked
/// until commit, so concurrent writers append one after the other; SQLite's writer already
/// holds the database's only write lock. Take it last in a transaction: a writer holding
/// the head then waits for nothing else, so no deadlock can form around it.
pub async fn append(txn: &impl ConnectionTrait, entries: &[Entry]) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = ledger_head::Entity::find_by_id(1)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::Custom("the ledger head row is missing".into()))?;
    let (mut seq, mut prev) = (head.seq, head.hash.clone());
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let hash = ledger_hash(&prev, seq, entry.kind, entry.instance, entry.event_seq, &entry.event_hash);
        rows.push(ledger::Model {
            seq,
            instance_id: entry.instance,
            event_seq: entry.event_seq,
            event_hash: entry.event_hash.clone(),
            kind: entry.kind.to_owned(),
            prev_hash: prev,
            hash: hash.clone(),
        });
        prev = hash;
    }
    // Bounded statements: SQLite takes at most 32,766 parameters in one.
    for chunk in rows.chunks(1000) {
        ledger::Entity::insert_many(chunk.iter().cloned().map(IntoActiveModel::into_active_model))
            .exec_without_returning(txn)
            .await?;
    }
    let mut head = head.into_active_model();
    head.seq = sea_orm::Set(seq);
    head.hash = sea_orm::Set(prev);
    ledger_head::Entity::update(head).exec(txn).await?;
    Ok(())
}
