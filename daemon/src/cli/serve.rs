//! `statflow serve`, `statflow migrate` and `statflow token create`: the commands that open
//! the database.

use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use tokio::net::TcpListener;

use super::Failure;
use crate::api;
use crate::config::{DbArgs, Notifications, ServeArgs, WorkerArgs};
use crate::engine::embedded::clock::Clock;
use crate::engine::embedded::delivery::Channels;
use crate::engine::embedded::Embedded;
use crate::engine::temporal::{TemporalHost, TemporalWorker};
use crate::engine::Engine;
use crate::store::database_url::{redacted, sqlite_file, SqliteLock};
use crate::store::directory::DirectoryFile;
use crate::store::Store;
use statflow_activities::email::Mailer;
use statflow_activities::templates::Templates;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Creates a principal and prints its token once (only its hash is stored).
    Create(TokenArgs),
    /// Lists the tokens' holders: name, role, organizations, when created.
    List(TokenListArgs),
    /// Revokes a token (requests with it are refused from now on).
    Revoke(TokenRevokeArgs),
}

#[derive(Args)]
pub struct TokenListArgs {
    #[command(flatten)]
    db: DbArgs,
}

#[derive(Args)]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The holder's name, as `token list` shows it.
    name: String,
}

#[derive(Args)]
pub struct TokenArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long)]
    name: String,
    /// staff, administrator, scheduler or regulator.
    #[arg(long)]
    role: String,
    /// An organization the principal belongs to (repeatable).
    #[arg(long = "org")]
    organizations: Vec<String>,
    /// The last day the token works (YYYY-MM-DD, through 24:00 Asia/Shanghai); it never
    /// expires without one.
    #[arg(long, value_parser = expiry_day)]
    expires: Option<chrono::NaiveDate>,
}

fn expiry_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("`{text}` is not a date (YYYY-MM-DD)"))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| Failure::invalid(e.to_string()))
}

pub(super) async fn open(url: &str, timeout: std::time::Duration) -> Result<Store, Failure> {
    Store::open_within(url, timeout).await.map_err(|e| Failure::invalid(format!("--db: {}: {e}", redacted(url))))
}

pub fn migrate(args: DbArgs) -> Result<(), Failure> {
    let url = args.resolve().map_err(Failure::usage)?.url;
    runtime()?.block_on(async {
        let applied =
            Store::migrate(&url).await.map_err(|e| Failure::invalid(format!("--db: {}: {e}", redacted(&url))))?;
        if applied.is_empty() {
            println!("the database is up to date");
        }
        for name in applied {
            println!("applied {name}");
        }
        Ok(())
    })
}

pub fn token(command: TokenCommand) -> Result<(), Failure> {
    let db = match &command {
        TokenCommand::Create(args) => &args.db,
        TokenCommand::List(args) => &args.db,
        TokenCommand::Revoke(args) => &args.db,
    };
    let settings = db.resolve().map_err(Failure::usage)?;
    let (url, timeout) = (settings.url, settings.connect_timeout);
    runtime()?.block_on(async {
        let store = open(&url, timeout).await?;
        let failed = |e: crate::store::StoreError| Failure::invalid(e.to_string());
        match command {
            TokenCommand::Create(args) => {
                let token = api::auth::create_token(&store, &args.name, &args.role, &args.organizations, args.expires)
                    .await
                    .map_err(Failure::usage)?;
                println!("{token}");
            }
            TokenCommand::List(_) => {
                for holder in store.token_holders(None).await.map_err(failed)? {
                    let created = crate::store::from_millis(holder.created_at).format("%Y-%m-%d %H:%M");
                    let expires = holder.expires_at.map_or_else(
                        || "never expires".to_owned(),
                        |at| format!("expires {}", crate::store::from_millis(at).format("%Y-%m-%d %H:%M")),
                    );
                    println!(
                        "{}\t{}\t{}\t{created}\t{expires}",
                        holder.name,
                        holder.role,
                        holder.organizations.join(",")
                    );
                }
            }
            TokenCommand::Revoke(args) => {
                if !store.revoke_token(&args.name, "cli").await.map_err(failed)? {
                    return Err(Failure::usage(format!("no token of `{}`", args.name)));
                }
                println!("the token of {} is revoked", args.name);
            }
        }
        Ok(())
    })
}

pub fn serve(args: ServeArgs) -> Result<(), Failure> {
    let config = args.resolve().map_err(Failure::usage)?;
    init_logs(config.json_logs);
    runtime()?.block_on(async {
        // The address is taken before anything else, so a wrong --listen is said at once and
        // nothing (not even a migration) has happened.
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| Failure::usage(format!("--listen: {}: {e}", config.listen)))?;
        let _lock = match sqlite_file(&config.db) {
            Some(file) => Some(SqliteLock::acquire(&file).map_err(|e| Failure::invalid(format!("--db: {e}")))?),
            None => None,
        };
        // The recorder is in place before the engine and its workers record anything (a
        // standby's first `statflow_work_lease_held 0` included).
        crate::metrics::install(if config.temporal.is_some() { "temporal" } else { "embedded" });
        let store = open(&config.db, config.db_connect_timeout).await?;
        let clock = match config.virtual_clock {
            Some(start) => Clock::Virtual(Mutex::new(start)),
            None => Clock::System,
        };
        let engine = Embedded::load(store.clone(), clock).await.map_err(|e| Failure::invalid(e.to_string()))?;
        engine.configure_anchoring(config.anchoring.clone());
        engine.configure_task_notices(config.notifications.task_notices);
        let channels = Arc::new(channels(&config.notifications)?);
        if let Some(path) = &config.notifications.directory {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("directory: {}: {e}", path.display())))?;
            let file = DirectoryFile::parse(&text, &path.display().to_string()).map_err(Failure::usage)?;
            let now = crate::store::to_millis(engine.now());
            store.load_directory(&file, now).await.map_err(|e| Failure::invalid(e.to_string()))?;
        }
        engine.install_built_in_schedules().await.map_err(|e| Failure::invalid(e.to_string()))?;
        if sqlite_file(&config.db).is_none() {
            // Several nodes may share this database: the work that answers no request
            // (catch-up included) is done by the one holding the work lease, and what the
            // others store reaches this one (a shared virtual clock included) before it serves.
            engine.share_work_through_lease(config.lease.clone());
            engine.refresh_from_store().await.map_err(|e| Failure::invalid(e.to_string()))?;
        } else {
            // Fire times missed while the daemon was down are settled before it serves (each
            // skipped or claimed by its policy), so the first requests see a settled schedule;
            // the schedule worker runs the claimed ones, which may take long, while it serves.
            for run in engine.settle_before_serving().await.map_err(|e| Failure::invalid(e.to_string()))? {
                tracing::info!(schedule = %run.schedule, fire_at = %run.fire_at, status = %run.status, "missed while down");
            }
        }
        let temporal_worker = if let Some(settings) = &config.temporal {
            // Instances run as Temporal workflows: this process sends them their events and
            // runs a worker for them (docs/engines.md).
            let host = TemporalHost::connect(settings, &engine).await.map_err(Failure::usage)?;
            engine.hand_over(Arc::new(host));
            config.temporal_worker.then(|| TemporalWorker::spawn(settings.clone(), engine.clone(), channels.clone()))
        } else {
            None
        };
        engine.start_workers(channels);
        let address = listener.local_addr().map_err(|e| Failure::invalid(e.to_string()))?;
        // The first line says where to connect (useful with --listen 127.0.0.1:0).
        println!("statflow listening on http://{address}");
        tracing::info!(version = env!("CARGO_PKG_VERSION"), %address, db = %redacted(&config.db), engine = engine.kind(), virtual_clock = engine.has_virtual_clock(), node = %config.lease.node, "serving");
        let secure_cookies = config.notifications.base_url.starts_with("https://");
        let router = api::router(engine.clone(), store, secure_cookies, config.metrics.clone());
        // The peer's address reaches the handlers: `/metrics` serves loopback only by default.
        let served = axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Failure::invalid(e.to_string()));
        // Requests are answered; now the workers finish their passes.
        tracing::info!("no longer accepting requests; stopping the workers");
        engine.shutdown().await;
        if let Some(worker) = temporal_worker {
            worker.stop().await;
        }
        tracing::info!("statflow stopped");
        served
    })
}

/// Logs go to stderr (stdout carries only what a command prints for its caller), coloured
/// only when stderr is a terminal: a log file or the journal gets plain text.
fn init_logs(json: bool) {
    use std::io::IsTerminal;
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,sea_orm=warn".into()),
        );
    if json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
}

/// How often a worker looks for calendar imports and definition versions stored by the
/// processes that take them.
const WORKER_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// `statflow worker`: runs the Temporal worker of statflow's workflows and activities only,
/// against the database the API processes use, until Ctrl-C or SIGTERM.
pub fn worker(args: WorkerArgs) -> Result<(), Failure> {
    let config = args.resolve().map_err(Failure::usage)?;
    init_logs(config.json_logs);
    runtime()?.block_on(async {
        if sqlite_file(&config.db.url).is_some() {
            return Err(Failure::usage(
                "--db: a SQLite database belongs to one process; a worker of its own needs PostgreSQL \
                 (or run the worker inside `serve`, without --no-worker)",
            ));
        }
        let store = open(&config.db.url, config.db.connect_timeout).await?;
        // The worker's engine only records what its workflows decide and carries out their
        // effects (events for other instances go to their workflows): it runs none of the
        // embedded engine's own workers, and its clock is not used.
        let engine = Embedded::load(store, Clock::System).await.map_err(|e| Failure::invalid(e.to_string()))?;
        engine.configure_task_notices(config.notifications.task_notices);
        let host = TemporalHost::connect(&config.temporal, &engine).await.map_err(Failure::usage)?;
        engine.hand_over(Arc::new(host));
        let channels = Arc::new(channels(&config.notifications)?);
        let worker = TemporalWorker::spawn(config.temporal.clone(), engine.clone(), channels);
        println!(
            "statflow worker on {} (namespace {}, task queue {})",
            config.temporal.address, config.temporal.namespace, config.temporal.task_queue
        );
        let refresh = async {
            loop {
                tokio::time::sleep(WORKER_REFRESH).await;
                if let Err(error) = engine.refresh_from_store().await {
                    tracing::warn!(%error, "could not read calendar imports and definition versions");
                }
            }
        };
        tokio::select! {
            () = shutdown() => {}
            () = refresh => {}
        }
        worker.stop().await;
        tracing::info!("statflow worker stopped");
        Ok(())
    })
}

/// The delivery channels: SMTP when `[smtp]` is configured, else the mail spool.
fn channels(config: &Notifications) -> Result<Channels, Failure> {
    let mailer = match &config.smtp {
        Some(smtp) => {
            tracing::info!(host = %smtp.host, "mail goes out by SMTP");
            Mailer::smtp(smtp, &config.mail.from)
        }
        None => {
            tracing::info!(spool = %config.mail.spool_dir.display(), "no [smtp] configured: mail is written to the spool");
            Mailer::spool(config.mail.spool_dir.clone(), &config.mail.from)
        }
    }
    .map_err(|e| Failure::usage(format!("--config: {e}")))?;
    Ok(Channels {
        mailer,
        templates: Templates::new(config.templates_dir.clone()),
        webhook: config.webhook.clone(),
        base_url: config.base_url.clone(),
    })
}

/// Stops accepting requests on Ctrl-C or SIGTERM; in-flight requests finish first.
async fn shutdown() {
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
