//! Live progress as Server-Sent Events (`text/event-stream`): a job's state changes
//! (`GET /jobs/{id}/stream`; a scan's: `GET /scans/{id}/stream`; an export run's, with its
//! items written of its total: `GET /exports/{id}/stream`) and the tenant's events
//! (`GET /events/stream`), for the console's live pages and the CLI's `--wait`; a schedule
//! run's (`GET /runs/{id}/stream`) and a rollout's (`GET /rollouts/{id}/stream`) whole
//! view whenever it changes, with the time of the change as the event's id.
//!
//! Each event carries its sequence number as `id:`, so a client that reconnects with
//! `Last-Event-ID` gets what it missed and nothing twice. An idle stream sends a
//! `: heartbeat` comment every `api.stream_heartbeat_secs` (15 by default), so proxies and
//! clients can tell a quiet stream from a dead one. A job's stream ends with an `end`
//! event once the job is finished; the events stream runs until the client leaves.
//!
//! The streams read the store (the state a worker process committed), polling every
//! quarter second while the client reads: nothing is buffered for a client that does not
//! read (the response is pulled, so a stalled client stalls only its own stream), a
//! tenant holds at most `api.max_streams_per_tenant` streams (then `429`), and the open
//! streams are the gauge `stella_api_open_streams{stream}`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::{header, StatusCode};
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde_json::json;
use stella_store::repo::rollout_state;
use stella_store::repo::JobEvent;
use stella_store::{JobId, RolloutId, RunId, TenantId};
use utoipa::IntoParams;

use super::events::EventView;
use super::Problems;
use crate::auth::Caller;
use crate::problem::{ApiResult, Problem};
use crate::Context;

/// How often an open stream reads the store.
const POLL: Duration = Duration::from_millis(250);

/// Events read per poll of the events stream.
const EVENTS_PER_POLL: u32 = 100;

/// Open streams per tenant, shared by every request of this process.
#[derive(Debug, Default)]
pub struct StreamCounts(Mutex<HashMap<TenantId, u64>>);

/// One open stream: counted per tenant and in the gauge until dropped (the client left,
/// or the stream ended).
struct Open {
    counts: Arc<StreamCounts>,
    tenant: TenantId,
    gauge: prometheus::IntGauge,
}

impl Open {
    fn take(ctx: &Context, tenant: &TenantId, stream: &str) -> ApiResult<Self> {
        let max = ctx.settings.max_streams_per_tenant;
        {
            let mut counts = ctx.streams.0.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(tenant.clone()).or_default();
            if max > 0 && *n >= max {
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-streams",
                    format!(
                        "this tenant holds {n} open streams, the most it may \
                         (api.max_streams_per_tenant); close one first"
                    ),
                ));
            }
            *n += 1;
        }
        let gauge = ctx.metrics.open_streams.with_label_values(&[stream]);
        gauge.inc();
        Ok(Self {
            counts: ctx.streams.clone(),
            tenant: tenant.clone(),
            gauge,
        })
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// One SSE frame.
fn frame(id: Option<i64>, event: &str, data: &serde_json::Value) -> Bytes {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(&format!("id: {id}\n"));
    }
    out.push_str(&format!("event: {event}\ndata: {data}\n\n"));
    Bytes::from(out)
}

/// `Last-Event-ID` (a sequence number), or the query's `after`.
fn resume_point(req: &HttpRequest, after: Option<i64>) -> ApiResult<Option<i64>> {
    match req.headers().get("last-event-id") {
        None => Ok(after),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| {
                Problem::bad_request("Last-Event-ID must be the id of an event of this stream")
            }),
    }
}

/// What a stream reads.
enum Source {
    /// A job's state changes; for an export run also its progress (the last count sent).
    Job {
        id: JobId,
        export: bool,
        progress: Option<(u64, u64)>,
    },
    Events {
        kind: Option<String>,
    },
    /// A schedule run or a rollout: the whole view whenever it changes, then `end` once
    /// it is finished (see [`snapshot`]).
    Watch(Watched),
}

/// What a snapshot stream watches.
enum Watched {
    Run {
        id: RunId,
    },
    /// `only`: one tenant's part of it.
    Rollout {
        id: RolloutId,
        only: Option<TenantId>,
    },
}

/// A run's or rollout's view, the time of the newest change it shows (milliseconds: the
/// events' ids), its progress for a run, and whether it is finished.
struct Snapshot {
    view: serde_json::Value,
    version: i64,
    progress: Option<(u64, u64)>,
    finished: Option<String>,
}

/// Reads a run or a rollout as its stream sends it.
async fn snapshot(
    ctx: &Context,
    tenant: &TenantId,
    watched: &Watched,
) -> Result<Snapshot, Problem> {
    match watched {
        Watched::Run { id } => {
            let runs = ctx.store.tenant(tenant).runs();
            let run = runs.get(id).await?;
            let results = runs.targets(id).await?;
            let version = run.updated_at.timestamp_millis();
            let count = |key: &str| run.counts.get(key).and_then(serde_json::Value::as_u64);
            let progress = count("targets").map(|total| {
                let done = count("completed").unwrap_or(0) + count("failed").unwrap_or(0);
                (done.min(total), total)
            });
            let finished = matches!(run.state.as_str(), "completed" | "cancelled" | "error")
                .then(|| run.state.clone());
            let view = serde_json::to_value(super::schedules::RunView::of(run, Some(results)))
                .unwrap_or_default();
            Ok(Snapshot {
                view,
                version,
                progress,
                finished,
            })
        }
        Watched::Rollout { id, only } => {
            let rollouts = ctx.store.rollouts();
            let record = rollouts.get(id).await?;
            let tenants = rollouts.tenants(id, None).await?;
            // The newest change the view shows: the rollout's own, or a tenant's
            // activation, rollback or shadow result.
            let mut version = record.updated_at.timestamp_millis();
            for t in &tenants {
                for at in [
                    t.activated_at,
                    t.rolled_back_at,
                    t.shadow.as_ref().map(|s| s.created_at),
                ]
                .into_iter()
                .flatten()
                {
                    version = version.max(at.timestamp_millis());
                }
            }
            let finished = [rollout_state::COMPLETED, rollout_state::ROLLED_BACK]
                .contains(&record.state.as_str())
                .then(|| record.state.clone());
            let view = super::rollouts::view(record, tenants, None, only.as_ref());
            Ok(Snapshot {
                view: serde_json::to_value(view).unwrap_or_default(),
                version,
                progress: None,
                finished,
            })
        }
    }
}

struct Stream {
    ctx: web::Data<Context>,
    tenant: TenantId,
    source: Source,
    /// The last sequence number sent (or skipped by `Last-Event-ID`).
    after: i64,
    pending: VecDeque<Bytes>,
    last_write: Instant,
    heartbeat: Duration,
    done: bool,
    _open: Open,
}

fn job_event(e: &JobEvent) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "from": e.from_state.map(|s| s.as_str()),
        "state": e.to_state.as_str(),
        "step": e.step,
        "attempt": e.attempt,
        "error": e.error,
        "at": e.at,
    })
}

impl Stream {
    /// A stream of `source` for `tenant`, starting after the event numbered `after`.
    fn new(
        ctx: web::Data<Context>,
        tenant: TenantId,
        source: Source,
        after: i64,
        open: Open,
    ) -> Self {
        let heartbeat = Duration::from_secs(ctx.settings.stream_heartbeat_secs.max(1));
        Self {
            ctx,
            tenant,
            source,
            after,
            pending: VecDeque::new(),
            last_write: Instant::now(),
            heartbeat,
            done: false,
            _open: open,
        }
    }

    /// Reads what happened since the last poll into `pending`.
    async fn poll(&mut self) -> Result<(), Problem> {
        match &mut self.source {
            Source::Job {
                id,
                export,
                progress,
            } => {
                let scope = self.ctx.store.tenant(&self.tenant);
                let jobs = scope.jobs();
                // The job first: when it is finished, the events read next include its
                // last one, and the stream can end after them.
                let job = jobs.get(id).await?;
                for e in jobs.events_after(id, self.after).await? {
                    self.after = e.seq;
                    self.pending
                        .push_back(frame(Some(e.seq), "state", &job_event(&e)));
                }
                // An export's items written of its total, when they move (no id: a
                // resumed stream sends the current count again).
                if *export {
                    if let Some(run) = scope.export_runs().get(id).await? {
                        let now = (run.items_done, run.items_total);
                        if *progress != Some(now) {
                            *progress = Some(now);
                            self.pending.push_back(frame(
                                None,
                                "progress",
                                &json!({"items_done": now.0, "items_total": now.1}),
                            ));
                        }
                    }
                }
                if job.state.is_terminal() {
                    self.pending.push_back(frame(
                        None,
                        "end",
                        &json!({"state": job.state.as_str(), "error": job.last_error}),
                    ));
                    self.done = true;
                }
            }
            Source::Watch(watched) => {
                let now = snapshot(&self.ctx, &self.tenant, watched).await?;
                // Sent when it changed since the last event (or `Last-Event-ID`), once.
                if now.version > self.after {
                    self.after = now.version;
                    self.pending
                        .push_back(frame(Some(now.version), "state", &now.view));
                    if let Some((done, total)) = now.progress {
                        self.pending.push_back(frame(
                            None,
                            "progress",
                            &json!({"items_done": done, "items_total": total}),
                        ));
                    }
                }
                if let Some(state) = now.finished {
                    self.pending
                        .push_back(frame(None, "end", &json!({"state": state})));
                    self.done = true;
                }
            }
            Source::Events { kind } => {
                let page = self
                    .ctx
                    .store
                    .tenant(&self.tenant)
                    .events()
                    .list(
                        Some(&self.after.to_string()),
                        kind.as_deref(),
                        EVENTS_PER_POLL,
                    )
                    .await?;
                for record in page.items {
                    self.after = record.seq;
                    let kind = record.kind.clone();
                    let view = EventView::from(record);
                    let data = serde_json::to_value(&view).unwrap_or_default();
                    self.pending.push_back(frame(Some(view.seq), &kind, &data));
                }
            }
        }
        Ok(())
    }

    /// The next frame: what is pending, else a poll, a heartbeat when idle for long, or
    /// a wait; `None` once the stream has ended.
    async fn next(mut self) -> Option<(Result<Bytes, actix_web::Error>, Self)> {
        loop {
            if let Some(bytes) = self.pending.pop_front() {
                self.last_write = Instant::now();
                return Some((Ok(bytes), self));
            }
            if self.done {
                return None;
            }
            if let Err(problem) = self.poll().await {
                // The stream is already 200: the failure is its last event.
                self.pending.push_back(frame(
                    None,
                    "error",
                    &json!({"status": problem.status.as_u16(), "detail": problem.detail}),
                ));
                self.done = true;
                continue;
            }
            if self.pending.is_empty() && !self.done {
                if self.last_write.elapsed() >= self.heartbeat {
                    self.pending
                        .push_back(Bytes::from_static(b": heartbeat\n\n"));
                } else {
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }
}

/// Opens `source`'s stream for `tenant` after the event numbered `after` (counted under
/// `stream` for the limit and the gauge).
fn follow(
    ctx: web::Data<Context>,
    tenant: TenantId,
    stream: &str,
    source: Source,
    after: i64,
) -> ApiResult<HttpResponse> {
    let open = Open::take(&ctx, &tenant, stream)?;
    Ok(respond(Stream::new(ctx, tenant, source, after, open)))
}

fn respond(stream: Stream) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer (nginx) pass the events on as they come.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(futures::stream::unfold(stream, Stream::next))
}

pub(crate) async fn job_stream(
    ctx: web::Data<Context>,
    tenant: TenantId,
    id: JobId,
    export: bool,
    req: &HttpRequest,
    after: Option<i64>,
) -> ApiResult<HttpResponse> {
    let after = resume_point(req, after)?.unwrap_or(0);
    let source = Source::Job {
        id,
        export,
        progress: None,
    };
    follow(ctx, tenant, "job", source, after)
}

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobStreamQuery {
    /// Start after this event (as `Last-Event-ID` does; the header wins).
    pub after: Option<i64>,
}

/// A job's state changes as Server-Sent Events: one `state` event per recorded change
/// (`id` is its sequence number; data: `seq`, `from`, `state`, `step`, `attempt`,
/// `error`, `at`), from the first (or after `Last-Event-ID`), then an `end` event with
/// the final state once the job is finished.
#[utoipa::path(
    operation_id = "stream_job",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's id"), JobStreamQuery),
    responses((status = 200, description = "The job's state changes", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["jobs:read"]))
)]
#[get("/jobs/{id}/stream")]
pub(crate) async fn job_changes(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<JobStreamQuery>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    let id = super::not_found_unless(JobId::parse(&id), "job", &id)?;
    let job = ctx.store.tenant(&tenant).jobs().get(&id).await?;
    let export = job.kind == <stella_actors::export::Export as stella_supervisor::Kind>::NAME;
    job_stream(ctx, tenant, id, export, &req, query.after).await
}

/// A scan's progress as Server-Sent Events: its job's state changes (`analyze`,
/// `evaluate`, `seal`), as `GET /jobs/{id}/stream` sends them.
#[utoipa::path(
    operation_id = "stream_scan",
    tag = "scans",
    params(("id" = String, Path, description = "The scan's id"), JobStreamQuery),
    responses((status = 200, description = "The scan's state changes", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/scans/{id}/stream")]
pub(crate) async fn scan_changes(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<JobStreamQuery>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    let job = super::job_of_kind::<stella_actors::scan::Scan>(&ctx, &tenant, &id, "scan").await?;
    job_stream(ctx, tenant, job.id, false, &req, query.after).await
}

/// An export run's progress as Server-Sent Events: its job's state changes (`plan`,
/// `write`, `seal`, `distribute`) and `progress` events (`items_done` of `items_total`)
/// as its writers move, then `end`.
#[utoipa::path(
    operation_id = "stream_export",
    tag = "exports",
    params(("export_id" = String, Path, description = "The export run's id"), JobStreamQuery),
    responses((status = 200, description = "The run's state changes and progress", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["exports:read"]))
)]
#[get("/exports/{export_id}/stream")]
pub(crate) async fn export_changes(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<JobStreamQuery>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    let job =
        super::job_of_kind::<stella_actors::export::Export>(&ctx, &tenant, &id, "export").await?;
    job_stream(ctx, tenant, job.id, true, &req, query.after).await
}

/// A schedule run's progress as Server-Sent Events: a `state` event with the whole run
/// (as `GET /runs/{id}` shows it) whenever it changes, its `id` the time of the change in
/// milliseconds; a `progress` event (targets done of its total) with each; then `end`
/// once the run is completed, cancelled or in error.
#[utoipa::path(
    operation_id = "stream_run",
    tag = "schedules",
    params(("id" = String, Path, description = "The run's id"), JobStreamQuery),
    responses((status = 200, description = "The run as it changes", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["schedules:read"]))
)]
#[get("/runs/{id}/stream")]
pub(crate) async fn run_changes(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<JobStreamQuery>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    let id = super::not_found_unless(RunId::parse(&id), "run", &id)?;
    // Another tenant's run is as missing as an unknown one.
    ctx.store.tenant(&tenant).runs().get(&id).await?;
    let after = resume_point(&req, query.after)?.unwrap_or(0);
    follow(
        ctx,
        tenant,
        "run",
        Source::Watch(Watched::Run { id }),
        after,
    )
}

/// A rollout's progress as Server-Sent Events: a `state` event with the rollout (as `GET
/// /rollouts/{id}` shows it to this caller: a tenant token its own part) whenever it
/// changes, its `id` the time of the change in milliseconds; then `end` once it is
/// completed or rolled back.
#[utoipa::path(
    operation_id = "stream_rollout",
    tag = "rollouts",
    params(("id" = String, Path, description = "The rollout's id"), JobStreamQuery),
    responses((status = 200, description = "The rollout as it changes", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["policy:read"]))
)]
#[get("/rollouts/{id}/stream")]
pub(crate) async fn rollout_changes(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<JobStreamQuery>,
) -> ApiResult<HttpResponse> {
    let id = super::not_found_unless(RolloutId::parse(&id), "rollout", &id)?;
    ctx.store.rollouts().get(&id).await?;
    let (tenant, only) = if caller.is_admin() {
        // Administrators' rollout streams count together, under a name of their own.
        (TenantId::parse(ADMIN_STREAMS)?, None)
    } else {
        let tenant = caller.tenant()?.clone();
        let tenants = ctx.store.rollouts().tenants(&id, None).await?;
        if !tenants.iter().any(|t| t.tenant == tenant) {
            return Err(Problem::not_found(format!("rollout {id} not found")));
        }
        (tenant.clone(), Some(tenant))
    };
    let after = resume_point(&req, query.after)?.unwrap_or(0);
    let source = Source::Watch(Watched::Rollout { id, only });
    follow(ctx, tenant, "rollout", source, after)
}

/// The key administrators' rollout streams are counted under (`api.max_streams_per_tenant`).
const ADMIN_STREAMS: &str = "administrators";

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventStreamQuery {
    /// Only events of this kind.
    pub kind: Option<String>,
    /// Start after this event's `seq` (as `Last-Event-ID` does; the header wins). Without
    /// either, the stream starts with what happens from now on.
    pub after: Option<i64>,
}

/// The tenant's events as Server-Sent Events, as they happen: each an event named by
/// its kind (`scan.completed`, `finding.new`, ...) whose `id` is its `seq` and whose data
/// is the event as `GET /events` lists it.
#[utoipa::path(
    operation_id = "stream_events",
    tag = "events",
    params(EventStreamQuery),
    responses((status = 200, description = "The tenant's events", content_type = "text/event-stream", body = String), Problems),
    security(("bearer" = ["scans:read"]))
)]
#[get("/events/stream")]
pub(crate) async fn tenant_events(
    ctx: web::Data<Context>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<EventStreamQuery>,
) -> ApiResult<HttpResponse> {
    let tenant = caller.tenant()?.clone();
    let query = query.into_inner();
    events_stream(ctx, tenant, &req, query.kind, query.after).await
}

/// The tenant's events (of `kind`, if given) after `Last-Event-ID`, `after`, or from now
/// on: the API's `GET /events/stream` and the console's live lists.
pub(crate) async fn events_stream(
    ctx: web::Data<Context>,
    tenant: TenantId,
    req: &HttpRequest,
    kind: Option<String>,
    after: Option<i64>,
) -> ApiResult<HttpResponse> {
    let after = match resume_point(req, after)? {
        Some(after) => after,
        None => ctx.store.tenant(&tenant).events().latest_seq().await?,
    };
    let source = Source::Events {
        kind: kind.filter(|k| !k.is_empty()),
    };
    follow(ctx, tenant, "events", source, after)
}
