//! `statflow audit`: the audit log of a running daemon, newest first (through /v1/audit,
//! like the other client commands; administrators only).

use clap::Args;

use super::client::{text, Server};
use super::Failure;

#[derive(Args)]
pub struct AuditArgs {
    /// Only what this principal did.
    #[arg(long)]
    principal: Option<String>,
    /// Only actions starting with this (e.g. `delivery.`).
    #[arg(long)]
    action: Option<String>,
    /// Only acts on this target (e.g. `instance/7`).
    #[arg(long)]
    target: Option<String>,
    /// At most this many entries (the newest).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    #[command(flatten)]
    server: Server,
}

pub fn run(args: AuditArgs) -> Result<(), Failure> {
    let mut filters = Vec::new();
    for (name, value) in [("principal", &args.principal), ("action", &args.action), ("target", &args.target)] {
        if let Some(value) = value {
            filters
                .push(format!("{name}={}", url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>()));
        }
    }
    let path = format!("/v1/audit?{}", filters.join("&"));
    for entry in args.server.every(&path, "items")?.iter().take(args.limit) {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            text(&entry["at"]),
            text(&entry["principal"]),
            text(&entry["action"]),
            text(&entry["target"]),
            entry["detail"]
        );
    }
    Ok(())
}
