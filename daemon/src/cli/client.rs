//! `statflow start | act | show | tasks | overdue`: commands for people, talking to a running
//! daemon over its API (`--server`, `STATFLOW_SERVER`; `--token`, `STATFLOW_TOKEN`), so they
//! see the daemon's clock and pass the same authorization as any other client.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::Failure;

#[derive(Args, Clone)]
pub struct Server {
    /// The daemon's address.
    #[arg(long, env = "STATFLOW_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// An API token (see `statflow token create`).
    #[arg(long, env = "STATFLOW_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Starts an instance of a procedure.
    Start {
        procedure: String,
        #[arg(long)]
        jurisdiction: String,
        /// A JSON file with the start input.
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        server: Server,
    },
    /// Takes an action on an instance.
    Act {
        id: String,
        action: String,
        /// A JSON file with the action's data.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        server: Server,
    },
    /// Cancels a running instance (administrators): whom its definition names is told. With
    /// `--procedure` instead of an ID, every running instance the filter takes.
    Cancel(EndArgs),
    /// Terminates a running instance (administrators): nobody is told. With `--procedure`
    /// instead of an ID, every running instance the filter takes.
    Terminate(EndArgs),
    /// Moves a running instance to a step of its definition (administrators); the step
    /// begins afresh, with a new task and deadline.
    Move {
        id: String,
        step: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: Server,
    },
    /// Migrates running instances of a procedure to another version of its definition
    /// (administrators); `--dry-run` lists what would change and changes nothing.
    MigrateInstances {
        procedure: String,
        #[arg(long)]
        jurisdiction: String,
        /// The version to go to (the current one by default).
        #[arg(long = "to")]
        to_version: Option<String>,
        /// Only instances on this version.
        #[arg(long = "from")]
        from_version: Option<String>,
        /// Only this instance (repeatable).
        #[arg(long = "instance")]
        instances: Vec<i64>,
        /// A step whose name differs in the new version: OLD=NEW (repeatable).
        #[arg(long = "map", value_parser = step_pair)]
        steps: Vec<(String, String)>,
        /// Recompute the current step's deadline with the new version's limit (kept otherwise).
        #[arg(long)]
        recompute_deadline: bool,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Shows an instance as a timeline: each step, who, when, deadlines with legal basis.
    Show {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// Lists open tasks.
    Tasks {
        #[command(flatten)]
        server: Server,
    },
    /// The overdue board: red (overdue) and yellow (due soon) items by organization.
    Overdue {
        #[command(flatten)]
        server: Server,
    },
}

/// What ends an instance (or many): which, and why.
#[derive(Args, Clone)]
pub struct EndArgs {
    #[arg(required_unless_present = "procedure")]
    id: Option<String>,
    #[command(flatten)]
    filter: Selection,
    /// Why; kept in the instance's history and the audit log.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    server: Server,
}

/// Which running instances a bulk repair takes (instead of one ID), and whether only to
/// list them.
#[derive(Args, Clone)]
pub struct Selection {
    /// Every running instance of this procedure…
    #[arg(long, conflicts_with = "id")]
    procedure: Option<String>,
    /// …involving this organization…
    #[arg(long, requires = "procedure")]
    org: Option<String>,
    /// …and past its deadline.
    #[arg(long, requires = "procedure")]
    overdue: bool,
    /// List what would be done, and do nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Server {
    /// Every entry under `key` of a paged list, read page by page.
    pub(super) fn every(&self, path: &str, key: &str) -> Result<Vec<Value>, Failure> {
        const PER_PAGE: usize = 500;
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1.. {
            let body = self.call("GET", &format!("{path}{separator}page={page}&per_page={PER_PAGE}"), None)?;
            let items = body[key].as_array().cloned().unwrap_or_default();
            let last = items.len() < PER_PAGE;
            all.extend(items);
            if last {
                break;
            }
        }
        Ok(all)
    }

    pub(super) fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| Failure::usage("--token: give an API token (or set STATFLOW_TOKEN)"))?;
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let auth = format!("Bearer {token}");
        let response = match (method, body) {
            ("POST", Some(body)) => agent.post(&url).header("Authorization", &auth).send_json(body),
            ("PUT", Some(body)) => agent.put(&url).header("Authorization", &auth).send_json(body),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            _ => agent.get(&url).header("Authorization", &auth).call(),
        };
        let mut response = response.map_err(|e| Failure::invalid(format!("cannot reach {}: {e}", self.server)))?;
        let status = response.status().as_u16();
        let value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if status >= 400 {
            let field = value["field"].as_str().map(|f| format!(" ({f})")).unwrap_or_default();
            return Err(Failure::invalid(format!("{}{field}", value["detail"].as_str().unwrap_or("request failed"))));
        }
        Ok(value)
    }
}

pub(super) fn read_json(path: &PathBuf, argument: &str) -> Result<Value, Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{argument}: {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Failure::usage(format!("{argument}: {}:{}: {e}", path.display(), e.line())))
}

pub(super) fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

/// One line per event of the history.
fn describe_event(event: &Value) -> String {
    match event["type"].as_str().unwrap_or_default() {
        "started" => "started".into(),
        "action" => {
            let data = event["data"]
                .as_object()
                .filter(|d| !d.is_empty())
                .map(|d| format!(" {}", Value::Object(d.clone())))
                .unwrap_or_default();
            format!("action {}{data}", text(&event["action"]))
        }
        "timer_fired" => format!("timer {}", text(&event["timer"])),
        "activity_completed" => format!("effect {} done", text(&event["key"])),
        "activity_failed" => format!("effect {} failed: {}", text(&event["key"]), text(&event["error"])),
        "child_completed" => format!("child finished: {}", text(&event["outcome"])),
        "signal" => format!("signal {}", text(&event["name"])),
        "calendar_changed" => "calendar changed; deadlines recomputed".into(),
        "ended" => format!("{} by an administrator: {}", text(&event["how"]), text(&event["reason"])),
        "moved" => format!("moved to {} by an administrator: {}", text(&event["step"]), text(&event["reason"])),
        "migrated" => format!(
            "migrated to version {} by an administrator: {}",
            text(&event["to_version"]),
            text(&event["reason"])
        ),
        other => other.to_owned(),
    }
}

fn show(server: &Server, id: &str) -> Result<(), Failure> {
    let instance = server.call("GET", &format!("/v1/instances/{id}"), None)?;
    let history = server.call("GET", &format!("/v1/instances/{id}/history"), None)?;
    println!(
        "#{} {} ({}/{}) — {}{}",
        instance["id"],
        text(&instance["title"]),
        text(&instance["procedure"]),
        text(&instance["jurisdiction"]),
        text(&instance["status"]),
        instance["outcome"].as_str().map(|o| format!(": {o}")).unwrap_or_default()
    );
    println!();
    for event in history["events"].as_array().into_iter().flatten() {
        println!("{}  {:<10} {}", text(&event["at"]), text(&event["actor"]), describe_event(&event["event"]));
    }
    println!("history chain: {}", if history["chain_intact"] == true { "intact" } else { "BROKEN" });
    if let Some(step) = instance["step"].as_object() {
        println!();
        println!("current step: {} ({})", text(&step["title"]), text(&step["name"]));
    }
    if let Some(deadline) = instance["deadline"].as_object() {
        let mut due = match deadline["due"].as_str() {
            Some(due) => format!("due {due}"),
            None => "clock stopped".into(),
        };
        if let Some(days) = deadline["remaining_working_days"].as_i64() {
            due.push_str(&if days >= 0 {
                format!(", {days} working days left")
            } else {
                format!(", {} working days overdue", -days)
            });
        }
        for flag in ["provisional", "paused", "overdue"] {
            if deadline[flag] == true {
                due.push_str(&format!(", {flag}"));
            }
        }
        println!("deadline: {due} ({})", text(&deadline["period"]));
        println!("legal basis: {}", text(&deadline["basis"]));
    }
    for task in instance["tasks"].as_array().into_iter().flatten() {
        println!(
            "task {}: {} — {} at {}",
            text(&task["id"]),
            text(&task["title"]),
            text(&task["role"]),
            text(&task["organization"])
        );
    }
    Ok(())
}

pub fn run(command: ClientCommand) -> Result<(), Failure> {
    match command {
        ClientCommand::Start { procedure, jurisdiction, input, server } => {
            let input = read_json(&input, "--input")?;
            let body = json!({"procedure": procedure, "jurisdiction": jurisdiction, "input": input});
            let instance = server.call("POST", "/v1/instances", Some(&body))?;
            println!("{}", instance["id"]);
            println!("step: {}, due {}", text(&instance["step"]["name"]), text(&instance["deadline"]["due"]));
        }
        ClientCommand::Act { id, action, data, server } => {
            let data = match &data {
                Some(path) => read_json(path, "--data")?,
                None => json!({}),
            };
            let instance = server.call(
                "POST",
                &format!("/v1/instances/{id}/actions"),
                Some(&json!({"action": action, "data": data})),
            )?;
            println!("step: {} ({})", text(&instance["step"]["name"]), text(&instance["status"]));
        }
        ClientCommand::Cancel(args) => end("cancel", "cancelled", args)?,
        ClientCommand::Terminate(args) => end("terminate", "terminated", args)?,
        ClientCommand::Move { id, step, reason, server } => {
            repair(&server, &id, "move", json!({"step": step, "reason": reason}))?
        }
        ClientCommand::MigrateInstances {
            procedure,
            jurisdiction,
            to_version,
            from_version,
            instances,
            steps,
            recompute_deadline,
            reason,
            dry_run,
            server,
        } => {
            let mut body = json!({
                "procedure": procedure, "jurisdiction": jurisdiction, "to_version": to_version,
                "from_version": from_version, "steps": steps.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                "deadline": if recompute_deadline { "recompute" } else { "keep" }, "reason": reason, "dry_run": dry_run,
            });
            if !instances.is_empty() {
                body["instances"] = json!(instances);
            }
            migration_report(&server.call("POST", "/v1/admin/migrations", Some(&body))?);
        }
        ClientCommand::Show { id, server } => show(&server, &id)?,
        ClientCommand::Tasks { server } => {
            for task in &server.every("/v1/tasks", "items")? {
                println!(
                    "{}\t#{}\t{}\tdue {}{}",
                    text(&task["id"]),
                    task["instance"],
                    text(&task["title"]),
                    text(&task["due"]),
                    if task["overdue"] == true { "\tOVERDUE" } else { "" }
                );
            }
        }
        ClientCommand::Overdue { server } => {
            for (organization, [red, yellow]) in overdue_board(&server)? {
                println!("{organization}");
                for (colour, items) in [("RED", red), ("YELLOW", yellow)] {
                    for item in &items {
                        let standing = if colour == "RED" {
                            let level = item["escalation_level"].as_str().map(|l| format!(", {l}")).unwrap_or_default();
                            format!("{} working days overdue{level}", item["working_days_overdue"])
                        } else {
                            format!("{} working days left", item["remaining_working_days"])
                        };
                        println!(
                            "  {colour:<6} #{}\t{}\t{}\tdue {}\t{standing}\t{}",
                            item["instance"],
                            text(&item["title"]),
                            text(&item["step_title"]),
                            text(&item["due"]),
                            text(&item["basis"])
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// `OLD=NEW`, a step renamed by a migration.
fn step_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => Ok((old.to_owned(), new.to_owned())),
        _ => Err(format!("`{text}`: give OLD=NEW, a step of the running version and its name in the new one")),
    }
}

/// A migration's report: one line per instance, then the totals.
fn migration_report(report: &Value) {
    for item in report["items"].as_array().into_iter().flatten() {
        let problem = item["problem"].as_str().map(|p| format!(": {p}")).unwrap_or_default();
        println!(
            "#{}	{} -> {}	due {} -> {}	{}{problem}",
            item["instance"],
            text(&item["step"]),
            text(&item["to_step"]),
            text(&item["due_before"]),
            text(&item["due_after"]),
            text(&item["outcome"]),
        );
    }
    let done = if report["dry_run"] == true { "would migrate" } else { "migrated" };
    println!(
        "{} {done} to version {}, {} refused, {} remaining",
        report["migrated"],
        text(&report["to_version"]),
        report["refused"],
        report["remaining"]
    );
}

/// Cancels or terminates (`verb`) instance `id`, or every running one `filter` takes; with
/// `--dry-run` lists them and changes nothing.
fn end(verb: &str, done: &str, args: EndArgs) -> Result<(), Failure> {
    let EndArgs { id, filter, reason, server } = args;
    let ids: Vec<String> = match (id, &filter.procedure) {
        (Some(id), _) => vec![id],
        (None, Some(procedure)) => {
            let mut path = format!("/v1/instances?status=running&procedure={procedure}");
            if let Some(org) = &filter.org {
                path.push_str(&format!("&org={org}"));
            }
            if filter.overdue {
                path.push_str("&overdue=true");
            }
            let instances = server.every(&path, "items")?;
            for instance in instances.iter().filter(|_| filter.dry_run) {
                println!(
                    "#{}\t{}/{}\t{}\tdue {}",
                    instance["id"],
                    text(&instance["procedure"]),
                    text(&instance["jurisdiction"]),
                    text(&instance["step"]),
                    text(&instance["due"])
                );
            }
            instances.iter().map(|i| i["id"].to_string()).collect()
        }
        (None, None) => return Err(Failure::usage("give an instance's ID, or --procedure to select running ones")),
    };
    if filter.dry_run {
        println!("{} would be {done}", ids.len());
        return Ok(());
    }
    for id in &ids {
        repair(&server, id, verb, json!({"reason": reason}))?;
    }
    Ok(())
}

/// An administrator's repair (`cancel`, `terminate`, `move`) of instance `id`.
fn repair(server: &Server, id: &str, verb: &str, body: Value) -> Result<(), Failure> {
    let instance = server.call("POST", &format!("/v1/instances/{id}/{verb}"), Some(&body))?;
    match instance["outcome"].as_str() {
        Some(outcome) => println!("instance {id}: {outcome}"),
        None => println!("instance {id}: step {}", text(&instance["step"]["name"])),
    }
    Ok(())
}

/// The whole overdue board, page after page, merged by organization: (red, yellow) items.
fn overdue_board(server: &Server) -> Result<std::collections::BTreeMap<String, [Vec<Value>; 2]>, Failure> {
    let mut board: std::collections::BTreeMap<String, [Vec<Value>; 2]> = Default::default();
    let mut after = String::new();
    loop {
        let page = server.call("GET", &format!("/v1/overdue?per_page=500{after}"), None)?;
        for organization in page["organizations"].as_array().into_iter().flatten() {
            let entry = board.entry(text(&organization["organization"])).or_default();
            for (colour, items) in entry.iter_mut().zip([&organization["red"], &organization["yellow"]]) {
                colour.extend(items.as_array().into_iter().flatten().cloned());
            }
        }
        match page["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    for [red, yellow] in board.values_mut() {
        for items in [red, yellow] {
            items.sort_by(|a, b| a["due"].as_str().cmp(&b["due"].as_str()));
        }
    }
    Ok(board)
}
