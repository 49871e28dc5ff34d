//! What stands around every request (tower-http's layers, plus two of statflow's own): an id
//! (`x-request-id`, echoed in the answer, in every problem document and log line the request
//! causes, and in the history's record of who acted), the access log, a problem document
//! instead of a dropped connection when a handler panics, and a refusal of bodies declared
//! larger than the limit before any of it is read.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

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

const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` in what stands around every request. Outermost first: the caller's own
/// `x-request-id` is dropped (an id goes into the tamper-evident history, so it is the
/// daemon's to choose), a fresh one is set on the request and echoed on the answer, the
/// request's span carries it and the access log (target `statflow::access`) closes it, the
/// id is made known to whatever answers, a panic becomes a 500 problem document naming the
/// id, and bodies over the limit are refused.
pub fn around_every_request(router: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(request_span)
        .on_request(())
        .on_response(access_line)
        // The access line says the status of every answer, failures included.
        .on_failure(());
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(refuse_declared_oversize))
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(from_fn(known_to_whatever_answers))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, ProcessAndCounter))
        .layer(from_fn(drop_callers_request_id))
}

/// Request ids unique across the daemon's restarts in practice: the process id and a count.
#[derive(Clone, Copy)]
struct ProcessAndCounter;

impl MakeRequestId for ProcessAndCounter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = format!("{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

async fn drop_callers_request_id(mut request: Request, next: Next) -> Response {
    request.headers_mut().remove(REQUEST_ID_HEADER);
    next.run(request).await
}

fn id_of<B>(request: &axum::http::Request<B>) -> &str {
    request.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or_default()
}

fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    tracing::info_span!("request", request_id = %id_of(request), method = %request.method(), path = %request.uri().path())
}

fn access_line<B>(response: &Response<B>, took: Duration, _: &Span) {
    let (status, micros) = (response.status().as_u16(), took.as_micros() as u64);
    tracing::info!(target: "statflow::access", status, micros, "answered");
}

/// Runs the request with its id known to problem documents and history records, and counts
/// its answer in the metrics.
async fn known_to_whatever_answers(request: Request, next: Next) -> Response {
    let began = Instant::now();
    let (id, method) = (id_of(&request).to_owned(), request.method().clone());
    let response = REQUEST_ID.scope(id, next.run(request)).await;
    crate::metrics::request(method.as_str(), response.status().as_u16(), began.elapsed());
    response
}

/// The answer to a handler that panicked (run where the request's id is known).
fn answer_panic(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "the request panicked");
    let id = current_request_id().unwrap_or_default();
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        format!("the request failed unexpectedly; it is logged under request id {id}"),
    )
    .into_response()
}

/// Answers 413 from a declared length over the limit before any of the body is read, so a
/// client sending a huge body hears why at once. Bodies without a declared length are cut
/// off by axum's `DefaultBodyLimit` while they are read.
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

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use axum::Router;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_panicking_handler_answers_500_with_a_problem_naming_the_request_id() {
        async fn broken() -> &'static str {
            panic!("a bug in a handler")
        }
        let app = super::around_every_request(Router::new().route("/broken", get(broken)));
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
