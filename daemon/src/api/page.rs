//! Paging of every list the API returns, and bounds on numeric query parameters.
//!
//! Lists are read one page at a time (`?page=1&per_page=50`, at most [`MAX_PER_PAGE`] items
//! and [`MAX_PAGE`] pages deep), so no request holds a whole table in memory however many
//! rows there are. Numbers are taken as text and parsed here, so a value out of range is a
//! 400 that names the parameter instead of a panic further down.

use axum::http::StatusCode;

use super::problem::Problem;
use super::views::Paged;
use crate::store::{Slice, Total};

/// The most items one page carries.
pub const MAX_PER_PAGE: u64 = 500;
/// The deepest page: 500 × 100,000 items is further than any list reaches; deeper offsets
/// only make the database skip rows for nothing.
pub const MAX_PAGE: u64 = 100_000;
const DEFAULT_PER_PAGE: u64 = 50;

/// Parses the query parameter `name` as a whole number from `min` to `max`.
pub fn bounded(name: &str, text: Option<&str>, default: u64, min: u64, max: u64) -> Result<u64, Problem> {
    let Some(text) = text else { return Ok(default) };
    text.trim().parse::<u64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
        Problem::field(StatusCode::BAD_REQUEST, name, format!("`{text}`: {name} is a whole number from {min} to {max}"))
    })
}

/// Which page of a list to return.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    pub number: u64,
    pub size: u64,
}

impl Page {
    pub fn parse(page: Option<&str>, per_page: Option<&str>) -> Result<Page, Problem> {
        Ok(Page {
            number: bounded("page", page, 1, 1, MAX_PAGE)?,
            size: bounded("per_page", per_page, DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)?,
        })
    }

    /// Rows to skip before this page.
    pub fn offset(self) -> u64 {
        (self.number - 1) * self.size
    }

    /// The rows of this page, for the store.
    pub fn slice(self) -> Slice {
        Slice { offset: self.offset(), limit: self.size }
    }

    /// The list document: `{"items", "page", "per_page", "total", "total_exact"}`.
    pub fn body<T: utoipa::ToSchema>(self, items: Vec<T>, total: Total) -> Paged<T> {
        Paged { items, page: self.number, per_page: self.size, total: total.count, total_exact: total.exact }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_out_of_range_name_their_parameter() {
        assert_eq!(Page::parse(None, None).unwrap().offset(), 0);
        assert_eq!(Page::parse(Some("3"), Some("20")).unwrap().offset(), 40);
        for (page, per_page, field) in [
            (Some("9223372036854775809"), None, "page"),
            (Some("0"), None, "page"),
            (Some("-1"), None, "page"),
            (Some("x"), None, "page"),
            (None, Some("501"), "per_page"),
            (None, Some("0"), "per_page"),
        ] {
            let problem = Page::parse(page, per_page).unwrap_err();
            assert_eq!((problem.status, problem.field.as_deref()), (StatusCode::BAD_REQUEST, Some(field)));
        }
    }
}
