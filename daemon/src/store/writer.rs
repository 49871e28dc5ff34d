//! Group commit for SQLite. SQLite has one writer, and with `synchronous=FULL` every commit
//! waits for the disk; committing each transition alone caps throughput at the disk's flush
//! rate. Instead one task takes every transition queued while the previous commit was
//! flushing and stores them in a single transaction with set-based statements (see
//! [`store_batch`]). A refused transition is simply not stored; if the batch fails, each of
//! its transitions is stored alone so one bad transition cannot sink the others. No caller
//! hears back before the transaction holding its transition is durable.
//!
//! The workers' outbox bookkeeping (effects done, failed, to be retried) rides in the same
//! commits: written on its own it would wait for the lock this task holds and pay a flush of
//! its own for every row.
//!
//! Nor does this task checkpoint the WAL (its connection has `wal_autocheckpoint=0`): every
//! so many commits it asks a reading connection to, and goes on committing meanwhile. Those
//! checkpoints never catch up with a writer that keeps appending, and SQLite starts the WAL
//! over only when a write begins with all of it copied: under a steady load the WAL would grow
//! without end (14 GB while a million instances were started), filling the disk and making
//! every later open read it whole. So when a checkpoint finds the WAL past
//! [`WAL_RESTART_FRAMES`], the writer copies the rest itself between two commits, and its next
//! write starts the WAL over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, SqliteTransactionMode, Statement, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::outbox::OutboxWrite;
use super::states::ComputedStates;
use super::transition::{store_batch, BatchFailure, Outcome, Submission};
use super::StoreError;

/// The most transitions one commit carries; bounds how long the write lock is held.
const MAX_BATCH: usize = 256;

/// How many transitions may wait for the writer before submitters wait in turn.
const QUEUE: usize = 4096;

/// Commits between two requests to checkpoint the WAL. A batch writes a few dozen pages, so
/// this checkpoints about as often as SQLite's default (every 1,000 pages) would.
const COMMITS_PER_CHECKPOINT: u32 = 16;

/// WAL frames (pages) past which the writer checkpoints itself so the WAL starts over: 16 MiB
/// of 4 KiB pages, a few hundred commits under load. The writer's connection also truncates
/// the file back to this size when the WAL starts over (`journal_size_limit`).
pub(super) const WAL_RESTART_FRAMES: i64 = 4096;

type Reply = oneshot::Sender<Outcome>;

/// What the writer is asked to store.
enum Job {
    // Boxed: a submission (its event) is large beside the outbox's bookkeeping.
    Transition(Box<Submission>, Reply),
    Outbox(OutboxWrite, oneshot::Sender<Result<(), StoreError>>),
}

/// The handle through which transitions reach the writer task.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer on a thread of its own, writing through `db`, and its checkpoints
    /// on the current tokio runtime, through `readers`.
    ///
    /// Its own thread: every statement is a trip to the connection's thread, and the answer
    /// wakes the writer from outside the runtime. On the daemon's runtime the woken writer
    /// waited in the queue shared by every request until a worker looked there (a worker
    /// looks every few dozen tasks), once per statement; the writer bounds how fast
    /// transitions are stored, so that wait bounded the daemon.
    pub fn spawn(db: DatabaseConnection, readers: DatabaseConnection) -> std::io::Result<Writer> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let checkpoints = Checkpoints::spawn(readers);
        std::thread::Builder::new()
            .name("statflow-writer".into())
            .spawn(move || runtime.block_on(run(db, jobs, checkpoints)))?;
        Ok(Writer { queue })
    }

    /// Queues a transition and waits until it is durable (or refused, or failed).
    pub async fn submit(&self, transition: Submission) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job::Transition(Box::new(transition), reply)).await.map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Queues a change to outbox rows and waits until it is durable.
    pub(super) async fn write_outbox(&self, write: OutboxWrite) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Job::Outbox(write, reply)).await.map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn run(db: DatabaseConnection, mut jobs: mpsc::Receiver<Job>, mut checkpoints: Checkpoints) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut states = ComputedStates::default();
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&db, std::mem::take(&mut batch), &mut states).await;
        checkpoints.committed();
        if checkpoints.wal_too_long.swap(false, Ordering::Relaxed) {
            // Nothing appends while this runs, so it copies all that no reader still reads;
            // the next write then starts the WAL over (unless a reader is still on an older
            // snapshot: then the next long WAL tries again).
            match checkpoint(&db).await {
                Ok(frames) => tracing::debug!(frames, "the writer checkpointed a long WAL"),
                Err(error) => tracing::warn!(%error, "the WAL could not be checkpointed; trying again later"),
            }
        }
    }
}

/// A PASSIVE checkpoint through `db`: the WAL's length in frames when it ran.
async fn checkpoint(db: &DatabaseConnection) -> Result<i64, sea_orm::DbErr> {
    let statement = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
    let row = db.query_one_raw(statement).await?;
    // Columns: busy, log (frames in the WAL), checkpointed; log is -1 outside WAL mode.
    Ok(row.map(|row| row.try_get_by_index::<i64>(1)).transpose()?.unwrap_or(0))
}

/// Checkpoints of the WAL, run by a task of their own on a reading connection. PASSIVE: a
/// checkpoint copies what no reader still needs and never waits for the writer, which may
/// append to the WAL meanwhile. A checkpoint that finds the WAL longer than
/// [`WAL_RESTART_FRAMES`] raises `wal_too_long` for the writer. The task ends with the writer
/// (when `wake` is dropped).
struct Checkpoints {
    wake: mpsc::Sender<()>,
    commits: u32,
    wal_too_long: Arc<AtomicBool>,
}

impl Checkpoints {
    fn spawn(readers: DatabaseConnection) -> Checkpoints {
        // One request waits at most: requests made while a checkpoint runs are one request.
        let (wake, mut requests) = mpsc::channel::<()>(1);
        let wal_too_long = Arc::new(AtomicBool::new(false));
        let raise = wal_too_long.clone();
        tokio::spawn(async move {
            while requests.recv().await.is_some() {
                match checkpoint(&readers).await {
                    Ok(frames) if frames > WAL_RESTART_FRAMES => raise.store(true, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the WAL could not be checkpointed; trying again later"),
                }
            }
        });
        Checkpoints { wake, commits: 0, wal_too_long }
    }

    fn committed(&mut self) {
        self.commits += 1;
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.commits = 0;
            self.wake.try_send(()).ok();
        }
    }
}

async fn commit_batch(db: &DatabaseConnection, batch: Vec<Job>, states: &mut ComputedStates) {
    let mut transitions = Vec::with_capacity(batch.len());
    let mut writes = Vec::new();
    for job in batch {
        match job {
            Job::Transition(transition, reply) => transitions.push((transition, reply)),
            Job::Outbox(write, reply) => writes.push((write, reply)),
        }
    }
    let submitted: Vec<&Submission> = transitions.iter().map(|(t, _)| &**t).collect();
    let bookkeeping: Vec<&OutboxWrite> = writes.iter().map(|(w, _)| w).collect();
    match commit(db, &submitted, &bookkeeping, states).await {
        Ok(outcomes) => {
            answer(transitions, outcomes);
            for (_, reply) in writes {
                reply.send(Ok(())).ok();
            }
        }
        // One bad transition must not sink the others: store each alone.
        Err(error) if submitted.len() + bookkeeping.len() > 1 => {
            tracing::warn!(%error, transitions = submitted.len(), "a batch failed; storing its parts one by one");
            for (transition, reply) in transitions {
                let outcome = match commit(db, &[&transition], &[], states).await {
                    Ok(mut outcomes) => outcomes.pop().expect("one outcome per transition"),
                    Err(error) => Err(error),
                };
                reply.send(outcome).ok();
            }
            for (write, reply) in writes {
                reply.send(commit(db, &[], &[&write], states).await.map(|_| ())).ok();
            }
        }
        Err(error) => {
            tracing::error!(%error, "a transition could not be stored");
            for (_, reply) in transitions {
                reply.send(Err(clone_error(&error))).ok();
            }
            for (_, reply) in writes {
                reply.send(Err(clone_error(&error))).ok();
            }
        }
    }
}

/// Stores `transitions` and `writes` in one transaction and returns the transitions'
/// outcomes once it is durable. `states`: the states the writer computed lately.
async fn commit(
    db: &DatabaseConnection,
    transitions: &[&Submission],
    writes: &[&OutboxWrite],
    states: &mut ComputedStates,
) -> Result<Vec<Outcome>, StoreError> {
    // IMMEDIATE takes the write lock at BEGIN: a deferred transaction that read first could
    // find its snapshot stale when it tries to write, and SQLite would refuse it outright.
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    let began = std::time::Instant::now();
    let txn = db.begin_with_options(options).await?;
    let stored = match store_batch(&txn, transitions, true, states).await {
        Ok(outcomes) => bookkeep(&txn, writes).await.map(|()| outcomes),
        Err(failure) => Err(failure),
    };
    match stored {
        Ok(outcomes) => {
            let committed = txn.commit().await;
            crate::metrics::commit(began.elapsed(), transitions.len(), committed.is_ok());
            committed?;
            // Counted once durable: a batch that failed is stored again part by part.
            for (procedure, event) in outcomes.iter().filter_map(|o| o.as_ref().ok()?.as_ref().ok()?.event.as_ref()) {
                crate::metrics::transition(procedure, event);
            }
            Ok(outcomes)
        }
        Err(failure) => {
            txn.rollback().await.ok();
            crate::metrics::commit(began.elapsed(), transitions.len(), false);
            Err(match failure {
                BatchFailure::Db(error) => StoreError::Db(error),
                // Only this task writes instances, so another process is writing the same file.
                BatchFailure::Conflict => StoreError::Conflict,
            })
        }
    }
}

async fn bookkeep(txn: &sea_orm::DatabaseTransaction, writes: &[&OutboxWrite]) -> Result<(), BatchFailure> {
    for write in writes {
        write.execute(txn).await?;
    }
    Ok(())
}

fn answer(batch: Vec<(Box<Submission>, Reply)>, outcomes: Vec<Outcome>) {
    for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
        // A submitter that stopped waiting no longer needs the answer; its transition stands.
        reply.send(outcome).ok();
    }
}

fn clone_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Db(error) => StoreError::Db(error.clone()),
        StoreError::Conflict => StoreError::Conflict,
        other => StoreError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use chrono::DateTime;
    use serde_json::json;
    use statflow_workflows::engine::Actor;

    use super::WAL_RESTART_FRAMES;
    use crate::engine::embedded::clock::Clock;
    use crate::engine::embedded::Embedded;
    use crate::engine::Engine;
    use crate::store::transition::Origin;
    use crate::store::Store;

    /// Under a load that never pauses, with readers always reading, the WAL still starts over:
    /// its file never holds much more than the limit, though many times that is written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_a_steady_load() {
        let dir = std::env::temp_dir().join(format!("statflow-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("wal.db");
        let wal = dir.join("wal.db-wal");
        let store = Store::open(&format!("sqlite://{}?mode=rwc", file.display())).await.unwrap();
        let start = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").unwrap();
        let engine = Embedded::load(store.clone(), Clock::Virtual(Mutex::new(start))).await.unwrap();
        let definition = engine.definitions().current("registration", "taian").unwrap();
        let clerk = Actor {
            id: "clerk".into(),
            roles: vec!["registration_agency".into(), "registrant".into()],
            organizations: vec!["taian-registry".into(), "taian-market".into()],
            administrator: false,
            request: None,
        };
        let input = json!({"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"});

        // Instances are started until the database file has grown by four times the limit
        // (pages rewritten are written to the WAL again, so far more passes through it): a WAL
        // never started over grows to many times the limit (352 MiB when last measured).
        let limit_bytes = (WAL_RESTART_FRAMES * 4096) as u64;
        let running = Arc::new(AtomicBool::new(true));
        let largest_wal = Arc::new(AtomicU64::new(0));
        let reader = {
            let (store, running, largest_wal, wal) = (store.clone(), running.clone(), largest_wal.clone(), wal.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    store.count_pending_effects().await.unwrap();
                    let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                    largest_wal.fetch_max(size, Ordering::Relaxed);
                }
            })
        };
        let started = Arc::new(AtomicUsize::new(0));
        let mut starters = Vec::new();
        for _ in 0..32 {
            let (engine, definition, clerk, input, started, file) =
                (engine.clone(), definition.clone(), clerk.clone(), input.clone(), started.clone(), file.clone());
            starters.push(tokio::spawn(async move {
                while std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0) < 4 * limit_bytes {
                    engine.start_with(&definition, input.clone(), clerk.clone(), Origin::Direct).await.unwrap();
                    started.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for starter in starters {
            starter.await.unwrap();
        }
        running.store(false, Ordering::Relaxed);
        reader.await.unwrap();
        let largest = largest_wal.load(Ordering::Relaxed);
        let written = std::fs::metadata(&file).unwrap().len();
        // The WAL passes the limit by what is appended between a checkpoint finding it past the
        // limit and the writer's own checkpoint: a few batches, more on a busy machine (33 MiB
        // once, with the other tests running beside it). Never started over it grows tenfold.
        assert!(
            largest <= 3 * limit_bytes,
            "the WAL reached {} MiB (limit {} MiB) while {} instances ({} MiB of database) were written",
            largest >> 20,
            limit_bytes >> 20,
            started.load(Ordering::Relaxed),
            written >> 20
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
