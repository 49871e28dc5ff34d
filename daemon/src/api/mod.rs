//! The HTTP JSON API under /v1. Routes stay thin: they check who is asking, then call the
//! runtime or the store. Errors are problem details ([`problem`]); identity is a bearer
//! token ([`auth`]).

pub mod admin;
pub mod auth;
pub mod definitions;
pub mod directory;
pub mod instances;
pub mod openapi;
pub mod overdue;
pub mod problem;
pub mod schedules;
pub mod tasks;
pub mod views;

use std::sync::Arc;

use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::runtime::Runtime;
use problem::Problem;

/// Requests larger than this are refused with 413.
const BODY_LIMIT: usize = 256 * 1024;

pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/v1/instances", post(instances::start).get(instances::list))
        .route("/v1/instances/{id}", get(instances::show))
        .route("/v1/instances/{id}/history", get(instances::history))
        .route("/v1/instances/{id}/actions", post(instances::act))
        .route("/v1/overdue", get(overdue::board))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}/claim", post(tasks::claim))
        .route("/v1/tasks/{id}/complete", post(tasks::complete))
        .route("/v1/admin/clock", post(admin::clock))
        .route("/v1/admin/deliveries", get(admin::deliveries))
        .route("/v1/directory", get(directory::show).post(directory::load))
        .route("/v1/directory/organizations/{id}", axum::routing::put(directory::put_organization))
        .route("/v1/directory/contacts", axum::routing::put(directory::put_contact))
        .route("/v1/directory/contacts/{id}", axum::routing::delete(directory::delete_contact))
        .route("/v1/schedules", get(schedules::list))
        .route("/v1/schedules/{id}", get(schedules::show).put(schedules::put).delete(schedules::delete))
        .route("/v1/definitions", get(definitions::list).post(definitions::load))
        .route("/v1/definitions/{procedure}", get(definitions::show))
        .route("/v1/calendars", get(definitions::calendars).post(definitions::import_calendar))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .with_state(runtime)
}

/// Answers 413 from a declared length over the limit before any of the body is read, so a
/// client sending a huge body hears why at once. Bodies without a declared length are cut
/// off by [`DefaultBodyLimit`] while they are read.
async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > BODY_LIMIT => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large",
            format!("the body declares {length} bytes; at most {BODY_LIMIT} are accepted"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Ready when the database answers.
async fn ready(State(runtime): State<Arc<Runtime>>) -> Result<Json<Value>, Problem> {
    runtime
        .store
        .count_instances()
        .await
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready", e.to_string()))?;
    Ok(Json(json!({"status": "ready"})))
}
