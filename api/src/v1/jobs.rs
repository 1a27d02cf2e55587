//! Jobs of the caller's tenant: submit, list with filters, get one with its history of
//! steps and attempts, cancel.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::diag::Noop;
use stella_actors::scan::Scan;
use stella_store::repo::{Job, JobEvent, JobFilter, JobState, Transition};
use stella_store::JobId;
use stella_supervisor::{JobRequest, Kind, KindInfo, Submitters};
use utoipa::{IntoParams, ToSchema};

use super::{not_found_unless, BodyProblems, Page, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub tenant: String,
    pub kind: String,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// The step the job is at.
    pub step: String,
    pub params: Value,
    pub result: Option<Value>,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub not_before: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        Self {
            id: job.id.to_string(),
            tenant: job.tenant.to_string(),
            kind: job.kind,
            state: job.state.as_str().to_owned(),
            step: job.step,
            params: job.params,
            result: job.result,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            last_error: job.last_error,
            idempotency_key: job.idempotency_key,
            created_at: job.created_at,
            updated_at: job.updated_at,
            not_before: job.not_before,
            finished_at: job.finished_at,
        }
    }
}

/// One state change: the history of a job's steps and attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobEventView {
    pub seq: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub step: String,
    pub attempt: u32,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<JobEvent> for JobEventView {
    fn from(event: JobEvent) -> Self {
        Self {
            seq: event.seq,
            from_state: event.from_state.map(|s| s.as_str().to_owned()),
            to_state: event.to_state.as_str().to_owned(),
            step: event.step,
            attempt: event.attempt,
            error: event.error,
            at: event.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobView,
    pub events: Vec<JobEventView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// A registered job kind, e.g. `noop`.
    #[schema(example = "noop")]
    pub kind: String,
    /// The kind's parameters (an object).
    #[serde(default)]
    pub params: Option<Value>,
    /// Submitting again with the same key returns the first job; the same key with other
    /// parameters is refused (`422`). The `Idempotency-Key` header does the same.
    pub idempotency_key: Option<String>,
    /// Attempts before the job fails for good (default: `runtime.max_attempts`).
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn job_id(raw: &str) -> Result<JobId, Problem> {
    not_found_unless(JobId::parse(raw), "job", raw)
}

/// Whether the caller may submit `kind` here: the kind declares it ([`Submitters`]);
/// `api.tenant_noop_jobs` opens the diagnostic `noop` kind to tenant tokens.
fn may_submit(ctx: &Context, caller: &Caller, kind: &KindInfo) -> ApiResult<()> {
    let tenants_may = match kind.submitters {
        Submitters::Tenants => true,
        Submitters::Administrators => kind.name == Noop::NAME && ctx.settings.tenant_noop_jobs,
        Submitters::Internal => {
            let route = if kind.name == Scan::NAME {
                "; submit scans with POST /api/v1/scans"
            } else {
                ""
            };
            return Err(Problem::forbidden(format!(
                "job kind {:?} is started by Stella itself, not through /jobs{route}",
                kind.name
            ))
            .at("kind"));
        }
    };
    if tenants_may || caller.is_admin() {
        return Ok(());
    }
    Err(Problem::forbidden(format!(
        "job kind {:?} can be submitted only with an administrator token",
        kind.name
    ))
    .at("kind"))
}

/// Submit a job; `200` instead of `201` when the idempotency key named an existing job,
/// `422` when it named one submitted with other parameters.
#[utoipa::path(
    operation_id = "submit_job",
    tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Submitting again with the same key returns the first job; the same key with another request is refused with 422")),
    request_body = SubmitJob,
    responses((status = 201, body = JobView), (status = 200, body = JobView), Problems, BodyProblems),
    security(("bearer" = ["jobs:write"]))
)]
#[post("/jobs")]
pub(crate) async fn submit(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody<SubmitJob>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let body = body.0;
    let Some(kind) = ctx.registry.kind(&body.kind) else {
        return Err(Problem::bad_request(format!("unknown job kind {:?}", body.kind)).at("kind"));
    };
    may_submit(&ctx, &caller, &kind)?;
    let params = body
        .params
        .unwrap_or_else(|| Value::Object(Default::default()));
    if !params.is_object() {
        return Err(Problem::bad_request("params must be a JSON object").at("params"));
    }
    let request = JobRequest::checked(&kind, params.clone()).map_err(|invalid| {
        let at = if invalid.field.is_empty() {
            "params".to_owned()
        } else {
            format!("params.{}", invalid.field)
        };
        Problem::bad_request(invalid.message).at(at)
    })?;
    let max_attempts = body.max_attempts.unwrap_or(ctx.job_max_attempts);
    if !(1..=100).contains(&max_attempts) {
        return Err(Problem::bad_request("max_attempts must be 1 to 100").at("max_attempts"));
    }
    let idempotency_key = match (crate::idempotency::header(&req)?, body.idempotency_key) {
        (Some(header), Some(field)) if header != field => {
            return Err(Problem::bad_request(
                "the Idempotency-Key header and the idempotency_key field differ; send one",
            )
            .at("idempotency_key"));
        }
        (header, field) => header.or(field),
    };
    if let Some(key) = &idempotency_key {
        let fingerprint = serde_json::json!({
            "kind": body.kind,
            "params": params,
            "max_attempts": max_attempts,
        });
        crate::idempotency::claim(&ctx, tenant, "jobs", key, &fingerprint).await?;
    }
    let mut request = request.with_attempts(max_attempts);
    request.idempotency_key = idempotency_key;
    let submitted =
        stella_supervisor::submit(&ctx.store, &ctx.registry, tenant, &request, Utc::now()).await?;
    let view = JobView::from(submitted.job);
    Ok(if submitted.created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// List the tenant's jobs in creation order.
#[utoipa::path(
    operation_id = "list_jobs",
    tag = "jobs",
    params(JobQuery),
    responses((status = 200, body = Page<JobView>), Problems),
    security(("bearer" = ["jobs:read"]))
)]
#[get("/jobs")]
pub(crate) async fn list(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<JobQuery>,
) -> ApiResult<web::Json<Page<JobView>>> {
    let tenant = caller.tenant()?;
    let state = query
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(JobState::parse)
        .transpose()
        .map_err(|err| Problem::from(err).at("state"))?;
    let filter = JobFilter {
        state,
        kind: query.kind.clone().filter(|k| !k.is_empty()),
    };
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let page = ctx
        .store
        .tenant(tenant)
        .jobs()
        .list(&filter, cursor, query.limit.unwrap_or(50))
        .await?;
    Ok(web::Json(Page::from_store(page, JobView::from)))
}

/// Get a job with its steps and attempts.
#[utoipa::path(
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobDetail), Problems),
    security(("bearer" = ["jobs:read"]))
)]
#[get("/jobs/{id}")]
pub(crate) async fn get(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<JobDetail>> {
    let tenant = caller.tenant()?;
    let id = job_id(&id)?;
    let jobs = ctx.store.tenant(tenant).jobs();
    let job = jobs.get(&id).await?;
    let events = jobs.events(&id).await?;
    Ok(web::Json(JobDetail {
        job: job.into(),
        events: events.into_iter().map(JobEventView::from).collect(),
    }))
}

/// Cancel a job that has not finished; a running step's outcome is then discarded.
#[utoipa::path(
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobView), Problems, BodyProblems),
    security(("bearer" = ["jobs:write"]))
)]
#[post("/jobs/{id}/cancel")]
pub(crate) async fn cancel(
    ctx: web::Data<Context>,
    caller: Caller,
    id: web::Path<String>,
) -> ApiResult<web::Json<JobView>> {
    let tenant = caller.tenant()?;
    let id = job_id(&id)?;
    Ok(web::Json(
        cancel_job(&ctx, tenant, &id, &caller).await?.into(),
    ))
}

/// Cancels a tenant's job that has not finished (the one cancel of jobs, scans and
/// export runs); a job already cancelled is returned as it is, a finished one is a 409.
pub(crate) async fn cancel_job(
    ctx: &Context,
    tenant: &stella_store::TenantId,
    id: &JobId,
    caller: &Caller,
) -> ApiResult<Job> {
    let jobs = ctx.store.tenant(tenant).jobs();
    // A step may commit between the read and the compare-and-set: try again on the new state.
    for _ in 0..5 {
        let job = jobs.get(id).await?;
        if job.state == JobState::Cancelled {
            return Ok(job);
        }
        if job.state.is_terminal() {
            return Err(Problem::conflict(format!("job {id} already {}", job.state)));
        }
        let mut change = Transition::new(job.state, JobState::Cancelled);
        change.error = Some(format!("cancelled by {}", caller.actor()));
        match jobs.transition(id, &change, &[], Utc::now()).await {
            Ok(job) => return Ok(job),
            Err(stella_store::StoreError::Conflict(_)) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(Problem::conflict(format!(
        "job {id} kept changing state; try again"
    )))
}
