//! Running cron schedules: the annual evaluations, half-yearly summaries, digests, anchors
//! and retention sweeps that start themselves. What a schedule is (its spec, cron
//! translation and the built-in catalogue) is data in `statflow_workflows::schedules`;
//! where it is kept is the store's; here it runs.
//!
//! Each fire time runs at most once: its run row is unique per (schedule, fire time), and
//! every instance a run starts carries a unique start key naming the run and the subject, so
//! a run resumed after a crash starts only what it had not started yet.
//!
//! While the daemon runs, every fire time runs in order, interleaved with timers (a virtual
//! clock jumping a year runs each fire time in between, at its time). Fire times missed while
//! the daemon was down are handled at start-up by the schedule's catch-up policy: run each
//! (`all`), run the latest and skip the rest (`once`), or skip them (`skip`). Skipped fire
//! times are recorded as skipped runs, so nothing is missed silently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Map, Value};
use statflow_workflows::engine::Actor;
use statflow_workflows::schedules::{fill, run_fields, Catalogue, CatchUp, Cron, Job, ScheduleSpec, Selection};

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};
use crate::engine::{ClockMove, EngineError, RunReport, MOVE_LISTED};
use crate::store::instances::RunningSelection;
use crate::store::records::{RunRecord, RunStatus};
use crate::store::retention;
use crate::store::schedules::ScheduleRecord;
use crate::store::transition::Origin;
use crate::store::{from_millis, to_millis};

/// At most this many missed fire times of one schedule are looked at on start-up; a cron
/// expression firing every minute over a long outage must not stall the daemon.
const CATCH_UP_LIMIT: usize = 1000;

/// A long clock move is cut into batches of this many days.
const ADVANCE_BATCH_DAYS: i64 = 31;

/// One thing a subject contributes to a run: the key that makes its start unique, and the
/// fields its input may use.
struct Subject {
    key: String,
    fields: Map<String, Value>,
}

fn report(run: RunRecord) -> RunReport {
    RunReport { fire_at: run.fire_time(), schedule: run.schedule, status: run.status.to_string(), result: run.result }
}

/// The schedule's cron as stored; it was checked when stored, so failing now is corrupt data.
fn cron_of(schedule: &ScheduleRecord) -> Result<Cron, EngineError> {
    Cron::parse(&schedule.cron)
        .map_err(|e| EngineError::Store(crate::store::StoreError::Corrupt(format!("schedule {}: {e}", schedule.id))))
}

impl Embedded {
    /// Checks a schedule, against the loaded procedures and the statutory keeping periods
    /// too, before it is stored.
    pub fn check_schedule(&self, spec: &ScheduleSpec) -> Result<Cron, EngineError> {
        let cron = spec.check().map_err(|e| EngineError::invalid(e.field, e.message))?;
        match &spec.job {
            Job::Start { procedure, jurisdiction, .. }
                if self.definitions.current(procedure, jurisdiction).is_none() =>
            {
                Err(EngineError::invalid(
                    "job.procedure",
                    format!("no procedure `{procedure}` is loaded for jurisdiction `{jurisdiction}`"),
                ))
            }
            Job::RetentionSweep { records_years, jurisdictions } => {
                // The default applies wherever no jurisdiction is named, so it must satisfy
                // every statutory minimum not overridden.
                let uncovered = retention::RULES.iter().filter(|r| !jurisdictions.contains_key(r.jurisdiction));
                if let Some(problem) =
                    uncovered.filter_map(|r| retention::too_short(r.jurisdiction, *records_years)).next()
                {
                    return Err(EngineError::invalid("job.records_years", problem));
                }
                for (jurisdiction, years) in jurisdictions {
                    if let Some(problem) = retention::too_short(jurisdiction, *years) {
                        return Err(EngineError::invalid("job.jurisdictions", problem));
                    }
                }
                Ok(cron)
            }
            _ => Ok(cron),
        }
    }

    /// Checks and stores a schedule. Its next fire time is the first after now: changing or
    /// re-enabling a schedule never catches up on the time before. `built_in` marks a new
    /// schedule; one already stored keeps its mark.
    pub(super) async fn store_schedule(
        &self,
        id: &str,
        spec: &ScheduleSpec,
        built_in: bool,
    ) -> Result<(), EngineError> {
        let cron = self.check_schedule(spec)?;
        let now = self.clock.now();
        self.store.put_schedule(id, spec, built_in, cron.next_after(now).map(to_millis), to_millis(now)).await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// Installs the built-in schedules that are not stored yet.
    pub async fn install_built_in_schedules(&self) -> Result<(), EngineError> {
        for (id, spec) in Catalogue::built_in().schedules() {
            if self.store.schedule(id).await?.is_none() {
                self.store_schedule(id, spec, true).await?;
            }
        }
        Ok(())
    }

    /// Applies each schedule's catch-up policy to the fire times that passed while the daemon
    /// was down, then runs what it claimed along with the runs a crash interrupted.
    pub async fn catch_up_schedules(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = self.settle_missed_fire_times().await?;
        reports.retain(|run| run.status != RunStatus::Running.as_str());
        reports.extend(self.finish_interrupted_runs().await?);
        Ok(reports)
    }

    /// The quick half of a catch-up: each missed fire time is recorded as skipped or claimed
    /// as a run to do (`running`, the state a crash leaves a run in), and each schedule's next
    /// fire time moves past now. Nothing is run: a claimed run can take long (a digest reads
    /// every open task), so at start-up the schedule worker runs them once the daemon serves.
    async fn settle_missed_fire_times(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = Vec::new();
        let now = self.clock.now();
        for schedule in self.store.enabled_schedules().await? {
            let Some(next) = schedule.next_fire_at.filter(|at| *at <= to_millis(now)) else { continue };
            let cron = cron_of(&schedule)?;
            let first = from_millis(next);
            let mut missed = vec![first];
            missed.extend(cron.after(first).take_while(|at| *at <= now).take(CATCH_UP_LIMIT - 1));
            let latest = *missed.last().expect("at least the first");
            for at in &missed {
                let run = match schedule.catch_up {
                    CatchUp::All => true,
                    CatchUp::Once => *at == latest,
                    CatchUp::Skip => false,
                };
                reports.push(if run {
                    let claimed = to_millis(self.clock.now());
                    report(
                        self.store
                            .claim_run(&schedule.id, to_millis(*at), RunStatus::Running, &json!({}), claimed)
                            .await?,
                    )
                } else {
                    self.skip_fire_time(&schedule, to_millis(*at)).await?
                });
            }
            self.store.set_next_fire(&schedule.id, cron.next_after(now.max(latest)).map(to_millis)).await?;
        }
        Ok(reports)
    }

    /// Start-up, alone on a database: settles the missed fire times and keeps the virtual
    /// clock still until the schedule worker has run the ones claimed.
    pub async fn settle_before_serving(&self) -> Result<Vec<RunReport>, EngineError> {
        let held = self.clock_moves.clone().lock_owned().await;
        let reports = self.settle_missed_fire_times().await?;
        *self.clock_held_for_catch_up.lock().expect("not poisoned") = Some(held);
        Ok(reports)
    }

    /// Runs every run claimed but not finished (by a catch-up, or cut short by a crash),
    /// oldest fire time first.
    async fn finish_interrupted_runs(&self) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = Vec::new();
        for run in self.store.interrupted_runs().await? {
            if let Some(schedule) = self.store.schedule(&run.schedule).await? {
                tracing::info!(schedule = %run.schedule, fire_at = %run.fire_time(), "running a claimed or interrupted run");
                reports.push(self.run_fire_time(&schedule, run.fire_at).await?);
            }
        }
        Ok(reports)
    }

    /// The earliest fire time of any enabled schedule.
    pub async fn next_schedule_fire(&self) -> Result<Option<i64>, EngineError> {
        Ok(self.store.next_due_schedule(None).await?.and_then(|s| s.next_fire_at))
    }

    /// Runs every fire time at or before `until`, oldest first, each at its own time.
    pub async fn run_due_schedules(&self, until: DateTime<FixedOffset>) -> Result<Vec<RunReport>, EngineError> {
        let mut reports = Vec::new();
        while let Some(schedule) = self.store.next_due_schedule(Some(to_millis(until))).await? {
            let at = schedule.next_fire_at.expect("a due schedule has a fire time");
            self.clock.set(from_millis(at));
            reports.push(self.run_fire_time(&schedule, at).await?);
            let next = cron_of(&schedule)?.next_after(from_millis(at)).map(to_millis);
            self.store.set_next_fire(&schedule.id, next).await?;
        }
        Ok(reports)
    }

    /// Records a missed fire time as skipped (a fire time already handled keeps its run).
    async fn skip_fire_time(&self, schedule: &ScheduleRecord, fire_at: i64) -> Result<RunReport, EngineError> {
        let result = json!({"reason": "missed while the daemon was down", "catch_up": schedule.catch_up});
        let now = to_millis(self.clock.now());
        Ok(report(self.store.claim_run(&schedule.id, fire_at, RunStatus::Skipped, &result, now).await?))
    }

    /// Runs one fire time (or finishes it, after a crash). Starting never happens twice for
    /// one subject: each start carries the key `{schedule}@{fire time}/{subject}`.
    pub(super) async fn run_fire_time(
        &self,
        schedule: &ScheduleRecord,
        fire_at: i64,
    ) -> Result<RunReport, EngineError> {
        let fire = from_millis(fire_at);
        let now = to_millis(self.clock.now());
        let run = self.store.claim_run(&schedule.id, fire_at, RunStatus::Running, &json!({}), now).await?;
        if run.status != RunStatus::Running {
            return Ok(report(run));
        }
        let (status, result, error) = match &schedule.job {
            Job::Start { procedure, jurisdiction, for_each, input } => {
                let (result, errors) =
                    self.start_for_each(&schedule.id, fire, procedure, jurisdiction, *for_each, input).await?;
                let status = if errors.is_empty() { RunStatus::Done } else { RunStatus::Failed };
                (status, result, (!errors.is_empty()).then(|| errors.join("; ")))
            }
            Job::RetentionSweep { records_years, jurisdictions } => {
                let removed = self.store.sweep_retention(fire, *records_years, jurisdictions).await?;
                (RunStatus::Done, removed, None)
            }
            Job::Digest { lookahead_working_days } => {
                let run = self.queue_digests(fire, *lookahead_working_days).await?;
                (run.status, run.result, None)
            }
            Job::AnchorLedger => self.anchor_ledger(fire).await?,
        };
        let finished = to_millis(self.clock.now());
        self.store.finish_run(&schedule.id, fire_at, status, &result, error.as_deref(), finished).await?;
        crate::metrics::schedule_run(&schedule.id, status.as_str());
        let detail = json!({"fire_at": fire, "status": status, "result": result});
        self.store.audit("scheduler", "schedule.run", &schedule.id, detail).await?;
        Ok(RunReport { schedule: schedule.id.clone(), fire_at: fire, status: status.to_string(), result })
    }

    /// Starts the job's procedure once per subject, skipping subjects a previous attempt of
    /// this run already started. Returns what was started and the subjects that failed.
    async fn start_for_each(
        &self,
        schedule: &str,
        fire: DateTime<FixedOffset>,
        procedure: &str,
        jurisdiction: &str,
        for_each: Option<Selection>,
        input: &Map<String, Value>,
    ) -> Result<(Value, Vec<String>), EngineError> {
        let definition = self.definitions.require(procedure, jurisdiction)?;
        let subjects = match for_each {
            None => vec![Subject { key: "-".into(), fields: Map::new() }],
            Some(selection) => self.select(selection, jurisdiction).await?,
        };
        // What an interrupted attempt of this run already started, read once.
        let prefix = format!("{schedule}@{}/", fire.to_rfc3339());
        let earlier = self.store.started_under(&prefix).await?;
        let mut started = BTreeMap::new();
        let mut errors = Vec::new();
        for subject in subjects {
            let key = format!("{prefix}{}", subject.key);
            if let Some(id) = earlier.get(&key) {
                started.insert(subject.key, *id);
                continue;
            }
            let fields = run_fields(fire, &subject.fields);
            let input = Value::Object(input.iter().map(|(k, v)| (k.clone(), fill(v, &fields))).collect());
            let actor = Actor { id: format!("schedule:{schedule}"), ..Actor::system() };
            match self.start_with(&definition, input, actor, Origin::Scheduled { key }).await {
                Ok(applied) => {
                    started.insert(subject.key, applied.instance_id);
                }
                Err(EngineError::Refused(refusal)) => errors.push(format!("{}: {refusal}", subject.key)),
                Err(other) => return Err(other),
            }
        }
        let instances: Vec<i64> = started.values().copied().collect();
        Ok((json!({"procedure": procedure, "jurisdiction": jurisdiction, "instances": instances}), errors))
    }

    /// The subjects of a selection (as the catalogue defines it), read from running instances.
    async fn select(&self, selection: Selection, jurisdiction: &str) -> Result<Vec<Subject>, EngineError> {
        let rule = Catalogue::built_in().selection(selection);
        let running = RunningSelection { procedure: &rule.procedure, jurisdiction, steps: rule.steps.as_deref() };
        let mut seen = BTreeSet::new();
        let mut subjects = Vec::new();
        for instance in self.store.running(&running).await? {
            let state = instance.state()?;
            match &rule.distinct {
                None => {
                    let mut fields: Map<String, Value> = state.data.into_iter().collect();
                    fields.insert("id".into(), Value::String(instance.id.to_string()));
                    // The key's form is kept from the first release: interrupted runs resume by it.
                    subjects.push(Subject { key: format!("authorization-{}", instance.id), fields });
                }
                Some(field) => {
                    let Some(Value::String(value)) = state.data.get(field) else { continue };
                    if !seen.insert(value.clone()) {
                        continue;
                    }
                    let mut fields = Map::new();
                    fields.insert(field.clone(), Value::String(value.clone()));
                    subjects.push(Subject { key: value.clone(), fields });
                }
            }
        }
        Ok(subjects)
    }

    /// The schedule worker's loop, until shutdown: sleeps until the next fire time (or a
    /// schedule changes) and runs what is due. With a virtual clock, clock moves run them.
    pub(super) async fn run_schedules(self: Arc<Self>, heartbeat: Heartbeat, mut shutdown: Shutdown) {
        // Alone, the process settled its missed fire times before it served and runs them
        // now; sharing the work, it catches up each time it takes the lease (the fire times
        // missed meanwhile are its to run).
        let mut caught_up = false;
        while !shutdown.is_set() {
            heartbeat.beat();
            if !self.shared_work.here() {
                caught_up = false;
                self.wait_for_shared_work(&mut shutdown).await;
                continue;
            }
            if !caught_up {
                match self.catch_up_schedules().await {
                    Ok(runs) => {
                        for run in runs {
                            tracing::info!(schedule = %run.schedule, fire_at = %run.fire_at, status = %run.status, "caught up");
                        }
                        caught_up = true;
                    }
                    Err(error) => tracing::error!(%error, "schedule catch-up failed"),
                }
                // The clock may move again (held by `settle_before_serving`), even after a
                // failed attempt: the next pass tries again, and a request must not wait on it.
                self.clock_held_for_catch_up.lock().expect("not poisoned").take();
            }
            if self.clock.is_virtual() {
                self.sleep_until(Ok(None), &self.schedules_changed, "fire time", &mut shutdown).await;
                continue;
            }
            if let Err(error) = self.run_due_schedules(self.clock.now()).await {
                tracing::error!(%error, "schedule pass failed");
            }
            let next = self.store.next_due_schedule(None).await.map(|s| s.and_then(|s| s.next_fire_at));
            self.sleep_until(next, &self.schedules_changed, "fire time", &mut shutdown).await;
        }
    }

    /// Moves time forward to `target`, firing timers and running schedules in the order they
    /// fall due, each at its own time (the virtual clock's advance).
    pub async fn advance_to(&self, target: DateTime<FixedOffset>) -> Result<ClockMove, EngineError> {
        let mut moved = ClockMove::default();
        let mut reached = self.clock.now();
        // In batches of at most a month of (virtual) time: each batch leaves the clock where
        // it ended, so readers see the progress and a long move reports it as it goes. A move
        // of no time is one batch too: it fires what is due at this very instant.
        loop {
            let batch_end = (reached + chrono::Duration::days(ADVANCE_BATCH_DAYS)).min(target);
            while let Some(at) = self.next_schedule_fire().await?.filter(|at| *at <= to_millis(batch_end)) {
                keep_first(&mut moved.fired, &mut moved.fired_total, self.fire_due(from_millis(at)).await?);
                keep_first(&mut moved.runs, &mut moved.runs_total, self.run_due_schedules(from_millis(at)).await?);
            }
            keep_first(&mut moved.fired, &mut moved.fired_total, self.fire_due(batch_end).await?);
            moved.batches += 1;
            reached = batch_end;
            if reached >= target {
                return Ok(moved);
            }
            tracing::info!(at = %reached, %target, fired = moved.fired_total, runs = moved.runs_total, "moving the clock");
        }
    }
}

/// Counts `more` into `total` and keeps it in `listed` while fewer than [`MOVE_LISTED`] are.
fn keep_first<T>(listed: &mut Vec<T>, total: &mut usize, more: Vec<T>) {
    *total += more.len();
    let room = MOVE_LISTED.saturating_sub(listed.len());
    listed.extend(more.into_iter().take(room));
}
