//! `statflow backup FILE`: a consistent copy of a SQLite database, taken while the daemon
//! runs (on the database directly). Restoring is putting the copy where `--db` points while
//! no daemon runs (docs/operations.md).

use std::path::PathBuf;

use clap::Args;

use super::serve::{open, runtime};
use super::Failure;
use crate::config::DbArgs;
use crate::store::database_url::sqlite_file;

#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The copy to write; it must not exist yet.
    file: PathBuf,
}

pub fn run(args: BackupArgs) -> Result<(), Failure> {
    let settings = args.db.resolve().map_err(Failure::usage)?;
    if sqlite_file(&settings.url).is_none() {
        return Err(Failure::usage(
            "--db: statflow backs up SQLite files; back a PostgreSQL database up with pg_dump (docs/operations.md)",
        ));
    }
    if args.file.exists() {
        return Err(Failure::usage(format!("{}: exists already; name a new file", args.file.display())));
    }
    runtime()?.block_on(async {
        let store = open(&settings.url, settings.connect_timeout).await?;
        store.backup_to(&args.file).await.map_err(|e| Failure::invalid(format!("{}: {e}", args.file.display())))?;
        println!("backed up to {}", args.file.display());
        Ok(())
    })
}
