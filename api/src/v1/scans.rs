//! Scans of the caller's tenant: submit an SBOM (or name one submitted before), read the
//! scan's status and verdict, its findings page by page with their traces, and the
//! signed attestation. A scan is a `scan` job (same id) run by the analyzer, evaluator
//! and sealer roles. Storing the SBOM and submitting its scan is the scan kind's
//! [`Intake`]; this module adds what is HTTP's: the query's shape, the
//! `Idempotency-Key`, the target registration and the responses.

use actix_web::http::header;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::scan::{
    Analysis, IntakeError, SbomSource, Scan, ScanOptions, ScanParams, StoredSbom,
};
use stella_domain::sbom::SbomError;
use stella_store::object::Sha256Digest;
use stella_store::repo::{Job, JobState, SbomRecord, ScanRecord, ScanStatus};
use stella_store::{JobId, TenantId};
use stella_supervisor::Kind;
use utoipa::{IntoParams, ToSchema};

use super::{job_of_kind, BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::DocumentBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmitScanQuery {
    /// Scan an SBOM this tenant submitted before (its `sha256`) instead of a body.
    pub sbom: Option<String>,
    /// What the SBOM describes (the attestation's subject name); default: the SBOM's own
    /// subject or document name.
    pub name: Option<String>,
    /// The evaluation time (RFC 3339; default: now). Equal inputs and an equal time give a
    /// byte-identical verdict and attestation payload.
    pub evaluated_at: Option<DateTime<Utc>>,
    /// Scan an image this tenant uploaded (`POST /images`; its `sha256:` digest): the SBOM
    /// made of it, named after the image.
    pub image: Option<String>,
    /// Register (or re-point) the target of this name with this SBOM; the scan becomes
    /// its latest (what scheduled re-scans evaluate and diff against).
    pub target: Option<String>,
}

/// A stored SBOM.
#[derive(Debug, Serialize, ToSchema)]
pub struct SbomView {
    pub sha256: String,
    pub name: String,
    /// `cyclonedx` or `spdx`.
    pub format: String,
    pub spec_version: String,
    pub size_bytes: u64,
    pub created_at: DateTime<Utc>,
    /// Components per status (`matched_ecosystem`, `no_purl`, `invalid_purl`,
    /// `unsupported_ecosystem`): none is dropped silently.
    #[schema(value_type = Object)]
    pub summary: Value,
}

/// A submitted scan.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanAccepted {
    /// The scan's id: also the id of the job that runs it.
    pub job_id: String,
    /// `queued`.
    pub status: String,
    pub sbom_sha256: String,
}

/// A scan: its status, and once evaluated its verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScanView {
    pub id: String,
    pub job_id: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    pub status: String,
    /// The step the job is at (`analyze`, `evaluate`, `seal`).
    pub step: String,
    pub sbom_sha256: String,
    pub name: String,
    pub evaluated_at: DateTime<Utc>,
    /// `pass`, `warn` or `block` once evaluated.
    pub disposition: Option<String>,
    /// Components, findings, and findings per disposition, once evaluated.
    #[schema(value_type = Option<Object>)]
    pub counts: Option<Value>,
    /// The SBOM's inventory per component status, once analyzed.
    #[schema(value_type = Option<Object>)]
    pub sbom_summary: Option<Value>,
    /// The container image the SBOM describes, once analyzed: its name, digest, config
    /// digest and layers (also the attestation's second subject).
    #[schema(value_type = Option<Object>)]
    pub image: Option<Value>,
    pub policy_digest: Option<String>,
    /// The digests of every input (SBOM, advisories, VEX documents, policy).
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<Value>,
    /// sha256 over the canonical JSON of `inputs`: equal hashes mean a replayable scan.
    pub inputs_hash: Option<String>,
    /// The DSSE envelope's digest, once sealed (`GET .../attestation`).
    pub attestation_sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

fn status(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running | JobState::Retrying => "running",
        JobState::Succeeded => "completed",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// A scan's row without its analysis, and the SBOM summary and image from the analysis:
/// what a status read needs (the analysis of a large SBOM is tens of megabytes).
pub(crate) async fn status_of(
    ctx: &Context,
    tenant: &TenantId,
    id: &JobId,
) -> ApiResult<Option<ScanStatus>> {
    Ok(ctx.store.tenant(tenant).scans().status(id).await?)
}

pub(crate) fn view(job: Job, stored: Option<ScanStatus>) -> ApiResult<ScanView> {
    let params: ScanParams = serde_json::from_value(job.params.clone())
        .map_err(|err| Problem::internal(format!("scan parameters: {err}")))?;
    let (scan, sbom_summary, image) = match stored {
        Some(s) => (Some(s.scan), s.sbom_summary, s.image),
        None => (None, None, None),
    };
    let scan = scan.unwrap_or(ScanRecord {
        id: job.id.clone(),
        sbom_sha256: params.sbom_sha256.clone(),
        sbom_name: params.name.clone(),
        evaluated_at: params.evaluated_at,
        analysis: None,
        verdict: None,
        disposition: None,
        counts: None,
        inputs: None,
        inputs_hash: None,
        attestation_sha256: None,
        created_at: job.created_at,
        completed_at: None,
    });
    let policy_digest = scan
        .inputs
        .as_ref()
        .and_then(|i| i.get("policy"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(ScanView {
        id: job.id.to_string(),
        job_id: job.id.to_string(),
        status: status(job.state).to_owned(),
        step: job.step,
        sbom_sha256: scan.sbom_sha256,
        name: scan.sbom_name,
        evaluated_at: scan.evaluated_at,
        disposition: scan.disposition,
        counts: scan.counts,
        sbom_summary,
        image,
        policy_digest,
        inputs: scan.inputs,
        inputs_hash: scan.inputs_hash,
        attestation_sha256: scan.attestation_sha256,
        error: job.last_error,
        created_at: job.created_at,
        completed_at: scan.completed_at,
    })
}

fn bad_sbom(err: SbomError) -> Problem {
    match err {
        SbomError::Invalid(err) => Problem::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid-sbom",
            format!("not a CycloneDX or SPDX JSON SBOM: {}", err.message),
        )
        .at(err.pointer),
        // 413: the SBOM is valid, only too large for this server, like a body over
        // `api.max_body_bytes`.
        too_many @ SbomError::TooManyComponents { .. } => Problem::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "sbom-too-large",
            format!("{too_many} (api.max_sbom_components); split the SBOM"),
        ),
    }
}

pub(crate) fn intake_problem(err: IntakeError) -> Problem {
    match err {
        IntakeError::Sbom(err) => bad_sbom(err),
        IntakeError::Image(err) => Problem::new(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-image",
            format!("not an image archive Stella accepts: {err}"),
        ),
        IntakeError::Invalid { field, message } => Problem::bad_request(message).at(field),
        IntakeError::Store(err) => err.into(),
        IntakeError::Failed(message) => Problem::internal(message),
    }
}

fn sbom_view(record: SbomRecord, analysis: &Analysis) -> SbomView {
    SbomView {
        sha256: record.sha256,
        name: record.name,
        format: record.format,
        spec_version: record.spec_version,
        size_bytes: record.size_bytes,
        created_at: record.created_at,
        summary: serde_json::to_value(analysis.summary).unwrap_or_default(),
    }
}

/// Store an SBOM without scanning it (scan it later with `POST /scans?sbom=<sha256>`).
#[utoipa::path(
    operation_id = "upload_sbom",
    tag = "scans",
    request_body(content = Object, description = "A CycloneDX (1.2–1.6) or SPDX (2.2, 2.3) JSON SBOM", content_type = "application/json"),
    responses((status = 201, body = SbomView), Problems, BodyProblems),
    security(("bearer" = ["scans:write"]))
)]
#[post("/sboms")]
pub(crate) async fn upload(
    ctx: web::Data<Context>,
    caller: Caller,
    body: DocumentBody,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let StoredSbom { record, analysis } = ctx
        .intake
        .store_sbom(tenant, body.0, None)
        .await
        .map_err(intake_problem)?;
    Ok(HttpResponse::Created().json(sbom_view(record, &analysis)))
}

/// Submit a scan of the SBOM in the body (or of a stored one, `?sbom=`); `202` with the
/// job id. An `Idempotency-Key` header makes a retried submission return the same scan.
#[utoipa::path(
    operation_id = "submit_scan",
    tag = "scans",
    params(SubmitScanQuery, ("Idempotency-Key" = Option<String>, Header, description = "Submitting again with the same key returns the first scan; the same key with another SBOM or query is refused with 422")),
    request_body(content = Object, description = "A CycloneDX (1.2–1.6) or SPDX (2.2, 2.3) JSON SBOM; empty with `?sbom=`", content_type = "application/json"),
    responses((status = 202, body = ScanAccepted), Problems, BodyProblems),
    security(("bearer" = ["scans:write"]))
)]
#[post("/scans")]
pub(crate) async fn submit(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<SubmitScanQuery>,
    body: DocumentBody,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let query = query.into_inner();
    if let Some(target) = &query.target {
        stella_scheduler::manage::check_target_name(target)
            .map_err(|err| Problem::bad_request(format!("target: {}", err.message)).at("target"))?;
    }
    // What the request asks for (the SBOM's digest and the query), for the
    // Idempotency-Key check once the request is known to be valid.
    let idempotency = match crate::idempotency::header(&req)? {
        None => None,
        Some(key) => {
            let sbom = match query.sbom.as_deref() {
                Some(reference) => reference
                    .strip_prefix("sha256:")
                    .unwrap_or(reference)
                    .to_ascii_lowercase(),
                None => stella_domain::canonical::sha256_hex(&body.0),
            };
            let fingerprint = serde_json::json!({
                "sbom": sbom,
                "image": query.image.as_deref().map(super::images::image_digest).transpose()?,
                "name": query.name,
                "target": query.target,
                "evaluated_at": query.evaluated_at.map(|t| t.timestamp_millis()),
            });
            Some((key, fingerprint))
        }
    };
    let intake = &ctx.intake;
    let mut name = query.name;
    let image_sbom = match query.image.as_deref() {
        None => None,
        Some(raw) => {
            if query.sbom.is_some() {
                return Err(Problem::bad_request("give ?image= or ?sbom=, not both").at("image"));
            }
            let digest = super::images::image_digest(raw)?;
            let image = ctx.store.tenant(tenant).images().get(&digest).await?;
            name = name.or(Some(image.name));
            Some(image.sbom_sha256)
        }
    };
    let source = match query.sbom.or(image_sbom) {
        Some(reference) => {
            if !body.0.is_empty() {
                return Err(Problem::bad_request(
                    "give either an SBOM body or ?sbom=<sha256>, not both",
                ));
            }
            SbomSource::Stored(reference)
        }
        None => {
            if body.0.is_empty() {
                return Err(Problem::bad_request(
                    "the request body is empty; send a CycloneDX or SPDX JSON SBOM",
                ));
            }
            SbomSource::Body(body.0)
        }
    };
    let (sha256, name) = intake
        .sbom(tenant, source, name)
        .await
        .map_err(intake_problem)?;
    let idempotency_key = match idempotency {
        None => None,
        Some((key, fingerprint)) => {
            crate::idempotency::claim(&ctx, tenant, "scans", &key, &fingerprint).await?;
            Some(key)
        }
    };
    let options = ScanOptions {
        evaluated_at: query.evaluated_at.unwrap_or_else(Utc::now),
        idempotency_key,
        max_attempts: ctx.job_max_attempts,
    };
    let submitted = intake
        .submit(tenant, sha256, name, &options)
        .await
        .map_err(intake_problem)?;
    let (job, sbom_sha256) = (submitted.job, submitted.sbom_sha256);
    if let Some(target) = &query.target {
        let source = stella_scheduler::manage::TargetSource::Submitted {
            sbom_sha256: sbom_sha256.clone(),
            scan: job.id.clone(),
        };
        stella_scheduler::manage::put_target(
            &ctx.store,
            &ctx.objects,
            tenant,
            target,
            source,
            intake.analysis(&sbom_sha256),
            Utc::now(),
        )
        .await?;
    }
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/scans/{}", job.id)))
        .json(ScanAccepted {
            job_id: job.id.to_string(),
            status: status(job.state).to_owned(),
            sbom_sha256,
        }))
}

pub(crate) async fn scan_job(ctx: &Context, tenant: &TenantId, raw: &str) -> ApiResult<Job> {
    job_of_kind::<Scan>(ctx, tenant, raw, "scan").await
}

/// List the tenant's scans, newest last (creation order), with their status and verdict.
#[utoipa::path(
    operation_id = "list_scans",
    tag = "scans",
    params(PageQuery),
    responses((status = 200, body = Page<ScanView>), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/scans")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<ScanView>>> {
    let tenant = caller.tenant()?;
    let filter = stella_store::repo::JobFilter {
        state: None,
        kind: Some(Scan::NAME.to_owned()),
    };
    let scope = ctx.store.tenant(tenant);
    let page = scope
        .jobs()
        .list(&filter, query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    let mut items = Vec::with_capacity(page.items.len());
    for job in page.items {
        let status = status_of(&ctx, tenant, &job.id).await?;
        items.push(view(job, status)?);
    }
    Ok(web::Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// Get a scan: status, verdict, counts and inputs hash.
#[utoipa::path(
    operation_id = "get_scan",
    tag = "scans",
    params(("id" = String, Path, description = "Scan id (the job id)")),
    responses((status = 200, body = ScanView), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/scans/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<ScanView>> {
    let tenant = caller.tenant()?;
    let job = scan_job(&ctx, tenant, &id).await?;
    let status = status_of(&ctx, tenant, &job.id).await?;
    Ok(web::Json(view(job, status)?))
}

/// One finding: a matched (vulnerability, component) pair with its assessment, decision
/// and explain trace.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    /// The advisory's own id.
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    /// The component's purl, with version.
    pub purl: String,
    /// `pass`, `warn` or `block`.
    pub disposition: String,
    /// The rest of the finding: summary, severity, K4 assessment, trace.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// The findings of an evaluated scan, in a stable order, with their traces.
#[utoipa::path(
    operation_id = "list_scan_findings",
    tag = "scans",
    params(("id" = String, Path, description = "Scan id"), PageQuery),
    responses((status = 200, body = Page<FindingView>), (status = 409, description = "Not evaluated yet", content_type = "application/problem+json"), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/scans/{id}/findings")]
pub(crate) async fn findings(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<FindingView>>> {
    let tenant = caller.tenant()?;
    let job = scan_job(&ctx, tenant, &id).await?;
    let scans = ctx.store.tenant(tenant).scans();
    let evaluated = scans
        .get_without_analysis(&job.id)
        .await?
        .is_some_and(|scan| scan.verdict.is_some());
    if !evaluated {
        return Err(Problem::conflict(format!(
            "scan {} is {} and not evaluated yet",
            job.id,
            status(job.state)
        )));
    }
    let page = scans
        .findings(&job.id, query.cursor(), query.limit())
        .await
        .map_err(|err| Problem::from(err).at("cursor"))?;
    Ok(web::Json(Page::from_store(page, |record| {
        let mut detail = record.finding;
        let aliases = detail
            .get("aliases")
            .and_then(|a| serde_json::from_value(a.clone()).ok())
            .unwrap_or_default();
        if let Some(object) = detail.as_object_mut() {
            for key in ["vulnerability_id", "aliases", "purl", "disposition"] {
                object.remove(key);
            }
        }
        FindingView {
            vulnerability_id: record.vulnerability_id,
            aliases,
            purl: record.purl,
            disposition: record.disposition,
            detail,
        }
    })))
}

/// The scan's attestation: a DSSE envelope (in-toto Statement v1, signed Ed25519) over
/// the verdict; verify it with `GET /keys` and any DSSE tool, or `stella verify`.
#[utoipa::path(
    operation_id = "get_scan_attestation",
    tag = "scans",
    params(("id" = String, Path, description = "Scan id")),
    responses((status = 200, description = "The DSSE envelope", content_type = "application/json", body = Object), (status = 409, description = "Not sealed yet", content_type = "application/problem+json"), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/scans/{id}/attestation")]
pub(crate) async fn attestation(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let job = scan_job(&ctx, tenant, &id).await?;
    let sealed = ctx
        .store
        .tenant(tenant)
        .scans()
        .get_without_analysis(&job.id)
        .await?
        .and_then(|scan| scan.attestation_sha256);
    let Some(sha256) = sealed else {
        return Err(Problem::conflict(format!(
            "scan {} is {} and not sealed yet",
            job.id,
            status(job.state)
        )));
    };
    let digest = Sha256Digest::parse(&sha256)?;
    let bytes = ctx.objects.read_content(&digest).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(bytes))
}
