//! Dead letters of the caller's tenant: list, replay (sent again as a fresh attempt),
//! discard. Dead letters live per role; ids are the mailbox's own.
//!
//! Limit: a list reads at most [`SCAN`] dead letters per role and filters them by tenant,
//! so a tenant only sees its dead letters among each role's oldest [`SCAN`].

use actix_web::{delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::ROLES;
use stella_store::mailbox::{DeadLetter, Role};
use stella_store::TenantId;
use utoipa::{IntoParams, ToSchema};

use super::{not_found_unless, Page, Problems};
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::Context;

/// Dead letters read per role for one request.
pub const SCAN: usize = 10_000;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub role: String,
    pub job_id: Option<String>,
    pub kind: String,
    pub payload: Value,
    /// Attempts before the one that died.
    pub attempt: u32,
    pub error: String,
    pub deliveries: u32,
    pub died_at: DateTime<Utc>,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(dead: DeadLetter) -> Self {
        Self {
            id: dead.id,
            role: dead.envelope.role.as_str().to_owned(),
            job_id: dead.envelope.job_id.map(|id| id.to_string()),
            kind: dead.envelope.kind,
            payload: dead.envelope.payload.to_value(),
            attempt: dead.envelope.attempt,
            error: dead.error,
            deliveries: dead.deliveries,
            died_at: dead.died_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only this role's dead letters.
    pub role: Option<String>,
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub(crate) async fn of_tenant(
    ctx: &Context,
    role: &Role,
    tenant: &TenantId,
) -> ApiResult<Vec<DeadLetter>> {
    let all = ctx.mailbox.dead_letters(role, SCAN).await?;
    Ok(all
        .into_iter()
        .filter(|d| d.envelope.tenant == *tenant)
        .collect())
}

pub(crate) async fn find(
    ctx: &Context,
    caller: &Caller,
    role: &str,
    id: &str,
) -> ApiResult<(Role, DeadLetter)> {
    let tenant = caller.tenant()?;
    let role = not_found_unless(Role::parse(role), "dead letter", id)?;
    let dead = of_tenant(ctx, &role, tenant)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| Problem::not_found(format!("dead letter {id} not found")))?;
    Ok((role, dead))
}

/// List the tenant's dead letters, by role then age.
#[utoipa::path(
    operation_id = "list_dead_letters",
    tag = "dead-letters",
    params(DeadLetterQuery),
    responses((status = 200, body = Page<DeadLetterView>), Problems),
    security(("bearer" = ["jobs:read"]))
)]
#[get("/dead-letters")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<DeadLetterQuery>,
) -> ApiResult<web::Json<Page<DeadLetterView>>> {
    let tenant = caller.tenant()?;
    let limit = match query.limit.unwrap_or(50) {
        0 => return Err(Problem::bad_request("limit must be between 1 and 500").at("limit")),
        limit => limit.min(500) as usize,
    };
    let roles: Vec<&str> = match query.role.as_deref().filter(|r| !r.is_empty()) {
        Some(role) if ROLES.contains(&role) => vec![role],
        Some(role) => {
            return Err(Problem::bad_request(format!(
                "unknown role {role:?}; roles: {}",
                ROLES.join(", ")
            ))
            .at("role"))
        }
        None => ROLES.to_vec(),
    };
    // Cursor: `<role index>/<dead letter id>` of the last item returned.
    let after = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(cursor) => {
            // A role that exists and a dead letter id (a stream id `<ms>-<seq>` or a
            // sequence number): anything else was never a `next_cursor`.
            let is_id = |id: &str| {
                let mut parts = id.splitn(2, '-');
                parts.next().is_some_and(|p| p.parse::<u64>().is_ok())
                    && parts.next().is_none_or(|p| p.parse::<u64>().is_ok())
            };
            let parsed = cursor
                .split_once('/')
                .and_then(|(i, id)| Some((i.parse::<usize>().ok()?, id.to_owned())))
                .filter(|(i, id)| *i < ROLES.len() && is_id(id));
            Some(parsed.ok_or_else(|| Problem::bad_request("malformed cursor").at("cursor"))?)
        }
    };
    let mut items = Vec::new();
    let mut next_cursor = None;
    'roles: for (index, name) in ROLES.iter().enumerate() {
        if !roles.contains(name) || after.as_ref().is_some_and(|(i, _)| index < *i) {
            continue;
        }
        let role = Role::parse(name)?;
        for dead in of_tenant(&ctx, &role, tenant).await? {
            if let Some((i, id)) = &after {
                if index == *i && !after_id(&dead.id, id) {
                    continue;
                }
            }
            if items.len() == limit {
                next_cursor = items
                    .last()
                    .map(|last: &DeadLetterView| format!("{}/{}", role_index(&last.role), last.id));
                break 'roles;
            }
            items.push(DeadLetterView::from(dead));
        }
    }
    Ok(web::Json(Page { items, next_cursor }))
}

fn role_index(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap_or(0)
}

/// Whether dead letter `id` comes after `cursor` in its role's order: stream ids
/// (`<ms>-<seq>`) and sequence numbers compare as numbers, anything else as text.
fn after_id(id: &str, cursor: &str) -> bool {
    fn key(id: &str) -> (u64, u64, &str) {
        let mut parts = id.splitn(2, '-');
        let first = parts.next().and_then(|p| p.parse().ok());
        let second = parts.next().map_or(Some(0), |p| p.parse().ok());
        match (first, second) {
            (Some(a), Some(b)) => (a, b, ""),
            _ => (u64::MAX, u64::MAX, id),
        }
    }
    key(id) > key(cursor)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_ids_order_as_numbers() {
        assert!(super::after_id("1700000000001-0", "1700000000000-10"));
        assert!(super::after_id("1700000000000-10", "1700000000000-9"));
        assert!(!super::after_id("1700000000000-9", "1700000000000-10"));
        assert!(super::after_id("12", "9"));
    }
}

/// Send a dead letter again as a fresh attempt.
#[utoipa::path(
    operation_id = "replay_dead_letter",
    tag = "dead-letters",
    params(("role" = String, Path), ("id" = String, Path, description = "Dead letter id")),
    responses((status = 200, body = DeadLetterView), Problems),
    security(("bearer" = ["jobs:write"]))
)]
#[post("/dead-letters/{role}/{id}/replay")]
pub(crate) async fn replay(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<DeadLetterView>> {
    let (role, id) = path.into_inner();
    let (role, dead) = find(&ctx, &caller, &role, &id).await?;
    ctx.mailbox
        .replay_dead_letter(&role, &dead.id, Utc::now())
        .await?;
    Ok(web::Json(dead.into()))
}

/// Discard a dead letter for good.
#[utoipa::path(
    operation_id = "discard_dead_letter",
    tag = "dead-letters",
    params(("role" = String, Path), ("id" = String, Path, description = "Dead letter id")),
    responses((status = 200, body = DeadLetterView), Problems),
    security(("bearer" = ["jobs:write"]))
)]
#[delete("/dead-letters/{role}/{id}")]
pub(crate) async fn discard(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<DeadLetterView>> {
    let (role, id) = path.into_inner();
    let (role, dead) = find(&ctx, &caller, &role, &id).await?;
    ctx.mailbox.discard_dead_letter(&role, &dead.id).await?;
    Ok(web::Json(dead.into()))
}
