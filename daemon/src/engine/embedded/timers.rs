//! The timer worker: sleeps until the earliest timer is due (one index lookup, never a scan),
//! wakes early when an earlier timer is scheduled, and fires due timers in order of due time.
//! With a virtual clock it only fires when the clock is moved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use futures_util::future::join_all;
use statflow_workflows::engine::Event;
use tokio::sync::Notify;

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};
use crate::engine::{EngineError, Fired};
use crate::store::records::TimerRecord;
use crate::store::{from_millis, to_millis, StoreError};

/// How many due timers one pass reads.
const BATCH: u64 = 256;

impl Embedded {
    /// Fires every timer due at or before `until`, in order of due time. With a virtual
    /// clock, the clock stands at each timer's due time while it fires.
    pub async fn fire_due(&self, until: DateTime<FixedOffset>) -> Result<Vec<Fired>, EngineError> {
        let mut fired = Vec::new();
        loop {
            let due = self.store.due_timers(to_millis(until), BATCH).await?;
            if due.is_empty() {
                break;
            }
            // Timers due at the same instant fire together (the writer commits them in one
            // transaction); those of one instance still fire one after another, in order.
            for group in due.chunk_by(|a, b| a.due_at == b.due_at) {
                let at = from_millis(group[0].due_at);
                self.clock.set(at);
                // How late they fire (zero on a virtual clock, which stands at their due time).
                let late = Duration::from_millis((to_millis(self.clock.now()) - group[0].due_at).max(0) as u64);
                let mut by_instance: BTreeMap<i64, Vec<&TimerRecord>> = BTreeMap::new();
                for timer in group {
                    by_instance.entry(timer.instance_id).or_default().push(timer);
                }
                let outcomes = join_all(by_instance.into_values().map(|timers| async move {
                    let mut outcomes = Vec::with_capacity(timers.len());
                    for timer in timers {
                        let event = Event::TimerFired { timer: timer.timer_id.clone() };
                        outcomes.push((timer, self.apply(timer.instance_id, &event).await));
                    }
                    outcomes
                }))
                .await;
                let mut outcomes: Vec<_> = outcomes.into_iter().flatten().collect();
                outcomes.sort_by(|(a, _), (b, _)| a.id.cmp(&b.id));
                for (timer, outcome) in outcomes {
                    match outcome {
                        Ok(_) => {
                            crate::metrics::timer_fired(late);
                            fired.push(Fired { instance: timer.instance_id, timer: timer.timer_id.clone(), due: at })
                        }
                        Err(error) => {
                            tracing::error!(instance = timer.instance_id, timer = %timer.timer_id, %error, "timer could not fire");
                            // A timer that cannot fire must not block the others behind it.
                            self.store.drop_timer(&timer.id).await?;
                        }
                    }
                }
            }
        }
        self.clock.set(until);
        Ok(fired)
    }

    /// Sleeps until `next` (UTC milliseconds; at most a minute), until `wake` is notified,
    /// or until shutdown, whichever comes first. The loops of timers, schedules and effect
    /// workers wait this way: no polling scans, and an earlier entry scheduled meanwhile
    /// wakes them. With a virtual clock only `wake` (a clock move) brings work forward, but
    /// the minute still passes, so the heartbeat goes on.
    pub(super) async fn sleep_until(
        &self,
        next: Result<Option<i64>, StoreError>,
        wake: &Notify,
        what: &str,
        shutdown: &mut Shutdown,
    ) {
        // With a host, or other nodes on the database, another process also writes timers
        // and effects and cannot wake this one: look again every second.
        let shared = self.host().is_some() || self.shared_work.lease_held().is_some();
        let longest: i64 = if shared { 1_000 } else { 60_000 };
        let wait = match next {
            Ok(Some(due)) => Duration::from_millis((due - to_millis(self.clock.now())).clamp(0, longest) as u64),
            Ok(None) => Duration::from_millis(longest as u64),
            Err(error) => {
                tracing::error!(%error, "reading the next {what} failed");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = shutdown.wait() => {}
        }
    }

    /// The timer worker's loop, until shutdown. With a virtual clock the admin clock
    /// endpoint fires timers, so the loop only keeps its heartbeat.
    pub(super) async fn run_timers(self: Arc<Self>, heartbeat: Heartbeat, mut shutdown: Shutdown) {
        while !shutdown.is_set() {
            heartbeat.beat();
            if self.clock.is_virtual() {
                self.sleep_until(Ok(None), &self.timers_changed, "timer", &mut shutdown).await;
                continue;
            }
            if !self.shared_work.here() {
                self.wait_for_shared_work(&mut shutdown).await;
                continue;
            }
            let now = self.clock.now();
            if let Err(error) = self.fire_due(now).await {
                tracing::error!(%error, "timer pass failed");
            }
            let next = self.store.next_timer_due().await;
            self.sleep_until(next, &self.timers_changed, "timer", &mut shutdown).await;
        }
    }
}
