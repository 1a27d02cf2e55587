//! Exceptions (waivers): a tenant's request to let a finding pass, for a reason and until
//! a date, approved by another identity. Scopes: `policy:author` requests,
//! `policy:approve` approves, rejects and revokes, `policy:read` lists. An active
//! exception appears in the explain trace of every finding it decides, with its approver
//! and expiry; at the expiry the scheduler marks it expired and re-evaluates the targets
//! it touched.

use actix_web::{get, post, web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use stella_store::repo::{ExceptionDecision, ExceptionFilter, ExceptionRecord, NewException};
use stella_store::ExceptionId;
use utoipa::{IntoParams, ToSchema};

use super::{acting, refused, BodyProblems, Page, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionView {
    pub id: String,
    pub vulnerability: String,
    /// A package URL without version; absent: every package.
    pub package: Option<String>,
    /// A target name; absent: every target of the tenant.
    pub target: Option<String>,
    /// `false_positive`, `not_affected`, `mitigated`, `accepted_risk` or `fix_pending`.
    #[serde(rename = "type")]
    pub kind: String,
    pub justification: String,
    pub expires_at: DateTime<Utc>,
    /// `requested`, `active`, `rejected`, `expired` or `revoked`.
    pub status: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// The identity that approved, rejected or revoked it.
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    /// When it stopped applying.
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<ExceptionRecord> for ExceptionView {
    fn from(r: ExceptionRecord) -> Self {
        Self {
            id: r.id.to_string(),
            vulnerability: r.vulnerability,
            package: r.package,
            target: r.target,
            kind: r.kind,
            justification: r.justification,
            expires_at: r.expires_at,
            status: r.status,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            decision_reason: r.decision_reason,
            ended_at: r.ended_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestException {
    /// The vulnerability id (or an alias of it) the exception waives.
    pub vulnerability: String,
    /// Only this package (a package URL without version).
    pub package: Option<String>,
    /// Only scans of this target.
    pub target: Option<String>,
    /// `false_positive`, `not_affected`, `mitigated`, `accepted_risk` or `fix_pending`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why, in at least a sentence.
    pub justification: String,
    /// When it stops applying (required; within a year).
    pub expires_at: DateTime<Utc>,
}

/// Request an exception; another identity with `policy:approve` decides it.
#[utoipa::path(
    operation_id = "request_exception",
    tag = "exceptions",
    request_body = RequestException,
    responses((status = 201, body = ExceptionView), Problems, BodyProblems),
    security(("bearer" = ["policy:author"]))
)]
#[post("/exceptions")]
pub(crate) async fn request(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<RequestException>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let body = body.0;
    let new = NewException {
        vulnerability: body.vulnerability,
        package: body.package,
        target: body.target,
        kind: body.kind,
        justification: body.justification,
        expires_at: body.expires_at,
    };
    let actor = caller.actor();
    let record = ctx
        .store
        .tenant(tenant)
        .exceptions()
        .request(&new, acting(&caller, &actor), Utc::now())
        .await
        .map_err(refused)?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/exceptions/{}", record.id)))
        .json(ExceptionView::from(record)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExceptionQuery {
    /// `requested`, `active`, `rejected`, `expired` or `revoked`.
    pub status: Option<String>,
    /// Only active exceptions that expire within this many days.
    pub expiring_within_days: Option<u32>,
    /// Only exceptions of this vulnerability id.
    pub vulnerability: Option<String>,
    pub cursor: Option<String>,
    /// 1-500 (default 50).
    pub limit: Option<u32>,
}

/// The tenant's exceptions, newest first.
#[utoipa::path(
    operation_id = "list_exceptions",
    tag = "exceptions",
    params(ExceptionQuery),
    responses((status = 200, body = Page<ExceptionView>), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/exceptions")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<ExceptionQuery>,
) -> ApiResult<web::Json<Page<ExceptionView>>> {
    let tenant = caller.tenant()?;
    if let Some(status) = &query.status {
        if !["requested", "active", "rejected", "expired", "revoked"].contains(&status.as_str()) {
            return Err(Problem::bad_request(
                "status: requested, active, rejected, expired or revoked",
            )
            .at("status"));
        }
    }
    let filter = ExceptionFilter {
        status: query.status.clone(),
        expiring_before: query
            .expiring_within_days
            .map(|days| Utc::now() + Duration::days(i64::from(days.min(3_650)))),
        vulnerability: query.vulnerability.clone(),
    };
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(cursor) => Some(
            ExceptionId::parse(cursor)
                .map_err(|_| Problem::bad_request("not a cursor of this list").at("cursor"))?
                .to_string(),
        ),
        None => None,
    };
    let page = ctx
        .store
        .tenant(tenant)
        .exceptions()
        .list(&filter, cursor.as_deref(), query.limit.unwrap_or(50))
        .await
        .map_err(|err| Problem::from(err).at("limit"))?;
    Ok(web::Json(Page::from_store(page, ExceptionView::from)))
}

fn exception_id(text: &str) -> ApiResult<ExceptionId> {
    ExceptionId::parse(text).map_err(|_| Problem::not_found(format!("exception {text} not found")))
}

/// One exception.
#[utoipa::path(
    operation_id = "get_exception",
    tag = "exceptions",
    params(("id" = String, Path, description = "the exception's id")),
    responses((status = 200, body = ExceptionView), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/exceptions/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<ExceptionView>> {
    let tenant = caller.tenant()?;
    let record = ctx
        .store
        .tenant(tenant)
        .exceptions()
        .get(&exception_id(&id)?)
        .await?;
    Ok(web::Json(record.into()))
}

/// Why a decision is made (`{}` when there is nothing to say; required to reject or
/// revoke).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub reason: String,
}

#[derive(Clone, Copy)]
enum Move {
    Approve,
    Reject,
    Revoke,
}

async fn decide(
    ctx: &Context,
    caller: &Caller,
    id: &str,
    action: Move,
    body: DecisionBody,
) -> ApiResult<web::Json<ExceptionView>> {
    let tenant = caller.tenant()?;
    let id = exception_id(id)?;
    let exceptions = ctx.store.tenant(tenant).exceptions();
    let actor = caller.actor();
    let by = acting(caller, &actor);
    let now = Utc::now();
    let record = match action {
        Move::Approve => {
            exceptions
                .decide(&id, ExceptionDecision::Approve, by, &body.reason, now)
                .await
        }
        Move::Reject => {
            exceptions
                .decide(&id, ExceptionDecision::Reject, by, &body.reason, now)
                .await
        }
        Move::Revoke => exceptions.revoke(&id, by, &body.reason, now).await,
    }
    .map_err(refused)?;
    Ok(web::Json(record.into()))
}

macro_rules! decision_route {
    ($fn:ident, $op:literal, $path:literal, $move:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
                            operation_id = $op,
                            tag = "exceptions",
                            params(("id" = String, Path, description = "the exception's id")),
                            request_body = DecisionBody,
                            responses((status = 200, body = ExceptionView), Problems, BodyProblems),
                            security(("bearer" = ["policy:approve"]))
                        )]
        #[post($path)]
        pub(crate) async fn $fn(
            ctx: web::Data<Context>,
            caller: Caller,
            id: web::Path<String>,
            body: JsonBody<DecisionBody>,
        ) -> ApiResult<web::Json<ExceptionView>> {
            decide(&ctx, &caller, &id, $move, body.0).await
        }
    };
}

decision_route!(
    approve,
    "approve_exception",
    "/exceptions/{id}/approve",
    Move::Approve,
    "Approve a requested exception (not by the identity that requested it): it applies at once, and the targets it touches are re-evaluated."
);
decision_route!(
    reject,
    "reject_exception",
    "/exceptions/{id}/reject",
    Move::Reject,
    "Reject a requested exception, saying why."
);
decision_route!(
    revoke,
    "revoke_exception",
    "/exceptions/{id}/revoke",
    Move::Revoke,
    "End an active exception before its expiry, saying why; the targets it touched are re-evaluated."
);
