//! API tokens (administrators only): create (the secret is in the response, once, and
//! never stored), list and get (never the secret), revoke.
//!
//! A token with a tenant acts on that tenant only and cannot carry `admin`; a token
//! without one is an administrator token and must carry `admin`.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stella_store::repo::{NewToken, TokenRecord};
use stella_store::{TenantId, TokenId};
use utoipa::{IntoParams, ToSchema};

use super::{not_found_unless, BodyProblems, Page, Problems};
use crate::auth::{audit_tenant, ADMIN, GLOBAL_SCOPES, SCOPES};
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    /// Absent for administrator tokens.
    pub tenant: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<TokenRecord> for TokenView {
    fn from(token: TokenRecord) -> Self {
        Self {
            id: token.id.to_string(),
            tenant: token.tenant.map(|t| t.to_string()),
            name: token.name,
            scopes: token.scopes,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            last_used_at: token.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The tenant the token acts on; omit for an administrator token.
    #[schema(example = "acme")]
    pub tenant: Option<String>,
    #[schema(example = "ci")]
    pub name: String,
    #[schema(example = json!(["scans:write", "jobs:read"]))]
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The token's record (its `id` included, once) and its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// The secret: shown here once, never again.
    pub token: String,
    #[serde(flatten)]
    pub record: TokenView,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Tokens of this tenant; without it, administrator tokens.
    pub tenant: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The furthest ahead a token may expire, in days: 100 years. An expiry beyond that is a
/// typo or a probe for an overflow, not a policy; a token that never expires omits it.
const MAX_EXPIRY_DAYS: i64 = 36_525;

/// An expiry in the past makes a token that never works; one past [`MAX_EXPIRY_DAYS`] is
/// refused rather than carried towards the ends of the date types.
fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), Problem> {
    let Some(at) = expires_at else {
        return Ok(());
    };
    let latest = now.checked_add_signed(chrono::TimeDelta::days(MAX_EXPIRY_DAYS));
    if at <= now {
        Err(Problem::bad_request("expires_at must be in the future").at("expires_at"))
    } else if latest.is_none_or(|latest| at > latest) {
        Err(Problem::bad_request(format!(
            "expires_at must be within {MAX_EXPIRY_DAYS} days (100 years); omit it for a token that does not expire"
        ))
        .at("expires_at"))
    } else {
        Ok(())
    }
}

fn validate(body: &CreateToken) -> Result<Option<TenantId>, Problem> {
    let tenant = body
        .tenant
        .as_deref()
        .map(TenantId::parse)
        .transpose()
        .map_err(|err| Problem::from(err).at("tenant"))?;
    if body.scopes.is_empty() {
        return Err(Problem::bad_request("a token needs at least one scope").at("scopes"));
    }
    for (i, scope) in body.scopes.iter().enumerate() {
        if !SCOPES.contains(&scope.as_str()) {
            return Err(Problem::bad_request(format!(
                "unknown scope {scope:?}; known scopes: {}",
                SCOPES.join(", ")
            ))
            .at(format!("scopes[{i}]")));
        }
        if tenant.is_some() && scope != ADMIN && GLOBAL_SCOPES.contains(&scope.as_str()) {
            return Err(Problem::bad_request(format!(
                "a tenant token cannot carry {scope:?}: it changes data every tenant shares"
            ))
            .at(format!("scopes[{i}]")));
        }
    }
    let admin = body.scopes.iter().any(|s| s == ADMIN);
    match (&tenant, admin) {
        (Some(_), true) => Err(Problem::bad_request(
            "a tenant token cannot carry the admin scope; omit `tenant` for an administrator token",
        )
        .at("scopes")),
        (None, false) => Err(Problem::bad_request(
            "a token without a tenant is an administrator token and needs the admin scope; name a `tenant` otherwise",
        )
        .at("tenant")),
        _ => Ok(tenant),
    }
}

/// Create a token; the secret is in this response only.
#[utoipa::path(
    operation_id = "create_token",
    tag = "tokens",
    request_body = CreateToken,
    responses((status = 201, body = CreatedToken), Problems, BodyProblems),
    security(("bearer" = ["admin"]))
)]
#[post("/tokens")]
pub(crate) async fn create(
    ctx: web::Data<Context>,
    req: HttpRequest,
    body: JsonBody<CreateToken>,
) -> ApiResult<HttpResponse> {
    let body = body.0;
    let tenant = validate(&body)?;
    check_expiry(body.expires_at, Utc::now())?;
    if let Some(tenant) = &tenant {
        audit_tenant(&req, tenant);
        ctx.store
            .tenants()
            .get(tenant)
            .await
            .map_err(|err| Problem::from(err).at("tenant"))?;
    }
    let new = NewToken {
        tenant,
        name: body.name,
        scopes: body.scopes,
        expires_at: body.expires_at,
    };
    let (record, secret) = ctx
        .store
        .tokens()
        .create(&new, Utc::now())
        .await
        .map_err(|err| Problem::from(err).at("name"))?;
    Ok(HttpResponse::Created().json(CreatedToken {
        token: secret,
        record: record.into(),
    }))
}

/// List tokens of a tenant, or administrator tokens; never the secrets.
#[utoipa::path(
    operation_id = "list_tokens",
    tag = "tokens",
    params(TokenQuery),
    responses((status = 200, body = Page<TokenView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/tokens")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    query: web::Query<TokenQuery>,
) -> ApiResult<web::Json<Page<TokenView>>> {
    let tokens = ctx.store.tokens();
    let limit = query.limit.unwrap_or(50);
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let page = match query.tenant.as_deref() {
        Some(raw) => {
            let tenant = TenantId::parse(raw).map_err(|err| Problem::from(err).at("tenant"))?;
            tokens.list_for_tenant(&tenant, cursor, limit).await?
        }
        None => tokens.list_admin(cursor, limit).await?,
    };
    Ok(web::Json(Page::from_store(page, TokenView::from)))
}

/// Get a token (never its secret).
#[utoipa::path(
    operation_id = "get_token",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/tokens/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> ApiResult<web::Json<TokenView>> {
    let id = not_found_unless(TokenId::parse(&id), "token", &id)?;
    Ok(web::Json(ctx.store.tokens().get(&id).await?.into()))
}

/// Revoke a token: it stops working at once.
#[utoipa::path(
    operation_id = "revoke_token",
    tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = TokenView), Problems),
    security(("bearer" = ["admin"]))
)]
#[delete("/tokens/{id}")]
pub(crate) async fn revoke(
    ctx: web::Data<Context>,
    req: HttpRequest,
    id: web::Path<String>,
) -> ApiResult<web::Json<TokenView>> {
    let id = not_found_unless(TokenId::parse(&id), "token", &id)?;
    let revoked = ctx.store.tokens().revoke(&id, Utc::now()).await?;
    if let Some(tenant) = &revoked.tenant {
        audit_tenant(&req, tenant);
    }
    Ok(web::Json(revoked.into()))
}
