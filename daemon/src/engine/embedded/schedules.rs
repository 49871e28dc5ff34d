//! Cron schedules: the annual evaluations, half-yearly summaries and retention sweeps that
//! start themselves.
//!
//! A schedule's fire times come from its cron expression in Asia/Shanghai. Each fire time
//! runs at most once: its run row is unique per (schedule, fire time), and every instance a
//! run starts carries a unique start key naming the run and the subject, so a run resumed
//! after a crash starts only what it had not started yet.
//!
//! While the daemon runs, every fire time runs in order, interleaved with timers (a virtual
//! clock jumping a year runs each fire time in between, at its time). Fire times missed while
//! the daemon was down are handled at start-up by the schedule's catch-up policy: run each
//! (`all`), run the latest and skip the rest (`once`), or skip them (`skip`). Skipped fire
//! times are recorded as skipped runs, so nothing is missed silently.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use statflow_workflows::calendar::shanghai;
use statflow_workflows::engine::{Actor, InstanceState};

use super::Runtime;
use crate::store::entities::{instances, schedule_runs, schedules};
use crate::store::retention::{self, LEGAL_RECORDS_YEARS};
use crate::store::transition::Origin;
use crate::store::{from_millis, to_millis, StoreError};

/// At most this many missed fire times of one schedule are looked at on start-up; a cron
/// expression firing every minute over a long outage must not stall the daemon.
const CATCH_UP_LIMIT: usize = 1000;

/// What to do with fire times missed while the daemon was down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    fn as_str(self) -> &'static str {
        match self {
            CatchUp::Once => "once",
            CatchUp::All => "all",
            CatchUp::Skip => "skip",
        }
    }
}

/// Whom a start job starts an instance for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// What a schedule does when it fires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
        #[schema(value_type = Object)]
        input: Map<String, Value>,
    },
    /// Removes finished instances (with their history, tasks and effects) older than their
    /// jurisdiction's keeping period: `records_years`, or `jurisdictions.<j>` where given;
    /// never under a statutory minimum (Tianjin-security art. 8: 3 years). Audit entries
    /// follow the longest period. See `store::retention`.
    RetentionSweep {
        #[serde(default = "legal_records_years")]
        records_years: u32,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        jurisdictions: BTreeMap<String, u32>,
    },
    /// Sends each staff member a digest of their open tasks, with what falls due within
    /// `lookahead_working_days` first; on working days of the official calendar only (see
    /// `runtime::digest`).
    Digest {
        #[serde(default = "digest_lookahead")]
        lookahead_working_days: u32,
    },
    /// Anchors the ledger's head outside the database: stored, appended to the anchor file,
    /// signed and mailed as configured (see `runtime::integrity`).
    AnchorLedger,
}

/// The digest's "falls due soon": within this many working days.
fn digest_lookahead() -> u32 {
    2
}

/// The digest's look-ahead is at most this many working days.
const DIGEST_LOOKAHEAD_LIMIT: u32 = 20;

fn legal_records_years() -> u32 {
    LEGAL_RECORDS_YEARS
}

/// A schedule as administrators write it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Parses a cron expression; five-field expressions fire at second 0.
pub fn parse_cron(expression: &str) -> Result<cron::Schedule, String> {
    let fields = expression.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expression}"),
        6 | 7 => expression.to_owned(),
        n => return Err(format!("`{expression}` has {n} fields; give 5 (min hour day month weekday), 6 or 7")),
    };
    cron::Schedule::from_str(&full).map_err(|e| format!("`{expression}` is not a cron expression: {e}"))
}

/// The first fire time strictly after `after`, in Asia/Shanghai.
fn next_fire(cron: &cron::Schedule, after: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
    cron.after(&after).next()
}

/// The schedules the procedure library comes with. They are installed once; an administrator
/// may change or disable them afterwards (start-up never overwrites them).
pub fn built_in() -> Vec<(&'static str, ScheduleSpec)> {
    let evaluation = |jurisdiction: &str| Job::Start {
        procedure: "annual_evaluation".into(),
        jurisdiction: jurisdiction.into(),
        for_each: Some(Selection::ActiveAuthorization),
        input: json!({
            "authority_org": "{subject.authority_org}",
            "operator_org": "{subject.operator_org}",
            "authorization_instance": "{subject.id}",
            "year": "{previous_year}",
            "materials_days": 30,
        })
        .as_object()
        .expect("an object")
        .clone(),
    };
    vec![
        (
            "annual_evaluation.taian",
            ScheduleSpec {
                title: "泰安 授权运营年度评估(第二十四条)".into(),
                cron: "0 9 10 1 *".into(),
                job: evaluation("taian"),
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "annual_evaluation.jinzhou",
            ScheduleSpec {
                title: "锦州 授权运营年度评估(第十三条)".into(),
                cron: "0 9 10 1 *".into(),
                job: evaluation("jinzhou"),
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "half_yearly_summary.taian",
            ScheduleSpec {
                title: "泰安 授权运营情况半年汇总(第十四条)".into(),
                cron: "0 9 5 1,7 *".into(),
                job: Job::Start {
                    procedure: "half_yearly_summary".into(),
                    jurisdiction: "taian".into(),
                    for_each: Some(Selection::AuthorizingAuthority),
                    input: json!({"authority_org": "{subject.authority_org}", "period": "{previous_half}"})
                        .as_object()
                        .expect("an object")
                        .clone(),
                },
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "annual_work_report.taian",
            ScheduleSpec {
                title: "泰安 运营机构年度工作情况报告(第二十三条)".into(),
                cron: "0 9 1 1 *".into(),
                job: Job::Start {
                    procedure: "annual_work_report".into(),
                    jurisdiction: "taian".into(),
                    for_each: Some(Selection::AuthorizationInTerm),
                    input: json!({
                        "authority_org": "{subject.authority_org}",
                        "operator_org": "{subject.operator_org}",
                        "authorization_instance": "{subject.id}",
                        "year": "{previous_year}",
                    })
                    .as_object()
                    .expect("an object")
                    .clone(),
                },
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "retention_sweep",
            ScheduleSpec {
                title: "记录保存期满清理(处理记录至少3年)".into(),
                cron: "0 2 * * Sun".into(),
                job: Job::RetentionSweep { records_years: LEGAL_RECORDS_YEARS, jurisdictions: BTreeMap::new() },
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "daily_digest",
            ScheduleSpec {
                title: "每日待办摘要(工作日8:00)".into(),
                // Every day: the job itself skips days off of the official calendar, which a
                // cron weekday field cannot know (holidays, adjusted working weekends).
                cron: "0 8 * * *".into(),
                job: Job::Digest { lookahead_working_days: digest_lookahead() },
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
        (
            "ledger_anchor",
            ScheduleSpec {
                title: "账本锚点(每日日终)".into(),
                cron: "59 23 * * *".into(),
                job: Job::AnchorLedger,
                catch_up: CatchUp::Once,
                enabled: true,
            },
        ),
    ]
}

/// Why a schedule was refused, naming the field.
#[derive(Debug)]
pub struct SpecError {
    pub field: &'static str,
    pub message: String,
}

/// One thing a subject contributes to a run: the key that makes its start unique, and the
/// fields its input may use.
struct Subject {
    key: String,
    fields: Map<String, Value>,
}

/// What one run did, as stored in its row and returned to the clock's caller.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub schedule: String,
    pub fire_at: DateTime<FixedOffset>,
    pub status: String,
    #[schema(value_type = Object)]
    pub result: Value,
}

impl Runtime {
    /// Checks a schedule against the loaded procedures before it is stored.
    pub fn check_schedule(&self, spec: &ScheduleSpec) -> Result<cron::Schedule, SpecError> {
        if spec.title.trim().is_empty() {
            return Err(SpecError { field: "title", message: "give the schedule a title".into() });
        }
        let cron = parse_cron(&spec.cron).map_err(|message| SpecError { field: "cron", message })?;
        match &spec.job {
            Job::Start { procedure, jurisdiction, input, for_each } => {
                if self.current_definition(procedure, jurisdiction).is_none() {
                    return Err(SpecError {
                        field: "job.procedure",
                        message: format!("no procedure `{procedure}` is loaded for jurisdiction `{jurisdiction}`"),
                    });
                }
                for (name, value) in input {
                    for field in placeholders(value) {
                        let known =
                            matches!(field.as_str(), "fire_date" | "fire_year" | "previous_year" | "previous_half")
                                || (field.starts_with("subject.") && for_each.is_some());
                        if !known {
                            return Err(SpecError {
                                field: "job.input",
                                message: format!(
                                    "`{name}` uses `{{{field}}}`, which a run of this job does not provide"
                                ),
                            });
                        }
                    }
                }
            }
            Job::Digest { lookahead_working_days } => {
                if !(1..=DIGEST_LOOKAHEAD_LIMIT).contains(lookahead_working_days) {
                    return Err(SpecError {
                        field: "job.lookahead_working_days",
                        message: format!("give between 1 and {DIGEST_LOOKAHEAD_LIMIT} working days"),
                    });
                }
            }
            Job::AnchorLedger => {}
            Job::RetentionSweep { records_years, jurisdictions } => {
                // The default applies wherever no jurisdiction is named, so it must satisfy
                // every statutory minimum not overridden.
                let uncovered = retention::RULES.iter().filter(|r| !jurisdictions.contains_key(r.jurisdiction));
                if let Some(problem) =
                    uncovered.filter_map(|r| retention::too_short(r.jurisdiction, *records_years)).next()
                {
                    return Err(SpecError { field: "job.records_years", message: problem });
                }
                if *records_years == 0 || *records_years > 100 {
                    return Err(SpecError {
                        field: "job.records_years",
                        message: "give between 1 and 100 years".into(),
                    });
                }
                for (jurisdiction, years) in jurisdictions {
                    if *years == 0 || *years > 100 {
                        return Err(SpecError {
                            field: "job.jurisdictions",
                            message: format!("{jurisdiction}: give between 1 and 100 years"),
                        });
                    }
                    if let Some(problem) = retention::too_short(jurisdiction, *years) {
                        return Err(SpecError { field: "job.jurisdictions", message: problem });
                    }
                }
            }
        }
        Ok(cron)
    }

    /// Creates or replaces a schedule that [`check_schedule`](Self::check_schedule) accepted
    /// (`cron` is what it returned). Its next fire time is the first after now: changing or
    /// re-enabling a schedule never catches up on the time before. `built_in` marks a new
    /// schedule; one already stored keeps its mark.
    pub async fn put_schedule(
        &self,
        id: &str,
        spec: &ScheduleSpec,
        cron: &cron::Schedule,
        built_in: bool,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let row = schedules::ActiveModel {
            id: Set(id.to_owned()),
            title: Set(spec.title.clone()),
            cron: Set(spec.cron.clone()),
            job: Set(serde_json::to_string(&spec.job).expect("jobs serialize")),
            catch_up: Set(spec.catch_up.as_str().to_owned()),
            enabled: Set(spec.enabled),
            built_in: Set(built_in),
            next_fire_at: Set(next_fire(cron, now).map(to_millis)),
            updated_at: Set(to_millis(now)),
        };
        schedules::Entity::insert(row)
            .on_conflict(
                OnConflict::column(schedules::Column::Id)
                    .update_columns([
                        schedules::Column::Title,
                        schedules::Column::Cron,
                        schedules::Column::Job,
                        schedules::Column::CatchUp,
                        schedules::Column::Enabled,
                        schedules::Column::NextFireAt,
                        schedules::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.store.db)
            .await?;
        self.schedules_changed.notify_one();
        Ok(())
    }

    /// Installs the built-in schedules that are not stored yet.
    pub async fn install_built_in_schedules(&self) -> Result<(), StoreError> {
        for (id, spec) in built_in() {
            if schedules::Entity::find_by_id(id).one(&self.store.db).await?.is_none() {
                let cron =
                    self.check_schedule(&spec).map_err(|e| StoreError::Corrupt(format!("{id}: {}", e.message)))?;
                self.put_schedule(id, &spec, &cron, true).await?;
            }
        }
        Ok(())
    }

    /// On start-up: finishes runs a crash interrupted, then applies each schedule's catch-up
    /// policy to the fire times that passed while the daemon was down.
    pub async fn catch_up_schedules(&self) -> Result<Vec<RunReport>, StoreError> {
        let mut reports = Vec::new();
        let interrupted = schedule_runs::Entity::find()
            .filter(schedule_runs::Column::Status.eq("running"))
            .order_by_asc(schedule_runs::Column::FireAt)
            .all(&self.store.db)
            .await?;
        for run in interrupted {
            if let Some(schedule) = schedules::Entity::find_by_id(&run.schedule_id).one(&self.store.db).await? {
                tracing::warn!(schedule = %run.schedule_id, fire_at = %from_millis(run.fire_at), "resuming an interrupted run");
                reports.push(self.run_fire_time(&schedule, run.fire_at).await?);
            }
        }
        let now = self.clock.now();
        for schedule in
            schedules::Entity::find().filter(schedules::Column::Enabled.eq(true)).all(&self.store.db).await?
        {
            let Some(next) = schedule.next_fire_at.filter(|at| *at <= to_millis(now)) else { continue };
            let cron = parse_cron(&schedule.cron).map_err(StoreError::Corrupt)?;
            let first = from_millis(next);
            let mut missed = vec![first];
            missed.extend(cron.after(&first).take_while(|at| *at <= now).take(CATCH_UP_LIMIT - 1));
            let policy: CatchUp = serde_json::from_value(Value::String(schedule.catch_up.clone()))
                .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", schedule.id)))?;
            let latest = *missed.last().expect("at least the first");
            for at in &missed {
                let run = match policy {
                    CatchUp::All => true,
                    CatchUp::Once => *at == latest,
                    CatchUp::Skip => false,
                };
                if run {
                    reports.push(self.run_fire_time(&schedule, to_millis(*at)).await?);
                } else {
                    reports.push(self.skip_fire_time(&schedule, to_millis(*at)).await?);
                }
            }
            let following = next_fire(&cron, now.max(latest)).map(to_millis);
            self.set_next_fire(&schedule.id, following).await?;
        }
        Ok(reports)
    }

    /// The earliest fire time of any enabled schedule.
    pub async fn next_schedule_fire(&self) -> Result<Option<i64>, StoreError> {
        Ok(schedules::Entity::find()
            .filter(schedules::Column::Enabled.eq(true))
            .filter(schedules::Column::NextFireAt.is_not_null())
            .order_by_asc(schedules::Column::NextFireAt)
            .one(&self.store.db)
            .await?
            .and_then(|s| s.next_fire_at))
    }

    /// Runs every fire time at or before `until`, oldest first, each at its own time.
    pub async fn run_due_schedules(&self, until: DateTime<FixedOffset>) -> Result<Vec<RunReport>, StoreError> {
        let mut reports = Vec::new();
        loop {
            let Some(schedule) = schedules::Entity::find()
                .filter(schedules::Column::Enabled.eq(true))
                .filter(schedules::Column::NextFireAt.lte(to_millis(until)))
                .order_by_asc(schedules::Column::NextFireAt)
                .one(&self.store.db)
                .await?
            else {
                return Ok(reports);
            };
            let at = schedule.next_fire_at.expect("filtered on");
            self.clock.set(from_millis(at));
            reports.push(self.run_fire_time(&schedule, at).await?);
            let cron = parse_cron(&schedule.cron).map_err(StoreError::Corrupt)?;
            self.set_next_fire(&schedule.id, next_fire(&cron, from_millis(at)).map(to_millis)).await?;
        }
    }

    async fn set_next_fire(&self, id: &str, at: Option<i64>) -> Result<(), StoreError> {
        schedules::ActiveModel { id: Set(id.to_owned()), next_fire_at: Set(at), ..Default::default() }
            .update(&self.store.db)
            .await?;
        Ok(())
    }

    /// Records a fire time's run row unless it exists, and returns the stored row: a row
    /// already there (a finished run, or one a crash interrupted) is never overwritten.
    async fn claim_run(
        &self,
        schedule: &str,
        fire_at: i64,
        status: &str,
        result: &Value,
    ) -> Result<schedule_runs::Model, StoreError> {
        let now = to_millis(self.clock.now());
        let row = schedule_runs::ActiveModel {
            schedule_id: Set(schedule.to_owned()),
            fire_at: Set(fire_at),
            status: Set(status.to_owned()),
            started: Set(result.to_string()),
            error: Set(None),
            created_at: Set(now),
            finished_at: Set((status != "running").then_some(now)),
            ..Default::default()
        };
        schedule_runs::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([schedule_runs::Column::ScheduleId, schedule_runs::Column::FireAt])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&self.store.db)
            .await?;
        schedule_runs::Entity::find()
            .filter(schedule_runs::Column::ScheduleId.eq(schedule))
            .filter(schedule_runs::Column::FireAt.eq(fire_at))
            .one(&self.store.db)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a claimed run disappeared".into()))
    }

    fn report(run: schedule_runs::Model) -> RunReport {
        RunReport {
            result: serde_json::from_str(&run.started).unwrap_or(Value::Null),
            schedule: run.schedule_id,
            fire_at: from_millis(run.fire_at),
            status: run.status,
        }
    }

    /// Records a missed fire time as skipped (a fire time already handled keeps its run).
    async fn skip_fire_time(&self, schedule: &schedules::Model, fire_at: i64) -> Result<RunReport, StoreError> {
        let result = json!({"reason": "missed while the daemon was down", "catch_up": schedule.catch_up});
        Ok(Self::report(self.claim_run(&schedule.id, fire_at, "skipped", &result).await?))
    }

    /// Runs one fire time (or finishes it, after a crash). Starting never happens twice for
    /// one subject: each start carries the key `{schedule}@{fire time}/{subject}`.
    async fn run_fire_time(&self, schedule: &schedules::Model, fire_at: i64) -> Result<RunReport, StoreError> {
        let fire = from_millis(fire_at);
        let run = self.claim_run(&schedule.id, fire_at, "running", &json!({})).await?;
        if run.status != "running" {
            return Ok(Self::report(run));
        }
        let job: Job = serde_json::from_str(&schedule.job)
            .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", schedule.id)))?;
        let (status, result, error) = match &job {
            Job::Start { procedure, jurisdiction, for_each, input } => {
                let (result, errors) =
                    self.start_for_each(&schedule.id, fire, procedure, jurisdiction, *for_each, input).await?;
                let status = if errors.is_empty() { "done" } else { "failed" };
                (status, result, (!errors.is_empty()).then(|| errors.join("; ")))
            }
            Job::RetentionSweep { records_years, jurisdictions } => {
                let removed = self.store.sweep_retention(fire, *records_years, jurisdictions).await?;
                ("done", removed, None)
            }
            Job::Digest { lookahead_working_days } => {
                let run = self.queue_digests(fire, *lookahead_working_days).await?;
                (run.status, run.result, None)
            }
            Job::AnchorLedger => self.anchor_ledger(fire).await?,
        };
        self.finish_run(&schedule.id, fire_at, status, &result, error.as_deref()).await?;
        self.store
            .audit(
                "scheduler",
                "schedule.run",
                &schedule.id,
                json!({"fire_at": fire, "status": status, "result": result}),
            )
            .await?;
        Ok(RunReport { schedule: schedule.id.clone(), fire_at: fire, status: status.into(), result })
    }

    async fn finish_run(
        &self,
        schedule: &str,
        fire_at: i64,
        status: &str,
        result: &Value,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        schedule_runs::Entity::update_many()
            .col_expr(schedule_runs::Column::Status, status.into())
            .col_expr(schedule_runs::Column::Started, result.to_string().into())
            .col_expr(schedule_runs::Column::Error, error.map(str::to_owned).into())
            .col_expr(schedule_runs::Column::FinishedAt, Some(to_millis(self.clock.now())).into())
            .filter(schedule_runs::Column::ScheduleId.eq(schedule))
            .filter(schedule_runs::Column::FireAt.eq(fire_at))
            .exec(&self.store.db)
            .await?;
        Ok(())
    }

    /// Starts the job's procedure once per subject, skipping subjects a previous attempt of
    /// this run already started. Returns what was started and the subjects that failed.
    async fn start_for_each(
        &self,
        schedule: &str,
        fire: DateTime<FixedOffset>,
        procedure: &str,
        jurisdiction: &str,
        for_each: Option<Selection>,
        input: &Map<String, Value>,
    ) -> Result<(Value, Vec<String>), StoreError> {
        let definition = self.current_definition(procedure, jurisdiction).ok_or_else(|| {
            StoreError::Corrupt(format!("schedule {schedule}: no procedure {procedure} for {jurisdiction}"))
        })?;
        let subjects = match for_each {
            None => vec![Subject { key: "-".into(), fields: Map::new() }],
            Some(selection) => self.select(selection, jurisdiction).await?,
        };
        // What an interrupted attempt of this run already started, read once.
        let prefix = format!("{schedule}@{}/", fire.to_rfc3339());
        let earlier: BTreeMap<String, i64> = instances::Entity::find()
            .select_only()
            .column(instances::Column::StartKey)
            .column(instances::Column::Id)
            .filter(instances::Column::StartKey.starts_with(&prefix))
            .into_tuple::<(String, i64)>()
            .all(&self.store.db)
            .await?
            .into_iter()
            .collect();
        let mut started = BTreeMap::new();
        let mut errors = Vec::new();
        for subject in subjects {
            let key = format!("{prefix}{}", subject.key);
            if let Some(id) = earlier.get(&key) {
                started.insert(subject.key, *id);
                continue;
            }
            let fields = run_fields(fire, &subject.fields);
            let input = Value::Object(input.iter().map(|(k, v)| (k.clone(), fill(v, &fields))).collect());
            let actor = Actor { id: format!("schedule:{schedule}"), ..Actor::system() };
            match self.start(&definition, input, actor, Origin::Scheduled { key }).await {
                Ok(applied) => {
                    started.insert(subject.key, applied.instance_id);
                }
                Err(StoreError::Refused(refusal)) => errors.push(format!("{}: {refusal}", subject.key)),
                Err(other) => return Err(other),
            }
        }
        let instances: Vec<i64> = started.values().copied().collect();
        Ok((json!({"procedure": procedure, "jurisdiction": jurisdiction, "instances": instances}), errors))
    }

    /// The subjects of a selection, read from the running instances.
    async fn select(&self, selection: Selection, jurisdiction: &str) -> Result<Vec<Subject>, StoreError> {
        let mut query = instances::Entity::find()
            .filter(instances::Column::Procedure.eq("authorized_operation"))
            .filter(instances::Column::Jurisdiction.eq(jurisdiction))
            .filter(instances::Column::Status.eq("running"));
        match selection {
            Selection::ActiveAuthorization => query = query.filter(instances::Column::Step.eq("active")),
            Selection::AuthorizationInTerm => {
                query = query.filter(instances::Column::Step.is_in(["active", "suspended"]))
            }
            Selection::AuthorizingAuthority => {}
        }
        let authorizations = query.order_by_asc(instances::Column::Id).all(&self.store.db).await?;
        let mut authorities = std::collections::BTreeSet::new();
        let mut subjects = Vec::new();
        for row in authorizations {
            let state: InstanceState = serde_json::from_str(&row.state)
                .map_err(|e| StoreError::Corrupt(format!("instance {}: {e}", row.id)))?;
            match selection {
                Selection::ActiveAuthorization | Selection::AuthorizationInTerm => {
                    let mut fields: Map<String, Value> = state.data.into_iter().collect();
                    fields.insert("id".into(), Value::String(row.id.to_string()));
                    subjects.push(Subject { key: format!("authorization-{}", row.id), fields });
                }
                Selection::AuthorizingAuthority => {
                    let Some(Value::String(authority)) = state.data.get("authority_org") else { continue };
                    if !authorities.insert(authority.clone()) {
                        continue;
                    }
                    let fields = json!({"authority_org": authority}).as_object().expect("an object").clone();
                    subjects.push(Subject { key: authority.clone(), fields });
                }
            }
        }
        Ok(subjects)
    }

    /// Runs until the process ends: sleeps until the next fire time (or a schedule changes)
    /// and runs what is due. With a virtual clock, the admin clock endpoint runs them.
    pub async fn run_schedules(self: Arc<Self>) {
        loop {
            if self.clock.is_virtual() {
                self.schedules_changed.notified().await;
                continue;
            }
            if let Err(error) = self.run_due_schedules(self.clock.now()).await {
                tracing::error!(%error, "schedule pass failed");
            }
            let next = self.next_schedule_fire().await;
            self.sleep_until(next, &self.schedules_changed, "fire time").await;
        }
    }

    /// Moves time forward to `target`, firing timers and running schedules in the order they
    /// fall due, each at its own time (the virtual clock's advance).
    pub async fn advance_to(&self, target: DateTime<FixedOffset>) -> Result<ClockMove, StoreError> {
        let mut moved = ClockMove::default();
        let mut reached = self.clock.now();
        // In batches of at most a month of (virtual) time: each batch leaves the clock where
        // it ended, so readers see the progress and a long move reports it as it goes. A move
        // of no time is one batch too: it fires what is due at this very instant.
        loop {
            let batch_end = (reached + chrono::Duration::days(ADVANCE_BATCH_DAYS)).min(target);
            while let Some(at) = self.next_schedule_fire().await?.filter(|at| *at <= to_millis(batch_end)) {
                keep_first(&mut moved.fired, &mut moved.fired_total, self.fire_due(from_millis(at)).await?);
                keep_first(&mut moved.runs, &mut moved.runs_total, self.run_due_schedules(from_millis(at)).await?);
            }
            keep_first(&mut moved.fired, &mut moved.fired_total, self.fire_due(batch_end).await?);
            moved.batches += 1;
            reached = batch_end;
            if reached >= target {
                return Ok(moved);
            }
            tracing::info!(at = %reached, %target, fired = moved.fired_total, runs = moved.runs_total, "moving the clock");
        }
    }
}

/// A long clock move is cut into batches of this many days.
const ADVANCE_BATCH_DAYS: i64 = 31;

/// At most this many fired timers and schedule runs are listed in a clock move's answer; the
/// totals count all of them.
const MOVE_LISTED: usize = 1000;

/// What a clock move did.
#[derive(Debug, Default)]
pub struct ClockMove {
    /// The first [`MOVE_LISTED`] timers fired, in order.
    pub fired: Vec<super::timers::Fired>,
    pub fired_total: usize,
    /// The first [`MOVE_LISTED`] schedule runs.
    pub runs: Vec<RunReport>,
    pub runs_total: usize,
    pub batches: usize,
}

/// Counts `more` into `total` and keeps it in `listed` while fewer than [`MOVE_LISTED`] are.
fn keep_first<T>(listed: &mut Vec<T>, total: &mut usize, more: Vec<T>) {
    *total += more.len();
    let room = MOVE_LISTED.saturating_sub(listed.len());
    listed.extend(more.into_iter().take(room));
}

/// The fields every run provides, plus the subject's as `subject.NAME`.
fn run_fields(fire: DateTime<FixedOffset>, subject: &Map<String, Value>) -> Map<String, Value> {
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
fn fill(value: &Value, fields: &Map<String, Value>) -> Value {
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
        let cron = parse_cron("0 9 10 1 *").unwrap();
        let next = next_fire(&cron, at("2026-11-23T12:00:00+08:00")).unwrap();
        assert_eq!(next, at("2027-01-10T09:00:00+08:00"));
        assert_eq!(next_fire(&cron, next).unwrap(), at("2028-01-10T09:00:00+08:00"));
        let half = parse_cron("0 9 5 1,7 *").unwrap();
        assert_eq!(next_fire(&half, at("2027-01-05T09:00:00+08:00")).unwrap(), at("2027-07-05T09:00:00+08:00"));
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        assert!(parse_cron("0 9 10 1").unwrap_err().contains("4 fields"));
        assert!(parse_cron("0 25 10 1 *").unwrap_err().contains("not a cron expression"));
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
}
