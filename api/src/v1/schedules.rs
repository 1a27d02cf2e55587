//! The caller tenant's targets, schedules and runs. Targets are named images or
//! applications whose latest SBOM comes from a scan; schedules fire runs by cron (or on
//! demand), and the scheduler also fires runs when advisories, VEX or the policy change.
//! The scheduler itself (`stella_scheduler`) does the firing; this module validates and
//! stores.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stella_actors::advisory_sync::AdvisorySync;
use stella_scheduler::manage::{self, ManageError, ScheduleInput, TargetSource};
use stella_store::repo::{RunRecord, RunTargetRecord, ScheduleRecord, TargetRecord};
use stella_store::{JobId, RunId, ScheduleId};
use utoipa::{IntoParams, ToSchema};

use super::{not_found_unless, BodyProblems, Page, PageQuery, Problems};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::problem::{ApiResult, Problem};
use crate::Context;

impl From<ManageError> for Problem {
    fn from(err: ManageError) -> Self {
        match err {
            ManageError::Invalid(spec) => {
                Problem::bad_request(format!("{}: {}", spec.field, spec.message)).at(spec.field)
            }
            ManageError::Store(err) => err.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub id: String,
    pub name: String,
    /// The SBOM re-scans evaluate.
    pub sbom_sha256: String,
    /// The latest scan (what the next re-scan's diff compares with).
    pub last_scan_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TargetRecord> for TargetView {
    fn from(t: TargetRecord) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name,
            sbom_sha256: t.sbom_sha256,
            last_scan_id: t.last_scan_id.map(|id| id.to_string()),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// Register a target (or point an existing one at a new SBOM): give `scan_id` (a scan of
/// this tenant: its SBOM, and the scan as the target's latest) or `sbom_sha256`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTarget {
    pub name: String,
    pub scan_id: Option<String>,
    pub sbom_sha256: Option<String>,
}

/// Register a target, or point an existing one (same name) at a new SBOM.
#[utoipa::path(
    operation_id = "put_target",
    tag = "schedules",
    request_body = PutTarget,
    responses((status = 200, body = TargetView), Problems, BodyProblems),
    security(("bearer" = ["schedules:write"]))
)]
#[post("/targets")]
pub(crate) async fn put_target(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<PutTarget>,
) -> ApiResult<web::Json<TargetView>> {
    let tenant = caller.tenant()?;
    let body = body.0;
    let source = match (body.scan_id, body.sbom_sha256) {
        (Some(scan), None) => TargetSource::Scan(
            JobId::parse(&scan)
                .map_err(|_| Problem::not_found(format!("scan {scan} not found")))?,
        ),
        (None, Some(sha)) => {
            TargetSource::Sbom(sha.strip_prefix("sha256:").unwrap_or(&sha).to_owned())
        }
        _ => {
            return Err(
                Problem::bad_request("give exactly one of scan_id and sbom_sha256").at("scan_id"),
            )
        }
    };
    let target = manage::put_target(
        &ctx.store,
        &ctx.objects,
        tenant,
        &body.name,
        source,
        None,
        Utc::now(),
    )
    .await?;
    Ok(web::Json(target.into()))
}

/// The tenant's targets, by name.
#[utoipa::path(
    operation_id = "list_targets",
    tag = "schedules",
    params(PageQuery),
    responses((status = 200, body = Page<TargetView>), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/targets")]
pub(crate) async fn list_targets(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<TargetView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .targets()
        .list(query.cursor(), query.limit())
        .await?;
    Ok(web::Json(Page::from_store(page, TargetView::from)))
}

/// One target, by id or name.
#[utoipa::path(
    operation_id = "get_target",
    tag = "schedules",
    responses((status = 200, body = TargetView), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/targets/{target}")]
pub(crate) async fn get_target(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<TargetView>> {
    let tenant = caller.tenant()?;
    let target = ctx.store.tenant(tenant).targets().get(&path).await?;
    Ok(web::Json(target.into()))
}

/// Remove a target (its past run results stay).
#[utoipa::path(
    operation_id = "delete_target",
    tag = "schedules",
    responses((status = 204), Problems),
    security(("bearer" = ["schedules:write"]))
)]
#[delete("/targets/{target}")]
pub(crate) async fn delete_target(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    ctx.store.tenant(tenant).targets().delete(&path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub name: String,
    /// As written: 5 fields (or 6 with seconds first), or a macro such as `@daily`.
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    /// Target names; absent: every target.
    pub targets: Option<Vec<String>>,
    pub sources: Option<Vec<String>>,
    /// The export profile an `export` schedule runs.
    pub profile: Option<String>,
    pub jitter_seconds: u32,
    /// `skip` or `fire-once`.
    pub missed: String,
    /// `skip` or `queue`.
    pub overlap: String,
    pub enabled: bool,
    /// The next due time (cron, in UTC) and when it fires (plus the jitter offset);
    /// absent while paused.
    pub next_due_at: Option<DateTime<Utc>>,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ScheduleRecord> for ScheduleView {
    fn from(s: ScheduleRecord) -> Self {
        Self {
            id: s.id.to_string(),
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            kind: s.kind,
            targets: s.targets,
            sources: s.sources,
            profile: s.profile,
            jitter_seconds: s.jitter_seconds,
            missed: s.missed,
            overlap: s.overlap,
            enabled: s.state == "active",
            next_due_at: s.next_due_at,
            next_fire_at: s.next_fire_at,
            last_run_id: s.last_run_id.map(|id| id.to_string()),
            created_by: s.created_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A schedule definition. Create: `name` and `cron` required; update: only the fields
/// given change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub name: Option<String>,
    /// Standard 5-field cron (`minute hour day-of-month month day-of-week`), 6 fields
    /// with seconds first, or `@yearly`, `@monthly`, `@weekly`, `@daily`, `@hourly`.
    pub cron: Option<String>,
    /// IANA timezone the cron fields are read in (default `UTC`).
    pub timezone: Option<String>,
    /// `rescan` (default), `advisory-sync` or `export`.
    pub kind: Option<String>,
    pub targets: Option<Vec<String>>,
    pub sources: Option<Vec<String>>,
    /// The export profile an `export` schedule runs (its latest revision at each
    /// firing, as of the due time); needs the `exports:write` scope too.
    pub profile: Option<String>,
    /// Fire times spread over this many seconds after the due time, fixed per schedule;
    /// 0 disables jitter (default: `scheduler.default_jitter_secs`).
    pub jitter_seconds: Option<i64>,
    /// `skip` (default) or `fire-once`.
    pub missed: Option<String>,
    /// `skip` (default) or `queue`.
    pub overlap: Option<String>,
    pub enabled: Option<bool>,
}

impl From<ScheduleBody> for ScheduleInput {
    fn from(b: ScheduleBody) -> Self {
        Self {
            name: b.name,
            cron: b.cron,
            timezone: b.timezone,
            kind: b.kind,
            targets: b.targets,
            sources: b.sources,
            profile: b.profile,
            jitter_seconds: b.jitter_seconds,
            missed: b.missed,
            overlap: b.overlap,
            enabled: b.enabled,
        }
    }
}

/// An advisory-sync schedule imports advisories every tenant sees: only an administrator
/// token may create or change one (as only it may import them), and its sources must
/// pass the outbound guard's checks that need no network, as a submitted sync's would.
fn may_sync(
    ctx: &Context,
    caller: &Caller,
    kind: Option<&str>,
    sources: Option<&[String]>,
) -> ApiResult<()> {
    if kind != Some(stella_scheduler::spec::ADVISORY_SYNC) {
        return Ok(());
    }
    if !caller.has_scope("advisories:write") {
        return Err(Problem::forbidden(
            "an advisory-sync schedule imports advisories for every tenant; only an administrator token may create or change one",
        ));
    }
    if let Some(sources) = sources {
        let params = stella_actors::advisory_sync::SyncParams {
            sources: sources.to_vec(),
        };
        if let Some(checked) = ctx.registry.check::<AdvisorySync>(&params) {
            checked.map_err(|invalid| Problem::bad_request(invalid.message).at(invalid.field))?;
        }
    }
    Ok(())
}

/// An export schedule runs a profile's exports: it needs the `exports:write` scope as
/// well, and the profile must exist for the tenant.
async fn may_export(
    ctx: &Context,
    caller: &Caller,
    kind: Option<&str>,
    profile: Option<&str>,
) -> ApiResult<()> {
    if kind != Some(stella_scheduler::spec::EXPORT) {
        return Ok(());
    }
    if !caller.has_scope("exports:write") {
        return Err(Problem::forbidden(
            "an export schedule starts export runs; it needs the exports:write scope too",
        ));
    }
    if let Some(profile) = profile {
        let exists = stella_store::repo::is_profile_name(profile)
            && ctx
                .store
                .tenant(caller.tenant()?)
                .export_profiles()
                .latest(profile)
                .await?
                .is_some();
        if !exists {
            return Err(
                Problem::bad_request(format!("export profile {profile:?} does not exist"))
                    .at("profile"),
            );
        }
    }
    Ok(())
}

/// Create a schedule.
#[utoipa::path(
    operation_id = "create_schedule",
    tag = "schedules",
    request_body = ScheduleBody,
    responses((status = 201, body = ScheduleView), Problems, BodyProblems),
    security(("bearer" = ["schedules:write"]))
)]
#[post("/schedules")]
pub(crate) async fn create_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    body: JsonBody<ScheduleBody>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    may_sync(
        &ctx,
        &caller,
        body.0.kind.as_deref(),
        body.0.sources.as_deref(),
    )?;
    may_export(
        &ctx,
        &caller,
        body.0.kind.as_deref(),
        body.0.profile.as_deref(),
    )
    .await?;
    let schedule = manage::create_schedule(
        &ctx.store,
        tenant,
        body.0.into(),
        &caller.actor(),
        ctx.default_jitter_secs,
        Utc::now(),
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Location", format!("/api/v1/schedules/{}", schedule.id)))
        .json(ScheduleView::from(schedule)))
}

/// The tenant's schedules, oldest first.
#[utoipa::path(
    operation_id = "list_schedules",
    tag = "schedules",
    params(PageQuery),
    responses((status = 200, body = Page<ScheduleView>), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/schedules")]
pub(crate) async fn list_schedules(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> ApiResult<web::Json<Page<ScheduleView>>> {
    let tenant = caller.tenant()?;
    let page = ctx
        .store
        .tenant(tenant)
        .schedules()
        .list(query.cursor(), query.limit())
        .await?;
    Ok(web::Json(Page::from_store(page, ScheduleView::from)))
}

/// One schedule, by id or name.
#[utoipa::path(
    operation_id = "get_schedule",
    tag = "schedules",
    responses((status = 200, body = ScheduleView), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/schedules/{schedule}")]
pub(crate) async fn get_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<ScheduleView>> {
    let tenant = caller.tenant()?;
    let schedule = ctx.store.tenant(tenant).schedules().get(&path).await?;
    Ok(web::Json(schedule.into()))
}

/// Change a schedule: only the fields given change; the next times are recomputed.
#[utoipa::path(
    operation_id = "update_schedule",
    tag = "schedules",
    request_body = ScheduleBody,
    responses((status = 200, body = ScheduleView), Problems, BodyProblems),
    security(("bearer" = ["schedules:write"]))
)]
#[patch("/schedules/{schedule}")]
pub(crate) async fn update_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
    body: JsonBody<ScheduleBody>,
) -> ApiResult<web::Json<ScheduleView>> {
    let tenant = caller.tenant()?;
    let current = ctx.store.tenant(tenant).schedules().get(&path).await?;
    may_sync(
        &ctx,
        &caller,
        Some(body.0.kind.as_deref().unwrap_or(&current.kind)),
        body.0.sources.as_deref(),
    )?;
    may_export(
        &ctx,
        &caller,
        Some(body.0.kind.as_deref().unwrap_or(&current.kind)),
        body.0.profile.as_deref(),
    )
    .await?;
    let schedule =
        manage::update_schedule(&ctx.store, tenant, &path, body.0.into(), Utc::now()).await?;
    Ok(web::Json(schedule.into()))
}

/// Delete a schedule (its runs stay).
#[utoipa::path(
    operation_id = "delete_schedule",
    tag = "schedules",
    responses((status = 204), Problems),
    security(("bearer" = ["schedules:write"]))
)]
#[delete("/schedules/{schedule}")]
pub(crate) async fn delete_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let scope = ctx.store.tenant(tenant);
    let schedule = scope.schedules().get(&path).await?;
    scope.schedules().delete(&schedule.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Pause a schedule: it fires nothing until resumed.
#[utoipa::path(
    operation_id = "pause_schedule",
    tag = "schedules",
    responses((status = 200, body = ScheduleView), Problems, BodyProblems),
    security(("bearer" = ["schedules:write"]))
)]
#[post("/schedules/{schedule}/pause")]
pub(crate) async fn pause_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<ScheduleView>> {
    let tenant = caller.tenant()?;
    let schedule = manage::set_enabled(&ctx.store, tenant, &path, false, Utc::now()).await?;
    Ok(web::Json(schedule.into()))
}

/// Resume a paused schedule from its next due time after now.
#[utoipa::path(
    operation_id = "resume_schedule",
    tag = "schedules",
    responses((status = 200, body = ScheduleView), Problems, BodyProblems),
    security(("bearer" = ["schedules:write"]))
)]
#[post("/schedules/{schedule}/resume")]
pub(crate) async fn resume_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<ScheduleView>> {
    let tenant = caller.tenant()?;
    let schedule = manage::set_enabled(&ctx.store, tenant, &path, true, Utc::now()).await?;
    Ok(web::Json(schedule.into()))
}

/// Run a schedule now (trigger `manual`): `202` with the run.
#[utoipa::path(
    operation_id = "run_schedule",
    tag = "schedules",
    responses((status = 202, body = RunView), Problems),
    security(("bearer" = ["schedules:write"]))
)]
#[post("/schedules/{schedule}/run")]
pub(crate) async fn run_schedule(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?;
    let run = manage::trigger(&ctx.store, tenant, &path, Utc::now()).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/runs/{}", run.id)))
        .json(RunView::of(run, None)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunTargetView {
    pub target_id: String,
    pub target_name: String,
    /// The scan job of this target in this run.
    pub scan_id: String,
    pub previous_scan_id: Option<String>,
    /// `queued`, `completed` or `failed`.
    pub state: String,
    /// New, resolved and changed findings against the previous scan.
    #[schema(value_type = Object)]
    pub diff: Option<Value>,
}

impl From<RunTargetRecord> for RunTargetView {
    fn from(t: RunTargetRecord) -> Self {
        Self {
            target_id: t.target_id.to_string(),
            target_name: t.target_name,
            scan_id: t.scan_id.to_string(),
            previous_scan_id: t.previous_scan_id.map(|id| id.to_string()),
            state: t.state,
            diff: t.diff,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    /// Absent for runs triggered by events.
    pub schedule_id: Option<String>,
    /// `cron`, `manual`, `advisory`, `vex`, `policy` or `exception`.
    pub trigger: String,
    pub kind: String,
    /// `planning`, `queued`, `running`, `completed`, `cancelled` or `error`.
    pub state: String,
    /// The due time (cron), or when it was triggered.
    pub due_at: DateTime<Utc>,
    pub targets: Option<Vec<String>>,
    /// Why it exists: the schedule, the event, missed due times.
    #[schema(value_type = Object)]
    pub reason: Value,
    /// Targets queued, completed and failed; findings new, resolved and changed.
    #[schema(value_type = Object)]
    pub counts: Value,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Per-target results (detail only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<RunTargetView>>,
}

impl RunView {
    pub(crate) fn of(r: RunRecord, results: Option<Vec<RunTargetRecord>>) -> Self {
        Self {
            id: r.id.to_string(),
            schedule_id: r.schedule_id.map(|id| id.to_string()),
            trigger: r.trigger,
            kind: r.kind,
            state: r.state,
            due_at: r.due_at,
            targets: r.targets,
            reason: r.reason,
            counts: r.counts,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            results: results.map(|t| t.into_iter().map(RunTargetView::from).collect()),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only this schedule's runs: its id, or its name (as `/schedules/{id}` takes).
    pub schedule_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The tenant's runs, newest first.
#[utoipa::path(
    operation_id = "list_runs",
    tag = "schedules",
    params(RunsQuery),
    responses((status = 200, body = Page<RunView>), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/runs")]
pub(crate) async fn list_runs(
    ctx: web::Data<Context>,
    caller: Caller,
    query: web::Query<RunsQuery>,
) -> ApiResult<web::Json<Page<RunView>>> {
    let tenant = caller.tenant()?;
    let schedule = match query.schedule_id.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        // An id is taken as it is: the runs of a deleted schedule stay listable.
        Some(raw) => match ScheduleId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => Some(ctx.store.tenant(tenant).schedules().get(raw).await?.id),
        },
    };
    let page = ctx
        .store
        .tenant(tenant)
        .runs()
        .list(
            schedule.as_ref(),
            query.cursor.as_deref().filter(|c| !c.is_empty()),
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(web::Json(Page::from_store(page, |r| RunView::of(r, None))))
}

/// One run with its per-target results.
#[utoipa::path(
    operation_id = "get_run",
    tag = "schedules",
    responses((status = 200, body = RunView), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/runs/{id}")]
pub(crate) async fn get_run(
    ctx: web::Data<Context>,
    caller: Caller,
    path: web::Path<String>,
) -> ApiResult<web::Json<RunView>> {
    let tenant = caller.tenant()?;
    let id = not_found_unless(RunId::parse(&path), "run", &path)?;
    let runs = ctx.store.tenant(tenant).runs();
    let run = runs.get(&id).await?;
    let results = runs.targets(&id).await?;
    Ok(web::Json(RunView::of(run, Some(results))))
}
