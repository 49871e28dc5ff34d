//! 查询: instances by procedure, jurisdiction, status, organization, overdue, start date and
//! text in their data, newest first, a page at a time; and starting a new instance through a
//! form generated from the definition's input fields.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use statflow_workflows::calendar::start_of_day;
use statflow_workflows::engine::data::{confidential, FieldProblem};

use super::forms::{self, FormField};
use super::{format, ConsoleState, PageError, Viewer};
use crate::api::instances::start_checked;
use crate::api::problem::Problem;
use crate::store::instances::InstanceFilter;
use crate::store::records::{InstanceRecord, InstanceStatus};
use crate::store::to_millis;

/// Rows on a page of results.
const PAGE: usize = 20;
/// Instances read per query while a page fills: a text search reads in chunks, never all.
const CHUNK: u64 = 200;
/// The longest text searched for.
const MAX_TEXT: usize = 100;

#[derive(Deserialize, Serialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    procedure: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    org: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    text: String,
    /// Continue with instances older than this id (the previous page's last).
    before: Option<i64>,
}

#[derive(Serialize)]
struct ResultRow {
    id: i64,
    procedure: String,
    jurisdiction: String,
    status: &'static str,
    step: Option<String>,
    overdue: bool,
    summary: String,
    created: String,
}

#[derive(Serialize)]
struct Startable {
    procedure: String,
    jurisdiction: String,
    title: String,
}

fn text_of(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

/// A date field of the form, as the start of that day in Asia/Shanghai.
fn day(field: &str, value: &str) -> Result<Option<i64>, PageError> {
    let Some(value) = text_of(value) else { return Ok(None) };
    let date = NaiveDate::parse_from_str(&value, "%Y-%m-%d")
        .map_err(|_| Problem::field(StatusCode::BAD_REQUEST, field, format!("「{value}」不是 年-月-日 形式的日期")))?;
    Ok(Some(to_millis(start_of_day(date))))
}

/// The data fields of `record` its viewer may read (confidential ones never match a search).
fn visible_text(console: &ConsoleState, record: &InstanceRecord) -> Vec<String> {
    let Some(definition) = console.app.engine.definitions().get(&record.definition_version) else { return vec![] };
    let Ok(state) = record.state() else { return vec![] };
    let hidden = confidential(&definition.procedure.input);
    let mut shown: Vec<(&String, String)> = state
        .data
        .iter()
        .filter(|(field, _)| !hidden.contains(field))
        .filter_map(|(field, value)| Some((field, value.as_str()?.to_owned())))
        .collect();
    // Names (the resource's, the applicant's) say most about an instance: they come first.
    shown.sort_by_key(|(field, _)| !field.contains("name"));
    shown.into_iter().map(|(_, value)| value).collect()
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<SearchQuery>) -> Response {
    search(&console, &viewer, query).await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

async fn search(console: &ConsoleState, viewer: &Viewer, query: SearchQuery) -> Result<Response, PageError> {
    let text = text_of(&query.text);
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(Problem::field(StatusCode::BAD_REQUEST, "text", format!("查询文字不超过 {MAX_TEXT} 个字")).into());
    }
    let status = match query.status.as_str() {
        "" => None,
        text => Some(
            InstanceStatus::parse(text)
                .ok_or_else(|| Problem::field(StatusCode::BAD_REQUEST, "status", "状态只能是办理中或已办结"))?,
        ),
    };
    let filter = InstanceFilter {
        procedure: text_of(&query.procedure),
        jurisdiction: text_of(&query.jurisdiction),
        status,
        overdue: (query.overdue == "yes").then_some(true),
        organization: text_of(&query.org),
        within: viewer.principal.scope(),
        created_from: day("from", &query.from)?,
        created_before: day("until", &query.until)?.map(|d| d + 86_400_000),
        containing: text.clone(),
        ..InstanceFilter::default()
    };
    let mut found: Vec<InstanceRecord> = Vec::new();
    let mut before = query.before;
    let mut more = false;
    'scan: loop {
        let chunk = console.app.store.instances_before(&filter, before, CHUNK).await?;
        let exhausted = (chunk.len() as u64) < CHUNK;
        for record in chunk {
            before = Some(record.id);
            let matches =
                text.as_ref().is_none_or(|t| visible_text(console, &record).iter().any(|v| v.contains(t.as_str())));
            if matches {
                if found.len() == PAGE {
                    more = true;
                    break 'scan;
                }
                found.push(record);
            }
        }
        if exhausted {
            break;
        }
    }
    let rows: Vec<ResultRow> = found
        .iter()
        .map(|r| {
            let definition = console.app.engine.definitions().get(&r.definition_version);
            let title = definition.as_ref().map_or_else(|| r.procedure.clone(), |d| d.procedure.title.clone());
            let step = r
                .step
                .as_ref()
                .map(|s| definition.as_ref().and_then(|d| d.step(s)).map_or_else(|| s.clone(), |st| st.title.clone()));
            ResultRow {
                id: r.id,
                procedure: title,
                jurisdiction: r.jurisdiction.clone(),
                status: if r.is_running() { "办理中" } else { "已办结" },
                step,
                overdue: r.overdue,
                summary: visible_text(console, r).into_iter().take(3).collect::<Vec<_>>().join(" · "),
                created: format::date_time(crate::store::from_millis(r.created_at)),
            }
        })
        .collect();
    let next = more.then(|| found.last().map(|r| r.id)).flatten();
    let procedures: Vec<Startable> = console
        .app
        .engine
        .definitions()
        .procedures()
        .into_iter()
        .filter_map(|(procedure, jurisdiction, version)| {
            let title = console.app.engine.definitions().get(&version)?.procedure.title.clone();
            Some(Startable { procedure, jurisdiction, title })
        })
        .collect();
    let mut next_query = query;
    next_query.before = next;
    let next_link = next.map(|_| serde_urlencoded_query(&next_query));
    Ok(console.render(
        StatusCode::OK,
        "search.html",
        minijinja::context! {
            viewer => viewer.header(), active => "search", rows, procedures, query => next_query,
            next_link, may_start => viewer.principal.role != crate::principal::Role::Regulator,
        },
    ))
}

/// The query string of `query` (for the next page's link).
fn serde_urlencoded_query(query: &SearchQuery) -> String {
    let pairs = [
        ("procedure", &query.procedure),
        ("jurisdiction", &query.jurisdiction),
        ("status", &query.status),
        ("org", &query.org),
        ("overdue", &query.overdue),
        ("from", &query.from),
        ("until", &query.until),
        ("text", &query.text),
    ];
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", super::session::encode_component(v)))
        .collect();
    if let Some(before) = query.before {
        parts.push(format!("before={before}"));
    }
    parts.join("&")
}

#[derive(Deserialize)]
pub struct StartQuery {
    procedure: String,
    jurisdiction: String,
}

/// The form that starts an instance of a procedure, from its input fields.
pub async fn start_form(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Query(query): Query<StartQuery>,
) -> Response {
    start_page(&console, &viewer, &query.procedure, &query.jurisdiction, &HashMap::new(), &[], None, StatusCode::OK)
        .unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

#[allow(clippy::too_many_arguments)]
fn start_page(
    console: &ConsoleState,
    viewer: &Viewer,
    procedure: &str,
    jurisdiction: &str,
    entered: &HashMap<String, String>,
    problems: &[FieldProblem],
    message: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    if viewer.principal.role == crate::principal::Role::Regulator {
        return Err(Problem::forbidden("监管人员不发起办件。").into());
    }
    let definition = console
        .app
        .engine
        .definitions()
        .require(procedure, jurisdiction)
        .map_err(|_| Problem::not_found("没有这个事项。"))?;
    let fields: Vec<FormField> = forms::fields(&definition.procedure.input, entered, problems);
    Ok(console.render(
        status,
        "start.html",
        minijinja::context! {
            viewer => viewer.header(), active => "search", procedure, jurisdiction,
            title => definition.procedure.title.clone(), summary => definition.procedure.summary.clone(),
            fields, message,
        },
    ))
}

/// Starts the instance: fields checked first (every problem at its field), then the same
/// checks as the API's start.
pub async fn start(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Form(posted): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let entered: HashMap<String, String> = posted.into_iter().collect();
        viewer.check_csrf(entered.get("csrf").map(String::as_str).unwrap_or_default())?;
        let procedure = entered.get("procedure").cloned().unwrap_or_default();
        let jurisdiction = entered.get("jurisdiction").cloned().unwrap_or_default();
        let again = |problems: Vec<FieldProblem>, message: String, status| {
            start_page(&console, &viewer, &procedure, &jurisdiction, &entered, &problems, Some(message), status)
        };
        let definition = console
            .app
            .engine
            .definitions()
            .require(&procedure, &jurisdiction)
            .map_err(|_| Problem::not_found("没有这个事项。"))?;
        let input = match forms::parse(&definition.procedure.input, &entered) {
            Ok(input) => input,
            Err(problems) => {
                return again(problems, "请更正标出的项目后重新提交。".into(), StatusCode::UNPROCESSABLE_ENTITY)
            }
        };
        match start_checked(&console.app, &viewer.principal, procedure.clone(), jurisdiction.clone(), input).await {
            Ok(standing) => Ok(Redirect::to(&format!("/instances/{}", standing.instance.id)).into_response()),
            Err(problem) if problem.status.is_server_error() => Err(problem.into()),
            Err(problem) => {
                // The engine's own refusals (a wrong organization, say) are shown above the form.
                let message = match &problem.field {
                    Some(field) => format!("未能发起（{field}）：{}", problem.detail),
                    None => format!("未能发起：{}", problem.detail),
                };
                again(Vec::new(), message, problem.status)
            }
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
