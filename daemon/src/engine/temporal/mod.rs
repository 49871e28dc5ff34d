//! The Temporal engine (`--engine temporal`): every instance is a Temporal workflow whose code
//! is statflow's interpreter, through Temporal's official Rust SDK.
//!
//! The embedded engine stays in front: it stores starts, checks callers, keeps the store as
//! the read model and runs the outbox, delivery, schedules and clock moves. It hands every
//! later event of an instance to [`TemporalHost`], which sends it to the instance's workflow
//! as an update; the workflow applies it and records the transition before answering.
//!
//! - [`workflow`]: the instance workflow (interpreter, timers, the `apply` update, its
//!   effects as activities and its children as child workflows).
//! - [`activities`]: between the workflow and the store (`load`, `record`, `pending`) and
//!   the effects (`perform`, `deliver`).
//!
//! See docs/engines.md for the mapping and what each failure does.

pub mod activities;
pub mod workflow;

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, FixedOffset};
use statflow_workflows::engine::{self, Command, Event};
use temporalio_client::errors::{WorkflowStartError, WorkflowUpdateError};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use temporalio_sdk::{Worker, WorkerOptions};

use super::embedded::delivery::Channels;
use super::embedded::{Embedded, Host};
use super::{Engine, EngineError};
use crate::store::records::InstanceStatus;
use crate::store::to_millis;
use activities::Projection;
use workflow::{workflow_id, Answer, Delivered, InstanceWorkflow, Start};

/// Where the Temporal server is and which of its queues statflow's workflows use.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `HOST:PORT` of the Temporal frontend.
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
}

impl Settings {
    pub const DEFAULT_NAMESPACE: &'static str = "default";
    pub const DEFAULT_TASK_QUEUE: &'static str = "statflow";

    async fn connect(&self) -> Result<Client, String> {
        let target = url::Url::parse(&format!("http://{}", self.address))
            .map_err(|e| format!("--temporal-address: `{}`: {e}", self.address))?;
        let identity = format!("statflow@{}", std::process::id());
        let connection = Connection::connect(ConnectionOptions::new(target).identity(identity).build())
            .await
            .map_err(|e| format!("--temporal-address: {}: {e}", self.address))?;
        Client::new(connection, ClientOptions::new(self.namespace.clone()).build()).map_err(|e| e.to_string())
    }
}

/// What the workflow code and activities of this process work with: the engine (the
/// definition versions, the calendar, the store) and the delivery channels. Workflow code
/// cannot be handed values by its caller, so the worker sets it once before it runs.
static WORLD: OnceLock<(Arc<Embedded>, Arc<Channels>)> = OnceLock::new();

fn world() -> Arc<Embedded> {
    WORLD.get().expect("the worker sets its engine before it runs").0.clone()
}

/// The channels messages go out on.
fn channels() -> Arc<Channels> {
    WORLD.get().expect("the worker sets its channels before it runs").1.clone()
}

/// How long an event waits for its workflow's answer before the caller is told to look again
/// (every request gets an answer, also while no worker runs).
const UPDATE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long stopping waits for the worker to finish the tasks it holds.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a worker that stopped by itself (it panicked, or lost its server for good) waits
/// before it starts again.
const RESTART_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends instances' events to their workflows.
pub struct TemporalHost {
    client: Client,
    engine: std::sync::Weak<Embedded>,
    task_queue: String,
}

impl TemporalHost {
    /// Connects to the Temporal server; `engine` is the embedded engine in front.
    pub async fn connect(settings: &Settings, engine: &Arc<Embedded>) -> Result<TemporalHost, String> {
        Ok(TemporalHost {
            client: settings.connect().await?,
            engine: Arc::downgrade(engine),
            task_queue: settings.task_queue.clone(),
        })
    }

    async fn deliver(&self, id: i64, delivered: &Delivered) -> Result<Answer, EngineError> {
        let handle = self.client.get_workflow_handle::<InstanceWorkflow>(workflow_id(&self.task_queue, id));
        let update = handle.execute_update(InstanceWorkflow::apply, delivered.clone(), Default::default());
        match tokio::time::timeout(UPDATE_WAIT, update).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(WorkflowUpdateError::NotFound(_))) => Err(EngineError::NotFound(id)),
            Ok(Err(error)) => Err(unavailable(error)),
            Err(_) => Err(EngineError::Unavailable(format!(
                "instance {id}'s workflow did not answer within {} s (is a worker running?); \
                 the event may still be applied: read the instance before trying again",
                UPDATE_WAIT.as_secs()
            ))),
        }
    }

    /// What `event` does to an instance the store shows finished (its workflow has ended):
    /// the interpreter's answer on the stored state — a refusal for an action or a signal,
    /// nothing for a late report. `None` while the instance is running.
    async fn after_the_end(
        &self,
        id: i64,
        event: &Event,
        now: DateTime<FixedOffset>,
    ) -> Result<Option<Result<Vec<Command>, EngineError>>, EngineError> {
        let engine = self.engine.upgrade().ok_or_else(|| EngineError::Unavailable("statflow is stopping".into()))?;
        let record = engine.store().instance(id).await?;
        if record.status != InstanceStatus::Completed {
            return Ok(None);
        }
        let definition = engine.definitions().require_version(&record.definition_version)?;
        let (calendar, _) = engine.calendar();
        Ok(Some(match engine::apply(&definition, &record.state()?, event, now, &calendar) {
            Ok(_) => Ok(vec![]),
            Err(refusal) => Err(EngineError::Refused(refusal)),
        }))
    }
}

fn unavailable(error: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(format!("the Temporal server did not take the event: {error}"))
}

#[async_trait::async_trait]
impl Host for TemporalHost {
    async fn started(&self, id: i64, now: DateTime<FixedOffset>) -> Result<(), EngineError> {
        // Starting twice is harmless: the running workflow is kept.
        let options = WorkflowStartOptions::new(self.task_queue.clone(), workflow_id(&self.task_queue, id))
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
        match self
            .client
            .start_workflow(InstanceWorkflow::run, Start { instance: id, now_millis: to_millis(now) }, options)
            .await
        {
            Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => Ok(()),
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn apply(&self, id: i64, event: &Event, now: DateTime<FixedOffset>) -> Result<Vec<Command>, EngineError> {
        let generation = self.engine.upgrade().map_or(0, |engine| engine.calendar().1);
        let delivered = Delivered { event: event.clone(), now_millis: to_millis(now), calendar_generation: generation };
        let mut answer = self.deliver(id, &delivered).await;
        if answer.is_err() {
            if let Some(outcome) = self.after_the_end(id, event, now).await? {
                return outcome;
            }
        }
        if let Err(EngineError::NotFound(_)) = answer {
            // Stored, but its workflow never started (the process stopped in between).
            self.started(id, now).await?;
            answer = self.deliver(id, &delivered).await;
        }
        match answer? {
            Answer::Applied(commands) => Ok(commands),
            Answer::Refused(refusal) => Err(EngineError::Refused(refusal)),
        }
    }

    async fn requeued(&self, id: i64, now: DateTime<FixedOffset>) -> Result<(), EngineError> {
        let handle = self.client.get_workflow_handle::<InstanceWorkflow>(workflow_id(&self.task_queue, id));
        let update = handle.execute_update(InstanceWorkflow::requeued, id, Default::default());
        match tokio::time::timeout(UPDATE_WAIT, update).await {
            Ok(Ok(_)) => Ok(()),
            // A finished instance's workflow has ended: a new run of it carries out what is
            // pending and ends again.
            Ok(Err(_)) => self.started(id, now).await,
            Err(_) => Err(EngineError::Unavailable(format!(
                "instance {id}'s workflow did not answer within {} s (is a worker running?)",
                UPDATE_WAIT.as_secs()
            ))),
        }
    }
}

/// The Temporal worker of this process, running on a thread of its own (the SDK runs workflow
/// code on a local task set). A worker that stops by itself is started again: the SDK's
/// worker can panic (after a server restart it has been seen to), and a process whose
/// worker is gone would hold its instances' work until it is restarted.
pub struct TemporalWorker {
    thread: std::thread::JoinHandle<()>,
    control: Arc<Control>,
}

/// How the worker's thread is told to stop.
#[derive(Default)]
struct Control {
    stopping: std::sync::atomic::AtomicBool,
    /// Asks the running worker to stop polling and finish what it holds.
    shutdown: std::sync::Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl Control {
    fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl TemporalWorker {
    /// Starts the worker of statflow's workflows and activities for `engine`, sending
    /// messages on `channels`.
    pub fn spawn(settings: Settings, engine: Arc<Embedded>, channels: Arc<Channels>) -> TemporalWorker {
        // Workflow code reaches the engine through `WORLD`, so a process has one worker.
        assert!(WORLD.set((engine, channels)).is_ok(), "a process runs one Temporal worker");
        let control: Arc<Control> = Arc::default();
        let thread_control = control.clone();
        let thread = std::thread::Builder::new()
            .name("temporal-worker".into())
            .spawn(move || supervise(&settings, &thread_control))
            .expect("a thread can be started");
        TemporalWorker { thread, control }
    }

    /// Stops the worker once the tasks it holds are done, and waits for it.
    pub async fn stop(self) {
        self.control.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(shutdown) = self.control.shutdown.lock().expect("not poisoned").as_ref() {
            shutdown();
        }
        let thread = self.thread;
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(STOP_WAIT, joined).await.is_err() {
            tracing::warn!("the Temporal worker did not stop within {} s; leaving it", STOP_WAIT.as_secs());
        }
    }
}

/// Runs the worker, each time on a fresh runtime, until asked to stop.
fn supervise(settings: &Settings, control: &Control) {
    while !control.stopping() {
        let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => return tracing::error!(%error, "the Temporal worker could not start"),
        };
        let ran =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(run_worker(settings, control))));
        runtime.shutdown_timeout(STOP_WAIT);
        *control.shutdown.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        if control.stopping() {
            return;
        }
        match ran {
            Ok(Ok(())) => tracing::error!("the Temporal worker stopped by itself; starting it again"),
            Ok(Err(error)) => tracing::error!(%error, "the Temporal worker stopped; starting it again"),
            Err(_) => tracing::error!("the Temporal worker panicked; starting it again"),
        }
        std::thread::sleep(RESTART_DELAY);
    }
}

async fn run_worker(settings: &Settings, control: &Control) -> Result<(), String> {
    let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default()).map_err(|e| e.to_string())?;
    let client = settings.connect().await?;
    let options = WorkerOptions::new(settings.task_queue.clone())
        .register_activities(Projection)
        .register_workflow::<InstanceWorkflow>()
        .map_err(|e| e.to_string())?
        .build();
    let mut worker = Worker::new(&runtime, client, options).map_err(|e| e.to_string())?;
    *control.shutdown.lock().expect("not poisoned") = Some(Box::new(worker.shutdown_handle()));
    if control.stopping() {
        // Asked to stop while this worker was being made.
        return Ok(());
    }
    tracing::info!(address = %settings.address, namespace = %settings.namespace, task_queue = %settings.task_queue, "Temporal worker running");
    worker.run().await.map_err(|e| e.to_string())
}
