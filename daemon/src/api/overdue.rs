//! /v1/overdue: the overdue board. Red items have passed their deadline (with how many
//! working days overdue and the escalation level reached); yellow items fall due within their
//! step's reminder window. Grouped by the organization that owes the work.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, FixedOffset};
use serde::{Deserialize, Serialize};
use statflow_workflows::calendar::Calendar;
use statflow_workflows::definition::Step;
use utoipa::ToSchema;

use super::page::{self, MAX_PER_PAGE};
use super::problem::{Params, Problem};
use super::AppState;
use crate::principal::Principal;
use crate::store::instances::DueRow;
use crate::store::records::InstanceRecord;
use crate::store::to_millis;

/// A step whose deadline has no reminder plan is yellow this many working days ahead.
const DEFAULT_WINDOW_WORKING_DAYS: i64 = 2;

/// No reminder window reaches further than this many calendar days; rows due later are not
/// read at all.
const LOOKAHEAD_DAYS: i64 = 45;

/// How many working days before its deadline a step's item turns yellow: its earliest
/// reminder, or [`DEFAULT_WINDOW_WORKING_DAYS`] for a step that sends none.
fn reminder_window(step: &Step) -> i64 {
    step.deadline
        .as_ref()
        .and_then(|d| d.remind_working_days_before.iter().max().copied())
        .map_or(DEFAULT_WINDOW_WORKING_DAYS, i64::from)
}

/// The latest instant a yellow item can be due: the end of the last day within the widest
/// reminder window of any loaded definition. Instances due later are never read, so the
/// board costs what is near its deadline, not what is running.
fn due_by(state: &AppState, now: DateTime<FixedOffset>, calendar: &Calendar) -> i64 {
    let widest = state
        .engine
        .definitions()
        .all()
        .iter()
        .flat_map(|d| d.procedure.steps.values().map(reminder_window))
        .fold(DEFAULT_WINDOW_WORKING_DAYS, i64::max);
    let today = statflow_workflows::calendar::local_date(now);
    // One working day more than the window: a limit's last day is the day before its due.
    let last = calendar.add_working_days(today, (widest + 1) as u32).value;
    let bound = statflow_workflows::calendar::end_of_day(last).min(now + Duration::days(LOOKAHEAD_DAYS));
    to_millis(bound)
}

/// The overdue board: per organization owing the work, what is overdue and what is due soon.
#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    pub now: DateTime<FixedOffset>,
    pub organizations: Vec<OrganizationBoard>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationBoard {
    pub organization: String,
    /// Past their deadline, earliest due first.
    pub red: Vec<BoardItem>,
    /// Within their step's reminder window, earliest due first.
    pub yellow: Vec<BoardItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardTask {
    pub role: String,
    pub title: String,
}

/// An instance on the board.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardItem {
    pub instance: i64,
    pub procedure: String,
    pub jurisdiction: String,
    pub title: String,
    pub step: String,
    pub step_title: String,
    pub task: Option<BoardTask>,
    pub due: Option<DateTime<FixedOffset>>,
    pub provisional: bool,
    pub remaining_working_days: i64,
    pub working_days_overdue: i64,
    pub escalations_sent: u32,
    /// The title of the escalation level reached, if any.
    pub escalation_level: Option<String>,
    pub basis: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverdueQuery {
    /// Only the items owed by this organization.
    org: Option<String>,
    /// Items on this page (at most [`MAX_PER_PAGE`]).
    per_page: Option<String>,
    /// Continue after this instance id (the previous page's `next`).
    after: Option<String>,
}

/// Instances read per query while a page fills: memory stays bounded by this, not by how
/// many instances are running.
const SCAN_CHUNK: u64 = 500;

pub async fn board(
    State(state): State<AppState>,
    principal: Principal,
    Params(query): Params<OverdueQuery>,
) -> Result<Json<Board>, Problem> {
    let per_page = page::bounded("per_page", query.per_page.as_deref(), 100, 1, MAX_PER_PAGE)?;
    let after = page::bounded("after", query.after.as_deref(), 0, 0, i64::MAX as u64)? as i64;
    Ok(Json(compute(&state, &principal, query.org.as_deref(), per_page, after).await?))
}

/// One page of the board for `principal`: up to `per_page` items of instances after id
/// `after`, owed by `org` if given. The API and the console's 超期督办 page both show it.
pub async fn compute(
    state: &AppState,
    principal: &Principal,
    org: Option<&str>,
    per_page: u64,
    mut after: i64,
) -> Result<Board, Problem> {
    let now = state.engine.now();
    let (calendar, _) = state.engine.calendar();
    let due_by = due_by(state, now, &calendar);
    let within = principal.scope();
    // Instances are read in id order, a chunk at a time, until the page is full; the reminder
    // window needs the calendar, so that part of the filter runs here: first on a few columns
    // of each row, then on the states of those near their deadline. An `org` narrows the
    // scan to instances involving it; the exact owner is checked per item.
    let mut rows = Vec::new();
    let next = loop {
        let chunk = state.store.due_instances(due_by, within.as_deref(), org, after, SCAN_CHUNK).await?;
        let exhausted = (chunk.len() as u64) < SCAN_CHUNK;
        after = chunk.last().map_or(after, |row| row.id);
        let near: Vec<i64> =
            chunk.iter().filter(|row| !clearly_not_due_soon(state, row, now, &calendar)).map(|row| row.id).collect();
        let mut records = state.store.instances_by_id(&near).await?;
        let mut full = None;
        for id in near {
            let Some(row) = records.remove(&id) else { continue };
            if let Some(item) = item(state, &row, now, &calendar, org)? {
                rows.push(item);
                if rows.len() as u64 == per_page {
                    full = Some(row.id);
                    break;
                }
            }
        }
        if full.is_some() || exhausted {
            break full;
        }
    };
    let mut board: BTreeMap<String, (Vec<BoardItem>, Vec<BoardItem>)> = BTreeMap::new();
    for (organization, red, item) in rows {
        let entry = board.entry(organization).or_default();
        if red {
            entry.0.push(item);
        } else {
            entry.1.push(item);
        }
    }
    let organizations = board
        .into_iter()
        .map(|(organization, (mut red, mut yellow))| {
            // Earliest due first within each group; a stopped clock (no due) last.
            for items in [&mut red, &mut yellow] {
                items.sort_by_key(|item| (item.due.is_none(), item.due));
            }
            OrganizationBoard { organization, red, yellow }
        })
        .collect();
    Ok(Board { now, organizations, next: next.map(|id| id.to_string()) })
}

/// Whether the row alone (its due instant and step, without decoding its state) shows the
/// instance is neither overdue nor within its step's reminder window: most running
/// instances, and reading their states would cost the board most of its time. A working
/// day of margin keeps it on the safe side of how limits count their last day.
fn clearly_not_due_soon(app: &AppState, row: &DueRow, now: DateTime<FixedOffset>, calendar: &Calendar) -> bool {
    let (false, Some(due), Some(step)) = (row.overdue, row.next_due_at, row.step.as_deref()) else { return false };
    let Some(definition) = app.engine.definitions().get(&row.definition_version) else { return false };
    let Some(spec) = definition.step(step) else { return false };
    let window = reminder_window(spec);
    let last_day = statflow_workflows::calendar::local_date(crate::store::from_millis(due - 1));
    calendar.remaining_working_days(now, last_day) > window + 1
}

/// The board item of a running instance: (organization owing the work, red, item), or
/// `None` when it is neither overdue nor within its reminder window.
fn item(
    app: &AppState,
    row: &InstanceRecord,
    now: DateTime<FixedOffset>,
    calendar: &Calendar,
    org: Option<&str>,
) -> Result<Option<(String, bool, BoardItem)>, Problem> {
    let state = row.state()?;
    let (Some(step), Some(definition)) = (&state.step, app.engine.definitions().get(&row.definition_version)) else {
        return Ok(None);
    };
    let (Some(deadline), Some(spec)) = (&step.deadline, definition.step(&step.name)) else { return Ok(None) };
    let Some(remaining) = deadline.rule.remaining_working_days(now, calendar) else { return Ok(None) };
    let window = reminder_window(spec);
    let red = deadline.overdue;
    if !red && (remaining > window || deadline.rule.status(calendar).paused) {
        return Ok(None);
    }
    let organization = step
        .task
        .as_ref()
        .and_then(|t| t.organization.clone())
        .or_else(|| row.organizations.first().cloned())
        .unwrap_or_default();
    if org.is_some_and(|org| org != organization) {
        return Ok(None);
    }
    let plan = spec
        .deadline
        .as_ref()
        .and_then(|d| d.escalation.as_ref())
        .and_then(|name| definition.procedure.escalations.get(name.get_ref().as_str()));
    let level = deadline.escalations_sent as usize;
    let level_title = plan.and_then(|p| p.levels.get(level.min(p.levels.len()).checked_sub(1)?)).map(|l| &l.title);
    let item = BoardItem {
        instance: row.id,
        procedure: row.procedure.clone(),
        jurisdiction: row.jurisdiction.clone(),
        title: definition.procedure.title.clone(),
        step: step.name.clone(),
        step_title: spec.title.clone(),
        task: step.task.as_ref().map(|t| BoardTask { role: t.role.clone(), title: t.title.clone() }),
        due: deadline.due,
        provisional: deadline.provisional,
        remaining_working_days: remaining.max(0),
        working_days_overdue: if red { (-remaining).max(0) } else { 0 },
        escalations_sent: deadline.escalations_sent,
        escalation_level: level_title.cloned(),
        basis: definition.basis_text(&deadline.basis),
    };
    Ok(Some((organization, red, item)))
}
