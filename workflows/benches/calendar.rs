//! Calendar throughput: "add N working days" for N = 1..=250 and is-workday lookups over the
//! embedded 2019–2026 calendar and the provisional years around it. Prints operations per
//! second; the target on a 2-core machine is ≥ 5 million additions per second.
//!
//! Run with `cargo bench -p statflow-workflows --bench calendar`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use statflow_workflows::calendar::Calendar;

const ROUNDS: u32 = 5;

fn main() {
    let calendar = Calendar::official();
    let first = NaiveDate::from_ymd_opt(2018, 6, 1).unwrap();
    let starts: Vec<NaiveDate> = (0..3500u64).map(|i| first + Days::new(i)).collect();

    let mut best_add = 0.0f64;
    let mut best_lookup = 0.0f64;
    for _ in 0..ROUNDS {
        let began = Instant::now();
        let mut ops = 0u64;
        for start in &starts {
            for n in 1..=250 {
                black_box(calendar.add_working_days(black_box(*start), black_box(n)));
                ops += 1;
            }
        }
        best_add = best_add.max(ops as f64 / began.elapsed().as_secs_f64());

        let began = Instant::now();
        let mut ops = 0u64;
        for _ in 0..100 {
            for day in &starts {
                black_box(calendar.is_workday(black_box(*day)));
                ops += 1;
            }
        }
        best_lookup = best_lookup.max(ops as f64 / began.elapsed().as_secs_f64());
    }
    println!("add_working_days (N = 1..=250, 2018-06..2027-12 starts): {:>12.0} ops/s", best_add);
    println!("is_workday:                                              {:>12.0} ops/s", best_lookup);
    println!("target: add_working_days >= 5000000 ops/s -> {}", if best_add >= 5e6 { "met" } else { "NOT MET" });
}
