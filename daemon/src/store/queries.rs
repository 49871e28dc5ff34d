//! Reads for the API, the CLI and the runtime loops.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{history, instances, outbox, tasks, timers};
use super::{Store, StoreError};

impl Store {
    pub async fn instance(&self, id: i64) -> Result<instances::Model, StoreError> {
        instances::Entity::find_by_id(id).one(&self.db).await?.ok_or(StoreError::NotFound(id))
    }

    pub async fn history(&self, id: i64) -> Result<Vec<history::Model>, StoreError> {
        Ok(history::Entity::find()
            .filter(history::Column::InstanceId.eq(id))
            .order_by_asc(history::Column::Seq)
            .all(&self.db)
            .await?)
    }

    /// The definition version and start instant of instances, by id: what their source
    /// notices follow from, without reading their states.
    pub async fn instance_origins(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, (String, i64)>, StoreError> {
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, String, i64)> = instances::Entity::find()
                .select_only()
                .column(instances::Column::Id)
                .column(instances::Column::DefinitionVersion)
                .column(instances::Column::CreatedAt)
                .filter(instances::Column::Id.is_in(chunk.to_vec()))
                .into_tuple()
                .all(&self.db)
                .await?;
            out.extend(rows.into_iter().map(|(id, version, created)| (id, (version, created))));
        }
        Ok(out)
    }

    pub async fn open_tasks_of(&self, id: i64) -> Result<Vec<tasks::Model>, StoreError> {
        Ok(tasks::Entity::find()
            .filter(tasks::Column::InstanceId.eq(id))
            .filter(tasks::Column::Status.eq("open"))
            .all(&self.db)
            .await?)
    }

    pub async fn outbox_of(&self, id: i64) -> Result<Vec<outbox::Model>, StoreError> {
        Ok(outbox::Entity::find()
            .filter(outbox::Column::InstanceId.eq(id))
            .order_by_asc(outbox::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// When the earliest timer falls due (an index lookup).
    pub async fn next_timer_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(timers::Entity::find().order_by_asc(timers::Column::DueAt).limit(1).one(&self.db).await?.map(|t| t.due_at))
    }

    /// The pending effects of `kinds` whose next attempt is due at `now` (at most `limit`,
    /// longest due first), in groups: one instance's effects form one group and run in order;
    /// different groups may run side by side. An effect of no instance is a group of its own.
    ///
    /// Each kind is read on its own, in the order of the (kind, status, next attempt) index,
    /// so a pass reads about `limit` rows per kind however many are pending; one query over
    /// all kinds would have to gather and sort every pending row of them on each pass.
    pub async fn ready_outbox(
        &self,
        kinds: &[&str],
        now: i64,
        limit: u64,
    ) -> Result<(usize, Vec<Vec<outbox::Model>>), StoreError> {
        let mut ready = Vec::new();
        for kind in kinds {
            ready.extend(
                outbox::Entity::find()
                    .filter(outbox::Column::Kind.eq(*kind))
                    .filter(outbox::Column::Status.eq("pending"))
                    .filter(outbox::Column::NextAttemptAt.lte(now))
                    .order_by_asc(outbox::Column::NextAttemptAt)
                    .order_by_asc(outbox::Column::Id)
                    .limit(limit)
                    .all(&self.db)
                    .await?,
            );
        }
        // Whatever sorts before the overall `limit`-th row is within its own kind's first
        // `limit`, so this is the first `limit` over all kinds.
        ready.sort_by_key(|row| (row.next_attempt_at, row.id));
        ready.truncate(limit as usize);
        let count = ready.len();
        let mut by_instance: std::collections::BTreeMap<i64, Vec<outbox::Model>> = Default::default();
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
    pub async fn next_attempt(&self, kinds: &[&str]) -> Result<Option<i64>, StoreError> {
        let mut next: Option<i64> = None;
        for kind in kinds {
            let first = outbox::Entity::find()
                .select_only()
                .column(outbox::Column::NextAttemptAt)
                .filter(outbox::Column::Kind.eq(*kind))
                .filter(outbox::Column::Status.eq("pending"))
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

    /// Timers due by `now`, earliest first.
    pub async fn due_timers(&self, now: i64, limit: u64) -> Result<Vec<timers::Model>, StoreError> {
        Ok(timers::Entity::find()
            .filter(timers::Column::DueAt.lte(now))
            .order_by_asc(timers::Column::DueAt)
            .order_by_asc(timers::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }

    pub async fn count_instances(&self) -> Result<u64, StoreError> {
        Ok(instances::Entity::find().count(&self.db).await?)
    }
}

impl Store {
    pub async fn drop_timer(&self, id: &str) -> Result<(), StoreError> {
        timers::Entity::delete_by_id(id.to_owned()).exec(&self.db).await?;
        Ok(())
    }

    /// Records how an effect ended, at `now` (the runtime's clock).
    pub async fn finish_outbox(
        &self,
        id: i64,
        status: &str,
        error: Option<String>,
        now: i64,
    ) -> Result<(), StoreError> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, status.into())
            .col_expr(outbox::Column::LastError, error.into())
            .col_expr(outbox::Column::DoneAt, Some(now).into())
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Queues an effect outside a transition (idempotent by its key).
    pub async fn enqueue_effect(
        &self,
        instance_id: Option<i64>,
        key: &str,
        kind: &str,
        payload: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        use sea_orm::Set;
        let row = outbox::ActiveModel {
            instance_id: Set(instance_id),
            key: Set(key.to_owned()),
            kind: Set(kind.to_owned()),
            payload: Set(payload.to_string()),
            status: Set("pending".into()),
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

    /// Marks effects done, in one statement.
    pub async fn finish_outbox_rows(&self, ids: &[i64], now: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Status, "done".into())
            .col_expr(outbox::Column::DoneAt, Some(now).into())
            .filter(outbox::Column::Id.is_in(ids.iter().copied()))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn retry_outbox(&self, id: i64, attempts: i32, next: i64, error: &str) -> Result<(), StoreError> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::Attempts, attempts.into())
            .col_expr(outbox::Column::NextAttemptAt, next.into())
            .col_expr(outbox::Column::LastError, Some(error.to_owned()).into())
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Ids of every running instance.
    pub async fn running_instances(&self) -> Result<Vec<i64>, StoreError> {
        Ok(instances::Entity::find()
            .select_only()
            .column(instances::Column::Id)
            .filter(instances::Column::Status.eq("running"))
            .order_by_asc(instances::Column::Id)
            .into_tuple::<i64>()
            .all(&self.db)
            .await?)
    }
}
