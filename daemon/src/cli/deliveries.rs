//! `statflow deliveries`: the notices, escalations, webhook calls, digests and anchors of a
//! running daemon with how their delivery went, and sending failed ones again (through
//! /v1/admin/deliveries, like the other client commands; administrators only).

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::{text, Server};
use super::Failure;

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// Every delivery (or those `--status pending|done|failed`), newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Sends failed deliveries again, with the same Message-ID: the one ID, every failed one
    /// of `--kind`, or with `--all` every failed one. Recorded in the audit log.
    Retry {
        id: Option<i64>,
        /// `notify`, `escalate`, `webhook`, `digest`, `anchor` or `task_notice`.
        #[arg(long, conflicts_with = "id")]
        kind: Option<String>,
        #[arg(long, conflicts_with_all = ["id", "kind"])]
        all: bool,
        /// List the failed deliveries that would be sent again, and send nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: Server,
    },
}

pub fn run(command: DeliveriesCommand) -> Result<(), Failure> {
    match command {
        DeliveriesCommand::List { status, server } => {
            let path = status
                .map_or_else(|| "/v1/admin/deliveries".to_owned(), |s| format!("/v1/admin/deliveries?status={s}"));
            for delivery in server.every(&path, "items")? {
                print_delivery(&delivery);
            }
        }
        DeliveriesCommand::Retry { id, kind, all, dry_run, server } => {
            if id.is_none() && kind.is_none() && !all {
                return Err(Failure::usage("give a delivery's ID, --kind KIND or --all"));
            }
            if dry_run {
                let failed = server.every("/v1/admin/deliveries?status=failed", "items")?;
                let chosen: Vec<&Value> = failed
                    .iter()
                    .filter(|d| id.is_none_or(|id| d["id"] == id))
                    .filter(|d| kind.as_ref().is_none_or(|kind| d["kind"] == kind.as_str()))
                    .collect();
                for delivery in &chosen {
                    print_delivery(delivery);
                }
                println!("{} would be put back in the queue", chosen.len());
                return Ok(());
            }
            let body = json!({"id": id, "kind": kind});
            let answer = server.call("POST", "/v1/admin/deliveries/retry", Some(&body))?;
            println!("{} put back in the queue", answer["retried"]);
        }
    }
    Ok(())
}

fn print_delivery(delivery: &Value) {
    let instance = delivery["instance"].as_i64().map_or_else(|| "-".to_owned(), |id| format!("#{id}"));
    println!(
        "{}\t{instance}\t{}\t{}\t{} attempts\t{}\t{}",
        delivery["id"],
        text(&delivery["kind"]),
        text(&delivery["status"]),
        delivery["attempts"],
        text(&delivery["key"]),
        delivery["last_error"].as_str().unwrap_or(""),
    );
}
