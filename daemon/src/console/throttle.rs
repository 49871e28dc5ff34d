//! Sign-in throttling: after a few wrong passwords in a row a name is locked for a while,
//! the lock doubling with each further failure, so guessing a password takes years while a
//! person who mistyped waits seconds. Kept in memory: a restart forgets the counts, which
//! costs an attacker a restart of the daemon per handful of guesses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords allowed in a row before the first lock.
const FREE_FAILURES: u32 = 5;
const FIRST_LOCK: Duration = Duration::from_secs(30);
const LONGEST_LOCK: Duration = Duration::from_secs(15 * 60);
/// Names tracked at once; beyond it the entries whose lock ran out longest ago go first.
const TRACKED: usize = 10_000;

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

impl Throttle {
    /// How long `name` must still wait before trying again, if it is locked.
    pub fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().expect("not poisoned");
        failures
            .get(&key(name))?
            .locked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Records a wrong password (or an unknown name: both look the same from outside).
    pub fn failed(&self, name: &str, now: Instant) {
        let mut failures = self.failures.lock().expect("not poisoned");
        if failures.len() >= TRACKED {
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        let entry = failures.entry(key(name)).or_insert(Failures { count: 0, locked_until: None });
        entry.count += 1;
        if entry.count >= FREE_FAILURES {
            let doublings = (entry.count - FREE_FAILURES).min(16);
            entry.locked_until = Some(now + (FIRST_LOCK * 2u32.pow(doublings)).min(LONGEST_LOCK));
        }
    }

    /// A correct password clears the name's failures.
    pub fn succeeded(&self, name: &str) {
        self.failures.lock().expect("not poisoned").remove(&key(name));
    }
}

fn key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_wrong_password_locks_the_name_and_each_further_one_doubles_the_lock() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..4 {
            throttle.failed("Alice", start);
        }
        assert_eq!(throttle.wait("alice", start), None, "four mistakes are forgiven");
        throttle.failed("alice", start);
        assert_eq!(throttle.wait("ALICE", start), Some(FIRST_LOCK));
        throttle.failed("alice", start);
        assert_eq!(throttle.wait("alice", start), Some(FIRST_LOCK * 2));
        assert_eq!(throttle.wait("alice", start + FIRST_LOCK * 2), None, "the lock runs out");
        assert_eq!(throttle.wait("bob", start), None, "other names are not affected");
        throttle.succeeded("alice");
        assert_eq!(throttle.wait("alice", start), None);
    }

    #[test]
    fn the_lock_never_exceeds_the_longest() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..40 {
            throttle.failed("mallory", start);
        }
        assert_eq!(throttle.wait("mallory", start), Some(LONGEST_LOCK));
    }
}
