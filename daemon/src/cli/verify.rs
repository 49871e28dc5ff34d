//! `statflow verify [--instance N]`: checks the stored history against itself, the ledger,
//! the interpreter (by replay) and the anchors, straight on the database — it trusts no
//! running daemon. Instances that fail are flagged. Exit code 1 when anything failed.

use std::io::{IsTerminal, Write};

use clap::Args;

use super::Failure;
use crate::config::DbArgs;
use crate::engine::embedded::clock::Clock;
use crate::engine::embedded::Embedded;
use crate::engine::Engine;
use crate::integrity::checks::Check;
use crate::integrity::verify::Verifier;
use crate::store::database_url::redacted;
use crate::store::{Store, StoreError};

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Verify this instance only (with the anchors).
    #[arg(long)]
    instance: Option<i64>,
}

pub fn run(args: VerifyArgs) -> Result<(), Failure> {
    let settings = args.db.resolve().map_err(Failure::usage)?;
    let (url, timeout, anchoring) = (settings.url, settings.connect_timeout, settings.anchoring);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::invalid(e.to_string()))?;
    runtime.block_on(async {
        let store = Store::open_within(&url, timeout)
            .await
            .map_err(|e| Failure::invalid(format!("--db: {}: {e}", redacted(&url))))?;
        // The engine is loaded for its definitions and calendar only; no worker starts.
        let engine = Embedded::load(store, Clock::System).await.map_err(failure)?;
        let (calendar, generation) = engine.calendar();
        let verifier = Verifier {
            store: engine.store(),
            definitions: engine.definitions(),
            calendar,
            generation,
            anchoring: &anchoring,
        };
        let passed = match args.instance {
            Some(id) => verify_one(&verifier, id).await?,
            None => verify_all(&verifier).await?,
        };
        if passed {
            Ok(())
        } else {
            Err(Failure::invalid("verification failed (see above); failing instances are flagged"))
        }
    })
}

fn failure(error: StoreError) -> Failure {
    Failure::invalid(error.to_string())
}

fn line(name: &str, check: &Check) -> bool {
    let verdict = serde_json::to_value(check.verdict).expect("serializes");
    println!("{name:<10}{:<14}{}", verdict.as_str().unwrap_or_default(), check.detail);
    !check.is_failure()
}

async fn verify_one(verifier: &Verifier<'_>, id: i64) -> Result<bool, Failure> {
    let row = verifier.store.instance(id).await.map_err(failure)?;
    let history = verifier.store.history(id).await.map_err(failure)?;
    let checks = verifier.verify_instance(&row, &history).await.map_err(failure)?;
    let anchors = verifier.verify_anchors().await.map_err(failure)?;
    println!("instance {id}");
    let mut passed = true;
    for (name, check) in [
        ("chain", &checks.chain),
        ("head", &checks.head),
        ("ledger", &checks.ledger),
        ("replay", &checks.replay),
        ("anchors", &anchors),
    ] {
        passed &= line(name, check);
    }
    Ok(passed)
}

async fn verify_all(verifier: &Verifier<'_>) -> Result<bool, Failure> {
    let terminal = std::io::stderr().is_terminal();
    let mut last_tenth = 0;
    let report = verifier
        .verify_all(|done, total| {
            if terminal {
                let filled = (done * 30).checked_div(total).unwrap_or(30) as usize;
                eprint!("\rverifying [{}{}] {done}/{total} instances", "#".repeat(filled), "-".repeat(30 - filled));
                std::io::stderr().flush().ok();
            } else {
                // Logs and pipes get a line per tenth instead of a redrawn bar.
                let tenth = (done * 10).checked_div(total).unwrap_or(10);
                if tenth > last_tenth || done == total {
                    last_tenth = tenth;
                    eprintln!("verified {done}/{total} instances");
                }
            }
        })
        .await
        .map_err(failure)?;
    if terminal {
        eprintln!();
    }
    line("ledger", &report.ledger);
    line("missing", &report.missing);
    line("anchors", &report.anchors);
    println!(
        "instances {} checked, {} failed ({} newly flagged), {} replayed inconclusively",
        report.instances, report.failed, report.newly_flagged, report.inconclusive
    );
    for (id, failures) in &report.failures {
        println!("instance {id}: {failures}");
    }
    if report.failed as usize > report.failures.len() {
        println!(
            "… and {} more (GET /v1/instances?flagged=true lists them all)",
            report.failed as usize - report.failures.len()
        );
    }
    Ok(report.passed())
}
