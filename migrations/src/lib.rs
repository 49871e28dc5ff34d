//! Database schema migrations of statflow (sea-orm-migration, SQLite and PostgreSQL).
//!
//! Empty until the durable runtime lands; kept as a crate so the workspace layout matches
//! docs/architecture.md from the start.
