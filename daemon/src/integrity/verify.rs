//! Verifying one instance (for its history page) or everything (for `statflow verify`), in
//! bounded memory: instances, history and ledger are read in chunks, never whole.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use statflow_workflows::calendar::Calendar;

use super::anchors::{self, Anchor, Anchoring};
use super::checks::{self, Check, InstanceChecks, Verdict};
use crate::engine::Definitions;
use crate::store::ledger::{sealed, GENESIS};
use crate::store::records::{HistoryEntry, InstanceRecord, LedgerEntry};
use crate::store::{from_millis, Store, StoreError};

/// Instances read per chunk.
const INSTANCE_CHUNK: u64 = 200;
/// Ledger rows read per chunk.
const LEDGER_CHUNK: u64 = 5000;
/// At most this many failures are listed (all are counted and flagged).
const LISTED: usize = 1000;

/// What verification checks against: the store, the definition versions and calendar the
/// replay uses, and where anchors are kept.
pub struct Verifier<'a> {
    pub store: &'a Store,
    pub definitions: &'a Definitions,
    pub calendar: Arc<Calendar>,
    /// The calendar's import generation: instances below it wait for recomputation.
    pub generation: i64,
    pub anchoring: &'a Anchoring,
}

/// What verifying the whole store found.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub instances: u64,
    /// Instances with a failed check, as (id, what failed); the first [`LISTED`].
    pub failures: Vec<(i64, String)>,
    pub failed: u64,
    pub newly_flagged: u64,
    pub inconclusive: u64,
    /// The ledger's own chain, and its head row.
    pub ledger: Check,
    /// Instances the ledger knows of that are gone without a lawful removal.
    pub missing: Check,
    pub anchors: Check,
}

impl Verification {
    pub fn passed(&self) -> bool {
        self.failed == 0 && ![&self.ledger, &self.missing, &self.anchors].iter().any(|c| c.is_failure())
    }
}

impl Verifier<'_> {
    /// Flags an instance that failed verification (once: the first reason stays) and
    /// records it in the audit log. Returns whether it was newly flagged.
    pub async fn flag(&self, id: i64, reason: &str) -> Result<bool, StoreError> {
        let flagged = self.store.flag(id, reason).await?;
        if flagged {
            tracing::warn!(instance = id, %reason, "instance failed verification and is flagged");
            self.store.audit("verification", "instance.flagged", &id.to_string(), json!({"reason": reason})).await?;
        }
        Ok(flagged)
    }

    /// The checks of one instance, given its history, with its ledger entries' links to the
    /// entries after them. Flags it if a check fails.
    pub async fn verify_instance(
        &self,
        row: &InstanceRecord,
        history: &[HistoryEntry],
    ) -> Result<InstanceChecks, StoreError> {
        let (entries, followers) = self.store.ledger_of(row.id).await?;
        let (head_seq, head_hash) = self.store.ledger_head().await?;
        let linked = entries.iter().try_for_each(|entry| match followers.get(&(entry.seq + 1)) {
            Some(next) if next.prev_hash == entry.hash => Ok(()),
            Some(_) => Err(format!("ledger entry {} is not the one entry {} follows", entry.seq, entry.seq + 1)),
            None if head_seq == entry.seq && head_hash == entry.hash => Ok(()),
            None => Err(format!("the ledger breaks after entry {}: later entries were removed", entry.seq)),
        });
        let report = self.instance_checks(row, history, &entries, linked);
        let failures = report.failures();
        if !failures.is_empty() {
            self.flag(row.id, &failures).await?;
        }
        Ok(report)
    }

    fn instance_checks(
        &self,
        row: &InstanceRecord,
        history: &[HistoryEntry],
        entries: &[LedgerEntry],
        linked: Result<(), String>,
    ) -> InstanceChecks {
        let definitions = |version: &str| self.definitions.get(version);
        let stale = row.calendar_generation < self.generation && row.is_running();
        InstanceChecks {
            chain: checks::chain(row.id, history),
            head: checks::head(row, history),
            ledger: checks::ledger(history, entries, linked),
            replay: checks::replay(row, history, &definitions, &self.calendar, stale),
        }
    }

    /// Verifies every instance, the ledger and the anchors; flags instances that fail.
    /// `progress` hears (instances done, instances in all) after each chunk.
    pub async fn verify_all(&self, mut progress: impl FnMut(u64, u64)) -> Result<Verification, StoreError> {
        let total = self.store.count_instances().await?;
        let mut report = Verification {
            instances: 0,
            failures: Vec::new(),
            failed: 0,
            newly_flagged: 0,
            inconclusive: 0,
            ledger: self.verify_ledger().await?,
            missing: self.find_missing().await?,
            anchors: self.verify_anchors().await?,
        };
        let mut after = 0i64;
        loop {
            let rows = self.store.sealed_chunk(after, INSTANCE_CHUNK).await?;
            let Some((last, ..)) = rows.last() else { break };
            after = last.id;
            for (row, history, entries) in &rows {
                // The ledger's links were checked whole by `verify_ledger`.
                let checks = self.instance_checks(row, history, entries, Ok(()));
                let failures = checks.failures();
                if checks.replay.verdict == Verdict::Inconclusive {
                    report.inconclusive += 1;
                }
                if !failures.is_empty() {
                    report.failed += 1;
                    if self.flag(row.id, &failures).await? {
                        report.newly_flagged += 1;
                    }
                    if report.failures.len() < LISTED {
                        report.failures.push((row.id, failures));
                    }
                }
                report.instances += 1;
            }
            progress(report.instances, total);
        }
        Ok(report)
    }

    /// Walks the whole ledger in order: numbered 1, 2, …, each entry sealed and naming the one
    /// before, the last one the recorded head.
    pub async fn verify_ledger(&self) -> Result<Check, StoreError> {
        let (mut seq, mut prev) = (0i64, GENESIS.to_owned());
        loop {
            let rows = self.store.ledger_after(seq, LEDGER_CHUNK).await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if row.seq != seq + 1 {
                    return Ok(Check::failed(format!("ledger entries {}–{} are missing", seq + 1, row.seq - 1)));
                }
                if row.prev_hash != prev {
                    return Ok(Check::failed(format!("ledger entry {} does not follow entry {seq}", row.seq)));
                }
                if !sealed(&row) {
                    return Ok(Check::failed(format!("ledger entry {} was altered", row.seq)));
                }
                seq = row.seq;
                prev = row.hash;
            }
        }
        let (head_seq, head_hash) = self.store.ledger_head().await?;
        if (head_seq, head_hash.as_str()) != (seq, prev.as_str()) {
            return Ok(Check::failed(format!(
                "the ledger ends at entry {seq} but its recorded head is entry {head_seq}: entries were removed or added"
            )));
        }
        Ok(Check::passed(format!("{seq} entries, each sealed to the one before")))
    }

    /// Instances the ledger records that are gone without a `removed` entry of the retention
    /// sweep, and histories left without their instance.
    async fn find_missing(&self) -> Result<Check, StoreError> {
        let (gone, orphans) = self.store.missing_instances().await?;
        if !gone.is_empty() {
            return Ok(Check::failed(format!("instances {} are in the ledger but were deleted", list(&gone))));
        }
        if !orphans.is_empty() {
            return Ok(Check::failed(format!("history of instances {} remains without the instance", list(&orphans))));
        }
        Ok(Check::passed("every instance the ledger records is stored or was lawfully removed"))
    }

    /// Compares every anchor (in the database and in the anchor file) with the ledger, and
    /// checks their signatures when a key is configured.
    pub async fn verify_anchors(&self) -> Result<Check, StoreError> {
        let anchoring = self.anchoring;
        let mut anchors: Vec<(String, Anchor)> = Vec::new();
        for (id, anchor) in self.store.anchors().await? {
            anchors.push((format!("stored anchor {id}"), anchor));
        }
        if let Some(file) = &anchoring.file {
            match read_anchor_file(file) {
                Ok(lines) => {
                    for (n, line) in lines.into_iter().enumerate() {
                        match line {
                            Ok(anchor) => anchors.push((format!("{}:{}", file.display(), n + 1), anchor)),
                            Err(error) => return Ok(Check::failed(error)),
                        }
                    }
                }
                Err(error) => return Ok(Check::failed(error)),
            }
        }
        if anchors.is_empty() {
            return Ok(Check::inconclusive("no anchors yet: the first is taken at the end of the day"));
        }
        let mut seqs: Vec<i64> = anchors.iter().map(|(_, a)| a.ledger_seq).filter(|s| *s > 0).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let hashes: HashMap<i64, String> = self.store.ledger_hashes(&seqs).await?;
        let (mut signed, mut unjudged) = (0, 0);
        for (origin, anchor) in &anchors {
            let when = from_millis(anchor.at).format("%Y-%m-%d %H:%M");
            let hash =
                if anchor.ledger_seq == 0 { Some(GENESIS) } else { hashes.get(&anchor.ledger_seq).map(String::as_str) };
            match hash {
                None => {
                    return Ok(Check::failed(format!(
                        "{origin} ({when}) anchors ledger entry {}, which is missing: the ledger was cut back",
                        anchor.ledger_seq
                    )))
                }
                Some(hash) if hash != anchor.ledger_hash => {
                    return Ok(Check::failed(format!(
                        "{origin} ({when}): ledger entry {} is not the one anchored: the ledger was rewritten",
                        anchor.ledger_seq
                    )))
                }
                Some(_) => {}
            }
            if let Some(key) = &anchoring.key {
                match key.holds(anchor) {
                    Some(true) => signed += 1,
                    Some(false) => {
                        return Ok(Check::failed(format!(
                            "{origin} ({when}) carries a signature the key does not give"
                        )))
                    }
                    None => unjudged += 1,
                }
            }
        }
        let signatures = match &anchoring.key {
            Some(_) if unjudged > 0 => format!(", {signed} signatures hold, {unjudged} unsigned or by another key"),
            Some(_) => format!(", {signed} signatures hold"),
            None => ", signatures not checked (no key configured)".into(),
        };
        Ok(Check::passed(format!("{} anchors agree with the ledger{signatures}", anchors.len())))
    }
}

fn read_anchor_file(file: &Path) -> Result<Vec<Result<Anchor, String>>, String> {
    if !file.exists() {
        return Ok(Vec::new());
    }
    anchors::read_file(file)
}

fn list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}
