//! Timer reads: the next due time (an index lookup) and the timers due, earliest first.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::timers;
use super::records::TimerRecord;
use super::{Store, StoreError};

impl Store {
    /// When the earliest timer falls due.
    pub async fn next_timer_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(timers::Entity::find().order_by_asc(timers::Column::DueAt).limit(1).one(&self.db).await?.map(|t| t.due_at))
    }

    /// Timers due by `now`, earliest first.
    pub async fn due_timers(&self, now: i64, limit: u64) -> Result<Vec<TimerRecord>, StoreError> {
        Ok(timers::Entity::find()
            .filter(timers::Column::DueAt.lte(now))
            .order_by_asc(timers::Column::DueAt)
            .order_by_asc(timers::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| TimerRecord { id: t.id, instance_id: t.instance_id, timer_id: t.timer_id, due_at: t.due_at })
            .collect())
    }

    /// Removes a timer that cannot fire, so it does not block the ones behind it.
    pub async fn drop_timer(&self, id: &str) -> Result<(), StoreError> {
        timers::Entity::delete_by_id(id.to_owned()).exec(&self.db).await?;
        Ok(())
    }
}
