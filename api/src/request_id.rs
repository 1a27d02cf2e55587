//! Request ids: taken from a well-formed incoming `X-Request-Id` (so a caller can
//! correlate) or generated, returned in the `X-Request-Id` response header, recorded on
//! the request's `tracing` span, and readable by any code serving the request through
//! [`current`] (error bodies use it). It also counts and times every request
//! (`stella_http_requests_total`, `stella_http_request_duration_seconds`) and writes the
//! access log line (target `stella::http`), except for refused authentications, which
//! `auth` summarises instead of logging each guess.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The id of a request, also stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn acceptable(id: &str) -> bool {
    (8..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| acceptable(id))
        .map_or_else(|| uuid::Uuid::now_v7().simple().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = std::time::Instant::now();
    // A fixed label set: any other method name (callers can invent them) is `other`.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    // Route templates, not paths, keep the label set small.
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let metrics = req
        .app_data::<actix_web::web::Data<crate::Context>>()
        .map(|ctx| ctx.metrics.clone());
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format!("{} {route}", req.method()),
        request_id = %id,
        method = %req.method(),
        http.route = %route,
        path = %req.path()
    );
    let mut response = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await?;
    let quiet = response
        .response()
        .extensions()
        .get::<QuietResponse>()
        .is_some();
    if !quiet {
        span.in_scope(|| {
            tracing::info!(
                target: "stella::http",
                status = response.status().as_u16(),
                duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "request served"
            );
        });
    }
    if let Some(metrics) = metrics {
        let status = response.status().as_u16().to_string();
        metrics
            .http_requests
            .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
            .inc();
        metrics
            .http_seconds
            .with_label_values(&[method.as_str(), route.as_str()])
            .observe(started.elapsed().as_secs_f64());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}

/// Marks a response the access log leaves out: a refused authentication, which the auth
/// middleware counts and summarises instead (one line a minute, not one per attempt).
#[derive(Debug, Clone, Copy)]
pub struct QuietResponse;
