//! Tenants: create, list, get, rename, disable and enable (administrators only). A
//! disabled tenant's tokens stop working at once; its data is kept.

use actix_web::{get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_store::repo::{Tenant, TenantStatus};
use stella_store::TenantId;
use utoipa::ToSchema;

use super::{not_found_unless, BodyProblems, Page, PageQuery, Problems};
use crate::auth::audit_tenant;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    /// Lowercase slug.
    pub id: String,
    pub name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// What rollout waves select tenants by.
    pub labels: std::collections::BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Tenant> for TenantView {
    fn from(tenant: Tenant) -> Self {
        Self {
            id: tenant.id.to_string(),
            name: tenant.name,
            status: match tenant.status {
                TenantStatus::Active => "active",
                TenantStatus::Disabled => "disabled",
            }
            .to_owned(),
            labels: tenant.labels,
            created_at: tenant.created_at,
            updated_at: tenant.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 1-63 characters of a-z, 0-9 and '-', starting with a letter.
    #[schema(example = "acme", pattern = "^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub id: String,
    /// 1-200 characters, not only spaces.
    #[schema(
        example = "Acme Corp",
        min_length = 1,
        max_length = 200,
        pattern = "\\S"
    )]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    /// A new display name.
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: Option<String>,
    /// The tenant's labels, replacing the ones it has (keys: 1-63 of a-z, 0-9, `.`, `_`,
    /// `-`, `/`; values: up to 63 of A-Z, a-z, 0-9, `.`, `_`, `-`; at most 32).
    pub labels: Option<std::collections::BTreeMap<String, String>>,
}

fn tenant_id(raw: &str) -> Result<TenantId, Problem> {
    not_found_unless(TenantId::parse(raw), "tenant", raw)
}

/// Create a tenant.
#[utoipa::path(
    operation_id = "create_tenant",
    tag = "tenants",
    request_body = CreateTenant,
    responses((status = 201, body = TenantView), Problems, BodyProblems),
    security(("bearer" = ["admin"]))
)]
#[post("/tenants")]
pub(crate) async fn create(
    ctx: web::Data<Context>,
    req: HttpRequest,
    body: JsonBody<CreateTenant>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let id = TenantId::parse(&body.id).map_err(|err| Problem::from(err).at("id"))?;
    audit_tenant(&req, &id);
    let tenant = ctx
        .store
        .tenants()
        .create(&id, &body.name, Utc::now())
        .await?;
    Ok(HttpResponse::Created().json(TenantView::from(tenant)))
}

/// List tenants, ordered by id.
#[utoipa::path(
    operation_id = "list_tenants",
    tag = "tenants",
    params(PageQuery),
    responses((status = 200, body = Page<TenantView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/tenants")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<TenantView>>> {
    let page = ctx
        .store
        .tenants()
        .list(query.cursor(), query.limit())
        .await?;
    Ok(web::Json(Page::from_store(page, TenantView::from)))
}

/// Get a tenant.
#[utoipa::path(
    operation_id = "get_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantView), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/tenants/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> ApiResult<web::Json<TenantView>> {
    let tenant = ctx.store.tenants().get(&tenant_id(&id)?).await?;
    Ok(web::Json(tenant.into()))
}

/// Rename a tenant or replace its labels.
#[utoipa::path(
    operation_id = "update_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    request_body = UpdateTenant,
    responses((status = 200, body = TenantView), Problems, BodyProblems),
    security(("bearer" = ["admin"]))
)]
#[patch("/tenants/{id}")]
pub(crate) async fn update(
    ctx: web::Data<Context>,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<UpdateTenant>,
) -> ApiResult<web::Json<TenantView>> {
    let id = tenant_id(&id)?;
    audit_tenant(&req, &id);
    let UpdateTenant { name, labels } = body.0;
    if name.is_none() && labels.is_none() {
        return Err(Problem::bad_request("give a `name`, `labels` or both"));
    }
    let tenants = ctx.store.tenants();
    let mut tenant = None;
    if let Some(name) = name {
        tenant = Some(
            tenants
                .rename(&id, &name, Utc::now())
                .await
                .map_err(|err| Problem::from(err).at("name"))?,
        );
    }
    if let Some(labels) = labels {
        tenant = Some(
            tenants
                .set_labels(&id, &labels, Utc::now())
                .await
                .map_err(|err| Problem::from(err).at("labels"))?,
        );
    }
    tenant
        .map(|t| web::Json(TenantView::from(t)))
        .ok_or_else(|| Problem::bad_request("nothing to change"))
}

/// Disable a tenant: its tokens stop working, its data is kept.
#[utoipa::path(
    operation_id = "disable_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantView), Problems),
    security(("bearer" = ["admin"]))
)]
#[post("/tenants/{id}/disable")]
pub(crate) async fn disable(
    ctx: web::Data<Context>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<web::Json<TenantView>> {
    set_status(&ctx, &req, &id, TenantStatus::Disabled).await
}

/// Enable a disabled tenant again.
#[utoipa::path(
    operation_id = "enable_tenant",
    tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantView), Problems),
    security(("bearer" = ["admin"]))
)]
#[post("/tenants/{id}/enable")]
pub(crate) async fn enable(
    ctx: web::Data<Context>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<web::Json<TenantView>> {
    set_status(&ctx, &req, &id, TenantStatus::Active).await
}

async fn set_status(
    ctx: &Context,
    req: &HttpRequest,
    raw: &str,
    status: TenantStatus,
) -> ApiResult<web::Json<TenantView>> {
    let id = tenant_id(raw)?;
    audit_tenant(req, &id);
    let tenant = ctx
        .store
        .tenants()
        .set_status(&id, status, Utc::now())
        .await?;
    Ok(web::Json(tenant.into()))
}
