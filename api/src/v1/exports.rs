//! Exports of the caller's tenant: profiles (immutable per revision; a change is the next
//! revision), runs of a profile revision (an `export` job, same id), and the files a run
//! wrote, downloadable in ranges. Checking a profile and starting a run are the export
//! kind's (`stella_actors::export`); this module adds what is HTTP's.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::export::{
    put_profile, start_run_limited, Export, ExportParams, ProfileDefinition, PutProfileError,
    StartRunError,
};
use stella_store::object::Sha256Digest;
use stella_store::repo::{ExportFileRecord, ExportProfileRecord, Job, JobFilter, JobState};
use tokio::io::AsyncReadExt as _;
use utoipa::{IntoParams, ToSchema};

use super::{job_of_kind, BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

/// One revision of an export profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    pub name: String,
    pub revision: u64,
    /// What it writes: `json:raw`, `json:policy`, `csv`, `sarif`, `cyclonedx`, `spdx`,
    /// `report:pdf`, `report:xlsx`, `evidence`, `mirror:full` or `mirror:delta`.
    pub kind: String,
    /// The selectors and retention, as stored (canonical JSON).
    #[schema(value_type = Object)]
    pub definition: Value,
    /// sha256 of the kind and the definition: equal digests, equal exports.
    pub digest: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<ExportProfileRecord> for ProfileView {
    fn from(record: ExportProfileRecord) -> Self {
        Self {
            definition: serde_json::from_str(&record.definition).unwrap_or(Value::Null),
            name: record.name,
            revision: record.revision,
            kind: record.kind,
            digest: record.digest,
            created_by: record.created_by,
            created_at: record.created_at,
        }
    }
}

/// A profile to create, or its next revision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutProfile {
    /// 1-100 characters of a-z, 0-9, `-`, `_`, `.`.
    pub name: String,
    /// What to write: `json:raw` (the scans' inputs as stored: `raw.json`, and the SBOMs
    /// with `options.include_sboms`), `json:policy` (verdicts, findings with their explain
    /// traces, policy snapshots: `policy.json`), `csv` (one row per finding:
    /// `findings.csv`), `sarif` (SARIF 2.1.0 for GitHub code scanning, one log per scan),
    /// `cyclonedx` (CycloneDX 1.6 JSON with vulnerabilities and VEX analysis, one BOM per
    /// scan), `spdx` (SPDX 2.3 JSON, one document per scan), `report:pdf` or
    /// `report:xlsx` (a report for people: `report.pdf`, `report.xlsx`) or `evidence` (a
    /// signed, reproducible `tar.zst` of what the verdicts rest on, and each member on its
    /// own), `mirror:full` or `mirror:delta` (every advisory and VEX document the tenant
    /// reads, or what changed since a base mirror export, as `mirror.tar.zst` for
    /// `stella mirror import` on an instance with no network).
    pub kind: String,
    /// `scans` (ids), `targets` (names: their latest scan), `dispositions` (`pass`,
    /// `warn`, `block`; all when empty). The mirror kinds take none: `{}`.
    #[schema(value_type = Object)]
    pub selectors: Value,
    /// `include_sboms` (`json:raw`: the SBOMs as files of the export), `include_evidence`
    /// (booleans), `template` (`executive`, `detailed`; reports).
    #[schema(value_type = Object)]
    pub options: Option<Value>,
    /// Where the files go besides the download route: `{"to": "download"}` (default),
    /// `{"to": "objects", "prefix": "…"}` (copied to
    /// `tenants/<tenant>/<prefix>/<export id>/<file>` in the object store) or
    /// `{"to": "destination", "name": "…", "prefix": "…"}` (copied to a destination the
    /// operator declared and opened to the tenant, under
    /// `<destination prefix>/<tenant>/<prefix>/<export id>/<file>`; `prefix` optional; a
    /// name the tenant may not use is refused at `distribution.name`).
    #[schema(value_type = Object)]
    pub distribution: Option<Value>,
    /// Events that start a run: `[{"on": "scan.completed", "targets": ["…"]}]` (every
    /// scan of the targets named; of any target when `targets` is left out).
    #[schema(value_type = Option<Vec<Object>>)]
    pub triggers: Option<Value>,
    /// Days the files are kept (default 30).
    pub retention_days: Option<u32>,
}

/// Start a run of a profile.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartExport {
    /// The profile's name.
    pub profile: String,
    /// The revision to run (default: the latest).
    pub revision: Option<u64>,
    /// What the export is as of (RFC 3339; default: now). Equal inputs and an equal time
    /// give byte-identical files.
    pub as_of: Option<DateTime<Utc>>,
    /// For a `mirror:delta` profile (and no other): the id of the completed mirror
    /// export the delta is taken since.
    pub base: Option<String>,
}

/// An export run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    pub export_id: String,
    /// `queued`, `running`, `completed`, `failed`, `cancelled`.
    pub status: String,
    pub profile: Option<String>,
    pub revision: Option<u64>,
    pub as_of: Option<DateTime<Utc>>,
    /// The step it is at or ended in: `plan`, `write`, `seal`, `distribute`.
    pub step: String,
    /// Items (findings) written so far, of `items_total`; both absent before the plan.
    pub items_done: Option<u64>,
    pub items_total: Option<u64>,
    /// Why it failed, while it retries or once it failed.
    pub error: Option<String>,
    /// What it wrote, by name.
    pub files: Vec<FileView>,
    /// Finding counts from the manifest.
    #[schema(value_type = Object)]
    pub counts: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A file of an export run.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileView {
    pub name: String,
    pub size_bytes: u64,
    pub sha256: String,
}

impl From<ExportFileRecord> for FileView {
    fn from(file: ExportFileRecord) -> Self {
        Self {
            name: file.name,
            size_bytes: file.size_bytes,
            sha256: file.sha256,
        }
    }
}

fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Retrying => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

fn profile_problem(err: PutProfileError) -> Problem {
    match err {
        PutProfileError::Invalid(invalid) => {
            let at = if invalid.field.is_empty() || invalid.field == "." {
                String::new()
            } else {
                invalid.field
            };
            let problem = Problem::bad_request(invalid.message);
            if at.is_empty() {
                problem
            } else {
                problem.at(at)
            }
        }
        PutProfileError::NotFound { field, message } => Problem::not_found(message).at(field),
        PutProfileError::Store(err) => err.into(),
    }
}

/// Create an export profile, or its next revision when the definition changed (`201`);
/// the same definition again is `200` with the latest revision.
#[utoipa::path(
    operation_id = "put_export_profile",
    tag = "exports",
    request_body = PutProfile,
    responses((status = 201, body = ProfileView), (status = 200, body = ProfileView), Problems, BodyProblems),
    security(("bearer" = ["exports:write"]))
)]
#[post("/export-profiles")]
pub(crate) async fn put(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<PutProfile>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let body = body.0;
    let mut definition = serde_json::json!({ "selectors": body.selectors });
    if let Some(days) = body.retention_days {
        definition["retention_days"] = days.into();
    }
    if let Some(options) = body.options {
        definition["options"] = options;
    }
    if let Some(distribution) = body.distribution {
        definition["distribution"] = distribution;
    }
    if let Some(triggers) = body.triggers {
        definition["triggers"] = triggers;
    }
    let (record, created) = put_profile(
        &ctx.store,
        &ctx.export_destinations,
        tenant,
        &body.name,
        &body.kind,
        &definition,
        &caller.actor(),
        Utc::now(),
    )
    .await
    .map_err(profile_problem)?;
    let view = ProfileView::from(record);
    Ok(if created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// The tenant's export profiles (their latest revisions), by name.
#[utoipa::path(
    operation_id = "list_export_profiles",
    tag = "exports",
    params(PageQuery),
    responses((status = 200, body = Page<ProfileView>), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/export-profiles")]
pub(crate) async fn list_profiles(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<ProfileView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .export_profiles()
        .list(query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, ProfileView::from)))
}

/// A profile's latest revision.
#[utoipa::path(
    operation_id = "get_export_profile",
    tag = "exports",
    params(("name" = String, Path, description = "The profile's name")),
    responses((status = 200, body = ProfileView), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/export-profiles/{name}")]
pub(crate) async fn get_profile(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<web::Json<ProfileView>> {
    let tenant = caller.tenant()?;
    let name = name.into_inner();
    let record = ctx
        .store
        .tenant(tenant)
        .export_profiles()
        .latest(&name)
        .await?
        .ok_or_else(|| Problem::not_found(format!("export profile {name} not found")))?;
    Ok(web::Json(record.into()))
}

/// Every revision of a profile, oldest first.
#[utoipa::path(
    operation_id = "list_export_profile_revisions",
    tag = "exports",
    params(("name" = String, Path, description = "The profile's name")),
    responses((status = 200, body = Vec<ProfileView>), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/export-profiles/{name}/revisions")]
pub(crate) async fn revisions(
    ctx: web::Data<Context>,
    caller: Caller,
    name: web::Path<String>,
) -> ApiResult<web::Json<Vec<ProfileView>>> {
    let tenant = caller.tenant()?;
    let records = ctx
        .store
        .tenant(tenant)
        .export_profiles()
        .revisions(&name)
        .await?;
    Ok(web::Json(records.into_iter().map(Into::into).collect()))
}

/// Accepted export run.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportAccepted {
    pub export_id: String,
    pub status: String,
}

/// Start a run of a profile revision; `202` with the export id. An `Idempotency-Key`
/// makes a retried request return the same run.
#[utoipa::path(
    operation_id = "start_export",
    tag = "exports",
    params(("Idempotency-Key" = Option<String>, Header, description = "Starting again with the same key returns the first run; the same key with another request is refused with 422")),
    request_body = StartExport,
    responses((status = 202, body = ExportAccepted), Problems, BodyProblems),
    security(("bearer" = ["exports:write"]))
)]
#[post("/exports")]
pub(crate) async fn create(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<StartExport>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let body = body.0;
    stella_actors::export::check_name(&body.profile)
        .map_err(|invalid| Problem::bad_request(invalid.message).at("profile"))?;
    let as_of = body.as_of.unwrap_or_else(Utc::now);
    let key = crate::idempotency::header(&req)?;
    if let Some(key) = &key {
        let fingerprint = serde_json::json!({
            "profile": body.profile,
            "revision": body.revision,
            "as_of": body.as_of.map(|t| t.timestamp_millis()),
            "base": body.base,
        });
        crate::idempotency::claim(&ctx, tenant, "exports", key, &fingerprint).await?;
    }
    let job = start_run_limited(
        &ctx.store,
        &ctx.registry,
        tenant,
        &body.profile,
        body.revision,
        as_of,
        body.base.as_deref(),
        key.as_deref(),
        ctx.job_max_attempts,
        ctx.settings.max_export_runs_per_tenant,
    )
    .await
    .map_err(|err| match err {
        StartRunError::NotFound(what) => {
            let at = if what.starts_with("base export") {
                "base"
            } else {
                "profile"
            };
            Problem::not_found(format!("{what} not found")).at(at)
        }
        limit @ StartRunError::Limit { .. } => {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "export-limit",
                limit.to_string(),
            );
            problem.retry_after = Some(RETRY_AFTER_LIMIT_SECS);
            problem
        }
        StartRunError::Invalid { field, message } => Problem::bad_request(message).at(field),
        StartRunError::Store(err) => err.into(),
    })?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/exports/{}", job.id)))
        .json(ExportAccepted {
            export_id: job.id.to_string(),
            status: status(job.state).to_owned(),
        }))
}

pub(crate) async fn export_job(ctx: &Context, caller: &Caller, raw: &str) -> ApiResult<Job> {
    job_of_kind::<Export>(ctx, caller.tenant()?, raw, "export").await
}

/// An export run: its status, the profile revision it used, and its files.
#[utoipa::path(
    operation_id = "get_export",
    tag = "exports",
    params(("export_id" = String, Path, description = "The export's id")),
    responses((status = 200, body = ExportView), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports/{export_id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    export_id: web::Path<String>,
) -> ApiResult<web::Json<ExportView>> {
    let job = export_job(&ctx, &caller, &export_id).await?;
    Ok(web::Json(view(&ctx, job, true).await?))
}

/// Seconds a client refused for the run limit is told to wait.
const RETRY_AFTER_LIMIT_SECS: u64 = 30;

/// The view of a run; its file list only when `with_files`.
pub(crate) async fn view(ctx: &Context, job: Job, with_files: bool) -> ApiResult<ExportView> {
    let tenant = ctx.store.tenant(&job.tenant);
    let files = if with_files {
        tenant.export_files().list(&job.id).await?
    } else {
        Vec::new()
    };
    let run = tenant.export_runs().get(&job.id).await?;
    let params = serde_json::from_value::<ExportParams>(job.params.clone()).ok();
    let error = match job.state {
        JobState::Retrying | JobState::Failed | JobState::Cancelled => job.last_error.clone(),
        _ => None,
    };
    Ok(ExportView {
        export_id: job.id.to_string(),
        status: status(job.state).to_owned(),
        profile: params.as_ref().map(|p| p.profile.clone()),
        revision: params.as_ref().map(|p| p.revision),
        as_of: params.as_ref().map(|p| p.as_of),
        step: job.step.clone(),
        items_done: run.as_ref().map(|r| r.items_done),
        items_total: run.as_ref().map(|r| r.items_total),
        error,
        files: files.into_iter().map(FileView::from).collect(),
        counts: run.and_then(|r| r.counts),
        created_at: job.created_at,
        finished_at: job.finished_at,
    })
}

/// Filters of the run list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportListQuery {
    /// `queued`, `retrying`, `running`, `completed`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// Only runs of this profile (a page may then hold fewer runs than `limit`).
    pub profile: Option<String>,
    pub cursor: Option<String>,
    /// 1-500 (default 50).
    pub limit: Option<u32>,
}

/// The tenant's export runs, oldest first, without their file lists.
#[utoipa::path(
    operation_id = "list_exports",
    tag = "exports",
    params(ExportListQuery),
    responses((status = 200, body = Page<ExportView>), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<ExportListQuery>,
) -> ApiResult<web::Json<Page<ExportView>>> {
    let tenant = caller.tenant()?;
    let state = match query.status.as_deref() {
        None => None,
        Some("queued") => Some(JobState::Queued),
        Some("retrying") => Some(JobState::Retrying),
        Some("running") => Some(JobState::Running),
        Some("completed") => Some(JobState::Succeeded),
        Some("failed") => Some(JobState::Failed),
        Some("cancelled") => Some(JobState::Cancelled),
        Some(other) => {
            return Err(Problem::bad_request(format!(
            "{other:?} is not a status (queued, retrying, running, completed, failed, cancelled)"
        ))
            .at("status"))
        }
    };
    if let Some(profile) = &query.profile {
        stella_actors::export::check_name(profile)
            .map_err(|invalid| Problem::bad_request(invalid.message).at("profile"))?;
    }
    let filter = JobFilter {
        state,
        kind: Some(<Export as stella_supervisor::Kind>::NAME.to_owned()),
    };
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(&filter, query.cursor.as_deref(), query.limit.unwrap_or(50))
        .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for job in page.items {
        let of_profile = query.profile.as_ref().is_none_or(|wanted| {
            job.params.get("profile").and_then(Value::as_str) == Some(wanted.as_str())
        });
        if of_profile {
            items.push(view(&ctx, job, false).await?);
        }
    }
    Ok(web::Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Cancel a run that has not finished: its running step is stopped and nothing more is
/// written; files already written stay listed.
#[utoipa::path(
    operation_id = "cancel_export",
    tag = "exports",
    params(("export_id" = String, Path, description = "The export's id")),
    responses((status = 200, body = ExportView), Problems),
    security(("bearer" = ["exports:write"]))
)]
#[post("/exports/{export_id}/cancel")]
pub(crate) async fn cancel(
    ctx: web::Data<Context>,
    caller: Caller,
    export_id: web::Path<String>,
) -> ApiResult<web::Json<ExportView>> {
    let job = export_job(&ctx, &caller, &export_id).await?;
    let job = super::jobs::cancel_job(&ctx, &job.tenant, &job.id, &caller).await?;
    Ok(web::Json(view(&ctx, job, true).await?))
}

/// The run's manifest, `export.json`: every file with its size and sha256 (canonical
/// JSON; its DSSE signature is the file `export.json.dsse`).
#[utoipa::path(
    operation_id = "get_export_manifest",
    tag = "exports",
    params(("export_id" = String, Path, description = "The export's id")),
    responses((status = 200, description = "export.json", content_type = "application/json", body = Object), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports/{export_id}/manifest")]
pub(crate) async fn manifest(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    export_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let job = export_job(&ctx, &caller, &export_id).await?;
    serve_file(
        &ctx,
        &req,
        &job,
        stella_domain::export::manifest::MANIFEST_NAME,
    )
    .await
}

/// The run's provenance, `provenance.json`: an in-toto Statement whose subjects are its
/// files (its DSSE signature is the file `provenance.json.dsse`).
#[utoipa::path(
    operation_id = "get_export_provenance",
    tag = "exports",
    params(("export_id" = String, Path, description = "The export's id")),
    responses((status = 200, description = "provenance.json", content_type = "application/json", body = Object), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports/{export_id}/provenance")]
pub(crate) async fn provenance(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    export_id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let job = export_job(&ctx, &caller, &export_id).await?;
    serve_file(
        &ctx,
        &req,
        &job,
        stella_domain::export::manifest::PROVENANCE_NAME,
    )
    .await
}

/// When a finished run's files stop being served: its end plus its profile revision's
/// retention. `None` while it runs, or when the revision cannot be read.
async fn expires_at(ctx: &Context, job: &Job) -> ApiResult<Option<DateTime<Utc>>> {
    let (Some(finished), Ok(params)) = (
        job.finished_at,
        serde_json::from_value::<ExportParams>(job.params.clone()),
    ) else {
        return Ok(None);
    };
    let record = ctx
        .store
        .tenant(&job.tenant)
        .export_profiles()
        .revision(&params.profile, params.revision)
        .await?;
    let Ok(definition) = serde_json::from_str::<ProfileDefinition>(&record.definition) else {
        return Ok(None);
    };
    Ok(Some(
        finished + chrono::Duration::days(i64::from(definition.retention_days)),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// The export's id.
    pub export_id: String,
    /// The file's name (`findings.csv`, `policy.json`, `scan-<id>.cdx.json`,
    /// `export.json`, `export.json.dsse`, ...).
    pub name: String,
}

/// The byte range a `Range` header asks for, inclusive: `None` for the whole file, `Err`
/// when it cannot be satisfied (416).
fn range(header: Option<&HeaderValue>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = header.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    // One range only; a list is served whole (allowed by RFC 9110).
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.checked_sub(1).ok_or(())?)
        }
        (from, "") => (
            from.parse().map_err(|_| ())?,
            size.checked_sub(1).ok_or(())?,
        ),
        (from, to) => {
            let from: u64 = from.parse().map_err(|_| ())?;
            let to: u64 = to.parse().map_err(|_| ())?;
            (from, to.min(size.saturating_sub(1)))
        }
    };
    if start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Download a file of an export run. `Range: bytes=…` (one range) gives `206`; a range
/// past the end `416`; `If-Range` with the file's `ETag` (its sha256) resumes only the
/// same bytes.
#[utoipa::path(
    operation_id = "download_export_file",
    tag = "exports",
    params(FilePath, ("Range" = Option<String>, Header, description = "bytes=FIRST-LAST, FIRST- or -SUFFIX"), ("If-Range" = Option<String>, Header, description = "The ETag the first part had")),
    responses(
        (status = 200, description = "The whole file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 416, description = "The range is past the end", content_type = "application/problem+json"),
        Problems
    ),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports/{export_id}/files/{name:.+}")]
pub(crate) async fn download(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    path: web::Path<FilePath>,
) -> ApiResult<HttpResponse> {
    let job = export_job(&ctx, &caller, &path.export_id).await?;
    serve_file(&ctx, &req, &job, &path.name).await
}

/// Serves a file of a run: whole, or the one range asked for; `410 Gone` once the run's
/// retention has passed.
pub(crate) async fn serve_file(
    ctx: &Context,
    req: &HttpRequest,
    job: &Job,
    name: &str,
) -> ApiResult<HttpResponse> {
    if let Some(expired) = expires_at(ctx, job).await?.filter(|at| *at <= Utc::now()) {
        return Err(Problem::new(
            StatusCode::GONE,
            "export-expired",
            format!(
                "export {} expired at {}: its profile keeps files {} after a run ends",
                job.id,
                expired.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "for its retention_days",
            ),
        ));
    }
    let file = ctx
        .store
        .tenant(&job.tenant)
        .export_files()
        .get(&job.id, name)
        .await?;
    let digest = Sha256Digest::parse(&file.sha256)?;
    let etag = format!("\"{}\"", file.sha256);
    let content_type = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else if name.ends_with(".cdx.json") {
        "application/vnd.cyclonedx+json"
    } else if name.ends_with(".spdx.json") {
        "application/spdx+json"
    } else if name.ends_with(".json") || name.ends_with(".dsse") {
        "application/json"
    } else if name.ends_with(".zst") {
        "application/zstd"
    } else {
        "application/octet-stream"
    };
    let size = file.size_bytes;
    // A resume whose `If-Range` names other bytes gets the whole (new) file.
    let same = req
        .headers()
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v == etag));
    let wanted = if same {
        range(req.headers().get(header::RANGE), size).map_err(|()| {
            Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!("{} is {size} bytes", name),
            )
            .at("Range")
        })?
    } else {
        None
    };
    // A bundle member (`sboms/<sha256>.json`) is saved as its last segment.
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.rsplit('/').next().unwrap_or(name)
    );
    // Streamed, never held whole. The object store's reader checks the digest as the
    // bytes pass and fails the stream at its end if they do not match, so a tampered
    // file is a broken download, never a complete one (a client also has the digest:
    // the ETag, and the run's file list).
    let mut reader = ctx.objects.get_content(&digest).await?;
    let unreadable = |err: std::io::Error| Problem::internal(format!("reading {}: {err}", name));
    let (mut response, start, len) = match wanted {
        None => (HttpResponse::Ok(), 0, size),
        Some((start, end)) => {
            let mut partial = HttpResponse::PartialContent();
            partial.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            (partial, start, end - start + 1)
        }
    };
    if start > 0 {
        tokio::io::copy(&mut (&mut reader).take(start), &mut tokio::io::sink())
            .await
            .map_err(unreadable)?;
    }
    Ok(response
        .insert_header((header::ETAG, etag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .content_type(content_type)
        .no_chunking(len)
        .streaming(tokio_util::io::ReaderStream::new(reader.take(len))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: &str, size: u64) -> Result<Option<(u64, u64)>, ()> {
        range(
            Some(&HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static(""))),
            size,
        )
    }

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-500", 100), Ok(Some((0, 99))));
        assert_eq!(r("bytes=95-200", 100), Ok(Some((95, 99))));
        assert_eq!(r("bytes=100-", 100), Err(()));
        assert_eq!(r("bytes=5-2", 100), Err(()));
        assert_eq!(r("bytes=-0", 100), Err(()));
        assert_eq!(r("bytes=x-1", 100), Err(()));
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(range(None, 100), Ok(None));
    }
}
