//! [`JsonBody`]: the request-body extractor every handler uses. It answers with a
//! problem the caller can act on: `415` for another content type, `413` over the size
//! limit (checked on `Content-Length` and while reading), and `400` naming the line,
//! column and field path of malformed or unexpected JSON (unknown fields included: every
//! request type denies them).
//!
//! The whole body must arrive within `api.body_read_timeout_secs`, or the request ends
//! with `408`: a client trickling a body cannot hold a connection (and the memory it
//! buffers) open for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::Context;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!("the request body is larger than the limit of {limit} bytes (api.max_body_bytes)"),
    )
}

/// The request's media type without parameters, lower-cased (`application/json`).
pub(crate) fn media_type(req: &HttpRequest) -> Option<String> {
    let text = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        text.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(essence) = media_type(req) else {
        return false;
    };
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses `bytes` as `T`, naming where it went wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let detail = if inner.is_eof() && inner.line() == 1 && inner.column() == 0 {
            "the request body is empty; a JSON object is required".to_owned()
        } else {
            format!(
                "invalid JSON body at line {} column {}: {inner}",
                inner.line(),
                inner.column()
            )
        };
        Problem::new(StatusCode::BAD_REQUEST, "malformed-body", detail).at(path)
    })?;
    deserializer.end().map_err(|err| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-body",
            format!("trailing data after the JSON value: {err}"),
        )
    })?;
    Ok(value)
}

/// The size limit and the time limit of a body.
#[derive(Debug, Clone, Copy)]
struct Limits {
    bytes: usize,
    time: Duration,
}

fn limits_of(req: &HttpRequest) -> Limits {
    req.app_data::<web::Data<Context>>().map_or(
        Limits {
            bytes: 1024 * 1024,
            time: Duration::from_secs(30),
        },
        |ctx| Limits {
            bytes: usize::try_from(ctx.settings.max_body_bytes).unwrap_or(usize::MAX),
            time: Duration::from_secs(ctx.settings.body_read_timeout_secs),
        },
    )
}

fn too_slow(time: Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        format!(
            "the request body did not arrive within {} s (api.body_read_timeout_secs)",
            time.as_secs()
        ),
    )
}

/// Reads the whole body within the size and time limits.
async fn read_limited(
    payload: Payload,
    declared: Option<u64>,
    limits: Limits,
) -> Result<web::Bytes, Problem> {
    if declared.is_some_and(|length| length > limits.bytes as u64) {
        return Err(too_large(limits.bytes));
    }
    tokio::time::timeout(limits.time, read_all(payload, limits.bytes))
        .await
        .map_err(|_| too_slow(limits.time))?
}

async fn read_all(mut payload: Payload, limit: usize) -> Result<web::Bytes, Problem> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            Problem::bad_request(format!("could not read the request body: {err}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The request's `Content-Length`, when it sends one that parses.
pub(crate) fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok())
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = limits_of(req);
        let json = is_json(req);
        let declared = declared_length(req);
        let payload = payload.take();
        Box::pin(async move {
            if !json {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "the request body must be JSON (Content-Type: application/json)",
                ));
            }
            let body = read_limited(payload, declared, limits).await?;
            parse(&body).map(JsonBody)
        })
    }
}

/// A document body: JSON or a zip archive, size-limited like [`JsonBody`].
#[derive(Debug)]
pub struct DocumentBody(pub web::Bytes);

impl FromRequest for DocumentBody {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = limits_of(req);
        let accepted = is_json(req)
            || req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| {
                    v.starts_with("application/zip") || v.starts_with("application/octet-stream")
                });
        let declared = declared_length(req);
        let payload = payload.take();
        Box::pin(async move {
            if !accepted {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "the body must be application/json, application/zip or application/octet-stream",
                ));
            }
            read_limited(payload, declared, limits)
                .await
                .map(DocumentBody)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        scopes: Vec<String>,
    }

    #[test]
    fn errors_name_the_field_and_the_position() {
        let err = parse::<Body>(br#"{"name": "x", "scopes": ["a", 7]}"#).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.location.as_deref(), Some("scopes[1]"));
        assert!(err.detail.contains("line 1 column"), "{}", err.detail);

        let err = parse::<Body>(br#"{"name": "x", "scopes": [], "extra": 1}"#).unwrap_err();
        assert!(
            err.detail.contains("unknown field `extra`"),
            "{}",
            err.detail
        );

        let err = parse::<Body>(b"").unwrap_err();
        assert!(err.detail.contains("empty"), "{}", err.detail);

        let err = parse::<Body>(br#"{"name": "x", "scopes": []} {}"#).unwrap_err();
        assert!(err.detail.contains("trailing"), "{}", err.detail);

        assert!(parse::<Body>(br#"{"name": "x", "scopes": ["a"]}"#).is_ok());
    }
}
