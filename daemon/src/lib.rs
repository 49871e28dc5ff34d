//! The statflow daemon as a library: the binary (`src/main.rs`) and the benchmarks drive the
//! same runtime.
//!
//! - [`store`]: durable storage on sea-orm (SQLite by default, PostgreSQL by URL).
//! - [`engine`]: the engines around the pure interpreter (the embedded one: timers, outbox, clock).
//! - [`api`]: the HTTP API under `/v1`.
//! - [`cli`]: the command-line interface.
//! - [`config`]: flags, `STATFLOW_*` variables and the configuration file.

pub mod api;
pub mod cli;
pub mod config;
pub mod engine;
pub mod organization;
pub mod store;
