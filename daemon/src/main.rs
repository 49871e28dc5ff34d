//! `statflow`: the daemon and its command-line interface.

fn main() {
    std::process::exit(statflow::cli::run());
}
