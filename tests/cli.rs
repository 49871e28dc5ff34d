//! Black-box tests of the `statflow` binary's calendar and definitions commands.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

fn statflow(args: &[&str], calendar_dir: &PathBuf) -> Output {
    Command::new(env!("CARGO_BIN_EXE_statflow"))
        .args(args)
        .env("STATFLOW_CALENDAR_DIR", calendar_dir)
        .output()
        .expect("the binary runs")
}

/// A fresh empty folder for one test.
fn scratch() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "statflow-cli-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[test]
fn is_workday_names_the_reason() {
    let dir = scratch();
    let out = statflow(&["calendar", "is-workday", "2026-02-14"], &dir);
    assert!(out.status.success());
    assert_eq!(stdout(&out), "workday\nadjusted working day (春节)\n");
    let out = statflow(&["calendar", "is-workday", "2026-10-05"], &dir);
    assert_eq!(stdout(&out), "off\nstatutory holiday (国庆节)\n");
}

#[test]
fn add_prints_the_last_day_and_marks_provisional_results() {
    let dir = scratch();
    assert_eq!(stdout(&statflow(&["calendar", "add", "2026-02-13", "3"], &dir)), "2026-02-25\n");
    assert_eq!(stdout(&statflow(&["calendar", "add", "2024-02-29", "--years", "1"], &dir)), "2025-02-28\n");
    assert_eq!(stdout(&statflow(&["calendar", "add", "2026-09-01", "--months", "1"], &dir)), "2026-10-08\n");
    assert_eq!(stdout(&statflow(&["calendar", "add", "2026-09-25", "--days", "6"], &dir)), "2026-10-08\n");
    assert_eq!(stdout(&statflow(&["calendar", "add", "2026-12-29", "3"], &dir)), "2027-01-01\nprovisional\n");
}

#[test]
fn bad_arguments_get_one_line_and_exit_code_2() {
    let dir = scratch();
    for (args, message) in [
        (vec!["calendar", "add", "2026-02-30", "3"], "statflow: DATE: `2026-02-30` is not a date in YYYY-MM-DD form\n"),
        (
            vec!["calendar", "add", "2026-02-13", "three"],
            "statflow: N: `three` is not a whole number from 0 to 100000\n",
        ),
        (
            vec!["calendar", "add", "2026-02-13", "--months", "-1"],
            "statflow: --months: `-1` is not a whole number from 0 to 100000\n",
        ),
        (
            vec!["calendar", "is-workday", "14/02/2026"],
            "statflow: DATE: `14/02/2026` is not a date in YYYY-MM-DD form\n",
        ),
        (vec!["calendar", "show", "20x6"], "statflow: YEAR: `20x6` is not a year from 1900 to 2200\n"),
    ] {
        let out = statflow(&args, &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), message, "{args:?}");
    }
}

#[test]
fn importing_a_notice_makes_its_year_certain() {
    let dir = scratch();
    let file = dir.join("2027.json");
    std::fs::write(&file, include_str!("fixtures/2027.json")).unwrap();
    let calendars = dir.join("calendars");
    let out = statflow(&["calendar", "import", "--local", file.to_str().unwrap()], &calendars);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "imported 2027: 33 days listed, 248 working days in the year\n");
    assert_eq!(stdout(&statflow(&["calendar", "add", "2026-12-29", "3"], &calendars)), "2027-01-04\n");
    let shown = stdout(&statflow(&["calendar", "show", "2027"], &calendars));
    assert!(
        shown.starts_with("2027: 248 working days; notice: 测试用通知(非官方)\n2027-01-01\t元旦\toff\n"),
        "{shown}"
    );
    // A second import of the year is a correction: refused without its reason.
    let out = statflow(&["calendar", "import", "--local", file.to_str().unwrap()], &calendars);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the 2027 notice is already loaded"), "{}", stderr(&out));
    let out = statflow(&["calendar", "import", "--local", file.to_str().unwrap(), "--replace", "重新核对"], &calendars);
    assert_eq!(stdout(&out), "corrected 2027: 33 days listed, 248 working days in the year\n");
    let kept = std::fs::read_to_string(calendars.join("2027.tsv")).unwrap();
    assert!(kept.contains("# correction: 重新核对\n"), "{kept}");
    // A one-day notice is not plausible, even as a correction.
    let one_day = dir.join("2026.tsv");
    std::fs::write(&one_day, "# 2026: forged\n2026-10-01\t国庆节\toff\n").unwrap();
    let out = statflow(&["calendar", "import", "--local", one_day.to_str().unwrap(), "--replace", "x"], &calendars);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("the 2026 notice is implausible"), "{}", stderr(&out));
    assert_eq!(stdout(&statflow(&["calendar", "is-workday", "2026-10-07"], &calendars)).lines().next(), Some("off"));
    let out = statflow(&["calendar", "show", "2028"], &calendars);
    assert_eq!(stdout(&out), "2028: no notice loaded; 260 working days by the weekend rule (provisional)\n");
}

#[test]
fn a_malformed_notice_is_refused_and_nothing_is_written() {
    let dir = scratch();
    let file = dir.join("bad.tsv");
    std::fs::write(&file, "# 2027: s\n2027-01-01\t元旦\toff\n2027-02-31\t春节\toff\n").unwrap();
    let calendars = dir.join("calendars");
    let out = statflow(&["calendar", "import", "--local", file.to_str().unwrap()], &calendars);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("statflow: {}: line 3: `2027-02-31` is not a date in YYYY-MM-DD form\n", file.display())
    );
    assert!(!calendars.exists());
}

#[test]
fn definitions_validate_accepts_the_library_and_reports_file_and_line() {
    let dir = scratch();
    let out = statflow(&["definitions", "validate"], &dir);
    assert!(out.status.success(), "{}", stdout(&out));
    let broken = dir.join("broken.toml");
    let library_file = include_str!("../workflows/procedures/registration.taian.toml");
    // A copy for another jurisdiction whose deadline lost its legal basis.
    let text = library_file.replace("jurisdiction = \"taian\"", "jurisdiction = \"elsewhere\"").replacen(
        "working_days = 3\nlimit = \"statutory\"\nbasis = \"taian 第九条第(二)项\"\n",
        "working_days = 3\nlimit = \"statutory\"\n",
        1,
    );
    std::fs::write(&broken, &text).unwrap();
    let line = text.lines().position(|l| l == "[steps.acceptance]").unwrap() + 1;
    let out = statflow(&["definitions", "validate", broken.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("{}:{line}: the deadline of step `acceptance` has no legal basis: add `basis = \"<source> <article>\"` naming the article that sets the limit\n", broken.display())
    );
    assert_eq!(stderr(&out), "statflow: 1 problems found\n");

    // A limit that does not say whether its number is the article's or the agency's.
    let unclassified = library_file.replace("jurisdiction = \"taian\"", "jurisdiction = \"elsewhere\"").replacen(
        "working_days = 3\nlimit = \"statutory\"\n",
        "working_days = 3\n",
        1,
    );
    std::fs::write(&broken, &unclassified).unwrap();
    let out = statflow(&["definitions", "validate", broken.to_str().unwrap()], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(&format!(
            "{}:{line}: the deadline of step `acceptance` does not say what its number is",
            broken.display()
        )),
        "{}",
        stdout(&out)
    );
}

#[test]
fn definitions_graph_draws_a_mermaid_state_diagram() {
    let dir = scratch();
    let out = statflow(&["definitions", "graph", "registration"], &dir);
    assert!(out.status.success());
    let diagram = stdout(&out);
    assert!(diagram.contains("stateDiagram-v2\n    [*] --> acceptance\n"), "{diagram}");
    assert!(diagram.contains("    acceptance --> substantive_review: accept\n"), "{diagram}");
    assert!(diagram.contains("    publicity --> rights_confirmation: period ends\n"), "{diagram}");
    assert!(diagram.contains("    registered --> [*]\n"), "{diagram}");
    let out = statflow(&["definitions", "graph", "nonexistent"], &dir);
    assert_eq!(
        (out.status.code(), stderr(&out).as_str()),
        (Some(2), "statflow: ID: no built-in procedure `nonexistent`\n")
    );
}

#[test]
fn definitions_validate_reports_every_problem_of_a_set_of_broken_files() {
    let dir = scratch();
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/broken-definitions");
    let out = statflow(&["definitions", "validate", folder], &dir);
    assert_eq!(out.status.code(), Some(1));
    let expected = [
        "missing-deadline.toml:12: step `review` waits but has no time limit: add [steps.review.deadline] with its legal basis, or `no_deadline = \"why there is none\"`",
        "syntax-error.toml:3: invalid basic string, expected `\"`",
        "unknown-references.toml:14: unknown role `reviewer`; the roles of this procedure are clerk",
        "unknown-references.toml:18: legal basis `regulation 第三条` cites source `regulation`, which [sources] does not declare",
        "unknown-references.toml:22: action `approve` goes to step `finished`, which is not defined under [steps]",
        "unreachable-step.toml:21: step `forgotten` cannot be reached from the initial step `review`",
    ];
    let expected: String = expected.iter().map(|line| format!("{folder}/{line}\n")).collect();
    assert_eq!(stdout(&out), expected);
    assert_eq!(stderr(&out), "statflow: 6 problems found\n");
}

#[test]
fn docs_legal_basis_is_the_traceability_matrix_of_the_library() {
    let dir = scratch();
    let out = statflow(&["definitions", "basis"], &dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/legal-basis.md")).unwrap();
    assert!(
        stdout(&out) == committed,
        "docs/legal-basis.md is stale: regenerate it with `statflow definitions basis > docs/legal-basis.md`"
    );
    let taian = stdout(&statflow(&["definitions", "basis", "--jurisdiction", "taian"], &dir));
    assert!(taian.contains("《泰安市公共数据开发利用管理办法(试行)》") && !taian.contains("天津"), "{taian}");
    let out = statflow(&["definitions", "basis", "--jurisdiction", "beijing"], &dir);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--jurisdiction: no procedures for `beijing`"));
}

#[test]
fn engine_settings_that_cannot_work_get_one_line_and_exit_code_2() {
    let dir = scratch();
    let db = format!("sqlite://{}/statflow.db?mode=rwc", dir.display());
    let config = dir.join("statflow.toml");
    std::fs::write(&config, "engine = \"temporal\"\n[temporal]\nadress = \"127.0.0.1:7233\"\n").unwrap();
    let config = config.display().to_string();
    for (args, message) in [
        (
            vec!["serve", "--db", &db, "--engine", "temporal"],
            "statflow: --engine temporal needs --temporal-address HOST:PORT (or `address` under [temporal])\n",
        ),
        (vec!["serve", "--db", &db, "--engine", "cluster"], "statflow: --engine: `cluster` must be embedded or temporal\n"),
        (
            vec!["serve", "--db", &db, "--no-worker"],
            "statflow: --no-worker: only with --engine temporal (the embedded engine runs its own instances)\n",
        ),
        (
            vec!["serve", "--db", &db, "--engine", "temporal", "--temporal-address", "127.0.0.1:7233", "--task-queue", "a b"],
            "statflow: --task-queue: `a b` must be 1 to 200 characters, no spaces\n",
        ),
        (
            vec!["worker", "--db", &db],
            "statflow: a worker runs Temporal workflows: give --engine temporal and --temporal-address HOST:PORT\n",
        ),
        (
            vec!["worker", "--db", &db, "--engine", "temporal", "--temporal-address", "127.0.0.1:7233"],
            "statflow: --db: a SQLite database belongs to one process; a worker of its own needs PostgreSQL (or run the worker inside `serve`, without --no-worker)\n",
        ),
    ] {
        let out = statflow(&args, &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), message, "{args:?}");
    }
    // A key the `[temporal]` section does not have is named with its file and line.
    let out = statflow(&["serve", "--db", &db, "--config", &config], &dir);
    assert_eq!(out.status.code(), Some(2));
    let said = stderr(&out);
    assert!(said.starts_with(&format!("statflow: --config: {config}:3: unknown field `adress`")), "{said}");
}
