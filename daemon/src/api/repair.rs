//! An administrator's repairs of running instances: cancel one (whom its definition names is
//! told), terminate it (nobody is), move it to a step, or migrate many to another version
//! of their definition. Each needs a reason, which the instance's history and the audit log
//! keep with who gave it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use statflow_workflows::engine::{Ending, MigratedDeadline};
use utoipa::ToSchema;

use super::instances::{answer, parse_id};
use super::problem::{Body, PathParams, Problem};
use super::views::InstanceView;
use super::AppState;
use crate::engine::{MigrationReport, MigrationRequest, Repair, RepairRequest, MIGRATION_BATCH};
use crate::principal::Principal;

/// The longest reason kept, in characters.
pub const MAX_REASON: usize = 2000;
/// The longest name (of a step, procedure, jurisdiction or version) looked up, in characters.
const MAX_NAME: usize = 128;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "登记主体撤回申请"}))]
pub struct EndRequest {
    /// Why (1 to 2000 characters), kept in the history and the audit log.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"step": "acceptance", "reason": "审查人员离职,重新受理"}))]
pub struct MoveRequest {
    /// A step of the instance's definition (`GET /v1/definitions/{procedure}`).
    #[schema(min_length = 1, max_length = 128)]
    pub step: String,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// The most step renamings one migration takes.
const MAX_STEP_MAP: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"procedure": "registration", "jurisdiction": "taian", "steps": {"publicity": "public_notice"}, "deadline": "recompute", "reason": "第九条时限更正", "dry_run": true}))]
pub struct MigrationBody {
    #[schema(min_length = 1, max_length = 128)]
    pub procedure: String,
    #[schema(min_length = 1, max_length = 128)]
    pub jurisdiction: String,
    /// The version to go to; the current one by default.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub to_version: Option<String>,
    /// Only instances on this version; every other version by default.
    #[serde(default)]
    #[schema(max_length = 128)]
    pub from_version: Option<String>,
    /// Only these instances (at most 1000); every running one by default.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub instances: Option<Vec<i64>>,
    /// Current step → step of the new version, where the names differ (same name otherwise).
    #[serde(default)]
    pub steps: std::collections::BTreeMap<String, String>,
    /// Keep (the default) or recompute the current step's deadline.
    #[serde(default)]
    pub deadline: DeadlineChoice,
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// List what would change, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a migration does with the current step's deadline.
#[derive(Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineChoice {
    /// Due when it was due.
    #[default]
    Keep,
    /// The new version's limit, counted from when the step began.
    Recompute,
}

impl From<DeadlineChoice> for MigratedDeadline {
    fn from(choice: DeadlineChoice) -> Self {
        match choice {
            DeadlineChoice::Keep => MigratedDeadline::Keep,
            DeadlineChoice::Recompute => MigratedDeadline::Recompute,
        }
    }
}

pub async fn migrate(
    State(state): State<AppState>,
    principal: Principal,
    Body(body): Body<MigrationBody>,
) -> Result<Json<MigrationReport>, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only an administrator migrates instances"));
    }
    let invalid = |field: &str, message: String| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, message);
    valid_name("procedure", &body.procedure)?;
    valid_name("jurisdiction", &body.jurisdiction)?;
    for (field, version) in [("to_version", &body.to_version), ("from_version", &body.from_version)] {
        if let Some(version) = version {
            valid_name(field, version)?;
        }
    }
    if body.instances.as_ref().is_some_and(|ids| ids.is_empty() || ids.len() > MIGRATION_BATCH) {
        return Err(invalid("instances", format!("list 1 to {MIGRATION_BATCH} instance ids, or leave it out")));
    }
    let names_ok = body.steps.iter().all(|(from, to)| valid_name("steps", from).and(valid_name("steps", to)).is_ok());
    if body.steps.len() > MAX_STEP_MAP || !names_ok {
        return Err(invalid(
            "steps",
            format!("at most {MAX_STEP_MAP} pairs of step names of 1 to {MAX_NAME} characters"),
        ));
    }
    let reason = valid_reason(&body.reason)?;
    let request = MigrationRequest {
        procedure: body.procedure,
        jurisdiction: body.jurisdiction,
        to_version: body.to_version,
        from_version: body.from_version,
        instances: body.instances,
        steps: body.steps,
        deadline: body.deadline.into(),
        reason,
        dry_run: body.dry_run,
        caller: principal,
    };
    Ok(Json(state.engine.migrate(request).await?))
}

/// A name of `field` as looked up: trimmed, 1 to [`MAX_NAME`] characters.
fn valid_name<'a>(field: &str, name: &'a str) -> Result<&'a str, Problem> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, format!("1 to {MAX_NAME} characters")));
    }
    Ok(name)
}

/// A reason as kept: trimmed, 1 to [`MAX_REASON`] characters.
fn valid_reason(reason: &str) -> Result<String, Problem> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            format!("say why, in 1 to {MAX_REASON} characters"),
        ));
    }
    Ok(reason.to_owned())
}

pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<EndRequest>,
) -> Result<Json<InstanceView>, Problem> {
    repair(&state, &principal, &id, &request.reason, || Ok(Repair::End(Ending::Cancelled))).await
}

pub async fn terminate(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<EndRequest>,
) -> Result<Json<InstanceView>, Problem> {
    repair(&state, &principal, &id, &request.reason, || Ok(Repair::End(Ending::Terminated))).await
}

pub async fn move_to(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<MoveRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let to = || Ok(Repair::MoveTo(valid_name("step", &request.step)?.to_owned()));
    repair(&state, &principal, &id, &request.reason, to).await
}

/// Carries out the repair `what` reads from the request, once the caller is known to be an
/// administrator.
async fn repair(
    state: &AppState,
    principal: &Principal,
    id: &str,
    reason: &str,
    what: impl FnOnce() -> Result<Repair, Problem>,
) -> Result<Json<InstanceView>, Problem> {
    // Who, before what: a non-administrator learns nothing of the instance or the request.
    if !principal.is_admin() {
        return Err(Problem::forbidden("only an administrator cancels, terminates or moves an instance"));
    }
    let id = parse_id(id)?;
    let repair = what()?;
    let reason = valid_reason(reason)?;
    let request = RepairRequest { instance: id, repair, reason, caller: principal.clone() };
    let standing = state.engine.repair(request).await?;
    Ok(Json(answer(state, principal, &standing)?))
}
