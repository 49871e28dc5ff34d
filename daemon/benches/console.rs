//! How long the console takes to render its pages with many instances in the database.
//!
//! Starts N registrations (Tai'an) on a fresh SQLite file, signs an administrator and a clerk
//! in, serves the router on loopback and fetches each page again and again, printing the
//! server-side time per page (p50/p99, measured around the request on loopback).
//!
//!     cargo bench -p statflow --bench console              # N = 10,000
//!     cargo bench -p statflow --bench console -- 50000     # other sizes

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use serde_json::json;
use statflow::api;
use statflow::api::auth::token_hash;
use statflow::console::password;
use statflow::engine::embedded::clock::Clock;
use statflow::engine::embedded::Embedded;
use statflow::engine::Engine;
use statflow::store::people::NewUser;
use statflow::store::records::Role;
use statflow::store::transition::Origin;
use statflow::store::Store;
use statflow_workflows::engine::Actor;

const START: &str = "2026-03-02T09:00:00+08:00";
/// Requests per page.
const ROUNDS: usize = 200;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.replace(['_', ','], "").parse().unwrap_or_else(|_| panic!("not an instance count: {a}")))
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    runtime.block_on(run(n));
}

async fn run(n: usize) {
    let dir = std::env::temp_dir().join(format!("statflow-console-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let store = Store::open(&url).await.expect("open the store");
    let start: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(START).unwrap();
    let engine = Embedded::load(store.clone(), Clock::Virtual(Mutex::new(start))).await.expect("load the engine");
    let definition = engine.definitions().current("registration", "taian").expect("registration is built in");
    let actor = Actor {
        id: "clerk".into(),
        roles: vec![],
        organizations: vec!["taian-registry".into()],
        administrator: false,
        request: None,
    };
    let began = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    let last = Arc::new(std::sync::atomic::AtomicI64::new(0));
    for i in 0..n {
        let (engine, definition, actor, last) = (engine.clone(), definition.clone(), actor.clone(), last.clone());
        starts.spawn(async move {
            let input = json!({
                "resource_name": format!("企业登记信息{i}"),
                "registration_type": "initial",
                "registrant_org": "taian-market",
                "agency_org": "taian-registry",
            });
            let id = engine.start_with(&definition, input, actor, Origin::Direct).await.expect("start").instance_id;
            last.fetch_max(id, std::sync::atomic::Ordering::Relaxed);
        });
        while starts.len() >= 64 {
            starts.join_next().await.expect("a start").expect("start");
        }
    }
    while let Some(done) = starts.join_next().await {
        done.expect("start");
    }
    println!(
        "statflow console benchmark: SQLite, {n} running registrations (started in {:.1} s)",
        began.elapsed().as_secs_f64()
    );

    let now = chrono::Utc::now().timestamp_millis();
    let mut cookies = Vec::new();
    for (name, role, organizations) in
        [("chief", Role::Administrator, vec![]), ("clerk", Role::Staff, vec!["taian-registry".to_owned()])]
    {
        let hash = password::hash("benchmark password").expect("hashing works");
        let user = NewUser { name, role, organizations: &organizations, password_hash: &hash };
        let user = store.create_user(user, now).await.expect("create a user");
        let token = format!("bench-session-{name}");
        store.create_session(user.id, &token_hash(&token), "csrf", now, now + 3_600_000).await.expect("a session");
        cookies.push((name, format!("statflow_session={token}")));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = api::router(engine.clone() as Arc<dyn Engine>, store.clone(), false, Default::default());
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });

    let newest = last.load(std::sync::atomic::Ordering::Relaxed);
    let pages = [
        ("chief", "/inbox".to_owned()),
        ("clerk", "/inbox".to_owned()),
        ("clerk", format!("/instances/{newest}")),
        ("chief", "/overdue".to_owned()),
        ("chief", "/search?text=%E4%BC%81%E4%B8%9A".to_owned()),
        ("chief", "/search?procedure=registration&status=running".to_owned()),
        ("chief", "/admin/calendar".to_owned()),
        ("chief", "/admin/deliveries".to_owned()),
    ];
    println!("{:<48} {:>10} {:>10} {:>10}", "page (as)", "p50 ms", "p99 ms", "bytes");
    for (who, path) in pages {
        let cookie = cookies.iter().find(|(name, _)| *name == who).unwrap().1.clone();
        let url = format!("{base}{path}");
        let (times, bytes) = tokio::task::spawn_blocking(move || fetch(&url, &cookie)).await.expect("fetching");
        println!(
            "{:<48} {:>10.2} {:>10.2} {:>10}",
            format!("{path} ({who})"),
            percentile(&times, 0.50).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            bytes
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// Fetches `url` [`ROUNDS`] times (after a warm-up), returning each request's time.
fn fetch(url: &str, cookie: &str) -> (Vec<Duration>, usize) {
    let agent: ureq::Agent = ureq::Agent::config_builder().max_redirects(0).build().into();
    let mut bytes = 0;
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 5 {
        let began = Instant::now();
        let mut response = agent.get(url).header("Cookie", cookie).call().expect("the page answers");
        assert_eq!(response.status().as_u16(), 200, "{url}");
        bytes = response.body_mut().read_to_string().expect("a body").len();
        if round >= 5 {
            times.push(began.elapsed());
        }
    }
    (times, bytes)
}

fn percentile(times: &[Duration], p: f64) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
