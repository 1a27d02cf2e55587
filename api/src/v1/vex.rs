//! VEX imports: OpenVEX or CycloneDX VEX documents. A tenant's token imports statements
//! for its own scans; an administrator token that names no tenant imports global (vendor)
//! statements every tenant's scans see. The raw document is stored content-addressed and
//! its normalized statements are what scans read; importing the same document again
//! changes nothing.

use actix_web::{post, web, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use stella_store::repo::VexDocumentRecord;
use utoipa::ToSchema;

use super::{BodyProblems, Problems};
use crate::auth::Caller;
use crate::body::DocumentBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct VexImportView {
    pub sha256: String,
    /// `openvex` or `cyclonedx`.
    pub format: String,
    pub statements: u64,
    /// `global`, or the tenant the statements are for.
    pub scope: String,
    /// `false` when this document was imported before (nothing changed).
    pub created: bool,
}

/// Import a VEX document (OpenVEX or CycloneDX VEX).
#[utoipa::path(
    operation_id = "import_vex",
    tag = "vex",
    request_body(content = Object, description = "An OpenVEX (0.0.x, 0.2) or CycloneDX VEX JSON document", content_type = "application/json"),
    responses((status = 201, body = VexImportView), (status = 200, body = VexImportView), Problems, BodyProblems),
    security(("bearer" = ["vex:write"]))
)]
#[post("/vex")]
pub(crate) async fn import(
    ctx: web::Data<Context>,
    caller: Caller,
    body: DocumentBody,
) -> ApiResult<HttpResponse> {
    let tenant = match &caller.tenant {
        Some(tenant) => Some(tenant.clone()),
        None if caller.is_admin() => None,
        None => {
            return Err(Problem::forbidden(
                "only an administrator imports global VEX statements",
            ))
        }
    };
    let bytes = body.0;
    let statements = stella_domain::vex::parse(&bytes).map_err(|err| {
        Problem::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid-vex",
            format!("not an OpenVEX or CycloneDX VEX document: {}", err.message),
        )
        .at(err.pointer)
    })?;
    // `parse` accepted it, so it is a JSON object of one of the two formats.
    let format = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(|doc| doc.get("statements").is_some())
        .map_or("cyclonedx", |_| "openvex");
    let stored = ctx.objects.put_content(bytes).await?;
    let record = VexDocumentRecord {
        tenant: tenant.as_ref().map(ToString::to_string),
        sha256: stored.digest.to_string(),
        format: format.to_owned(),
        statement_count: statements.len() as u64,
        statements: serde_json::to_value(&statements)
            .map_err(|err| Problem::internal(format!("VEX statements: {err}")))?,
        created_at: Utc::now(),
    };
    let created = ctx.store.vex().import(tenant.as_ref(), &record).await?;
    let view = VexImportView {
        sha256: record.sha256,
        format: record.format,
        statements: record.statement_count,
        scope: tenant.map_or_else(|| "global".to_owned(), |t| t.to_string()),
        created,
    };
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
