//! The HTTP JSON API under /v1. Routes stay thin: they check who is asking, then call the
//! runtime or the store. Errors are problem details ([`problem`]); identity is a bearer
//! token ([`auth`]).

pub mod admin;
pub mod auth;
pub mod definitions;
pub mod directory;
pub mod guard;
pub mod instances;
pub mod openapi;
pub mod overdue;
pub mod page;
pub mod problem;
pub mod schedules;
pub mod tasks;
pub mod views;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::engine::embedded::Runtime;
use problem::Problem;

pub fn router(runtime: Arc<Runtime>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(Health { status: "ok" }) }))
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
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(guard::BODY_LIMIT))
        .layer(axum::middleware::from_fn(guard::refuse_declared_oversize))
        .layer(axum::middleware::from_fn(guard::request_id_and_panics))
        .with_state(runtime)
}

/// `ok` (the process answers) or `ready` (the database answers).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// Ready when the database answers.
async fn ready(State(runtime): State<Arc<Runtime>>) -> Result<Json<Health>, Problem> {
    runtime
        .store
        .count_instances()
        .await
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready", e.to_string()))?;
    Ok(Json(Health { status: "ready" }))
}
