//! `statflow schedules`: list, inspect, change, enable, disable and delete cron schedules on a
//! running daemon (through /v1/schedules, like the other client commands).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{read_json, text, Server};
use super::Failure;

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule with its cron expression, job and next fire time.
    List {
        #[command(flatten)]
        server: Server,
    },
    /// One schedule and its recent runs with what they started.
    Show {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Creates or replaces a schedule from a TOML or JSON file (see docs/schedules.md).
    Put {
        id: String,
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// Enables a schedule; it next fires after now (no catch-up of the time it was off).
    Enable {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Disables a schedule (built-in ones included).
    Disable {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Deletes a schedule that is not built in.
    Delete {
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

/// A schedule file: TOML when its name ends in `.toml`, JSON otherwise.
fn read_spec(path: &PathBuf) -> Result<Value, Failure> {
    if path.extension().is_some_and(|e| e == "toml") {
        let source =
            std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("--file: {}: {e}", path.display())))?;
        toml::from_str::<Value>(&source).map_err(|e| {
            Failure::usage(format!("--file: {}", crate::config::toml_error(&source, &path.display().to_string(), &e)))
        })
    } else {
        read_json(path, "--file")
    }
}

fn print_schedule(schedule: &Value) {
    println!(
        "{}\t{}\t{}\t{}\tnext {}\t{}",
        text(&schedule["id"]),
        if schedule["enabled"] == true { "enabled" } else { "disabled" },
        text(&schedule["cron"]),
        text(&schedule["catch_up"]),
        schedule["next_fire_at"].as_str().unwrap_or("-"),
        text(&schedule["title"]),
    );
}

fn set_enabled(server: &Server, id: &str, enabled: bool) -> Result<(), Failure> {
    let current = server.call("GET", &format!("/v1/schedules/{id}"), None)?;
    let spec = json!({
        "title": current["title"], "cron": current["cron"], "job": current["job"],
        "catch_up": current["catch_up"], "enabled": enabled,
    });
    print_schedule(&server.call("PUT", &format!("/v1/schedules/{id}"), Some(&spec))?);
    Ok(())
}

pub fn run(command: SchedulesCommand) -> Result<(), Failure> {
    match command {
        SchedulesCommand::List { server } => {
            server.every("/v1/schedules", "items")?.iter().for_each(print_schedule);
        }
        SchedulesCommand::Show { id, server } => {
            let schedule = server.call("GET", &format!("/v1/schedules/{id}"), None)?;
            print_schedule(&schedule);
            println!("job: {}", schedule["job"]);
            for run in schedule["runs"]["items"].as_array().into_iter().flatten() {
                println!(
                    "  {}\t{}\t{}{}",
                    text(&run["fire_at"]),
                    text(&run["status"]),
                    run["result"],
                    run["error"].as_str().map(|e| format!("\t{e}")).unwrap_or_default()
                );
            }
        }
        SchedulesCommand::Put { id, file, server } => {
            let spec = read_spec(&file)?;
            print_schedule(&server.call("PUT", &format!("/v1/schedules/{id}"), Some(&spec))?);
        }
        SchedulesCommand::Enable { id, server } => set_enabled(&server, &id, true)?,
        SchedulesCommand::Disable { id, server } => set_enabled(&server, &id, false)?,
        SchedulesCommand::Delete { id, server } => {
            server.call("DELETE", &format!("/v1/schedules/{id}"), None)?;
            println!("deleted {id}");
        }
    }
    Ok(())
}
