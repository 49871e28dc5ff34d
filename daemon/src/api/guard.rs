//! What stands around every request: an id (`x-request-id`, echoed in the answer, in every
//! problem document and log line the request causes, and in the history's record of who
//! acted), a problem document instead of a dropped connection when a
//! handler panics, and a refusal of bodies declared larger than the limit before any of it is
//! read.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use tracing::Instrument;

use super::problem::Problem;

tokio::task_local! {
    /// The id of the request being answered, for whatever answers it.
    static REQUEST_ID: String;
}

/// The id of the request this code runs for, if it runs for one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Requests larger than this are refused with 413.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Gives the request an id, runs it inside a span carrying that id, turns a panic into a
/// 500 problem document that names the id, so the log line and the complaint meet, and logs
/// each answer (the access log, target `statflow::access`: method, path, status, time taken).
pub async fn request_id_and_panics(request: Request, next: Next) -> Response {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let began = std::time::Instant::now();
    let id = format!("{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let method = request.method().clone();
    let span = tracing::info_span!("request", request_id = %id, %method, path = %request.uri().path());
    let answering = REQUEST_ID.scope(id.clone(), next.run(request));
    let outcome = AssertUnwindSafe(answering.instrument(span.clone())).catch_unwind().await;
    let mut response = match outcome {
        Ok(response) => response,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            span.in_scope(|| tracing::error!(panic = %message, "the request panicked"));
            let problem = Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal error",
                format!("the request failed unexpectedly; it is logged under request id {id}"),
            );
            REQUEST_ID.sync_scope(id.clone(), || problem.into_response())
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    let status = response.status().as_u16();
    let took = began.elapsed();
    crate::metrics::request(method.as_str(), status, took);
    let micros = took.as_micros() as u64;
    span.in_scope(|| tracing::info!(target: "statflow::access", status, micros, "answered"));
    response
}

/// Answers 413 from a declared length over the limit before any of the body is read, so a
/// client sending a huge body hears why at once. Bodies without a declared length are cut
/// off by axum's `DefaultBodyLimit` while they are read.
pub async fn refuse_declared_oversize(request: Request, next: Next) -> Response {
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

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_handler_answers_500_with_a_problem_naming_the_request_id() {
        async fn broken() -> &'static str {
            panic!("a bug in a handler")
        }
        let app =
            Router::new().route("/broken", get(broken)).layer(axum::middleware::from_fn(super::request_id_and_panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let answer = tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut response = agent.get(format!("http://{address}/broken")).call().unwrap();
            let id = response.headers().get("x-request-id").unwrap().to_str().unwrap().to_owned();
            let kind = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
            (response.status().as_u16(), id, kind, response.body_mut().read_to_string().unwrap())
        })
        .await
        .unwrap();
        let (status, id, kind, body) = answer;
        assert_eq!((status, kind.as_str()), (500, "application/problem+json"));
        assert!(body.contains(&format!("request id {id}")), "{body}");
    }
}
