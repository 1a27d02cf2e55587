//! The audit log of mutating calls (administrators only), oldest first.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_store::repo::AuditRecord;
use stella_store::TenantId;
use utoipa::{IntoParams, ToSchema};

use super::{Page, Problems};
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// Who: the token id and name.
    pub actor: String,
    /// The operation, as named in the OpenAPI document.
    pub action: String,
    /// The request path.
    pub target: String,
    pub request_id: Option<String>,
    /// Method and response status.
    pub details: Value,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            tenant: r.entry.tenant.map(|t| t.to_string()),
            actor: r.entry.actor,
            action: r.entry.action,
            target: r.entry.target,
            request_id: r.entry.request_id,
            details: r.entry.details,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this tenant's entries.
    pub tenant: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Read the audit log.
#[utoipa::path(
    operation_id = "list_audit",
    tag = "audit",
    params(AuditQuery),
    responses((status = 200, body = Page<AuditView>), Problems),
    security(("bearer" = ["admin"]))
)]
#[get("/audit")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    query: web::Query<AuditQuery>,
) -> ApiResult<web::Json<Page<AuditView>>> {
    let tenant = query
        .tenant
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(TenantId::parse)
        .transpose()
        .map_err(|err| Problem::from(err).at("tenant"))?;
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let page = ctx
        .store
        .audit()
        .list(tenant.as_ref(), cursor, query.limit.unwrap_or(50))
        .await?;
    Ok(web::Json(Page::from_store(page, AuditView::from)))
}
