//! The OpenAPI 3.1 description of the API, served at /v1/openapi.json. Kept beside the
//! router; a test checks that every route is described.

use serde_json::{json, Value};

fn problem_responses(codes: &[&str]) -> Value {
    let mut responses = serde_json::Map::new();
    for code in codes {
        responses.insert(
            (*code).to_owned(),
            json!({"description": "problem details", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}),
        );
    }
    Value::Object(responses)
}

/// An operation answering `ok` or one of `errors`. Every operation may also answer 500 (a
/// failure, with the request id); one that takes a body also 400 (not JSON, or not the
/// documented shape), 413 (over the body limit) and 415 (not `application/json`).
fn operation(summary: &str, ok: &str, body: Option<Value>, errors: &[&str]) -> Value {
    let mut codes: Vec<&str> = errors.to_vec();
    codes.push("500");
    if body.is_some() {
        codes.extend(["400", "413", "415"]);
    }
    let mut responses = problem_responses(&codes);
    responses[ok] = json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}});
    let mut op = json!({"summary": summary, "responses": responses});
    if let Some(schema) = body {
        op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    op
}

/// Query parameters of type string.
fn query_strings(names: &[&str]) -> Vec<Value> {
    names.iter().map(|p| json!({"name": p, "in": "query", "schema": {"type": "string"}})).collect()
}

/// Paging parameters (see `api::page`): whole numbers within their bounds.
fn paging(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|name| {
            let (minimum, maximum) = match *name {
                "page" => (1, super::page::MAX_PAGE),
                "per_page" => (1, super::page::MAX_PER_PAGE),
                _ => (0, i64::MAX as u64),
            };
            json!({"name": name, "in": "query", "schema": {"type": "integer", "minimum": minimum, "maximum": maximum}})
        })
        .collect()
}

fn id_parameter(name: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": "string"}}])
}

pub fn document() -> Value {
    let action = json!({"type": "object", "required": ["action"], "properties": {"action": {"type": "string"}, "data": {"type": "object"}}, "additionalProperties": false});
    let mut instance_filters = query_strings(&["procedure", "status", "org"]);
    instance_filters.extend([
        json!({"name": "overdue", "in": "query", "schema": {"type": "boolean"}}),
        json!({"name": "flagged", "in": "query", "schema": {"type": "boolean"}, "description": "only instances that failed verification (true) or none of them (false)"}),
        json!({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}}),
        json!({"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}),
    ]);
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, item: Value| {
        paths.insert(path.to_owned(), item);
    };
    add(
        "/healthz",
        json!({"get": {"summary": "The process answers", "security": [], "responses": {"200": {"description": "ok"}}}}),
    );
    add(
        "/readyz",
        json!({"get": {"summary": "The database answers", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}}),
    );
    add(
        "/v1/openapi.json",
        json!({"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}}),
    );
    add(
        "/v1/instances",
        json!({
            "post": operation("Start an instance", "201",
                Some(json!({"type": "object", "required": ["procedure", "jurisdiction"], "properties": {"procedure": {"type": "string"}, "jurisdiction": {"type": "string"}, "input": {"type": "object", "description": "per the definition's input_schema"}}, "additionalProperties": false})),
                &["400", "401", "403", "422"]),
            "get": {
                "summary": "List instances",
                "parameters": instance_filters,
                "responses": operation("", "200", None, &["400", "401"])["responses"],
            }
        }),
    );
    add(
        "/v1/instances/{id}",
        json!({"parameters": id_parameter("id"), "get": operation("An instance: step, deadline with legal basis, tasks, effects", "200", None, &["401", "404"])}),
    );
    add(
        "/v1/instances/{id}/history",
        json!({"parameters": id_parameter("id"), "get": operation("Every event as stored, with the chain, head, ledger and replay checks reported separately; a failed check flags the instance", "200", None, &["401", "404"])}),
    );
    add(
        "/v1/instances/{id}/actions",
        json!({"parameters": id_parameter("id"), "post": operation("Take an action", "200", Some(action.clone()), &["400", "401", "403", "404", "409", "413", "422"])}),
    );
    add(
        "/v1/overdue",
        json!({"get": {"summary": "The overdue board by organization: red (overdue, working days and escalation level) and yellow (within the reminder window)", "parameters": ([query_strings(&["org"]), paging(&["per_page", "after"])].concat()), "responses": operation("", "200", None, &["400", "401"])["responses"]}}),
    );
    add(
        "/v1/tasks",
        json!({"get": {"summary": "Open tasks", "parameters": ([query_strings(&["role", "org", "assignee"]), paging(&["page", "per_page"])].concat()), "responses": operation("", "200", None, &["400", "401"])["responses"]}}),
    );
    add(
        "/v1/tasks/{id}/claim",
        json!({"parameters": id_parameter("id"), "post": operation("Claim a task", "200", None, &["401", "404", "409"])}),
    );
    add(
        "/v1/tasks/{id}/complete",
        json!({"parameters": id_parameter("id"), "post": operation("Complete a task with an action", "200", Some(action), &["401", "403", "404", "409", "422"])}),
    );
    add(
        "/v1/definitions",
        json!({
            "get": operation("Procedures new instances can start on", "200", None, &["401"]),
            "post": operation("Validate and load a new definition version (administrators)", "201",
                Some(json!({"type": "object", "required": ["file", "source"], "properties": {"file": {"type": "string"}, "source": {"type": "string", "description": "TOML"}}})),
                &["401", "403", "422"]),
        }),
    );
    add(
        "/v1/definitions/{procedure}",
        json!({"parameters": [{"name": "procedure", "in": "path", "required": true, "schema": {"type": "string"}}, {"name": "jurisdiction", "in": "query", "schema": {"type": "string"}}],
               "get": operation("A definition with JSON Schemas of its input and every action's data", "200", None, &["400", "401", "404"])}),
    );
    add(
        "/v1/calendars",
        json!({
            "get": operation("Loaded calendar years and their notices", "200", None, &["401"]),
            "post": operation("Import a year's notice (TSV or holiday-cn JSON); replacing a loaded year needs `replace` (the reason); open deadlines are recomputed in the background (administrators)", "202",
                Some(json!({"type": "object", "required": ["origin", "content"], "additionalProperties": false, "properties": {"origin": {"type": "string"}, "content": {"type": "string"}, "replace": {"type": "string", "minLength": 1, "maxLength": 500}}})),
                &["401", "403", "422"]),
        }),
    );
    let organization = json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
        "name": {"type": "string"}, "email": {"type": "string", "description": "duty address"},
        "supervisor": {"type": "string", "description": "the supervising organization's id"},
        "regulator": {"type": "string", "description": "the regulator's organization id"}}});
    let contact = json!({"type": "object", "required": ["organization", "name", "email"], "additionalProperties": false, "properties": {
        "organization": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"},
        "roles": {"type": "array", "items": {"type": "string"}}, "principal": {"type": "string"}}});
    add(
        "/v1/directory",
        json!({
            "get": operation("Organizations and contacts notifications go to (administrators)", "200", None, &["401", "403"]),
            "post": operation("Load a directory bootstrap file (TOML); entries in it are added or replaced", "200",
                Some(json!({"type": "object", "required": ["source"], "properties": {"source": {"type": "string"}, "origin": {"type": "string"}}})),
                &["400", "401", "403", "422"]),
        }),
    );
    add(
        "/v1/directory/organizations/{id}",
        json!({"parameters": id_parameter("id"), "put": operation("Add or replace an organization", "200", Some(organization), &["400", "401", "403", "422"])}),
    );
    add(
        "/v1/directory/contacts",
        json!({"put": operation("Add or replace a contact (by organization and email)", "200", Some(contact), &["400", "401", "403", "422"])}),
    );
    add(
        "/v1/directory/contacts/{id}",
        json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}}],
               "delete": operation("Remove a contact", "204", None, &["400", "401", "403", "404"])}),
    );
    let schedule = json!({"type": "object", "required": ["title", "cron", "job", "catch_up"], "additionalProperties": false, "properties": {
        "title": {"type": "string"},
        "cron": {"type": "string", "description": "5 fields (min hour day month weekday) or the cron crate's 6/7, Asia/Shanghai", "example": "0 9 10 1 *"},
        "job": {"oneOf": [
            {"type": "object", "required": ["kind", "procedure", "jurisdiction"], "properties": {"kind": {"const": "start"}, "procedure": {"type": "string"}, "jurisdiction": {"type": "string"}, "for_each": {"enum": ["active_authorization", "authorizing_authority"]}, "input": {"type": "object"}}},
            {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "retention_sweep"}, "records_years": {"type": "integer", "minimum": 3}}},
            {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "digest"}, "lookahead_working_days": {"type": "integer", "minimum": 1, "maximum": 20, "default": 2}}},
            {"type": "object", "required": ["kind"], "properties": {"kind": {"const": "anchor_ledger"}}},
        ]},
        "catch_up": {"enum": ["once", "all", "skip"]},
        "enabled": {"type": "boolean", "default": true},
    }});
    add(
        "/v1/schedules",
        json!({"get": operation("Schedules with their next fire time (administrators, schedulers)", "200", None, &["401", "403"])}),
    );
    add(
        "/v1/schedules/{id}",
        json!({"parameters": id_parameter("id"),
               "get": operation("A schedule and its recent runs with what they started", "200", None, &["401", "403", "404"]),
               "put": operation("Create or replace a schedule; it next fires after now", "200", Some(schedule), &["400", "401", "403", "422"]),
               "delete": operation("Delete a schedule (built-in ones can only be disabled)", "204", None, &["401", "403", "404", "409"])}),
    );
    add(
        "/v1/admin/deliveries",
        json!({"get": {"summary": "Notices, escalations and webhook events with their delivery state (administrators)", "parameters": ([query_strings(&["status"]), paging(&["page", "per_page"])].concat()), "responses": operation("", "200", None, &["400", "401", "403"])["responses"]}}),
    );
    add(
        "/v1/admin/clock",
        json!({"post": operation("Move the virtual clock and fire what falls due (only with --virtual-clock)", "200",
            Some(json!({"type": "object", "properties": {"advance": {"type": "string", "example": "P3D"}, "set": {"type": "string", "format": "date-time"}}})),
            &["401", "403", "404", "422"])}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "statflow", "version": env!("CARGO_PKG_VERSION"), "description": "Statutory procedures of public-data regulation as durable workflows."},
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "field": {"type": "string", "description": "the field at fault, e.g. data.reasons"}}}},
        },
    })
}
