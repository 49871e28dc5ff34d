//! /v1/instances: start, list, inspect, history, act.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, FixedOffset};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use statflow_workflows::engine::{Event, InstanceState};
use utoipa::ToSchema;

use super::auth::Principal;
use super::page::Page;
use super::problem::{Body, Params, PathParams, Problem};
use super::views::{self, InstanceView, Paged};
use crate::engine::embedded::integrity::checks::InstanceChecks;
use crate::engine::embedded::Runtime;
use crate::organization;
use crate::store::entities::instances;
use crate::store::transition::Origin;
use crate::store::{from_millis, StoreError};

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
    pub status: String,
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

fn parse_id(text: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| Problem::not_found(format!("`{text}` is not an instance id")))
}

/// Loads an instance the principal may see, with its definition and state.
pub async fn load(
    runtime: &Runtime,
    principal: &Principal,
    id: i64,
) -> Result<(instances::Model, InstanceState, std::sync::Arc<statflow_workflows::definition::Definition>), Problem> {
    let row = runtime.store.instance(id).await?;
    if !principal.may_see(&row.organizations) {
        // Outside one's organizations an instance is as good as absent.
        return Err(Problem::not_found(format!("instance {id} does not exist")));
    }
    let state: InstanceState =
        serde_json::from_str(&row.state).map_err(|e| Problem::from(StoreError::Corrupt(e.to_string())))?;
    let definition = runtime
        .definition(&row.definition_version)
        .ok_or_else(|| Problem::from(StoreError::UnknownDefinition(row.definition_version.clone())))?;
    Ok((row, state, definition))
}

pub async fn view(runtime: &Runtime, principal: &Principal, id: i64) -> Result<InstanceView, Problem> {
    let (row, state, definition) = load(runtime, principal, id).await?;
    let tasks = runtime.store.open_tasks_of(id).await?;
    let effects = runtime.store.outbox_of(id).await?;
    Ok(views::instance(
        &row,
        &state,
        &definition,
        &runtime.calendar(),
        runtime.clock.now(),
        &tasks,
        &effects,
        principal,
    ))
}

pub async fn start(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(request): Body<StartRequest>,
) -> Result<(StatusCode, Json<InstanceView>), Problem> {
    if principal.role == "regulator" {
        return Err(Problem::forbidden("regulators do not start instances"));
    }
    let definition = runtime.current_definition(&request.procedure, &request.jurisdiction).ok_or_else(|| {
        let known: Vec<String> = runtime.procedures().into_iter().map(|(p, j, _)| format!("{p}/{j}")).collect();
        Problem::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "procedure",
            format!(
                "no procedure `{}` for jurisdiction `{}`; known: {}",
                request.procedure,
                request.jurisdiction,
                known.join(", ")
            ),
        )
    })?;
    // Organization ids in the input become the instance's scope: they follow the same rule
    // as everywhere else.
    for field in definition.procedure.roles.values().filter_map(|r| r.organization.as_ref()) {
        let field = field.get_ref().as_str();
        if let Some(org) = request.input.get(field).and_then(Value::as_str) {
            organization::check(org)
                .map_err(|e| Problem::field(StatusCode::UNPROCESSABLE_ENTITY, &format!("input.{field}"), e))?;
        }
    }
    if principal.role == "staff" {
        // Staff start only instances their organization takes part in.
        let involved = definition
            .procedure
            .roles
            .values()
            .filter_map(|r| r.organization.as_ref())
            .filter_map(|f| request.input.get(f.get_ref().as_str()).and_then(Value::as_str))
            .any(|org| principal.organizations.iter().any(|o| o == org));
        if !involved {
            return Err(Problem::forbidden("none of your organizations takes part in this instance"));
        }
    }
    let actor = statflow_workflows::engine::Actor {
        id: principal.name.clone(),
        roles: vec![],
        organizations: principal.organizations.clone(),
        administrator: principal.is_admin(),
    };
    let applied = runtime.start(&definition, request.input, actor, Origin::Direct).await.map_err(|e| match e {
        StoreError::Refused(refusal) => {
            let mut problem = Problem::from(refusal);
            problem.field = problem.field.map(|f| f.replacen("data.", "input.", 1));
            problem
        }
        other => other.into(),
    })?;
    Ok((StatusCode::CREATED, Json(view(&runtime, &principal, applied.instance_id).await?)))
}

pub async fn show(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<InstanceView>, Problem> {
    Ok(Json(view(&runtime, &principal, parse_id(&id)?).await?))
}

/// The history as stored, with each verification check reported on its own. A failed
/// check flags the instance; the page still lists everything, so it can be exported.
pub async fn history(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<HistoryView>, Problem> {
    let id = parse_id(&id)?;
    let (row, state, _) = load(&runtime, &principal, id).await?;
    let history = runtime.store.history(id).await?;
    let checks = runtime.verify_instance(&row, &history).await?;
    // A failing check has just flagged it, unless it already was (the first reason stays).
    let flagged = row.flagged.clone().or_else(|| Some(checks.failures()).filter(|f| !f.is_empty()));
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
        source_notices: state.source_notices,
        events,
    }))
}

pub async fn act(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    Body(request): Body<ActionRequest>,
) -> Result<Json<InstanceView>, Problem> {
    let id = parse_id(&id)?;
    perform(&runtime, &principal, id, request).await
}

/// Takes an action on an instance as `principal`.
pub async fn perform(
    runtime: &Runtime,
    principal: &Principal,
    id: i64,
    request: ActionRequest,
) -> Result<Json<InstanceView>, Problem> {
    let (_, state, definition) = load(runtime, principal, id).await?;
    if principal.role == "regulator" || principal.role == "scheduler" {
        return Err(Problem::forbidden(format!("a {} does not act on instances", principal.role)));
    }
    let overridden = respect_claims(runtime, principal, id, &request.action).await?;
    let actor = principal.actor(&definition, &state);
    let event = Event::Action { actor, action: request.action.clone(), data: request.data };
    runtime.apply(id, &event).await?;
    if let Some(assignee) = overridden {
        let detail = json!({"action": request.action, "claimed_by": assignee});
        runtime.store.audit(&principal.name, "task.complete_claimed_by_other", &id.to_string(), detail).await?;
    }
    Ok(Json(view(runtime, principal, id).await?))
}

/// A task claimed by someone is completed by its assignee only; an administrator may still
/// complete it, and that is recorded. Returns whose claim an administrator overrode.
async fn respect_claims(
    runtime: &Runtime,
    principal: &Principal,
    id: i64,
    action: &str,
) -> Result<Option<String>, Problem> {
    let offering: Vec<_> = runtime
        .store
        .open_tasks_of(id)
        .await?
        .into_iter()
        .filter(|t| serde_json::from_str::<Vec<String>>(&t.actions).is_ok_and(|a| a.iter().any(|a| a == action)))
        .collect();
    let mine_or_free = offering.iter().any(|t| t.assignee.as_ref().is_none_or(|a| *a == principal.name));
    let Some(holder) = offering.iter().find_map(|t| t.assignee.clone()).filter(|_| !mine_or_free) else {
        return Ok(None);
    };
    if principal.is_admin() {
        Ok(Some(holder))
    } else {
        Err(Problem::new(
            StatusCode::CONFLICT,
            "Claimed by someone else",
            format!("the task offering `{action}` is claimed by {holder}; only they (or an administrator) complete it"),
        ))
    }
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
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Params(query): Params<ListQuery>,
) -> Result<Json<Paged<InstanceSummary>>, Problem> {
    let page = Page::parse(query.page.as_deref(), query.per_page.as_deref())?;
    let mut select = instances::Entity::find().order_by_asc(instances::Column::Id);
    if let Some(procedure) = &query.procedure {
        select = select.filter(instances::Column::Procedure.eq(procedure.clone()));
    }
    if let Some(status) = &query.status {
        select = select.filter(instances::Column::Status.eq(status.clone()));
    }
    if let Some(overdue) = query.overdue {
        select = select.filter(instances::Column::Overdue.eq(overdue));
    }
    if let Some(org) = &query.org {
        select = select.filter(organization::involves(instances::Column::Organizations, org));
    }
    match query.flagged {
        Some(true) => select = select.filter(instances::Column::Flagged.is_not_null()),
        Some(false) => select = select.filter(instances::Column::Flagged.is_null()),
        None => {}
    }
    if principal.role == "staff" {
        select = select.filter(organization::involves_any(instances::Column::Organizations, &principal.organizations));
    }
    let (rows, total) = page.read(select, &runtime.store.db).await?;
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
