//! RFC 9457 problem details: every API error is one, naming the field at fault when there is
//! one. Malformed JSON, wrong types and oversized bodies are 4xx, never 500.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use statflow_workflows::engine::{Refusal, RefusalKind};

use crate::engine::EngineError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Problem { status, title, detail: detail.into(), field: None }
    }

    pub fn field(status: StatusCode, field: &str, detail: impl Into<String>) -> Self {
        Problem { status, title: "Invalid field", detail: detail.into(), field: Some(field.to_owned()) }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "Not found", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        if let Some(id) = super::guard::current_request_id() {
            body["request_id"] = json!(id);
        }
        (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
    }
}

impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        let (status, title) = match refusal.kind {
            RefusalKind::InvalidData => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid data"),
            RefusalKind::WrongRole | RefusalKind::WrongOrganization | RefusalKind::NotAdministrator => {
                (StatusCode::FORBIDDEN, "Not permitted")
            }
            RefusalKind::NotAllowed | RefusalKind::NotRunning | RefusalKind::Conflict => {
                (StatusCode::CONFLICT, "Not allowed now")
            }
            RefusalKind::Definition => (StatusCode::UNPROCESSABLE_ENTITY, "Cannot be computed"),
        };
        Problem { status, title, detail: refusal.message, field: refusal.field.map(|f| format!("data.{f}")) }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Self {
        EngineError::from(error).into()
    }
}

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound(id) => Problem::not_found(format!("instance {id} does not exist")),
            EngineError::TokenGone => Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", error.to_string()),
            EngineError::Refused(refusal) => refusal.into(),
            EngineError::Forbidden(message) => Problem::forbidden(message),
            EngineError::Claimed(message) => Problem::new(StatusCode::CONFLICT, "Claimed by someone else", message),
            EngineError::Invalid { field, message } => {
                Problem::field(StatusCode::UNPROCESSABLE_ENTITY, &field, message)
            }
            EngineError::InvalidDefinition(errors) => Problem::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "source",
                errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
            ),
            EngineError::Conflict => Problem::new(StatusCode::CONFLICT, "Concurrent change", error.to_string()),
            EngineError::Flagged { .. } => Problem::new(StatusCode::CONFLICT, "Instance flagged", error.to_string()),
            EngineError::Unavailable(message) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Shutting down", message)
            }
            EngineError::Store(error) => {
                tracing::error!(%error, "request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "the request could not be completed")
            }
        }
    }
}

/// A JSON body whose rejections are problem details.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::JsonDataError(e) => {
                    // serde's message names the path of the field at fault.
                    let detail = e.body_text();
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid body", detail)
                }
                JsonRejection::JsonSyntaxError(e) => {
                    Problem::new(StatusCode::BAD_REQUEST, "Malformed JSON", e.body_text())
                }
                JsonRejection::MissingJsonContentType(e) => {
                    Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Expected JSON", e.body_text())
                }
                other => Problem::new(other.status(), "Unreadable body", other.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections are problem details (400, naming what is wrong).
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(Problem::new(StatusCode::BAD_REQUEST, "Invalid query", rejection.body_text())),
        }
    }
}

/// Path parameters whose rejections are problem details (400, naming the segment).
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(rejection) => Err(Problem::new(StatusCode::BAD_REQUEST, "Invalid path", rejection.body_text())),
        }
    }
}
