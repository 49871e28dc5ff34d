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
//! so many commits it asks a reading connection to, and goes on committing meanwhile.

use sea_orm::{ConnectionTrait, DatabaseConnection, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::outbox::OutboxWrite;
use super::transition::{store_batch, BatchFailure, Outcome, Submission};
use super::StoreError;

/// The most transitions one commit carries; bounds how long the write lock is held.
const MAX_BATCH: usize = 256;

/// How many transitions may wait for the writer before submitters wait in turn.
const QUEUE: usize = 4096;

/// Commits between two requests to checkpoint the WAL. A batch writes a few dozen pages, so
/// this checkpoints about as often as SQLite's default (every 1,000 pages) would.
const COMMITS_PER_CHECKPOINT: u32 = 16;

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
    /// Starts the writer task on the current tokio runtime, writing through `db` and
    /// checkpointing through `readers`.
    pub fn spawn(db: DatabaseConnection, readers: DatabaseConnection) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(db, jobs, Checkpoints::spawn(readers)));
        Writer { queue }
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
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&db, std::mem::take(&mut batch)).await;
        checkpoints.committed();
    }
}

/// Checkpoints of the WAL, run by a task of their own on a reading connection. PASSIVE: a
/// checkpoint copies what no reader still needs and never waits for the writer, which may
/// append to the WAL meanwhile; SQLite starts the WAL over once a checkpoint has copied all
/// of it. The task ends with the writer (when `wake` is dropped).
struct Checkpoints {
    wake: mpsc::Sender<()>,
    commits: u32,
}

impl Checkpoints {
    fn spawn(readers: DatabaseConnection) -> Checkpoints {
        // One request waits at most: requests made while a checkpoint runs are one request.
        let (wake, mut requests) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while requests.recv().await.is_some() {
                if let Err(error) = readers.execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)").await {
                    tracing::warn!(%error, "the WAL could not be checkpointed; trying again later");
                }
            }
        });
        Checkpoints { wake, commits: 0 }
    }

    fn committed(&mut self) {
        self.commits += 1;
        if self.commits >= COMMITS_PER_CHECKPOINT {
            self.commits = 0;
            self.wake.try_send(()).ok();
        }
    }
}

async fn commit_batch(db: &DatabaseConnection, batch: Vec<Job>) {
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
    match commit(db, &submitted, &bookkeeping).await {
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
                let outcome = match commit(db, &[&transition], &[]).await {
                    Ok(mut outcomes) => outcomes.pop().expect("one outcome per transition"),
                    Err(error) => Err(error),
                };
                reply.send(outcome).ok();
            }
            for (write, reply) in writes {
                reply.send(commit(db, &[], &[&write]).await.map(|_| ())).ok();
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
/// outcomes once it is durable.
async fn commit(
    db: &DatabaseConnection,
    transitions: &[&Submission],
    writes: &[&OutboxWrite],
) -> Result<Vec<Outcome>, StoreError> {
    // IMMEDIATE takes the write lock at BEGIN: a deferred transaction that read first could
    // find its snapshot stale when it tries to write, and SQLite would refuse it outright.
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    let began = std::time::Instant::now();
    let txn = db.begin_with_options(options).await?;
    let stored = match store_batch(&txn, transitions, true).await {
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
