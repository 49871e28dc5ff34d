//! An administrator's repairs of a running instance: cancel it (whom its definition names is
//! told), terminate it (nobody is), or move it to a step. Each needs a reason, which the
//! instance's history and the audit log keep with who gave it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use statflow_workflows::engine::Ending;
use utoipa::ToSchema;

use super::instances::{answer, parse_id};
use super::problem::{Body, PathParams, Problem};
use super::views::InstanceView;
use super::AppState;
use crate::engine::{Repair, RepairRequest};
use crate::principal::Principal;

/// The longest reason kept, in characters.
pub const MAX_REASON: usize = 2000;
/// The longest step name looked up, in characters.
const MAX_STEP: usize = 128;

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

pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<EndRequest>,
) -> Result<Json<InstanceView>, Problem> {
    repair(&state, &principal, &id, Repair::End(Ending::Cancelled), &request.reason).await
}

pub async fn terminate(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<EndRequest>,
) -> Result<Json<InstanceView>, Problem> {
    repair(&state, &principal, &id, Repair::End(Ending::Terminated), &request.reason).await
}

pub async fn move_to(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<MoveRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let step = request.step.trim();
    if step.is_empty() || step.chars().count() > MAX_STEP {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "step",
            format!("name a step of the instance's definition (1 to {MAX_STEP} characters)"),
        ));
    }
    repair(&state, &principal, &id, Repair::MoveTo(step.to_owned()), &request.reason).await
}

async fn repair(
    state: &AppState,
    principal: &Principal,
    id: &str,
    repair: Repair,
    reason: &str,
) -> Result<Json<InstanceView>, Problem> {
    // Who, before what: a non-administrator learns nothing of the instance.
    if !principal.is_admin() {
        return Err(Problem::forbidden("only an administrator cancels, terminates or moves an instance"));
    }
    let id = parse_id(id)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason",
            format!("say why, in 1 to {MAX_REASON} characters"),
        ));
    }
    let request = RepairRequest { instance: id, repair, reason: reason.to_owned(), caller: principal.clone() };
    let standing = state.engine.repair(request).await?;
    Ok(Json(answer(state, principal, &standing)?))
}
