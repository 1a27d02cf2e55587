//! The tenant's policy: a TOML document of rules (format: `default_policy.toml` in the
//! domain crate, which is also what a tenant without a policy of its own gets). Every
//! change is a new immutable version; scans use the newest. Putting the active document
//! again creates nothing.

use actix_web::{get, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_domain::policy::{Policy, DEFAULT_POLICY};
use stella_store::repo::PolicyRecord;
use utoipa::ToSchema;

use super::{BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// 0 for the built-in default.
    pub version: u64,
    /// sha256 of the policy's canonical JSON: what verdicts record.
    pub digest: String,
    /// The TOML document.
    pub document: String,
    /// `true` when the tenant has no policy of its own.
    pub default: bool,
    pub created_by: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<PolicyRecord> for PolicyView {
    fn from(record: PolicyRecord) -> Self {
        Self {
            version: record.version,
            digest: record.digest,
            document: record.document,
            default: false,
            created_by: Some(record.created_by),
            created_at: Some(record.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    /// The policy as TOML.
    pub document: String,
}

fn default_view() -> ApiResult<PolicyView> {
    let policy = Policy::parse(DEFAULT_POLICY)
        .map_err(|err| Problem::internal(format!("the default policy: {err}")))?;
    Ok(PolicyView {
        version: 0,
        digest: policy.digest(),
        document: DEFAULT_POLICY.to_owned(),
        default: true,
        created_by: None,
        created_at: None,
    })
}

/// The policy the tenant's scans use now.
#[utoipa::path(
    operation_id = "get_policy",
    tag = "policy",
    responses((status = 200, body = PolicyView), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
) -> ApiResult<web::Json<PolicyView>> {
    let tenant = caller.tenant()?;
    match ctx.store.tenant(tenant).policies().active().await? {
        Some(record) => Ok(web::Json(record.into())),
        None => default_view().map(web::Json),
    }
}

/// Set the tenant's policy: a new version unless the document equals the active one.
#[utoipa::path(
    operation_id = "put_policy",
    tag = "policy",
    request_body = PutPolicy,
    responses((status = 201, body = PolicyView), (status = 200, body = PolicyView), Problems, BodyProblems),
    security(("bearer" = ["policy:write"]))
)]
#[put("/policy")]
pub(crate) async fn set(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<PutPolicy>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let document = body.0.document;
    let policy = Policy::parse(&document).map_err(|err| {
        Problem::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid-policy",
            format!("invalid policy: {}", err.message),
        )
        .at(format!("document{}", err.pointer))
    })?;
    let (record, created) = ctx
        .store
        .tenant(tenant)
        .policies()
        .put(&document, &policy.digest(), &caller.actor(), Utc::now())
        .await?;
    let view = PolicyView::from(record);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// Every version of the tenant's policy, newest first.
#[utoipa::path(
    operation_id = "list_policy_versions",
    tag = "policy",
    params(PageQuery),
    responses((status = 200, body = Page<PolicyView>), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/policy/versions")]
pub(crate) async fn versions(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<PolicyView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .policies()
        .list(query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, PolicyView::from)))
}
