//! What `GET /metrics` shows, in Prometheus text format: the names of every metric the
//! daemon records, in one place, and the functions the engine, the store and the API call
//! to record them (through the `metrics` facade; `metrics-exporter-prometheus` renders them).
//!
//! Counters and histograms are recorded where things happen. The gauges that describe the
//! stored state (open and overdue instances, pending timers, pending and failed effects) are
//! counted from the store when the page is asked for, at most once per [`STATE_REFRESH`]:
//! a scrape every few seconds does not turn into a count of a million rows every few seconds.
//!
//! A process records into one global recorder; [`install`] sets it up once and answers with
//! the handle the page renders from. Before that (in a command that serves nothing) the
//! recording functions do nothing.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const BUILD_INFO: &str = "statflow_build_info";
const TRANSITIONS: &str = "statflow_transitions_total";
const COMMIT_DURATION: &str = "statflow_commit_duration_seconds";
const COMMIT_BATCH: &str = "statflow_commit_batch_size";
const ACTION_DURATION: &str = "statflow_action_duration_seconds";
const TIMERS_FIRED: &str = "statflow_timers_fired_total";
const TIMER_LATENESS: &str = "statflow_timer_fire_lateness_seconds";
const DELIVERIES: &str = "statflow_deliveries_total";
const SCHEDULE_RUNS: &str = "statflow_schedule_runs_total";
const HTTP_REQUESTS: &str = "statflow_http_requests_total";
const HTTP_DURATION: &str = "statflow_http_request_duration_seconds";
const WORKER_UP: &str = "statflow_worker_up";
const EFFECTS: &str = "statflow_effects";
const TIMERS_PENDING: &str = "statflow_timers_pending";
const INSTANCES_OPEN: &str = "statflow_instances_open";
const INSTANCES_OVERDUE: &str = "statflow_instances_overdue";
const WORK_LEASE_HELD: &str = "statflow_work_lease_held";
const WORK_LEASE_TAKEN: &str = "statflow_work_lease_taken_total";

/// Every metric the page shows: its name, its type and the help text the page gives it.
const CATALOGUE: [(&str, Kind, &str); 18] = [
    (BUILD_INFO, Kind::Gauge, "1, labelled with the release and the engine that answer"),
    (TRANSITIONS, Kind::Counter, "Transitions stored, by procedure and the kind of event"),
    (COMMIT_DURATION, Kind::Histogram, "Time one group commit of the writer took"),
    (COMMIT_BATCH, Kind::Histogram, "Transitions carried by one group commit"),
    (ACTION_DURATION, Kind::Histogram, "Time to answer a start, action or repair through the engine, commit included"),
    (TIMERS_FIRED, Kind::Counter, "Timers fired"),
    (TIMER_LATENESS, Kind::Histogram, "How long after its due time a timer fired"),
    (DELIVERIES, Kind::Counter, "Delivery attempts by kind and outcome (sent, retry, failed)"),
    (SCHEDULE_RUNS, Kind::Counter, "Schedule runs finished, by schedule and status"),
    (HTTP_REQUESTS, Kind::Counter, "HTTP requests answered, by method and status class"),
    (HTTP_DURATION, Kind::Histogram, "Time to answer an HTTP request"),
    (WORKER_UP, Kind::Gauge, "1 while the worker runs and beats, 0 while it is down or stalled"),
    (EFFECTS, Kind::Gauge, "Effects in the outbox waiting (pending) or given up (failed), by kind"),
    (TIMERS_PENDING, Kind::Gauge, "Timers waiting to fire"),
    (INSTANCES_OPEN, Kind::Gauge, "Running instances, by procedure and each organization they involve"),
    (INSTANCES_OVERDUE, Kind::Gauge, "Running instances past a deadline, by procedure and organization"),
    (WORK_LEASE_HELD, Kind::Gauge, "1 while this node holds the work lease (several nodes on one database), else 0"),
    (WORK_LEASE_TAKEN, Kind::Counter, "Times this node took the work lease (at start, or over from a node gone)"),
];

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Gives each metric its help text (Prometheus's `# HELP`), once the recorder is installed.
fn describe() {
    for (name, kind, help) in CATALOGUE {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Seconds: 1 ms to 1 min, for request, action and commit latencies.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];
/// Seconds a timer fired after it was due: under a second is on time, hours is an outage.
const LATENESS_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 86400.0];
/// Transitions committed together.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// The stored-state gauges are counted again at most this often.
pub const STATE_REFRESH: Duration = Duration::from_secs(30);

/// Installs the process's recorder (once; later calls answer with the same handle) and the
/// build information, and starts the upkeep that keeps histograms from growing between
/// scrapes (on the current Tokio runtime).
pub fn install(engine: &'static str) -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(TIMER_LATENESS.into()), &LATENESS_BUCKETS))
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH.into()), &BATCH_BUCKETS))
                .and_then(PrometheusBuilder::install_recorder)
                .expect("the metrics recorder is installed once, with valid buckets");
            describe();
            gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "engine" => engine).set(1.0);
            let upkeep = handle.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// A transition stored: of an instance of `procedure`, on an event of `event`'s kind.
pub fn transition(procedure: &str, event: &'static str) {
    counter!(TRANSITIONS, "procedure" => procedure.to_owned(), "event" => event).increment(1);
}

/// A group commit of the writer: how long it took and how many transitions it carried.
pub fn commit(took: Duration, transitions: usize, succeeded: bool) {
    let outcome = if succeeded { "ok" } else { "failed" };
    histogram!(COMMIT_DURATION, "outcome" => outcome).record(took.as_secs_f64());
    histogram!(COMMIT_BATCH).record(transitions as f64);
}

/// A start, action or repair answered through the engine facade (`operation`: start, act,
/// repair).
pub fn action(operation: &'static str, took: Duration, succeeded: bool) {
    let outcome = if succeeded { "ok" } else { "refused" };
    histogram!(ACTION_DURATION, "operation" => operation, "outcome" => outcome).record(took.as_secs_f64());
}

/// A timer fired `late` after its due time (by the engine's clock).
pub fn timer_fired(late: Duration) {
    counter!(TIMERS_FIRED).increment(1);
    histogram!(TIMER_LATENESS).record(late.as_secs_f64());
}

/// What became of one delivery attempt: `sent`, `retry` (a transient failure) or `failed`
/// (given up).
pub fn delivery(kind: crate::store::effects::EffectKind, outcome: &'static str) {
    counter!(DELIVERIES, "kind" => kind.as_str(), "outcome" => outcome).increment(1);
}

/// A schedule's run finished with `status` (done, failed, skipped…).
pub fn schedule_run(schedule: &str, status: &str) {
    counter!(SCHEDULE_RUNS, "schedule" => schedule.to_owned(), "status" => status.to_owned()).increment(1);
}

/// An HTTP request answered: its method, status class (2xx, 4xx…) and time taken.
pub fn request(method: &str, status: u16, took: Duration) {
    let class = format!("{}xx", status / 100);
    counter!(HTTP_REQUESTS, "method" => method.to_owned(), "status" => class).increment(1);
    histogram!(HTTP_DURATION).record(took.as_secs_f64());
}

/// Whether this node holds the work lease now.
pub fn work_lease(held: bool) {
    gauge!(WORK_LEASE_HELD).set(if held { 1.0 } else { 0.0 });
}

/// This node took the work lease.
pub fn work_lease_taken() {
    counter!(WORK_LEASE_TAKEN).increment(1);
}

/// Whether each of the engine's workers runs (1) or is down or stalled (0).
pub fn workers(health: &[crate::engine::WorkerHealth]) {
    for worker in health {
        gauge!(WORKER_UP, "worker" => worker.name.to_string()).set(if worker.is_healthy() { 1.0 } else { 0.0 });
    }
}

/// The stored state, as the gauges show it.
#[derive(Debug, Default)]
pub struct StoredState {
    /// (procedure, organization, open, overdue): running instances by what they are and
    /// whom they involve.
    pub instances: Vec<(String, String, u64, u64)>,
    pub timers_pending: u64,
    /// (kind, status, count) of the effects waiting or given up.
    pub effects: Vec<(String, String, u64)>,
}

/// When the stored-state gauges were last counted, so a scrape counts at most once per
/// [`STATE_REFRESH`], and which label sets they showed.
#[derive(Default)]
pub struct StateGauges {
    counted_at: Mutex<Option<Instant>>,
    /// The (procedure, organization) pairs the instance gauges showed last.
    shown_instances: Mutex<HashSet<(String, String)>>,
}

impl StateGauges {
    /// Whether the gauges are due to be counted again; claims the count if so.
    pub fn due(&self) -> bool {
        let mut counted_at = self.counted_at.lock().expect("not poisoned");
        if counted_at.is_some_and(|at| at.elapsed() < STATE_REFRESH) {
            return false;
        }
        *counted_at = Some(Instant::now());
        true
    }

    /// Sets the gauges to `state`; a label set shown before and gone now (the last open
    /// instance of a procedure finished) shows zero rather than its last count.
    pub fn set(&self, state: &StoredState) {
        let mut shown = self.shown_instances.lock().expect("not poisoned");
        let mut instances = HashSet::new();
        for (procedure, organization, open, overdue) in &state.instances {
            set_instances(procedure, organization, *open, *overdue);
            instances.insert((procedure.clone(), organization.clone()));
        }
        for (procedure, organization) in shown.difference(&instances) {
            set_instances(procedure, organization, 0, 0);
        }
        // Every kind in both states, zero when none: an alert on `status="failed"` reads 0
        // rather than no data.
        use crate::store::records::EffectStatus;
        for kind in crate::store::effects::EffectKind::ALL {
            for status in [EffectStatus::Pending.as_str(), EffectStatus::Failed.as_str()] {
                let count = state.effects.iter().find(|(k, s, _)| k == kind.as_str() && s == status).map_or(0, |e| e.2);
                gauge!(EFFECTS, "kind" => kind.as_str(), "status" => status).set(count as f64);
            }
        }
        gauge!(TIMERS_PENDING).set(state.timers_pending as f64);
        *shown = instances;
    }
}

fn set_instances(procedure: &str, organization: &str, open: u64, overdue: u64) {
    let labels = [("procedure", procedure.to_owned()), ("organization", organization.to_owned())];
    gauge!(INSTANCES_OPEN, &labels).set(open as f64);
    gauge!(INSTANCES_OVERDUE, &labels).set(overdue as f64);
}
