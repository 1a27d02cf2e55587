//! `Idempotency-Key` (IETF draft `httpapi-idempotency-key-header`): a client retrying a
//! request sends the same key and gets the first request's result; the same key sent
//! with a different request is refused with `422`, never answered with the first
//! request's result (a CI gate would otherwise pass or fail on another SBOM).
//!
//! Each key is claimed with a fingerprint of what the request asked for, per tenant and
//! route, in one statement before the work is accepted.

use actix_web::http::StatusCode;
use actix_web::HttpRequest;
use chrono::Utc;
use serde_json::Value;
use stella_store::TenantId;

use crate::problem::{ApiResult, Problem};
use crate::Context;

/// The header, checked: 1-200 visible ASCII characters.
pub(crate) fn header(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Problem::bad_request("Idempotency-Key must be 1-200 visible ASCII characters")
                .at("Idempotency-Key")
        })?;
    Ok(Some(key.to_owned()))
}

/// Claims `key` on `route` for the request `fingerprint` describes; `Err(422)` if the
/// key was first used for a different request.
pub(crate) async fn claim(
    ctx: &Context,
    tenant: &TenantId,
    route: &str,
    key: &str,
    fingerprint: &Value,
) -> ApiResult<()> {
    let digest = stella_domain::canonical::sha256_hex(&stella_domain::canonical::canonical_bytes(
        fingerprint,
    ));
    let first = ctx
        .store
        .tenant(tenant)
        .idempotency()
        .claim_for(&format!("api:{route}"), key, &digest, Utc::now())
        .await?;
    match first {
        Some(earlier) if earlier != digest => Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            format!(
                "Idempotency-Key {key:?} was already used for a different request; \
                 use a new key for a new request"
            ),
        )
        .at("Idempotency-Key")),
        _ => Ok(()),
    }
}
