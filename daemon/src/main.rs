//! `statflow`: the daemon and its command-line interface.
//!
//! Today the binary offers the calendar and definition tools; the durable runtime
//! (`statflow serve`) is built on the same `statflow-workflows` core.

mod api;
mod cli;
mod config;
mod runtime;
mod store;

fn main() {
    std::process::exit(cli::run());
}
