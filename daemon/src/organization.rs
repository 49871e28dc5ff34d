//! Organization ids: the one character set every entry point accepts (token creation, the
//! directory, an instance's input). An instance's organizations are stored one row each and
//! matched by equality (see the store's scope), so no id can act as a pattern; `%` and `,`
//! are refused all the same, as they never name an organization.

/// At most this many characters.
pub const MAX_LEN: usize = 64;

/// The documented character set, for messages and docs.
pub const RULE: &str = "1 to 64 characters: ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit";

/// Why `id` is not an organization id, if it is not.
pub fn check(id: &str) -> Result<(), String> {
    let mut chars = id.chars();
    let valid = id.len() <= MAX_LEN
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        let shown: String = id.chars().take(MAX_LEN + 1).collect();
        Err(format!("`{shown}` is not an organization id ({RULE})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["taian-registry", "op_9", "a", "ta.bureau", &"x".repeat(64)] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["", "%", "a%", "a,b", "-a", "_", "锦州", "a b", &"x".repeat(65)] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
