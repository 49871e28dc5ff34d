//! Background workers, supervised: each runs in a `JoinSet`; a worker that panics (or
//! returns before shutdown) is logged, marked down and restarted after a short pause; every
//! worker beats a heartbeat at least once a minute; and one shutdown signal reaches all of
//! them, after which the daemon waits for them to finish their current pass. Readiness
//! (`/readyz`) fails while a worker is down or its heartbeat is stale.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A worker whose last heartbeat is older than this is reported stalled.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// How long a failed worker waits before it is started again (doubling to a minute).
const FIRST_PAUSE: Duration = Duration::from_secs(1);

/// Where a worker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    Running,
    /// It failed and waits to be started again.
    Restarting,
    /// No heartbeat for [`STALE_AFTER`].
    Stalled,
    /// It stopped at shutdown.
    Stopped,
}

impl std::fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            WorkerStatus::Running => "running",
            WorkerStatus::Restarting => "restarting",
            WorkerStatus::Stalled => "stalled",
            WorkerStatus::Stopped => "stopped",
        };
        f.write_str(text)
    }
}

/// A worker as readiness reports it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WorkerHealth {
    pub name: String,
    pub state: WorkerStatus,
    /// How often it was restarted after a failure.
    pub restarts: u32,
    /// Seconds since its last heartbeat.
    pub seconds_since_heartbeat: u64,
    /// Why it last failed.
    pub last_failure: Option<String>,
}

impl WorkerHealth {
    pub fn is_healthy(&self) -> bool {
        self.state == WorkerStatus::Running
    }
}

#[derive(Debug)]
struct WorkerState {
    running: bool,
    stopped: bool,
    restarts: u32,
    beat: Instant,
    last_failure: Option<String>,
}

type Board = Arc<Mutex<BTreeMap<&'static str, WorkerState>>>;

/// What a worker beats to say it is alive.
#[derive(Clone)]
pub struct Heartbeat {
    name: &'static str,
    board: Board,
}

impl Heartbeat {
    pub fn beat(&self) {
        if let Some(state) = self.board.lock().expect("not poisoned").get_mut(self.name) {
            state.beat = Instant::now();
        }
    }
}

/// The shutdown signal as a worker hears it.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown is signalled.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// A worker's body: started again after a failure, so it takes its handles anew each time.
pub type WorkerFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct Supervisor {
    board: Board,
    stop: watch::Sender<bool>,
    workers: Mutex<JoinSet<()>>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor { board: Board::default(), stop: watch::channel(false).0, workers: Mutex::new(JoinSet::new()) }
    }
}

impl Supervisor {
    /// Starts worker `name`; `body` makes its future each time it (re)starts. A body returns
    /// once it hears shutdown; returning earlier counts as a failure.
    pub fn spawn<F>(&self, name: &'static str, body: F)
    where
        F: Fn(Heartbeat, Shutdown) -> WorkerFuture + Send + Sync + 'static,
    {
        self.board.lock().expect("not poisoned").insert(
            name,
            WorkerState { running: true, stopped: false, restarts: 0, beat: Instant::now(), last_failure: None },
        );
        let (board, mut shutdown) = (self.board.clone(), Shutdown(self.stop.subscribe()));
        let heartbeat = Heartbeat { name, board: board.clone() };
        let supervised = async move {
            let mut pause = FIRST_PAUSE;
            loop {
                let run = tokio::spawn(body(heartbeat.clone(), shutdown.clone())).await;
                if shutdown.is_set() {
                    break;
                }
                let failure = match run {
                    Ok(()) => "it stopped by itself".to_owned(),
                    Err(error) if error.is_panic() => panic_message(error.into_panic()),
                    Err(error) => error.to_string(),
                };
                tracing::error!(worker = name, %failure, "a worker failed; restarting it");
                if let Some(state) = board.lock().expect("not poisoned").get_mut(name) {
                    state.running = false;
                    state.last_failure = Some(failure);
                }
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.wait() => break,
                }
                pause = (pause * 2).min(Duration::from_secs(60));
                if let Some(state) = board.lock().expect("not poisoned").get_mut(name) {
                    state.running = true;
                    state.restarts += 1;
                    state.beat = Instant::now();
                }
            }
            if let Some(state) = board.lock().expect("not poisoned").get_mut(name) {
                state.stopped = true;
            }
        };
        self.workers.lock().expect("not poisoned").spawn(supervised);
    }

    pub fn health(&self) -> Vec<WorkerHealth> {
        let now = Instant::now();
        self.board
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(name, state)| {
                let since = now.saturating_duration_since(state.beat);
                let status = if state.stopped {
                    WorkerStatus::Stopped
                } else if !state.running {
                    WorkerStatus::Restarting
                } else if since > STALE_AFTER {
                    WorkerStatus::Stalled
                } else {
                    WorkerStatus::Running
                };
                WorkerHealth {
                    name: (*name).to_owned(),
                    state: status,
                    restarts: state.restarts,
                    seconds_since_heartbeat: since.as_secs(),
                    last_failure: state.last_failure.clone(),
                }
            })
            .collect()
    }

    /// Signals shutdown and waits up to `grace` for every worker to finish its pass; those
    /// still running then are stopped where they are (their effects are at least once).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.send_replace(true);
        let mut workers = std::mem::take(&mut *self.workers.lock().expect("not poisoned"));
        let drained = tokio::time::timeout(grace, async { while workers.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(remaining = workers.len(), "workers did not finish in time; stopping them");
            workers.shutdown().await;
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => format!("panicked: {text}"),
        Err(payload) => match payload.downcast::<&str>() {
            Ok(text) => format!("panicked: {text}"),
            Err(_) => "panicked".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// The clock is tokio's paused one: time moves only as the test advances it.
    #[tokio::test(start_paused = true)]
    async fn a_panicking_worker_is_reported_down_then_restarted_and_everyone_hears_shutdown() {
        let supervisor = Supervisor::default();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        supervisor.spawn("flaky", move |heartbeat, mut shutdown| {
            let starts = counted.clone();
            Box::pin(async move {
                if starts.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the first pass fails");
                }
                heartbeat.beat();
                shutdown.wait().await;
            })
        });
        supervisor.spawn("steady", |heartbeat, mut shutdown| {
            Box::pin(async move {
                loop {
                    heartbeat.beat();
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(60)) => {}
                        () = shutdown.wait() => return,
                    }
                }
            })
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let health = supervisor.health();
        let flaky = health.iter().find(|w| w.name == "flaky").unwrap();
        assert_eq!(flaky.state, WorkerStatus::Restarting);
        assert_eq!(flaky.last_failure.as_deref(), Some("panicked: the first pass fails"));
        assert!(health.iter().find(|w| w.name == "steady").unwrap().is_healthy());

        tokio::time::sleep(FIRST_PAUSE).await;
        let flaky = supervisor.health().into_iter().find(|w| w.name == "flaky").unwrap();
        assert_eq!((flaky.state, flaky.restarts), (WorkerStatus::Running, 1));
        assert_eq!(starts.load(Ordering::SeqCst), 2);

        // Ten minutes on: the steady worker beat every minute, the restarted one once.
        tokio::time::sleep(Duration::from_secs(600)).await;
        let health = supervisor.health();
        assert_eq!(health.iter().find(|w| w.name == "flaky").unwrap().state, WorkerStatus::Stalled);
        assert!(health.iter().find(|w| w.name == "steady").unwrap().is_healthy());

        supervisor.shutdown(Duration::from_secs(10)).await;
        assert!(supervisor.health().iter().all(|w| w.state == WorkerStatus::Stopped), "{:?}", supervisor.health());
    }
}
