//! The outbox: effects queued by transitions and jobs, taken by the workers in bounded
//! passes, and their delivery state.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};

use super::effects::{Effect, EffectKind};
use super::entities::outbox;
use super::records::{EffectRecord, EffectStatus};
use super::{read_page, NewAuditEntry, Slice, Store, StoreError, Total};

impl Store {
    pub async fn effects_of(&self, id: i64) -> Result<Vec<EffectRecord>, StoreError> {
        outbox::Entity::find()
            .filter(outbox::Column::InstanceId.eq(id))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(EffectRecord::decode)
            .collect()
    }

    /// The pending effects of `kinds` whose next attempt is due at `now` (at most `limit`,
    /// longest due first), in groups: one instance's effects form one group and run in order;
    /// different groups may run side by side. An effect of no instance is a group of its own.
    ///
    /// Each kind is read on its own, in the order of the (kind, status, next attempt) index,
    /// so a pass reads about `limit` rows per kind however many are pending; one query over
    /// all kinds would have to gather and sort every pending row of them on each pass.
    pub async fn ready_effects(
        &self,
        kinds: &[EffectKind],
        now: i64,
        limit: u64,
    ) -> Result<(usize, Vec<Vec<EffectRecord>>), StoreError> {
        let mut ready = Vec::new();
        for kind in kinds {
            for row in outbox::Entity::find()
                .filter(outbox::Column::Kind.eq(kind.as_str()))
                .filter(outbox::Column::Status.eq(EffectStatus::Pending.as_str()))
                .filter(outbox::Column::NextAttemptAt.lte(now))
                .order_by_asc(outbox::Column::NextAttemptAt)
                .order_by_asc(outbox::Column::Id)
                .limit(limit)
                .all(&self.db)
                .await?
            {
                ready.push(EffectRecord::decode(row)?);
            }
        }
        // Whatever sorts before the overall `limit`-th row is within its own kind's first
        // `limit`, so this is the first `limit` over all kinds.
        ready.sort_by_key(|row| (row.next_attempt_at, row.id));
        ready.truncate(limit as usize);
        let count = ready.len();
        let mut by_instance: BTreeMap<i64, Vec<EffectRecord>> = BTreeMap::new();
        let mut groups = Vec::new();
        for row in ready {
            match row.instance_id {
                Some(instance) => by_instance.entry(instance).or_default().push(row),
                None => groups.push(vec![row]),
            }
        }
        // An instance's effects run in the order they were written.
        groups.extend(by_instance.into_values().map(|mut rows| {
            rows.sort_by_key(|row| row.id);
            rows
        }));
        Ok((count, groups))
    }

    /// When the next pending effect of `kinds` is due (one index lookup per kind).
    pub async fn next_attempt(&self, kinds: &[EffectKind]) -> Result<Option<i64>, StoreError> {
        let mut next: Option<i64> = None;
        for kind in kinds {
            let first = outbox::Entity::find()
                .select_only()
                .column(outbox::Column::NextAttemptAt)
                .filter(outbox::Column::Kind.eq(kind.as_str()))
                .filter(outbox::Column::Status.eq(EffectStatus::Pending.as_str()))
                .order_by_asc(outbox::Column::NextAttemptAt)
                .into_tuple::<i64>()
                .one(&self.db)
                .await?;
            next = match (next, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(next)
    }

    /// How many effects wait to be carried out (retries included), over every kind: what is
    /// left of a burst, counted on the (kind, status, next attempt) index.
    pub async fn count_pending_effects(&self) -> Result<u64, StoreError> {
        let every: Vec<EffectKind> = EffectKind::DELIVERED.into_iter().chain(EffectKind::INTERNAL).collect();
        self.count_pending_of(&every).await
    }

    /// How many effects of `kinds` wait to be carried out (retries included).
    pub async fn count_pending_of(&self, kinds: &[EffectKind]) -> Result<u64, StoreError> {
        let mut pending = 0;
        for kind in kinds {
            pending += outbox::Entity::find()
                .filter(outbox::Column::Kind.eq(kind.as_str()))
                .filter(outbox::Column::Status.eq(EffectStatus::Pending.as_str()))
                .count(&self.db)
                .await?;
        }
        Ok(pending)
    }

    /// Records how an effect ended, at `now` (the engine's clock).
    pub async fn finish_effect(
        &self,
        id: i64,
        status: EffectStatus,
        error: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write_outbox(OutboxWrite::Finish { id, status, error, at: now, audit: None }).await
    }

    /// Marks effects done, in one statement.
    pub async fn finish_effects(&self, ids: &[i64], now: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write_outbox(OutboxWrite::Done { ids: ids.to_vec(), at: now }).await
    }

    /// Records a delivery given up with `error`, and its entry in the audit log, in one
    /// write: on SQLite both ride in the writer's next group commit, so a burst of failures
    /// (an outage, a directory without addresses) costs no flush per message.
    pub async fn give_up_effect(
        &self,
        id: i64,
        error: String,
        now: i64,
        audit: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let audit = Some(audit);
        self.write_outbox(OutboxWrite::Finish { id, status: EffectStatus::Failed, error: Some(error), at: now, audit })
            .await
    }

    pub async fn retry_effect(&self, id: i64, attempts: i32, next: i64, error: &str) -> Result<(), StoreError> {
        self.write_outbox(OutboxWrite::Retry { id, attempts, next, error: error.to_owned() }).await
    }

    /// On SQLite the workers' bookkeeping rides in the writer's next group commit: a write of
    /// its own would wait for the write lock the writer holds (SQLite's busy handler sleeps),
    /// and pay a flush of its own.
    async fn write_outbox(&self, write: OutboxWrite) -> Result<(), StoreError> {
        match &self.writer {
            Some(writer) => writer.write_outbox(write).await,
            // A write with its audit entry is two statements: both or neither.
            None if write.audits() => {
                let txn = self.db.begin().await?;
                write.execute(&txn).await?;
                Ok(txn.commit().await?)
            }
            None => Ok(write.execute(&self.db).await?),
        }
    }

    /// Puts failed deliveries back in the queue, due at `now` with their attempts reset: the
    /// one `id` if given, else every failed one of `kinds`. Their key (and so the Message-ID
    /// of a notice) stays, so a receiver can tell a redelivery from a new message. Returns
    /// the ids requeued, each with its instance's.
    pub async fn requeue_failed(
        &self,
        id: Option<i64>,
        kinds: &[EffectKind],
        now: i64,
    ) -> Result<Vec<(i64, Option<i64>)>, StoreError> {
        let mut select = outbox::Entity::find()
            .filter(outbox::Column::Status.eq(EffectStatus::Failed.as_str()))
            .filter(outbox::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
        if let Some(id) = id {
            select = select.filter(outbox::Column::Id.eq(id));
        }
        let rows: Vec<(i64, Option<i64>)> =
            select.all(&self.db).await?.into_iter().map(|row| (row.id, row.instance_id)).collect();
        let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(500) {
            outbox::Entity::update_many()
                .col_expr(outbox::Column::Status, EffectStatus::Pending.as_str().into())
                .col_expr(outbox::Column::Attempts, 0.into())
                .col_expr(outbox::Column::NextAttemptAt, now.into())
                .col_expr(outbox::Column::DoneAt, Option::<i64>::None.into())
                .filter(outbox::Column::Id.is_in(chunk.iter().copied()))
                .filter(outbox::Column::Status.eq(EffectStatus::Failed.as_str()))
                .exec(&self.db)
                .await?;
        }
        Ok(rows)
    }

    /// Queues an effect outside a transition (idempotent by its key).
    pub async fn enqueue_effect(
        &self,
        instance_id: Option<i64>,
        key: &str,
        effect: &Effect,
        now: i64,
    ) -> Result<(), StoreError> {
        let row = outbox::ActiveModel {
            instance_id: Set(instance_id),
            key: Set(key.to_owned()),
            kind: Set(effect.kind().as_str().to_owned()),
            payload: Set(effect.payload()),
            status: Set(EffectStatus::Pending.as_str().into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            done_at: Set(None),
            ..Default::default()
        };
        outbox::Entity::insert(row)
            .on_conflict_do_nothing_on([outbox::Column::Key])
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// One slice of the effects of `kinds` (of `status`, if given), newest first.
    pub async fn effects(
        &self,
        kinds: &[EffectKind],
        status: Option<EffectStatus>,
        slice: Slice,
    ) -> Result<(Vec<EffectRecord>, Total), StoreError> {
        let mut select = outbox::Entity::find().filter(outbox::Column::Kind.is_in(kinds.iter().map(|k| k.as_str())));
        if let Some(status) = status {
            select = select.filter(outbox::Column::Status.eq(status.as_str()));
        }
        let (rows, total) = read_page(select.order_by_desc(outbox::Column::Id), slice, &self.db).await?;
        Ok((rows.into_iter().map(EffectRecord::decode).collect::<Result<_, _>>()?, total))
    }
}

/// A change to outbox rows by the workers that carry them out.
#[derive(Clone, Debug)]
pub(super) enum OutboxWrite {
    /// Effects carried out.
    Done { ids: Vec<i64>, at: i64 },
    /// An effect that ended otherwise (failed, given up), with its entry in the audit log if
    /// it has one.
    Finish { id: i64, status: EffectStatus, error: Option<String>, at: i64, audit: Option<NewAuditEntry> },
    /// An attempt failed; the next is due at `next`.
    Retry { id: i64, attempts: i32, next: i64, error: String },
}

impl OutboxWrite {
    /// Whether the write adds an entry to the audit log besides changing its row.
    fn audits(&self) -> bool {
        matches!(self, OutboxWrite::Finish { audit: Some(_), .. })
    }

    pub(super) async fn execute(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let update = outbox::Entity::update_many();
        let update = match self {
            OutboxWrite::Done { ids, at } => update
                .col_expr(outbox::Column::Status, EffectStatus::Done.as_str().into())
                .col_expr(outbox::Column::DoneAt, Some(*at).into())
                .filter(outbox::Column::Id.is_in(ids.iter().copied())),
            OutboxWrite::Finish { id, status, error, at, audit } => {
                if let Some(audit) = audit {
                    audit.insert(db).await?;
                }
                update
                    .col_expr(outbox::Column::Status, status.as_str().into())
                    .col_expr(outbox::Column::LastError, error.clone().into())
                    .col_expr(outbox::Column::DoneAt, Some(*at).into())
                    .filter(outbox::Column::Id.eq(*id))
            }
            OutboxWrite::Retry { id, attempts, next, error } => update
                .col_expr(outbox::Column::Attempts, (*attempts).into())
                .col_expr(outbox::Column::NextAttemptAt, (*next).into())
                .col_expr(outbox::Column::LastError, Some(error.clone()).into())
                .filter(outbox::Column::Id.eq(*id)),
        };
        update.exec(db).await?;
        Ok(())
    }
}
