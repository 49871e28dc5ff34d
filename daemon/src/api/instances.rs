//! /v1/instances: start, list, inspect, history, act.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::{refusal_for, EngineCaller};
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::{self, InstanceView, Paged};
use super::AppState;
use crate::engine::{self, ActRequest, EngineError};
use crate::integrity::anchors;
use crate::integrity::checks::InstanceChecks;
use crate::integrity::verify::Verifier;
use crate::organization;
use crate::principal::{Principal, Role};
use crate::store::from_millis;
use crate::store::instances::InstanceFilter;
use crate::store::records::{InstanceRecord, InstanceStatus};
use crate::store::transition::Standing;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "procedure": "registration",
    "jurisdiction": "taian",
    "input": {"resource_name": "企业登记信息", "registration_type": "initial", "registrant_org": "taian-market", "agency_org": "taian-registry"}
}))]
pub struct StartRequest {
    procedure: String,
    jurisdiction: String,
    /// Per the definition's input schema (`GET /v1/definitions/{procedure}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    input: Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"action": "accept", "data": {}}))]
pub struct ActionRequest {
    pub action: String,
    /// Per the action's data schema (`GET /v1/definitions/{procedure}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

/// An instance in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceSummary {
    pub id: i64,
    pub procedure: String,
    pub jurisdiction: String,
    pub status: InstanceStatus,
    pub outcome: Option<String>,
    pub step: Option<String>,
    pub due: Option<DateTime<FixedOffset>>,
    pub overdue: bool,
    pub flagged: Option<String>,
}

/// One stored event, with the hashes that seal it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: DateTime<FixedOffset>,
    pub actor: String,
    #[schema(value_type = Object)]
    pub event: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// An instance's history as stored, with each verification check on its own.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryView {
    pub instance: i64,
    /// The chain check's verdict, as a boolean.
    pub chain_intact: bool,
    pub checks: InstanceChecks,
    /// Why the instance failed verification, if it did.
    pub flagged: Option<String>,
    /// Sources not in force when it started (a draft, a lapsed text), as its start recorded.
    pub source_notices: Vec<String>,
    pub events: Vec<EventView>,
}

pub(super) fn parse_id(text: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| Problem::not_found(format!("`{text}` is not an instance id")))
}

/// Loads an instance the principal may see; outside one's organizations an instance is as
/// good as absent.
pub async fn visible(state: &AppState, principal: &Principal, id: i64) -> Result<InstanceRecord, Problem> {
    let record = state.store.instance(id).await?;
    if !principal.may_see(&record.organizations) {
        return Err(Problem::not_found(format!("instance {id} does not exist")));
    }
    Ok(record)
}

/// The view of `record` as read, for `principal`: its open tasks and effects are read with
/// it.
pub async fn view(state: &AppState, principal: &Principal, record: InstanceRecord) -> Result<InstanceView, Problem> {
    let tasks = state.store.open_tasks_of(record.id).await?;
    let effects = state.store.effects_of(record.id).await?;
    let standing = Standing { instance: record, open_tasks: tasks, effects };
    answer(state, principal, &standing)
}

/// The view of an instance as a start or an action left it: nothing is read again.
pub fn answer(state: &AppState, principal: &Principal, standing: &Standing) -> Result<InstanceView, Problem> {
    let record = &standing.instance;
    let instance_state = record.state()?;
    let definition = state.engine.definitions().require_version(&record.definition_version)?;
    let (calendar, _) = state.engine.calendar();
    Ok(views::instance(
        record,
        &instance_state,
        &definition,
        &calendar,
        state.engine.now(),
        &standing.open_tasks,
        &standing.effects,
        principal,
    ))
}

pub async fn start(
    State(state): State<AppState>,
    EngineCaller(principal): EngineCaller,
    Body(request): Body<StartRequest>,
) -> Result<(StatusCode, Json<InstanceView>), Problem> {
    let started = start_checked(&state, &principal, request.procedure, request.jurisdiction, request.input).await;
    match started.and_then(|standing| answer(&state, &principal, &standing)) {
        Ok(view) => Ok((StatusCode::CREATED, Json(view))),
        Err(problem) => Err(refusal_for(&state, &principal, problem).await),
    }
}

/// Starts an instance for `principal` after the checks every door applies (the API and the
/// console): regulators start nothing, organization ids in the input follow the one rule,
/// and staff start only instances one of their organizations takes part in. Field errors
/// name `input.FIELD`.
pub async fn start_checked(
    state: &AppState,
    principal: &Principal,
    procedure: String,
    jurisdiction: String,
    input: Value,
) -> Result<Standing, Problem> {
    if principal.role == Role::Regulator {
        return Err(Problem::forbidden("regulators do not start instances"));
    }
    let definition = state.engine.definitions().require(&procedure, &jurisdiction)?;
    let holders = definition.role_holders(|field| input.get(field));
    // Organization ids in the input become the instance's scope: they follow the same rule
    // as everywhere else.
    for field in definition.procedure.roles.values().filter_map(|r| r.organization.as_ref()) {
        let field = field.get_ref().as_str();
        if let Some(org) = input.get(field).and_then(Value::as_str) {
            organization::check(org)
                .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, &format!("input.{field}"), e))?;
        }
    }
    if principal.is_staff() && !holders.iter().any(|(_, org)| principal.organizations.contains(org)) {
        // Staff start only instances their organization takes part in.
        return Err(Problem::forbidden("none of your organizations takes part in this instance"));
    }
    let start = engine::StartRequest { procedure, jurisdiction, input, caller: principal.clone() };
    state.engine.start(start).await.map_err(|e| match e {
        EngineError::Refused(refusal) => {
            let mut problem = Problem::from(refusal);
            problem.field = problem.field.map(|f| f.replacen("data.", "input.", 1));
            problem
        }
        other => other.into(),
    })
}

pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<InstanceView>, Problem> {
    let record = visible(&state, &principal, parse_id(&id)?).await?;
    Ok(Json(view(&state, &principal, record).await?))
}

/// The history as stored, with each verification check reported on its own. A failed
/// check flags the instance; the page still lists everything, so it can be exported.
pub async fn history(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<HistoryView>, Problem> {
    let id = parse_id(&id)?;
    let record = visible(&state, &principal, id).await?;
    let history = state.store.history(id).await?;
    let (calendar, generation) = state.engine.calendar();
    let verifier = Verifier {
        store: &state.store,
        definitions: state.engine.definitions(),
        calendar,
        generation,
        anchoring: &anchors::NOWHERE,
    };
    let checks = verifier.verify_instance(&record, &history).await?;
    // A failing check has just flagged it, unless it already was (the first reason stays).
    let flagged = record.flagged.clone().or_else(|| Some(checks.failures()).filter(|f| !f.is_empty()));
    let source_notices = record.state().map(|s| s.source_notices).unwrap_or_default();
    let events = history
        .into_iter()
        .map(|h| EventView {
            seq: h.seq,
            at: from_millis(h.at),
            event: serde_json::from_str::<Value>(&h.event).unwrap_or(Value::Null),
            actor: h.actor,
            prev_hash: h.prev_hash,
            hash: h.hash,
        })
        .collect();
    Ok(Json(HistoryView {
        instance: id,
        chain_intact: !checks.chain.is_failure(),
        checks,
        flagged,
        source_notices,
        events,
    }))
}

pub async fn act(
    State(state): State<AppState>,
    EngineCaller(principal): EngineCaller,
    PathParams(id): PathParams<String>,
    Body(request): Body<ActionRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let acted = async { perform(&state, &principal, parse_id(&id)?, request).await }.await;
    match acted {
        Ok(view) => Ok(view),
        Err(problem) => Err(refusal_for(&state, &principal, problem).await),
    }
}

/// Takes an action on an instance as `principal`: the engine checks the caller against the
/// instance as stored, in the transaction that applies the action.
pub async fn perform(
    state: &AppState,
    principal: &Principal,
    id: i64,
    request: ActionRequest,
) -> Result<Json<InstanceView>, Problem> {
    let act = ActRequest { instance: id, action: request.action, data: request.data, caller: principal.clone() };
    let standing = state.engine.act(act).await?;
    Ok(Json(answer(state, principal, &standing)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    procedure: Option<String>,
    status: Option<String>,
    overdue: Option<bool>,
    org: Option<String>,
    /// `true`: only instances that failed verification.
    flagged: Option<bool>,
    page: Option<String>,
    per_page: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<ListQuery>,
) -> Result<Json<Paged<InstanceSummary>>, Problem> {
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(InstanceStatus::parse(text).ok_or_else(|| {
            Problem::field(StatusCode::BAD_REQUEST, "status", format!("`{text}` is not running or completed"))
        })?),
    };
    let filter = InstanceFilter {
        procedure: query.procedure,
        status,
        overdue: query.overdue,
        organization: query.org,
        flagged: query.flagged,
        within: principal.scope(),
        ..InstanceFilter::default()
    };
    let (rows, total) = state.store.instances(&filter, page.slice()).await?;
    let items: Vec<InstanceSummary> = rows
        .into_iter()
        .map(|r| InstanceSummary {
            id: r.id,
            procedure: r.procedure,
            jurisdiction: r.jurisdiction,
            status: r.status,
            outcome: r.outcome,
            step: r.step,
            due: r.next_due_at.map(from_millis),
            overdue: r.overdue,
            flagged: r.flagged,
        })
        .collect();
    Ok(Json(page.body(items, total)))
}
