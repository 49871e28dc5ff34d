//! 办件: one instance as a person may see it — procedure and source status, where it stands
//! among its steps, the deadline panel, the open tasks with their action forms, its data, a
//! timeline in Chinese and the hash-chain check — and acting on it through those forms.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Serialize;
use serde_json::Value;
use statflow_workflows::definition::Definition;
use statflow_workflows::engine::{self, Ending, Event, InstanceState};

use super::deadline::{panel, DeadlinePanel};
use super::forms::{self, FormField};
use super::{format, ConsoleState, PageError, Viewer};
use crate::api::problem::Problem;
use crate::api::{instances, views};
use crate::engine::ActRequest;
use crate::integrity::anchors;
use crate::integrity::verify::Verifier;
use crate::store::from_millis;
use crate::store::records::{EffectRecord, EffectStatus, HistoryEntry, InstanceRecord, InstanceStatus, TaskRecord};
use statflow_workflows::engine::data::FieldProblem;

#[derive(Serialize)]
struct StepMark {
    title: String,
    current: bool,
    visited: bool,
}

#[derive(Serialize)]
struct ActionForm {
    name: String,
    title: String,
    fields: Vec<FormField>,
    error: Option<String>,
}

#[derive(Serialize)]
struct TaskPanel {
    id: String,
    title: String,
    organization: Option<String>,
    assignee: Option<String>,
    mine: bool,
    forms: Vec<ActionForm>,
}

#[derive(Serialize)]
struct TimelineEntry {
    at: String,
    actor: String,
    what: String,
}

#[derive(Serialize)]
struct DeliveryRow {
    what: &'static str,
    status: &'static str,
    attempts: i32,
    error: Option<String>,
}

#[derive(Serialize)]
struct InstancePage {
    id: i64,
    procedure: String,
    jurisdiction: String,
    summary: String,
    source_notices: Vec<String>,
    status: &'static str,
    outcome: Option<String>,
    step: Option<String>,
    steps: Vec<StepMark>,
    /// The procedure drawn, with the current and visited steps marked (SVG markup).
    diagram: String,
    deadline: Option<DeadlinePanel>,
    tasks: Vec<TaskPanel>,
    data: Vec<(String, String)>,
    timeline: Vec<TimelineEntry>,
    deliveries: Vec<DeliveryRow>,
    chain_intact: bool,
    flagged: Option<String>,
    parent: Option<i64>,
    /// The instances its steps started: (id, procedure title).
    children: Vec<(i64, String)>,
    created: String,
}

pub async fn page(State(console): State<ConsoleState>, viewer: Viewer, Path(id): Path<String>) -> Response {
    let shown = async {
        let record = visible(&console, &viewer, &id).await?;
        render(&console, &viewer, &record, None, StatusCode::OK).await
    };
    shown.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}

/// The instance if `viewer` may see it; one they may not is answered exactly as one that does
/// not exist, so the page does not tell which.
async fn visible(console: &ConsoleState, viewer: &Viewer, id: &str) -> Result<InstanceRecord, PageError> {
    let absent = || PageError::Problem(Problem::not_found("没有这个办件，或您无权查看。"));
    let id: i64 = id.parse().map_err(|_| absent())?;
    match instances::visible(&console.app, &viewer.principal, id).await {
        Ok(record) => Ok(record),
        Err(problem) if problem.status == StatusCode::NOT_FOUND => Err(absent()),
        Err(problem) => Err(problem.into()),
    }
}

/// What an action form posted and what was wrong with it, to show again.
struct Rejected {
    action: String,
    entered: HashMap<String, String>,
    problems: Vec<FieldProblem>,
    message: Option<String>,
}

async fn render(
    console: &ConsoleState,
    viewer: &Viewer,
    record: &InstanceRecord,
    rejected: Option<Rejected>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let app = &console.app;
    let definition = app.engine.definitions().require_version(&record.definition_version)?;
    let state = record.state()?;
    let open_tasks = app.store.open_tasks_of(record.id).await?;
    let effects = app.store.effects_of(record.id).await?;
    let history = app.store.history(record.id).await?;
    let (calendar, generation) = app.engine.calendar();
    let now = app.engine.now();
    let view = views::instance(record, &state, &definition, &calendar, now, &open_tasks, &effects, &viewer.principal);
    let verifier = Verifier {
        store: &app.store,
        definitions: app.engine.definitions(),
        calendar: calendar.clone(),
        generation,
        anchoring: &anchors::NOWHERE,
    };
    let checks = verifier.verify_instance(record, &history).await?;
    let (timeline, visited) = timeline(&definition, &history, &calendar);
    let current = state.step.as_ref().map(|s| s.name.clone());
    let steps = definition
        .steps_in_order()
        .into_iter()
        .filter_map(|name| {
            let step = definition.step(name)?;
            Some(StepMark {
                title: step.title.clone(),
                current: current.as_deref() == Some(name),
                visited: visited.iter().any(|v| v == name),
            })
        })
        .collect();
    let page = InstancePage {
        id: record.id,
        procedure: definition.procedure.title.clone(),
        jurisdiction: record.jurisdiction.clone(),
        summary: definition.procedure.summary.clone(),
        source_notices: view.source_notices.clone(),
        status: match record.status {
            InstanceStatus::Running => "办理中",
            InstanceStatus::Completed => "已办结",
        },
        outcome: view.outcome.clone(),
        step: view.step.as_ref().map(|s| s.title.clone()),
        steps,
        diagram: super::diagram::svg(&definition, current.as_deref(), &visited),
        deadline: panel(&state, &definition, &calendar, now),
        tasks: task_panels(viewer, &definition, &state, &open_tasks, rejected.as_ref()),
        data: view.data.iter().map(|(k, v)| (field_label(&definition, k), shown(v))).collect(),
        timeline,
        deliveries: effects.iter().filter_map(delivery).collect(),
        chain_intact: !checks.chain.is_failure(),
        flagged: record.flagged.clone().or_else(|| Some(checks.failures()).filter(|f| !f.is_empty())),
        parent: record.parent,
        children: visible_children(console, viewer, record.id).await?,
        created: format::date_time(from_millis(record.created_at)),
    };
    Ok(console.render(status, "instance.html", minijinja::context! { viewer => viewer.header(), page }))
}

/// The instances `parent`'s steps started that `viewer` may see: (id, procedure title).
async fn visible_children(
    console: &ConsoleState,
    viewer: &Viewer,
    parent: i64,
) -> Result<Vec<(i64, String)>, PageError> {
    let app = &console.app;
    let ids = app.store.children(parent).await?;
    let children = app.store.instances_by_id(&ids).await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let child = children.get(&id).filter(|c| viewer.principal.may_see(&c.organizations))?;
            let title = app
                .engine
                .definitions()
                .get(&child.definition_version)
                .map_or(child.procedure.clone(), |d| d.procedure.title.clone());
            Some((id, title))
        })
        .collect())
}

/// The open tasks and, for those `viewer` may complete, a form per action.
fn task_panels(
    viewer: &Viewer,
    definition: &Definition,
    state: &InstanceState,
    tasks: &[TaskRecord],
    rejected: Option<&Rejected>,
) -> Vec<TaskPanel> {
    let principal = &viewer.principal;
    let step = state.step.as_ref().and_then(|s| definition.step(&s.name));
    tasks
        .iter()
        .map(|task| {
            let handles = principal.is_admin()
                || (principal.is_staff()
                    && task.organization.as_ref().is_some_and(|o| principal.organizations.contains(o)));
            let free = task.assignee.as_ref().is_none_or(|a| *a == principal.name || principal.is_admin());
            let forms = match step {
                Some(step) if handles && free => task
                    .actions
                    .iter()
                    .filter_map(|name| {
                        let action = step.actions.get(name.as_str())?;
                        let mine = rejected.filter(|r| r.action == *name);
                        let empty = HashMap::new();
                        let entered = mine.map_or(&empty, |r| &r.entered);
                        let problems = mine.map_or(&[][..], |r| &r.problems[..]);
                        Some(ActionForm {
                            name: name.clone(),
                            title: if action.title.is_empty() { name.clone() } else { action.title.clone() },
                            fields: forms::fields(&action.fields, entered, problems),
                            error: mine.and_then(|r| r.message.clone()),
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            TaskPanel {
                id: task.id.clone(),
                title: task.title.clone(),
                organization: task.organization.clone(),
                mine: task.assignee.as_deref() == Some(principal.name.as_str()),
                assignee: task.assignee.clone(),
                forms,
            }
        })
        .collect()
}

fn field_label(definition: &Definition, field: &str) -> String {
    let declared = definition
        .procedure
        .input
        .iter()
        .chain(definition.procedure.steps.values().flat_map(|s| s.actions.values()).flat_map(|a| a.fields.iter()))
        .find(|(name, _)| name.get_ref() == field)
        .map(|(_, f)| f.spec().title)
        .filter(|t| !t.is_empty());
    declared.unwrap_or_else(|| field.to_owned())
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "是".into(),
        Value::Bool(false) => "否".into(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// The history in Chinese, with the steps entered along the way (found by replaying it), and
/// the names of the steps visited.
fn timeline(
    definition: &Definition,
    history: &[HistoryEntry],
    calendar: &statflow_workflows::calendar::Calendar,
) -> (Vec<TimelineEntry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut visited = Vec::new();
    let mut state = Some(InstanceState::new(definition));
    for row in history {
        let at = format::date_time(from_millis(row.at));
        let Ok(event) = serde_json::from_str::<Event>(&row.event) else {
            entries
                .push(TimelineEntry { at, actor: actor_name(&row.actor), what: "（无法读取的记录）".into() });
            continue;
        };
        entries.push(TimelineEntry {
            at: at.clone(),
            actor: actor_name(&row.actor),
            what: describe(definition, &event, state.as_ref()),
        });
        // Replaying tells which step each event led to; if it cannot, the entries go on alone.
        let before = state.as_ref().and_then(|s| s.step.as_ref().map(|st| (st.name.clone(), st.visit)));
        state = state
            .and_then(|s| engine::apply(definition, &s, &event, from_millis(row.at), calendar).ok())
            .map(|t| t.state);
        let after = state.as_ref().and_then(|s| s.step.as_ref().map(|st| (st.name.clone(), st.visit)));
        if let Some((name, _)) = after.as_ref().filter(|a| Some(*a) != before.as_ref()) {
            let title = definition.step(name).map_or(name.clone(), |s| s.title.clone());
            entries.push(TimelineEntry { at: at.clone(), actor: String::new(), what: format!("进入「{title}」") });
            visited.push(name.clone());
        }
        if let Some(s) = state.as_ref().filter(|s| matches!(s.status, engine::Status::Completed { .. })) {
            if let engine::Status::Completed { outcome } = &s.status {
                let said = match outcome.as_str() {
                    o if o == Ending::Cancelled.as_str() => "已撤销",
                    o if o == Ending::Terminated.as_str() => "已终止",
                    other => other,
                };
                entries.push(TimelineEntry { at, actor: String::new(), what: format!("办结（{said}）") });
            }
        }
    }
    (entries, visited)
}

fn actor_name(actor: &str) -> String {
    match actor {
        "timer" | "system" => "系统".into(),
        name => name.to_owned(),
    }
}

fn describe(definition: &Definition, event: &Event, state: Option<&InstanceState>) -> String {
    let step = state.and_then(|s| s.step.as_ref()).and_then(|s| definition.step(&s.name));
    match event {
        Event::Started { .. } => "发起办件".into(),
        Event::Action { action, .. } => {
            let title =
                step.and_then(|s| s.actions.get(action.as_str())).map(|a| a.title.clone()).filter(|t| !t.is_empty());
            format!("办理：{}", title.unwrap_or_else(|| action.clone()))
        }
        Event::TimerFired { timer } if timer.contains(".remind.") => "发出到期前提醒".into(),
        Event::TimerFired { timer } if timer.contains(".escalate.") => "超期督办升级".into(),
        Event::TimerFired { timer } if timer.ends_with(".deadline") => "办理时限届满".into(),
        Event::TimerFired { .. } => "步骤计时到点".into(),
        Event::ActivityCompleted { .. } => "系统操作已完成（证书、状态或通知）".into(),
        Event::ActivityFailed { error, .. } => format!("系统操作失败：{error}"),
        Event::ChildCompleted { outcome, .. } => format!("下级办件办结（{outcome}）"),
        Event::Signal { name, .. } => format!("收到关联办件的通知（{name}）"),
        Event::CalendarChanged => "工作日历更新，时限重新计算".into(),
        Event::Ended { how: Ending::Cancelled, reason, .. } => format!("管理员撤销办件：{reason}"),
        Event::Ended { how: Ending::Terminated, reason, .. } => format!("管理员终止办件：{reason}"),
        Event::Moved { step: to, reason, .. } => {
            let title = definition.step(to).map(|s| s.title.clone()).filter(|t| !t.is_empty());
            format!("管理员将办件移至「{}」：{reason}", title.unwrap_or_else(|| to.clone()))
        }
        Event::Migrated { to_version, reason, .. } => {
            format!("管理员将办件迁移至流程定义新版本（{to_version}）：{reason}")
        }
    }
}

fn delivery(effect: &EffectRecord) -> Option<DeliveryRow> {
    use crate::store::effects::EffectKind;
    let what = match effect.kind {
        EffectKind::Notify => "通知",
        EffectKind::Escalate => "督办通知",
        EffectKind::TaskNotice => "待办通知",
        EffectKind::Webhook => "接口推送",
        EffectKind::IssueCertificate => "登记证书",
        EffectKind::SetStatus => "登记状态变更",
        EffectKind::ChangeAccess => "访问权限变更",
        EffectKind::WriteReport => "报告",
        _ => return None,
    };
    let status = match effect.status {
        EffectStatus::Pending => "待发送",
        EffectStatus::Done => "已完成",
        EffectStatus::Failed => "失败",
    };
    Some(DeliveryRow { what, status, attempts: effect.attempts, error: effect.last_error.clone() })
}

/// Takes an action through its form: the fields are checked first (every problem shown at
/// its field, nothing changed), then the engine decides as it does for the API.
pub async fn act(
    State(console): State<ConsoleState>,
    viewer: Viewer,
    Path((id, action)): Path<(String, String)>,
    Form(posted): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let entered: HashMap<String, String> = posted.into_iter().collect();
        viewer.check_csrf(entered.get("csrf").map(String::as_str).unwrap_or_default())?;
        let record = visible(&console, &viewer, &id).await?;
        if !viewer.principal.acts_on_instances() {
            return Err(PageError::Problem(Problem::forbidden("您的角色不办理办件。")));
        }
        let definition = console.app.engine.definitions().require_version(&record.definition_version)?;
        let state = record.state()?;
        let fields = state
            .step
            .as_ref()
            .and_then(|s| definition.step(&s.name))
            .and_then(|s| s.actions.get(action.as_str()))
            .map(|a| a.fields.clone());
        let Some(fields) = fields else {
            return Err(PageError::Problem(Problem::new(
                StatusCode::CONFLICT,
                "Not allowed",
                "当前步骤不能办理这项操作。",
            )));
        };
        let data = match forms::parse(&fields, &entered) {
            Ok(data) => data,
            Err(problems) => {
                let rejected =
                    Rejected {
                        action, entered, problems, message: Some("请更正标出的项目后重新提交。".into())
                    };
                return render(&console, &viewer, &record, Some(rejected), StatusCode::UNPROCESSABLE_ENTITY).await;
            }
        };
        let request =
            ActRequest { instance: record.id, action: action.clone(), data, caller: viewer.principal.clone() };
        match console.app.engine.act(request).await {
            Ok(_) => Ok(Redirect::to(&format!("/instances/{}", record.id)).into_response()),
            Err(error) => {
                let problem = Problem::from(error);
                if problem.status.is_server_error() || problem.status == StatusCode::NOT_FOUND {
                    return Err(problem.into());
                }
                let message = Some(format!("未能办理：{}", problem.detail));
                let rejected = Rejected { action, entered, problems: Vec::new(), message };
                render(&console, &viewer, &record, Some(rejected), problem.status).await
            }
        }
    };
    result.await.unwrap_or_else(|e| e.into_page(&console, Some(&viewer)))
}
