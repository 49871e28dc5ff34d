//! Group commit for SQLite. SQLite has one writer, and with `synchronous=FULL` every commit
//! waits for the disk; committing each transition alone caps throughput at the disk's flush
//! rate. Instead one task takes every transition queued while the previous commit was
//! flushing and stores them in a single transaction with set-based statements (see
//! [`prepare`] and [`Prepared::store`]). A refused transition is simply not stored; if the
//! batch fails, each of its transitions is stored alone so one bad transition cannot sink
//! the others. No caller hears back before the transaction holding its transition is
//! durable.
//!
//! The writer is a pipeline of two stages: while one batch is written and committed by a
//! task of its own, the next is read (on a reading connection) and computed. A transition on
//! an instance the committing batch changes waits for the batch after: its rows are not
//! final yet. Whatever else may have changed a row read meanwhile (a claim, a removal), the
//! batch checks under the write lock that its rows stand as read before it writes
//! ([`Prepared::store`]); if one moved, its transitions are computed again inside the
//! transaction, one by one.
//!
//! The workers' outbox bookkeeping (effects done, failed, to be retried) rides in the same
//! commits: written on its own it would wait for the lock this task holds and pay a flush of
//! its own for every row.
//!
//! Nor does this task checkpoint the WAL (its connection has `wal_autocheckpoint=0`): every
//! so many commits it asks a reading connection to, and goes on committing meanwhile.

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DatabaseConnection, SqliteTransactionMode, TransactionOptions, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::outbox::OutboxWrite;
use super::transition::{next_instance_id, prepare, store_batch, BatchFailure, Outcome, Prepared, Submission};
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

impl Job {
    /// The stored instance the job changes, if any.
    fn instance(&self) -> Option<i64> {
        match self {
            Job::Transition(submission, _) => submission.work.instance(),
            Job::Outbox(..) => None,
        }
    }
}

/// The handle through which transitions reach the writer task.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task on the current tokio runtime, writing through `db`, and reading
    /// and checkpointing through `readers`.
    pub fn spawn(db: DatabaseConnection, readers: DatabaseConnection) -> Writer {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let checkpoints = Checkpoints::spawn(readers.clone());
        tokio::spawn(Pipeline { db, readers, next_id: None, checkpoints }.run(jobs));
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

/// The writer task's state between batches.
struct Pipeline {
    db: DatabaseConnection,
    readers: DatabaseConnection,
    /// The id the next started instance takes, once one was started: the writer alone
    /// gives ids out, and batches computed ahead of a commit cannot read the ids it uses.
    next_id: Option<i64>,
    checkpoints: Checkpoints,
}

/// A batch being committed by a task of its own.
struct Flight {
    /// The instances its transitions are on: a transition on one of them waits for it.
    instances: HashSet<i64>,
    committed: JoinHandle<()>,
}

impl Pipeline {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut queued: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        let mut flight: Option<Flight> = None;
        loop {
            if queued.is_empty() {
                // Nothing to compute: wait for work, or for the batch in flight to land.
                let received = match &mut flight {
                    None => Some(jobs.recv_many(&mut queued, MAX_BATCH).await),
                    Some(flying) => tokio::select! {
                        received = jobs.recv_many(&mut queued, MAX_BATCH) => Some(received),
                        _ = &mut flying.committed => None,
                    },
                };
                match received {
                    Some(0) => break,
                    Some(_) => {}
                    None => {
                        flight = None;
                        self.checkpoints.committed();
                        continue;
                    }
                }
            } else {
                while queued.len() < MAX_BATCH {
                    let Ok(job) = jobs.try_recv() else { break };
                    queued.push(job);
                }
            }
            let busy = flight.as_ref().map(|flying| &flying.instances);
            let (ready, waiting): (Vec<Job>, Vec<Job>) = queued
                .drain(..)
                .partition(|job| !job.instance().is_some_and(|id| busy.is_some_and(|busy| busy.contains(&id))));
            queued = waiting;
            if ready.is_empty() {
                self.land(flight.take()).await;
                continue;
            }
            let batch = self.compute(ready).await;
            self.land(flight.take()).await;
            flight = Some(batch.launch(self.db.clone()));
        }
        self.land(flight).await;
    }

    /// Waits until the batch in flight (if any) is committed and answered.
    async fn land(&mut self, flight: Option<Flight>) {
        if let Some(flight) = flight {
            // A commit task that panicked has dropped its replies: its callers hear that the
            // writer stopped, and the next batch goes on.
            flight.committed.await.ok();
            self.checkpoints.committed();
        }
    }

    /// Reads what `jobs` need and computes their transitions, while the batch in flight
    /// commits. A batch whose reads fail is computed again inside its transaction.
    async fn compute(&mut self, jobs: Vec<Job>) -> Batch {
        let batch = Batch::of(jobs);
        let submitted: Vec<&Submission> = batch.transitions.iter().map(|(t, _)| &**t).collect();
        let starts = submitted.iter().any(|t| t.work.instance().is_none());
        let next_id = match self.next_id {
            Some(next) => Ok(Some(next)),
            None if starts => next_instance_id(&self.readers).await.map(Some),
            None => Ok(None),
        };
        let prepared = match next_id {
            Ok(next_id) => prepare(&self.readers, &submitted, next_id).await.ok(),
            Err(_) => None,
        };
        if let Some(next) = prepared.as_ref().and_then(Prepared::next_id) {
            self.next_id = Some(next);
        }
        Batch { prepared, ..batch }
    }
}

/// The jobs of one commit, and their transitions as computed ahead of it.
struct Batch {
    transitions: Vec<(Box<Submission>, Reply)>,
    writes: Vec<(OutboxWrite, oneshot::Sender<Result<(), StoreError>>)>,
    prepared: Option<Prepared>,
}

impl Batch {
    fn of(jobs: Vec<Job>) -> Batch {
        let mut batch = Batch { transitions: Vec::with_capacity(jobs.len()), writes: Vec::new(), prepared: None };
        for job in jobs {
            match job {
                Job::Transition(transition, reply) => batch.transitions.push((transition, reply)),
                Job::Outbox(write, reply) => batch.writes.push((write, reply)),
            }
        }
        batch
    }

    fn launch(self, db: DatabaseConnection) -> Flight {
        let instances = self.transitions.iter().filter_map(|(t, _)| t.work.instance()).collect();
        Flight { instances, committed: tokio::spawn(self.commit(db)) }
    }

    async fn commit(self, db: DatabaseConnection) {
        let Batch { transitions, writes, prepared } = self;
        let submitted: Vec<&Submission> = transitions.iter().map(|(t, _)| &**t).collect();
        let bookkeeping: Vec<&OutboxWrite> = writes.iter().map(|(w, _)| w).collect();
        let computed_ahead = prepared.is_some();
        match commit(&db, &submitted, prepared, &bookkeeping).await {
            Ok(outcomes) => {
                answer(transitions, outcomes);
                for (_, reply) in writes {
                    reply.send(Ok(())).ok();
                }
            }
            // One bad transition must not sink the others, and rows read ahead may have
            // moved: store each alone, computed inside its transaction.
            Err(error) if submitted.len() + bookkeeping.len() > 1 || computed_ahead => {
                if !matches!(error, StoreError::Conflict) {
                    tracing::warn!(%error, transitions = submitted.len(), "a batch failed; storing its parts one by one");
                }
                for (transition, reply) in transitions {
                    let outcome = match commit(&db, &[&transition], None, &[]).await {
                        Ok(mut outcomes) => outcomes.pop().expect("one outcome per transition"),
                        Err(error) => Err(error),
                    };
                    reply.send(outcome).ok();
                }
                for (write, reply) in writes {
                    reply.send(commit(&db, &[], None, &[&write]).await.map(|_| ())).ok();
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

/// Stores `transitions` (as `prepared` computed them, else computed inside the transaction)
/// and `writes` in one transaction and returns the transitions' outcomes once it is durable.
async fn commit(
    db: &DatabaseConnection,
    transitions: &[&Submission],
    prepared: Option<Prepared>,
    writes: &[&OutboxWrite],
) -> Result<Vec<Outcome>, StoreError> {
    // IMMEDIATE takes the write lock at BEGIN: a deferred transaction that read first could
    // find its snapshot stale when it tries to write, and SQLite would refuse it outright.
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    let began = std::time::Instant::now();
    let txn = db.begin_with_options(options).await?;
    let stored = match prepared {
        Some(prepared) => prepared.store(&txn, true).await,
        None => store_batch(&txn, transitions, true).await,
    };
    let stored = match stored {
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
