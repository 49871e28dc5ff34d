//! What the daemon knows about its database URL beyond handing it to sea-orm: how to show it
//! without its password, which file a SQLite URL names (to hold the one-daemon lock), and
//! how the benchmarks make and drop scratch databases on a PostgreSQL server.

use std::fs::File;
use std::path::PathBuf;

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let shown = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    match tail {
        Some(tail) => format!("{scheme}://{shown}/{tail}"),
        None => format!("{scheme}://{shown}"),
    }
}

/// The file a `sqlite:` URL names, or `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//").split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// An exclusive lock on `FILE.lock` beside a SQLite database, held for as long as the daemon
/// runs: a second daemon on the same file would fire every timer and send every notice a
/// second time, so it is refused at start. The operating system releases the lock when the
/// process ends, however it ends (kill -9 included), so no stale lock is ever left behind.
pub struct SqliteLock {
    _file: File,
}

impl SqliteLock {
    pub fn acquire(database: &std::path::Path) -> Result<SqliteLock, String> {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(SqliteLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another statflow daemon is serving {} (it holds {}); one daemon per SQLite file \
                 (several daemons need PostgreSQL)",
                database.display(),
                path.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }
}

/// Creates the database `name` afresh on the PostgreSQL server `server` (a URL naming any of
/// its databases) and answers the new database's URL: the benchmarks' scratch databases.
pub async fn fresh_postgres_database(server: &str, name: &str) -> Result<String, sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(server).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    let (base, _) =
        server.rsplit_once('/').ok_or_else(|| sea_orm::DbErr::Custom(format!("{server}: no database named")))?;
    Ok(format!("{base}/{name}"))
}

/// Drops the database `name` from the PostgreSQL server `server`, connections and all.
pub async fn drop_postgres_database(server: &str, name: &str) -> Result<(), sea_orm::DbErr> {
    use sea_orm::ConnectionTrait;
    let admin = sea_orm::Database::connect(server).await?;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("postgres://statflow:s3cret@db.local:5432/statflow"),
            "postgres://statflow:***@db.local:5432/statflow"
        );
        assert_eq!(redacted("postgres://p%40ss:x@h/d?sslmode=require"), "postgres://p%40ss:***@h/d?sslmode=require");
        assert_eq!(redacted("postgres://user@h/d"), "postgres://user@h/d");
        assert_eq!(redacted("sqlite://statflow.db?mode=rwc"), "sqlite://statflow.db?mode=rwc");
    }

    #[test]
    fn sqlite_files() {
        assert_eq!(sqlite_file("sqlite://statflow.db?mode=rwc"), Some(PathBuf::from("statflow.db")));
        assert_eq!(sqlite_file("sqlite:///var/lib/s.db"), Some(PathBuf::from("/var/lib/s.db")));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/d"), None);
    }

    #[test]
    fn a_second_lock_on_the_same_file_is_refused_until_the_first_is_gone() {
        let dir = std::env::temp_dir().join(format!("statflow-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("s.db");
        let first = SqliteLock::acquire(&db).unwrap();
        let refused = SqliteLock::acquire(&db).err().unwrap();
        assert!(refused.contains("another statflow daemon"), "{refused}");
        drop(first);
        SqliteLock::acquire(&db).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
