//! Organization ids: the one character set every entry point accepts (token creation, the
//! directory, an instance's input), and the exact-match filter that scopes a query to one
//! organization.
//!
//! An instance stores the organizations it involves as `,a,b,` so one indexed column answers
//! "does it involve X". Matching uses SQL LIKE, whose wildcards (`_`, `%`) must never act:
//! ids may contain `_`, so the pattern is escaped, and `%` and `,` are not allowed at all.

use sea_orm::sea_query::{Expr, ExprTrait, LikeExpr};
use sea_orm::{ColumnTrait, Condition};

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

/// Rows of `column` (an `,a,b,` list) that involve exactly `organization`.
pub fn involves(column: impl ColumnTrait, organization: &str) -> Condition {
    let escaped: String = organization
        .chars()
        .flat_map(|c| match c {
            '\\' | '%' | '_' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Condition::all().add(column.like(LikeExpr::new(format!("%,{escaped},%")).escape('\\')))
}

/// Rows that involve any of `organizations` (none: no rows, said outright rather than left to
/// how an empty OR renders).
pub fn involves_any(column: impl ColumnTrait + Copy, organizations: &[String]) -> Condition {
    if organizations.is_empty() {
        return Condition::all().add(Expr::val(1).eq(0));
    }
    organizations.iter().fold(Condition::any(), |any, org| any.add(involves(column, org)))
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
