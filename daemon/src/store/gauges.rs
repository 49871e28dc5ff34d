//! The counts behind the stored-state gauges of `/metrics`: running instances by procedure
//! and organization (with how many are overdue), pending timers, and effects waiting or
//! given up by kind. Each is one grouped count on an index; `/metrics` asks at most once per
//! `metrics::STATE_REFRESH`.

use sea_orm::{ConnectionTrait, Statement};

use super::records::{EffectStatus, InstanceStatus};
use super::{Store, StoreError};
use crate::metrics::StoredState;

impl Store {
    pub async fn stored_state(&self) -> Result<StoredState, StoreError> {
        let backend = self.db.get_database_backend();
        let query = |sql: &str| self.db.query_all_raw(Statement::from_string(backend, sql.to_owned()));
        // An instance that involves no organization is counted under the empty one.
        let instances = query(&format!(
            "SELECT i.procedure AS procedure, COALESCE(o.organization, '') AS organization, \
             COUNT(*) AS open, SUM(CASE WHEN i.overdue THEN 1 ELSE 0 END) AS overdue \
             FROM instances i LEFT JOIN instance_organizations o ON o.instance_id = i.id \
             WHERE i.status = '{}' GROUP BY i.procedure, COALESCE(o.organization, '')",
            InstanceStatus::Running.as_str()
        ))
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "procedure")?,
                row.try_get::<String>("", "organization")?,
                row.try_get::<i64>("", "open")? as u64,
                row.try_get::<i64>("", "overdue")? as u64,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        let timers = query("SELECT COUNT(*) AS pending FROM timers").await?;
        let timers_pending = timers.first().map(|row| row.try_get::<i64>("", "pending")).transpose()?.unwrap_or(0);
        let effects = query(&format!(
            "SELECT kind, status, COUNT(*) AS effects FROM outbox WHERE status IN ('{}', '{}') GROUP BY kind, status",
            EffectStatus::Pending.as_str(),
            EffectStatus::Failed.as_str()
        ))
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "kind")?,
                row.try_get::<String>("", "status")?,
                row.try_get::<i64>("", "effects")? as u64,
            ))
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
        Ok(StoredState { instances, timers_pending: timers_pending as u64, effects })
    }
}
