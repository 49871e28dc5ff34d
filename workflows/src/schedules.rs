//! Schedules as data: what a cron schedule starts or does (the spec administrators write),
//! the translation of its cron expression, the fields a run fills into a job's input, and
//! the catalogue of schedules the procedure library comes with
//! (`schedules/built_in.toml`). Running them, with catch-up and run keys, is the engine's.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::calendar::shanghai;

/// What to do with fire times missed while the daemon was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Run the latest missed fire time once; record the others as skipped.
    Once,
    /// Run every missed fire time, oldest first.
    All,
    /// Record every missed fire time as skipped.
    Skip,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Once => "once",
            CatchUp::All => "all",
            CatchUp::Skip => "skip",
        }
    }

    pub fn parse(text: &str) -> Option<CatchUp> {
        [CatchUp::Once, CatchUp::All, CatchUp::Skip].into_iter().find(|c| c.as_str() == text)
    }
}

/// Whom a start job starts an instance for; what each selection takes is defined in the
/// catalogue ([`Catalogue::selection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Every authorized operation of the jurisdiction in its active term (not suspended, not
    /// ended). Fields: `subject.id` and the authorization's data (`subject.operator_org`…).
    ActiveAuthorization,
    /// Every authorized operation of the jurisdiction in its term, its access suspended or
    /// not (not ended): duties that a suspension does not lift (Tai'an art. 23's annual
    /// report). Fields as for `active_authorization`.
    AuthorizationInTerm,
    /// Every data authority with a running authorized operation in the jurisdiction.
    /// Fields: `subject.authority_org`.
    AuthorizingAuthority,
}

impl Selection {
    pub fn name(self) -> &'static str {
        match self {
            Selection::ActiveAuthorization => "active_authorization",
            Selection::AuthorizationInTerm => "authorization_in_term",
            Selection::AuthorizingAuthority => "authorizing_authority",
        }
    }
}

/// What a selection takes: the running instances of `procedure` (in `steps`, if given); with
/// `distinct`, one subject per value of that field instead of one per instance.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionRule {
    pub procedure: String,
    #[serde(default)]
    pub steps: Option<Vec<String>>,
    #[serde(default)]
    pub distinct: Option<String>,
}

/// The default keeping period of records in years, and the least any setting may give where
/// no article sets one.
pub const DEFAULT_RECORDS_YEARS: u32 = 3;

/// What a schedule does when it fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Starts `procedure` of `jurisdiction`, once, or once per subject of `for_each`. String
    /// values of `input` may name fields in braces: `{fire_date}`, `{fire_year}`,
    /// `{previous_year}`, `{previous_half}` (e.g. `2026H2`) and `{subject.FIELD}`; a value
    /// that is exactly one field takes that field's type.
    Start {
        procedure: String,
        jurisdiction: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_each: Option<Selection>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        input: Map<String, Value>,
    },
    /// Removes finished instances (with their history, tasks and effects) older than their
    /// jurisdiction's keeping period: `records_years`, or `jurisdictions.<j>` where given;
    /// never under a statutory minimum (Tianjin-security art. 8: 3 years). Audit entries
    /// follow the longest period.
    RetentionSweep {
        #[serde(default = "default_records_years")]
        records_years: u32,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        jurisdictions: BTreeMap<String, u32>,
    },
    /// Sends each staff member a digest of their open tasks, with what falls due within
    /// `lookahead_working_days` first; on working days of the official calendar only.
    Digest {
        #[serde(default = "default_lookahead")]
        lookahead_working_days: u32,
    },
    /// Anchors the ledger's head outside the database: stored, appended to the anchor file,
    /// signed and mailed as configured.
    AnchorLedger,
}

fn default_records_years() -> u32 {
    DEFAULT_RECORDS_YEARS
}

/// The digest's "falls due soon": within this many working days.
fn default_lookahead() -> u32 {
    2
}

/// The digest's look-ahead is at most this many working days.
pub const DIGEST_LOOKAHEAD_LIMIT: u32 = 20;

/// A schedule as administrators write it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub title: String,
    /// Five fields (`min hour day month weekday`) or the cron crate's six or seven (with
    /// seconds first, and years last).
    pub cron: String,
    pub job: Job,
    pub catch_up: CatchUp,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// Why a schedule was refused, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

impl SpecError {
    pub fn new(field: &'static str, message: impl Into<String>) -> SpecError {
        SpecError { field, message: message.into() }
    }
}

/// A parsed cron expression; fire times are in Asia/Shanghai.
#[derive(Clone, Debug)]
pub struct Cron(cron::Schedule);

/// The names of the five fields, for messages about the expression the user wrote.
const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

impl Cron {
    /// Parses five fields (`min hour day month weekday`, firing at second 0) or the cron
    /// crate's six or seven. A wrong five-field expression is reported by the field at
    /// fault, in the user's own terms.
    pub fn parse(expression: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        match fields.len() {
            5 => {
                let full = format!("0 {expression}");
                cron::Schedule::from_str(&full).map(Cron).map_err(|_| {
                    // Try each field alone among wildcards to name the one at fault.
                    let wrong = (0..5).find(|&i| {
                        let mut alone = ["*"; 5];
                        alone[i] = fields[i];
                        cron::Schedule::from_str(&format!("0 {}", alone.join(" "))).is_err()
                    });
                    match wrong {
                        Some(i) => format!(
                            "`{expression}`: the {} field `{}` is not valid (field {} of 5: min hour day month weekday)",
                            FIELDS[i],
                            fields[i],
                            i + 1
                        ),
                        None => format!("`{expression}` names no time that exists (check day and month together)"),
                    }
                })
            }
            6 | 7 => cron::Schedule::from_str(expression)
                .map(Cron)
                .map_err(|e| format!("`{expression}` is not a cron expression: {e}")),
            n => Err(format!("`{expression}` has {n} fields; give 5 (min hour day month weekday), 6 or 7")),
        }
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        self.0.after(&after).next()
    }

    /// The fire times strictly after `after`, in order.
    pub fn after(&self, after: DateTime<FixedOffset>) -> impl Iterator<Item = DateTime<FixedOffset>> + '_ {
        self.0.after(&after)
    }
}

impl ScheduleSpec {
    /// Checks what can be checked without the loaded procedures: the title, the cron
    /// expression, the fields a start job's input uses, and the jobs' bounds.
    pub fn check(&self) -> Result<Cron, SpecError> {
        if self.title.trim().is_empty() {
            return Err(SpecError::new("title", "give the schedule a title"));
        }
        let cron = Cron::parse(&self.cron).map_err(|message| SpecError::new("cron", message))?;
        match &self.job {
            Job::Start { input, for_each, .. } => {
                for (name, value) in input {
                    for field in placeholders(value) {
                        let known =
                            matches!(field.as_str(), "fire_date" | "fire_year" | "previous_year" | "previous_half")
                                || (field.starts_with("subject.") && for_each.is_some());
                        if !known {
                            return Err(SpecError::new(
                                "job.input",
                                format!("`{name}` uses `{{{field}}}`, which a run of this job does not provide"),
                            ));
                        }
                    }
                }
            }
            Job::Digest { lookahead_working_days } => {
                if !(1..=DIGEST_LOOKAHEAD_LIMIT).contains(lookahead_working_days) {
                    return Err(SpecError::new(
                        "job.lookahead_working_days",
                        format!("give between 1 and {DIGEST_LOOKAHEAD_LIMIT} working days"),
                    ));
                }
            }
            Job::AnchorLedger => {}
            Job::RetentionSweep { records_years, jurisdictions } => {
                if *records_years == 0 || *records_years > 100 {
                    return Err(SpecError::new("job.records_years", "give between 1 and 100 years"));
                }
                for (jurisdiction, years) in jurisdictions {
                    if *years == 0 || *years > 100 {
                        return Err(SpecError::new(
                            "job.jurisdictions",
                            format!("{jurisdiction}: give between 1 and 100 years"),
                        ));
                    }
                }
            }
        }
        Ok(cron)
    }
}

/// The schedules and selections the library comes with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    selections: BTreeMap<String, SelectionRule>,
    schedules: BTreeMap<String, ScheduleSpec>,
}

const BUILT_IN: &str = include_str!("../schedules/built_in.toml");

impl Catalogue {
    /// The catalogue of `schedules/built_in.toml` (checked by the tests below).
    pub fn built_in() -> &'static Catalogue {
        static CATALOGUE: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
        CATALOGUE.get_or_init(|| toml::from_str(BUILT_IN).unwrap_or_else(|e| panic!("schedules/built_in.toml: {e}")))
    }

    /// The built-in schedules, by id.
    pub fn schedules(&self) -> impl Iterator<Item = (&str, &ScheduleSpec)> {
        self.schedules.iter().map(|(id, spec)| (id.as_str(), spec))
    }

    /// What `selection` takes.
    pub fn selection(&self, selection: Selection) -> &SelectionRule {
        self.selections
            .get(selection.name())
            .unwrap_or_else(|| panic!("schedules/built_in.toml defines no selection `{}`", selection.name()))
    }
}

/// The fields every run provides, plus the subject's as `subject.NAME`.
pub fn run_fields(fire: DateTime<FixedOffset>, subject: &Map<String, Value>) -> Map<String, Value> {
    let local = fire.with_timezone(&shanghai());
    let (year, half) = (local.year(), if local.month() <= 6 { 1 } else { 2 });
    let previous_half = if half == 1 { format!("{}H2", year - 1) } else { format!("{year}H1") };
    let mut fields = json!({
        "fire_date": local.format("%Y-%m-%d").to_string(),
        "fire_year": year,
        "previous_year": year - 1,
        "previous_half": previous_half,
    })
    .as_object()
    .expect("an object")
    .clone();
    for (name, value) in subject {
        fields.insert(format!("subject.{name}"), value.clone());
    }
    fields
}

/// The `{field}` names a value uses.
fn placeholders(value: &Value) -> Vec<String> {
    let Value::String(text) = value else { return Vec::new() };
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        found.push(rest[open + 1..open + close].to_owned());
        rest = &rest[open + close + 1..];
    }
    found
}

/// Replaces `{field}` in string values; a string that is exactly one field takes its value.
pub fn fill(value: &Value, fields: &Map<String, Value>) -> Value {
    let Value::String(text) = value else { return value.clone() };
    if let [only] = placeholders(value).as_slice() {
        if *text == format!("{{{only}}}") {
            return fields.get(only).cloned().unwrap_or(Value::Null);
        }
    }
    let mut filled = text.clone();
    for field in placeholders(value) {
        let replacement = match fields.get(&field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        filled = filled.replace(&format!("{{{field}}}"), &replacement);
    }
    Value::String(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn five_field_expressions_fire_in_shanghai_time() {
        let cron = Cron::parse("0 9 10 1 *").unwrap();
        let next = cron.next_after(at("2026-11-23T12:00:00+08:00")).unwrap();
        assert_eq!(next, at("2027-01-10T09:00:00+08:00"));
        assert_eq!(cron.next_after(next).unwrap(), at("2028-01-10T09:00:00+08:00"));
        let half = Cron::parse("0 9 5 1,7 *").unwrap();
        assert_eq!(half.next_after(at("2027-01-05T09:00:00+08:00")).unwrap(), at("2027-07-05T09:00:00+08:00"));
    }

    #[test]
    fn bad_expressions_name_the_users_own_field() {
        assert!(Cron::parse("0 9 10 1").unwrap_err().contains("4 fields"));
        let hour = Cron::parse("0 25 10 1 *").unwrap_err();
        assert!(hour.contains("the hour field `25`") && hour.contains("field 2 of 5"), "{hour}");
        let weekday = Cron::parse("0 9 * * Funday").unwrap_err();
        assert!(weekday.contains("day of week field `Funday`"), "{weekday}");
        assert!(!hour.contains("0 0 25"), "the internal six-field form is never shown: {hour}");
    }

    #[test]
    fn inputs_are_filled_from_the_run_and_the_subject() {
        let subject = json!({"operator_org": "op-1", "id": "17"}).as_object().unwrap().clone();
        let fields = run_fields(at("2027-01-10T09:00:00+08:00"), &subject);
        assert_eq!(fill(&json!("{previous_year}"), &fields), json!(2026));
        assert_eq!(fill(&json!("{subject.id}"), &fields), json!("17"));
        assert_eq!(fill(&json!("{fire_year}年 {subject.operator_org}"), &fields), json!("2027年 op-1"));
        assert_eq!(fill(&json!("{previous_half}"), &fields), json!("2026H2"));
        let july = run_fields(at("2027-07-05T09:00:00+08:00"), &Map::new());
        assert_eq!(fill(&json!("{previous_half}"), &july), json!("2027H1"));
        assert_eq!(fill(&json!(30), &fields), json!(30));
    }

    #[test]
    fn the_catalogue_checks_and_defines_every_selection_its_schedules_use() {
        let catalogue = Catalogue::built_in();
        let ids: Vec<&str> = catalogue.schedules().map(|(id, _)| id).collect();
        assert_eq!(ids.len(), 7, "{ids:?}");
        for (id, spec) in catalogue.schedules() {
            spec.check().unwrap_or_else(|e| panic!("{id}: {e}"));
            if let Job::Start { for_each: Some(selection), .. } = &spec.job {
                assert!(!catalogue.selection(*selection).procedure.is_empty(), "{id}");
            }
        }
        for selection in
            [Selection::ActiveAuthorization, Selection::AuthorizationInTerm, Selection::AuthorizingAuthority]
        {
            catalogue.selection(selection);
        }
    }
}
