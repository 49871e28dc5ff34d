//! Console passwords: argon2id with a fresh salt each, in the PHC string format (algorithm,
//! parameters, salt and hash in one stored text), so parameters can be raised later without
//! breaking stored hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted; long passphrases are encouraged, not required.
pub const MIN_LENGTH: usize = 10;
/// Longer input is refused before hashing, so nobody can make the server hash megabytes.
pub const MAX_LENGTH: usize = 256;

/// Why a new password is refused.
pub fn check(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!("a password has at least {MIN_LENGTH} characters (this one has {length})"));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!("a password has at most {MAX_LENGTH} bytes"));
    }
    Ok(())
}

pub fn hash(password: &str) -> Result<String, String> {
    // 16 bytes of salt from the operating system, as the PHC format recommends.
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?, &mut bytes)
        .map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| e.to_string())?;
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches `stored`; a stored text that is not a hash matches nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    PasswordHash::new(stored)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash of a password nobody knows, verified against when the name is unknown, so that an
/// unknown name takes as long to refuse as a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("statflow decoy password").expect("hashing works"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse battery", &stored));
        assert!(!verify("correct horse batterY", &stored));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(hash("correct horse battery").unwrap(), stored, "each hash has its own salt");
    }

    #[test]
    fn short_and_huge_passwords_are_refused_with_the_reason() {
        assert!(check("short").unwrap_err().contains("at least 10"));
        assert!(check(&"x".repeat(300)).unwrap_err().contains("at most 256"));
        assert!(check("a fine passphrase").is_ok());
    }
}
