//! The workflow of one instance: statflow's interpreter (`statflow_workflows::engine::apply`)
//! run as Temporal workflow code.
//!
//! The workflow keeps the instance's state; every event reaches it as the `apply` update
//! (actions, signals, activity results, calendar changes, a virtual clock's timers) or as one
//! of its own Temporal timers (the step's deadline, reminders, escalations, step timers).
//! Each transition is queued, and the run loop records the queue in statflow's store (the
//! read model every page and endpoint reads) with the `record` activity, in order; an update
//! answers once its transition is recorded, so the caller reads its own write.
//!
//! Determinism: the inputs of `apply` are the state, the event, the instant and the
//! definition version, all from the workflow's history (the definition version is immutable
//! once stored), and the calendar (see docs/engines.md for what a calendar import means to a
//! replay).

use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use statflow_workflows::engine::{self, Command, Event, InstanceState, Refusal, Status};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, LocalActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};
use temporalio_workflow::RetryPolicy;

use super::activities::{Loaded, Perform, Projection, Recorded};
use super::world;
use crate::engine::embedded::outbox::RECORDS;
use crate::engine::Engine;
use crate::store::effects::EffectKind;
use crate::store::{from_millis, to_millis};

/// The id of the workflow of `instance`. Instance ids are only unique within one statflow
/// database, and each database has a task queue of its own, which the id names.
pub fn workflow_id(task_queue: &str, instance: i64) -> String {
    format!("{task_queue}/instance/{instance}")
}

/// How long one `load` or `record` may take before Temporal retries it (it only touches the
/// store, so a long one means the store is down).
const PROJECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What starts a workflow: the instance it runs (its start is already in the store), and
/// the instant the starter's clock read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Start {
    pub instance: i64,
    pub now_millis: i64,
}

/// An event for the instance, with the instant the sender's clock reads (a virtual clock's
/// instant in demonstrations and tests).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivered {
    pub event: Event,
    pub now_millis: i64,
    /// The calendar import the sender computes with: a worker behind it catches up first.
    #[serde(default)]
    pub calendar_generation: i64,
}

/// The answer to an event: refused, or applied with the commands it gave (recorded by then).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Answer {
    Applied(Vec<Command>),
    Refused(Refusal),
}

/// Up to 8 attempts a second apart doubling, as the outbox worker retries (then the instance
/// hears `ActivityFailed`).
fn perform_options() -> ActivityOptions {
    let retry = RetryPolicy::builder().maximum_attempts(8).build();
    ActivityOptions::with_start_to_close_timeout(PROJECTION_TIMEOUT).retry_policy(retry).build()
}

#[workflow]
#[derive(Default)]
pub struct InstanceWorkflow {
    instance: i64,
    /// The definition version the instance runs on.
    version: String,
    /// The state as of the last event applied; `None` until loaded from the store.
    state: Option<InstanceState>,
    /// Transitions applied and not yet recorded, oldest first.
    queue: Vec<Recorded>,
    /// The events counter of the last transition recorded.
    recorded: u64,
    /// The instant of the last event applied, in milliseconds: time never runs back.
    last_now: i64,
    /// The sender's clock minus workflow time at the last event: a virtual clock keeps
    /// running from where it was last read.
    offset: i64,
    /// Bumped by every change the run loop must look at.
    changes: u64,
    /// Updates being handled: the workflow ends only once each has its answer.
    in_flight: u32,
    /// Record-only effects of recorded transitions, to carry out as activities, oldest first.
    effects: std::collections::VecDeque<Perform>,
}

#[workflow_methods]
impl InstanceWorkflow {
    #[run(name = "statflow.instance")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, start: Start) -> WorkflowResult<String> {
        let workflow_now = workflow_millis(ctx);
        ctx.state_mut(|w| {
            w.instance = start.instance;
            w.offset = start.now_millis - workflow_now;
        });
        // Local activities: run by the worker inside the workflow task that asks for them
        // (one round trip to the server fewer per event), recorded as markers in the history.
        let options = LocalActivityOptions::builder().start_to_close_timeout(PROJECTION_TIMEOUT).build();
        let loaded: Loaded = ctx.execute_local_activity(Projection::load, start.instance, options.clone()).await?;
        ctx.state_mut(|w| {
            w.version = loaded.version;
            w.recorded = loaded.state.events;
            w.last_now = loaded.updated_at;
            w.effects.extend(loaded.pending);
            w.state = Some(loaded.state);
            w.changes += 1;
        });
        loop {
            let queue = ctx.state_mut(|w| std::mem::take(&mut w.queue));
            if let Some(last) = queue.last().map(|r| r.transition_state.events) {
                // Their effect rows are in the store once recorded: then they can be carried out.
                let effects: Vec<Perform> = queue.iter().flat_map(record_only_effects).collect();
                ctx.execute_local_activity(Projection::record, queue, options.clone()).await?;
                ctx.state_mut(|w| {
                    w.recorded = last;
                    w.effects.extend(effects);
                    w.changes += 1;
                });
                continue;
            }
            if let Some(effect) = ctx.state_mut(|w| w.effects.pop_front()) {
                // Quick (it only writes the store), so the loop waits for it.
                let key = effect.key.clone();
                let event = match ctx.execute_activity(Projection::perform, effect, perform_options()).await {
                    Ok(result) => Event::ActivityCompleted { key, result },
                    Err(error) => Event::ActivityFailed { key, error: error.to_string() },
                };
                let now = ctx.state(|w| w.now(workflow_millis(ctx)));
                if let Err(refusal) = ctx.state_mut(|w| w.take(&event, now)) {
                    tracing::error!(instance = start.instance, %refusal, "an effect's result was refused");
                }
                continue;
            }
            if let Some(outcome) = ctx.state(|w| w.outcome()) {
                // Late reports to a finished instance change nothing (as in the embedded
                // engine), so the workflow can end once every update has its answer.
                ctx.wait_condition(|w| w.queue.is_empty() && w.in_flight == 0).await?;
                return Ok(outcome);
            }
            let now = ctx.state(|w| w.now(workflow_millis(ctx)));
            match ctx.state(|w| w.next_timer()) {
                Some((timer, at)) if at <= now => {
                    let refused =
                        ctx.state_mut(|w| w.take(&Event::TimerFired { timer: timer.clone() }, at.max(w.last_now)));
                    if let Err(refusal) = refused {
                        // As in the embedded engine, a timer that cannot fire must not block
                        // the instance: it is dropped, and said.
                        tracing::error!(instance = start.instance, %timer, %refusal, "timer could not fire");
                        ctx.state_mut(|w| w.drop_timer(&timer));
                    }
                }
                Some((_, at)) => {
                    let seen = ctx.state(|w| w.changes);
                    temporalio_sdk::workflows::select! {
                        _ = ctx.timer(Duration::from_millis((at - now) as u64)) => {},
                        _ = ctx.wait_condition(|w: &Self| w.changes != seen) => {},
                    };
                }
                None => {
                    let seen = ctx.state(|w| w.changes);
                    ctx.wait_condition(|w| w.changes != seen).await?;
                }
            }
        }
    }

    /// Applies an event and answers once its transition is recorded.
    #[update]
    pub async fn apply(ctx: &mut WorkflowContext<Self>, delivered: Delivered) -> Answer {
        if ctx.wait_condition(|w| w.state.is_some()).await.is_err() {
            return Answer::Applied(vec![]);
        }
        let (_, generation) = world().calendar();
        if generation < delivered.calendar_generation {
            // This worker has not read the sender's calendar yet: the task fails, nothing of
            // it is kept, and Temporal hands it out again (this worker catches up meanwhile).
            ctx.force_task_fail(format!(
                "the worker's calendar is import {generation}, the event's {}",
                delivered.calendar_generation
            ));
            return Answer::Applied(vec![]);
        }
        let workflow_now = workflow_millis(ctx);
        let taken = ctx.state_mut(|w| {
            w.offset = delivered.now_millis - workflow_now;
            w.in_flight += 1;
            let now = delivered.now_millis.max(w.last_now);
            w.take(&delivered.event, now)
        });
        let answer = match taken {
            Err(refusal) => Answer::Refused(refusal),
            Ok(None) => Answer::Applied(vec![]),
            Ok(Some((events, commands))) => {
                let _ = ctx.wait_condition(|w| w.recorded >= events).await;
                Answer::Applied(commands)
            }
        };
        ctx.state_mut(|w| w.in_flight -= 1);
        answer
    }

    /// The instance's state as the workflow holds it (applied, perhaps not yet recorded).
    #[query]
    pub fn state(&self, _ctx: &WorkflowContextView) -> Option<InstanceState> {
        self.state.clone()
    }
}

impl InstanceWorkflow {
    /// The instant the instance is at: workflow time moved by the sender's clock, never
    /// before the last event.
    fn now(&self, workflow_now: i64) -> i64 {
        (workflow_now + self.offset).max(self.last_now)
    }

    /// The timer due first, with its due instant.
    fn next_timer(&self) -> Option<(String, i64)> {
        let step = self.state.as_ref()?.step.as_ref()?;
        step.timers.iter().map(|(id, t)| (id.clone(), to_millis(t.at))).min_by_key(|(id, at)| (*at, id.clone()))
    }

    fn drop_timer(&mut self, timer: &str) {
        if let Some(step) = self.state.as_mut().and_then(|s| s.step.as_mut()) {
            step.timers.remove(timer);
        }
    }

    fn outcome(&self) -> Option<String> {
        match &self.state.as_ref()?.status {
            Status::Completed { outcome } => Some(outcome.clone()),
            _ => None,
        }
    }

    /// Applies `event` at `now` (milliseconds) and queues the transition for recording.
    /// Answers with the events counter and commands of a transition that changed something.
    fn take(&mut self, event: &Event, now: i64) -> Result<Option<(u64, Vec<Command>)>, Refusal> {
        let state = self.state.as_ref().expect("loaded before any event");
        if let Event::TimerFired { timer } = event {
            // Fired already (by its Temporal timer, or by a clock move that got here first).
            if !state.step.as_ref().is_some_and(|s| s.timers.contains_key(timer)) {
                return Ok(None);
            }
        }
        let world = world();
        let definition = world
            .definitions()
            .get(&self.version)
            .unwrap_or_else(|| panic!("definition version {} is not loaded on this worker", self.version));
        let (calendar, _) = world.calendar();
        let at: DateTime<FixedOffset> = from_millis(now);
        let transition = engine::apply(&definition, state, event, at, &calendar)?;
        if transition.state == *state && transition.commands.is_empty() {
            return Ok(None);
        }
        let events = transition.state.events;
        let commands = transition.commands.clone();
        self.queue.push(Recorded {
            instance: self.instance,
            at_millis: now,
            event: event.clone(),
            transition_state: transition.state.clone(),
            commands: transition.commands,
        });
        self.state = Some(transition.state);
        self.last_now = now;
        self.changes += 1;
        Ok(Some((events, commands)))
    }
}

/// The record-only effects (certificates, statuses…) a recorded transition asked for.
fn record_only_effects(recorded: &Recorded) -> impl Iterator<Item = Perform> + '_ {
    recorded.commands.iter().filter_map(|command| match command {
        Command::RunActivity { key, activity } if RECORDS.contains(&EffectKind::of_activity(activity)) => {
            Some(Perform { instance: recorded.instance, key: key.clone() })
        }
        _ => None,
    })
}

/// Workflow time in milliseconds (the same on every replay).
fn workflow_millis<W>(ctx: &WorkflowContext<W>) -> i64 {
    ctx.workflow_time().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64).unwrap_or(0)
}
