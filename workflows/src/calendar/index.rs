//! Constant-time-ish working-day arithmetic: a prefix count of working days over the span the
//! loaded notices touch, with the plain Monday–Friday rule in closed form on either side.
//!
//! Every day has a *rank*: the number of working days strictly before it. Adding N working
//! days is then "find the day of rank r + N", a binary search in the table or a division
//! outside it, so the cost does not grow with N.

/// Days since the Common Era's day 1 (0001-01-01, a Monday), as chrono counts them.
pub type DayNumber = i32;

/// Weekdays in [0001-01-01, n): the plain rule without any notice.
fn plain_rank(n: DayNumber) -> i64 {
    let m = i64::from(n) - 1;
    m.div_euclid(7) * 5 + m.rem_euclid(7).min(5)
}

/// The weekday whose plain rank is k.
fn plain_nth(k: i64) -> DayNumber {
    (1 + k.div_euclid(5) * 7 + k.rem_euclid(5)) as DayNumber
}

#[derive(Clone, Debug)]
pub struct WorkdayIndex {
    first: DayNumber,
    /// cumulative[i] = working days in [first, first + i); one longer than the span.
    cumulative: Vec<u32>,
    /// Rank of `first`, equal to its plain rank.
    base: i64,
    /// How far the table's count drifts from the plain rule by its end.
    delta_end: i64,
}

impl WorkdayIndex {
    /// Builds the index over [first, end) with `is_workday` deciding each day in the span.
    pub fn build(first: DayNumber, end: DayNumber, is_workday: impl Fn(DayNumber) -> bool) -> Self {
        let mut cumulative = Vec::with_capacity((end - first) as usize + 1);
        let mut count = 0u32;
        cumulative.push(0);
        for n in first..end {
            count += u32::from(is_workday(n));
            cumulative.push(count);
        }
        let base = plain_rank(first);
        let delta_end = i64::from(count) - (plain_rank(end) - base);
        WorkdayIndex { first, cumulative, base, delta_end }
    }

    fn end(&self) -> DayNumber {
        self.first + (self.cumulative.len() as DayNumber - 1)
    }

    /// Working days strictly before day n.
    pub fn rank(&self, n: DayNumber) -> i64 {
        if n <= self.first {
            plain_rank(n)
        } else if n >= self.end() {
            plain_rank(n) + self.delta_end
        } else {
            self.base + i64::from(self.cumulative[(n - self.first) as usize])
        }
    }

    /// The working day of rank k (the (k+1)-th working day counted from day 1).
    pub fn nth(&self, k: i64) -> DayNumber {
        let total = i64::from(*self.cumulative.last().expect("never empty"));
        if k < self.base {
            plain_nth(k)
        } else if k >= self.base + total {
            plain_nth(k - self.delta_end)
        } else {
            let within = (k - self.base) as u32;
            // The first i whose prefix count exceeds `within` ends at the day we want.
            let i = self.cumulative.partition_point(|&c| c <= within) - 1;
            self.first + i as DayNumber
        }
    }

    pub fn is_workday(&self, n: DayNumber) -> bool {
        self.rank(n + 1) > self.rank(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_rank_and_nth_are_inverse_on_weekdays() {
        for k in 0..2000 {
            let n = plain_nth(k);
            assert_eq!(plain_rank(n), k);
            assert!((n - 1).rem_euclid(7) < 5, "day {n} is a weekend");
        }
    }

    #[test]
    fn table_and_plain_rule_agree_when_no_exceptions() {
        let weekday = |n: DayNumber| (n - 1).rem_euclid(7) < 5;
        let idx = WorkdayIndex::build(1000, 1100, weekday);
        for n in 900..1200 {
            assert_eq!(idx.rank(n), plain_rank(n), "rank of {n}");
            assert_eq!(idx.is_workday(n), weekday(n));
        }
    }

    #[test]
    fn nth_inverts_rank_across_the_table_edges() {
        // Day 1050 off, day 1055 (a Saturday-ish day) worked: ranks shift inside and after.
        let rule = |n: DayNumber| {
            if n == 1050 {
                false
            } else if n == 1055 {
                true
            } else {
                (n - 1).rem_euclid(7) < 5
            }
        };
        let idx = WorkdayIndex::build(1000, 1100, rule);
        for n in 900..1200 {
            assert_eq!(idx.is_workday(n), rule(n), "day {n}");
            if idx.is_workday(n) {
                assert_eq!(idx.nth(idx.rank(n)), n, "nth(rank({n}))");
            }
        }
    }
}
