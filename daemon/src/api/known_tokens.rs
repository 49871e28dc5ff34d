//! The bearer tokens this daemon lately found standing, by hash, with whom each names.
//!
//! Reading a request's token costs a trip to a reading connection's thread and back; for a
//! start or an action that was the largest cost of a call after the transaction itself. A
//! token's row never changes while it exists (tokens are created and revoked, never edited),
//! so what a remembered token names is still true as long as the token stands, and whether
//! it stands is checked where it matters: in the transaction that stores the start or the
//! action (`Submission::token`). Only the endpoints whose every change goes through that
//! transaction take their caller from here (`auth::EngineCaller`); every other request reads
//! its token, as before.
//!
//! Only tokens found standing are remembered: an unknown token is read every time. A token
//! the engine finds gone is forgotten.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::records::PrincipalRecord;

/// How many tokens are remembered; when full, all are forgotten and remembered again as they
/// are used (a daemon serves a handful of machine clients, not thousands).
const CAPACITY: usize = 4096;

#[derive(Default)]
pub struct KnownTokens {
    by_hash: Mutex<HashMap<String, PrincipalRecord>>,
}

impl KnownTokens {
    pub fn get(&self, hash: &str) -> Option<PrincipalRecord> {
        self.by_hash.lock().expect("not poisoned").get(hash).cloned()
    }

    pub fn remember(&self, hash: &str, record: &PrincipalRecord) {
        let mut by_hash = self.by_hash.lock().expect("not poisoned");
        if by_hash.len() >= CAPACITY && !by_hash.contains_key(hash) {
            by_hash.clear();
        }
        by_hash.insert(hash.to_owned(), record.clone());
    }

    pub fn forget(&self, hash: &str) {
        self.by_hash.lock().expect("not poisoned").remove(hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::records::Role;

    fn record(name: &str) -> PrincipalRecord {
        PrincipalRecord {
            name: name.into(),
            role: Role::Staff,
            organizations: vec!["taian-registry".into()],
            created_at: 0,
            expires_at: None,
        }
    }

    #[test]
    fn a_token_is_remembered_until_forgotten_and_the_memory_stays_bounded() {
        let known = KnownTokens::default();
        known.remember("a", &record("clerk"));
        assert_eq!(known.get("a").map(|r| r.name), Some("clerk".to_owned()));
        known.forget("a");
        assert!(known.get("a").is_none(), "a forgotten token is read again");

        for n in 0..CAPACITY + 10 {
            known.remember(&n.to_string(), &record("machine"));
        }
        let held = known.by_hash.lock().unwrap().len();
        assert!(held <= CAPACITY, "{held} tokens held");
        assert!(known.get(&(CAPACITY + 9).to_string()).is_some(), "the latest is remembered");
    }
}
