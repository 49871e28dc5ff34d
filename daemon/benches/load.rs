//! The daemon under load over HTTP: `statflow serve` on its default SQLite (WAL,
//! synchronous=FULL) in its own process, driven by closed-loop clients, each with one
//! keep-alive connection and one request in flight.
//!
//! Each registration (Tai'an) is four calls — create, accept, engage_third_party, pass —
//! then one clock advance fires every publicity timer (certificates and notices follow
//! through the outbox), then each gets its last call, confirm_rights. Printed per run:
//! registrations/s and calls/s of the action phase, per-call p50/p99, the timer firing rate,
//! how long the outbox took to drain, the last action's calls/s, the end-to-end rate, the
//! server's CPU (cores) and its resident memory (idle, peak, growth during the timer burst),
//! and how long a restart takes to `/readyz`.
//!
//!     cargo bench -p statflow --bench load                        # the standard set below
//!     cargo bench -p statflow --bench load -- 2000                # one run, 200 clients
//!     cargo bench -p statflow --bench load -- --clients 50 2000
//!     cargo bench -p statflow --bench load -- --preload 1000000 2000
//!
//! The standard set: N = 2,000 and 20,000 with 200 clients, N = 2,000 with 50 clients (for
//! latency), and N = 2,000 with 200 clients beside 1,000,000 open registrations already in
//! the database. Preloaded instances are started in-process through the engine (much
//! faster than over HTTP), a year later in virtual time so their deadlines do not fall in
//! the benchmark's clock advance; the seeded file is kept in the temporary directory
//! (`statflow-load-seed-N.db`) and copied for each run. Mail goes to a spool directory.
//! `STATFLOW_LOAD_LOG=statflow=debug` keeps the daemon's log (with each worker pass and
//! its duration) and prints where it is.

mod process;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::DateTime;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use process::{cpu_seconds, memory_mib};
use serde_json::{json, Value};
use statflow::engine::embedded::clock::Clock;
use statflow::engine::embedded::Embedded;
use statflow::engine::Engine;
use statflow::store::transition::Origin;
use statflow::store::Store;
use statflow_workflows::engine::Actor;

const BINARY: &str = env!("CARGO_BIN_EXE_statflow");
const START: &str = "2026-03-02T09:00:00+08:00";
/// Preloaded instances start here, so none of their timers falls due during a run.
const PRELOAD_START: &str = "2027-06-01T09:00:00+08:00";

struct Run {
    registrations: usize,
    clients: usize,
    preload: usize,
}

fn main() {
    let mut clients = None;
    let mut preload = 0;
    let mut sizes = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let number = |what: &str, text: Option<String>| -> usize {
            let text = text.unwrap_or_else(|| panic!("{what} needs a number"));
            text.replace(['_', ','], "").parse().unwrap_or_else(|_| panic!("{what}: not a number: {text}"))
        };
        match arg.as_str() {
            "--clients" => clients = Some(number("--clients", args.next())),
            "--preload" => preload = number("--preload", args.next()),
            "--bench" => {}
            other if other.starts_with('-') => panic!("unknown option {other}"),
            other => sizes.push(number("instance count", Some(other.to_owned()))),
        }
    }
    let runs: Vec<Run> = if sizes.is_empty() && clients.is_none() && preload == 0 {
        vec![
            Run { registrations: 2_000, clients: 200, preload: 0 },
            Run { registrations: 2_000, clients: 50, preload: 0 },
            Run { registrations: 20_000, clients: 200, preload: 0 },
            Run { registrations: 2_000, clients: 200, preload: 1_000_000 },
        ]
    } else {
        let sizes = if sizes.is_empty() { vec![2_000] } else { sizes };
        sizes.into_iter().map(|registrations| Run { registrations, clients: clients.unwrap_or(200), preload }).collect()
    };
    println!("statflow load benchmark: `statflow serve`, SQLite, WAL, synchronous=FULL, closed-loop HTTP/1.1 clients");
    // The clients share one thread, so they take at most one of the machine's cores.
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    // Each run's directory is removed only when all runs are done. On ext4 without a journal
    // (as on the machine these figures come from) creating a file skips every inode freed in
    // the last minutes, so a run creating its spool's files just after another run's were
    // deleted would measure those deletions too.
    let mut finished = Vec::new();
    for run in runs {
        finished.extend(client.block_on(measure(&run)));
    }
    for dir in finished {
        std::fs::remove_dir_all(&dir).ok();
    }
}

// ---------------------------------------------------------------------------------------
// The daemon under test

const DIRECTORY: &str = include_str!("../../tests/fixtures/taian-directory.toml");

struct Daemon {
    child: Child,
    base: String,
    dir: PathBuf,
    db: String,
}

impl Daemon {
    /// The configuration: mail to a spool, and a directory in which every notice of the
    /// registration finds its recipient (so each is really written, not given up).
    fn prepare(dir: &Path) -> String {
        std::fs::write(dir.join("directory.toml"), DIRECTORY).expect("directory file");
        std::fs::write(
            dir.join("statflow.toml"),
            format!(
                "directory = \"{}\"\n[mail]\nfrom = \"statflow <statflow@load.example>\"\nspool_dir = \"{}\"\n",
                dir.join("directory.toml").display(),
                dir.join("mail").display()
            ),
        )
        .expect("configuration");
        format!("sqlite://{}?mode=rwc", dir.join("statflow.db").display())
    }

    fn launch(dir: &Path, db: &str, clock: &str) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("serve.log")).expect("log file");
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--virtual-clock", clock, "--config"])
            .arg(dir.join("statflow.toml"))
            .env("RUST_LOG", std::env::var("STATFLOW_LOAD_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("statflow starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("first line");
        let base = line
            .trim()
            .strip_prefix("statflow listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}; see {}", dir.join("serve.log").display()));
        Daemon { base: base.to_owned(), child, dir: dir.to_owned(), db: db.to_owned() }
    }

    fn token(db: &str, name: &str, role: &str, organizations: &[&str]) -> String {
        let mut args = vec!["token", "create", "--db", db, "--name", name, "--role", role];
        for org in organizations {
            args.extend(["--org", org]);
        }
        let out = Command::new(BINARY).args(&args).output().expect("statflow token create");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) -> (PathBuf, String) {
        Command::new("kill").args(["-TERM", &self.pid().to_string()]).status().expect("kill");
        self.child.wait().expect("the daemon exits");
        (self.dir.clone(), self.db.clone())
    }
}

// ---------------------------------------------------------------------------------------
// The clients

/// One keep-alive connection with one request in flight.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    token: String,
}

impl Connection {
    async fn open(base: &str, token: &str) -> Connection {
        let stream = tokio::net::TcpStream::connect(base).await.expect("connect to the daemon");
        stream.set_nodelay(true).ok();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
        tokio::spawn(connection);
        Connection { sender, token: format!("Bearer {token}") }
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", &self.token)
            .header("content-type", "application/json")
            .body(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default()))
            .expect("request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.expect("response body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A call that must succeed; its latency is recorded.
    async fn expect(&mut self, latencies: &Latencies, method: &str, path: &str, body: &Value) -> Value {
        let began = Instant::now();
        let (status, answer) = self.call(method, path, Some(body)).await;
        latencies.record(began.elapsed());
        assert!(status == 200 || status == 201, "{method} {path}: {status} {answer}");
        answer
    }
}

#[derive(Default)]
struct Latencies(Mutex<Vec<Duration>>);

impl Latencies {
    fn record(&self, latency: Duration) {
        self.0.lock().unwrap().push(latency);
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut all = self.0.lock().unwrap().clone();
        all.sort();
        all.get(((all.len() as f64 - 1.0) * p).round() as usize).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
    }
}

/// Runs `clients` closed loops over the items 0..count: each takes the next item, calls
/// `work` with its connection and waits for it before taking another.
async fn closed_loop<F, Fut>(base: &str, token: &str, clients: usize, count: usize, work: F)
where
    F: Fn(Connection, usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Connection> + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let local = tokio::task::LocalSet::new();
    for _ in 0..clients.min(count) {
        let (next, work) = (next.clone(), work.clone());
        let connection = Connection::open(base, token).await;
        local.spawn_local(async move {
            let mut connection = connection;
            loop {
                let item = next.fetch_add(1, Ordering::Relaxed);
                if item >= count {
                    break;
                }
                connection = work(connection, item).await;
            }
        });
    }
    local.await;
}

fn registration_input() -> Value {
    json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"})
}

// ---------------------------------------------------------------------------------------
// Preloading open instances

/// A database holding `count` open registrations (in acceptance, a task each), seeded once
/// and copied for each run.
async fn seeded(count: usize) -> PathBuf {
    let seed = std::env::temp_dir().join(format!("statflow-load-seed-{count}.db"));
    if seed.exists() {
        return seed;
    }
    let partial = seed.with_extension("partial");
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", partial.display())).ok();
    }
    println!("seeding {count} open registrations into {} (kept for later runs)", seed.display());
    let began = Instant::now();
    // The engine needs a multi-threaded runtime of its own (its writer and workers).
    let url = format!("sqlite://{}?mode=rwc", partial.display());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
        runtime.block_on(async move {
            let store = Store::open(&url).await.expect("open the seed database");
            let start = DateTime::parse_from_rfc3339(PRELOAD_START).unwrap();
            let engine = Embedded::load(store, Clock::Virtual(Mutex::new(start))).await.expect("load the engine");
            let definition = engine.definitions().current("registration", "taian").expect("registration is built in");
            let next = Arc::new(AtomicUsize::new(0));
            let mut starters = Vec::new();
            for _ in 0..64 {
                let (engine, definition, next) = (engine.clone(), definition.clone(), next.clone());
                starters.push(tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        engine
                            .start_with(&definition, registration_input(), clerk(), Origin::Direct)
                            .await
                            .expect("start");
                    }
                }));
            }
            for starter in starters {
                starter.await.expect("starter");
            }
        });
    })
    .join()
    .expect("seeding");
    // The WAL is folded into the file when the last connection closed, so one file suffices.
    std::fs::rename(&partial, &seed).expect("keep the seed");
    println!("  seeded in {:.0} s", began.elapsed().as_secs_f64());
    seed
}

fn clerk() -> Actor {
    Actor {
        id: "seed".into(),
        roles: vec!["registration_agency".into(), "registrant".into()],
        organizations: vec!["taian-registry".into(), "taian-market".into()],
        administrator: false,
        request: None,
    }
}

// ---------------------------------------------------------------------------------------
// One run

/// Runs and prints one measurement; returns its directory, to be removed, unless the
/// daemon's log is to be kept.
async fn measure(run: &Run) -> Option<PathBuf> {
    let n = run.registrations;
    // One directory per run, kept until every run is done: the name tells the runs apart.
    let dir =
        std::env::temp_dir().join(format!("statflow-load-{}-{n}-{}-{}", std::process::id(), run.clients, run.preload));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let db = Daemon::prepare(&dir);
    if run.preload > 0 {
        let seed = seeded(run.preload).await;
        std::fs::copy(&seed, dir.join("statflow.db")).expect("copy the seed");
        // On disk before the daemon starts, as a database it wrote earlier would be: else the
        // run's flushes queue behind the write-back of gigabytes of copy (p99 of 300-430 ms).
        std::fs::File::open(dir.join("statflow.db")).and_then(|copy| copy.sync_all()).expect("the copy on disk");
    }
    let admin = Daemon::token(&db, "admin", "administrator", &[]);
    let clerk = Daemon::token(&db, "clerk", "staff", &["taian-registry", "taian-market"]);
    let daemon = Daemon::launch(&dir, &db, START);
    let pid = daemon.pid();
    let base = daemon.base.clone();
    let idle_rss = memory_mib(pid, "VmRSS:");
    let latencies = Arc::new(Latencies::default());
    let ids = Arc::new(Mutex::new(vec![0i64; n]));

    // Effects already pending: the preloaded instances' notices, due only after the run's
    // clock (see PRELOAD_START). The outbox counts as drained when only they are left.
    let reader = Store::connect(&db).await.expect("a reader on the daemon's database");
    let preloaded_pending = reader.count_pending_effects().await.expect("count the outbox");
    let drained = {
        let reader = &reader;
        move || async move { reader.count_pending_effects().await.expect("count the outbox") <= preloaded_pending }
    };

    // Action phase: create, accept, engage a third party, pass.
    let cpu = cpu_seconds(pid);
    let began = Instant::now();
    {
        let (latencies, ids) = (latencies.clone(), ids.clone());
        closed_loop(&base, &clerk, run.clients, n, move |mut connection, item| {
            let (latencies, ids) = (latencies.clone(), ids.clone());
            async move {
                let body = json!({"procedure": "registration", "jurisdiction": "taian", "input": registration_input()});
                let created = connection.expect(&latencies, "POST", "/v1/instances", &body).await;
                let id = created["id"].as_i64().expect("an instance id");
                ids.lock().unwrap()[item] = id;
                let path = format!("/v1/instances/{id}/actions");
                for (action, data) in [
                    ("accept", json!({})),
                    ("engage_third_party", json!({"third_party": "合规服务中心", "reason": "涉及个人信息"})),
                    ("pass", json!({"compliance_report": "合规"})),
                ] {
                    connection.expect(&latencies, "POST", &path, &json!({"action": action, "data": data})).await;
                }
                connection
            }
        })
        .await;
    }
    let actions = began.elapsed();
    let actions_cpu = (cpu_seconds(pid) - cpu) / actions.as_secs_f64();
    let action_p50 = latencies.percentile_ms(0.50);
    let action_p99 = latencies.percentile_ms(0.99);
    let calls = latencies.count();

    // The clock advance fires every publicity timer; the outbox issues certificates and
    // sends notices. Resident memory is sampled throughout.
    eprintln!("  (actions done in {:.1} s; advancing the clock)", actions.as_secs_f64());
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_during_burst = Arc::new(AtomicU64::new(0));
    let before_burst = memory_mib(pid, "VmRSS:");
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak_during_burst.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max((memory_mib(pid, "VmRSS:") * 1024.0) as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let cpu = cpu_seconds(pid);
    let advance_began = Instant::now();
    let mut admin_connection = Connection::open(&base, &admin).await;
    let (status, moved) = admin_connection.call("POST", "/v1/admin/clock", Some(&json!({"advance": "P14D"}))).await;
    assert_eq!(status, 200, "clock advance: {moved}");
    let advance = advance_began.elapsed();
    let fired = moved["fired_total"].as_u64().unwrap_or(0);
    assert!(fired >= n as u64, "every publicity timer fires: {fired} of {n}");
    let pending_after_advance = reader.count_pending_effects().await.expect("count the outbox") - preloaded_pending;
    while !drained().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = advance_began.elapsed() - advance;
    let burst_cpu = (cpu_seconds(pid) - cpu) / advance_began.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().ok();
    let burst_growth = peak_during_burst.load(Ordering::Relaxed) as f64 / 1024.0 - before_burst;

    eprintln!("  (outbox drained in {:.1} s; confirming rights)", drain.as_secs_f64());
    // The last action.
    let last = Arc::new(Latencies::default());
    let cpu = cpu_seconds(pid);
    let confirm_began = Instant::now();
    {
        let (last, ids) = (last.clone(), ids.clone());
        closed_loop(&base, &clerk, run.clients, n, move |mut connection, item| {
            let (last, ids) = (last.clone(), ids.clone());
            async move {
                let id = ids.lock().unwrap()[item];
                let path = format!("/v1/instances/{id}/actions");
                connection.expect(&last, "POST", &path, &json!({"action": "confirm_rights", "data": {}})).await;
                connection
            }
        })
        .await;
    }
    let confirm = confirm_began.elapsed();
    let confirm_cpu = (cpu_seconds(pid) - cpu) / confirm.as_secs_f64();
    while !drained().await {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let end_to_end = began.elapsed();
    let registered = reader.count_outcome("registered").await.expect("count registered");
    assert_eq!(registered, n as u64, "every registration ends registered");
    let peak_rss = memory_mib(pid, "VmHWM:");
    drop(reader);

    // Restart: SIGTERM, start again, time until /readyz answers 200.
    let (dir, db) = daemon.stop();
    let restart_began = Instant::now();
    let daemon = Daemon::launch(&dir, &db, "2026-03-20T09:00:00+08:00");
    let mut probe = Connection::open(&daemon.base, &admin).await;
    while probe.call("GET", "/readyz", None).await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let restart = restart_began.elapsed();
    let restarted_rss = memory_mib(daemon.pid(), "VmRSS:");
    daemon.stop();

    println!();
    let preload = if run.preload > 0 { format!(", {} open instances preloaded", run.preload) } else { String::new() };
    println!("N = {n} registrations, {} clients{preload}", run.clients);
    println!(
        "  action phase          {:>9.0} registrations/s  {:>7.0} calls/s  ({calls} calls in {:.1} s)",
        n as f64 / actions.as_secs_f64(),
        calls as f64 / actions.as_secs_f64(),
        actions.as_secs_f64()
    );
    println!("  per-call latency      {action_p50:>9.1} ms p50   {action_p99:>7.1} ms p99");
    println!("  server CPU (actions)  {actions_cpu:>9.2} cores");
    println!(
        "  timer firing          {:>9.0} timers/s  ({fired} in {:.2} s)",
        fired as f64 / advance.as_secs_f64(),
        advance.as_secs_f64()
    );
    println!(
        "  outbox drain          {:>9.2} s  ({pending_after_advance} effects pending after the advance; {burst_cpu:.2} cores)",
        drain.as_secs_f64()
    );
    println!("  RSS during the burst  {burst_growth:>+9.1} MiB");
    println!(
        "  last action           {:>9.0} calls/s  ({:.1} ms p50, {:.1} ms p99; {confirm_cpu:.2} cores)",
        n as f64 / confirm.as_secs_f64(),
        last.percentile_ms(0.50),
        last.percentile_ms(0.99)
    );
    println!("  end to end            {:>9.0} registrations/s", n as f64 / end_to_end.as_secs_f64());
    println!("  RSS                   {idle_rss:>9.1} MiB idle at start, {peak_rss:.1} MiB peak, {restarted_rss:.1} MiB after restart");
    println!("  restart to /readyz    {:>9.0} ms", restart.as_secs_f64() * 1e3);
    if std::env::var_os("STATFLOW_LOAD_LOG").is_some() {
        println!("  the daemon's log      {}", dir.join("serve.log").display());
        None
    } else {
        Some(dir)
    }
}
