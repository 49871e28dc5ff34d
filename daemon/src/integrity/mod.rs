//! Tamper evidence: checking instances against their history, the ledger and the anchors,
//! and flagging what fails. It reads the store and replays with the pure interpreter, so
//! `statflow verify` needs no running engine, and the history page reports the same checks.
//!
//! - [`checks`]: the four checks of one instance (chain, head, ledger, replay).
//! - [`anchors`]: the anchoring key, signing anchors and the append-only anchor file.
//! - [`verify`]: verifying one instance or the whole store in bounded memory.
//!
//! A failed check flags the instance (`instances.flagged`): it refuses further actions and
//! is listed for administrators, who can read and export its history as stored.

pub mod anchors;
pub mod checks;
pub mod verify;
