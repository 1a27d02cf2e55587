//! VEX imports: OpenVEX, CycloneDX VEX or CSAF 2.0 documents, told apart by their content
//! or named by the content type (`application/csaf+json`, `application/vnd.openvex+json`,
//! `application/vnd.cyclonedx+json`). A tenant's token imports statements
//! for its own scans; an administrator token that names no tenant imports global (vendor)
//! statements every tenant's scans see. The raw document is stored content-addressed and
//! its normalized statements are what scans read; importing the same document again
//! changes nothing.

use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::Serialize;
use stella_domain::vex::VexFormat;
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
    /// `openvex`, `cyclonedx` or `csaf`.
    pub format: String,
    pub statements: u64,
    /// Statements whose product has no component identity (a CSAF product without a
    /// purl): stored, but they can match no SBOM component.
    pub without_component_identity: u64,
    /// `global`, or the tenant the statements are for.
    pub scope: String,
    /// `false` when this document was imported before (nothing changed).
    pub created: bool,
}

/// Import a VEX document (OpenVEX, CycloneDX VEX or CSAF 2.0).
#[utoipa::path(
    operation_id = "import_vex",
    tag = "vex",
    request_body(content = Object, description = "An OpenVEX (0.0.x, 0.2), CycloneDX VEX or CSAF 2.0 JSON document; `application/csaf+json`, `application/vnd.openvex+json` or `application/vnd.cyclonedx+json` names the format, `application/json` leaves it to the content", content_type = "application/json"),
    responses((status = 201, body = VexImportView), (status = 200, body = VexImportView), Problems, BodyProblems),
    security(("bearer" = ["vex:write"]))
)]
#[post("/vex")]
pub(crate) async fn import(
    ctx: web::Data<Context>,
    req: HttpRequest,
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
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(VexFormat::of_media_type);
    let (format, statements) =
        stella_domain::vex::parse_format(&bytes, declared).map_err(|err| {
            let what = match declared {
                Some(VexFormat::Csaf) => "not a valid CSAF 2.0 document",
                Some(VexFormat::OpenVex) => "not a valid OpenVEX document",
                Some(VexFormat::CycloneDx) => "not a valid CycloneDX VEX document",
                None => "not a valid OpenVEX, CycloneDX VEX or CSAF 2.0 document",
            };
            Problem::new(
                actix_web::http::StatusCode::BAD_REQUEST,
                "invalid-vex",
                format!("{what}: {}", err.message),
            )
            .at(err.pointer)
        })?;
    let format = format.as_str();
    let without_identity = stella_domain::vex::without_component_identity(&statements) as u64;
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
        without_component_identity: without_identity,
        scope: tenant.map_or_else(|| "global".to_owned(), |t| t.to_string()),
        created,
    };
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}
