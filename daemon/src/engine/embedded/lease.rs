//! The shared-work lease: when instances run on Temporal, several `serve` processes can share
//! one PostgreSQL database, and the work that belongs to no instance — schedules and their
//! catch-up, digests and anchors, calendar recomputation — must be done by one of them at a
//! time. The process holding the lease does it; the others stand by, and one of them takes
//! the lease over within [`RENEW_EVERY`] of the holder's connection going (a crash, a kill,
//! a network cut). A holder that loses its lease finishes the pass it is in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};

/// How often the holder checks its lease and a standby tries to take it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// Whether this process is to do the shared work.
#[derive(Default)]
pub struct SharedWork {
    /// The work is shared through the lease (else this process does it alone).
    leased: AtomicBool,
    held: AtomicBool,
    changed: Notify,
}

impl SharedWork {
    /// Whether this process does the shared work now.
    pub fn here(&self) -> bool {
        !self.leased.load(Ordering::SeqCst) || self.held.load(Ordering::SeqCst)
    }

    /// `Some(held)` when the work is shared through the lease.
    pub fn lease_held(&self) -> Option<bool> {
        self.leased.load(Ordering::SeqCst).then(|| self.held.load(Ordering::SeqCst))
    }

    fn set_held(&self, held: bool) {
        if self.held.swap(held, Ordering::SeqCst) != held {
            self.changed.notify_waiters();
        }
    }
}

impl Embedded {
    /// Shares the work that belongs to no instance with the other processes on this
    /// database, through the lease; once, before the workers start.
    pub fn share_work_through_lease(&self) {
        self.shared_work.leased.store(true, Ordering::SeqCst);
    }

    /// Waits until this process may do the shared work (or shutdown); true when it may.
    pub(super) async fn wait_for_shared_work(&self, shutdown: &mut Shutdown) -> bool {
        while !self.shared_work.here() {
            tokio::select! {
                () = self.shared_work.changed.notified() => {}
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = shutdown.wait() => return false,
            }
        }
        !shutdown.is_set()
    }

    /// The lease worker's loop, until shutdown: takes the lease when free, then keeps
    /// checking it.
    pub(super) async fn run_lease(self: Arc<Self>, heartbeat: Heartbeat, mut shutdown: Shutdown) {
        while !shutdown.is_set() {
            heartbeat.beat();
            match self.store.try_lease().await {
                Ok(Some(guard)) => {
                    tracing::info!("this process holds the shared-work lease: it runs schedules, digests and anchors");
                    self.shared_work.set_held(true);
                    loop {
                        tokio::select! {
                            () = tokio::time::sleep(RENEW_EVERY) => {}
                            () = shutdown.wait() => break,
                        }
                        heartbeat.beat();
                        if let Err(error) = guard.renew().await {
                            tracing::warn!(%error, "the shared-work lease is lost");
                            break;
                        }
                    }
                    self.shared_work.set_held(false);
                    drop(guard);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "could not try the shared-work lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(RENEW_EVERY) => {}
                () = shutdown.wait() => {}
            }
        }
    }
}
