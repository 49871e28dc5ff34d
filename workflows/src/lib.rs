//! statflow's pure core: the official working-day calendar, the procedure definition
//! language and the interpreter that runs it.
//!
//! Nothing here performs I/O, reads the clock or draws random numbers: the runtime hands in
//! the time, the calendar and the events, and carries out the commands that come back. That
//! is what lets every runtime (embedded SQLite, PostgreSQL, Temporal) share one interpreter.

pub mod calendar;
pub mod definition;
pub mod engine;
pub mod schedules;
