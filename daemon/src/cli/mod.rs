//! Command-line parsing and dispatch. Each command group lives in its own module; errors are
//! one line on stderr naming the bad argument, with exit code 2 (usage) or 1 (the thing
//! checked is invalid).

mod audit;
mod backup;
mod calendar;
mod client;
mod definitions;
mod deliveries;
mod directory;
mod schedules;
mod serve;
mod users;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "statflow", version, about = "Statutory procedures of public-data regulation as durable workflows")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The official working-day calendar: look up days, compute limits, import notices.
    #[command(subcommand)]
    Calendar(calendar::CalendarCommand),
    /// Procedure definitions: validate files, draw diagrams.
    #[command(subcommand)]
    Definitions(definitions::DefinitionsCommand),
    /// Runs the daemon: the HTTP API, timers and effects, on SQLite by default.
    Serve(crate::config::ServeArgs),
    /// Runs only a Temporal worker of statflow's workflows (`--engine temporal`), beside
    /// `serve --engine temporal --no-worker` processes on the same PostgreSQL database.
    Worker(crate::config::WorkerArgs),
    /// Runs pending database migrations and exits.
    Migrate(crate::config::DbArgs),
    /// The directory of organizations and contacts notifications go to (on a running daemon).
    #[command(subcommand)]
    Directory(directory::DirectoryCommand),
    /// A consistent copy of a SQLite database, taken while the daemon runs.
    Backup(backup::BackupArgs),
    /// The audit log of administrative acts (on a running daemon).
    Audit(audit::AuditArgs),
    /// Deliveries of notices and escalations, and sending failed ones again (on a running
    /// daemon).
    #[command(subcommand)]
    Deliveries(deliveries::DeliveriesCommand),
    /// Cron schedules that start evaluations, reports and sweeps (on a running daemon).
    #[command(subcommand)]
    Schedules(schedules::SchedulesCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// People who sign in to the console (on the database directly).
    #[command(subcommand)]
    User(users::UserCommand),
    /// Checks every instance's history (chain, head, ledger, replay) and the ledger's anchors,
    /// on the database directly; flags instances that fail.
    Verify(verify::VerifyArgs),
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// A failure a command reports: its one-line message and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// A bad argument: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { code: 2, message: message.into() }
    }

    /// What was checked is wrong (e.g. an invalid file): exit code 1.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure { code: 1, message: message.into() }
    }
}

pub fn run() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Calendar(command) => calendar::run(command),
        Command::Definitions(command) => definitions::run(command),
        Command::Serve(args) => serve::serve(args),
        Command::Worker(args) => serve::worker(args),
        Command::Migrate(args) => serve::migrate(args),
        Command::Audit(args) => audit::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Deliveries(command) => deliveries::run(command),
        Command::Directory(command) => directory::run(command),
        Command::Schedules(command) => schedules::run(command),
        Command::Token(command) => serve::token(command),
        Command::User(command) => users::run(command),
        Command::Verify(args) => verify::run(args),
        Command::Client(command) => client::run(command),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("statflow: {}", failure.message);
            failure.code
        }
    }
}
