//! Throughput of the embedded runtime on SQLite with `synchronous=FULL`.
//!
//! Starts N registration instances (Tai'an) and drives each through every step: start,
//! accept, pass the substantive review, publicity expiring on its timer, the certificate
//! issued by the outbox worker, rights confirmed, record status set. Prints durable
//! transitions per second, completed instances per second, p50/p99 latency of an action
//! (from submission until it is durable) and the peak resident memory. The notices the
//! procedure sends (a task's notice at each step, the certificate's notice) then go out to a
//! mail spool (every recipient has an address: the Tai'an directory of the load benchmark) in
//! a delivery phase of their own; on the Temporal engine they are activities of the
//! workflows, sent within the phases.
//!
//!     cargo bench -p statflow --bench runtime               # N = 10,000 and 100,000
//!     cargo bench -p statflow --bench runtime -- 2000       # other sizes
//!
//! `STATFLOW_BENCH_CLIENTS` sets how many clients act at once (default 64); the database is
//! a fresh file under the system's temporary directory, removed afterwards.
//! `STATFLOW_BENCH_TASK_NOTICES=off` opens tasks without their notices (`task_notices =
//! false`), the workload of versions that had none.
//!
//! With `STATFLOW_BENCH_TEMPORAL=HOST:PORT` (a Temporal server, e.g. the dev server) the same
//! workload then runs on the Temporal engine too, with `STATFLOW_BENCH_TEMPORAL_N` instances
//! (default 1,000), a task queue of its own and the worker in this process, and both engines'
//! figures are printed side by side at the end.

mod process;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, TimeDelta};
use process::{cpu_seconds, memory_mib};
use serde_json::{json, Value};
use statflow::engine::embedded::clock::Clock;
use statflow::engine::embedded::delivery::Channels;
use statflow::engine::embedded::Embedded;
use statflow::engine::temporal::{Settings, TemporalHost, TemporalWorker};
use statflow::engine::{ActRequest, Engine};
use statflow::principal::{Principal, Role};
use statflow::store::directory::DirectoryFile;
use statflow::store::effects::EffectKind;
use statflow::store::transition::Origin;
use statflow::store::Store;
use statflow_activities::email::Mailer;
use statflow_activities::templates::Templates;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::Actor;

const START: &str = "2026-03-02T09:00:00+08:00";

/// The organizations and contacts every notice of a registration reaches.
const DIRECTORY: &str = include_str!("../../tests/fixtures/taian-directory.toml");

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.replace(['_', ','], "").parse().unwrap_or_else(|_| panic!("not an instance count: {a}")))
        .collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    let clients: usize = std::env::var("STATFLOW_BENCH_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    println!("statflow runtime benchmark: SQLite, WAL, synchronous=FULL, {clients} clients");
    let mut figures = Vec::new();
    for n in sizes {
        figures.push(runtime.block_on(run(n, clients, None)));
    }
    if let Some(address) = std::env::var("STATFLOW_BENCH_TEMPORAL").ok().filter(|a| !a.is_empty()) {
        let n = std::env::var("STATFLOW_BENCH_TEMPORAL_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
        figures.push(runtime.block_on(run(n, clients, Some(&address))));
    }
    println!();
    println!(
        "{:<34} {:>8} {:>14} {:>12} {:>10} {:>10}",
        "engine", "N", "transitions/s", "instances/s", "p50 ms", "p99 ms"
    );
    for f in &figures {
        println!(
            "{:<34} {:>8} {:>14.0} {:>12.1} {:>10.2} {:>10.2}",
            f.engine, f.n, f.transitions_per_s, f.instances_per_s, f.p50_ms, f.p99_ms
        );
    }
    // Removed only now: on ext4 without a journal, creating a file skips the inodes freed in
    // the last minutes, so a run's spool would pay for the files of the run before it.
    for f in &figures {
        std::fs::remove_dir_all(&f.dir).ok();
    }
}

/// What one run measured.
struct Figures {
    /// The run's database and spool, removed when every run is done.
    dir: std::path::PathBuf,
    engine: String,
    n: usize,
    transitions_per_s: f64,
    instances_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Latencies of actions, in submission order per client.
#[derive(Default)]
struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn percentile(&self, p: f64) -> Duration {
        let mut all = self.0.lock().unwrap().clone();
        all.sort();
        all.get(((all.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }
}

/// Runs the workload on the embedded engine, or on the Temporal server at `temporal`.
async fn run(n: usize, clients: usize, temporal: Option<&str>) -> Figures {
    // One directory per run (kept until every run is done), whatever the sizes asked for.
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("statflow-bench-{}-{run}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let start: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(START).unwrap();
    // Every notice has somebody to go to, so the delivery phase writes each to the spool.
    let directory = DirectoryFile::parse(DIRECTORY, "tests/fixtures/taian-directory.toml").expect("the directory");
    store.load_directory(&directory, start.timestamp_millis()).await.expect("load the directory");
    let runtime = Embedded::load(store, Clock::Virtual(Mutex::new(start))).await.expect("load the engine");
    runtime.configure_task_notices(std::env::var("STATFLOW_BENCH_TASK_NOTICES").map_or(true, |v| v != "off"));
    // Notices go to a mail spool in the same directory, on both engines.
    let channels = Arc::new(Channels {
        mailer: Mailer::spool(dir.join("spool"), "statflow@example.org").expect("a mail spool"),
        templates: Templates::new(None),
        webhook: None,
        base_url: "http://127.0.0.1:8080".into(),
    });
    let worker = match temporal {
        Some(address) => {
            let settings = Settings {
                address: address.to_owned(),
                namespace: Settings::DEFAULT_NAMESPACE.into(),
                task_queue: format!("statflow-bench-{}-{n}", std::process::id()),
            };
            let host = TemporalHost::connect(&settings, &runtime).await.expect("the Temporal server answers");
            runtime.hand_over(Arc::new(host));
            Some(TemporalWorker::spawn(settings, runtime.clone(), channels.clone()))
        }
        None => None,
    };
    let engine = match temporal {
        Some(address) => format!("Temporal ({address}), SQLite read model"),
        None => "embedded, SQLite".to_owned(),
    };
    let definition = runtime.definitions().current("registration", "taian").expect("registration is built in");
    let latencies = Arc::new(Latencies::default());
    let began = Instant::now();
    let cpu_began = cpu_seconds(std::process::id());

    // Clients start instances and take them through acceptance and review.
    let ids = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients_done = Vec::new();
    for _ in 0..clients {
        let (runtime, definition, latencies, ids, next) =
            (runtime.clone(), definition.clone(), latencies.clone(), ids.clone(), next.clone());
        clients_done.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let id = review(&runtime, &definition, &latencies).await;
                ids.lock().unwrap().push(id);
            }
        }));
    }
    for client in clients_done {
        client.await.expect("client");
    }
    let reviewed = began.elapsed();

    // Publicity expires on its timer; the outbox issues the certificates.
    let fired = runtime.fire_due(start + TimeDelta::days(14)).await.expect("timers fire").len();
    drain_outbox(&runtime, temporal.is_some()).await;
    // On the Temporal engine a certificate's row is done a moment before its workflow has
    // recorded the result: the phase ends when every instance has its five events (start,
    // accept, pass, publicity's end, the certificate), so no confirmation overtakes one.
    while runtime.store().count_events().await.expect("count history") < 5 * n as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let published = began.elapsed();

    // Rights confirmed; the outbox records the status.
    let ids = Arc::new(std::mem::take(&mut *ids.lock().unwrap()));
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients_done = Vec::new();
    for _ in 0..clients {
        let (runtime, latencies, ids, next) = (runtime.clone(), latencies.clone(), ids.clone(), next.clone());
        clients_done.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&id) = ids.get(i) else { break };
                act(&runtime, &latencies, id, "confirm_rights", json!({})).await;
            }
        }));
    }
    for client in clients_done {
        client.await.expect("client");
    }
    drain_outbox(&runtime, temporal.is_some()).await;
    let elapsed = began.elapsed();
    let cpu = cpu_seconds(std::process::id()) - cpu_began;
    let transitions = runtime.store().count_events().await.expect("count history");

    // The embedded engine's notices (three task notices and the certificate's notice per
    // instance) go out in one burst to the mail spool, timed apart.
    let delivering = Instant::now();
    let mut delivered = 0;
    if temporal.is_none() {
        loop {
            let pass = runtime.deliver_once(&channels).await.expect("delivery pass");
            if pass == 0 {
                break;
            }
            delivered += pass;
        }
    }
    let delivery = delivering.elapsed();

    let registered = runtime.store().count_outcome("registered").await.expect("count instances");
    assert_eq!(registered, n as u64, "every instance must end registered");
    assert_eq!(fired, n, "one publicity timer per instance");
    let figures = Figures {
        dir: dir.clone(),
        engine,
        n,
        transitions_per_s: transitions as f64 / elapsed.as_secs_f64(),
        instances_per_s: n as f64 / elapsed.as_secs_f64(),
        p50_ms: latencies.percentile(0.50).as_secs_f64() * 1e3,
        p99_ms: latencies.percentile(0.99).as_secs_f64() * 1e3,
    };
    println!();
    println!("N = {n}, {}", figures.engine);
    println!("  review phase        {:>10.1} s  (start, accept, pass)", reviewed.as_secs_f64());
    println!("  publicity phase     {:>10.1} s  ({fired} timers, certificates)", (published - reviewed).as_secs_f64());
    println!("  confirmation phase  {:>10.1} s  (confirm rights, status)", (elapsed - published).as_secs_f64());
    if temporal.is_none() {
        println!(
            "  delivery phase      {:>10.1} s  ({delivered} messages to the spool, {:.0}/s)",
            delivery.as_secs_f64(),
            delivered as f64 / delivery.as_secs_f64()
        );
    }
    println!("  transitions         {transitions:>10}  ({:.1} per instance)", transitions as f64 / n as f64);
    println!("  transitions/s       {:>10.0}", figures.transitions_per_s);
    // Steadier than the rate from run to run: what a transition costs, whatever else the
    // machine was doing (the worker included on the Temporal engine).
    println!(
        "  CPU per transition  {:>10.0} µs  ({:.2} cores)",
        cpu * 1e6 / transitions as f64,
        cpu / elapsed.as_secs_f64()
    );
    println!("  instances/s         {:>10.0}", figures.instances_per_s);
    println!("  action latency p50  {:>10.2} ms", figures.p50_ms);
    println!("  action latency p99  {:>10.2} ms", figures.p99_ms);
    println!("  peak RSS            {:>10.1} MiB", memory_mib(std::process::id(), "VmHWM:"));
    if let Some(worker) = worker {
        worker.stop().await;
    }
    drop(runtime);
    figures
}

async fn review(runtime: &Embedded, definition: &Arc<Definition>, latencies: &Latencies) -> i64 {
    let input = json!({
        "resource_name": "企业登记信息",
        "registration_type": "initial",
        "registrant_org": "taian-market",
        "agency_org": "taian-registry",
    });
    let began = Instant::now();
    let id = runtime.start_with(definition, input, clerk(), Origin::Direct).await.expect("start").instance_id;
    latencies.0.lock().unwrap().push(began.elapsed());
    act(runtime, latencies, id, "accept", json!({})).await;
    act(runtime, latencies, id, "pass", json!({"compliance_report": "合规"})).await;
    id
}

/// An action as the API takes it: through the engine facade, the caller checked against the
/// instance in the transaction that applies it.
async fn act(runtime: &Embedded, latencies: &Latencies, id: i64, action: &str, data: Value) {
    let request = ActRequest { instance: id, action: action.to_owned(), data, caller: principal() };
    let began = Instant::now();
    runtime.act(request).await.unwrap_or_else(|e| panic!("{action} on {id}: {e}"));
    latencies.0.lock().unwrap().push(began.elapsed());
}

fn principal() -> Principal {
    Principal {
        name: "clerk".into(),
        role: Role::Staff,
        organizations: vec!["taian-registry".into(), "taian-market".into()],
        request: None,
        unconfirmed_token: None,
    }
}

fn clerk() -> Actor {
    Actor {
        id: "clerk".into(),
        roles: vec!["registration_agency".into(), "registrant".into()],
        organizations: vec!["taian-registry".into(), "taian-market".into()],
        administrator: false,
        request: None,
    }
}

/// Runs the outbox worker's passes until no internal effect is left (the embedded engine's
/// notices wait for the delivery phase); on the Temporal engine the workflows carry all their
/// effects out themselves, notices included, so it waits until none is pending.
async fn drain_outbox(runtime: &Embedded, hosted: bool) {
    if !hosted {
        while runtime.run_outbox_once().await.expect("outbox pass") > 0 {}
        return;
    }
    let of_instances: Vec<EffectKind> = EffectKind::ALL.iter().copied().filter(|k| k.of_an_instance()).collect();
    while runtime.store().count_pending_of(&of_instances).await.expect("count the outbox") > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
