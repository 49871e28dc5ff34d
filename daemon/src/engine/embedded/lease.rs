//! The work lease: several `serve` processes (nodes) can share one PostgreSQL database, and
//! the work that answers no request — timers, the outbox, deliveries, schedules and their
//! catch-up, digests and anchors, calendar recomputation — must be done by one of them at a
//! time. The node holding the lease does it; the others serve the API and stand by.
//!
//! The lease lives in the database (`store/lease.rs`) and expires by the database's clock,
//! `ttl` after its holder last renewed it; the holder renews it every third of that. A node
//! that dies or is paused stops renewing, and once its lease has expired a standby takes it.
//! A holder counts its lease as its own only until `ttl` (less a tenth, for clocks that run
//! at slightly different rates) after it *asked* for the last renewal, by its own monotonic
//! clock, which runs on while the process is paused: a node resuming after a pause longer
//! than the lease sees at once that it no longer holds it, and its workers stop before they
//! complete anything more (the database may meanwhile have given the lease to another node).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::Embedded;
use crate::engine::supervisor::{Heartbeat, Shutdown};

/// The lease's name in `work_leases`.
const WORK: &str = "work";

/// Who this node is and how long its lease lasts.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// This node's name in `work_leases` and the logs (default: host name and process id).
    pub node: String,
    /// How long the lease lasts unrenewed: a standby takes over about this long after the
    /// holder dies.
    pub ttl: Duration,
}

impl LeaseSettings {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

    /// The host's name and this process's id: unique among the nodes, and new after a restart.
    pub fn default_node() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        format!("{host}-{}", std::process::id())
    }

    fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// How long after asking for a renewal the lease surely still holds.
    fn surely_held_for(&self) -> Duration {
        self.ttl - self.ttl / 10
    }
}

impl Default for LeaseSettings {
    fn default() -> Self {
        LeaseSettings { node: Self::default_node(), ttl: Self::DEFAULT_TTL }
    }
}

/// Whether this process is to do the work nobody asked for.
#[derive(Default)]
pub struct SharedWork {
    /// Set when the work is shared through the lease (else this process does it alone).
    settings: OnceLock<LeaseSettings>,
    /// Until when the lease is surely this node's (by this process's monotonic clock).
    held_until: Mutex<Option<Instant>>,
    /// The lease's epoch when this node last held it (0: never).
    epoch: AtomicI64,
    changed: Notify,
}

impl SharedWork {
    /// Whether this process does the shared work now.
    pub fn here(&self) -> bool {
        self.settings.get().is_none() || self.held_until().is_some_and(|until| Instant::now() < until)
    }

    /// `Some(held)` when the work is shared through the lease.
    pub fn lease_held(&self) -> Option<bool> {
        self.settings.get().map(|_| self.here())
    }

    /// The lease this node holds or stood by for: its settings and the epoch it last held.
    pub fn lease(&self) -> Option<(&LeaseSettings, i64)> {
        self.settings.get().map(|settings| (settings, self.epoch.load(Ordering::SeqCst)))
    }

    fn held_until(&self) -> Option<Instant> {
        *self.held_until.lock().expect("not poisoned")
    }

    fn set_held_until(&self, until: Option<Instant>) {
        let was = self.here();
        *self.held_until.lock().expect("not poisoned") = until;
        if self.here() != was {
            self.changed.notify_waiters();
        }
        crate::metrics::work_lease(self.here());
    }
}

impl Embedded {
    /// Shares the work that answers no request with the other nodes on this database,
    /// through the lease; once, before the workers start.
    pub fn share_work_through_lease(&self, settings: LeaseSettings) {
        self.shared_work.settings.set(settings).ok();
        crate::metrics::work_lease(false);
    }

    /// Waits until this process may do the shared work (or shutdown); true when it may.
    pub(super) async fn wait_for_shared_work(&self, shutdown: &mut Shutdown) -> bool {
        while !self.shared_work.here() {
            tokio::select! {
                () = self.shared_work.changed.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.wait() => return false,
            }
        }
        !shutdown.is_set()
    }

    /// The lease worker's loop, until shutdown: takes the lease when it is free or expired,
    /// and renews it while held.
    pub(super) async fn run_lease(self: Arc<Self>, heartbeat: Heartbeat, mut shutdown: Shutdown) {
        let Some(settings) = self.shared_work.settings.get().cloned() else { return };
        let ttl = i64::try_from(settings.ttl.as_millis()).unwrap_or(i64::MAX);
        // Whether this node held the lease at its last claim (its validity may have run out
        // since, while the process was paused).
        let mut held = false;
        while !shutdown.is_set() {
            heartbeat.beat();
            let asked = Instant::now();
            match self.store.claim_lease(WORK, &settings.node, ttl).await {
                Ok(Some(lease)) => {
                    let previous = self.shared_work.epoch.swap(lease.epoch, Ordering::SeqCst);
                    if !held || !self.shared_work.here() || previous != lease.epoch {
                        tracing::info!(node = %settings.node, epoch = lease.epoch, "this node holds the work lease: it runs timers, the outbox, deliveries, schedules, digests and anchors");
                        crate::metrics::work_lease_taken();
                    }
                    self.shared_work.set_held_until(Some(asked + settings.surely_held_for()));
                    held = true;
                }
                Ok(None) => {
                    if held {
                        tracing::warn!(node = %settings.node, "another node holds the work lease now; this node stands by");
                    }
                    self.shared_work.set_held_until(None);
                    held = false;
                }
                // Held, it runs out by itself unless a renewal gets through in time.
                Err(error) => tracing::warn!(node = %settings.node, %error, "could not renew or take the work lease"),
            }
            tokio::select! {
                () = tokio::time::sleep(settings.renew_every()) => {}
                () = shutdown.wait() => {}
            }
        }
    }

    /// Gives the lease up once the workers have stopped, so a standby takes over at once.
    pub(super) async fn release_lease(&self) {
        let Some((settings, _)) = self.shared_work.lease() else { return };
        if !self.shared_work.here() {
            return;
        }
        self.shared_work.set_held_until(None);
        match self.store.release_lease(WORK, &settings.node).await {
            Ok(()) => tracing::info!(node = %settings.node, "gave up the work lease"),
            Err(error) => tracing::warn!(%error, "could not give up the work lease; it expires by itself"),
        }
    }
}
