//! The HTTP JSON API under /v1. Routes stay thin: they check who is asking, then ask the
//! engine (through its facade) to change something, or read the store. Errors are problem
//! details ([`problem`]); identity is a bearer token ([`auth`]).

pub mod admin;
pub mod auth;
pub mod definitions;
pub mod directory;
pub mod guard;
pub mod instances;
pub mod known_tokens;
pub mod metrics;
pub mod openapi;
pub mod overdue;
pub mod page;
pub mod problem;
pub mod repair;
pub mod schedules;
pub mod tasks;
pub mod tokens;
pub mod views;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::engine::{Engine, WorkerHealth};
use crate::store::Store;
use problem::Problem;

/// What every handler has: the engine that changes things and the store it reads.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<dyn Engine>,
    pub store: Store,
    pub metrics: Arc<metrics::MetricsPage>,
    /// Tokens lately found standing, for the endpoints that confirm them in their transaction.
    pub known_tokens: Arc<known_tokens::KnownTokens>,
}

/// The API under `/v1` and the console beside it, with the guards every request passes.
/// `secure_cookies`: the console is reached over https, so its cookies say `Secure`;
/// `metrics`: who may read `/metrics`.
pub fn router(
    engine: Arc<dyn Engine>,
    store: Store,
    secure_cookies: bool,
    metrics: crate::config::MetricsAccess,
) -> Router {
    let page = metrics::MetricsPage::new(engine.kind(), metrics);
    let state = AppState { engine, store, metrics: page, known_tokens: Default::default() };
    let console = crate::console::routes(crate::console::Console::new(state.clone(), secure_cookies));
    let routes = Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::page))
        .route("/v1/openapi.json", get(|| async { Json(openapi::document()) }))
        .route("/v1/instances", post(instances::start).get(instances::list))
        .route("/v1/instances/{id}", get(instances::show))
        .route("/v1/instances/{id}/history", get(instances::history))
        .route("/v1/instances/{id}/actions", post(instances::act))
        .route("/v1/instances/{id}/cancel", post(repair::cancel))
        .route("/v1/instances/{id}/terminate", post(repair::terminate))
        .route("/v1/instances/{id}/move", post(repair::move_to))
        .route("/v1/overdue", get(overdue::board))
        .route("/v1/tasks", get(tasks::list))
        .route("/v1/tasks/{id}/claim", post(tasks::claim))
        .route("/v1/tasks/{id}/complete", post(tasks::complete))
        .route("/v1/admin/clock", post(admin::clock))
        .route("/v1/admin/deliveries", get(admin::deliveries))
        .route("/v1/admin/deliveries/retry", post(admin::retry_deliveries))
        .route("/v1/admin/migrations", post(repair::migrate))
        .route("/v1/admin/tokens", get(tokens::list))
        .route("/v1/admin/tokens/{name}", axum::routing::delete(tokens::revoke))
        .route("/v1/audit", get(admin::audit))
        .route("/v1/directory", get(directory::show).post(directory::load))
        .route("/v1/directory/organizations/{id}", axum::routing::put(directory::put_organization))
        .route("/v1/directory/contacts", axum::routing::put(directory::put_contact))
        .route("/v1/directory/contacts/{id}", axum::routing::delete(directory::delete_contact))
        .route("/v1/schedules", get(schedules::list))
        .route("/v1/schedules/{id}", get(schedules::show).put(schedules::put).delete(schedules::delete))
        .route("/v1/definitions", get(definitions::list).post(definitions::load))
        .route("/v1/definitions/{procedure}", get(definitions::show))
        .route("/v1/calendars", get(definitions::calendars).post(definitions::import_calendar))
        .with_state(state)
        .merge(console)
        .fallback(no_such_path)
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "this endpoint does not take that method",
            )
        });
    guard::around_every_request(routes)
}

/// A browser asking for a page the console does not have gets the console's page for it;
/// every other client (and every path under `/v1`) a problem document.
async fn no_such_path(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    let wants_page = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_page && !uri.path().starts_with("/v1") {
        return crate::console::not_found_page();
    }
    Problem::not_found("no such endpoint").into_response()
}

/// `ok` (the process answers) or `ready` (the database answers and every worker runs).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    /// The engine's workers (on `/readyz`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerHealth>,
    /// With several nodes on one PostgreSQL database: `held` when this one does the work that
    /// answers no request (timers, the outbox, deliveries, schedules, digests, anchors),
    /// `standby` while another does (on `/readyz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_work: Option<&'static str>,
    /// This node's work lease, with several nodes on one database (on `/readyz`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<crate::engine::WorkLease>,
}

/// The process answers (nothing else is checked: an orchestrator restarts it otherwise).
async fn alive() -> Json<Health> {
    Json(Health { status: "ok", workers: Vec::new(), shared_work: None, lease: None })
}

/// Ready when the database answers and no worker is down or stalled; a 503 names them.
async fn ready(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    state.store.ping().await.map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready", e.to_string()))?;
    let workers = state.engine.health();
    let down: Vec<String> = workers
        .iter()
        .filter(|w| !w.is_healthy())
        .map(|w| match &w.last_failure {
            Some(failure) => format!("{} is {} ({failure})", w.name, w.state),
            None => format!("{} is {}", w.name, w.state),
        })
        .collect();
    if !down.is_empty() {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready", down.join("; ")));
    }
    let lease = state.engine.work_lease();
    let shared_work = lease.as_ref().map(|lease| if lease.held { "held" } else { "standby" });
    Ok(Json(Health { status: "ready", workers, shared_work, lease }))
}
