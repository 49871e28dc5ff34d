//! 事项定义: the procedures new instances start on (title, jurisdiction, version, the status
//! of the texts they rest on), each one's steps in order with their limits and bases, and
//! loading a new version, with every problem shown as `file:line`. Administrators load;
//! everyone signed in may read.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use serde::{Deserialize, Serialize};
use statflow_workflows::calendar::local_date;

use super::{ConsoleState, PageError, Viewer};
use crate::api::problem::Problem;
use crate::engine::EngineError;

#[derive(Serialize)]
struct ProcedureRow {
    procedure: String,
    jurisdiction: String,
    title: String,
    version: String,
    notices: Vec<String>,
}

#[derive(Serialize)]
struct StepRow {
    title: String,
    task: Option<String>,
    limit: Option<String>,
    basis: Option<String>,
    actions: Vec<String>,
}

#[derive(Deserialize)]
pub struct DefinitionsQuery {
    loaded: Option<String>,
}

pub async fn list(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<DefinitionsQuery>,
) -> Response {
    list_page(&console, &viewer, query.loaded, Vec::new(), String::new(), StatusCode::OK)
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

fn list_page(
    console: &ConsoleState,
    viewer: &Viewer,
    loaded: Option<String>,
    errors: Vec<String>,
    file: String,
    status: StatusCode,
) -> Result<Response, PageError> {
    let definitions = console.app.engine.definitions();
    let today = local_date(console.app.engine.now());
    let rows: Vec<ProcedureRow> = definitions
        .procedures()
        .into_iter()
        .filter_map(|(procedure, jurisdiction, version)| {
            let definition = definitions.get(&version)?;
            Some(ProcedureRow {
                title: definition.procedure.title.clone(),
                notices: definition.source_notices(today),
                procedure,
                jurisdiction,
                version,
            })
        })
        .collect();
    Ok(console.render(
        status,
        "definitions.html",
        minijinja::context! {
            viewer => viewer.header(), active => "definitions", rows, loaded, errors, file,
        },
    ))
}

/// One procedure's current definition: its steps in the order a reader follows them.
pub async fn show(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path((procedure, jurisdiction)): Path<(String, String)>,
) -> Response {
    let shown = || -> Result<Response, PageError> {
        let definition = console
            .app
            .engine
            .definitions()
            .require(&procedure, &jurisdiction)
            .map_err(|_| Problem::not_found("没有这个事项。"))?;
        let steps: Vec<StepRow> = definition
            .steps_in_order()
            .into_iter()
            .filter_map(|name| {
                let step = definition.step(name)?;
                let limit = step.deadline.as_ref().map(super::deadline::limit);
                Some(StepRow {
                    title: step.title.clone(),
                    task: step.task.as_ref().map(|t| t.title.clone()),
                    limit: limit.or_else(|| step.no_deadline.as_ref().map(|_| "不设时限".to_owned())),
                    basis: step.basis.as_ref().map(|b| definition.basis_text(b.get_ref())),
                    actions: step
                        .actions
                        .iter()
                        .map(|(name, a)| if a.title.is_empty() { name.get_ref().clone() } else { a.title.clone() })
                        .collect(),
                })
            })
            .collect();
        let today = local_date(console.app.engine.now());
        // Every stored version of this procedure: running instances keep the one they began on.
        let mut versions: Vec<String> = console
            .app
            .engine
            .definitions()
            .all()
            .iter()
            .filter(|d| d.id() == procedure && d.jurisdiction() == jurisdiction)
            .map(|d| d.version.clone())
            .collect();
        versions.sort();
        Ok(console.render(
            StatusCode::OK,
            "definition.html",
            minijinja::context! {
                viewer => viewer.header(), active => "definitions",
                title => definition.procedure.title.clone(), summary => definition.procedure.summary.clone(),
                procedure, jurisdiction, version => definition.version.clone(),
                notices => definition.source_notices(today), steps,
                diagram => super::diagram::svg(&definition, None, &[]), versions,
            },
        ))
    };
    shown().unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[derive(Deserialize)]
pub struct LoadForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    source: String,
}

/// Loads a new version (administrators): on success it is current for new instances; every
/// problem of an invalid file is listed as `file:line: message` and nothing changes.
pub async fn load(State(console): State<ConsoleState>, viewer: Viewer, Form(form): Form<LoadForm>) -> Response {
    let result = async {
        viewer.require_administrator()?;
        viewer.check_csrf(&form.csrf)?;
        let file = if form.file.trim().is_empty() { "console.toml".to_owned() } else { form.file.trim().to_owned() };
        match console.app.engine.load_definition(&file, &form.source).await {
            Ok(definition) => {
                let detail = serde_json::json!({"file": file, "version": definition.version});
                console.app.store.audit(&viewer.principal.name, "definition.load", definition.id(), detail).await?;
                let said = format!(
                    "已载入「{}」新版本 {}，新办件将按此版本办理。",
                    definition.procedure.title, definition.version
                );
                Ok::<_, PageError>(super::redirect_saying("/definitions", "loaded", &said))
            }
            Err(EngineError::InvalidDefinition(errors)) => {
                let errors = errors.iter().map(ToString::to_string).collect();
                list_page(&console, &viewer, None, errors, file, StatusCode::UNPROCESSABLE_ENTITY)
            }
            Err(other) => Err(other.into()),
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
