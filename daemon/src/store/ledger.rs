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

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::entities::{anchors, history, instances, ledger, ledger_head};
use super::records::{HistoryEntry, InstanceRecord, LedgerEntry, LedgerKind};
use super::{scope, Store, StoreError};

/// The hash that precedes the first event of every instance and the ledger's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    format!("{:x}", hasher.finalize())
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
pub fn sealed(row: &LedgerEntry) -> bool {
    row.hash == ledger_hash(&row.prev_hash, row.seq, &row.kind, row.instance_id, row.event_seq, &row.event_hash)
}

/// What one ledger entry records.
pub struct Entry {
    pub kind: LedgerKind,
    pub instance: i64,
    pub event_seq: i64,
    pub event_hash: String,
}

/// The id of the ledger head's one row.
const HEAD: i32 = 1;

/// The ledger's head: its last sequence number and hash.
pub(super) async fn head(db: &impl ConnectionTrait) -> Result<(i64, String), DbErr> {
    let row = ledger_head::Entity::find_by_id(HEAD)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::Custom("the ledger head row is missing".into()))?;
    Ok((row.seq, row.hash))
}

/// Appends `entries` inside the caller's transaction. On PostgreSQL the head row is locked
/// until commit, so concurrent writers append one after the other; SQLite's writer already
/// holds the database's only write lock. Take it last in a transaction: a writer holding
/// the head then waits for nothing else, so no deadlock can form around it.
pub(super) async fn append(txn: &impl ConnectionTrait, entries: &[Entry]) -> Result<(), DbErr> {
    let Some(chained) = chain(txn, entries).await? else { return Ok(()) };
    // Bounded statements: PostgreSQL's multi-row insert takes at most 65,535 parameters.
    for chunk in chained.rows.chunks(1000) {
        let chunk = chunk.iter().cloned().map(IntoActiveModel::into_active_model).collect();
        super::bulk::insert::<ledger::Entity>(txn, chunk, super::bulk::Conflict::Fail).await?;
    }
    let head = ledger_head::ActiveModel {
        id: sea_orm::Set(HEAD),
        seq: sea_orm::Set(chained.seq),
        hash: sea_orm::Set(chained.hash),
    };
    ledger_head::Entity::update(head).exec(txn).await?;
    Ok(())
}

/// `entries` as ledger rows chained to the stored head (locked until commit on PostgreSQL),
/// and the head they lead to: what [`append`] writes. `None` when there are no entries.
pub(super) async fn chain(txn: &impl ConnectionTrait, entries: &[Entry]) -> Result<Option<Chained>, DbErr> {
    if entries.is_empty() {
        return Ok(None);
    }
    let head = ledger_head::Entity::find_by_id(HEAD)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| DbErr::Custom("the ledger head row is missing".into()))?;
    let (mut seq, mut prev) = (head.seq, head.hash);
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        seq += 1;
        let hash = ledger_hash(&prev, seq, entry.kind.as_str(), entry.instance, entry.event_seq, &entry.event_hash);
        rows.push(ledger::Model {
            seq,
            instance_id: entry.instance,
            event_seq: entry.event_seq,
            event_hash: entry.event_hash.clone(),
            kind: entry.kind.as_str().to_owned(),
            prev_hash: prev,
            hash: hash.clone(),
        });
        prev = hash;
    }
    Ok(Some(Chained { rows, seq, hash: prev }))
}

/// Ledger rows ready to insert and the head after them.
pub(super) struct Chained {
    pub rows: Vec<ledger::Model>,
    pub seq: i64,
    pub hash: String,
}

impl Chained {
    /// Adds what [`append`] writes to `script` (SQLite's writer, which holds the only write
    /// lock): the rows, then the head.
    pub(super) fn add_to(self, script: &mut super::bulk::Script) -> Result<(), DbErr> {
        let rows: Vec<ledger::ActiveModel> = self.rows.into_iter().map(IntoActiveModel::into_active_model).collect();
        script.insert::<ledger::Entity>(&rows, &super::bulk::Conflict::Fail)?;
        script.statement(
            "UPDATE \"ledger_head\" SET \"seq\" = ?, \"hash\" = ? WHERE \"id\" = ?",
            [self.seq.into(), self.hash.into(), HEAD.into()],
        );
        Ok(())
    }
}

/// A ledger head exported at a day's end (see `integrity::anchors`), as stored, written to
/// the anchor file and mailed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// When it was taken (UTC milliseconds).
    pub at: i64,
    pub ledger_seq: i64,
    pub ledger_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Store {
    /// The ledger's head: its last sequence number and hash.
    pub async fn ledger_head(&self) -> Result<(i64, String), StoreError> {
        Ok(head(&self.db).await?)
    }

    /// An instance's ledger entries in ledger order, and the entries that follow each of
    /// them (by sequence number), for checking the links.
    pub async fn ledger_of(&self, id: i64) -> Result<(Vec<LedgerEntry>, HashMap<i64, LedgerEntry>), StoreError> {
        let entries: Vec<LedgerEntry> = ledger::Entity::find()
            .filter(ledger::Column::InstanceId.eq(id))
            .order_by_asc(ledger::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LedgerEntry::from)
            .collect();
        let followers = ledger::Entity::find()
            .filter(ledger::Column::Seq.is_in(entries.iter().map(|e| e.seq + 1)))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.seq, LedgerEntry::from(row)))
            .collect();
        Ok((entries, followers))
    }

    /// Up to `limit` ledger entries after sequence number `after`, in order.
    pub async fn ledger_after(&self, after: i64, limit: u64) -> Result<Vec<LedgerEntry>, StoreError> {
        Ok(ledger::Entity::find()
            .filter(ledger::Column::Seq.gt(after))
            .order_by_asc(ledger::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LedgerEntry::from)
            .collect())
    }

    /// The hashes of the ledger entries numbered `seqs`.
    pub async fn ledger_hashes(&self, seqs: &[i64]) -> Result<HashMap<i64, String>, StoreError> {
        let mut hashes = HashMap::new();
        for chunk in seqs.chunks(500) {
            for row in ledger::Entity::find().filter(ledger::Column::Seq.is_in(chunk.to_vec())).all(&self.db).await? {
                hashes.insert(row.seq, row.hash);
            }
        }
        Ok(hashes)
    }

    /// How many instances are stored.
    pub async fn count_instances(&self) -> Result<u64, StoreError> {
        Ok(instances::Entity::find().count(&self.db).await?)
    }

    /// Up to `limit` instances after id `after`, with their histories and ledger entries:
    /// one chunk of a whole-store verification.
    pub async fn sealed_chunk(
        &self,
        after: i64,
        limit: u64,
    ) -> Result<Vec<(InstanceRecord, Vec<HistoryEntry>, Vec<LedgerEntry>)>, StoreError> {
        let rows = instances::Entity::find()
            .filter(instances::Column::Id.gt(after))
            .order_by_asc(instances::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut scopes = scope::of(&self.db, &ids).await?;
        let mut histories: HashMap<i64, Vec<HistoryEntry>> = HashMap::new();
        for row in history::Entity::find()
            .filter(history::Column::InstanceId.is_in(ids.clone()))
            .order_by_asc(history::Column::InstanceId)
            .order_by_asc(history::Column::Seq)
            .all(&self.db)
            .await?
        {
            histories.entry(row.instance_id).or_default().push(row.into());
        }
        let mut ledgers: HashMap<i64, Vec<LedgerEntry>> = HashMap::new();
        for row in ledger::Entity::find()
            .filter(ledger::Column::InstanceId.is_in(ids))
            .order_by_asc(ledger::Column::Seq)
            .all(&self.db)
            .await?
        {
            ledgers.entry(row.instance_id).or_default().push(row.into());
        }
        rows.into_iter()
            .map(|row| {
                let (history, entries) =
                    (histories.remove(&row.id).unwrap_or_default(), ledgers.remove(&row.id).unwrap_or_default());
                let organizations = scopes.remove(&row.id).unwrap_or_default();
                Ok((InstanceRecord::decode(row, organizations)?, history, entries))
            })
            .collect()
    }

    /// Instances the ledger records that are gone without a `removed` entry of the retention
    /// sweep (up to 20), and histories left without their instance (up to 20).
    pub async fn missing_instances(&self) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
        let backend = self.db.get_database_backend();
        let gone = "SELECT DISTINCT l.instance_id AS id FROM ledger l \
                    WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = l.instance_id) \
                    AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.instance_id = l.instance_id AND r.kind = 'removed') \
                    ORDER BY id LIMIT 20";
        let orphans = "SELECT DISTINCT h.instance_id AS id FROM history h \
                       WHERE NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = h.instance_id) ORDER BY id LIMIT 20";
        let mut found = Vec::new();
        for sql in [gone, orphans] {
            let rows = self.db.query_all_raw(Statement::from_string(backend, sql)).await?;
            found.push(rows.iter().map(|r| r.try_get::<i64>("", "id")).collect::<Result<Vec<_>, _>>()?);
        }
        let orphans = found.pop().unwrap_or_default();
        Ok((found.pop().unwrap_or_default(), orphans))
    }

    /// Every stored anchor with its row id, oldest first.
    pub async fn anchors(&self) -> Result<Vec<(i64, Anchor)>, StoreError> {
        Ok(anchors::Entity::find()
            .order_by_asc(anchors::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| (row.id, anchor_of(row)))
            .collect())
    }

    /// The anchor taken at `at`, if one was.
    pub async fn anchor_at(&self, at: i64) -> Result<Option<Anchor>, StoreError> {
        Ok(anchors::Entity::find().filter(anchors::Column::At.eq(at)).one(&self.db).await?.map(anchor_of))
    }

    pub async fn insert_anchor(&self, anchor: &Anchor) -> Result<(), StoreError> {
        anchors::ActiveModel {
            at: Set(anchor.at),
            ledger_seq: Set(anchor.ledger_seq),
            ledger_hash: Set(anchor.ledger_hash.clone()),
            key_id: Set(anchor.key_id.clone()),
            signature: Set(anchor.signature.clone()),
            ..Default::default()
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }
}

fn anchor_of(row: anchors::Model) -> Anchor {
    Anchor {
        at: row.at,
        ledger_seq: row.ledger_seq,
        ledger_hash: row.ledger_hash,
        key_id: row.key_id,
        signature: row.signature,
    }
}
