//! /v1/instances: start, list, inspect, history, act.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde::Deserialize;
use serde_json::{json, Value};
use statflow_workflows::engine::{Event, InstanceState};

use super::auth::Principal;
use super::problem::{Body, Problem};
use super::views;
use crate::runtime::Runtime;
use crate::store::entities::instances;
use crate::store::transition::{chain_hash, Origin, GENESIS};
use crate::store::{from_millis, StoreError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    procedure: String,
    jurisdiction: String,
    #[serde(default)]
    input: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    pub action: String,
    #[serde(default)]
    pub data: Value,
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

pub async fn view(runtime: &Runtime, principal: &Principal, id: i64) -> Result<Value, Problem> {
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
) -> Result<(StatusCode, Json<Value>), Problem> {
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
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    Ok(Json(view(&runtime, &principal, parse_id(&id)?).await?))
}

pub async fn history(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let id = parse_id(&id)?;
    load(&runtime, &principal, id).await?;
    let rows = runtime.store.history(id).await?;
    // Verify the chain while listing it: any edited or missing row shows.
    let mut prev = GENESIS.to_owned();
    let mut intact = true;
    let events: Vec<Value> = rows
        .iter()
        .map(|h| {
            intact &= h.prev_hash == prev && chain_hash(&prev, h.seq, h.at, &h.actor, &h.event) == h.hash;
            prev = h.hash.clone();
            json!({
                "seq": h.seq,
                "at": from_millis(h.at),
                "actor": h.actor,
                "event": serde_json::from_str::<Value>(&h.event).unwrap_or(Value::Null),
                "prev_hash": h.prev_hash,
                "hash": h.hash,
            })
        })
        .collect();
    Ok(Json(json!({"instance": id, "chain_intact": intact, "events": events})))
}

pub async fn act(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Path(id): Path<String>,
    Body(request): Body<ActionRequest>,
) -> Result<Json<Value>, Problem> {
    let id = parse_id(&id)?;
    perform(&runtime, &principal, id, request).await
}

/// Takes an action on an instance as `principal`.
pub async fn perform(
    runtime: &Runtime,
    principal: &Principal,
    id: i64,
    request: ActionRequest,
) -> Result<Json<Value>, Problem> {
    let (_, state, definition) = load(runtime, principal, id).await?;
    if principal.role == "regulator" || principal.role == "scheduler" {
        return Err(Problem::forbidden(format!("a {} does not act on instances", principal.role)));
    }
    let actor = principal.actor(&definition, &state);
    let event = Event::Action { actor, action: request.action, data: request.data };
    runtime.apply(id, &event).await?;
    Ok(Json(view(runtime, principal, id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    procedure: Option<String>,
    status: Option<String>,
    overdue: Option<bool>,
    org: Option<String>,
    #[serde(default = "first_page")]
    page: u64,
    #[serde(default = "page_size")]
    per_page: u64,
}

fn first_page() -> u64 {
    1
}

fn page_size() -> u64 {
    50
}

pub async fn list(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let Query(query) = query.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "Invalid query", e.body_text()))?;
    if query.page == 0 || query.per_page == 0 || query.per_page > 500 {
        return Err(Problem::field(StatusCode::BAD_REQUEST, "per_page", "page starts at 1; per_page is from 1 to 500"));
    }
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
        select = select.filter(instances::Column::Organizations.contains(format!(",{org},")));
    }
    if principal.role == "staff" {
        let mut scope = sea_orm::Condition::any();
        for org in &principal.organizations {
            scope = scope.add(instances::Column::Organizations.contains(format!(",{org},")));
        }
        select = select.filter(scope);
    }
    let paginator = select.paginate(&runtime.store.db, query.per_page);
    let total = paginator.num_items().await.map_err(StoreError::from)?;
    let rows = paginator.fetch_page(query.page - 1).await.map_err(StoreError::from)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "procedure": r.procedure, "jurisdiction": r.jurisdiction, "status": r.status,
                "outcome": r.outcome, "step": r.step, "due": r.next_due_at.map(from_millis), "overdue": r.overdue,
            })
        })
        .collect();
    Ok(Json(json!({"items": items, "page": query.page, "per_page": query.per_page, "total": total})))
}
