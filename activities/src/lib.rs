//! Side effects of statflow procedures, performed after the transition that asked for them
//! has committed. Every effect is idempotent by its key: a message sent twice after a crash
//! carries the same `Message-ID`, a webhook the same delivery id.
//!
//! - [`templates`]: the Chinese messages, built in and overridable by administrators.
//! - [`email`]: SMTP delivery with lettre, or a local mail spool when no server is set up.
//! - [`webhook`]: a JSON event POSTed with an HMAC-SHA256 signature.

pub mod email;
pub mod templates;
pub mod webhook;

pub use statflow_workflows::engine::Activity;

/// Why an effect did not happen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Failure {
    /// Retrying cannot help (a bad address, a refused request); the failure is recorded and
    /// reported instead.
    pub permanent: bool,
    pub reason: String,
}

impl Failure {
    pub fn transient(reason: impl Into<String>) -> Failure {
        Failure { permanent: false, reason: reason.into() }
    }

    pub fn permanent(reason: impl Into<String>) -> Failure {
        Failure { permanent: true, reason: reason.into() }
    }
}

/// A stable hexadecimal digest of an idempotency key.
pub fn key_digest(key: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
}
