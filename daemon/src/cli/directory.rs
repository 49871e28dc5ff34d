//! `statflow directory`: show the organizations and contacts notifications go to, or load a
//! bootstrap file into a running daemon (through /v1/directory).

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::client::{text, Server};
use super::Failure;

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// Organizations (duty address, supervisor, regulator) and contacts (roles).
    Show {
        #[command(flatten)]
        server: Server,
    },
    /// Adds or replaces the organizations and contacts of a bootstrap file (TOML, see
    /// docs/notifications.md).
    Load {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
}

pub fn run(command: DirectoryCommand) -> Result<(), Failure> {
    match command {
        DirectoryCommand::Show { server } => {
            let organizations = server.every("/v1/directory", "organizations")?;
            let contacts = server.every("/v1/directory", "contacts")?;
            for org in &organizations {
                println!(
                    "{}\t{}\t{}\tsupervisor {}\tregulator {}",
                    text(&org["id"]),
                    text(&org["name"]),
                    org["email"].as_str().unwrap_or("-"),
                    org["supervisor"].as_str().unwrap_or("-"),
                    org["regulator"].as_str().unwrap_or("-"),
                );
                for contact in &contacts {
                    if contact["organization"] == org["id"] {
                        let roles: Vec<String> = contact["roles"].as_array().into_iter().flatten().map(text).collect();
                        println!(
                            "  #{}\t{} <{}>\t{}",
                            contact["id"],
                            text(&contact["name"]),
                            text(&contact["email"]),
                            roles.join(",")
                        );
                    }
                }
            }
        }
        DirectoryCommand::Load { file, server } => {
            let source =
                std::fs::read_to_string(&file).map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
            let body = json!({"source": source, "origin": file.display().to_string()});
            let loaded = server.call("POST", "/v1/directory", Some(&body))?;
            println!("loaded {} organizations and {} contacts", loaded["organizations"], loaded["contacts"]);
        }
    }
    Ok(())
}
