//! `GET /metrics`: the daemon's metrics in Prometheus text format ([`crate::metrics`] names
//! them). Not under `/v1` and not behind a principal's token: a scraper is no person. Who may
//! read it is the `[metrics]` setting: this machine only by default, anyone, or the holders of
//! a token of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::problem::Problem;
use super::AppState;
use crate::config::MetricsAccess;
use crate::metrics::StateGauges;

/// What the page needs: the recorder's handle, who may read it, and when the stored-state
/// gauges were last counted.
pub struct MetricsPage {
    handle: PrometheusHandle,
    access: MetricsAccess,
    gauges: StateGauges,
}

impl MetricsPage {
    pub fn new(engine: &'static str, access: MetricsAccess) -> Arc<MetricsPage> {
        Arc::new(MetricsPage { handle: crate::metrics::install(engine), access, gauges: StateGauges::default() })
    }

    /// Whether `request` may read the page; a problem saying why not otherwise.
    fn admit(&self, request: &Request) -> Result<(), Problem> {
        match &self.access {
            MetricsAccess::Open => Ok(()),
            MetricsAccess::Loopback => {
                let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
                if peer.is_some_and(|ip| ip.is_loopback()) {
                    return Ok(());
                }
                Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "metrics are served to this machine only; set [metrics] token (or open = true) to scrape from elsewhere",
                ))
            }
            MetricsAccess::Token(token) => {
                let given = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                // Digests are compared, so the comparison takes no longer for a closer guess.
                if Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose_secret().as_bytes()) {
                    return Ok(());
                }
                Err(Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "metrics need the bearer token of [metrics] token",
                ))
            }
        }
    }
}

pub async fn page(State(state): State<AppState>, request: Request) -> Response {
    let page = &state.metrics;
    if let Err(problem) = page.admit(&request) {
        return problem.into_response();
    }
    crate::metrics::workers(&state.engine.health());
    if page.gauges.due() {
        match state.store.stored_state().await {
            Ok(stored) => page.gauges.set(&stored),
            // The page still answers, with the counts of the last scrape that could read them.
            Err(error) => tracing::warn!(%error, "metrics: could not count the stored state"),
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], page.handle.render()).into_response()
}
