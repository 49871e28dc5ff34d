//! 超期督办: the overdue board as a page — red (overdue, by how many working days, with the
//! escalation level reached) and yellow (due within the reminder window) by the organization
//! that owes the work — with a filter by organization and a CSV export of the same rows.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{format, ConsoleState, PageError, Viewer};
use crate::api::overdue::{compute, BoardItem};

/// Rows on one page of the board (and in one export).
const ROWS: u64 = 500;

#[derive(Deserialize)]
pub struct BoardQuery {
    org: Option<String>,
    procedure: Option<String>,
}

#[derive(Serialize)]
struct Row {
    colour: &'static str,
    organization: String,
    instance: i64,
    procedure: String,
    step: String,
    task: Option<String>,
    last_day: Option<String>,
    provisional: bool,
    standing: String,
    escalation: Option<String>,
    basis: String,
}

fn row(organization: &str, red: bool, item: &BoardItem) -> Row {
    Row {
        colour: if red { "red" } else { "yellow" },
        organization: organization.to_owned(),
        instance: item.instance,
        procedure: item.title.clone(),
        step: item.step_title.clone(),
        task: item.task.as_ref().map(|t| t.title.clone()),
        last_day: item.due.map(format::date_time),
        provisional: item.provisional,
        standing: if red {
            format!("已超期 {} 个工作日", item.working_days_overdue)
        } else {
            format::remaining(item.remaining_working_days)
        },
        escalation: item.escalation_level.clone(),
        basis: item.basis.clone(),
    }
}

async fn rows(console: &ConsoleState, viewer: &Viewer, query: &BoardQuery) -> Result<Vec<Row>, PageError> {
    let board = compute(&console.app, &viewer.principal, chosen(&query.org), ROWS, 0).await?;
    let procedure = chosen(&query.procedure);
    let wanted = |item: &&BoardItem| procedure.is_none_or(|p| item.procedure == p);
    let mut rows = Vec::new();
    for organization in &board.organizations {
        rows.extend(organization.red.iter().filter(wanted).map(|item| row(&organization.organization, true, item)));
        rows.extend(organization.yellow.iter().filter(wanted).map(|item| row(&organization.organization, false, item)));
    }
    Ok(rows)
}

fn chosen(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|o| !o.is_empty())
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<BoardQuery>) -> Response {
    let shown = async {
        let rows = rows(&console, &viewer, &query).await?;
        let red = rows.iter().filter(|r| r.colour == "red").count();
        let organizations = match viewer.principal.scope() {
            Some(mine) => mine,
            None => {
                let all = crate::store::Slice { offset: 0, limit: 1000 };
                console.app.store.organizations(all).await?.0.into_iter().map(|o| o.id).collect()
            }
        };
        let procedures: Vec<(String, String)> = console
            .app
            .engine
            .definitions()
            .procedures()
            .into_iter()
            .filter_map(|(id, _, version)| {
                Some((id, console.app.engine.definitions().get(&version)?.procedure.title.clone()))
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let export = format!(
            "org={}&procedure={}",
            super::session::encode_component(chosen(&query.org).unwrap_or_default()),
            super::session::encode_component(chosen(&query.procedure).unwrap_or_default())
        );
        Ok::<_, PageError>(console.render(
            StatusCode::OK,
            "overdue.html",
            minijinja::context! {
                viewer => viewer.header(), active => "overdue", rows, red, organizations, procedures, export,
                org => chosen(&query.org), procedure => chosen(&query.procedure),
                now => format::date_time(console.app.engine.now()),
            },
        ))
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// The same rows as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the
/// Chinese text correctly).
pub async fn csv(State(console): State<ConsoleState>, viewer: Viewer, Query(query): Query<BoardQuery>) -> Response {
    let rows = match rows(&console, &viewer, &query).await {
        Ok(rows) => rows,
        Err(error) => return error.into_page(&console, Some(&viewer)),
    };
    let mut text =
        String::from("\u{feff}状态,承办单位,办件编号,事项,步骤,任务,到期时间,暂算,超期情况,督办级别,依据\r\n");
    for r in rows {
        let fields = [
            if r.colour == "red" { "超期".to_owned() } else { "临期".to_owned() },
            r.organization,
            r.instance.to_string(),
            r.procedure,
            r.step,
            r.task.unwrap_or_default(),
            r.last_day.unwrap_or_default(),
            if r.provisional { "是".into() } else { "否".into() },
            r.standing,
            r.escalation.unwrap_or_default(),
            r.basis,
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        text.push_str(&line.join(","));
        text.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"overdue.csv\""),
        ],
        text,
    )
        .into_response()
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is prefixed with `'`
/// so that a spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
