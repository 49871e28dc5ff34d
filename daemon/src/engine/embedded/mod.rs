//! The embedded engine: runs the pure interpreter durably on the store, in this process.
//!
//! - [`calendar`]: importing notices and recomputing running instances' deadlines after.
//! - [`clock`]: the system clock, or a virtual one moved through the admin API.
//! - [`timers`]: the worker that sleeps until the next due timer and fires due ones in order.
//! - [`outbox`]: the worker that carries out effects after commit and reports back.
//! - [`delivery`]: the worker that sends notices and escalations by email and webhook.
//! - [`digest`]: each staff member's daily digest of open tasks.
//! - [`anchoring`]: the daily ledger anchor (a schedule job).
//! - [`lease`]: which of several processes on one database does the work that belongs to no
//!   instance (under a host only).
//! - [`schedules`]: running cron schedules, with catch-up and run keys.
//! - [`facade`]: the [`Engine`](super::Engine) trait implemented on all of the above.
//!
//! Handed a [`Host`] (the Temporal engine), the same engine keeps the store as the read
//! model and keeps the workers that belong to no instance (schedules, digests and anchors,
//! calendar recomputation, clock moves), but every event of a started instance is applied by
//! the instance's workflow instead of here, and its timers and effects are the workflow's.
//!
//! Nothing needed for recovery lives only in memory: after a restart, open instances,
//! timers (overdue ones fire at once, in order) and unfinished outbox rows are read back.

pub mod anchoring;
pub mod calendar;
pub mod clock;
pub mod delivery;
pub mod digest;
mod facade;
pub mod lease;
mod migration;
pub mod outbox;
pub mod schedules;
pub mod timers;

use std::sync::{Arc, RwLock};

use serde_json::Value;
use statflow_workflows::calendar::{parse_tsv, Calendar};
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{Actor, Command, Event};
use tokio::sync::Notify;

use super::registry::Definitions;
use super::supervisor::{Shutdown, Supervisor, WorkerFuture};
use super::EngineError;
use crate::integrity::anchors::Anchoring;
use crate::store::effects::EffectKind;
use crate::store::records::CalendarYearRecord;
use crate::store::transition::{Applied, Origin, Submission, Work};
use crate::store::{to_millis, Store, StoreError};
use clock::Clock;
use delivery::Channels;

/// How long shutdown waits for the workers to finish their passes.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Embedded {
    store: Store,
    clock: Clock,
    /// The calendar and the import generation it stands for.
    calendar: RwLock<(Arc<Calendar>, i64)>,
    definitions: Definitions,
    /// Woken after a calendar import: running instances are to be recomputed.
    calendar_changed: Notify,
    timers_changed: Notify,
    outbox_changed: Notify,
    deliveries_changed: Notify,
    schedules_changed: Notify,
    /// Held while the virtual clock is moved, so moves never interleave.
    clock_moves: Arc<tokio::sync::Mutex<()>>,
    /// `clock_moves`, held from start-up until the schedule worker has run the fire times
    /// missed while the daemon was down (`settle_before_serving`).
    clock_held_for_catch_up: std::sync::Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
    /// Held during a calendar import, so generations are handed out one at a time.
    calendar_imports: tokio::sync::Mutex<()>,
    /// Where the ledger's anchors go; set once at start.
    anchoring: std::sync::OnceLock<Anchoring>,
    /// Whether a task opened sends its notice (`[mail] task_notices`, on by default).
    task_notices: std::sync::atomic::AtomicBool,
    workers: Supervisor,
    /// Where instances' events are applied when not here: set once, at start.
    host: std::sync::OnceLock<Arc<dyn Host>>,
    /// Whether this process does the work that belongs to no instance.
    shared_work: lease::SharedWork,
}

/// The official calendar with the stored imports `years`, and the newest import's generation.
fn calendar_of(years: &[CalendarYearRecord]) -> Result<(Calendar, i64), StoreError> {
    let mut calendar = Calendar::official();
    let mut generation = 0;
    for row in years {
        generation = generation.max(row.generation);
        let corrupt = |e: String| StoreError::Corrupt(format!("calendar year {}: {e}", row.year));
        for notice in parse_tsv(&row.notice, &row.origin).map_err(|e| corrupt(e.to_string()))? {
            calendar.import(notice, &row.origin).map_err(|e| corrupt(e.to_string()))?;
        }
    }
    Ok((calendar, generation))
}

/// Runs started instances elsewhere (a Temporal workflow each): the embedded engine stores
/// starts and hands every later event to the host, which applies it with the same
/// interpreter and records the transition in the store before answering.
#[async_trait::async_trait]
pub trait Host: Send + Sync {
    /// An instance was stored by its start, at `now`: from now on the host runs it.
    async fn started(&self, id: i64, now: chrono::DateTime<chrono::FixedOffset>) -> Result<(), EngineError>;
    /// Applies `event` to the instance at `now` and answers, once the transition is in the
    /// store, with the commands it gave (none when nothing changed).
    async fn apply(
        &self,
        id: i64,
        event: &Event,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Vec<Command>, EngineError>;
    /// Effects of the instance were put back in the queue (failed deliveries retried by an
    /// administrator): carry them out again, also when the instance has finished.
    async fn requeued(&self, id: i64, now: chrono::DateTime<chrono::FixedOffset>) -> Result<(), EngineError>;
}

impl Embedded {
    /// Loads definitions (storing the built-in library's versions) and calendar years.
    pub async fn load(store: Store, clock: Clock) -> Result<Arc<Embedded>, StoreError> {
        let definitions = Definitions::load(&store, to_millis(clock.now())).await?;
        let (calendar, generation) = calendar_of(&store.calendar_years().await?)?;
        Ok(Arc::new(Embedded {
            store,
            clock,
            calendar: RwLock::new((Arc::new(calendar), generation)),
            definitions,
            calendar_changed: Notify::new(),
            timers_changed: Notify::new(),
            outbox_changed: Notify::new(),
            deliveries_changed: Notify::new(),
            schedules_changed: Notify::new(),
            clock_moves: Arc::new(tokio::sync::Mutex::new(())),
            clock_held_for_catch_up: std::sync::Mutex::new(None),
            calendar_imports: tokio::sync::Mutex::new(()),
            anchoring: std::sync::OnceLock::new(),
            task_notices: std::sync::atomic::AtomicBool::new(true),
            workers: Supervisor::default(),
            host: std::sync::OnceLock::new(),
            shared_work: lease::SharedWork::default(),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Catches up with what another process stored: calendar imports, definition versions
    /// and a shared virtual clock's moves (a Temporal worker beside the processes that take
    /// them, or another node on the same database). Returns whether anything was new.
    pub async fn refresh_from_store(&self) -> Result<bool, StoreError> {
        let mut changed = self.definitions.refresh(&self.store).await?;
        if self.clock.is_virtual() {
            if let Some(at) = self.store.shared_virtual_clock().await? {
                if at > to_millis(self.clock.now()) {
                    self.clock.set(crate::store::from_millis(at));
                    // Retries waiting for the time just passed are due now.
                    self.outbox_changed.notify_one();
                    self.deliveries_changed.notify_one();
                    changed = true;
                }
            }
        }
        let years = self.store.calendar_years().await?;
        if years.iter().any(|row| row.generation > self.calendar_generation()) {
            let (calendar, generation) = calendar_of(&years)?;
            *self.calendar.write().expect("not poisoned") = (Arc::new(calendar), generation);
            changed = true;
        }
        Ok(changed)
    }

    /// The refresh worker's loop (several nodes on one database), until shutdown: every
    /// second, what the other nodes stored.
    async fn run_refresh(self: Arc<Self>, heartbeat: super::supervisor::Heartbeat, mut shutdown: Shutdown) {
        while !shutdown.is_set() {
            heartbeat.beat();
            if let Err(error) = self.refresh_from_store().await {
                tracing::warn!(%error, "could not read what other nodes stored");
            }
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = shutdown.wait() => {}
            }
        }
    }

    /// The calendar deadlines are computed with (the facade's `calendar` with its generation).
    fn current_calendar(&self) -> Arc<Calendar> {
        self.calendar.read().expect("not poisoned").0.clone()
    }

    /// Which import the current calendar stands for (0: the embedded notices only).
    fn calendar_generation(&self) -> i64 {
        self.calendar.read().expect("not poisoned").1
    }

    /// Where anchors go (nowhere but the database until configured).
    pub fn anchoring(&self) -> &Anchoring {
        self.anchoring.get().unwrap_or(&crate::integrity::anchors::NOWHERE)
    }

    /// Sets where anchors go; once, at start.
    pub fn configure_anchoring(&self, anchoring: Anchoring) {
        self.anchoring.set(anchoring).ok();
    }

    /// Whether a task opened sends its notice (on unless configured off).
    pub fn configure_task_notices(&self, on: bool) {
        self.task_notices.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Hands the running of started instances to `host`; once, before the workers start.
    pub fn hand_over(&self, host: Arc<dyn Host>) {
        self.host.set(host).ok();
    }

    /// The host running started instances, if not this engine.
    pub(super) fn host(&self) -> Option<&Arc<dyn Host>> {
        self.host.get()
    }

    /// Starts the supervised workers: timers (unless a host runs them), calendar
    /// recomputation, schedules, the outbox and delivery.
    pub fn start_workers(self: &Arc<Self>, channels: Arc<Channels>) {
        fn worker<F, Fut>(
            engine: &Arc<Embedded>,
            body: F,
        ) -> impl Fn(super::supervisor::Heartbeat, Shutdown) -> WorkerFuture
        where
            F: Fn(Arc<Embedded>, super::supervisor::Heartbeat, Shutdown) -> Fut + Send + Sync + 'static,
            Fut: std::future::Future<Output = ()> + Send + 'static,
        {
            let engine = engine.clone();
            move |heartbeat, shutdown| Box::pin(body(engine.clone(), heartbeat, shutdown))
        }
        if self.host().is_none() {
            // A host's workflows keep their instances' timers and carry out their effects.
            self.workers.spawn("timers", worker(self, |e, h, s| async move { e.run_timers(h, s).await }));
            self.workers.spawn("outbox", worker(self, |e, h, s| async move { e.run_outbox(h, s).await }));
        }
        if self.shared_work.lease_held().is_some() {
            self.workers.spawn("lease", worker(self, |e, h, s| async move { e.run_lease(h, s).await }));
            // What another node stores (definition versions, calendar imports, a shared
            // virtual clock's moves) reaches this one within a second.
            self.workers.spawn("refresh", worker(self, |e, h, s| async move { e.run_refresh(h, s).await }));
        }
        self.workers
            .spawn("calendar_recompute", worker(self, |e, h, s| async move { e.run_calendar_recompute(h, s).await }));
        self.workers.spawn("schedules", worker(self, |e, h, s| async move { e.run_schedules(h, s).await }));
        self.workers.spawn(
            "delivery",
            worker(self, move |e, h, s| {
                let channels = channels.clone();
                async move { e.run_delivery(channels, h, s).await }
            }),
        );
    }

    /// Tells every worker to stop and waits for them to finish their current pass.
    pub async fn shutdown(&self) {
        self.workers.shutdown(SHUTDOWN_GRACE).await;
        self.release_lease().await;
    }

    /// The loop of the worker of effects of `kinds`: runs `pass` while it finds work, then
    /// sleeps until the next retry of those kinds comes due, or until woken by new effects
    /// (or by the virtual clock moving), or shutdown.
    async fn work_until_stopped<F, Fut>(
        &self,
        kinds: &[EffectKind],
        wake: &Notify,
        what: &str,
        heartbeat: super::supervisor::Heartbeat,
        mut shutdown: Shutdown,
        mut pass: F,
    ) where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<usize, StoreError>>,
    {
        while !shutdown.is_set() {
            heartbeat.beat();
            if !self.shared_work.here() {
                self.wait_for_shared_work(&mut shutdown).await;
                continue;
            }
            let began = std::time::Instant::now();
            match pass().await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::debug!(worker = what, count, ms = began.elapsed().as_millis() as u64, "pass");
                    continue;
                }
                Err(error) => tracing::error!(%error, "{what} pass failed"),
            }
            let next = self.store.next_attempt(kinds).await;
            self.sleep_until(next, wake, what, &mut shutdown).await;
        }
    }

    fn wake(&self, applied: &Applied) {
        if applied.commands.iter().any(|c| matches!(c, Command::ScheduleTimer { .. })) {
            self.timers_changed.notify_one();
        }
        if applied.commands.iter().any(|c| {
            matches!(
                c,
                Command::RunActivity { .. }
                    | Command::StartChild { .. }
                    | Command::SignalInstance { .. }
                    | Command::Complete { .. }
            )
        }) {
            self.outbox_changed.notify_one();
            self.deliveries_changed.notify_one();
        } else if applied.commands.iter().any(|c| matches!(c, Command::OpenTask { .. }))
            && self.task_notices.load(std::sync::atomic::Ordering::Relaxed)
        {
            // The task's notice went into the outbox with the transition.
            self.deliveries_changed.notify_one();
        }
    }

    /// Starts an instance of `definition` (the benchmarks and schedules call this directly).
    pub async fn start_with(
        &self,
        definition: &Arc<Definition>,
        input: Value,
        actor: Actor,
        origin: Origin,
    ) -> Result<Applied, EngineError> {
        self.start_presented(definition, input, actor, origin, None).await
    }

    /// [`Self::start_with`] for a caller whose bearer token (its hash) is confirmed in the
    /// transaction that stores the start (see `Submission::token`).
    pub(super) async fn start_presented(
        &self,
        definition: &Arc<Definition>,
        input: Value,
        actor: Actor,
        origin: Origin,
        token: Option<String>,
    ) -> Result<Applied, EngineError> {
        // A child's workflow is started by its parent's (a Temporal child workflow).
        let child = matches!(origin, Origin::Child { .. });
        let work = Work::Start { definition: definition.clone(), input, actor, origin };
        let applied = self.transition_at(work, self.clock.now(), token).await?;
        if let Some(host) = self.host().filter(|_| !child) {
            host.started(applied.instance_id, self.clock.now()).await?;
        }
        Ok(applied)
    }

    /// Applies an event of the engine's own (a timer, an activity's result, a signal).
    pub async fn apply(&self, id: i64, event: &Event) -> Result<Applied, EngineError> {
        if let Some(host) = self.host() {
            let commands = host.apply(id, event, self.clock.now()).await?;
            let applied = Applied { instance_id: id, commands, standing: None, closed_tasks: vec![], event: None };
            // The host may have recorded it in another process, which cannot wake these workers.
            self.wake(&applied);
            return Ok(applied);
        }
        self.transition(Work::Apply { id, event: event.clone(), definitions: self.definitions.resolver() }).await
    }

    /// Stores a transition a host computed for `event` at `now`, as applying it here would
    /// have, and wakes the workers its commands concern.
    pub async fn record_hosted(
        &self,
        id: i64,
        event: Event,
        transition: statflow_workflows::engine::Transition,
        now: chrono::DateTime<chrono::FixedOffset>,
    ) -> Result<Applied, EngineError> {
        let work =
            Work::Record { id, event, transition: Box::new(transition), definitions: self.definitions.resolver() };
        self.transition_at(work, now, None).await
    }

    async fn transition(&self, work: Work) -> Result<Applied, EngineError> {
        self.transition_at(work, self.clock.now(), None).await
    }

    /// Stores `work` computed at `now` (only if `token`, a bearer token's hash, still stands)
    /// and wakes the workers its commands concern.
    pub(super) async fn transition_at(
        &self,
        work: Work,
        now: chrono::DateTime<chrono::FixedOffset>,
        token: Option<String>,
    ) -> Result<Applied, EngineError> {
        let (calendar, calendar_generation) = self.calendar.read().expect("not poisoned").clone();
        let task_notices = self.task_notices.load(std::sync::atomic::Ordering::Relaxed);
        let submission = Submission { work, now, calendar, calendar_generation, task_notices, token };
        let applied = self.store.transition(submission).await??;
        self.wake(&applied);
        Ok(applied)
    }
}
