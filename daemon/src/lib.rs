//! The statflow daemon as a library: the binary (`src/main.rs`) and the benchmarks drive the
//! same runtime.
//!
//! - [`store`]: durable storage on sea-orm (SQLite by default, PostgreSQL by URL).
//! - [`engine`]: the engine facade and the engines behind it (the embedded one: timers,
//!   outbox, delivery, schedules, clock), with their supervised workers.
//! - [`integrity`]: verifying the stored history against itself, the ledger and anchors.
//! - [`principal`]: who is asking, and what that means inside an instance.
//! - [`api`]: the HTTP API under `/v1`.
//! - [`console`]: the web console in Chinese at `/`.
//! - [`cli`]: the command-line interface.
//! - [`config`]: flags, `STATFLOW_*` variables and the configuration file.

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod engine;
pub mod integrity;
pub mod metrics;
pub mod organization;
pub mod principal;
pub mod store;

/// The layering this crate keeps, checked on its own source.
#[cfg(test)]
mod boundaries {
    use std::path::Path;

    fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    /// The store is the one door to the database: no sea-orm type or query anywhere else.
    #[test]
    fn only_the_store_touches_sea_orm() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        sources(&root.join("src"), &mut files);
        sources(&root.join("benches"), &mut files);
        let store = root.join("src/store");
        // A path into the crate (also in `use`), spelled in two parts so this file does not
        // match itself; the name alone also appears in log filters, which is fine.
        let path = ["sea_orm", "::"].concat();
        let offenders: Vec<String> = files
            .iter()
            .filter(|file| !file.starts_with(&store))
            .filter(|file| std::fs::read_to_string(file).unwrap().contains(&path))
            .map(|file| file.strip_prefix(root).unwrap().display().to_string())
            .collect();
        assert!(files.len() > 30, "the sources were found ({} files)", files.len());
        assert!(offenders.is_empty(), "sea_orm used outside daemon/src/store: {offenders:?}");
    }
}
