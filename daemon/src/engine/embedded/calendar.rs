//! Calendar imports and what follows them.
//!
//! An import is checked as an administrator's act ([`Calendar::import_checked`]): a year that
//! already has a notice is replaced only as a correction with its reason, and an implausible
//! notice is refused. The accepted notices are stored under a new *generation*, and the
//! request answers at once with how many running instances will be recomputed. The
//! recomputation runs in the background ([`Runtime::run_calendar_recompute`]) in bounded
//! batches: each running instance whose deadlines were computed with an older generation
//! gets `CalendarChanged`, which stamps the new one, so the work resumes after a restart and
//! its progress is a count.

use std::sync::Arc;

use futures_util::future::join_all;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Serialize;
use statflow_workflows::calendar::Calendar;
use statflow_workflows::engine::Event;

use super::{LoadError, Runtime};
use crate::store::entities::{calendars, instances};
use crate::store::{from_millis, to_millis, StoreError};

/// Instances recomputed per batch: bounded memory, and the writer commits a batch together.
const RECOMPUTE_BATCH: u64 = 256;

/// What an accepted import will change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub years: Vec<i32>,
    pub generation: i64,
    /// Running instances whose deadlines the background recomputation will revisit.
    pub instances_to_recompute: u64,
}

/// One loaded year, as the calendar listing shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct YearView {
    pub year: i32,
    pub sources: Vec<String>,
    /// `embedded` (built in) or the name it was imported under.
    pub origin: String,
    /// The reason given when this notice replaced an earlier one.
    pub correction: Option<String>,
    pub imported_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl Runtime {
    /// Imports notices (TSV or holiday-cn JSON) as a correction when `correction` gives a
    /// reason. Refused imports change nothing.
    pub async fn import_calendar(
        &self,
        origin: &str,
        content: &str,
        correction: Option<&str>,
    ) -> Result<Imported, LoadError> {
        let _one_at_a_time = self.calendar_imports.lock().await;
        let notices =
            statflow_workflows::calendar::parse_any(content, origin).map_err(|e| LoadError::Calendar(e.to_string()))?;
        let mut calendar = Calendar::clone(&self.calendar());
        for notice in &notices {
            calendar
                .import_checked(notice.clone(), origin, correction)
                .map_err(|e| LoadError::Calendar(e.to_string()))?;
        }
        let generation = self.calendar_generation() + 1;
        let rows = notices.iter().map(|notice| calendars::ActiveModel {
            year: Set(notice.year),
            origin: Set(origin.to_owned()),
            notice: Set(notice.to_tsv()),
            imported_at: Set(to_millis(self.clock.now())),
            correction: Set(correction.map(str::to_owned)),
            generation: Set(generation),
        });
        calendars::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(calendars::Column::Year)
                    .update_columns([
                        calendars::Column::Origin,
                        calendars::Column::Notice,
                        calendars::Column::ImportedAt,
                        calendars::Column::Correction,
                        calendars::Column::Generation,
                    ])
                    .to_owned(),
            )
            .exec(&self.store.db)
            .await
            .map_err(StoreError::from)?;
        *self.calendar.write().expect("not poisoned") = (Arc::new(calendar), generation);
        let instances_to_recompute = self.instances_to_recompute().await?;
        self.calendar_changed.notify_one();
        Ok(Imported { years: notices.iter().map(|n| n.year).collect(), generation, instances_to_recompute })
    }

    /// Running instances whose deadlines were computed with an older calendar.
    pub async fn instances_to_recompute(&self) -> Result<u64, StoreError> {
        Ok(self.stale_instances().count(&self.store.db).await?)
    }

    fn stale_instances(&self) -> sea_orm::Select<instances::Entity> {
        instances::Entity::find()
            .filter(instances::Column::Status.eq("running"))
            .filter(instances::Column::CalendarGeneration.lt(self.calendar_generation()))
    }

    /// Recomputes the next batch of stale instances after instance id `after`; returns the
    /// last id it revisited, or `None` when none is left after `after`.
    pub async fn recompute_batch(&self, after: i64) -> Result<Option<i64>, StoreError> {
        let ids: Vec<i64> = self
            .stale_instances()
            .filter(instances::Column::Id.gt(after))
            .select_only()
            .column(instances::Column::Id)
            .order_by_asc(instances::Column::Id)
            .limit(RECOMPUTE_BATCH)
            .into_tuple()
            .all(&self.store.db)
            .await?;
        let outcomes = join_all(ids.iter().map(|id| self.apply(*id, &Event::CalendarChanged))).await;
        for (id, outcome) in ids.iter().zip(outcomes) {
            if let Err(error) = outcome {
                // It stays stale and is tried again on the next sweep.
                tracing::warn!(instance = id, %error, "deadline recomputation failed");
            }
        }
        Ok(ids.last().copied())
    }

    /// Runs until the process ends: after every import (and once at start, for one a
    /// restart interrupted), sweeps the stale instances batch by batch in id order. An
    /// instance that could not be recomputed is tried again on a later sweep (after the next
    /// import, or a minute later), never in a tight loop.
    pub async fn run_calendar_recompute(self: Arc<Self>) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(60);
        let mut after = 0;
        loop {
            match self.recompute_batch(after).await {
                Ok(Some(last)) => {
                    after = last;
                    tracing::info!(up_to = last, generation = self.calendar_generation(), "calendar recomputation");
                }
                Ok(None) => {
                    after = 0;
                    let _ = tokio::time::timeout(RETRY, self.calendar_changed.notified()).await;
                }
                Err(error) => {
                    tracing::error!(%error, "calendar recomputation failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// The loaded years, with where each notice came from and whether it was corrected.
    pub async fn calendar_years(&self) -> Result<Vec<YearView>, StoreError> {
        let stored = calendars::Entity::find().all(&self.store.db).await?;
        let calendar = self.calendar();
        Ok(calendar
            .years()
            .map(|year| {
                let row = stored.iter().find(|r| r.year == year);
                YearView {
                    year,
                    sources: calendar.notice(year).map(|n| n.sources.clone()).unwrap_or_default(),
                    origin: row.map_or_else(|| "embedded".to_owned(), |r| r.origin.clone()),
                    correction: row.and_then(|r| r.correction.clone()),
                    imported_at: row.map(|r| from_millis(r.imported_at)),
                }
            })
            .collect())
    }
}
