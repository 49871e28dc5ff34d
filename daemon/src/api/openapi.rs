//! The OpenAPI 3.1 description of the API, served at /v1/openapi.json.
//!
//! Request and response schemas are derived (utoipa) from the very types the handlers
//! deserialize and serialize, so the document cannot drift from what is sent. The paths are
//! listed here beside the router, each with every status it can answer: a test checks that
//! every route is described, and the contract test runs schemathesis against the document.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::admin::{AuditView, ClockRequest, ClockView, DeliveryView, RetryRequest, RetryView};
use super::definitions::{Calendars, DefinitionView, NewCalendar, NewDefinition, Procedures};
use super::directory::{ContactPut, DirectoryView, LoadRequest, LoadSummary, OrganizationPut};
use super::instances::{ActionRequest, HistoryView, InstanceSummary, StartRequest};
use super::overdue::Board;
use super::repair::{EndRequest, MigrationBody, MoveRequest};
use super::schedules::{RunView, ScheduleDetail, ScheduleView};
use super::tokens::TokenView;
use super::views::{InstanceView, Paged, TaskView};
use super::Health;
use crate::engine::{Imported, MigrationReport};
use crate::store::directory::{ContactEntry, OrganizationEntry};
use statflow_workflows::schedules::ScheduleSpec;

/// The types whose schemas the document holds (with everything they refer to).
#[derive(OpenApi)]
#[openapi(components(schemas(
    Health,
    StartRequest,
    ActionRequest,
    EndRequest,
    MoveRequest,
    MigrationBody,
    MigrationReport,
    Paged<TokenView>,
    InstanceView,
    Paged<InstanceSummary>,
    HistoryView,
    Board,
    Paged<TaskView>,
    TaskView,
    ClockRequest,
    ClockView,
    Paged<DeliveryView>,
    Paged<AuditView>,
    RetryRequest,
    RetryView,
    DirectoryView,
    LoadRequest,
    LoadSummary,
    OrganizationEntry,
    OrganizationPut,
    ContactEntry,
    ContactPut,
    Paged<ScheduleView>,
    ScheduleView,
    ScheduleDetail,
    RunView,
    ScheduleSpec,
    Procedures,
    DefinitionView,
    NewDefinition,
    Calendars,
    NewCalendar,
    Imported,
)))]
struct Schemas;

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An operation answering `ok` with the schema named `answer` (none for 204), or one of
/// `errors` as a problem document. Every operation may also answer 500 (a failure, with the
/// request id) and 503 (shutting down); one that takes a body (`request`, a schema name)
/// also 400 (not JSON, or not the documented shape), 413 (over the body limit) and 415 (not
/// `application/json`).
fn operation(summary: &str, ok: &str, answer: Option<&str>, request: Option<&str>, errors: &[&str]) -> Value {
    let mut codes: Vec<&str> = errors.to_vec();
    codes.extend(["500", "503"]);
    if request.is_some() {
        codes.extend(["400", "413", "415"]);
    }
    let mut responses = Map::new();
    for code in codes {
        responses.insert(
            code.to_owned(),
            json!({"description": "problem details", "content": {"application/problem+json": {"schema": schema("Problem")}}}),
        );
    }
    responses.insert(
        ok.to_owned(),
        match answer {
            Some(name) => json!({"description": "success", "content": {"application/json": {"schema": schema(name)}}}),
            None => json!({"description": "done, nothing to return"}),
        },
    );
    let mut op = json!({"summary": summary, "responses": responses});
    if let Some(name) = request {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema(name)}}});
    }
    op
}

/// `op` named `id`, so links can point at it.
fn named(mut op: Value, id: &str) -> Value {
    op["operationId"] = json!(id);
    op
}

/// `op` whose `code` answer links to the operations `targets`, their `parameter` taken from
/// the answer's `field`: how a client (and schemathesis) goes on from what it just created.
fn linked(mut op: Value, code: &str, targets: &[&str], parameter: &str, field: &str) -> Value {
    let links: Map<String, Value> = targets
        .iter()
        .map(|target| {
            let link = json!({"operationId": target, "parameters": {parameter: format!("$response.body#/{field}")}});
            ((*target).to_owned(), link)
        })
        .collect();
    op["responses"][code]["links"] = Value::Object(links);
    op
}

/// `operation` with query parameters.
fn with_query(mut op: Value, parameters: Vec<Value>) -> Value {
    op["parameters"] = Value::Array(parameters);
    op
}

fn query_string(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string"}})
}

fn query_boolean(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "boolean"}, "description": description})
}

/// Paging parameters (see `api::page`): whole numbers within their bounds.
fn paging() -> Vec<Value> {
    vec![
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": super::page::MAX_PAGE}}),
        json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": super::page::MAX_PER_PAGE}}),
    ]
}

fn path_string(name: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": "string"}}])
}

/// The problem document every error answers with (RFC 9457).
fn problem_schema() -> Value {
    json!({"type": "object", "required": ["type", "title", "status", "detail"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "the field at fault, e.g. data.reasons"},
        "request_id": {"type": "string", "description": "the request's id, as in X-Request-Id and the log"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "a definition's errors, each with file and line"}}})
}

pub fn document() -> Value {
    let mut paths = Map::new();
    let mut add = |path: &str, item: Value| {
        paths.insert(path.to_owned(), item);
    };
    let public = |mut op: Value| {
        op["security"] = json!([]);
        op
    };
    add("/healthz", json!({"get": public(operation("The process answers", "200", Some("Health"), None, &[]))}));
    add("/readyz", json!({"get": public(operation("The database answers", "200", Some("Health"), None, &[]))}));
    let mut metrics = public(operation("Metrics in Prometheus text format", "200", None, None, &["401", "403"]));
    metrics["description"] = json!(
        "Open to this machine by default; `[metrics] token` asks for a bearer token of its own, `open = true` serves anyone"
    );
    metrics["responses"]["200"] = json!({"description": "Prometheus text exposition format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}}});
    add("/metrics", json!({"get": metrics}));
    let mut this = public(operation("This document", "200", None, None, &[]));
    this["responses"]["200"] =
        json!({"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}});
    add("/v1/openapi.json", json!({"get": this}));
    let mut instance_filters: Vec<Value> = ["procedure", "status", "org"].iter().map(|n| query_string(n)).collect();
    instance_filters.push(query_boolean("overdue", "only overdue instances (true) or none of them (false)"));
    instance_filters
        .push(query_boolean("flagged", "only instances that failed verification (true) or none of them (false)"));
    instance_filters.extend(paging());
    add(
        "/v1/instances",
        json!({
            "post": linked(
                operation("Start an instance", "201", Some("InstanceView"), Some("StartRequest"), &["401", "403", "422"]),
                "201",
                &["showInstance", "instanceHistory", "actOnInstance"],
                "id",
                "id",
            ),
            "get": with_query(operation("List instances", "200", Some("Paged_InstanceSummary"), None, &["400", "401"]), instance_filters),
        }),
    );
    add(
        "/v1/instances/{id}",
        json!({"parameters": path_string("id"), "get": named(operation("An instance: step, deadline with legal basis, tasks, effects", "200", Some("InstanceView"), None, &["401", "404"]), "showInstance")}),
    );
    add(
        "/v1/instances/{id}/history",
        json!({"parameters": path_string("id"), "get": named(operation("Every event as stored, with the chain, head, ledger and replay checks reported separately; a failed check flags the instance", "200", Some("HistoryView"), None, &["401", "404"]), "instanceHistory")}),
    );
    add(
        "/v1/instances/{id}/actions",
        json!({"parameters": path_string("id"), "post": named(operation("Take an action (409 when the instance is flagged)", "200", Some("InstanceView"), Some("ActionRequest"), &["401", "403", "404", "409", "422"]), "actOnInstance")}),
    );
    for (verb, summary, body) in [
        (
            "cancel",
            "Cancel a running instance with a reason (administrators): whom its definition names is told",
            "EndRequest",
        ),
        ("terminate", "Terminate a running instance with a reason (administrators): nobody is told", "EndRequest"),
        (
            "move",
            "Move a running instance to a step of its definition, entered afresh, with a reason (administrators)",
            "MoveRequest",
        ),
    ] {
        add(
            &format!("/v1/instances/{{id}}/{verb}"),
            json!({"parameters": path_string("id"), "post": named(operation(summary, "200", Some("InstanceView"), Some(body), &["401", "403", "404", "409", "422"]), &format!("{verb}Instance"))}),
        );
    }
    let overdue_parameters = vec![
        query_string("org"),
        json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": super::page::MAX_PER_PAGE}}),
        json!({"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "the previous page's `next`"}),
    ];
    add(
        "/v1/overdue",
        json!({"get": with_query(operation("The overdue board by organization: red (overdue, working days and escalation level) and yellow (within the reminder window)", "200", Some("Board"), None, &["400", "401"]), overdue_parameters)}),
    );
    let mut task_filters: Vec<Value> = ["role", "org", "assignee"].iter().map(|n| query_string(n)).collect();
    task_filters.extend(paging());
    add(
        "/v1/tasks",
        json!({"get": with_query(operation("Open tasks", "200", Some("Paged_TaskView"), None, &["400", "401"]), task_filters)}),
    );
    add(
        "/v1/tasks/{id}/claim",
        json!({"parameters": path_string("id"), "post": operation("Claim a task", "200", Some("TaskView"), None, &["401", "403", "404", "409"])}),
    );
    add(
        "/v1/tasks/{id}/complete",
        json!({"parameters": path_string("id"), "post": operation("Complete a task with an action", "200", Some("InstanceView"), Some("ActionRequest"), &["401", "403", "404", "409", "422"])}),
    );
    add(
        "/v1/definitions",
        json!({
            "get": operation("Procedures new instances can start on", "200", Some("Procedures"), None, &["401"]),
            "post": operation("Validate and load a new definition version (administrators)", "201", Some("DefinitionView"), Some("NewDefinition"), &["401", "403", "422"]),
        }),
    );
    add(
        "/v1/definitions/{procedure}",
        json!({"parameters": [{"name": "procedure", "in": "path", "required": true, "schema": {"type": "string"}}, query_string("jurisdiction")],
               "get": operation("A definition with JSON Schemas of its input and every action's data", "200", Some("DefinitionView"), None, &["400", "401", "404"])}),
    );
    add(
        "/v1/calendars",
        json!({
            "get": operation("Loaded calendar years and their notices, and the recomputation after imports", "200", Some("Calendars"), None, &["401"]),
            "post": operation("Import a year's notice (TSV or holiday-cn JSON); replacing a loaded year needs `replace` (the reason); open deadlines are recomputed in the background (administrators)", "202", Some("Imported"), Some("NewCalendar"), &["401", "403", "422"]),
        }),
    );
    add(
        "/v1/directory",
        json!({
            "get": with_query(operation("Organizations and contacts notifications go to (administrators)", "200", Some("DirectoryView"), None, &["400", "401", "403"]), paging()),
            "post": operation("Load a directory bootstrap file (TOML); entries in it are added or replaced", "200", Some("LoadSummary"), Some("LoadRequest"), &["401", "403", "422"]),
        }),
    );
    add(
        "/v1/directory/organizations/{id}",
        json!({"parameters": path_string("id"), "put": operation("Add or replace an organization", "200", Some("OrganizationPut"), Some("OrganizationEntry"), &["401", "403", "422"])}),
    );
    add(
        "/v1/directory/contacts",
        json!({"put": operation("Add or replace a contact (by organization and email)", "200", Some("ContactPut"), Some("ContactEntry"), &["401", "403", "422"])}),
    );
    add(
        "/v1/directory/contacts/{id}",
        json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}],
               "delete": operation("Remove a contact", "204", None, None, &["400", "401", "403", "404"])}),
    );
    add(
        "/v1/schedules",
        json!({"get": with_query(operation("Schedules with their next fire time (administrators, schedulers)", "200", Some("Paged_ScheduleView"), None, &["400", "401", "403"]), paging())}),
    );
    add(
        "/v1/schedules/{id}",
        json!({"parameters": path_string("id"),
               "get": named(with_query(operation("A schedule and one page of its runs with what they started", "200", Some("ScheduleDetail"), None, &["400", "401", "403", "404"]), paging()), "showSchedule"),
               "put": linked(operation("Create or replace a schedule; it next fires after now", "200", Some("ScheduleView"), Some("ScheduleSpec"), &["401", "403", "422"]), "200", &["showSchedule", "deleteSchedule"], "id", "id"),
               "delete": named(operation("Delete a schedule (built-in ones can only be disabled)", "204", None, None, &["401", "403", "404", "409"]), "deleteSchedule")}),
    );
    let mut delivery_filters =
        vec![json!({"name": "status", "in": "query", "schema": {"enum": ["pending", "done", "failed"]}})];
    delivery_filters.extend(paging());
    add(
        "/v1/admin/deliveries",
        json!({"get": with_query(operation("Notices, escalations, webhook events, digests and anchors with their delivery state (administrators)", "200", Some("Paged_DeliveryView"), None, &["400", "401", "403"]), delivery_filters)}),
    );
    let mut audit_filters = vec![query_string("principal"), query_string("action"), query_string("target")];
    audit_filters.extend(paging());
    add(
        "/v1/audit",
        json!({"get": with_query(operation("The audit log of administrative acts, newest first; `action` matches a prefix (administrators)", "200", Some("Paged_AuditView"), None, &["400", "401", "403"]), audit_filters)}),
    );
    add(
        "/v1/admin/deliveries/retry",
        json!({"post": operation("Send failed deliveries again: one by id, all of a kind, or all (administrators); the Message-ID stays", "200", Some("RetryView"), Some("RetryRequest"), &["400", "401", "403", "422"])}),
    );
    add(
        "/v1/admin/tokens",
        json!({"get": with_query(operation("Who holds an API token, with its expiry, by name (administrators)", "200", Some("Paged_TokenView"), None, &["400", "401", "403"]), paging())}),
    );
    add(
        "/v1/admin/tokens/{name}",
        json!({"parameters": path_string("name"), "delete": operation("Revoke a token (administrators); recorded in the audit log", "204", None, None, &["401", "403", "404"])}),
    );
    add(
        "/v1/admin/migrations",
        json!({"post": operation("Migrate running instances of a procedure to another version of its definition, or list what that would do (`dry_run`) (administrators; not on the Temporal engine)", "200", Some("MigrationReport"), Some("MigrationBody"), &["400", "401", "403", "422"])}),
    );
    add(
        "/v1/admin/clock",
        json!({"post": operation("Move the virtual clock and fire what falls due (only with --virtual-clock)", "200", Some("ClockView"), Some("ClockRequest"), &["401", "403", "404", "422"])}),
    );
    let mut schemas = serde_json::to_value(Schemas::openapi().components.expect("schemas are listed"))
        .expect("schemas serialize")["schemas"]
        .take();
    schemas["Problem"] = problem_schema();
    json!({
        "openapi": "3.1.0",
        "info": {"title": "statflow", "version": env!("CARGO_PKG_VERSION"), "description": "Statutory procedures of public-data regulation as durable workflows."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    })
}
