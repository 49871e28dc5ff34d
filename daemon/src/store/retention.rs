//! The retention sweep: removes what the record-keeping rules no longer require, and nothing
//! younger.
//!
//! - Processing records (an instance with its history, tasks, timers and effects; audit
//!   entries) are kept at least 3 years after the procedure finished (Tianjin-security
//!   art. 8). The sweep may be configured to keep them longer, never shorter.
//! - An authorized operation's logs are kept at least 6 months after it ends (Tai'an
//!   art. 14(5)); the authorization instance finishes only after that period, and is then
//!   kept 3 years more like any other record, so the 6 months need no rule of their own.
//! - Effects of no instance (the staff's daily digests) are removed by the same 3 years.
//! - Each removed instance leaves a `removed` entry in the ledger with its last head, so
//!   verification tells a lawful removal from a deletion.
//! - A finished instance stays while its parent or one of its children is still kept, so a
//!   kept record never points at a removed one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, FixedOffset, Months};
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde_json::{json, Value};

use super::entities::{audit, history, instances, outbox, tasks, timers};
use super::{ledger, to_millis, Store, StoreError};

/// How many instances one deleting transaction removes.
const CHUNK: usize = 500;

/// Processing records are kept at least 3 years (Tianjin-security art. 8).
pub const LEGAL_RECORDS_YEARS: u32 = 3;

impl Store {
    /// Removes finished instances and audit entries older than `records_years` at `now`
    /// (never fewer than the legal minimum). Returns what was removed.
    pub async fn sweep_retention(&self, now: DateTime<FixedOffset>, records_years: u32) -> Result<Value, StoreError> {
        let years = records_years.max(LEGAL_RECORDS_YEARS);
        let records_cutoff = to_millis(now.checked_sub_months(Months::new(12 * years)).expect("in range"));
        let rows: Vec<(i64, Option<i64>, String, i64)> = instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .column(instances::Column::ParentInstanceId)
            .column(instances::Column::Status)
            .column(instances::Column::UpdatedAt)
            .into_tuple()
            .all(&self.db)
            .await?;
        let parents: HashMap<i64, Option<i64>> = rows.iter().map(|(id, parent, ..)| (*id, *parent)).collect();
        let mut removable: HashSet<i64> = rows
            .iter()
            .filter(|(_, _, status, finished)| status == "completed" && *finished <= records_cutoff)
            .map(|(id, ..)| *id)
            .collect();
        // Keep whole families: drop any candidate whose parent or child is kept, until stable.
        loop {
            let kept_links: Vec<i64> = removable
                .iter()
                .filter(|id| matches!(parents.get(id), Some(Some(parent)) if parents.contains_key(parent) && !removable.contains(parent)))
                .copied()
                .chain(parents.iter().filter_map(|(child, parent)| match parent {
                    Some(parent) if removable.contains(parent) && !removable.contains(child) => Some(*parent),
                    _ => None,
                }))
                .collect();
            if kept_links.is_empty() {
                break;
            }
            for id in kept_links {
                removable.remove(&id);
            }
        }
        let mut ids: Vec<i64> = removable.into_iter().collect();
        ids.sort_unstable();
        for chunk in ids.chunks(CHUNK) {
            // IMMEDIATE on SQLite: the ledger's head is read under the write lock.
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            };
            let txn = self.db.begin_with_options(options).await?;
            let chunk = chunk.to_vec();
            let heads: Vec<(i64, String)> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .column(instances::Column::HeadHash)
                .filter(instances::Column::Id.is_in(chunk.clone()))
                .order_by_asc(instances::Column::Id)
                .into_tuple()
                .all(&txn)
                .await?;
            history::Entity::delete_many().filter(history::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            timers::Entity::delete_many().filter(timers::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            tasks::Entity::delete_many().filter(tasks::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            outbox::Entity::delete_many().filter(outbox::Column::InstanceId.is_in(chunk.clone())).exec(&txn).await?;
            instances::Entity::delete_many().filter(instances::Column::Id.is_in(chunk)).exec(&txn).await?;
            // The ledger keeps the removal, so verification tells it from a deletion.
            let removals: Vec<ledger::Entry> = heads
                .into_iter()
                .map(|(instance, head)| ledger::Entry { kind: ledger::REMOVED, instance, event_seq: 0, event_hash: head })
                .collect();
            ledger::append(&txn, &removals).await?;
            txn.commit().await?;
        }
        // Effects of no instance (the daily digests) follow the same rule.
        let digests_removed = outbox::Entity::delete_many()
            .filter(outbox::Column::InstanceId.is_null())
            .filter(outbox::Column::CreatedAt.lte(records_cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        let audit_removed = audit::Entity::delete_many()
            .filter(audit::Column::At.lte(records_cutoff))
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(json!({
            "records_kept_since": super::from_millis(records_cutoff),
            "removed_instances": ids.len(),
            "removed_audit_entries": audit_removed,
            "removed_effects_of_no_instance": digests_removed,
        }))
    }
}
