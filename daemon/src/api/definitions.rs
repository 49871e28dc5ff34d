//! /v1/definitions and /v1/calendars: what procedures exist, the JSON Schemas clients build
//! forms from, loading a new definition version, and importing a calendar year.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use statflow_workflows::definition::{mermaid, Definition};
use statflow_workflows::engine::data::json_schema;

use super::auth::Principal;
use super::problem::{Body, Params, PathParams, Problem};
use crate::runtime::{LoadError, Runtime};

pub async fn list(State(runtime): State<Arc<Runtime>>, _principal: Principal) -> Json<Value> {
    let items: Vec<Value> = runtime
        .procedures()
        .into_iter()
        .filter_map(|(procedure, jurisdiction, version)| {
            let definition = runtime.definition(&version)?;
            Some(json!({"procedure": procedure, "jurisdiction": jurisdiction, "version": version, "title": definition.procedure.title}))
        })
        .collect();
    Json(json!({ "items": items }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    jurisdiction: Option<String>,
}

fn describe(definition: &Definition) -> Value {
    let p = &definition.procedure;
    let steps: Vec<Value> = p
        .steps
        .iter()
        .map(|(name, step)| {
            let actions: serde_json::Map<String, Value> = step
                .actions
                .iter()
                .map(|(action, spec)| {
                    (
                        action.get_ref().clone(),
                        json!({"role": spec.role.get_ref(), "title": spec.title, "data_schema": json_schema(&spec.fields)}),
                    )
                })
                .collect();
            let deadline = step.deadline.as_ref().map(|d| {
                json!({"basis": d.basis.as_ref().map(|b| definition.basis_text(b.get_ref())), "waiting_period": d.on_expiry.is_some()})
            });
            json!({
                "name": name.get_ref(),
                "title": step.title,
                "basis": step.basis.as_ref().map(|b| definition.basis_text(b.get_ref())),
                "task_role": step.task.as_ref().map(|t| t.role.get_ref().clone()),
                "deadline": deadline,
                "final": step.is_final(),
                "actions": actions,
            })
        })
        .collect();
    json!({
        "procedure": definition.id(),
        "jurisdiction": definition.jurisdiction(),
        "version": definition.version,
        "title": p.title,
        "summary": p.summary,
        "sources": p.sources.iter().map(|(k, s)| (k.get_ref().clone(), json!({"title": s.title, "file": s.file}))).collect::<serde_json::Map<_, _>>(),
        "roles": p.roles.iter().map(|(k, r)| (k.get_ref().clone(), json!(r.title))).collect::<serde_json::Map<_, _>>(),
        "input_schema": json_schema(&p.input),
        "initial": p.initial.get_ref(),
        "steps": steps,
        "mermaid": mermaid(definition),
    })
}

pub async fn show(
    State(runtime): State<Arc<Runtime>>,
    _principal: Principal,
    PathParams(procedure): PathParams<String>,
    Params(which): Params<Which>,
) -> Result<Json<Value>, Problem> {
    let matching: Vec<(String, String, String)> = runtime
        .procedures()
        .into_iter()
        .filter(|(p, j, _)| *p == procedure && which.jurisdiction.as_ref().is_none_or(|w| w == j))
        .collect();
    match matching.as_slice() {
        [(_, _, version)] => {
            let definition =
                runtime.definition(version).ok_or_else(|| Problem::not_found("definition version missing"))?;
            Ok(Json(describe(&definition)))
        }
        [] => Err(Problem::not_found(format!("no procedure `{procedure}`"))),
        several => Err(Problem::field(
            StatusCode::BAD_REQUEST,
            "jurisdiction",
            format!(
                "`{procedure}` exists for {}; say which with ?jurisdiction=",
                several.iter().map(|(_, j, _)| j.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDefinition {
    file: String,
    source: String,
}

pub async fn load(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(request): Body<NewDefinition>,
) -> Result<Response, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators load definitions"));
    }
    match runtime.load_definition(&request.file, &request.source).await {
        Ok(definition) => {
            let detail = json!({"file": request.file, "version": definition.version});
            runtime.store.audit(&principal.name, "definition.load", definition.id(), detail).await?;
            Ok((StatusCode::CREATED, Json(describe(&definition))).into_response())
        }
        Err(LoadError::Invalid(errors)) => {
            let list: Vec<Value> =
                errors.iter().map(|e| json!({"file": e.file, "line": e.line, "message": e.message})).collect();
            let body = json!({
                "type": "about:blank", "title": "Invalid definition", "status": 422,
                "detail": errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
                "field": "source", "errors": list,
            });
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
                body.to_string(),
            )
                .into_response())
        }
        Err(LoadError::Calendar(message)) => Err(Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "source", message)),
        Err(LoadError::Store(error)) => Err(error.into()),
    }
}

pub async fn calendars(State(runtime): State<Arc<Runtime>>, _principal: Principal) -> Result<Json<Value>, Problem> {
    let years = runtime.calendar_years().await?;
    let recompute = json!({
        "generation": runtime.calendar_generation(),
        "instances_remaining": runtime.instances_to_recompute().await?,
    });
    Ok(Json(json!({ "items": years, "recompute": recompute })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCalendar {
    /// A name for messages and the record, e.g. the file name.
    origin: String,
    /// The notice in TSV or holiday-cn JSON.
    content: String,
    /// Replacing a year that already has a notice is a correction: the reason, recorded.
    replace: Option<String>,
}

/// The longest reason a correction may give.
const MAX_REASON: usize = 500;

pub async fn import_calendar(
    State(runtime): State<Arc<Runtime>>,
    principal: Principal,
    Body(request): Body<NewCalendar>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators import calendars"));
    }
    if let Some(reason) = &request.replace {
        if reason.trim().is_empty() || reason.chars().count() > MAX_REASON {
            return Err(Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "replace",
                format!("the reason for a correction is 1 to {MAX_REASON} characters"),
            ));
        }
    }
    let correction = request.replace.as_deref().map(str::trim);
    match runtime.import_calendar(&request.origin, &request.content, correction).await {
        Ok(imported) => {
            let action = if correction.is_some() { "calendar.correct" } else { "calendar.import" };
            let detail = json!({"years": imported.years, "generation": imported.generation, "reason": correction});
            runtime.store.audit(&principal.name, action, &request.origin, detail).await?;
            Ok((StatusCode::ACCEPTED, Json(json!(imported))))
        }
        Err(LoadError::Calendar(message)) => {
            let field = if message.contains("`replace`") { "replace" } else { "content" };
            Err(Problem::field(StatusCode::UNPROCESSABLE_ENTITY, field, message))
        }
        Err(LoadError::Invalid(_)) => {
            Err(Problem::field(StatusCode::UNPROCESSABLE_ENTITY, "content", "not a calendar"))
        }
        Err(LoadError::Store(error)) => Err(error.into()),
    }
}
