//! `statflow calendar`: is-workday, add, import, show.
//!
//! `import` gives a year's notice to the running daemon (`--server`, `--token`), which keeps
//! calendars in its database and recomputes running deadlines at once: the daemon's calendar
//! is the one that counts. With `--local` the notice goes instead into the calendar directory
//! (`--calendar-dir`, `STATFLOW_CALENDAR_DIR`, default `./statflow-calendars`), which the other
//! calendar commands load on top of the embedded 2019–2026 notices to try out dates offline.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use statflow_workflows::calendar::{parse_any, Calendar, Computed};

use super::Failure;

#[derive(Args)]
pub struct CalendarDir {
    /// Where imported notices are kept.
    #[arg(long, env = "STATFLOW_CALENDAR_DIR", default_value = "statflow-calendars", global = true)]
    calendar_dir: PathBuf,
}

#[derive(Subcommand)]
pub enum CalendarCommand {
    /// Prints `workday` or `off`, then the reason.
    IsWorkday {
        date: String,
        #[command(flatten)]
        dir: CalendarDir,
    },
    /// Prints the last day of a limit from DATE: N working days by default, or --days,
    /// --months, --years. The start day is not counted.
    #[command(allow_negative_numbers = true)]
    Add {
        date: String,
        /// Working days.
        working_days: Option<String>,
        #[arg(long, conflicts_with_all = ["working_days", "months", "years"])]
        days: Option<String>,
        #[arg(long, conflicts_with_all = ["working_days", "days", "years"])]
        months: Option<String>,
        #[arg(long, conflicts_with_all = ["working_days", "days", "months"])]
        years: Option<String>,
        #[command(flatten)]
        dir: CalendarDir,
    },
    /// Imports a year's notice (TSV or holiday-cn JSON) into the running daemon, whose
    /// deadlines follow it at once; `--local` keeps it in the calendar directory instead, for
    /// the calendar commands only. A year that already has a notice is replaced only as a
    /// correction: `--replace REASON`.
    Import {
        file: PathBuf,
        /// Why an already loaded notice is replaced (a correction); recorded with the year.
        #[arg(long, value_name = "REASON")]
        replace: Option<String>,
        /// Into the calendar directory for offline use; no daemon sees it.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        dir: CalendarDir,
        #[command(flatten)]
        server: super::client::Server,
    },
    /// Prints a year's notice: its sources, exceptions and working-day count.
    Show {
        year: String,
        #[command(flatten)]
        dir: CalendarDir,
    },
}

fn parse_date(text: &str, argument: &str) -> Result<NaiveDate, Failure> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| Failure::usage(format!("{argument}: `{text}` is not a date in YYYY-MM-DD form")))
}

fn parse_count(text: &str, argument: &str) -> Result<u32, Failure> {
    text.parse::<u32>()
        .ok()
        .filter(|n| *n <= 100_000)
        .ok_or_else(|| Failure::usage(format!("{argument}: `{text}` is not a whole number from 0 to 100000")))
}

/// The embedded notices plus every notice imported into `dir`.
pub fn load(dir: &Path) -> Result<Calendar, Failure> {
    let mut calendar = Calendar::official();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(calendar) };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .collect();
    files.sort();
    for file in files {
        let origin = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| Failure::invalid(format!("{origin}: {e}")))?;
        for notice in parse_any(&text, &origin).map_err(|e| Failure::invalid(e.to_string()))? {
            calendar.import(notice, &origin).map_err(|e| Failure::invalid(e.to_string()))?;
        }
    }
    Ok(calendar)
}

/// Gives the notice to the daemon, which checks it like a local import, stores it and
/// recomputes the running deadlines it touches.
fn import_into_daemon(
    server: &super::client::Server,
    file: &Path,
    content: &str,
    correction: Option<&str>,
) -> Result<(), Failure> {
    let origin = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut body = serde_json::json!({"origin": origin, "content": content});
    if let Some(reason) = correction {
        body["replace"] = serde_json::json!(reason);
    }
    let imported = server.call("POST", "/v1/calendars", Some(&body))?;
    let verb = if correction.is_some() { "corrected" } else { "imported" };
    let years: Vec<String> = imported["years"].as_array().into_iter().flatten().map(super::client::text).collect();
    println!(
        "{verb} {} into the daemon (calendar generation {}); {} running instances are being recomputed",
        years.join(", "),
        imported["generation"],
        imported["instances_to_recompute"]
    );
    Ok(())
}

fn print_computed(result: Computed<NaiveDate>) {
    println!("{}", result.value);
    if result.provisional {
        println!("provisional");
    }
}

pub fn run(command: CalendarCommand) -> Result<(), Failure> {
    match command {
        CalendarCommand::IsWorkday { date, dir } => {
            let date = parse_date(&date, "DATE")?;
            let info = load(&dir.calendar_dir)?.day_info(date);
            println!("{}", if info.workday { "workday" } else { "off" });
            println!("{}", info.reason);
            if info.provisional {
                println!("provisional");
            }
        }
        CalendarCommand::Add { date, working_days, days, months, years, dir } => {
            let start = parse_date(&date, "DATE")?;
            let calendar = load(&dir.calendar_dir)?;
            let result = match (working_days, days, months, years) {
                (Some(n), ..) => calendar.add_working_days(start, parse_count(&n, "N")?),
                (_, Some(n), ..) => calendar.add_days(start, parse_count(&n, "--days")?),
                (_, _, Some(n), _) => calendar.add_months(start, parse_count(&n, "--months")?),
                (_, _, _, Some(n)) => calendar.add_years(start, parse_count(&n, "--years")?),
                _ => return Err(Failure::usage("N: give a number of working days, or --days, --months or --years")),
            };
            print_computed(result);
        }
        CalendarCommand::Import { file, replace, local, dir, server } => {
            let correction = match replace.as_deref().map(str::trim) {
                Some("") => return Err(Failure::usage("--replace: give the reason for the correction")),
                other => other,
            };
            let origin = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| Failure::usage(format!("FILE: {origin}: {e}")))?;
            let notices = parse_any(&text, &origin).map_err(|e| Failure::invalid(e.to_string()))?;
            if !local {
                return import_into_daemon(&server, &file, &text, correction);
            }
            // Check against everything loaded before writing anything.
            let mut calendar = load(&dir.calendar_dir)?;
            let mut summaries = Vec::new();
            for notice in &notices {
                summaries.push(
                    calendar
                        .import_checked(notice.clone(), &origin, correction)
                        .map_err(|e| Failure::invalid(e.to_string()))?,
                );
            }
            std::fs::create_dir_all(&dir.calendar_dir)
                .map_err(|e| Failure::invalid(format!("{}: {e}", dir.calendar_dir.display())))?;
            for (notice, summary) in notices.iter().zip(summaries) {
                let target = dir.calendar_dir.join(format!("{}.tsv", notice.year));
                // Write beside, then rename: a crash never leaves a half-written notice.
                let partial = target.with_extension("tsv.partial");
                // A correction keeps its reason in the file, as a comment after the header.
                let mut text = notice.to_tsv();
                if let Some(reason) = correction {
                    let header_end = text.find('\n').map_or(text.len(), |i| i + 1);
                    text.insert_str(header_end, &format!("# correction: {}\n", reason.replace('\n', " ")));
                }
                std::fs::write(&partial, text)
                    .and_then(|()| std::fs::rename(&partial, &target))
                    .map_err(|e| Failure::invalid(format!("{}: {e}", target.display())))?;
                let verb = if summary.replaced { "corrected" } else { "imported" };
                println!(
                    "{verb} {}: {} days listed, {} working days in the year",
                    summary.year, summary.days, summary.working_days_in_year
                );
            }
        }
        CalendarCommand::Show { year, dir } => {
            let year: i32 = year
                .parse()
                .ok()
                .filter(|y| (1900..=2200).contains(y))
                .ok_or_else(|| Failure::usage(format!("YEAR: `{year}` is not a year from 1900 to 2200")))?;
            let calendar = load(&dir.calendar_dir)?;
            let first = NaiveDate::from_ymd_opt(year, 1, 1).expect("valid year");
            let last = NaiveDate::from_ymd_opt(year, 12, 31).expect("valid year");
            let working = calendar.working_days_between(first.pred_opt().expect("valid"), last);
            match calendar.notice(year) {
                Some(notice) => {
                    println!("{year}: {working} working days; notice: {}", notice.sources.join(" "));
                    for day in &notice.days {
                        println!("{}\t{}\t{}", day.date, day.holiday, day.kind.as_str());
                    }
                }
                None => println!("{year}: no notice loaded; {working} working days by the weekend rule (provisional)"),
            }
        }
    }
    Ok(())
}
