//! Typed configuration of `statflow serve`, from (in order of precedence) command-line
//! flags, `STATFLOW_*` environment variables, a TOML file given with `--config`, and
//! defaults that need nothing else installed: a SQLite file in the working directory and
//! 127.0.0.1:8080.

use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};
use clap::Args;
use serde::Deserialize;
use statflow_activities::email::SmtpConfig;
use statflow_activities::webhook::WebhookConfig;

use crate::engine::embedded::lease::LeaseSettings;
use crate::engine::temporal::Settings;
use crate::integrity::anchors::{AnchorKey, Anchoring};

pub const DEFAULT_DB: &str = "sqlite://statflow.db?mode=rwc";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Where the database is: shared by every command that touches it.
#[derive(Args, Clone, Debug)]
pub struct DbArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` or `postgres://USER:PASSWORD@HOST/DB`.
    #[arg(long, env = "STATFLOW_DB")]
    pub db: Option<String>,
    /// A TOML file (see docs/operations.md): `db`, `listen`, `log_format`, `base_url`,
    /// `templates_dir`, `directory`, `[mail]`, `[smtp]`, `[webhook]`, `[integrity]`.
    #[arg(long, env = "STATFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds to wait for the database at start before giving up (default 10).
    #[arg(long, env = "STATFLOW_DB_CONNECT_TIMEOUT")]
    pub db_connect_timeout: Option<u64>,
}

#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Address to serve the API on.
    #[arg(long, env = "STATFLOW_LISTEN")]
    pub listen: Option<String>,
    /// Start a virtual clock at this instant (RFC 3339); time then moves only through
    /// `POST /v1/admin/clock`.
    #[arg(long, env = "STATFLOW_VIRTUAL_CLOCK")]
    pub virtual_clock: Option<String>,
    /// `text` or `json` logs.
    #[arg(long, env = "STATFLOW_LOG_FORMAT")]
    pub log_format: Option<String>,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// With `--engine temporal`: run no Temporal worker in this process (`statflow worker`
    /// runs them elsewhere).
    #[arg(long, env = "STATFLOW_NO_WORKER")]
    pub no_worker: bool,
    /// This node's name among several on one PostgreSQL database (default: host name and
    /// process id).
    #[arg(long, env = "STATFLOW_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds the work lease lasts unrenewed (several nodes on one PostgreSQL database): a
    /// standby takes the work over about this long after its holder dies (default 15).
    #[arg(long, env = "STATFLOW_LEASE_SECONDS")]
    pub lease_seconds: Option<u64>,
}

/// `statflow worker`: a Temporal worker of statflow's workflows only.
#[derive(Args, Clone, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// `text` or `json` logs.
    #[arg(long, env = "STATFLOW_LOG_FORMAT")]
    pub log_format: Option<String>,
}

/// The resolved configuration of `statflow worker`.
pub struct WorkerConfig {
    pub db: DbSettings,
    pub temporal: Settings,
    pub json_logs: bool,
    /// How the workflows' messages go out (links under `base_url`, which should name the API).
    pub notifications: Notifications,
}

impl WorkerArgs {
    pub fn resolve(&self) -> Result<WorkerConfig, String> {
        let file = read_file(&self.db.config)?;
        let db = self.db.resolve_with(&file)?;
        let temporal = self
            .engine
            .resolve_with(&file)?
            .ok_or("a worker runs Temporal workflows: give --engine temporal and --temporal-address HOST:PORT")?;
        let json_logs = json_logs(self.log_format.clone().or(file.log_format.clone()))?;
        let listen = file.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let notifications = Notifications::of_file(&file, &listen);
        Ok(WorkerConfig { db, temporal, json_logs, notifications })
    }
}

/// Whether logs are JSON: `text` (the default) or `json`.
fn json_logs(given: Option<String>) -> Result<bool, String> {
    match given.as_deref().unwrap_or("text") {
        "text" => Ok(false),
        "json" => Ok(true),
        other => Err(format!("--log-format: `{other}` must be text or json")),
    }
}

/// Which engine runs the instances (see docs/engines.md).
#[derive(Args, Clone, Debug, Default)]
pub struct EngineArgs {
    /// `embedded` (the default: in this process, on the database) or `temporal`.
    #[arg(long, env = "STATFLOW_ENGINE")]
    pub engine: Option<String>,
    /// `HOST:PORT` of the Temporal server's frontend (with `--engine temporal`).
    #[arg(long, env = "STATFLOW_TEMPORAL_ADDRESS")]
    pub temporal_address: Option<String>,
    /// The Temporal namespace (default `default`).
    #[arg(long, env = "STATFLOW_TEMPORAL_NAMESPACE")]
    pub namespace: Option<String>,
    /// The Temporal task queue statflow's workflows run on (default `statflow`).
    #[arg(long, env = "STATFLOW_TEMPORAL_TASK_QUEUE")]
    pub task_queue: Option<String>,
}

/// The `[temporal]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemporalConfig {
    address: Option<String>,
    namespace: Option<String>,
    task_queue: Option<String>,
}

impl EngineArgs {
    /// The Temporal server to run on, or `None` for the embedded engine.
    fn resolve_with(&self, file: &FileConfig) -> Result<Option<Settings>, String> {
        let engine = self.engine.clone().or_else(|| file.engine.clone()).unwrap_or_else(|| "embedded".into());
        let section = file.temporal.clone().unwrap_or_default();
        match engine.as_str() {
            "embedded" => Ok(None),
            "temporal" => {
                let address =
                    self.temporal_address.clone().or(section.address).ok_or(
                        "--engine temporal needs --temporal-address HOST:PORT (or `address` under [temporal])",
                    )?;
                let name = |flag: &str, value: Option<String>, default: &str| {
                    let value = value.unwrap_or_else(|| default.to_owned());
                    let valid = !value.is_empty() && value.len() <= 200 && !value.chars().any(char::is_whitespace);
                    if !valid {
                        return Err(format!("{flag}: `{value}` must be 1 to 200 characters, no spaces"));
                    }
                    Ok(value)
                };
                Ok(Some(Settings {
                    address,
                    namespace: name(
                        "--namespace",
                        self.namespace.clone().or(section.namespace),
                        Settings::DEFAULT_NAMESPACE,
                    )?,
                    task_queue: name(
                        "--task-queue",
                        self.task_queue.clone().or(section.task_queue),
                        Settings::DEFAULT_TASK_QUEUE,
                    )?,
                }))
            }
            other => Err(format!("--engine: `{other}` must be embedded or temporal")),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    db: Option<String>,
    /// `embedded` or `temporal`.
    engine: Option<String>,
    temporal: Option<TemporalConfig>,
    db_connect_timeout: Option<u64>,
    listen: Option<String>,
    log_format: Option<String>,
    /// Links in messages point under this address.
    base_url: Option<String>,
    /// `NAME.jinja` files here override the built-in message templates.
    templates_dir: Option<PathBuf>,
    /// A directory bootstrap file (organizations and contacts), loaded at start.
    directory: Option<PathBuf>,
    /// A new task sends a notice to the contacts holding its role in its organization (on
    /// unless `false`; a step opts out with `notify = false` on its task).
    task_notices: Option<bool>,
    #[serde(default)]
    mail: MailConfig,
    smtp: Option<SmtpConfig>,
    webhook: Option<WebhookConfig>,
    #[serde(default)]
    integrity: IntegrityConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    node_id: Option<String>,
    lease_seconds: Option<u64>,
}

/// The `[metrics]` section: who may read `GET /metrics`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsConfig {
    /// When set, a scrape must carry `Authorization: Bearer <token>`, from any address.
    token: Option<secrecy::SecretString>,
    /// Without a token: `true` lets anyone who reaches the port scrape (a private network);
    /// by default only loopback may.
    #[serde(default)]
    open: bool,
}

/// Who may read `GET /metrics`.
#[derive(Clone, Debug, Default)]
pub enum MetricsAccess {
    /// Requests from this machine only (the default).
    #[default]
    Loopback,
    /// Anyone who reaches the port.
    Open,
    /// Anyone with this bearer token.
    Token(secrecy::SecretString),
}

impl MetricsConfig {
    fn resolve(self) -> Result<MetricsAccess, String> {
        use secrecy::ExposeSecret;
        match (self.token, self.open) {
            (Some(_), true) => Err("[metrics]: give a token or open = true, not both".into()),
            (Some(token), false) if token.expose_secret().len() < 16 => {
                Err("[metrics] token: at least 16 characters".into())
            }
            (Some(token), false) => Ok(MetricsAccess::Token(token)),
            (None, true) => Ok(MetricsAccess::Open),
            (None, false) => Ok(MetricsAccess::Loopback),
        }
    }
}

/// The `[integrity]` section: where the ledger's daily anchors go besides the database.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    /// A file holding the anchoring key (at least 32 bytes), kept outside the database and
    /// its backups; anchors are signed with it and `statflow verify` checks them.
    key_file: Option<PathBuf>,
    /// Each anchor is appended to this file as a JSON line.
    anchor_file: Option<PathBuf>,
    /// Each anchor is mailed to these addresses (the regulator's).
    #[serde(default)]
    mail_to: Vec<String>,
}

impl IntegrityConfig {
    /// Reads the key and checks the addresses.
    fn resolve(self) -> Result<Anchoring, String> {
        let key = match &self.key_file {
            Some(path) => Some(AnchorKey::read(path).map_err(|e| format!("[integrity] key_file: {e}"))?),
            None => None,
        };
        if let Some(bad) = self.mail_to.iter().find(|a| !a.contains('@') || a.trim() != a.as_str()) {
            return Err(format!("[integrity] mail_to: `{bad}` is not an email address"));
        }
        Ok(Anchoring { key, file: self.anchor_file, mail_to: self.mail_to })
    }
}

/// The `[mail]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The sender of every message.
    #[serde(default = "default_from")]
    pub from: String,
    /// Without `[smtp]`, messages are written here as `.eml` files.
    #[serde(default = "default_spool")]
    pub spool_dir: PathBuf,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig { from: default_from(), spool_dir: default_spool() }
    }
}

fn default_from() -> String {
    "statflow <statflow@localhost>".into()
}

fn default_spool() -> PathBuf {
    PathBuf::from("statflow-mail")
}

/// Where notifications go and how they look.
#[derive(Clone, Debug)]
pub struct Notifications {
    pub base_url: String,
    pub templates_dir: Option<PathBuf>,
    pub directory: Option<PathBuf>,
    pub task_notices: bool,
    pub mail: MailConfig,
    pub smtp: Option<SmtpConfig>,
    pub webhook: Option<WebhookConfig>,
}

impl Notifications {
    /// The notification settings of the config file; links point under `base_url`, by
    /// default the daemon at `listen`.
    fn of_file(file: &FileConfig, listen: &str) -> Notifications {
        let base_url = file.base_url.clone().unwrap_or_else(|| format!("http://{listen}"));
        Notifications {
            base_url: base_url.trim_end_matches('/').to_owned(),
            templates_dir: file.templates_dir.clone(),
            directory: file.directory.clone(),
            task_notices: file.task_notices.unwrap_or(true),
            mail: file.mail.clone(),
            smtp: file.smtp.clone(),
            webhook: file.webhook.clone(),
        }
    }
}

/// The resolved configuration.
#[derive(Debug)]
pub struct Config {
    pub db: String,
    pub db_connect_timeout: std::time::Duration,
    pub listen: String,
    pub virtual_clock: Option<DateTime<FixedOffset>>,
    pub json_logs: bool,
    pub notifications: Notifications,
    pub anchoring: Anchoring,
    /// The Temporal server instances run on; `None`: the embedded engine.
    pub temporal: Option<Settings>,
    /// Whether this process runs a Temporal worker too (with `temporal`).
    pub temporal_worker: bool,
    pub metrics: MetricsAccess,
    /// This node and its work lease (used with PostgreSQL).
    pub lease: LeaseSettings,
}

fn read_file(path: &Option<PathBuf>) -> Result<FileConfig, String> {
    let Some(path) = path else { return Ok(FileConfig::default()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config: {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("--config: {}", toml_error(&text, &path.display().to_string(), &e)))
}

/// `origin:line: message` for a TOML file that does not parse into what was expected.
pub fn toml_error(text: &str, origin: &str, error: &toml::de::Error) -> String {
    let line = error.span().map_or(1, |span| text[..span.start].matches('\n').count() + 1);
    format!("{origin}:{line}: {}", error.message())
}

/// What every command that opens the database needs, read from one reading of the file.
pub struct DbSettings {
    pub url: String,
    pub connect_timeout: std::time::Duration,
    pub anchoring: Anchoring,
}

impl DbArgs {
    /// Resolves flags, environment and the configuration file (read once).
    pub fn resolve(&self) -> Result<DbSettings, String> {
        self.resolve_with(&read_file(&self.config)?)
    }

    fn resolve_with(&self, file: &FileConfig) -> Result<DbSettings, String> {
        let connect_timeout = match self.db_connect_timeout.or(file.db_connect_timeout) {
            None => crate::store::DEFAULT_CONNECT_TIMEOUT,
            Some(seconds @ 1..=600) => std::time::Duration::from_secs(seconds),
            Some(other) => return Err(format!("--db-connect-timeout: {other} is not from 1 to 600 seconds")),
        };
        Ok(DbSettings {
            url: self.db.clone().or_else(|| file.db.clone()).unwrap_or_else(|| DEFAULT_DB.to_owned()),
            connect_timeout,
            anchoring: file.integrity.clone().resolve()?,
        })
    }
}

impl ServeArgs {
    pub fn resolve(&self) -> Result<Config, String> {
        let file = read_file(&self.db.config)?;
        let db = self.db.resolve_with(&file)?;
        let temporal = self.engine.resolve_with(&file)?;
        let virtual_clock = match &self.virtual_clock {
            Some(text) => Some(DateTime::parse_from_rfc3339(text).map_err(|_| {
                format!("--virtual-clock: `{text}` is not an RFC 3339 instant such as 2026-03-02T09:00:00+08:00")
            })?),
            None => None,
        };
        let json_logs = json_logs(self.log_format.clone().or(file.log_format.clone()))?;
        if self.no_worker && temporal.is_none() {
            return Err("--no-worker: only with --engine temporal (the embedded engine runs its own instances)".into());
        }
        let listen = self.listen.clone().or(file.listen.clone()).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let ttl = match self.lease_seconds.or(file.lease_seconds) {
            None => LeaseSettings::DEFAULT_TTL,
            Some(seconds @ 1..=600) => std::time::Duration::from_secs(seconds),
            Some(other) => return Err(format!("--lease-seconds: {other} is not from 1 to 600 seconds")),
        };
        let node = match self.node_id.clone().or(file.node_id.clone()) {
            None => LeaseSettings::default_node(),
            Some(node) if (1..=100).contains(&node.len()) && !node.chars().any(char::is_control) => node,
            Some(_) => return Err("--node-id: give 1 to 100 printable characters".into()),
        };
        Ok(Config {
            lease: LeaseSettings { node, ttl },
            metrics: file.metrics.clone().resolve()?,
            temporal_worker: !self.no_worker,
            temporal,
            db: db.url,
            db_connect_timeout: db.connect_timeout,
            virtual_clock,
            json_logs,
            notifications: Notifications::of_file(&file, &listen),
            anchoring: db.anchoring,
            listen,
        })
    }
}
