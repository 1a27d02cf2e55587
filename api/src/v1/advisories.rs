//! Advisory imports over HTTP: an OSV collection (zip archive, JSON array or one record)
//! imported into the shared advisory store. Advisories are global: every tenant's scans
//! match against them, so importing them is for administrator tokens only
//! (`advisories:write` is a [global scope](crate::auth::GLOBAL_SCOPES)).

use actix_web::{post, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use stella_actors::advisory_sync::{import_collection, Collection, ImportError};
use stella_domain::osv::Limits;
use utoipa::{IntoParams, ToSchema};

use super::{BodyProblems, Problems};
use crate::body::DocumentBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Where the records come from, e.g. `osv:Go`; records are keyed by (source, id), so
    /// sources that disagree stay side by side.
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    pub source: String,
    pub records: u64,
    pub new: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// `ecosystem/name` of every package a new or changed record names (the delta).
    pub delta_packages: Vec<String>,
}

/// Import OSV advisories.
#[utoipa::path(
    operation_id = "import_advisories",
    tag = "advisories",
    params(ImportQuery),
    request_body(content = Vec<u8>, description = "An OSV zip (`all.zip`), a JSON array of records, or one record", content_type = "application/octet-stream"),
    responses((status = 200, body = ImportView), Problems, BodyProblems),
    security(("bearer" = ["advisories:write"]))
)]
#[post("/advisories/imports")]
pub(crate) async fn import(
    ctx: web::Data<Context>,
    query: web::Query<ImportQuery>,
    body: DocumentBody,
) -> ApiResult<web::Json<ImportView>> {
    // The body is handed over as it is (no copy): the reader takes one record at a time.
    let report = import_collection(
        &ctx.store,
        &ctx.objects,
        &query.source,
        Collection::Bytes(body.0),
        Limits::default(),
        Utc::now(),
    )
    .await
    .map_err(|err| match err {
        ImportError::Record { entry, error } => {
            let detail = if entry.is_empty() {
                error.message
            } else {
                format!("record {entry}: {}", error.message)
            };
            Problem::bad_request(detail).at(error.pointer)
        }
        ImportError::Collection(err) => Problem::bad_request(err.to_string()),
        ImportError::Store(err) => err.into(),
    })?;
    Ok(web::Json(ImportView {
        source: report.source,
        records: report.records,
        new: report.new,
        changed: report.changed,
        unchanged: report.unchanged,
        delta_packages: report.delta_packages,
    }))
}
