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
use statflow_workflows::calendar::Calendar;
use statflow_workflows::engine::Event;

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};
use crate::engine::{EngineError, Imported};
use crate::store::records::CalendarYearRecord;
use crate::store::{to_millis, StoreError};

/// Instances recomputed per batch: bounded memory, and the writer commits a batch together.
const RECOMPUTE_BATCH: u64 = 256;

impl Embedded {
    /// Imports notices (TSV or holiday-cn JSON) as a correction when `correction` gives a
    /// reason. Refused imports change nothing.
    pub(super) async fn import_notices(
        &self,
        origin: &str,
        content: &str,
        correction: Option<&str>,
    ) -> Result<Imported, EngineError> {
        let _one_at_a_time = self.calendar_imports.lock().await;
        let refused = |message: String| {
            let field = if message.contains("`replace`") { "replace" } else { "content" };
            EngineError::invalid(field, message)
        };
        let notices = statflow_workflows::calendar::parse_any(content, origin).map_err(|e| refused(e.to_string()))?;
        let mut calendar = Calendar::clone(&self.current_calendar());
        for notice in &notices {
            calendar.import_checked(notice.clone(), origin, correction).map_err(|e| refused(e.to_string()))?;
        }
        let generation = self.calendar_generation() + 1;
        let imported_at = to_millis(self.clock.now());
        let years: Vec<CalendarYearRecord> = notices
            .iter()
            .map(|notice| CalendarYearRecord {
                year: notice.year,
                origin: origin.to_owned(),
                notice: notice.to_tsv(),
                imported_at,
                correction: correction.map(str::to_owned),
                generation,
            })
            .collect();
        self.store.save_calendar_years(&years).await?;
        *self.calendar.write().expect("not poisoned") = (Arc::new(calendar), generation);
        let instances_to_recompute = self.instances_to_recompute().await?;
        self.calendar_changed.notify_one();
        Ok(Imported { years: notices.iter().map(|n| n.year).collect(), generation, instances_to_recompute })
    }

    /// Running instances whose deadlines were computed with an older calendar.
    pub async fn instances_to_recompute(&self) -> Result<u64, StoreError> {
        self.store.count_stale(self.calendar_generation()).await
    }

    /// Recomputes the next batch of stale instances after instance id `after`; returns the
    /// last id it revisited, or `None` when none is left after `after`.
    pub async fn recompute_batch(&self, after: i64) -> Result<Option<i64>, StoreError> {
        let ids = self.store.stale_after(self.calendar_generation(), after, RECOMPUTE_BATCH).await?;
        let outcomes = join_all(ids.iter().map(|id| self.apply(*id, &Event::CalendarChanged))).await;
        for (id, outcome) in ids.iter().zip(outcomes) {
            if let Err(error) = outcome {
                // It stays stale and is tried again on the next sweep.
                tracing::warn!(instance = id, %error, "deadline recomputation failed");
            }
        }
        Ok(ids.last().copied())
    }

    /// The recomputation worker's loop, until shutdown: after every import (and once at
    /// start, for one a restart interrupted), sweeps the stale instances batch by batch in
    /// id order. An instance that could not be recomputed is tried again on a later sweep
    /// (after the next import, or a minute later), never in a tight loop.
    pub(super) async fn run_calendar_recompute(self: Arc<Self>, heartbeat: Heartbeat, mut shutdown: Shutdown) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(60);
        let mut after = 0;
        while !shutdown.is_set() {
            heartbeat.beat();
            if !self.shared_work.here() {
                self.wait_for_shared_work(&mut shutdown).await;
                continue;
            }
            match self.recompute_batch(after).await {
                Ok(Some(last)) => {
                    after = last;
                    tracing::info!(up_to = last, generation = self.calendar_generation(), "calendar recomputation");
                }
                Ok(None) => {
                    after = 0;
                    tokio::select! {
                        _ = tokio::time::timeout(RETRY, self.calendar_changed.notified()) => {}
                        () = shutdown.wait() => {}
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "calendar recomputation failed");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        () = shutdown.wait() => {}
                    }
                }
            }
        }
    }
}
