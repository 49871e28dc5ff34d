//! `TestApp`: the real `statflow serve` on a random port with a fresh database and a
//! virtual clock, plus a small JSON client. Every black-box API test starts one.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod smtp;

pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "statflow-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    /// The server named by `STATFLOW_TEST_POSTGRES_URL`; a fresh database per test.
    Postgres,
    /// SQLite as the read model, instances run by the Temporal engine on the dev server
    /// named by `STATFLOW_TEST_TEMPORAL_ADDRESS`, on a task queue of the test's own.
    Temporal,
}

/// The Temporal dev server for tests, when one is configured.
pub fn temporal_address() -> Option<String> {
    std::env::var("STATFLOW_TEST_TEMPORAL_ADDRESS").ok().filter(|a| !a.is_empty())
}

/// The events of a workflow's history on the Temporal server at `address`, as the
/// `temporal` CLI shows them.
pub fn temporal_history(address: &str, workflow: &str) -> Vec<Value> {
    let out = Command::new("temporal")
        .args(["workflow", "show", "--address", address, "--workflow-id", workflow, "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    history["events"].as_array().cloned().unwrap_or_default()
}

/// Where a daemon's instances run on the Temporal engine, and whether it runs a worker.
struct Temporal {
    address: String,
    worker: bool,
}

/// A test daemon's task queue: named after its scratch directory, so tests never share one.
fn queue_of(dir: &std::path::Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

/// Whether a test on the Temporal engine can run here; says so when it cannot.
pub fn temporal_available() -> bool {
    let available = temporal_address().is_some();
    if !available {
        eprintln!("STATFLOW_TEST_TEMPORAL_ADDRESS is not set: not run on the Temporal engine");
    }
    available
}

/// The PostgreSQL server for tests, when one is configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("STATFLOW_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// Creates an empty database on the test server and returns its URL.
fn fresh_postgres_database(server: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!("statflow_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        use sea_orm::ConnectionTrait;
        let db = sea_orm::Database::connect(server).await.expect("the test PostgreSQL server answers");
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        db.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        db.close().await.unwrap();
    });
    let (base, _) = server.rsplit_once('/').expect("a URL ending in /DATABASE");
    format!("{base}/{name}")
}

/// The work lease of the test daemons: short, so takeovers come quickly.
pub const LEASE: Duration = Duration::from_secs(2);

/// The request id every test request sends, which the daemon must not take as its own.
const CALLERS_REQUEST_ID: &str = "chosen-by-the-caller";

pub struct TestApp {
    child: Mutex<Option<Child>>,
    /// Where the daemon listens; it changes when the daemon is restarted.
    base: RwLock<String>,
    pub db: String,
    pub dir: PathBuf,
    virtual_clock: Mutex<String>,
    /// The engine flags `serve` gets (none: the embedded engine).
    engine: Vec<String>,
    agent: ureq::Agent,
    /// An administrator's token.
    pub admin: String,
    /// Whether this daemon's database is its own (dropped with it), not another's it runs
    /// beside.
    owns_database: bool,
}

impl TestApp {
    /// Starts the daemon with a virtual clock at `clock` on a fresh database.
    pub fn start(backend: Backend, clock: &str) -> TestApp {
        Self::start_configured(backend, clock, "")
    }

    /// Like [`start`](Self::start), with `config` added to the daemon's configuration file
    /// (which always keeps the mail spool inside the test's scratch directory).
    pub fn start_configured(backend: Backend, clock: &str, config: &str) -> TestApp {
        let temporal = matches!(backend, Backend::Temporal)
            .then(|| Temporal { address: temporal_address().expect("only called when configured"), worker: true });
        Self::start_on(backend, clock, config, temporal)
    }

    /// Like [`start_configured`](Self::start_configured) on the Temporal engine, against the
    /// Temporal server at `address` (a test's own).
    pub fn start_on_temporal(address: &str, clock: &str, config: &str) -> TestApp {
        Self::start_on(Backend::Temporal, clock, config, Some(Temporal { address: address.into(), worker: true }))
    }

    /// The API on `backend`'s database with instances on the Temporal server at `address`,
    /// and no worker in the daemon: the test runs `statflow worker` processes itself.
    pub fn start_api_only(backend: Backend, address: &str, clock: &str) -> TestApp {
        Self::start_on(backend, clock, "", Some(Temporal { address: address.into(), worker: false }))
    }

    /// The task queue of this daemon's instances on the Temporal engine: one per test.
    pub fn task_queue(&self) -> String {
        queue_of(&self.dir)
    }

    /// The embedded engine on SQLite, on a copy of the database file `seed` (a backup, say),
    /// with an administrator's token of its own (`restorer`).
    pub fn start_from_copy(seed: &std::path::Path, clock: &str) -> TestApp {
        Self::start_seeded(Backend::Sqlite, clock, "", None, Some(seed))
    }

    fn start_on(backend: Backend, clock: &str, config: &str, temporal: Option<Temporal>) -> TestApp {
        Self::start_seeded(backend, clock, config, temporal, None)
    }

    fn start_seeded(
        backend: Backend,
        clock: &str,
        config: &str,
        temporal: Option<Temporal>,
        seed: Option<&std::path::Path>,
    ) -> TestApp {
        let dir = scratch("api");
        if let Some(seed) = seed {
            std::fs::copy(seed, dir.join("statflow.db")).unwrap();
        }
        std::fs::write(
            dir.join("statflow.toml"),
            format!(
                "{config}\n[mail]\nfrom = \"statflow <statflow@test.example>\"\nspool_dir = \"{}\"\n",
                dir.join("mail").display()
            ),
        )
        .unwrap();
        let engine = match temporal {
            Some(Temporal { address, worker }) => {
                let queue = queue_of(&dir);
                let mut args: Vec<String> =
                    ["--engine", "temporal", "--temporal-address", &address, "--task-queue", &queue]
                        .map(String::from)
                        .to_vec();
                if !worker {
                    args.push("--no-worker".into());
                }
                args
            }
            None => vec![],
        };
        let db = match backend {
            Backend::Sqlite | Backend::Temporal => format!("sqlite://{}/statflow.db?mode=rwc", dir.display()),
            Backend::Postgres => fresh_postgres_database(&postgres_url().expect("only called when configured")),
        };
        // One connection per request: a pooled connection the server has just closed would
        // make a request fail that the daemon never saw, and each request here must be
        // answered on its own.
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections_per_host(0).build().into();
        let mut app = TestApp {
            child: Mutex::new(None),
            base: RwLock::new(String::new()),
            db,
            dir,
            virtual_clock: Mutex::new(clock.to_owned()),
            engine,
            agent,
            admin: String::new(),
            owns_database: true,
        };
        // A copied database has its own `admin` already.
        app.admin = app.token(if seed.is_some() { "restorer" } else { "admin" }, "administrator", &[]);
        app.launch();
        app
    }

    /// Another daemon process beside this one: the same database, engine flags and
    /// configuration, listening on a port of its own.
    pub fn beside(&self) -> TestApp {
        let app = TestApp {
            child: Mutex::new(None),
            base: RwLock::new(String::new()),
            db: self.db.clone(),
            dir: self.dir.clone(),
            virtual_clock: Mutex::new(self.virtual_clock.lock().unwrap().clone()),
            engine: self.engine.clone(),
            agent: self.agent.clone(),
            admin: self.admin.clone(),
            owns_database: false,
        };
        app.launch();
        app
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().expect("running").id()
    }

    /// Requests with any method, for the authorization matrix: (status, body, content type).
    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value, String) {
        let (status, body, headers) = self.exchange(method, path, token, body);
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (status, body, content_type)
    }

    /// Like [`request`](Self::request), answering with the request id the daemon gave it
    /// (`x-request-id`) instead of the content type.
    pub fn request_identified(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value, String) {
        let (status, body, headers) = self.exchange(method, path, Some(token), body);
        let id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("every answer names its request");
        assert_ne!(id, CALLERS_REQUEST_ID, "the daemon names its requests itself");
        (status, body, id.to_owned())
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value, ureq::http::HeaderMap) {
        let url = format!("{}{path}", self.base());
        // The daemon gives every request an id of its own: one the caller sends is dropped.
        let mut request =
            ureq::http::Request::builder().method(method).uri(url).header("x-request-id", CALLERS_REQUEST_ID);
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = match body {
            Some(body) => {
                self.agent.run(request.header("Content-Type", "application/json").body(body.to_string()).unwrap())
            }
            None => self.agent.run(request.body(()).unwrap()),
        }
        .unwrap();
        let headers = response.headers().clone();
        let (status, body) = Self::read(response);
        (status, body, headers)
    }

    pub fn base(&self) -> String {
        self.base.read().unwrap().clone()
    }

    fn launch(&self) {
        let clock = self.virtual_clock.lock().unwrap().clone();
        // Appended across restarts, so a crash test keeps every run's log.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("serve.log")).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_statflow"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &self.db, "--virtual-clock", &clock])
            .args(&self.engine)
            .arg("--config")
            .arg(self.dir.join("statflow.toml"))
            // Several nodes on one database take work over from one gone this long after.
            .env("STATFLOW_LEASE_SECONDS", LEASE.as_secs().to_string())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("statflow starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("statflow listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        *self.base.write().unwrap() = base.to_owned();
        *self.child.lock().unwrap() = Some(child);
    }

    /// Asks the daemon to stop (SIGTERM, as systemd does) and waits for it to exit.
    pub fn terminate(&self) -> std::process::ExitStatus {
        let mut child = self.child.lock().unwrap().take().expect("the daemon runs");
        let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "SIGTERM is delivered");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon stops within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// Kills the daemon without warning (SIGKILL) and starts it again on the same database,
    /// with its virtual clock at `clock`.
    pub fn crash_and_restart(&self, clock: &str) {
        self.crash();
        self.restart(clock);
    }

    /// Kills the daemon with SIGKILL.
    pub fn crash(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Starts the daemon again (after [`crash`](Self::crash)) with its virtual clock at `clock`.
    pub fn restart(&self, clock: &str) {
        *self.virtual_clock.lock().unwrap() = clock.to_owned();
        self.launch();
    }

    /// Creates a principal through the CLI and returns its token.
    pub fn token(&self, name: &str, role: &str, organizations: &[&str]) -> String {
        let mut args = vec!["token", "create", "--db", &self.db, "--name", name, "--role", role];
        for org in organizations {
            args.extend(["--org", org]);
        }
        let out = Command::new(env!("CARGO_BIN_EXE_statflow")).args(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Creates a person who signs in to the console, through the CLI.
    pub fn user(&self, name: &str, role: &str, organizations: &[&str], password: &str) {
        use std::io::Write;
        let mut args = vec!["user", "create", "--db", &self.db, "--name", name, "--role", role, "--password-stdin"];
        for org in organizations {
            args.extend(["--org", org]);
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_statflow"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn read(mut response: ureq::http::Response<ureq::Body>) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .agent
            .get(format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        Self::read(response)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, token, &body.to_string())
    }

    pub fn post_raw(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        let response = self
            .agent
            .post(format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/json")
            .send(body)
            .unwrap();
        Self::read(response)
    }

    pub fn put(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let response = self
            .agent
            .put(format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/json")
            .send(body.to_string())
            .unwrap();
        Self::read(response)
    }

    pub fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .agent
            .delete(format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .unwrap();
        Self::read(response)
    }

    /// The messages in the daemon's mail spool (`dir/mail`), decoded, in file-name order.
    pub fn spooled_mail(&self) -> Vec<Value> {
        read_mail(&self.dir.join("mail"))
    }

    /// The status of a POST that declares a body of `length` bytes and sends none of it: a
    /// server that refuses an oversized body must answer from the declared length, before
    /// reading (sending the body itself races the server closing the connection).
    pub fn post_declaring_length(&self, path: &str, token: &str, length: usize) -> u16 {
        use std::io::{Read, Write};
        let address = self.base().trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        String::from_utf8_lossy(&head[9..12]).parse().unwrap()
    }

    /// A POST that may find the daemon down: `None` means no answer, so not acknowledged.
    pub fn try_post(&self, path: &str, token: &str, body: &Value) -> Option<(u16, Value)> {
        self.agent
            .post(format!("{}{path}", self.base()))
            .header("Authorization", format!("Bearer {token}"))
            .content_type("application/json")
            .send(body.to_string())
            .ok()
            .map(Self::read)
    }

    /// Moves the virtual clock and returns the timers that fired.
    pub fn advance(&self, duration: &str) -> Vec<String> {
        let (status, body) = self.post("/v1/admin/clock", &self.admin, &serde_json::json!({"advance": duration}));
        assert_eq!(status, 200, "{body}");
        body["fired"].as_array().unwrap().iter().map(|f| f["timer"].as_str().unwrap().to_owned()).collect()
    }

    pub fn instance(&self, id: i64) -> Value {
        let (status, body) = self.get(&format!("/v1/instances/{id}"), &self.admin);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits (bounded) until `probe` returns something: effects run after commit, so their
    /// results show a moment later.
    pub fn wait_until<T>(&self, what: &str, probe: impl Fn() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(Instant::now() < deadline, "never happened: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the instance satisfies `condition`.
    pub fn wait_for(&self, id: i64, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(&format!("instance {id}: {what}"), || Some(self.instance(id)).filter(|body| condition(body)))
    }
}

/// Decodes the `*.eml` files in `dir` with Python's email package
/// (`tests/fixtures/read_mail.py`).
pub fn read_mail(dir: &std::path::Path) -> Vec<Value> {
    if !dir.exists() {
        return Vec::new();
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/read_mail.py");
    let out = Command::new("python3").arg(script).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let (Some(server), Some((_, name))) = (postgres_url(), self.db.rsplit_once('/')) {
            if self.db.starts_with("postgres") && self.owns_database && !std::thread::panicking() {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    use sea_orm::ConnectionTrait;
                    if let Ok(db) = sea_orm::Database::connect(&server).await {
                        let _ = db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    }
                });
            }
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Starts an instance over the API and returns its id.
pub fn start(app: &TestApp, token: &str, procedure: &str, jurisdiction: &str, input: Value) -> i64 {
    let (status, body) = app.post(
        "/v1/instances",
        token,
        &serde_json::json!({"procedure": procedure, "jurisdiction": jurisdiction, "input": input}),
    );
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// Takes an action over the API and returns the instance.
pub fn act(app: &TestApp, token: &str, id: i64, action: &str, data: Value) -> Value {
    let (status, body) =
        app.post(&format!("/v1/instances/{id}/actions"), token, &serde_json::json!({"action": action, "data": data}));
    assert_eq!(status, 200, "{action}: {body}");
    body
}

/// Runs the CLI against the daemon: (exit code, stdout, stderr).
pub fn cli(app: &TestApp, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_statflow"))
        .args(args)
        .env("STATFLOW_SERVER", app.base())
        .env("STATFLOW_TOKEN", token)
        .output()
        .unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}
