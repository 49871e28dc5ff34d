//! Engines: what makes the pure interpreter's commands durable.
//!
//! - [`embedded`]: the default engine, in this process, on the store's database.
pub mod embedded;
