//! `statflow user create|passwd|disable|enable|list`: people who sign in to the console, on
//! the database directly (as `statflow token create`). Passwords are read from standard input
//! (`--password-stdin`), never from the command line, where other users could see them.

use std::io::Read;

use clap::{Args, Subcommand};

use super::serve::{open, runtime};
use super::Failure;
use crate::api::auth::check_identity;
use crate::config::DbArgs;
use crate::console::password;
use crate::store::people::NewUser;
use crate::store::StoreError;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Creates a person who signs in to the console with a name and password.
    Create(CreateArgs),
    /// Sets a person's password (their sessions end).
    Passwd(PasswdArgs),
    /// Stops a person from signing in (their sessions end); their history stays.
    Disable(NameArgs),
    /// Lets a disabled person sign in again.
    Enable(NameArgs),
    /// Lists everyone: name, role, organizations, whether disabled.
    List(ListArgs),
}

#[derive(Args)]
pub struct CreateArgs {
    #[command(flatten)]
    db: DbArgs,
    #[arg(long)]
    name: String,
    /// staff, administrator, scheduler or regulator.
    #[arg(long)]
    role: String,
    /// An organization the person belongs to (repeatable; staff need one).
    #[arg(long = "org")]
    organizations: Vec<String>,
    /// Read the password from standard input (its first line).
    #[arg(long, required = true)]
    password_stdin: bool,
}

#[derive(Args)]
pub struct PasswdArgs {
    #[command(flatten)]
    db: DbArgs,
    name: String,
    /// Read the new password from standard input (its first line).
    #[arg(long, required = true)]
    password_stdin: bool,
}

#[derive(Args)]
pub struct NameArgs {
    #[command(flatten)]
    db: DbArgs,
    name: String,
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    db: DbArgs,
}

/// The first line of standard input, checked as a new password.
fn password_from_stdin() -> Result<String, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(password::MAX_LENGTH as u64 + 2)
        .read_to_string(&mut input)
        .map_err(|e| Failure::usage(format!("--password-stdin: {e}")))?;
    let line = input.lines().next().unwrap_or_default().to_owned();
    password::check(&line).map_err(|e| Failure::usage(format!("--password-stdin: {e}")))?;
    Ok(line)
}

pub fn run(command: UserCommand) -> Result<(), Failure> {
    let db = match &command {
        UserCommand::Create(a) => &a.db,
        UserCommand::Passwd(a) => &a.db,
        UserCommand::Disable(a) | UserCommand::Enable(a) => &a.db,
        UserCommand::List(a) => &a.db,
    };
    let settings = db.resolve().map_err(Failure::usage)?;
    // The password is read and checked before the database is opened.
    let password = match &command {
        UserCommand::Create(_) | UserCommand::Passwd(_) => Some(password_from_stdin()?),
        _ => None,
    };
    let hashed = password.map(|p| password::hash(&p).map_err(Failure::invalid)).transpose()?;
    runtime()?.block_on(async {
        let store = open(&settings.url, settings.connect_timeout).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let failed = |e: StoreError| Failure::invalid(e.to_string());
        match command {
            UserCommand::Create(args) => {
                let role = check_identity(&args.name, &args.role, &args.organizations).map_err(Failure::usage)?;
                let user = NewUser {
                    name: &args.name,
                    role,
                    organizations: &args.organizations,
                    password_hash: hashed.as_deref().expect("read above"),
                };
                store.create_user(user, now).await.map_err(|e| match e {
                    StoreError::Exists(_) => {
                        Failure::usage(format!("--name: `{}` is taken by a user or token", args.name))
                    }
                    other => failed(other),
                })?;
                let detail = serde_json::json!({"role": role, "organizations": args.organizations});
                store.audit("cli", "user.create", &args.name, detail).await.map_err(failed)?;
                println!("created {} ({role})", args.name);
            }
            UserCommand::Passwd(args) => {
                let hash = hashed.as_deref().expect("read above");
                if !store.set_password(&args.name, hash, now).await.map_err(failed)? {
                    return Err(Failure::usage(format!("no user named `{}`", args.name)));
                }
                store.audit("cli", "user.passwd", &args.name, serde_json::json!({})).await.map_err(failed)?;
                println!("password of {} set; their sessions have ended", args.name);
            }
            UserCommand::Disable(args) => set_disabled(&store, &args.name, true, now).await?,
            UserCommand::Enable(args) => set_disabled(&store, &args.name, false, now).await?,
            UserCommand::List(_) => {
                for user in store.users(None).await.map_err(failed)? {
                    let state = if user.disabled { " (disabled)" } else { "" };
                    println!("{}\t{}\t{}{state}", user.name, user.role, user.organizations.join(","));
                }
            }
        }
        Ok(())
    })
}

async fn set_disabled(store: &crate::store::Store, name: &str, disabled: bool, now: i64) -> Result<(), Failure> {
    let failed = |e: StoreError| Failure::invalid(e.to_string());
    if !store.set_disabled(name, disabled, now).await.map_err(failed)? {
        return Err(Failure::usage(format!("no user named `{name}`")));
    }
    let (action, said) =
        if disabled { ("user.disable", "disabled; their sessions have ended") } else { ("user.enable", "enabled") };
    store.audit("cli", action, name, serde_json::json!({})).await.map_err(failed)?;
    println!("{name} {said}");
    Ok(())
}
