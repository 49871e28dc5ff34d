//! The procedure definition language, as read from TOML.
//!
//! Names and references keep their place in the file (`Spanned`) so the validator can point
//! at the exact line. The engine reads this same model once it has been validated. The
//! language itself is documented in docs/definitions.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::calendar::Period;

/// A name or a reference to one, with its place in the file.
pub type Name = Spanned<String>;

/// Built-in recipients that are not roles of the procedure: whoever holds the open task, the
/// supervising authority of the task's organization, and the regulator.
pub const BUILTIN_RECIPIENTS: [&str; 3] = ["assignee", "supervisor", "regulator"];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    pub id: Name,
    pub jurisdiction: Name,
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub initial: Name,
    /// The legal documents this definition cites, by short key (`taian`).
    pub sources: BTreeMap<Name, Source>,
    pub roles: BTreeMap<Name, Role>,
    /// Fields of the start input.
    #[serde(default)]
    pub input: BTreeMap<Name, Field>,
    #[serde(default)]
    pub escalations: BTreeMap<Name, EscalationPlan>,
    /// What an administrator's cancellation of a running instance runs (whom it tells),
    /// in the step the instance stood in; a termination runs nothing.
    #[serde(default)]
    pub on_cancel: Vec<Effect>,
    pub steps: BTreeMap<Name, Step>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub title: String,
    /// The file in `workflows/regulations/` holding the text; its standing is then read
    /// from `index.toml` there.
    #[serde(default)]
    pub file: Option<String>,
    /// For a source whose text is not kept: `in_force`, `draft` or `expired`.
    #[serde(default)]
    pub status: Option<Name>,
    #[serde(default)]
    pub in_force_from: Option<toml::value::Datetime>,
    #[serde(default)]
    pub in_force_until: Option<toml::value::Datetime>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub title: String,
    /// The start-input field naming the organization that holds this role in an instance.
    #[serde(default)]
    pub organization: Option<Name>,
}

/// A field of the start input or of an action's data: `"text"`, `"integer?"` (optional), or
/// a table with constraints.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Field {
    Short(String),
    Full(FieldSpec),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub min: Option<i64>,
    #[serde(default)]
    pub max: Option<i64>,
    #[serde(default)]
    pub values: Vec<String>,
    /// Shown only to the handlers of the instance (a reporter's identity, Tianjin-security
    /// art. 18); runtimes redact it for everyone else.
    #[serde(default)]
    pub confidential: bool,
}

fn yes() -> bool {
    true
}

/// The field types the language knows.
pub const FIELD_TYPES: [&str; 6] = ["string", "text", "integer", "date", "boolean", "enum"];

impl Field {
    /// The type name, whether it is required, and the constraints.
    pub fn spec(&self) -> FieldSpec {
        match self {
            Field::Full(spec) => spec.clone(),
            Field::Short(short) => {
                let (kind, required) = match short.strip_suffix('?') {
                    Some(kind) => (kind.to_owned(), false),
                    None => (short.clone(), true),
                };
                FieldSpec {
                    kind,
                    required,
                    title: String::new(),
                    min: None,
                    max: None,
                    values: Vec::new(),
                    confidential: false,
                }
            }
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub title: String,
    /// The article this step carries out.
    #[serde(default)]
    pub basis: Option<Name>,
    #[serde(default)]
    pub task: Option<Task>,
    #[serde(default)]
    pub deadline: Option<DeadlineSpec>,
    /// Why a waiting step has no time limit (required when it has no deadline).
    #[serde(default)]
    pub no_deadline: Option<String>,
    #[serde(default)]
    pub actions: BTreeMap<Name, Action>,
    /// Several parties must all act before the procedure moves on (Jinzhou art. 11).
    #[serde(default)]
    pub all_of: Option<AllOf>,
    #[serde(default)]
    pub child: Option<ChildSpec>,
    /// Signals from other instances: signal name → next step.
    #[serde(default)]
    pub signals: BTreeMap<Name, Name>,
    #[serde(default)]
    pub on_enter: Vec<Effect>,
    #[serde(default)]
    pub timers: Vec<StepTimer>,
    /// Marks a final step and names the outcome the instance completes with.
    #[serde(default)]
    pub outcome: Option<Name>,
}

impl Step {
    pub fn is_final(&self) -> bool {
        self.outcome.is_some()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub role: Name,
    pub title: String,
    /// Whether opening the task sends a notice to the contacts holding its role in its
    /// organization (unless the deployment turns task notices off).
    #[serde(default = "yes")]
    pub notify: bool,
}

/// A length written as one of `working_days`, `days`, `months`, `years`, `hours`; the
/// amount is a number or `"$field"` taken from the instance's data.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Length {
    #[serde(default)]
    pub working_days: Option<Amount>,
    #[serde(default)]
    pub days: Option<Amount>,
    #[serde(default)]
    pub months: Option<Amount>,
    #[serde(default)]
    pub years: Option<Amount>,
    #[serde(default)]
    pub hours: Option<Amount>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    Fixed(u32),
    /// `"$field"`: the amount comes from the instance's data.
    Field(String),
}

/// Which unit a [`Length`] uses, before its amount is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    WorkingDays,
    Days,
    Months,
    Years,
    Hours,
}

impl Unit {
    pub fn period(self, n: u32) -> Period {
        match self {
            Unit::WorkingDays => Period::WorkingDays(n),
            Unit::Days => Period::Days(n),
            Unit::Months => Period::Months(n),
            Unit::Years => Period::Years(n),
            Unit::Hours => Period::Hours(n),
        }
    }
}

impl Length {
    /// The units given, in order; a valid length has exactly one.
    pub fn parts(&self) -> Vec<(Unit, &Amount)> {
        [
            (Unit::WorkingDays, &self.working_days),
            (Unit::Days, &self.days),
            (Unit::Months, &self.months),
            (Unit::Years, &self.years),
            (Unit::Hours, &self.hours),
        ]
        .into_iter()
        .filter_map(|(unit, amount)| amount.as_ref().map(|a| (unit, a)))
        .collect()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSpec {
    #[serde(default)]
    pub working_days: Option<Amount>,
    #[serde(default)]
    pub days: Option<Amount>,
    #[serde(default)]
    pub months: Option<Amount>,
    #[serde(default)]
    pub years: Option<Amount>,
    #[serde(default)]
    pub hours: Option<Amount>,
    /// What the number is (required): `statutory` (the cited article states it), `policy`
    /// (the deploying agency sets it; `policy` gives its reference) or `case` (set in each
    /// case, a `$field`, because the article has the authority fix it, e.g. 限期整改).
    #[serde(default)]
    pub limit: Option<Name>,
    /// For a `policy` limit: the agency's own rule it comes from, shown as 本单位规定.
    #[serde(default)]
    pub policy: Option<String>,
    /// The legal basis, `"source-key article"`, e.g. `"taian 第九条第（二）项"`: for a
    /// policy limit, the article that creates the duty (optional).
    #[serde(default)]
    pub basis: Option<Name>,
    /// What starts the clock: `entered` (the step, default), `started` (the instance), or
    /// `"$field"`, a date in the data (an authorization's term runs from its effective date).
    #[serde(default)]
    pub from: Option<Name>,
    /// An agreed last day, `"$field"` (a date): when the field holds one the limit runs
    /// through that day ("至…止"); the length is then only the default when none was agreed.
    #[serde(default)]
    pub until: Option<Name>,
    #[serde(default)]
    pub remind_working_days_before: Vec<u32>,
    #[serde(default)]
    pub remind_hours_before: Vec<u32>,
    /// The escalation plan run while the step is overdue.
    #[serde(default)]
    pub escalation: Option<Name>,
    /// When the limit is a waiting period (publicity, a term) rather than a duty: the step
    /// the procedure moves to when it ends.
    #[serde(default)]
    pub on_expiry: Option<Name>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationPlan {
    pub levels: Vec<EscalationLevel>,
    /// While still overdue, the last level is sent again at this interval.
    #[serde(default)]
    pub repeat_every: Option<Length>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    /// How long after the deadline this level is reached (0 = when it passes).
    pub after: Length,
    pub to: Vec<Name>,
    #[serde(default)]
    pub title: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub role: Name,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub fields: BTreeMap<Name, Field>,
    #[serde(default)]
    pub goto: Option<Name>,
    #[serde(default)]
    pub effects: Vec<Effect>,
    /// `pause` stops the step's clock (e.g. 补正 requested), `resume` restarts it.
    #[serde(default)]
    pub clock: Option<Name>,
    /// Extends the step's limit, counted from the same start.
    #[serde(default)]
    pub extend: Option<Extend>,
    /// A term this action agrees, checked against the usual maximum the text sets.
    #[serde(default)]
    pub term: Option<TermCap>,
}

/// An agreed term and its usual maximum ("一般不超过3年", "原则上不超过5年"): a longer term
/// is not refused, but needs its reason, and is recorded as over the cap.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermCap {
    /// The usual maximum in years.
    pub cap_years: u32,
    /// `"$field"`: the first day of the term (counted, as "自…起" says).
    pub from: Name,
    /// `"$field"`: the agreed last day, if the agreement names one.
    #[serde(default)]
    pub until: Option<Name>,
    /// The term as a length (`{ years = "$term_years" }`), when no last day is agreed.
    #[serde(default)]
    pub length: Option<Length>,
    /// The action field that must give the reason for a term over the cap.
    pub reason: Name,
    #[serde(default)]
    pub basis: Option<Name>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    #[serde(default)]
    pub working_days: Option<Amount>,
    #[serde(default)]
    pub days: Option<Amount>,
    #[serde(default)]
    pub months: Option<Amount>,
    #[serde(default)]
    pub years: Option<Amount>,
    #[serde(default)]
    pub hours: Option<Amount>,
    /// What the number is (required): `statutory` (the cited article states it), `policy`
    /// (the deploying agency sets it; `policy` gives its reference) or `case` (set in each
    /// case, a `$field`, because the article has the authority fix it, e.g. 限期整改).
    #[serde(default)]
    pub limit: Option<Name>,
    /// For a `policy` limit: the agency's own rule it comes from, shown as 本单位规定.
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub basis: Option<Name>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllOf {
    pub actions: Vec<Name>,
    pub goto: Name,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildSpec {
    pub procedure: Name,
    /// Child input field → `"$field"` of this instance or a literal string.
    #[serde(default)]
    pub input: BTreeMap<String, Name>,
    /// Child outcome → next step.
    pub on_outcome: BTreeMap<Name, Name>,
}

/// A side effect. Exactly one of the kind keys is set; the others qualify it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Effect {
    /// Send a notification to a role or a built-in recipient.
    #[serde(default)]
    pub notify: Option<Name>,
    #[serde(default)]
    pub template: Option<String>,
    /// Escalate to a role or a built-in recipient (e.g. a termination reported upward).
    #[serde(default)]
    pub escalate: Option<Name>,
    /// Issue a certificate of this kind (登记凭证, 授权证书).
    #[serde(default)]
    pub issue_certificate: Option<String>,
    /// Set the status of the domain record this procedure governs.
    #[serde(default)]
    pub set_status: Option<String>,
    /// `suspend`, `restore` or `terminate` the data access of `subject`.
    #[serde(default)]
    pub access: Option<Name>,
    #[serde(default)]
    pub subject: Option<Name>,
    /// Write a report of this kind.
    #[serde(default)]
    pub report: Option<String>,
    /// Send this signal to the instance named by `target`.
    #[serde(default)]
    pub signal: Option<Name>,
    #[serde(default)]
    pub target: Option<Name>,
    #[serde(default)]
    pub basis: Option<Name>,
}

/// A timer inside a step besides its deadline: a window before the deadline (renewal six
/// months before expiry) or a recurring duty (the annual work report).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepTimer {
    pub name: Name,
    #[serde(default)]
    pub before_deadline: Option<Length>,
    #[serde(default)]
    pub every: Option<Length>,
    /// What the number is (required): `statutory` (the cited article states it), `policy`
    /// (the deploying agency sets it; `policy` gives its reference) or `case` (set in each
    /// case, a `$field`, because the article has the authority fix it, e.g. 限期整改).
    #[serde(default)]
    pub limit: Option<Name>,
    /// For a `policy` limit: the agency's own rule it comes from, shown as 本单位规定.
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub basis: Option<Name>,
    #[serde(default)]
    pub effects: Vec<Effect>,
}

pub const ACCESS_CHANGES: [&str; 3] = ["suspend", "restore", "terminate"];
pub const CLOCK_ACTIONS: [&str; 2] = ["pause", "resume"];
pub const DEADLINE_STARTS: [&str; 2] = ["entered", "started"];
pub const LIMIT_KINDS: [&str; 3] = ["statutory", "policy", "case"];

/// How a policy limit's basis is kept in an instance's deadline: this prefix, the agency's
/// reference, and after `|` the article creating the duty, if any (see
/// [`Definition::basis_text`](super::Definition::basis_text)).
pub const POLICY_PREFIX: &str = "本单位规定:";

/// Deadlines and extensions spell their length inline (`working_days = 3` beside `basis`);
/// this gathers it back into a [`Length`].
macro_rules! inline_length {
    ($t:ty) => {
        impl $t {
            pub fn length(&self) -> Length {
                Length {
                    working_days: self.working_days.clone(),
                    days: self.days.clone(),
                    months: self.months.clone(),
                    years: self.years.clone(),
                    hours: self.hours.clone(),
                }
            }
        }
    };
}
inline_length!(DeadlineSpec);
inline_length!(Extend);
