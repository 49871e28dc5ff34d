//! The workflow of one instance: statflow's interpreter (`statflow_workflows::engine::apply`)
//! run as Temporal workflow code.
//!
//! The workflow keeps the instance's state; every event reaches it as the `apply` update
//! (actions, signals, other instances' reports, calendar changes, a virtual clock's timers),
//! as one of its own Temporal timers (the step's deadline, reminders, escalations, step
//! timers) or as the result of one of its activities. Each transition is queued, and the run
//! loop records the queue in statflow's store (the read model every page and endpoint reads)
//! with the `record` activity, in order; an update answers once its transition is recorded,
//! so the caller reads its own write.
//!
//! The effects a recorded transition stored (notices, escalations, certificates, children,
//! signals…) are carried out as activities, side by side and beside the loop, so a notice
//! retried for an hour holds up neither timers nor actions. A child procedure's workflow is
//! started as a Temporal child workflow of its parent's.
//!
//! Determinism: the inputs of `apply` are the state, the event, the instant and the
//! definition version, all from the workflow's history (the definition version is immutable
//! once stored; a migration names the one it goes to in its event), and the calendar (see docs/engines.md for what a calendar import means to a
//! replay).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset};
use std::future::Future;
use std::task::Poll;

use futures_util::future::{self, Either, FutureExt, LocalBoxFuture};
use serde::{Deserialize, Serialize};
use statflow_workflows::engine::{self, Command, Event, InstanceState, Refusal, Status};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ChildWorkflowOptions, LocalActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult,
};
use temporalio_workflow::{ParentClosePolicy, RetryPolicy};

use super::activities::{Loaded, Outcome, Perform, Projection, Recorded};
use super::world;
use crate::engine::embedded::{delivery, outbox};
use crate::engine::Engine;
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

/// How long one attempt at a delivery may take before Temporal gives it to another worker.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How an effect's activity is retried: as the embedded engine's workers retry it (a second
/// apart doubling, to at most an hour), up to their attempts; the activity itself gives up on
/// the last one and says so, so the instance hears `ActivityFailed` with the reason.
fn effect_options(effect: &Perform) -> ActivityOptions {
    let (attempts, timeout) = if effect.kind.is_delivered() {
        // An SMTP exchange or a webhook call, each bounded by its own timeouts (30 s by
        // default). A worker lost in the middle of one leaves it to another after this.
        (delivery::MAX_ATTEMPTS, DELIVERY_TIMEOUT)
    } else {
        (outbox::MAX_ATTEMPTS, PROJECTION_TIMEOUT)
    };
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(3600))
        .maximum_attempts(attempts as u32)
        .build();
    ActivityOptions::with_start_to_close_timeout(timeout).retry_policy(retry).build()
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
    /// Effects to start, oldest first.
    effects: VecDeque<Perform>,
    /// The keys of the effects being carried out, so a pending one is started once.
    carrying_out: BTreeSet<String>,
    /// Set when effects were put back in the queue: the loop looks them up again.
    requeued: bool,
    /// The newest calendar import an event of this instance was computed with: the workflow
    /// never computes with an older one (a worker behind it fails the task and catches up).
    calendar_generation: i64,
}

/// What one of the loop's side tasks came to.
enum Finished {
    Effect(Perform, Result<Outcome, String>),
    ChildStarted(i64, Result<(), String>),
}

#[workflow_methods]
impl InstanceWorkflow {
    #[run(name = "statflow.instance")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, start: Start) -> WorkflowResult<String> {
        // Every use of the context below reads it, so the side tasks can hold it too.
        let ctx: &WorkflowContext<Self> = ctx;
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
            w.state = Some(loaded.state);
            w.queue_effects(loaded.pending);
        });
        let mut side_tasks: Vec<LocalBoxFuture<'_, Finished>> = Vec::new();
        loop {
            let queue = ctx.state_mut(|w| std::mem::take(&mut w.queue));
            if let Some(last) = queue.last().map(|r| r.transition_state.events) {
                // The effects they stored can be carried out once they are recorded.
                let pending = ctx.execute_local_activity(Projection::record, queue, options.clone()).await?;
                ctx.state_mut(|w| {
                    w.recorded = last;
                    w.queue_effects(pending);
                });
                continue;
            }
            if ctx.state_mut(|w| std::mem::take(&mut w.requeued)) {
                let pending = ctx.execute_local_activity(Projection::pending, start.instance, options.clone()).await?;
                ctx.state_mut(|w| w.queue_effects(pending));
            }
            while let Some(effect) = ctx.state_mut(|w| w.effects.pop_front()) {
                side_tasks.push(carry_out(ctx, effect).boxed_local());
            }
            if let Some(outcome) = ctx.state(|w| w.outcome()) {
                // Late reports to a finished instance change nothing (as in the embedded
                // engine), so the workflow can end once every update has its answer and every
                // effect is carried out.
                if side_tasks.is_empty() && ctx.state(|w| w.queue.is_empty() && w.in_flight == 0) {
                    return Ok(outcome);
                }
            }
            let now = ctx.state(|w| w.now(workflow_millis(ctx)));
            let next = ctx.state(|w| w.next_timer());
            if let Some((timer, at)) = next.clone().filter(|(_, at)| *at <= now) {
                if !calendar_caught_up(ctx, ctx.state(|w| w.calendar_generation)) {
                    // Failed: Temporal gives the task out again once this worker caught up.
                    ctx.wait_condition(|_| false).await?;
                }
                let refused =
                    ctx.state_mut(|w| w.take(&Event::TimerFired { timer: timer.clone() }, at.max(w.last_now)));
                if let Err(refusal) = refused {
                    // As in the embedded engine, a timer that cannot fire must not block the
                    // instance: it is dropped, and said.
                    tracing::error!(instance = start.instance, %timer, %refusal, "timer could not fire");
                    ctx.state_mut(|w| w.drop_timer(&timer));
                }
                continue;
            }
            let seen = ctx.state(|w| w.changes);
            let timer = match next {
                Some((_, at)) => Either::Left(ctx.timer(Duration::from_millis((at - now) as u64))),
                None => Either::Right(future::pending()),
            };
            let finished = temporalio_sdk::workflows::select! {
                _ = timer.fuse() => None,
                _ = ctx.wait_condition(|w: &Self| w.changes != seen) => None,
                finished = next_finished(&mut side_tasks).fuse() => Some(finished),
            };
            match finished {
                Some(Finished::Effect(effect, outcome)) => {
                    if let Some(child) = outcome.as_ref().ok().and_then(|o| o.child) {
                        side_tasks.push(start_child(ctx, child).boxed_local());
                    }
                    let now = ctx.state(|w| w.now(workflow_millis(ctx)));
                    if let Err(refusal) = ctx.state_mut(|w| w.effect_done(&effect, outcome, now)) {
                        tracing::error!(instance = start.instance, key = %effect.key, %refusal, "an effect's result was refused");
                    }
                }
                Some(Finished::ChildStarted(child, Err(error))) => {
                    tracing::error!(instance = start.instance, child, %error, "the child's workflow did not start");
                }
                Some(Finished::ChildStarted(_, Ok(()))) | None => {}
            }
        }
    }

    /// Applies an event and answers once its transition is recorded.
    #[update]
    pub async fn apply(ctx: &mut WorkflowContext<Self>, delivered: Delivered) -> Answer {
        if ctx.wait_condition(|w| w.state.is_some()).await.is_err() {
            return Answer::Applied(vec![]);
        }
        let known = ctx.state(|w| w.calendar_generation).max(delivered.calendar_generation);
        if !calendar_caught_up(ctx, known) {
            return Answer::Applied(vec![]);
        }
        ctx.state_mut(|w| w.calendar_generation = known);
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
        ctx.state_mut(|w| {
            w.in_flight -= 1;
            w.changes += 1;
        });
        answer
    }

    /// Effects of the instance were put back in the queue (failed deliveries an administrator
    /// retries): the loop looks up its pending effects again.
    #[update]
    pub async fn requeued(ctx: &mut WorkflowContext<Self>, _instance: i64) -> bool {
        ctx.state_mut(|w| {
            w.requeued = true;
            w.changes += 1;
        });
        true
    }

    /// The instance's state as the workflow holds it (applied, perhaps not yet recorded).
    #[query]
    pub fn state(&self, _ctx: &WorkflowContextView) -> Option<InstanceState> {
        self.state.clone()
    }
}

/// Whether this worker's calendar is at least import `generation`; when not, the workflow
/// task is failed (nothing of it is kept) and Temporal hands it out again, this worker
/// catching up meanwhile.
fn calendar_caught_up(ctx: &WorkflowContext<InstanceWorkflow>, generation: i64) -> bool {
    let (_, current) = world().calendar();
    if current < generation {
        ctx.force_task_fail(format!("the worker's calendar is import {current}, the instance's {generation}"));
        return false;
    }
    true
}

/// The first of `tasks` to finish, taken out of them (pending while there are none). Polled
/// in order with the workflow's own waker: combinators with wakers of their own (such as
/// `FuturesUnordered`) are refused by the SDK as nondeterministic.
fn next_finished<'a, 'b>(
    tasks: &'a mut Vec<LocalBoxFuture<'b, Finished>>,
) -> impl Future<Output = Finished> + use<'a, 'b> {
    future::poll_fn(move |cx| {
        for index in 0..tasks.len() {
            if let Poll::Ready(finished) = tasks[index].as_mut().poll(cx) {
                drop(tasks.remove(index));
                return Poll::Ready(finished);
            }
        }
        Poll::Pending
    })
}

/// Carries out one effect as its activity.
async fn carry_out(ctx: &WorkflowContext<InstanceWorkflow>, effect: Perform) -> Finished {
    let options = effect_options(&effect);
    let outcome = if effect.kind.is_delivered() {
        ctx.execute_activity(Projection::deliver, effect.clone(), options).await
    } else {
        ctx.execute_activity(Projection::perform, effect.clone(), options).await
    };
    Finished::Effect(effect, outcome.map_err(|e| e.to_string()))
}

/// Starts the workflow of a child instance its parent stored, as a child workflow. It runs
/// on after its parent (a rectification outlives nothing, but its record is the store's),
/// and reports its outcome to the parent as an effect of its own.
async fn start_child(ctx: &WorkflowContext<InstanceWorkflow>, child: i64) -> Finished {
    let now = ctx.state(|w| w.now(workflow_millis(ctx)));
    let options = ChildWorkflowOptions::builder()
        .workflow_id(workflow_id(ctx.task_queue(), child))
        .parent_close_policy(ParentClosePolicy::Abandon)
        .build();
    let started = ctx.start_child_workflow(InstanceWorkflow::run, Start { instance: child, now_millis: now }, options);
    Finished::ChildStarted(child, started.await.map(|_| ()).map_err(|e| e.to_string()))
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

    /// Queues the pending effects not already being carried out.
    fn queue_effects(&mut self, pending: Vec<Perform>) {
        for effect in pending {
            if self.carrying_out.insert(effect.key.clone()) {
                self.effects.push_back(effect);
            }
        }
        self.changes += 1;
    }

    /// Takes in what carrying out `effect` came to, at `now`: the instance hears its result
    /// (if it waits for one), and what it queued in turn is queued.
    fn effect_done(&mut self, effect: &Perform, outcome: Result<Outcome, String>, now: i64) -> Result<(), Refusal> {
        self.carrying_out.remove(&effect.key);
        self.changes += 1;
        let report = match outcome {
            Ok(outcome) => {
                self.queue_effects(outcome.then);
                outcome.report
            }
            // Its retries ran out without the activity saying why (timeouts, a lost worker).
            Err(error) => Some(Err(error)).filter(|_| effect.kind.reports()),
        };
        let key = effect.key.clone();
        let event = match report {
            None => return Ok(()),
            Some(Ok(result)) => Event::ActivityCompleted { key, result },
            Some(Err(error)) => Event::ActivityFailed { key, error },
        };
        if self.outcome().is_some() {
            // A late report to a finished instance changes nothing.
            return Ok(());
        }
        self.take(&event, now).map(|_| ())
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
        // A migration is applied with, and leaves the workflow on, the version it goes to
        // (carried in the event, so a replay takes the same one: a stored version never changes).
        let version = event.applies_version().unwrap_or(&self.version).to_owned();
        let definition = world
            .definitions()
            .get(&version)
            .unwrap_or_else(|| panic!("definition version {version} is not loaded on this worker"));
        let (calendar, _) = world.calendar();
        let at: DateTime<FixedOffset> = from_millis(now);
        let transition = engine::apply(&definition, state, event, at, &calendar)?;
        if transition.state == *state && transition.commands.is_empty() {
            return Ok(None);
        }
        self.version = version;
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

/// Workflow time in milliseconds (the same on every replay).
fn workflow_millis<W>(ctx: &WorkflowContext<W>) -> i64 {
    ctx.workflow_time().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64).unwrap_or(0)
}
