//! How long the work stands still when the node holding the work lease dies: two `statflow
//! serve` nodes on one PostgreSQL database; the holder is killed (SIGKILL, as a crash) or
//! stopped (SIGTERM, which gives the lease up), and the time until the other node holds the
//! lease is measured from its `/readyz`. Printed per lease time: takeover after a kill
//! (min / median / max of the rounds) and after a clean stop.
//!
//!     STATFLOW_BENCH_POSTGRES_URL=postgres://USER:PASSWORD@HOST/postgres \
//!         cargo bench -p statflow --bench takeover                  # lease times 2, 5 and 15 s
//!     … cargo bench -p statflow --bench takeover -- --rounds 3 10   # 3 rounds at 10 s
//!
//! Each lease time gets a database of its own on that server (created, then dropped).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use statflow::store::database_url::{drop_postgres_database, fresh_postgres_database};

const BINARY: &str = env!("CARGO_BIN_EXE_statflow");

struct Node {
    child: Child,
    base: String,
}

impl Node {
    fn start(db: &str, lease_seconds: u64) -> Node {
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--lease-seconds", &lease_seconds.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("statflow starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.trim().strip_prefix("statflow listening on ").expect("the first line names the address");
        Node { child, base: base.to_owned() }
    }

    fn holds(&self) -> bool {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let Ok(mut answer) = agent.get(format!("{}/readyz", self.base)).call() else { return false };
        let body: serde_json::Value = answer.body_mut().read_json().unwrap_or_default();
        body["lease"]["held"] == true
    }

    fn signal(&mut self, name: &str) {
        Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }
}

/// Waits until one of `nodes` holds the lease; answers which and how long it took.
fn wait_for_holder(nodes: &[Node]) -> (usize, Duration) {
    let began = Instant::now();
    loop {
        if let Some(holder) = nodes.iter().position(Node::holds) {
            return (holder, began.elapsed());
        }
        assert!(began.elapsed() < Duration::from_secs(120), "no node took the lease");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn database(server: &str, name: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(fresh_postgres_database(server, name)).expect("the PostgreSQL server makes a database")
}

fn drop_database(server: &str, name: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(drop_postgres_database(server, name)).ok();
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let Some(server) = ["STATFLOW_BENCH_POSTGRES_URL", "STATFLOW_TEST_POSTGRES_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
    else {
        println!("takeover: set STATFLOW_BENCH_POSTGRES_URL to a PostgreSQL server's URL to run");
        return;
    };
    let mut args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut rounds = 5;
    if let Some(at) = args.iter().position(|a| a == "--rounds") {
        rounds = args.get(at + 1).and_then(|n| n.parse().ok()).expect("--rounds N");
        args.drain(at..=at + 1);
    }
    let leases: Vec<u64> = match args.iter().map(|a| a.parse::<u64>()).collect::<Result<Vec<_>, _>>() {
        Ok(given) if !given.is_empty() => given,
        _ => vec![2, 5, 15],
    };
    println!("lease\tkilled: min / median / max ({rounds} rounds)\tstopped cleanly");
    for lease in leases {
        let name = format!("statflow_takeover_{lease}_{}", std::process::id());
        let db = database(&server, &name);
        let mut nodes = vec![Node::start(&db, lease), Node::start(&db, lease)];
        let mut killed = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let (holder, _) = wait_for_holder(&nodes);
            let began = Instant::now();
            nodes[holder].signal("KILL");
            let standby = 1 - holder;
            while !nodes[standby].holds() {
                std::thread::sleep(Duration::from_millis(20));
            }
            killed.push(began.elapsed());
            nodes[holder] = Node::start(&db, lease);
        }
        killed.sort();
        let (holder, _) = wait_for_holder(&nodes);
        let began = Instant::now();
        nodes[holder].signal("TERM");
        while !nodes[1 - holder].holds() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopped = began.elapsed();
        println!(
            "{lease} s\t{} / {} / {}\t{}",
            seconds(killed[0]),
            seconds(killed[killed.len() / 2]),
            seconds(killed[killed.len() - 1]),
            seconds(stopped)
        );
        for mut node in nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        drop_database(&server, &name);
    }
}
