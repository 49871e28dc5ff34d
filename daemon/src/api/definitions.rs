//! /v1/definitions and /v1/calendars: what procedures exist, the JSON Schemas clients build
//! forms from, loading a new definition version, and importing a calendar year.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use statflow_workflows::definition::{mermaid, Definition};
use statflow_workflows::engine::data::json_schema;
use utoipa::ToSchema;

use super::problem::{Body, Params, PathParams, Problem};
use super::AppState;
use crate::engine::{EngineError, Imported};
use crate::principal::Principal;
use crate::store::from_millis;

/// A procedure new instances can start on.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureSummary {
    pub procedure: String,
    pub jurisdiction: String,
    pub version: String,
    pub title: String,
}

/// Every procedure (not paged: the library holds a few dozen at most).
#[derive(Debug, Serialize, ToSchema)]
pub struct Procedures {
    pub items: Vec<ProcedureSummary>,
}

pub async fn list(State(state): State<AppState>, _principal: Principal) -> Json<Procedures> {
    let definitions = state.engine.definitions();
    let items = definitions
        .procedures()
        .into_iter()
        .filter_map(|(procedure, jurisdiction, version)| {
            let title = definitions.get(&version)?.procedure.title.clone();
            Some(ProcedureSummary { procedure, jurisdiction, version, title })
        })
        .collect();
    Json(Procedures { items })
}

/// A legal source a definition cites, with its standing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    pub title: String,
    pub file: Option<String>,
    /// `in_force`, `draft` or `expired`.
    pub status: String,
    pub in_force_from: Option<chrono::NaiveDate>,
    pub in_force_until: Option<chrono::NaiveDate>,
    /// What a reader must be told today, when the source is not in force (a draft, lapsed).
    pub notice: Option<String>,
}

/// An action of a step: who takes it and the JSON Schema of its data.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionDescription {
    pub role: String,
    pub title: String,
    #[schema(value_type = Object)]
    pub data_schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepDeadline {
    /// The legal article the limit comes from.
    pub basis: Option<String>,
    /// Whether the step ends by itself when the limit expires (e.g. a publicity period).
    pub waiting_period: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StepDescription {
    pub name: String,
    pub title: String,
    pub basis: Option<String>,
    pub task_role: Option<String>,
    pub deadline: Option<StepDeadline>,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub actions: BTreeMap<String, ActionDescription>,
}

/// A definition as clients build forms from it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DefinitionView {
    pub procedure: String,
    pub jurisdiction: String,
    pub version: String,
    pub title: String,
    pub summary: String,
    pub sources: BTreeMap<String, SourceView>,
    /// Role id → title.
    pub roles: BTreeMap<String, String>,
    /// The JSON Schema of the start input.
    #[schema(value_type = Object)]
    pub input_schema: Value,
    pub initial: String,
    pub steps: Vec<StepDescription>,
    /// A Mermaid state diagram.
    pub mermaid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Which {
    jurisdiction: Option<String>,
}

fn describe(definition: &Definition, today: chrono::NaiveDate) -> DefinitionView {
    let p = &definition.procedure;
    let steps = p
        .steps
        .iter()
        .map(|(name, step)| StepDescription {
            name: name.get_ref().clone(),
            title: step.title.clone(),
            basis: step.basis.as_ref().map(|b| definition.basis_text(b.get_ref())),
            task_role: step.task.as_ref().map(|t| t.role.get_ref().clone()),
            deadline: step.deadline.as_ref().map(|d| StepDeadline {
                basis: d.basis.as_ref().map(|b| definition.basis_text(b.get_ref())),
                waiting_period: d.on_expiry.is_some(),
            }),
            is_final: step.is_final(),
            actions: step
                .actions
                .iter()
                .map(|(action, spec)| {
                    let description = ActionDescription {
                        role: spec.role.get_ref().clone(),
                        title: spec.title.clone(),
                        data_schema: json_schema(&spec.fields),
                    };
                    (action.get_ref().clone(), description)
                })
                .collect(),
        })
        .collect();
    DefinitionView {
        procedure: definition.id().to_owned(),
        jurisdiction: definition.jurisdiction().to_owned(),
        version: definition.version.clone(),
        title: p.title.clone(),
        summary: p.summary.clone(),
        sources: p
            .sources
            .iter()
            .map(|(k, s)| {
                let standing = definition.standing(k.get_ref());
                let view = SourceView {
                    title: s.title.clone(),
                    file: s.file.clone(),
                    status: standing.as_ref().map(|st| st.status.clone()).unwrap_or_default(),
                    in_force_from: standing.as_ref().and_then(|st| st.in_force_from),
                    in_force_until: standing.as_ref().and_then(|st| st.in_force_until),
                    notice: standing.as_ref().and_then(|st| st.notice(&s.title, today)),
                };
                (k.get_ref().clone(), view)
            })
            .collect(),
        roles: p.roles.iter().map(|(k, r)| (k.get_ref().clone(), r.title.clone())).collect(),
        input_schema: json_schema(&p.input),
        initial: p.initial.get_ref().clone(),
        steps,
        mermaid: mermaid(definition, today),
    }
}

pub async fn show(
    State(state): State<AppState>,
    _principal: Principal,
    PathParams(procedure): PathParams<String>,
    Params(which): Params<Which>,
) -> Result<Json<DefinitionView>, Problem> {
    let matching: Vec<(String, String, String)> = state
        .engine
        .definitions()
        .procedures()
        .into_iter()
        .filter(|(p, j, _)| *p == procedure && which.jurisdiction.as_ref().is_none_or(|w| w == j))
        .collect();
    match matching.as_slice() {
        [(_, _, version)] => {
            let definition = state
                .engine
                .definitions()
                .get(version)
                .ok_or_else(|| Problem::not_found("definition version missing"))?;
            Ok(Json(describe(&definition, statflow_workflows::calendar::local_date(state.engine.now()))))
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDefinition {
    /// The file name the definition is known by (e.g. `registration.taian.toml`).
    file: String,
    /// The definition's TOML text.
    source: String,
}

pub async fn load(
    State(state): State<AppState>,
    principal: Principal,
    Body(request): Body<NewDefinition>,
) -> Result<Response, Problem> {
    if !principal.is_admin() {
        return Err(Problem::forbidden("only administrators load definitions"));
    }
    match state.engine.load_definition(&request.file, &request.source).await {
        Ok(definition) => {
            let detail = json!({"file": request.file, "version": definition.version});
            state.store.audit(&principal.name, "definition.load", definition.id(), detail).await?;
            Ok((
                StatusCode::CREATED,
                Json(describe(&definition, statflow_workflows::calendar::local_date(state.engine.now()))),
            )
                .into_response())
        }
        Err(EngineError::InvalidDefinition(errors)) => {
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
        Err(other) => Err(other.into()),
    }
}

/// One loaded year, as the calendar listing shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct YearView {
    pub year: i32,
    pub sources: Vec<String>,
    /// `embedded` (built in) or the name it was imported under.
    pub origin: String,
    /// The reason given when this notice replaced an earlier one.
    pub correction: Option<String>,
    pub imported_at: Option<chrono::DateTime<chrono::FixedOffset>>,
}

/// The background recomputation after calendar imports.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recompute {
    /// The calendar's import generation (0: the embedded notices only).
    pub generation: i64,
    /// Running instances whose deadlines are still to be recomputed with it.
    pub instances_remaining: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Calendars {
    pub items: Vec<YearView>,
    pub recompute: Recompute,
}

/// The loaded years (built in and imported), with where each notice came from, whether it
/// was corrected, and how far the recomputation after the last import has got.
pub async fn calendars(State(state): State<AppState>, _principal: Principal) -> Result<Json<Calendars>, Problem> {
    let stored = state.store.calendar_years().await?;
    let (calendar, generation) = state.engine.calendar();
    let items = calendar
        .years()
        .map(|year| {
            let row = stored.iter().find(|r| r.year == year);
            YearView {
                year,
                sources: calendar.notice(year).map(|n| n.sources.clone()).unwrap_or_default(),
                origin: row.map_or_else(|| "embedded".to_owned(), |r| r.origin.clone()),
                correction: row.and_then(|r| r.correction.clone()),
                imported_at: row.map(|r| from_millis(r.imported_at)),
            }
        })
        .collect();
    let recompute = Recompute { generation, instances_remaining: state.store.count_stale(generation).await? };
    Ok(Json(Calendars { items, recompute }))
}

#[derive(Deserialize, ToSchema)]
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
    State(state): State<AppState>,
    principal: Principal,
    Body(request): Body<NewCalendar>,
) -> Result<(StatusCode, Json<Imported>), Problem> {
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
    let imported = state.engine.import_calendar(&request.origin, &request.content, correction).await?;
    let action = if correction.is_some() { "calendar.correct" } else { "calendar.import" };
    let detail = json!({"years": imported.years, "generation": imported.generation, "reason": correction});
    state.store.audit(&principal.name, action, &request.origin, detail).await?;
    Ok((StatusCode::ACCEPTED, Json(imported)))
}
