//! Side effects of statflow procedures: email, webhooks, escalation channels and documents.
//!
//! The interpreter in `statflow-workflows` only *describes* effects as commands; this crate
//! will perform them, each idempotent by its key. Nothing is implemented here yet: the
//! embedded runtime that drives these activities is the next piece of work.

pub use statflow_workflows::engine::Activity;
