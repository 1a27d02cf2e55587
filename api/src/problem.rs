//! Errors as `application/problem+json` (RFC 9457): a stable `type` per kind of failure,
//! a human `detail`, and the request id, so a user can quote one line to an operator.
//!
//! The request id comes from the task-local set by `request_id::middleware`; every
//! problem built while a request is served carries it, wherever it was built.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use stella_store::StoreError;
use utoipa::ToSchema;

use crate::request_id;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A stable identifier of the kind of problem, e.g. `urn:stella:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The id of the request, as in the `X-Request-Id` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Where in the request body the problem is (a JSON path such as `scopes[2]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// An error an API handler or middleware answers with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {kind}: {detail}")]
pub struct Problem {
    pub status: StatusCode,
    /// The last part of the `type` URN: `not-found`, `forbidden`, ...
    pub kind: &'static str,
    pub detail: String,
    pub location: Option<String>,
    /// Seconds, for `429` responses.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: detail.into(),
            location: None,
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid-request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn at(mut self, location: impl Into<String>) -> Self {
        let location = location.into();
        if !location.is_empty() && location != "." {
            self.location = Some(location);
        }
        self
    }

    pub fn body(&self) -> ProblemBody {
        ProblemBody {
            kind: format!("urn:stella:problem:{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            request_id: request_id::current(),
            location: self.location.clone(),
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), detail = %self.detail, "request failed");
        }
        let mut response = HttpResponse::build(self.status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(serde_json::to_string(&self.body()).unwrap_or_default())
    }
}

impl From<StoreError> for Problem {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(what) => Problem::not_found(format!("{what} not found")),
            StoreError::Conflict(reason) => Problem::conflict(reason),
            StoreError::Invalid(reason) => Problem::bad_request(reason),
            StoreError::Forbidden(reason) => Problem::forbidden(reason),
            // Backend details (hosts, driver messages) go to the log with the request id,
            // never into a response body.
            StoreError::Unavailable { backend, reason } => {
                tracing::warn!(%backend, %reason, "a backend is unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("{backend} is unavailable; retry later"),
                )
            }
            err => {
                tracing::error!(error = %err, "store error");
                Problem::internal("an internal error occurred; the request id finds it in the log")
            }
        }
    }
}

/// What handlers return.
pub type ApiResult<T> = Result<T, Problem>;
