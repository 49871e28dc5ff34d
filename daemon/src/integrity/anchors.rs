//! Anchors: the ledger's head as it stood at a day's end, kept where someone who can edit
//! the database cannot follow.
//!
//! Each anchor is stored in the `anchors` table, appended as one JSON line to the anchor
//! file (opened for appending only), mailed to the configured recipients (the regulator),
//! and, when a key file is configured, signed with HMAC-SHA256 under that key. The key is
//! read from its file at start and never stored, logged or shown; anchors name it by a
//! fingerprint (`key_id`), so a rotated key is recognized as another key.
//!
//! Recomputing every hash of the history and the ledger then still disagrees with the
//! anchors: the rewritten ledger's entry at an anchored sequence number has another hash,
//! and a forged anchor needs the key (or the regulator's mailbox).

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::ledger::sha256_hex;
pub use crate::store::ledger::Anchor;

/// A key shorter than this is refused: it could be guessed.
pub const MIN_KEY_BYTES: usize = 32;

/// The anchoring key, read from a file outside the database.
#[derive(Clone)]
pub struct AnchorKey {
    secret: Vec<u8>,
    /// A fingerprint naming the key in anchors; reveals nothing of it.
    pub id: String,
}

impl std::fmt::Debug for AnchorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl AnchorKey {
    /// Reads a key file: its content (surrounding whitespace aside) is the key.
    pub fn read(path: &Path) -> Result<AnchorKey, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let secret = bytes.trim_ascii().to_vec();
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "{}: the key has {} bytes; give at least {MIN_KEY_BYTES} (e.g. `openssl rand -hex 32 > {}`)",
                path.display(),
                secret.len(),
                path.display()
            ));
        }
        let id = sha256_hex(&["statflow/anchor-key", &String::from_utf8_lossy(&secret)])[..16].to_owned();
        Ok(AnchorKey { secret, id })
    }

    fn sign(&self, anchor: &Anchor) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(signed_text(anchor).as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `anchor`'s signature holds under this key: `None` when the anchor is unsigned
    /// or was signed with another key, which this key cannot judge.
    pub fn holds(&self, anchor: &Anchor) -> Option<bool> {
        let signature = anchor.signature.as_ref()?;
        if anchor.key_id.as_deref() != Some(self.id.as_str()) {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(signed_text(anchor).as_bytes());
        let bytes: Vec<u8> = (0..signature.len() / 2)
            .filter_map(|i| signature.get(2 * i..2 * i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect();
        Some(mac.verify_slice(&bytes).is_ok())
    }
}

/// Where anchors go besides the database.
#[derive(Clone, Debug, Default)]
pub struct Anchoring {
    pub key: Option<AnchorKey>,
    /// Appended to at each anchor; never rewritten.
    pub file: Option<PathBuf>,
    /// Addresses (the regulator's) that receive each anchor by mail.
    pub mail_to: Vec<String>,
}

/// Anchors kept in the database only: nothing configured (or nothing a check needs).
pub static NOWHERE: Anchoring = Anchoring { key: None, file: None, mail_to: Vec::new() };

/// An anchor of the head (`seq`, `hash`) at `at`, signed if a key is given.
pub fn take(at: i64, ledger_seq: i64, ledger_hash: String, key: Option<&AnchorKey>) -> Anchor {
    let mut anchor = Anchor { at, ledger_seq, ledger_hash, key_id: None, signature: None };
    if let Some(key) = key {
        anchor.key_id = Some(key.id.clone());
        anchor.signature = Some(key.sign(&anchor));
    }
    anchor
}

/// The text a signature covers (its format is part of every anchor already given out).
fn signed_text(anchor: &Anchor) -> String {
    format!("statflow/anchor/v1\n{}\n{}\n{}\n", anchor.at, anchor.ledger_seq, anchor.ledger_hash)
}

/// Appends `anchor` as one line to `file` and waits until it is on disk.
pub fn append_to_file(file: &Path, anchor: &Anchor) -> Result<(), String> {
    let mut handle = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("anchor file {}: {e}", file.display()))?;
    let line = serde_json::to_string(anchor).expect("anchors serialize");
    writeln!(handle, "{line}")
        .and_then(|()| handle.sync_all())
        .map_err(|e| format!("anchor file {}: {e}", file.display()))
}

/// Reads the anchors of `file`: each line one anchor; a line that is not one is reported
/// with its number.
pub fn read_file(file: &Path) -> Result<Vec<Result<Anchor, String>>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("anchor file {}: {e}", file.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| format!("{}:{}: not an anchor: {e}", file.display(), n + 1))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> AnchorKey {
        let dir = std::env::temp_dir().join(format!("statflow-anchor-key-{}-{}", std::process::id(), text.len()));
        std::fs::write(&dir, text).unwrap();
        let key = AnchorKey::read(&dir);
        std::fs::remove_file(&dir).ok();
        key.unwrap()
    }

    #[test]
    fn a_signature_holds_only_for_the_anchor_it_signed_and_the_key_that_signed_it() {
        let k = key("0123456789abcdef0123456789abcdef");
        let anchor = take(1_700_000_000_000, 42, "ab".repeat(32), Some(&k));
        assert_eq!(k.holds(&anchor), Some(true));
        let mut moved = anchor.clone();
        moved.ledger_seq = 41;
        assert_eq!(k.holds(&moved), Some(false));
        let mut rehashed = anchor.clone();
        rehashed.ledger_hash = "cd".repeat(32);
        assert_eq!(k.holds(&rehashed), Some(false));
        let other = key("fedcba9876543210fedcba9876543210-other");
        assert_eq!(other.holds(&anchor), None, "another key cannot judge it");
        assert_eq!(k.holds(&take(1, 1, "00".into(), None)), None);
    }

    #[test]
    fn a_short_key_is_refused_and_a_key_never_shows_in_debug_output() {
        let dir = std::env::temp_dir().join(format!("statflow-short-key-{}", std::process::id()));
        std::fs::write(&dir, "too short").unwrap();
        let error = AnchorKey::read(&dir).unwrap_err();
        std::fs::remove_file(&dir).ok();
        assert!(error.contains("at least 32"), "{error}");
        let k = key("0123456789abcdef0123456789abcdef-secret");
        assert!(!format!("{k:?}").contains("secret"));
    }
}
