//! The statflow daemon as a library: the binary (`src/main.rs`) and the benchmarks drive the
//! same runtime.
//!
//! - [`store`]: durable storage on sea-orm (SQLite by default, PostgreSQL by URL).
//! - [`runtime`]: the embedded engine — timers, outbox, clock — around the pure interpreter.
//! - [`api`]: the HTTP API under `/v1`.
//! - [`cli`]: the command-line interface.
//! - [`config`]: flags, `STATFLOW_*` variables and the configuration file.

pub mod api;
pub mod cli;
pub mod config;
pub mod organization;
pub mod runtime;
pub mod store;
